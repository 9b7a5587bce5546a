//! FIX codec: ringex's (`ringex_gateways::fix::message` and `frame`) next
//! to `fefix`'s own tag-value codec (`fefix::tagvalue::{Decoder, Encoder}`,
//! the version the gateway already depends on), on the same messages: a
//! NewOrderSingle as the load generator of `ringex-perf fix` sends it and
//! an ExecutionReport as the exchange answers it.
//!
//! - `decode/<msg>/{ringex,fefix}`: one frame to a decoded message, then
//!   five body fields read back (ClOrdID, Side, Symbol, OrderQty and Price
//!   or ExecType), so both sides do the lookups an application does.
//!   ringex's `Message::parse` owns its frame, so its figure includes
//!   copying the bytes; it also splits header/body/trailer and nests
//!   groups against the FIX 4.4 dictionary. `fefix`'s decoder checks
//!   BodyLength and CheckSum and indexes every field.
//! - `decode_validate/<msg>/ringex`: ringex's parse plus the dictionary
//!   validation the acceptor runs on every message (fefix has no
//!   equivalent in this version).
//! - `encode/<msg>/{ringex,fefix}`: header and body fields to a complete
//!   frame with BodyLength and CheckSum in a reused buffer. ringex builds an
//!   `OutMessage` and encodes it with QuickFIX's field order; fefix writes
//!   fields as given and zero-pads BodyLength, so the bytes differ: the
//!   bench checks once that both decode to the same field values.
//!
//! ```text
//! cargo bench -p ringex-benches --bench fix_codec -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fefix::tagvalue::{Config, Decoder, Encoder, FieldAccess, FvWrite};
use fefix::Dictionary;
use ringex_gateways::fix::message::{Message, OutMessage};
use ringex_gateways::fix::time::format_timestamp_millis;
use ringex_gateways::fix::validate::validate;
use ringex_gateways::fix::Dictionaries;

/// A fixed SendingTime (ms since the epoch) so every run encodes the same bytes.
const SENDING_TIME: i64 = 1_790_000_000_123;

/// One benchmark message: its type, header identity and body fields.
struct Sample {
    name: &'static str,
    msg_type: &'static str,
    seq: u64,
    sender: &'static str,
    target: &'static str,
    body: Vec<(u32, &'static [u8])>,
    /// [`SENDING_TIME`] as text: ringex's encoder formats the clock value
    /// itself, fefix's is given the text.
    sending_time: String,
    /// The fields read back after decoding.
    read: [u32; 5],
}

fn samples() -> Vec<Sample> {
    vec![
        Sample {
            name: "new_order_single",
            msg_type: "D",
            seq: 1234,
            sender: "PERF0",
            target: "RINGEX",
            body: vec![
                (11, b"123456"),
                (38, b"1"),
                (40, b"2"),
                (44, b"50"),
                (54, b"1"),
                (55, b"PERF0"),
                (59, b"1"),
                (60, b"20260921-14:13:20.123"),
            ],
            read: [11, 54, 55, 38, 44],
            sending_time: format_timestamp_millis(SENDING_TIME),
        },
        Sample {
            name: "execution_report",
            msg_type: "8",
            seq: 2345,
            sender: "RINGEX",
            target: "PERF0",
            body: vec![
                (1, b"1000"),
                (6, b"0"),
                (11, b"123456"),
                (14, b"0"),
                (17, b"246913"),
                (37, b"987654321"),
                (38, b"1"),
                (39, b"0"),
                (54, b"1"),
                (55, b"PERF0"),
                (150, b"0"),
                (151, b"1"),
            ],
            read: [11, 54, 55, 38, 150],
            sending_time: format_timestamp_millis(SENDING_TIME),
        },
    ]
}

fn ringex_encode(s: &Sample, out: &mut Vec<u8>) {
    let mut m = OutMessage::new(s.msg_type);
    for (tag, value) in &s.body {
        m.set(i64::from(*tag), value);
    }
    m.encode("FIX.4.4", s.seq, s.sender, s.target, SENDING_TIME, out);
}

fn fefix_encode(s: &Sample, encoder: &mut Encoder<Config>, out: &mut Vec<u8>) -> usize {
    let seq = s.seq.to_string();
    let mut m = encoder.start_message(b"FIX.4.4", out, s.msg_type.as_bytes());
    m.set_fv(&34u32, seq.as_bytes());
    m.set_fv(&49u32, s.sender.as_bytes());
    m.set_fv(&52u32, s.sending_time.as_bytes());
    m.set_fv(&56u32, s.target.as_bytes());
    for (tag, value) in &s.body {
        m.set_fv(tag, *value);
    }
    m.wrap().len()
}

/// Field values of `frame` as ringex decodes them.
fn ringex_fields(frame: &[u8], tags: &[u32]) -> Vec<Option<Vec<u8>>> {
    let d = Dictionaries::shared();
    let m = Message::parse(frame.to_vec(), &d.fix44).expect("ringex decodes the frame");
    tags.iter()
        .map(|&t| {
            m.header_value(i64::from(t))
                .or_else(|| m.body_value(i64::from(t)))
                .map(<[u8]>::to_vec)
        })
        .collect()
}

/// Field values of `frame` as fefix decodes them.
fn fefix_fields(frame: &[u8], tags: &[u32]) -> Vec<Option<Vec<u8>>> {
    let mut decoder = Decoder::<Config>::new(Dictionary::fix44());
    let m = decoder.decode(frame).expect("fefix decodes the frame");
    tags.iter()
        .map(|t| m.fv_raw(t).map(<[u8]>::to_vec))
        .collect()
}

/// Both codecs agree on every field of both encodings before anything is timed.
fn check(s: &Sample) -> Vec<u8> {
    let mut ours = Vec::new();
    ringex_encode(s, &mut ours);
    let mut theirs = Vec::new();
    fefix_encode(s, &mut Encoder::<Config>::default(), &mut theirs);
    let mut tags: Vec<u32> = vec![35, 34, 49, 52, 56];
    tags.extend(s.body.iter().map(|(t, _)| *t));
    let expected = ringex_fields(&ours, &tags);
    assert!(
        expected.iter().all(Option::is_some),
        "{}: a field is missing",
        s.name
    );
    for (who, frame) in [("ringex", &ours), ("fefix", &theirs)] {
        assert_eq!(
            ringex_fields(frame, &tags),
            expected,
            "{}: ringex decoding {who}'s bytes",
            s.name
        );
        assert_eq!(
            fefix_fields(frame, &tags),
            expected,
            "{}: fefix decoding {who}'s bytes",
            s.name
        );
    }
    ours
}

fn codec(c: &mut Criterion) {
    let dicts = Dictionaries::shared();
    for s in samples() {
        let frame = check(&s);
        let mut group = c.benchmark_group(format!("fix_codec/{}", s.name));
        group.throughput(criterion::Throughput::Bytes(frame.len() as u64));
        group.bench_function("decode/ringex", |b| {
            b.iter(|| {
                let m = Message::parse(black_box(&frame).clone(), &dicts.fix44).expect("valid");
                let mut n = 0;
                for t in s.read {
                    n += m.body_value(i64::from(t)).map_or(0, <[u8]>::len);
                }
                black_box(n)
            })
        });
        let mut decoder = Decoder::<Config>::new(Dictionary::fix44());
        group.bench_function("decode/fefix", |b| {
            b.iter(|| {
                let m = decoder.decode(black_box(&frame[..])).expect("valid");
                let mut n = 0;
                for t in s.read {
                    n += m.fv_raw(&t).map_or(0, <[u8]>::len);
                }
                black_box(n)
            })
        });
        group.bench_function("decode_validate/ringex", |b| {
            b.iter(|| {
                let m = Message::parse(black_box(&frame).clone(), &dicts.fix44).expect("valid");
                validate(&m, &dicts.fix44).expect("valid");
                black_box(m.body_value(11).map_or(0, <[u8]>::len))
            })
        });
        let mut out = Vec::with_capacity(512);
        group.bench_function("encode/ringex", |b| {
            b.iter(|| {
                out.clear();
                ringex_encode(black_box(&s), &mut out);
                black_box(out.len())
            })
        });
        let mut encoder = Encoder::<Config>::default();
        group.bench_function("encode/fefix", |b| {
            b.iter(|| {
                out.clear();
                black_box(fefix_encode(black_box(&s), &mut encoder, &mut out))
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = codec
}
criterion_main!(benches);
