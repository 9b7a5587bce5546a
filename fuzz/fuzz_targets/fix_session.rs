//! Fuzz target: a logged-on FIX 4.4 session (echo fixture) fed arbitrary
//! frames. The input is split on `|` into messages; each is sent as is,
//! or, when its first byte is even, read as `<MsgType><SOH><fields>` and
//! completed with a correct header, BodyLength and CheckSum so the fuzzer reaches validation and the
//! state machine quickly. Clock ticks are interleaved.
//!
//! Nothing may panic, and everything the session writes is a sequence of
//! well-formed frames (each cuts and decodes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_gateways::fix::dictionary::Dictionaries;
use ringex_gateways::fix::frame::{checksum, Cut, FrameCutter};
use ringex_gateways::fix::message::Message;
use ringex_gateways::fix::session::{Io, Session, SessionConfig};
use ringex_gateways::fix::store::MessageStore;
use ringex_gateways::fix::time::{format_timestamp_seconds, now_millis};
use ringex_gateways::fix::EchoApplication;

fn complete(body: &[u8], seq: usize) -> Vec<u8> {
    // `body` is "<MsgType><SOH><fields>": the header goes between them.
    let now = format_timestamp_seconds(now_millis());
    let split = body.iter().position(|&b| b == 1).unwrap_or(body.len());
    let mut rest = b"35=".to_vec();
    rest.extend_from_slice(&body[..split]);
    rest.extend_from_slice(format!("\x0134={seq}\x0149=TW\x0152={now}\x0156=ISLD\x01").as_bytes());
    rest.extend_from_slice(body.get(split + 1..).unwrap_or_default());
    let mut out = format!("8=FIX.4.4\x019={}\x01", rest.len()).into_bytes();
    out.extend_from_slice(&rest);
    let sum = checksum(&out);
    out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let dicts = Dictionaries::shared();
    let mut config = SessionConfig::new("FIX.4.4", "ISLD", "TW");
    config.reset_on_logon = true;
    let mut session = Session::new(config, dicts.clone(), MessageStore::in_memory()).unwrap();
    let mut app = EchoApplication::new();
    let mut out = Vec::new();
    let mut now = now_millis();
    let logon = complete(b"A\x0198=0\x01108=1\x01", 1);
    session.on_frame(logon, &mut Io { now, out: &mut out, app: &mut app });
    for (i, chunk) in data.split(|&b| b == b'|').enumerate() {
        if session.wants_disconnect() {
            break;
        }
        let frame = match chunk.first() {
            Some(b) if b % 2 == 0 => complete(&chunk[1..], i + 2),
            _ => chunk.to_vec(),
        };
        session.on_frame(frame, &mut Io { now, out: &mut out, app: &mut app });
        now += 700;
        session.on_tick(&mut Io { now, out: &mut out, app: &mut app });
    }
    let mut cutter = FrameCutter::new(1 << 20);
    cutter.extend(&out);
    loop {
        match cutter.next_frame() {
            Cut::Frame(f) => assert!(Message::parse(f, &dicts.fix44).is_ok()),
            Cut::Dropped(why) => panic!("the session wrote a bad frame: {why}"),
            Cut::NeedMore => break,
        }
    }
    assert_eq!(cutter.buffered(), 0);
});
