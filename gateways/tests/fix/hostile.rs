//! Garbage, truncated and oversized frames streamed at a live session: the
//! gateway, that session and the other sessions stay up.

use std::time::Duration;

use ringex_gateways::fix::SessionConfig;

use super::support::{field, frame, start_echo_gateway, time_text, Client, Received};

const T: Duration = Duration::from_secs(5);

fn sessions() -> Vec<SessionConfig> {
    ["A", "B", "C"]
        .into_iter()
        .map(|who| {
            let mut s = SessionConfig::new("FIX.4.4", "ISLD", who);
            s.reset_on_logon = true;
            s
        })
        .collect()
}

fn msg(who: &str, seq: u64, rest: &str) -> Vec<u8> {
    let (msg_type, body) = rest.split_once('|').unwrap();
    frame(&format!(
        "8=FIX.4.4|35={msg_type}|34={seq}|49={who}|52={}|56=ISLD|{body}",
        time_text(0)
    ))
}

fn logon(addr: std::net::SocketAddr, who: &str) -> Client {
    let mut c = Client::connect(addr);
    c.send(&msg(who, 1, "A|98=0|108=30|"));
    let reply = c.expect_message(T);
    assert_eq!(field(&reply, "35"), Some("A"), "{reply}");
    c
}

fn test_request(c: &mut Client, who: &str, seq: u64, id: &str, our_seq: u64) {
    c.send(&msg(who, seq, &format!("1|112={id}|")));
    let hb = c.expect_message(T);
    assert_eq!(
        (field(&hb, "35"), field(&hb, "34"), field(&hb, "112")),
        (Some("0"), Some(our_seq.to_string().as_str()), Some(id)),
        "{hb}"
    );
}

/// A deterministic byte stream (xorshift), with SOH, '=' and "8=" mixed in
/// so the cutter's every branch is exercised.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        match seed % 16 {
            0 => out.push(1),
            1 => out.push(b'='),
            2 => out.extend_from_slice(b"8=FIX.4.4\x019="),
            3 => out.extend_from_slice(b"\x0110="),
            _ => out.push((seed >> 8) as u8),
        }
    }
    out
}

#[test]
fn garbage_truncated_and_oversized_frames_leave_every_session_up() {
    let gw = start_echo_gateway(sessions(), None);
    let addr = gw.local_addr();
    let mut a = logon(addr, "A");
    let mut b = logon(addr, "B");

    // Garbage, truncated frames and oversized frames at the live session A.
    a.send(&garbage(256 * 1024, 0x9e37_79b9_7f4a_7c15));
    let whole = msg("A", 2, "1|112=LOST|");
    for cut in [5, 12, whole.len() / 2, whole.len() - 2] {
        a.send(&whole[..cut]);
    }
    a.send(b"8=FIX.4.4\x019=999999999\x0135=0\x01");
    a.send(b"8=FIX.4.4\x019=16000\x0135=0\x01");
    a.send(&vec![b'x'; 40 * 1024]);
    // A well-framed message with a wrong CheckSum ends the filler, so a
    // frame still waiting for its trailer ends here and not in the next
    // message (a BodyLength that is too long swallows what follows, as in
    // every FIX engine).
    a.send(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01");
    // The stream is back in step: A still answers, with nothing lost from
    // its sequence numbers.
    test_request(&mut a, "A", 2, "A-ALIVE", 2);
    // B never noticed.
    test_request(&mut b, "B", 2, "B-ALIVE", 2);
    // A new connection can still log on.
    let mut c = logon(addr, "C");
    test_request(&mut c, "C", 2, "C-ALIVE", 2);
}

#[test]
fn garbage_before_logon_closes_only_that_connection() {
    let gw = start_echo_gateway(sessions(), None);
    let addr = gw.local_addr();
    let mut b = logon(addr, "B");
    for seed in 1..=4u64 {
        let mut junk = Client::connect(addr);
        junk.send(&garbage(64 * 1024, seed));
        junk.send(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01");
        assert_eq!(junk.receive(T), Received::Closed, "seed {seed}");
    }
    // An unknown session and a second connection for a logged-on session
    // are closed without a reply.
    let mut stranger = Client::connect(addr);
    stranger.send(&msg("NOBODY", 1, "A|98=0|108=30|"));
    assert_eq!(stranger.receive(T), Received::Closed);
    let mut twin = Client::connect(addr);
    twin.send(&msg("B", 1, "A|98=0|108=30|"));
    assert_eq!(twin.receive(T), Received::Closed);
    test_request(&mut b, "B", 2, "B-ALIVE", 2);
}

#[test]
fn a_flooding_connection_does_not_starve_other_sessions() {
    let gw = start_echo_gateway(sessions(), None);
    let addr = gw.local_addr();
    let mut a = logon(addr, "A");
    let mut b = logon(addr, "B");
    let flood = garbage(1024 * 1024, 7);
    let mut flooder = a.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..8 {
            if flooder.write_all(&flood).is_err() {
                break;
            }
        }
    });
    for i in 0..20u64 {
        test_request(&mut b, "B", 2 + i, &format!("B{i}"), 2 + i);
    }
    writer.join().unwrap();
    // A is still logged on once the flood ends.
    a.send(&vec![b'x'; 40 * 1024]);
    a.send(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01");
    test_request(&mut a, "A", 2, "A-AFTER", 2);
}
