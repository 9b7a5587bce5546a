//! Property: whatever sequence of appends, clean reopenings and crashes
//! (the last segment cut or scribbled on at a random point) happens, the
//! journal always recovers a prefix of what was appended, and verifies.

use crate::support::config;
use proptest::prelude::*;
use ringex_journal::format::{SegmentHeader, SEGMENT_HEADER_SIZE};
use ringex_journal::{DurabilityPolicy, Journal, JournalReader, OwnedRecord};
use std::path::Path;

#[derive(Debug, Clone)]
enum Op {
    /// Append `count` records of `size` bytes, then end the batch.
    Append { count: u8, size: u16 },
    /// Close and reopen.
    Reopen,
    /// Crash: cut the last segment `back` bytes before its last non-zero byte.
    Cut { back: u16 },
    /// Crash: overwrite the last `back` bytes up to the last non-zero byte
    /// of the last segment (never its header) with `byte`.
    Scribble { back: u16, byte: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40, prop_oneof![Just(80u16), Just(96u16), 0u16..600])
            .prop_map(|(count, size)| Op::Append { count, size }),
        1 => Just(Op::Reopen),
        2 => (0u16..400).prop_map(|back| Op::Cut { back }),
        1 => (1u16..300, any::<u8>()).prop_map(|(back, byte)| Op::Scribble { back, byte }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    seq: u64,
    ts: u64,
    kind: u8,
    payload: Vec<u8>,
}

impl From<OwnedRecord> for Rec {
    fn from(r: OwnedRecord) -> Self {
        Rec {
            seq: r.sequence,
            ts: r.timestamp,
            kind: r.kind,
            payload: r.payload,
        }
    }
}

fn read_all(dir: &Path, journal: &Journal) -> Vec<Rec> {
    let Some(first) = journal.first_sequence() else {
        return Vec::new();
    };
    JournalReader::open(dir, first)
        .unwrap()
        .read_to_end()
        .unwrap()
        .into_iter()
        .map(Rec::from)
        .collect()
}

fn last_segment(dir: &Path) -> Option<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v.pop()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_history_of_appends_reopens_and_crashes_recovers_a_prefix(
        first in 0u64..1000,
        ops in proptest::collection::vec(op(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config().with_durability(DurabilityPolicy::Write);
        let (mut journal, _) = Journal::open(dir.path(), cfg).unwrap();
        let mut model: Vec<Rec> = Vec::new();
        let mut salt = 0u8;
        for op in ops {
            match op {
                Op::Append { count, size } => {
                    for _ in 0..count {
                        let seq = model.last().map_or(first, |r| r.seq + 1);
                        salt = salt.wrapping_add(1);
                        let rec = Rec {
                            seq,
                            ts: seq * 10,
                            kind: salt,
                            payload: vec![salt; size as usize],
                        };
                        journal.append(rec.seq, rec.ts, rec.kind, &rec.payload).unwrap();
                        model.push(rec);
                    }
                    journal.end_batch().unwrap();
                }
                Op::Reopen => {
                    drop(journal);
                    let (j, report) = Journal::open(dir.path(), cfg).unwrap();
                    prop_assert!(report.is_clean(), "{report:?}");
                    journal = j;
                    prop_assert_eq!(read_all(dir.path(), &journal), model.clone());
                }
                Op::Cut { .. } | Op::Scribble { .. } => {
                    drop(journal);
                    // A crash damages only the active (unsealed) segment.
                    let active = last_segment(dir.path()).filter(|p| {
                        let b = std::fs::read(p).unwrap();
                        SegmentHeader::decode(&b, b.len() as u64).is_ok_and(|h| !h.is_sealed())
                    });
                    if let Some(path) = active {
                        let bytes = std::fs::read(&path).unwrap();
                        let extent = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                        match op {
                            Op::Cut { back } => {
                                f.set_len(extent.saturating_sub(back as usize) as u64).unwrap();
                            }
                            Op::Scribble { back, byte } => {
                                use std::os::unix::fs::FileExt;
                                let at = extent.saturating_sub(back as usize).max(SEGMENT_HEADER_SIZE);
                                if at < extent {
                                    f.write_all_at(&vec![byte; extent - at], at as u64).unwrap();
                                }
                            }
                            _ => unreachable!(),
                        }
                    }
                    // A crash only ever damages the tail: strict recovery opens.
                    let (j, report) = Journal::open(dir.path(), cfg).unwrap();
                    prop_assert!(report.dropped.is_none());
                    journal = j;
                    let recovered = read_all(dir.path(), &journal);
                    prop_assert!(recovered.len() <= model.len());
                    prop_assert_eq!(&recovered[..], &model[..recovered.len()]);
                    prop_assert_eq!(report.records, recovered.len() as u64);
                    model.truncate(recovered.len());
                    let expected_next = model.last().map(|r| r.seq + 1);
                    if let Some(next) = expected_next {
                        prop_assert_eq!(journal.next_sequence(), Some(next));
                    }
                }
            }
            let verified = ringex_journal::verify(dir.path()).unwrap();
            prop_assert!(verified.is_intact(), "{verified:?}");
        }
        drop(journal);
        let (journal, _) = Journal::open(dir.path(), cfg).unwrap();
        prop_assert_eq!(read_all(dir.path(), &journal), model);
    }
}
