//! The per-session message store: the next sender and target sequence
//! numbers and every message sent, so a ResendRequest can be answered and
//! both survive a restart.
//!
//! With a directory, a session keeps two files there, named after the
//! session (`FIX.4.4-ISLD-TW44`):
//!
//! - `<name>.seqnums`: the text `<next sender> <next target>\n`, rewritten
//!   in place on every change;
//! - `<name>.messages`: one record per message sent, appended:
//!
//! ```text
//!  0        4        12       20   21       23         25
//!  +--------+--------+--------+----+--------+----------+---------+-----------+
//!  | len u32| seq u64| time i64|kind| type   | type     | nheader | header... |
//!  |        |        | (ms)    | u8 | len u16| bytes    | u16     | body...   |
//!  +--------+--------+--------+----+--------+----------+---------+-----------+
//!  header entry: tag i64, len u32, value bytes; body: count u32, then
//!  entries of tag i64, len u32, block bytes. Little-endian. `len` counts
//!  the bytes after itself. kind 0 = admin (kept only as a sequence number,
//!  gap-filled on resend), 1 = application (resent with PossDupFlag).
//! ```
//!
//! A torn last record (a crash mid-append) is cut off when the store opens.
//! Writes are not fsynced: the store follows the OS page cache, like
//! QuickFIX's file store.
//!
//! Owned by its session (the event-loop thread).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::message::OutMessage;
use super::time::Millis;

/// A message as stored for resending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its MsgSeqNum.
    pub seq: u64,
    /// Its original SendingTime.
    pub sending_time: Millis,
    /// The application message, or `None` for an admin message.
    pub message: Option<OutMessage>,
}

struct Files {
    seqnums: File,
    messages: File,
    seqnums_path: PathBuf,
    messages_path: PathBuf,
}

/// Sequence numbers and sent messages of one session.
pub struct MessageStore {
    next_sender: u64,
    next_target: u64,
    messages: BTreeMap<u64, StoredMessage>,
    files: Option<Files>,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("next_sender", &self.next_sender)
            .field("next_target", &self.next_target)
            .field("messages", &self.messages.len())
            .field("persistent", &self.files.is_some())
            .finish()
    }
}

fn encode_record(m: &StoredMessage) -> Vec<u8> {
    let mut r = Vec::with_capacity(128);
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(&m.seq.to_le_bytes());
    r.extend_from_slice(&m.sending_time.to_le_bytes());
    match &m.message {
        None => r.push(0),
        Some(msg) => {
            r.push(1);
            r.extend_from_slice(&(msg.msg_type.len() as u16).to_le_bytes());
            r.extend_from_slice(msg.msg_type.as_bytes());
            r.extend_from_slice(&(msg.header.len() as u16).to_le_bytes());
            for (tag, value) in &msg.header {
                r.extend_from_slice(&tag.to_le_bytes());
                r.extend_from_slice(&(value.len() as u32).to_le_bytes());
                r.extend_from_slice(value);
            }
            r.extend_from_slice(&(msg.body.len() as u32).to_le_bytes());
            for (tag, block) in &msg.body {
                r.extend_from_slice(&tag.to_le_bytes());
                r.extend_from_slice(&(block.len() as u32).to_le_bytes());
                r.extend_from_slice(block);
            }
        }
    }
    let len = (r.len() - 4) as u32;
    r[..4].copy_from_slice(&len.to_le_bytes());
    r
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)
    }
}

/// Decodes one record payload (the bytes after the length). Exposed for
/// the fuzz target.
pub fn decode_record(payload: &[u8]) -> Option<StoredMessage> {
    let mut r = Reader(payload);
    let seq = r.i64()? as u64;
    let sending_time = r.i64()?;
    let kind = r.take(1)?[0];
    let message = match kind {
        0 => None,
        1 => {
            let n = r.u16()? as usize;
            let msg_type = String::from_utf8(r.take(n)?.to_vec()).ok()?;
            let mut msg = OutMessage::new(&msg_type);
            for _ in 0..r.u16()? {
                let tag = r.i64()?;
                let n = r.u32()? as usize;
                msg.header.push((tag, r.take(n)?.to_vec()));
            }
            for _ in 0..r.u32()? {
                let tag = r.i64()?;
                let n = r.u32()? as usize;
                msg.body.push((tag, r.take(n)?.to_vec()));
            }
            Some(msg)
        }
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(StoredMessage {
        seq,
        sending_time,
        message,
    })
}

impl MessageStore {
    /// A store kept in memory only (lost on restart).
    pub fn in_memory() -> Self {
        Self {
            next_sender: 1,
            next_target: 1,
            messages: BTreeMap::new(),
            files: None,
        }
    }

    /// Opens (or creates) the store of session `name` in `dir`.
    pub fn open(dir: &Path, name: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let seqnums_path = dir.join(format!("{safe}.seqnums"));
        let messages_path = dir.join(format!("{safe}.messages"));
        let mut seqnums = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&seqnums_path)?;
        let mut text = String::new();
        seqnums.read_to_string(&mut text)?;
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        let (next_sender, next_target) = match (parts.next(), parts.next()) {
            (Some(Ok(s)), Some(Ok(t))) if s > 0 && t > 0 => (s, t),
            _ => (1, 1),
        };
        let mut messages_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&messages_path)?;
        let mut bytes = Vec::new();
        messages_file.read_to_end(&mut bytes)?;
        let mut messages = BTreeMap::new();
        let mut pos = 0usize;
        while pos + 4 <= bytes.len() {
            let len =
                u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
                    as usize;
            let Some(payload) = bytes.get(pos + 4..pos + 4 + len) else {
                break;
            };
            let Some(m) = decode_record(payload) else {
                break;
            };
            messages.insert(m.seq, m);
            pos += 4 + len;
        }
        if pos < bytes.len() {
            // A torn or corrupt tail: keep what was whole.
            messages_file.set_len(pos as u64)?;
        }
        messages_file.seek(SeekFrom::End(0))?;
        Ok(Self {
            next_sender,
            next_target,
            messages,
            files: Some(Files {
                seqnums,
                messages: messages_file,
                seqnums_path,
                messages_path,
            }),
        })
    }

    /// The next MsgSeqNum to send.
    pub fn next_sender(&self) -> u64 {
        self.next_sender
    }

    /// The next MsgSeqNum expected from the counterparty.
    pub fn next_target(&self) -> u64 {
        self.next_target
    }

    fn write_seqnums(&mut self) -> io::Result<()> {
        let text = format!("{:020} {:020}\n", self.next_sender, self.next_target);
        if let Some(f) = &mut self.files {
            f.seqnums.seek(SeekFrom::Start(0))?;
            f.seqnums.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    /// Sets the next MsgSeqNum to send.
    pub fn set_next_sender(&mut self, n: u64) -> io::Result<()> {
        self.next_sender = n;
        self.write_seqnums()
    }

    /// Sets the next MsgSeqNum expected.
    pub fn set_next_target(&mut self, n: u64) -> io::Result<()> {
        self.next_target = n;
        self.write_seqnums()
    }

    /// Records a message sent with `seq`.
    pub fn save(
        &mut self,
        seq: u64,
        sending_time: Millis,
        message: Option<OutMessage>,
    ) -> io::Result<()> {
        let m = StoredMessage {
            seq,
            sending_time,
            message,
        };
        if let Some(f) = &mut self.files {
            f.messages.write_all(&encode_record(&m))?;
        }
        self.messages.insert(seq, m);
        Ok(())
    }

    /// Messages with `begin <= seq <= end`, in order.
    pub fn range(&self, begin: u64, end: u64) -> Vec<StoredMessage> {
        if begin > end {
            return Vec::new();
        }
        self.messages
            .range(begin..=end)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Starts over: both sequence numbers 1, no messages.
    pub fn reset(&mut self) -> io::Result<()> {
        self.messages.clear();
        self.next_sender = 1;
        self.next_target = 1;
        if let Some(f) = &mut self.files {
            f.messages.set_len(0)?;
            f.messages.seek(SeekFrom::Start(0))?;
        }
        self.write_seqnums()
    }

    /// The files backing the store, if any.
    pub fn paths(&self) -> Option<(&Path, &Path)> {
        self.files
            .as_ref()
            .map(|f| (f.seqnums_path.as_path(), f.messages_path.as_path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_and_messages_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut msg = OutMessage::new("D");
        msg.set(11, "ID").set_header(97, "Y");
        {
            let mut s = MessageStore::open(dir.path(), "FIX.4.4-ISLD-TW44").unwrap();
            s.save(1, 10, None).unwrap();
            s.save(2, 20, Some(msg.clone())).unwrap();
            s.set_next_sender(3).unwrap();
            s.set_next_target(7).unwrap();
        }
        let s = MessageStore::open(dir.path(), "FIX.4.4-ISLD-TW44").unwrap();
        assert_eq!((s.next_sender(), s.next_target()), (3, 7));
        let got = s.range(1, 5);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].message, None);
        assert_eq!(got[1].message.as_ref(), Some(&msg));
        assert_eq!(got[1].sending_time, 20);
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let messages_path;
        {
            let mut s = MessageStore::open(dir.path(), "s").unwrap();
            s.save(1, 10, None).unwrap();
            s.save(2, 20, None).unwrap();
            messages_path = s.paths().unwrap().1.to_path_buf();
        }
        let len = std::fs::metadata(&messages_path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&messages_path).unwrap();
        f.set_len(len - 3).unwrap();
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!(s.range(1, 10).len(), 1);
        s.save(2, 30, None).unwrap();
        drop(s);
        let s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!(
            s.range(1, 10)
                .iter()
                .map(|m| m.sending_time)
                .collect::<Vec<_>>(),
            vec![10, 30]
        );
    }

    #[test]
    fn reset_clears_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        s.save(1, 10, None).unwrap();
        s.set_next_sender(2).unwrap();
        s.reset().unwrap();
        drop(s);
        let s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!((s.next_sender(), s.next_target()), (1, 1));
        assert!(s.range(1, 10).is_empty());
    }

    #[test]
    fn garbage_records_do_not_decode() {
        assert_eq!(decode_record(&[]), None);
        assert_eq!(decode_record(&[1, 2, 3]), None);
        let mut r = encode_record(&StoredMessage {
            seq: 1,
            sending_time: 2,
            message: None,
        });
        r.push(0);
        assert_eq!(decode_record(&r[4..]), None);
    }
}
