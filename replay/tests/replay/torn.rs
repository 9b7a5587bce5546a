//! Torn and corrupted journals: a torn last record is reported as the
//! journal's recovery would truncate it; a flipped byte before the tail is
//! a clear error naming file, byte offset and sequence; missing input is a
//! clear error. Never a panic.

use crate::support::*;
use ringex_journal::{Journal, JournalConfig};
use ringex_replay::{check_journal, verify, Divergence, ReplayError, SessionPaths, Verdict, Which};
use std::path::Path;

/// Zeroes `[from, to)` of `file`: what a write torn at `from` leaves in a
/// preallocated, zero-filled segment.
fn zero(file: &Path, from: usize, to: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[from..to].fill(0);
    std::fs::write(file, bytes).unwrap();
}

fn flip(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn an_output_record_torn_at_every_byte_reads_as_a_lag_of_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 500, 21);
    let segs = segments(&dir.path().join("events"));
    let last_seg = segs.last().unwrap();
    let last = *frames(last_seg).last().unwrap();
    assert_eq!(last.sequence, session.events);
    let pristine = std::fs::read(last_seg).unwrap();
    for cut in 0..last.len {
        if pristine[last.offset + cut..last.offset + last.len]
            .iter()
            .all(|&b| b == 0)
        {
            break; // Zeroing zeros changes nothing: the record is intact.
        }
        std::fs::write(last_seg, &pristine).unwrap();
        zero(last_seg, last.offset + cut, last.offset + last.len);
        let report = verify(&SessionPaths::new(dir.path(), None), engine(), None)
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let lag = report
            .output_lag
            .unwrap_or_else(|| panic!("cut at {cut}: no lag"));
        assert_eq!(lag.journaled, session.events - 1, "cut at {cut}");
        assert_eq!(report.verdict(false), Verdict::Ok, "cut at {cut}");
        if let Some(torn) = report.output.torn_tail() {
            assert_eq!(torn.offset as usize, last.offset, "cut at {cut}");
            assert_eq!(torn.sequence, session.events);
        } else {
            // Only a cut that zeroes the length field leaves no trace.
            assert!(cut < 4, "cut at {cut}: torn tail not reported");
        }
    }
}

#[test]
fn an_input_record_torn_at_every_byte_is_reported_like_recovery_truncates_it() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 500, 22);
    let segs = segments(dir.path());
    let last_seg = segs.last().unwrap();
    let last = *frames(last_seg).last().unwrap();
    assert_eq!(last.sequence, session.commands);
    let pristine = std::fs::read(last_seg).unwrap();
    for cut in 0..last.len {
        if pristine[last.offset + cut..last.offset + last.len]
            .iter()
            .all(|&b| b == 0)
        {
            break; // Zeroing zeros changes nothing: the record is intact.
        }
        std::fs::write(last_seg, &pristine).unwrap();
        zero(last_seg, last.offset + cut, last.offset + last.len);
        let check = check_journal(Which::Input, dir.path()).unwrap();
        assert_eq!(
            check.last_sequence(),
            Some(session.commands - 1),
            "cut at {cut}"
        );
        // What the journal's own recovery does with the same bytes.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let (_, recovery) = Journal::open(copy.path(), JournalConfig::default()).unwrap();
        assert_eq!(recovery.last_sequence, Some(session.commands - 1));
        match (check.torn_tail(), recovery.torn_tail.as_ref()) {
            (Some(ours), Some(theirs)) => {
                assert_eq!(
                    (ours.offset, ours.sequence),
                    (theirs.offset, theirs.sequence)
                );
                assert_eq!(ours.file.file_name(), theirs.file.file_name());
            }
            (None, None) => assert!(cut < 4, "cut at {cut}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
        // The last command (a StateDigest) is gone, its event is not: the
        // output journal holds one event more than the replay produces.
        let report = verify(&SessionPaths::new(dir.path(), None), engine(), None).unwrap();
        assert!(
            matches!(report.divergence, Some(Divergence::ExtraEvents { regenerated, journaled, .. })
                if regenerated + 1 == journaled && journaled == session.events),
            "cut at {cut}: {:?}",
            report.divergence
        );
    }
    // The CLI names the torn tail and exits with "divergence".
    std::fs::write(last_seg, &pristine).unwrap();
    zero(last_seg, last.offset + 10, last.offset + last.len);
    let out = cli(&["verify", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "input journal: torn tail in {} at byte offset {} (sequence {})",
            last_seg.display(),
            last.offset,
            session.commands
        )),
        "{stdout}"
    );
}

#[test]
fn a_flipped_byte_in_the_middle_names_file_offset_and_sequence() {
    let dir = tempfile::tempdir().unwrap();
    run_session(dir.path(), 3_000, 23);
    for which in ["input", "output"] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let jdir = if which == "input" {
            copy.path().to_path_buf()
        } else {
            copy.path().join("events")
        };
        let seg = segments(&jdir)[0].clone();
        let fs = frames(&seg);
        let victim = fs[fs.len() / 2];
        flip(&seg, victim.offset + 40);
        for sub in ["verify", "dump", "stats"] {
            let out = cli(&[sub, copy.path().to_str().unwrap()]);
            let (stdout, stderr) = text(&out);
            if sub == "stats" && which == "output" {
                // stats replays and never reads the output journal.
                assert_eq!(out.status.code(), Some(0), "{stderr}");
                continue;
            }
            assert_eq!(
                out.status.code(),
                Some(3),
                "{which} {sub}: {stdout}\n{stderr}"
            );
            let expected = format!(
                "{which} journal is damaged: {} at byte offset {} (sequence {}): record CRC mismatch",
                seg.display(),
                victim.offset,
                victim.sequence
            );
            assert!(
                stderr.contains(&expected),
                "{which} {sub}: {stderr}\nwanted: {expected}"
            );
        }
    }
}

#[test]
fn a_missing_or_empty_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = cli(&["verify", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("input journal: no such directory"),
        "{}",
        text(&out).1
    );

    let out = cli(&["book", dir.path().to_str().unwrap(), "--instrument", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("holds no journal segments"),
        "{}",
        text(&out).1
    );

    let err = verify(&SessionPaths::new(&missing, None), engine(), None).unwrap_err();
    assert!(matches!(
        err,
        ReplayError::MissingDir {
            which: Which::Input,
            ..
        }
    ));
    assert!(!err.is_damage());

    // A usage error is "bad input" too.
    assert_eq!(
        cli(&["export", dir.path().to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn an_edited_record_with_a_valid_crc_breaks_the_hash_chain() {
    use ringex_journal::format::{encode_frame, frame, frame_size, FRAME_HEADER_SIZE};
    let dir = tempfile::tempdir().unwrap();
    run_session(dir.path(), 2_000, 24);
    let seg = segments(dir.path())[0].clone();
    let fs = frames(&seg);
    let (before, victim, next) = (fs[999], fs[1000], fs[1001]);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Re-encode the record with one payload byte changed, chained from the
    // record before it: its own CRC and chain value are valid, so only the
    // chain link of the next record can tell.
    let prev_chain = u64::from_le_bytes(
        bytes[before.offset + frame::CHAIN..before.offset + frame::CHAIN + 8]
            .try_into()
            .unwrap(),
    );
    let start = victim.offset;
    let mut payload = bytes[start + frame::PAYLOAD..start + victim.len].to_vec();
    payload[48] ^= 1; // the quantity's low bit
    let ts = u64::from_le_bytes(
        bytes[start + frame::TIMESTAMP..start + frame::TIMESTAMP + 8]
            .try_into()
            .unwrap(),
    );
    let kind = bytes[start + frame::KIND];
    let size = frame_size(victim.len - FRAME_HEADER_SIZE);
    encode_frame(
        &mut bytes[start..start + size],
        victim.sequence,
        ts,
        kind,
        &payload,
        prev_chain,
    );
    std::fs::write(&seg, bytes).unwrap();

    let out = cli(&["verify", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let expected = format!(
        "input journal is damaged: {} at byte offset {} (sequence {}): hash chain broken",
        seg.display(),
        next.offset,
        next.sequence
    );
    assert!(stderr.contains(&expected), "{stderr}\nwanted: {expected}");
}
