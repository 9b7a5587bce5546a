//! The engine is a pure function of (state, command): the same stream gives
//! the same event bytes and the same state digest, every time.

use ringex_core::records::*;

use crate::stream::{generate, Stream, StreamConfig};
use crate::support::*;

/// Applies the stream to a fresh engine (invariants checked after every
/// command); returns every event and the final digest.
fn replay(stream: &Stream) -> (Vec<Event>, u64) {
    let mut h = Harness::empty();
    let mut all = Vec::new();
    for cmd in stream.setup.iter().chain(&stream.commands) {
        h.apply_raw(cmd);
        all.extend_from_slice(h.last_raw());
    }
    (all, h.engine.state_digest())
}

#[test]
fn the_same_stream_applied_to_two_fresh_engines_gives_byte_identical_events_and_digests() {
    let stream = generate(StreamConfig {
        settle_at: Some(25_000),
        ..StreamConfig::new(42, 30_000)
    });
    let (a, digest_a) = replay(&stream);
    let (b, digest_b) = replay(&stream);
    let bytes_a: &[u8] = bytemuck::cast_slice::<Event, u8>(&a);
    let bytes_b: &[u8] = bytemuck::cast_slice::<Event, u8>(&b);
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!("first divergence at event {i}: {:?} vs {:?}", a[i], b[i]);
    }
    assert_eq!(a.len(), b.len());
    assert!(bytes_a == bytes_b);
    assert_eq!(digest_a, digest_b);
    // The generator's own engine agrees too.
    assert_eq!(digest_a, stream.final_digest);
    // The stream was a real workout, including the settlement.
    let s = stream.stats;
    assert!(
        s.trades > 3_000 && s.expired > 100 && s.triggers > 100,
        "{s:?}"
    );
    assert!(a.iter().any(|e| e.kind == EventKind::MarketSettled as u8));
}

#[test]
fn different_streams_give_different_digests() {
    let one = generate(StreamConfig::new(1, 3_000));
    let two = generate(StreamConfig::new(2, 3_000));
    assert_ne!(one.final_digest, two.final_digest);
    let (_, digest) = replay(&one);
    assert_eq!(digest, one.final_digest);
}

#[test]
fn a_state_digest_command_reports_the_engines_digest_and_changes_nothing() {
    let mut h = Harness::markets();
    h.place(yes(1, 1, Side::Buy, 40, 10));
    h.place(yes(2, 1, Side::Sell, 45, 10));
    h.place(spot(3, 1, Side::Sell, 500, 1));
    let expected = h.engine.state_digest();
    let events = h.ok(Command::state_digest());
    assert_eq!(
        events,
        vec![EventView::StateDigest {
            digest: expected,
            open_orders: 3,
            accounts: 9,
            instruments: 3,
        }]
    );
    assert_eq!(h.engine.state_digest(), expected);
    // Any change of state changes the digest.
    h.ok(Command::deposit(1, CASH, 1));
    assert_ne!(h.engine.state_digest(), expected);
}
