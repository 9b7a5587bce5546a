//! The per-session message store: the next sender and target sequence
//! numbers and every message sent, so a ResendRequest can be answered and
//! both survive a restart.
//!
//! With a directory, a session keeps two files there, named after the
//! session (`FIX.4.4-ISLD-TW44`):
//!
//! - `<name>.seqnums`: the text `<next sender> <next target>\n`, each
//!   number 20 zero-padded digits, rewritten in place when it changed;
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
//! QuickFIX's file store. They are batched per event-loop turn and reach
//! the files before any byte of the turn reaches the socket
//! ([`MessageStore::flush`]). A resend reads the records back from the
//! file; only a store without files keeps them in memory.
//!
//! Owned by its session (the event-loop thread).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
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
    /// Length of the messages file: where the next record goes.
    end: u64,
}

/// Where one saved record lies: in the messages file (file stores) or in
/// `MessageStore::memory` (in-memory stores), at `offset`, `len` bytes
/// including its 4-byte length.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    offset: u64,
    len: u32,
}

/// Records of an in-memory store, in chunks so that growing never copies
/// what is already stored. A record never straddles two chunks.
#[derive(Default)]
struct MemoryLog {
    chunks: Vec<Vec<u8>>,
}

/// Bytes per chunk of a [`MemoryLog`]; a larger record gets its own.
const CHUNK: usize = 1 << 20;

impl MemoryLog {
    /// Appends `record`; returns its offset (chunk index in the high 32
    /// bits, byte offset in the low).
    fn push(&mut self, record: &[u8]) -> u64 {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= record.len());
        if !fits {
            self.chunks
                .push(Vec::with_capacity(CHUNK.max(record.len())));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let offset = chunk.len();
        chunk.extend_from_slice(record);
        ((index as u64) << 32) | offset as u64
    }

    fn get(&self, offset: u64, len: u32) -> Option<&[u8]> {
        let chunk = self.chunks.get((offset >> 32) as usize)?;
        let start = (offset & u64::from(u32::MAX)) as usize;
        chunk.get(start..start + len as usize)
    }
}

/// Sequence numbers and sent messages of one session.
///
/// Writes are batched per event-loop turn: [`MessageStore::save`] and the
/// sequence number setters change the store at once (a resend sees them)
/// but reach the files only at [`MessageStore::flush`], which the event
/// loop calls before it writes any of the session's bytes to its socket.
/// So nothing is sent that is not stored, at one `write` for the turn's
/// records and one `pwrite` for the sequence numbers instead of three
/// system calls per message. Dropping the store flushes it.
pub struct MessageStore {
    next_sender: u64,
    next_target: u64,
    /// Every saved message, in sequence order.
    slots: Vec<Slot>,
    /// The records themselves, for a store without files (a file store
    /// reads them back from its file on a resend).
    memory: MemoryLog,
    /// Records saved since the last flush (file stores only).
    pending: Vec<u8>,
    /// The sequence numbers changed since the last flush.
    seqnums_dirty: bool,
    files: Option<Files>,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("next_sender", &self.next_sender)
            .field("next_target", &self.next_target)
            .field("messages", &self.slots.len())
            .field("persistent", &self.files.is_some())
            .finish()
    }
}

#[cfg(test)]
fn encode_record(m: &StoredMessage) -> Vec<u8> {
    let mut r = Vec::with_capacity(128);
    encode_record_into(m, &mut r);
    r
}

/// Appends the record of `m` (length included) to `r`.
fn encode_record_into(m: &StoredMessage, r: &mut Vec<u8>) {
    let start = r.len();
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
            r.extend_from_slice(&(msg.body_blocks().len() as u32).to_le_bytes());
            for (tag, block) in msg.body_blocks() {
                r.extend_from_slice(&tag.to_le_bytes());
                r.extend_from_slice(&(block.len() as u32).to_le_bytes());
                r.extend_from_slice(block);
            }
        }
    }
    let len = (r.len() - start - 4) as u32;
    r[start..start + 4].copy_from_slice(&len.to_le_bytes());
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
                msg.push_block(tag, r.take(n)?);
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
            slots: Vec::new(),
            memory: MemoryLog::default(),
            pending: Vec::new(),
            seqnums_dirty: false,
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
        let mut store = Self::in_memory();
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
            store.index(Slot {
                seq: m.seq,
                offset: pos as u64,
                len: (4 + len) as u32,
            });
            pos += 4 + len;
        }
        if pos < bytes.len() {
            // A torn or corrupt tail: keep what was whole.
            messages_file.set_len(pos as u64)?;
        }
        store.next_sender = next_sender;
        store.next_target = next_target;
        store.files = Some(Files {
            seqnums,
            messages: messages_file,
            seqnums_path,
            messages_path,
            end: pos as u64,
        });
        Ok(store)
    }

    /// Records where the message `slot.seq` lies; a later record of the
    /// same sequence number replaces an earlier one.
    fn index(&mut self, slot: Slot) {
        match self.slots.last() {
            None => self.slots.push(slot),
            Some(last) if last.seq < slot.seq => self.slots.push(slot),
            Some(_) => match self.slots.binary_search_by_key(&slot.seq, |s| s.seq) {
                Ok(i) => self.slots[i] = slot,
                Err(i) => self.slots.insert(i, slot),
            },
        }
    }

    /// The next MsgSeqNum to send.
    pub fn next_sender(&self) -> u64 {
        self.next_sender
    }

    /// The next MsgSeqNum expected from the counterparty.
    pub fn next_target(&self) -> u64 {
        self.next_target
    }

    /// Sets the next MsgSeqNum to send (written at the next flush).
    pub fn set_next_sender(&mut self, n: u64) -> io::Result<()> {
        self.next_sender = n;
        self.seqnums_dirty = true;
        Ok(())
    }

    /// Sets the next MsgSeqNum expected (written at the next flush).
    pub fn set_next_target(&mut self, n: u64) -> io::Result<()> {
        self.next_target = n;
        self.seqnums_dirty = true;
        Ok(())
    }

    /// Records a message sent with `seq` (written at the next flush).
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
        let slot = match &self.files {
            Some(f) => {
                let start = self.pending.len();
                encode_record_into(&m, &mut self.pending);
                let len = self.pending.len() - start;
                Slot {
                    seq,
                    offset: f.end + start as u64,
                    len: len as u32,
                }
            }
            None => {
                // The scratch buffer is reused: nothing pends in memory.
                self.pending.clear();
                encode_record_into(&m, &mut self.pending);
                let offset = self.memory.push(&self.pending);
                let len = self.pending.len() as u32;
                self.pending.clear();
                Slot { seq, offset, len }
            }
        };
        self.index(slot);
        Ok(())
    }

    /// Writes what changed since the last flush to the files: the saved
    /// records with one `write`, the sequence numbers with one `pwrite`.
    /// A store without files has nothing to write.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(f) = &mut self.files else {
            self.seqnums_dirty = false;
            return Ok(());
        };
        if !self.pending.is_empty() {
            f.messages.write_all_at(&self.pending, f.end)?;
            f.end += self.pending.len() as u64;
            self.pending.clear();
        }
        if self.seqnums_dirty {
            let mut text = [b' '; 42];
            write_padded(&mut text[..20], self.next_sender);
            write_padded(&mut text[21..41], self.next_target);
            text[41] = b'\n';
            f.seqnums.write_all_at(&text, 0)?;
            self.seqnums_dirty = false;
        }
        Ok(())
    }

    /// Messages with `begin <= seq <= end`, in order. Flushes first (a file
    /// store reads them back from its file).
    pub fn range(&mut self, begin: u64, end: u64) -> io::Result<Vec<StoredMessage>> {
        if begin > end {
            return Ok(Vec::new());
        }
        self.flush()?;
        let from = self.slots.partition_point(|s| s.seq < begin);
        let to = self.slots.partition_point(|s| s.seq <= end);
        let mut out = Vec::with_capacity(to.saturating_sub(from));
        let mut buf = Vec::new();
        for slot in &self.slots[from..to] {
            let record = match &self.files {
                Some(f) => {
                    buf.resize(slot.len as usize, 0);
                    f.messages.read_exact_at(&mut buf, slot.offset)?;
                    &buf[..]
                }
                None => self
                    .memory
                    .get(slot.offset, slot.len)
                    .ok_or_else(|| io::Error::other("message store index out of range"))?,
            };
            let message = record
                .get(4..)
                .and_then(decode_record)
                .ok_or_else(|| io::Error::other("message store record does not decode"))?;
            out.push(message);
        }
        Ok(out)
    }

    /// Starts over: both sequence numbers 1, no messages. Written at once.
    pub fn reset(&mut self) -> io::Result<()> {
        self.slots.clear();
        self.memory = MemoryLog::default();
        self.pending.clear();
        self.next_sender = 1;
        self.next_target = 1;
        self.seqnums_dirty = true;
        if let Some(f) = &mut self.files {
            f.messages.set_len(0)?;
            f.end = 0;
        }
        self.flush()
    }

    /// The files backing the store, if any.
    pub fn paths(&self) -> Option<(&Path, &Path)> {
        self.files
            .as_ref()
            .map(|f| (f.seqnums_path.as_path(), f.messages_path.as_path()))
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        // Best effort: a store that cannot write has already made its
        // session drop the connection.
        let _ = self.flush();
    }
}

/// Writes `n` as 20 zero-padded decimal digits (the width of `u64::MAX`),
/// so the sequence numbers file is rewritten in place at a fixed length.
fn write_padded(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
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
        let mut s = MessageStore::open(dir.path(), "FIX.4.4-ISLD-TW44").unwrap();
        assert_eq!((s.next_sender(), s.next_target()), (3, 7));
        let got = s.range(1, 5).unwrap();
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
        assert_eq!(s.range(1, 10).unwrap().len(), 1);
        s.save(2, 30, None).unwrap();
        drop(s);
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!(
            s.range(1, 10)
                .unwrap()
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
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!((s.next_sender(), s.next_target()), (1, 1));
        assert!(s.range(1, 10).unwrap().is_empty());
    }

    #[test]
    fn writes_wait_for_flush_and_resends_read_back_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        let (seqnums_path, messages_path) = {
            let (a, b) = s.paths().unwrap();
            (a.to_path_buf(), b.to_path_buf())
        };
        let mut sent = Vec::new();
        for seq in 1..=50u64 {
            let mut m = OutMessage::new("8");
            m.set_uint(14, seq).set(11, format!("order-{seq}"));
            s.save(seq, seq as i64 * 10, (seq % 5 != 0).then(|| m.clone()))
                .unwrap();
            s.set_next_sender(seq + 1).unwrap();
            sent.push(m);
        }
        // Nothing reaches the files before the flush the event loop calls
        // ahead of writing the session's bytes to its socket.
        assert_eq!(std::fs::metadata(&messages_path).unwrap().len(), 0);
        assert_eq!(std::fs::read(&seqnums_path).unwrap(), b"");
        s.flush().unwrap();
        assert!(std::fs::metadata(&messages_path).unwrap().len() > 0);
        assert_eq!(
            std::fs::read_to_string(&seqnums_path).unwrap(),
            format!("{:020} {:020}\n", 51, 1)
        );
        // A resend reads the records back from the file, in order.
        let got = s.range(3, 12).unwrap();
        assert_eq!(
            got.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (3..=12).collect::<Vec<_>>()
        );
        for m in &got {
            let expected = (m.seq % 5 != 0).then(|| sent[m.seq as usize - 1].clone());
            assert_eq!(m.message, expected, "seq {}", m.seq);
            assert_eq!(m.sending_time, m.seq as i64 * 10);
        }
        // Saved but not flushed: a resend still sees it (range flushes),
        // and dropping the store writes what is left.
        s.save(51, 510, None).unwrap();
        assert_eq!(s.range(51, 51).unwrap().len(), 1);
        s.save(52, 520, Some(sent[0].clone())).unwrap();
        s.set_next_sender(53).unwrap();
        drop(s);
        let mut s = MessageStore::open(dir.path(), "s").unwrap();
        assert_eq!(s.next_sender(), 53);
        let all = s.range(1, 100).unwrap();
        assert_eq!(all.len(), 52);
        assert_eq!(all[51].message.as_ref(), Some(&sent[0]));
    }

    #[test]
    fn an_in_memory_store_keeps_records_across_chunks() {
        let mut s = MessageStore::in_memory();
        let mut big = OutMessage::new("8");
        big.set(58, "x".repeat(CHUNK / 3));
        for seq in 1..=10u64 {
            s.save(seq, 0, Some(big.clone())).unwrap();
        }
        let got = s.range(1, 10).unwrap();
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|m| m.message.as_ref() == Some(&big)));
        // A record larger than a chunk gets one of its own.
        let mut huge = OutMessage::new("8");
        huge.set(58, "y".repeat(CHUNK + 10));
        s.save(11, 0, Some(huge.clone())).unwrap();
        assert_eq!(s.range(11, 11).unwrap()[0].message.as_ref(), Some(&huge));
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
