//! Cutting FIX frames out of a byte stream, and the checksum.
//!
//! The cutter follows the QuickFIX parser, because the acceptance
//! definitions test exactly its behaviour on bad input: a frame starts at
//! `8=`, its BodyLength (`9=`) says where the body ends, and the frame runs
//! to the SOH after the first `<SOH>10=` found from one byte before that
//! point. A frame whose BodyLength is wrong is still cut (so it can be
//! ignored as garbled) and the stream stays in step. Unlike QuickFIX the
//! cutter is bounded: a BodyLength above the configured maximum, or a frame
//! whose trailer does not show up within that maximum, is dropped and the
//! cutter resynchronises on the next `8=`, so no input can make it buffer
//! without limit.
//!
//! Owned by the connection that reads the stream (the gateway's event-loop
//! thread).

/// The field separator.
pub const SOH: u8 = 0x01;

/// Default upper bound on one frame (BodyLength plus header and trailer).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The FIX checksum: the sum of all bytes modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// What [`FrameCutter::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// A complete frame (from `8=` to the SOH after `10=...`), to be parsed.
    Frame(Vec<u8>),
    /// Bytes that cannot be a frame were dropped (the reason says why).
    Dropped(&'static str),
    /// Nothing more can be cut until more bytes arrive.
    NeedMore,
}

/// Accumulates stream bytes and cuts frames from them.
#[derive(Debug)]
pub struct FrameCutter {
    /// Bytes read; those before `start` are already cut. Cutting only
    /// advances `start`, and the consumed prefix is dropped once per
    /// [`extend`](Self::extend), not once per frame (a read holding a
    /// hundred orders would otherwise move its tail a hundred times).
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl FrameCutter {
    /// A cutter that accepts frames of up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::with_capacity(4096),
            start: 0,
            max_frame: max_frame.max(64),
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held and not yet cut.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Cuts the next frame, if one is complete.
    pub fn next_frame(&mut self) -> Cut {
        let (cut, consumed) = Self::cut(&self.buf[self.start..], self.max_frame);
        self.start += consumed;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        cut
    }

    /// Cuts from `buf`: what was found and how many bytes it consumed.
    fn cut(buf: &[u8], max_frame: usize) -> (Cut, usize) {
        // Resynchronise on "8=".
        match find(buf, b"8=", 0) {
            Some(0) => {}
            Some(start) => {
                let (cut, consumed) = Self::cut(&buf[start..], max_frame);
                return (cut, start + consumed);
            }
            None => {
                // Keep a trailing '8' that may begin the next frame.
                let keep = usize::from(buf.last() == Some(&b'8'));
                return (Cut::NeedMore, buf.len() - keep);
            }
        }
        // BodyLength: "<SOH>9=" must come within a short distance: the
        // BeginString is short.
        const MAX_BEGIN: usize = 32;
        let Some(nine) = find(&buf[..buf.len().min(MAX_BEGIN)], b"\x019=", 0) else {
            if buf.len() >= MAX_BEGIN {
                return (Cut::Dropped("no BodyLength after BeginString"), 2);
            }
            return (Cut::NeedMore, 0);
        };
        let len_start = nine + 3;
        let Some(len_end) = buf[len_start..]
            .iter()
            .take(12)
            .position(|&b| b == SOH)
            .map(|p| p + len_start)
        else {
            if buf.len() >= len_start + 12 {
                return (Cut::Dropped("BodyLength is not a number"), 2);
            }
            return (Cut::NeedMore, 0);
        };
        let digits = &buf[len_start..len_end];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return (Cut::Dropped("BodyLength is not a number"), len_end + 1);
        }
        let body_len = digits.iter().fold(0usize, |acc, &b| {
            acc.saturating_mul(10).saturating_add(usize::from(b - b'0'))
        });
        if body_len > max_frame {
            return (
                Cut::Dropped("BodyLength above the frame limit"),
                len_end + 1,
            );
        }
        let body_start = len_end + 1;
        let body_end = body_start + body_len;
        if buf.len() < body_end {
            return (Cut::NeedMore, 0);
        }
        let search_from = body_end.saturating_sub(1).max(body_start.saturating_sub(1));
        let Some(trailer) = find(buf, b"\x0110=", search_from) else {
            if buf.len() > body_start + max_frame {
                return (
                    Cut::Dropped("no CheckSum within the frame limit"),
                    body_start,
                );
            }
            return (Cut::NeedMore, 0);
        };
        let value_start = trailer + 4;
        let Some(end) = buf[value_start..]
            .iter()
            .take(16)
            .position(|&b| b == SOH)
            .map(|p| p + value_start + 1)
        else {
            if buf.len() >= value_start + 16 {
                return (Cut::Dropped("CheckSum is not terminated"), value_start);
            }
            return (Cut::NeedMore, 0);
        };
        if end > max_frame + 64 {
            return (Cut::Dropped("frame above the frame limit"), end);
        }
        (Cut::Frame(buf[..end].to_vec()), end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    fn cut_all(cutter: &mut FrameCutter) -> Vec<Cut> {
        let mut out = Vec::new();
        loop {
            match cutter.next_frame() {
                Cut::NeedMore => return out,
                c => out.push(c),
            }
        }
    }

    #[test]
    fn cuts_frames_split_across_reads() {
        let msg = fix("8=FIX.4.4|9=5|35=0|10=161|");
        let mut c = FrameCutter::new(DEFAULT_MAX_FRAME);
        for b in &msg[..msg.len() - 1] {
            c.extend(&[*b]);
            assert_eq!(c.next_frame(), Cut::NeedMore);
        }
        c.extend(&msg[msg.len() - 1..]);
        assert_eq!(c.next_frame(), Cut::Frame(msg));
        assert_eq!(c.buffered(), 0);
    }

    #[test]
    fn skips_leading_garbage_and_keeps_in_step_after_a_short_body_length() {
        let mut c = FrameCutter::new(DEFAULT_MAX_FRAME);
        c.extend(&fix(
            "xx35=0|8=FIX.4.4|9=2|35=0|34=2|10=000|8=FIX.4.4|9=5|35=0|10=161|",
        ));
        let cuts = cut_all(&mut c);
        assert_eq!(
            cuts,
            vec![
                Cut::Frame(fix("8=FIX.4.4|9=2|35=0|34=2|10=000|")),
                Cut::Frame(fix("8=FIX.4.4|9=5|35=0|10=161|")),
            ]
        );
    }

    #[test]
    fn a_long_body_length_swallows_the_next_frame_as_quickfix_does() {
        let mut c = FrameCutter::new(DEFAULT_MAX_FRAME);
        c.extend(&fix(
            "8=FIX.4.4|9=12|35=0|10=161|8=FIX.4.4|9=5|35=0|10=161|",
        ));
        assert_eq!(
            cut_all(&mut c),
            vec![Cut::Frame(fix(
                "8=FIX.4.4|9=12|35=0|10=161|8=FIX.4.4|9=5|35=0|10=161|"
            ))]
        );
    }

    #[test]
    fn oversized_and_malformed_lengths_are_dropped_and_the_stream_recovers() {
        let mut c = FrameCutter::new(1024);
        c.extend(&fix(
            "8=FIX.4.4|9=99999999|35=0|8=FIX.4.4|9=x|8=FIX.4.4|9=5|35=0|10=161|",
        ));
        let cuts = cut_all(&mut c);
        assert_eq!(cuts.len(), 3, "{cuts:?}");
        assert!(matches!(cuts[0], Cut::Dropped(_)));
        assert!(matches!(cuts[1], Cut::Dropped(_)));
        assert_eq!(cuts[2], Cut::Frame(fix("8=FIX.4.4|9=5|35=0|10=161|")));
    }

    #[test]
    fn garbage_without_a_frame_start_is_not_buffered() {
        let mut c = FrameCutter::new(1024);
        c.extend(&[b'x'; 10_000]);
        assert_eq!(c.next_frame(), Cut::NeedMore);
        assert_eq!(c.buffered(), 0);
        c.extend(b"abc8");
        assert_eq!(c.next_frame(), Cut::NeedMore);
        assert_eq!(c.buffered(), 1);
    }

    #[test]
    fn a_missing_trailer_is_dropped_once_past_the_limit() {
        let mut c = FrameCutter::new(256);
        c.extend(&fix("8=FIX.4.4|9=5|35=0|"));
        c.extend(&[b'a'; 400]);
        assert!(matches!(c.next_frame(), Cut::Dropped(_)));
        assert_eq!(c.next_frame(), Cut::NeedMore);
        assert!(c.buffered() <= 1);
    }

    #[test]
    fn checksum_is_the_byte_sum_modulo_256() {
        assert_eq!(checksum(&fix("8=FIX.4.4|9=5|35=0|")), 163);
        assert_eq!(checksum(&[200, 100]), 44);
    }
}
