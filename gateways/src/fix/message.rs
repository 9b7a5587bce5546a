//! Decoding a cut frame into a structured message, and encoding outbound
//! messages.
//!
//! Decoding ([`Message::parse`]) checks what makes a frame garbled, the
//! cases a FIX engine ignores without a reply: a field without `=`, a
//! non-numeric tag, the first three fields not 8, 9, 35, a BodyLength or
//! CheckSum that does not match. It splits the fields into header, body and
//! trailer, nests repeating groups as the dictionary describes them (the
//! QuickFIX rule: an entry starts at the delimiter or at a repeated member,
//! and the group ends at the first non-member), reads length-prefixed data
//! fields by length, and remembers the first field found out of its
//! section (a header field after the body, a body field after the trailer)
//! for the validator.
//!
//! Encoding ([`OutMessage::encode`]) writes the header as 8, 9, 35, then the
//! other header fields in tag order (34, 49, 52, 56 and any routing fields),
//! the body in tag order with each repeating group kept whole after its
//! count field, and the trailer; BodyLength is written without padding.
//! This is QuickFIX's field order, which the acceptance definitions compare
//! byte for byte.
//!
//! Any thread: plain values.

use super::dictionary::{Group, Protocol};
use super::frame::{checksum, SOH};
use super::time::{write_timestamp_millis, Millis};

/// One field: its tag and where its value lies in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPos {
    /// The tag as written (may be 0 or negative in a bad message).
    pub tag: i64,
    /// Value start offset in the frame.
    pub start: u32,
    /// Value end offset (exclusive).
    pub end: u32,
}

/// Fields at one level, with the repeating groups found at that level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    /// Fields in arrival order (group count fields included).
    pub fields: Vec<FieldPos>,
    /// Groups, in arrival order.
    pub groups: Vec<GroupEntries>,
}

/// The entries of one repeating group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupEntries {
    /// The count (NumInGroup) tag.
    pub count_tag: i64,
    /// The entries as received.
    pub entries: Vec<FieldMap>,
}

impl FieldMap {
    /// The first field with `tag`.
    pub fn get(&self, tag: i64) -> Option<&FieldPos> {
        self.fields.iter().find(|f| f.tag == tag)
    }

    /// The entries of the group counted by `count_tag`.
    pub fn group(&self, count_tag: i64) -> Option<&GroupEntries> {
        self.groups.iter().find(|g| g.count_tag == count_tag)
    }
}

/// Why a frame is garbled (ignored without a reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Garbled {
    /// A field has no `=`.
    #[error("a field has no '='")]
    NoEquals,
    /// A tag is not a number.
    #[error("a tag is not a number")]
    BadTag,
    /// A value is not terminated by SOH.
    #[error("a value is not terminated by SOH")]
    Unterminated,
    /// The first three fields are not 8, 9, 35.
    #[error("the first three fields are not 8, 9, 35")]
    HeaderOrder,
    /// BodyLength does not match the body.
    #[error("BodyLength does not match")]
    BodyLength,
    /// CheckSum is missing, last or wrong.
    #[error("CheckSum is missing or wrong")]
    CheckSum,
}

/// A decoded inbound message. Owns its frame.
#[derive(Debug, Clone)]
pub struct Message {
    raw: Vec<u8>,
    /// Standard header fields.
    pub header: FieldMap,
    /// Body fields.
    pub body: FieldMap,
    /// Standard trailer fields.
    pub trailer: FieldMap,
    /// The first field found outside its section, if any.
    pub out_of_order_tag: Option<i64>,
    msg_type: FieldPos,
}

fn tokenize(raw: &[u8], protocol: Option<&Protocol>) -> Result<Vec<FieldPos>, Garbled> {
    let mut fields = Vec::with_capacity(32);
    let mut pos = 0usize;
    while pos < raw.len() {
        let eq = raw[pos..]
            .iter()
            .position(|&b| b == b'=')
            .map(|p| p + pos)
            .ok_or(Garbled::NoEquals)?;
        let tag_bytes = &raw[pos..eq];
        let digits = tag_bytes.strip_prefix(b"-").unwrap_or(tag_bytes);
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(Garbled::BadTag);
        }
        let magnitude = digits
            .iter()
            .fold(0i64, |a, &b| a * 10 + i64::from(b - b'0'));
        let tag = if digits.len() < tag_bytes.len() {
            -magnitude
        } else {
            magnitude
        };
        let start = eq + 1;
        // A data field's value is as long as the preceding length field says.
        let data_len = protocol.and_then(|p| {
            let prev = fields.last()?;
            let prev: &FieldPos = prev;
            let data_tag = p.data_fields.get(&u32::try_from(prev.tag).ok()?)?;
            if i64::from(*data_tag) != tag {
                return None;
            }
            std::str::from_utf8(&raw[prev.start as usize..prev.end as usize])
                .ok()?
                .parse::<usize>()
                .ok()
        });
        let end = match data_len {
            Some(n) if start + n < raw.len() && raw[start + n] == SOH => start + n,
            _ => raw[start..]
                .iter()
                .position(|&b| b == SOH)
                .map(|p| p + start)
                .ok_or(Garbled::Unterminated)?,
        };
        fields.push(FieldPos {
            tag,
            start: start as u32,
            end: end as u32,
        });
        pos = end + 1;
    }
    Ok(fields)
}

fn parse_group(
    fields: &[FieldPos],
    i: &mut usize,
    count_tag: i64,
    spec: &Group,
    into: &mut FieldMap,
) {
    let mut entries: Vec<FieldMap> = Vec::new();
    let mut current: Option<FieldMap> = None;
    while *i < fields.len() {
        let f = fields[*i];
        let member = u32::try_from(f.tag).is_ok_and(|t| spec.layout.fields.contains(&t));
        let starts_entry = f.tag == i64::from(spec.delimiter)
            || (member && current.as_ref().is_none_or(|c| c.get(f.tag).is_some()));
        if starts_entry {
            if let Some(done) = current.take() {
                entries.push(done);
            }
            current = Some(FieldMap::default());
        } else if !member {
            break;
        }
        let Some(entry) = current.as_mut() else {
            break;
        };
        entry.fields.push(f);
        *i += 1;
        if let Some(nested) = u32::try_from(f.tag)
            .ok()
            .and_then(|t| spec.layout.groups.get(&t))
        {
            parse_group(fields, i, f.tag, nested, entry);
        }
    }
    if let Some(done) = current.take() {
        entries.push(done);
    }
    into.groups.push(GroupEntries { count_tag, entries });
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Section {
    Header,
    Body,
    Trailer,
}

impl Message {
    /// Decodes a frame without a dictionary: fields go to the body except
    /// 8, 9, 35 and 10, and groups are not nested. Enough to find the
    /// session a first message is for.
    pub fn parse_loose(raw: Vec<u8>) -> Result<Self, Garbled> {
        Self::parse_inner(raw, None)
    }

    /// Decodes a frame against a protocol's dictionaries.
    pub fn parse(raw: Vec<u8>, protocol: &Protocol) -> Result<Self, Garbled> {
        Self::parse_inner(raw, Some(protocol))
    }

    fn parse_inner(raw: Vec<u8>, protocol: Option<&Protocol>) -> Result<Self, Garbled> {
        let fields = tokenize(&raw, protocol)?;
        if fields.len() < 4 || fields[0].tag != 8 || fields[1].tag != 9 || fields[2].tag != 35 {
            return Err(Garbled::HeaderOrder);
        }
        // Trailer checks: the frame ends with the CheckSum field.
        let last = fields[fields.len() - 1];
        if last.tag != 10 {
            return Err(Garbled::CheckSum);
        }
        let body_start = fields[1].end as usize + 1;
        let trailer_start = last.start as usize - 3;
        let declared = parse_uint(&raw[fields[1].start as usize..fields[1].end as usize]);
        if declared != Some((trailer_start - body_start) as u64) {
            return Err(Garbled::BodyLength);
        }
        let sum = parse_uint(&raw[last.start as usize..last.end as usize]);
        if sum != Some(u64::from(checksum(&raw[..trailer_start]))) {
            return Err(Garbled::CheckSum);
        }
        let msg_type = fields[2];
        let msg_type_bytes = &raw[msg_type.start as usize..msg_type.end as usize];
        let body_layout = protocol.and_then(|p| {
            std::str::from_utf8(msg_type_bytes)
                .ok()
                .and_then(|t| p.body_dictionary(msg_type_bytes).messages.get(t))
                .map(|m| &m.layout)
        });
        let mut header = FieldMap::default();
        let mut body = FieldMap::default();
        let mut trailer = FieldMap::default();
        let mut out_of_order_tag = None;
        let mut section = Section::Header;
        let mut i = 0;
        while i < fields.len() {
            let f = fields[i];
            i += 1;
            let is_header = match protocol {
                Some(p) => p.is_header_tag(f.tag),
                None => matches!(f.tag, 8 | 9 | 35 | 34 | 43 | 49 | 52 | 56 | 97 | 122),
            };
            let is_trailer = matches!(f.tag, 10 | 89 | 93);
            if is_header {
                if section != Section::Header && out_of_order_tag.is_none() {
                    out_of_order_tag = Some(f.tag);
                }
                header.fields.push(f);
                if let Some(g) = protocol.and_then(|p| {
                    u32::try_from(f.tag)
                        .ok()
                        .and_then(|t| p.session.header.groups.get(&t))
                }) {
                    parse_group(&fields, &mut i, f.tag, g, &mut header);
                }
            } else if is_trailer {
                section = Section::Trailer;
                trailer.fields.push(f);
            } else {
                if section == Section::Trailer && out_of_order_tag.is_none() {
                    out_of_order_tag = Some(f.tag);
                }
                section = Section::Body;
                body.fields.push(f);
                if let Some(g) = body_layout
                    .and_then(|l| u32::try_from(f.tag).ok().and_then(|t| l.groups.get(&t)))
                {
                    parse_group(&fields, &mut i, f.tag, g, &mut body);
                }
            }
        }
        Ok(Self {
            raw,
            header,
            body,
            trailer,
            out_of_order_tag,
            msg_type,
        })
    }

    /// The frame as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Consumes the message, returning its frame.
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The value of a field.
    pub fn value(&self, f: &FieldPos) -> &[u8] {
        &self.raw[f.start as usize..f.end as usize]
    }

    /// MsgType (35).
    pub fn msg_type(&self) -> &[u8] {
        self.value(&self.msg_type)
    }

    /// BeginString (8).
    pub fn begin_string(&self) -> &[u8] {
        self.header_value(8).unwrap_or_default()
    }

    /// The first header field with `tag`.
    pub fn header_value(&self, tag: i64) -> Option<&[u8]> {
        self.header.get(tag).map(|f| self.value(f))
    }

    /// The first top-level body field with `tag`.
    pub fn body_value(&self, tag: i64) -> Option<&[u8]> {
        self.body.get(tag).map(|f| self.value(f))
    }

    /// A header or body field as text.
    pub fn str_value(&self, tag: i64) -> Option<&str> {
        self.header_value(tag)
            .or_else(|| self.body_value(tag))
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A header field as an unsigned integer (MsgSeqNum and the like).
    pub fn header_uint(&self, tag: i64) -> Option<u64> {
        self.header_value(tag).and_then(parse_uint)
    }

    /// A body field as an unsigned integer.
    pub fn body_uint(&self, tag: i64) -> Option<u64> {
        self.body_value(tag).and_then(parse_uint)
    }

    /// A header flag (`Y`) such as PossDupFlag.
    pub fn header_flag(&self, tag: i64) -> bool {
        self.header_value(tag) == Some(b"Y")
    }

    /// Appends the body to `out` as `tag=value<SOH>` blocks, sorted by
    /// tag, each repeating group following its count field; ready to be
    /// sent back.
    pub fn copy_body_to(&self, out: &mut OutMessage) {
        fn write_map(msg: &Message, map: &FieldMap, out: &mut Vec<u8>) {
            for f in &map.fields {
                write_field_raw(out, f.tag, msg.value(f));
                if let Some(g) = map.group(f.tag) {
                    for e in &g.entries {
                        write_map(msg, e, out);
                    }
                }
            }
        }
        let mut fields: Vec<&FieldPos> = self.body.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        let mut block = Vec::new();
        for f in fields {
            block.clear();
            write_field_raw(&mut block, f.tag, self.value(f));
            if let Some(g) = self.body.group(f.tag) {
                for e in &g.entries {
                    write_map(self, e, &mut block);
                }
            }
            out.push_block(f.tag, &block);
        }
    }
}

/// Parses a non-empty run of ASCII digits.
pub fn parse_uint(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u64, |a, &b| a * 10 + u64::from(b - b'0')),
    )
}

fn write_field_raw(out: &mut Vec<u8>, tag: i64, value: &[u8]) {
    write_int(out, tag);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(SOH);
}

/// Appends the decimal digits of `v` (with a '-' when negative), without
/// the allocation of `to_string`: every field of every outbound message
/// goes through here.
fn write_int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 20];
    out.extend_from_slice(crate::text::decimal_digits(v.unsigned_abs(), &mut buf));
}

/// The length of `v` written by [`write_int`].
fn int_len(v: i64) -> usize {
    let mut n = v.unsigned_abs();
    let mut len = usize::from(v < 0) + 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// The MsgTypes the gateway sends, as static strings.
fn static_msg_type(msg_type: &str) -> Option<&'static str> {
    const SENT: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "A", "8", "9", "j", "r", "W", "X", "Y", "y", "B",
    ];
    SENT.iter().copied().find(|t| *t == msg_type)
}

/// An outbound message before the session fills in its header.
///
/// The body is kept encoded, block after block, in one buffer with a small
/// index of (tag, end offset): building an ExecutionReport costs a few
/// allocations, not one per field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutMessage {
    /// MsgType (35); the types this gateway sends are borrowed, not copied.
    pub msg_type: std::borrow::Cow<'static, str>,
    /// Header fields besides 8, 9, 35, 34, 49, 52, 56 (routing fields,
    /// PossDupFlag, OrigSendingTime, ...).
    pub header: Vec<(i64, Vec<u8>)>,
    /// Body blocks back to back: `tag=value<SOH>`, a group count field
    /// followed by its entries.
    body: Vec<u8>,
    /// (tag, end of its block in `body`) per block, in insertion order;
    /// a block starts where the one before it ends.
    blocks: Vec<(i64, u32)>,
}

impl OutMessage {
    /// An empty message of `msg_type`.
    pub fn new(msg_type: &str) -> Self {
        Self {
            msg_type: static_msg_type(msg_type)
                .map_or_else(|| msg_type.to_string().into(), std::borrow::Cow::Borrowed),
            header: Vec::new(),
            // Room for an ExecutionReport without growing.
            body: Vec::with_capacity(256),
            blocks: Vec::with_capacity(16),
        }
    }

    /// The body blocks as (tag, `tag=value<SOH>` bytes), in insertion order.
    pub fn body_blocks(&self) -> impl ExactSizeIterator<Item = (i64, &[u8])> + Clone + '_ {
        self.blocks.iter().enumerate().map(|(i, &(tag, end))| {
            let start = if i == 0 { 0 } else { self.blocks[i - 1].1 };
            (tag, &self.body[start as usize..end as usize])
        })
    }

    /// Appends an encoded block (`tag=value<SOH>`, or a group count field
    /// and its entries) as it is; the caller keeps tags unique.
    pub fn push_block(&mut self, tag: i64, block: &[u8]) -> &mut Self {
        self.body.extend_from_slice(block);
        self.blocks.push((tag, self.body.len() as u32));
        self
    }

    /// Removes the block of `tag`, if there is one.
    fn remove_block(&mut self, tag: i64) {
        let Some(i) = self.blocks.iter().position(|b| b.0 == tag) else {
            return;
        };
        let start = if i == 0 { 0 } else { self.blocks[i - 1].1 };
        let end = self.blocks[i].1;
        self.body.drain(start as usize..end as usize);
        self.blocks.remove(i);
        for b in &mut self.blocks[i..] {
            b.1 -= end - start;
        }
    }

    /// Adds (or replaces) a body field.
    pub fn set(&mut self, tag: i64, value: impl AsRef<[u8]>) -> &mut Self {
        self.remove_block(tag);
        write_field_raw(&mut self.body, tag, value.as_ref());
        self.blocks.push((tag, self.body.len() as u32));
        self
    }

    /// Adds (or replaces) a body field with an unsigned integer value,
    /// written without an intermediate string.
    pub fn set_uint(&mut self, tag: i64, value: u64) -> &mut Self {
        self.remove_block(tag);
        write_int(&mut self.body, tag);
        self.body.push(b'=');
        let mut digits = [0u8; 20];
        self.body
            .extend_from_slice(crate::text::decimal_digits(value, &mut digits));
        self.body.push(SOH);
        self.blocks.push((tag, self.body.len() as u32));
        self
    }

    /// Adds (or replaces) a body field with a signed integer value, written
    /// without an intermediate string.
    pub fn set_int(&mut self, tag: i64, value: i64) -> &mut Self {
        if value >= 0 {
            return self.set_uint(tag, value as u64);
        }
        self.remove_block(tag);
        write_int(&mut self.body, tag);
        self.body.extend_from_slice(b"=-");
        let mut digits = [0u8; 20];
        self.body.extend_from_slice(crate::text::decimal_digits(
            value.unsigned_abs(),
            &mut digits,
        ));
        self.body.push(SOH);
        self.blocks.push((tag, self.body.len() as u32));
        self
    }

    /// Adds (or replaces) a header field.
    pub fn set_header(&mut self, tag: i64, value: impl AsRef<[u8]>) -> &mut Self {
        if let Some(h) = self.header.iter_mut().find(|h| h.0 == tag) {
            h.1 = value.as_ref().to_vec();
        } else {
            self.header.push((tag, value.as_ref().to_vec()));
        }
        self
    }

    /// Removes a header field.
    pub fn remove_header(&mut self, tag: i64) {
        self.header.retain(|h| h.0 != tag);
    }

    /// Adds a body field followed by the entries of a repeating group,
    /// each entry a list of (tag, value) in order.
    pub fn set_group(&mut self, count_tag: i64, entries: &[Vec<(i64, Vec<u8>)>]) -> &mut Self {
        self.remove_block(count_tag);
        let body = &mut self.body;
        write_int(body, count_tag);
        body.push(b'=');
        write_int(body, entries.len() as i64);
        body.push(SOH);
        for e in entries {
            for (t, v) in e {
                write_field_raw(body, *t, v);
            }
        }
        self.blocks.push((count_tag, self.body.len() as u32));
        self
    }

    /// Encodes the message: header 8, 9, 35, then 34, 49, 52, 56 and the
    /// other header fields in tag order, the body in tag order, CheckSum.
    pub fn encode(
        &self,
        begin_string: &str,
        seq: u64,
        sender: &str,
        target: &str,
        sending_time: Millis,
        out: &mut Vec<u8>,
    ) {
        // Header fields after 35, in tag order. Without extra header
        // fields (every ExecutionReport) nothing is allocated: the four
        // standard fields are already in order.
        const TIME_LEN: usize = "YYYYMMDD-HH:MM:SS.sss".len();
        let seq = seq as i64;
        let extras = self
            .header
            .iter()
            .filter(|(t, _)| !matches!(t, 8 | 9 | 10 | 35 | 34 | 49 | 52 | 56));
        let sorted_header = extras.clone().next().is_some().then(|| {
            let mut h: Vec<(i64, &[u8])> = extras.map(|(t, v)| (*t, v.as_slice())).collect();
            h.extend([
                (34, &[][..]),
                (49, sender.as_bytes()),
                (52, &[][..]),
                (56, target.as_bytes()),
            ]);
            h.sort_by_key(|h| h.0);
            h
        });
        // The body in tag order; `OutMessage::set` keeps insertion order,
        // which is usually sorted already (then the buffer goes out as is).
        let sorted_body = (!self.blocks.is_sorted_by_key(|b| b.0)).then(|| {
            let mut body: Vec<(i64, &[u8])> = self.body_blocks().collect();
            body.sort_by_key(|b| b.0);
            body
        });
        let field_len = |tag: i64, value_len: usize| int_len(tag) + value_len + 2;
        let mut body_len = field_len(35, self.msg_type.len())
            + field_len(34, int_len(seq))
            + field_len(49, sender.len())
            + field_len(52, TIME_LEN)
            + field_len(56, target.len());
        if let Some(h) = &sorted_header {
            body_len += h
                .iter()
                .filter(|(t, _)| !matches!(t, 34 | 49 | 52 | 56))
                .map(|(t, v)| field_len(*t, v.len()))
                .sum::<usize>();
        }
        body_len += self.body.len();

        let start = out.len();
        out.reserve(body_len + begin_string.len() + 32);
        out.extend_from_slice(b"8=");
        out.extend_from_slice(begin_string.as_bytes());
        out.push(SOH);
        out.extend_from_slice(b"9=");
        write_int(out, body_len as i64);
        out.push(SOH);
        let body_start = out.len();
        write_field_raw(out, 35, self.msg_type.as_bytes());
        let write_header = |out: &mut Vec<u8>, tag: i64, value: &[u8]| match tag {
            34 => {
                out.extend_from_slice(b"34=");
                write_int(out, seq);
                out.push(SOH);
            }
            52 => {
                out.extend_from_slice(b"52=");
                write_timestamp_millis(out, sending_time);
                out.push(SOH);
            }
            _ => write_field_raw(out, tag, value),
        };
        match &sorted_header {
            Some(h) => {
                for (t, v) in h {
                    write_header(out, *t, v);
                }
            }
            None => {
                write_header(out, 34, &[]);
                write_header(out, 49, sender.as_bytes());
                write_header(out, 52, &[]);
                write_header(out, 56, target.as_bytes());
            }
        }
        match &sorted_body {
            Some(blocks) => {
                for (_, block) in blocks {
                    out.extend_from_slice(block);
                }
            }
            None => out.extend_from_slice(&self.body),
        }
        debug_assert_eq!(out.len() - body_start, body_len);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(b"10=");
        out.push(b'0' + sum / 100);
        out.push(b'0' + sum / 10 % 10);
        out.push(b'0' + sum % 10);
        out.push(SOH);
    }
}

#[cfg(test)]
mod tests {
    use super::super::dictionary::Dictionaries;
    use super::*;

    fn frame(body_fields: &str) -> Vec<u8> {
        let body = body_fields.replace('|', "\x01");
        let mut out = format!("8=FIX.4.4\x019={}\x01{}", body.len(), body).into_bytes();
        let sum = checksum(&out);
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        out
    }

    #[test]
    fn encodes_header_in_quickfix_order_without_padding() {
        let mut m = OutMessage::new("0");
        m.set(112, "HELLO");
        m.set_header(128, "JCD");
        let mut out = Vec::new();
        m.encode("FIX.4.4", 2, "ISLD", "TW44", 0, &mut out);
        let text = String::from_utf8(out.clone()).unwrap().replace('\x01', "|");
        assert!(
            text.starts_with(
                "8=FIX.4.4|9=69|35=0|34=2|49=ISLD|52=19700101-00:00:00.000|56=TW44|128=JCD|112=HELLO|10="
            ),
            "{text}"
        );
        let d = Dictionaries::shared();
        let parsed = Message::parse(out, &d.fix44).unwrap();
        assert_eq!(parsed.body_value(112), Some(&b"HELLO"[..]));
    }

    #[test]
    fn garbled_frames_are_named() {
        let d = Dictionaries::shared();
        let good = frame("35=0|34=2|49=A|52=20240101-00:00:00|56=B|");
        assert!(Message::parse(good.clone(), &d.fix44).is_ok());
        let mut bad_sum = good.clone();
        let n = bad_sum.len();
        bad_sum[n - 2] = if bad_sum[n - 2] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            Message::parse(bad_sum, &d.fix44).unwrap_err(),
            Garbled::CheckSum
        );
        let mut bad_len = good.clone();
        bad_len[12] = b'9';
        assert!(Message::parse(bad_len, &d.fix44).is_err());
        let out_of_order = frame("34=2|35=0|49=A|52=20240101-00:00:00|56=B|");
        assert_eq!(
            Message::parse(out_of_order, &d.fix44).unwrap_err(),
            Garbled::HeaderOrder
        );
        let bad_tag = frame("35=0|4x9=A|");
        assert_eq!(
            Message::parse(bad_tag, &d.fix44).unwrap_err(),
            Garbled::BadTag
        );
    }

    #[test]
    fn groups_nest_and_echo_in_tag_order() {
        let d = Dictionaries::shared();
        let m = Message::parse(
            frame("35=D|34=2|49=A|52=20240101-00:00:00|56=B|55=X|386=2|336=P|336=Q|11=ID|"),
            &d.fix44,
        )
        .unwrap();
        let g = m.body.group(386).unwrap();
        assert_eq!(g.entries.len(), 2);
        let mut echo = OutMessage::new("D");
        m.copy_body_to(&mut echo);
        let blocks: Vec<String> = echo
            .body_blocks()
            .map(|(_, b)| String::from_utf8(b.to_vec()).unwrap().replace('\x01', "|"))
            .collect();
        assert_eq!(blocks, vec!["11=ID|", "55=X|", "386=2|336=P|336=Q|"]);
    }

    #[test]
    fn set_replaces_a_field_in_place_of_the_old_and_the_body_goes_out_in_tag_order() {
        let mut m = OutMessage::new("8");
        m.set(55, "X")
            .set_uint(14, 3)
            .set(11, "A")
            .set(55, "LONGER")
            .set_uint(14, 12);
        let blocks: Vec<(i64, &[u8])> = m.body_blocks().collect();
        assert_eq!(
            blocks,
            vec![
                (11, &b"11=A\x01"[..]),
                (55, b"55=LONGER\x01"),
                (14, b"14=12\x01")
            ]
        );
        let mut same = OutMessage::new("8");
        same.set(11, "A").set(55, "LONGER").set(14, "12");
        assert_eq!(m, same, "one canonical form whatever the order of sets");
        let mut out = Vec::new();
        m.encode("FIX.4.4", 1, "S", "T", 0, &mut out);
        let text = String::from_utf8(out).unwrap().replace('\x01', "|");
        assert!(text.contains("|56=T|11=A|14=12|55=LONGER|10="), "{text}");
    }

    #[test]
    fn integers_are_written_as_their_decimal_text() {
        for value in [0i64, 7, 99, -1, -100, i64::MAX, i64::MIN] {
            let mut m = OutMessage::new("8");
            m.set_int(31, value);
            let mut by_text = OutMessage::new("8");
            by_text.set(31, value.to_string());
            assert_eq!(m, by_text, "{value}");
        }
        let mut m = OutMessage::new("8");
        m.set_uint(32, u64::MAX);
        let mut by_text = OutMessage::new("8");
        by_text.set(32, u64::MAX.to_string());
        assert_eq!(m, by_text);
    }

    #[test]
    fn a_header_field_after_the_body_is_remembered() {
        let d = Dictionaries::shared();
        let m = Message::parse(
            frame("35=D|11=id|34=2|49=A|52=20240101-00:00:00|56=B|"),
            &d.fix44,
        )
        .unwrap();
        assert_eq!(m.out_of_order_tag, Some(34));
    }

    #[test]
    fn data_fields_may_contain_soh() {
        let d = Dictionaries::shared();
        let m = Message::parse(
            frame("35=0|34=2|49=A|52=20240101-00:00:00|56=B|95=3|96=a\x01b|"),
            &d.fix44,
        )
        .unwrap();
        assert_eq!(m.body_value(96), Some(&b"a\x01b"[..]));
    }
}
