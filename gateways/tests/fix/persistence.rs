//! Sequence numbers and sent messages survive a gateway restart; a resend
//! after the restart replays application messages with PossDupFlag and
//! OrigSendingTime and gap-fills admin messages. Logon password checks.

use std::time::Duration;

use ringex_gateways::fix::SessionConfig;

use super::support::{field, frame, start_echo_gateway, time_text, Client, Received};

const T: Duration = Duration::from_secs(5);

fn session() -> SessionConfig {
    SessionConfig::new("FIX.4.4", "ISLD", "CLIENT")
}

fn msg(seq: u64, rest: &str) -> Vec<u8> {
    frame(&format!(
        "8=FIX.4.4|35={}|34={seq}|49=CLIENT|52={}|56=ISLD|{}",
        &rest[..rest.find('|').unwrap()],
        time_text(0),
        &rest[rest.find('|').unwrap() + 1..]
    ))
}

#[test]
fn sequence_numbers_and_sent_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let original_echo;
    {
        let gw = start_echo_gateway(vec![session()], Some(dir.path().to_path_buf()));
        let mut c = Client::connect(gw.local_addr());
        c.send(&msg(1, "A|98=0|108=30|"));
        let logon = c.expect_message(T);
        assert_eq!(field(&logon, "34"), Some("1"));
        c.send(&msg(
            2,
            "D|11=ORD1|21=1|40=1|54=1|55=X|60=20240101-00:00:00|",
        ));
        original_echo = c.expect_message(T);
        assert_eq!(field(&original_echo, "35"), Some("D"));
        assert_eq!(field(&original_echo, "34"), Some("2"));
        c.send(&msg(3, "5|"));
        let logout = c.expect_message(T);
        assert_eq!(
            (field(&logout, "35"), field(&logout, "34")),
            (Some("5"), Some("3"))
        );
        assert_eq!(c.receive(T), Received::Closed);
        gw.stop().unwrap();
    }
    let gw = start_echo_gateway(vec![session()], Some(dir.path().to_path_buf()));
    let mut c = Client::connect(gw.local_addr());
    c.send(&msg(4, "A|98=0|108=30|"));
    let logon = c.expect_message(T);
    assert_eq!(
        (field(&logon, "35"), field(&logon, "34")),
        (Some("A"), Some("4")),
        "{logon}"
    );
    c.send(&msg(5, "2|7=1|16=0|"));
    let gap1 = c.expect_message(T);
    assert_eq!(
        (
            field(&gap1, "35"),
            field(&gap1, "34"),
            field(&gap1, "36"),
            field(&gap1, "123")
        ),
        (Some("4"), Some("1"), Some("2"), Some("Y")),
        "{gap1}"
    );
    let resent = c.expect_message(T);
    assert_eq!(
        (field(&resent, "35"), field(&resent, "34")),
        (Some("D"), Some("2")),
        "{resent}"
    );
    assert_eq!(field(&resent, "43"), Some("Y"));
    assert_eq!(
        field(&resent, "122"),
        field(&original_echo, "52"),
        "OrigSendingTime is the first SendingTime"
    );
    assert_eq!(field(&resent, "11"), Some("ORD1"));
    let gap2 = c.expect_message(T);
    assert_eq!(
        (field(&gap2, "35"), field(&gap2, "34"), field(&gap2, "36")),
        (Some("4"), Some("3"), Some("5")),
        "{gap2}"
    );
    // A counterparty that restarted its numbering without a reset is told off.
    drop(c);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Client::connect(gw.local_addr());
    c.send(&msg(1, "A|98=0|108=30|"));
    let logout = c.expect_message(T);
    assert_eq!(field(&logout, "35"), Some("5"));
    assert_eq!(
        field(&logout, "58"),
        Some("MsgSeqNum too low, expecting 6 but received 1")
    );
    assert_eq!(c.receive(T), Received::Closed);
}

#[test]
fn a_logon_with_a_wrong_password_is_refused() {
    let mut config = session();
    config.password = Some("secret".to_string());
    config.reset_on_logon = true;
    let gw = start_echo_gateway(vec![config], None);
    let mut c = Client::connect(gw.local_addr());
    c.send(&msg(1, "A|98=0|108=30|554=wrong|"));
    let logout = c.expect_message(T);
    assert_eq!(field(&logout, "35"), Some("5"));
    assert_eq!(field(&logout, "58"), Some("Invalid password"));
    assert_eq!(c.receive(T), Received::Closed);
    let mut c = Client::connect(gw.local_addr());
    c.send(&msg(1, "A|98=0|108=30|"));
    assert_eq!(
        field(&c.expect_message(T), "35"),
        Some("5"),
        "no password at all"
    );
    let mut c = Client::connect(gw.local_addr());
    c.send(&msg(1, "A|98=0|108=30|554=secret|"));
    let logon = c.expect_message(T);
    assert_eq!(
        (field(&logon, "35"), field(&logon, "34")),
        (Some("A"), Some("1")),
        "{logon}"
    );
}
