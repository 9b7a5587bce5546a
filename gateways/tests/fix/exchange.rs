//! Order entry through FIX onto the real pipeline: new orders, a fill
//! between two sessions, cancels, and the rejects a client can provoke.

use std::collections::HashMap;
use std::time::Duration;

use ringex_core::pipeline::{OverflowPolicy, Pipeline, PipelineConfig};
use ringex_core::records::{Command, InstrumentSpec};
use ringex_core::EngineConfig;
use ringex_gateways::fix::{
    Dictionaries, ExchangeApplication, FixServer, FixServerConfig, SessionConfig,
};

use super::support::{field, frame, time_text, Client};

const T: Duration = Duration::from_secs(5);

fn session(who: &str, account: &str) -> SessionConfig {
    let mut s = SessionConfig::new("FIX.4.4", "ISLD", who);
    s.reset_on_logon = true;
    s.accounts = vec![account.to_string()];
    s
}

struct Trader {
    client: Client,
    who: &'static str,
    seq: u64,
}

impl Trader {
    fn logon(addr: std::net::SocketAddr, who: &'static str) -> Self {
        let mut t = Trader {
            client: Client::connect(addr),
            who,
            seq: 1,
        };
        t.send("A", "98=0|108=30|");
        assert_eq!(field(&t.receive(), "35"), Some("A"));
        t
    }

    fn send(&mut self, msg_type: &str, body: &str) {
        let now = time_text(0);
        let m = frame(&format!(
            "8=FIX.4.4|35={msg_type}|34={}|49={}|52={now}|56=ISLD|{}",
            self.seq,
            self.who,
            body.replace("<T>", &now)
        ));
        self.seq += 1;
        self.client.send(&m);
    }

    fn receive(&mut self) -> String {
        self.client.expect_message(T)
    }
}

fn check(msg: &str, expected: &[(&str, &str)]) {
    for (tag, value) in expected {
        assert_eq!(field(msg, tag), Some(*value), "tag {tag} in {msg}");
    }
}

#[test]
fn orders_fill_between_sessions_and_cancel_with_execution_reports() {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig::two_core_default(dir.path())
        .with_engine(EngineConfig::small())
        .with_timer(None);
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::DropNewest);
    let mut admin = pipeline.sender();
    for cmd in [
        Command::add_instrument(InstrumentSpec::binary(1, 0)),
        Command::add_account(11),
        Command::add_account(12),
        Command::deposit(11, 0, 1_000_000),
        Command::deposit(12, 0, 1_000_000),
    ] {
        admin.try_submit(cmd).unwrap();
    }
    let symbols: HashMap<String, u32> = [("RAIN".to_string(), 1)].into_iter().collect();
    let app = ExchangeApplication::new(pipeline.sender(), sink.receiver.clone(), symbols);
    let gateway = FixServer::spawn(
        FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 16 * 1024,
            order_capacity: 1024,
            sessions: vec![session("BUYER", "11"), session("SELLER", "12")],
        },
        Dictionaries::shared(),
        app,
    )
    .unwrap();
    let addr = gateway.local_addr();
    let mut buyer = Trader::logon(addr, "BUYER");
    let mut seller = Trader::logon(addr, "SELLER");

    buyer.send("D", "11=B1|21=1|38=10|40=2|44=40|54=1|55=RAIN|59=1|60=<T>|");
    let new = buyer.receive();
    check(
        &new,
        &[
            ("35", "8"),
            ("150", "0"),
            ("39", "0"),
            ("11", "B1"),
            ("151", "10"),
            ("1", "11"),
        ],
    );

    seller.send("D", "11=S1|21=1|38=4|40=2|44=40|54=2|55=RAIN|59=1|60=<T>|");
    check(
        &seller.receive(),
        &[("35", "8"), ("150", "0"), ("11", "S1")],
    );
    let fill = seller.receive();
    check(
        &fill,
        &[
            ("150", "F"),
            ("39", "2"),
            ("14", "4"),
            ("151", "0"),
            ("31", "40"),
            ("32", "4"),
            ("6", "40.0000"),
        ],
    );
    let partial = buyer.receive();
    check(
        &partial,
        &[
            ("150", "F"),
            ("39", "1"),
            ("14", "4"),
            ("151", "6"),
            ("11", "B1"),
        ],
    );

    buyer.send("F", "11=C1|41=B1|54=1|55=RAIN|60=<T>|");
    let cancelled = buyer.receive();
    check(
        &cancelled,
        &[
            ("150", "4"),
            ("39", "4"),
            ("11", "C1"),
            ("41", "B1"),
            ("14", "4"),
            ("151", "0"),
        ],
    );

    buyer.send("F", "11=C2|41=NOPE|54=1|55=RAIN|60=<T>|");
    check(
        &buyer.receive(),
        &[
            ("35", "9"),
            ("41", "NOPE"),
            ("434", "1"),
            ("58", "Unknown order"),
        ],
    );

    buyer.send("D", "11=B2|21=1|38=1|40=2|44=40|54=1|55=SNOW|60=<T>|");
    check(
        &buyer.receive(),
        &[("35", "8"), ("150", "8"), ("58", "Unknown symbol")],
    );

    buyer.send("D", "1=12|11=B3|21=1|38=1|40=2|44=40|54=1|55=RAIN|60=<T>|");
    check(&buyer.receive(), &[("35", "j"), ("380", "6")]);

    seller.send("D", "11=S1|21=1|38=1|40=2|44=40|54=2|55=RAIN|60=<T>|");
    check(
        &seller.receive(),
        &[("35", "8"), ("150", "8"), ("58", "Duplicate ClOrdID")],
    );

    // The engine's own rejects come back too: price 0 is outside 1..=99.
    seller.send("D", "11=S2|21=1|38=1|40=2|44=0|54=2|55=RAIN|60=<T>|");
    let rejected = seller.receive();
    check(
        &rejected,
        &[("35", "8"), ("150", "8"), ("39", "8"), ("11", "S2")],
    );

    seller.send("H", "11=S1|54=2|55=RAIN|");
    check(
        &seller.receive(),
        &[
            ("35", "8"),
            ("150", "I"),
            ("39", "2"),
            ("11", "S1"),
            ("14", "4"),
        ],
    );
    seller.send("H", "11=NOPE|54=2|55=RAIN|");
    check(
        &seller.receive(),
        &[
            ("35", "8"),
            ("150", "I"),
            ("39", "8"),
            ("58", "Unknown order"),
        ],
    );
    seller.send("V", "262=MD1|263=0|264=1|267=1|269=0|146=1|55=RAIN|");
    check(
        &seller.receive(),
        &[("35", "W"), ("262", "MD1"), ("55", "RAIN")],
    );
    seller.send("c", "320=SD1|321=0|");
    check(
        &seller.receive(),
        &[("35", "j"), ("380", "3"), ("372", "c")],
    );

    // Cancel/replace: new price and a smaller quantity under a new ClOrdID.
    buyer.send("D", "11=B4|21=1|38=10|40=2|44=30|54=1|55=RAIN|60=<T>|");
    check(&buyer.receive(), &[("150", "0"), ("11", "B4")]);
    buyer.send("G", "11=B5|21=1|38=6|40=2|41=B4|44=31|54=1|55=RAIN|60=<T>|");
    let replaced = buyer.receive();
    check(
        &replaced,
        &[
            ("35", "8"),
            ("150", "5"),
            ("39", "0"),
            ("11", "B5"),
            ("41", "B4"),
            ("38", "6"),
            ("151", "6"),
        ],
    );
    buyer.send("G", "11=B6|21=1|38=6|40=2|41=B4|44=31|54=1|55=RAIN|60=<T>|");
    check(
        &buyer.receive(),
        &[("35", "9"), ("434", "2"), ("58", "Unknown order")],
    );
    // Engine-side refusal of a replace: price outside 1..=99.
    buyer.send(
        "G",
        "11=B7|21=1|38=6|40=2|41=B5|44=100|54=1|55=RAIN|60=<T>|",
    );
    check(
        &buyer.receive(),
        &[("35", "9"), ("434", "2"), ("11", "B7"), ("41", "B5")],
    );

    // A PossResend of a known order gets its status, not a second order.
    seller.send("D", "97=Y|11=S1|21=1|38=4|40=2|44=40|54=2|55=RAIN|60=<T>|");
    check(
        &seller.receive(),
        &[
            ("35", "8"),
            ("150", "I"),
            ("39", "2"),
            ("11", "S1"),
            ("14", "4"),
        ],
    );
    buyer.send("D", "97=Y|11=B1|21=1|38=10|40=2|44=40|54=1|55=RAIN|60=<T>|");
    check(
        &buyer.receive(),
        &[("35", "8"), ("150", "I"), ("39", "4"), ("11", "B1")],
    );

    // Mass cancel: the report, then the cancelled order.
    buyer.send("q", "11=M1|530=7|60=<T>|");
    check(
        &buyer.receive(),
        &[("35", "r"), ("11", "M1"), ("530", "7"), ("531", "7")],
    );
    check(&buyer.receive(), &[("35", "8"), ("150", "4"), ("11", "B5")]);

    gateway.stop().unwrap();
    drop(admin);
    assert!(pipeline.shutdown().health.is_ok());
}

#[test]
fn cancel_on_disconnect_pulls_the_sessions_orders() {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig::two_core_default(dir.path())
        .with_engine(EngineConfig::small())
        .with_timer(None);
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::DropNewest);
    let mut admin = pipeline.sender();
    for cmd in [
        Command::add_instrument(InstrumentSpec::binary(1, 0)),
        Command::add_account(11),
        Command::add_account(12),
        Command::deposit(11, 0, 1_000_000),
        Command::deposit(12, 0, 1_000_000),
    ] {
        admin.try_submit(cmd).unwrap();
    }
    let symbols: HashMap<String, u32> = [("RAIN".to_string(), 1)].into_iter().collect();
    let app = ExchangeApplication::new(pipeline.sender(), sink.receiver.clone(), symbols);
    let mut buyer_config = session("BUYER", "11");
    buyer_config.cancel_on_disconnect = true;
    let gateway = FixServer::spawn(
        FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 16 * 1024,
            order_capacity: 1024,
            sessions: vec![buyer_config, session("SELLER", "12")],
        },
        Dictionaries::shared(),
        app,
    )
    .unwrap();
    let addr = gateway.local_addr();
    let mut buyer = Trader::logon(addr, "BUYER");
    let mut seller = Trader::logon(addr, "SELLER");
    buyer.send("D", "11=B1|21=1|38=5|40=2|44=40|54=1|55=RAIN|59=1|60=<T>|");
    check(&buyer.receive(), &[("150", "0")]);
    drop(buyer);
    std::thread::sleep(Duration::from_millis(300));
    // An IOC sell at the bid finds nothing left to hit.
    seller.send("D", "11=S1|21=1|38=5|40=2|44=40|54=2|55=RAIN|59=3|60=<T>|");
    loop {
        let er = seller.receive();
        assert_ne!(
            field(&er, "150"),
            Some("F"),
            "filled against a cancelled order: {er}"
        );
        if field(&er, "150") == Some("4") {
            check(&er, &[("14", "0")]);
            break;
        }
    }
    gateway.stop().unwrap();
    drop(admin);
    assert!(pipeline.shutdown().health.is_ok());
}

#[test]
fn order_entry_beyond_the_session_rate_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig::two_core_default(dir.path())
        .with_engine(EngineConfig::small())
        .with_timer(None);
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::DropNewest);
    let mut admin = pipeline.sender();
    for cmd in [
        Command::add_instrument(InstrumentSpec::binary(1, 0)),
        Command::add_account(11),
        Command::deposit(11, 0, 1_000_000),
    ] {
        admin.try_submit(cmd).unwrap();
    }
    let symbols: HashMap<String, u32> = [("RAIN".to_string(), 1)].into_iter().collect();
    let app = ExchangeApplication::new(pipeline.sender(), sink.receiver.clone(), symbols);
    let mut limited = session("BUYER", "11");
    limited.max_orders_per_sec = Some(5);
    let gateway = FixServer::spawn(
        FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 16 * 1024,
            order_capacity: 1024,
            sessions: vec![limited],
        },
        Dictionaries::shared(),
        app,
    )
    .unwrap();
    let mut buyer = Trader::logon(gateway.local_addr(), "BUYER");
    for i in 0..12 {
        buyer.send(
            "D",
            &format!("11=T{i}|21=1|38=1|40=2|44=10|54=1|55=RAIN|60=<T>|"),
        );
    }
    let (mut accepted, mut throttled) = (0, 0);
    for _ in 0..12 {
        let er = buyer.receive();
        match field(&er, "150") {
            Some("0") => accepted += 1,
            Some("8") => {
                assert_eq!(field(&er, "58"), Some("Throttle limit exceeded"), "{er}");
                throttled += 1;
            }
            _ => panic!("unexpected {er}"),
        }
    }
    // A burst of 12 within well under a second: the bucket holds 5 (one
    // more may refill while the burst arrives).
    assert!((5..=6).contains(&accepted), "{accepted} accepted");
    assert_eq!(accepted + throttled, 12);
    gateway.stop().unwrap();
    drop(admin);
    assert!(pipeline.shutdown().health.is_ok());
}

/// A NO-leg order filled against a YES bid, an account from Parties, stop
/// and GTD validation, market data (snapshot, increments, reject) and the
/// security list, without an external client.
#[test]
fn no_leg_parties_stops_and_market_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig::two_core_default(dir.path())
        .with_engine(EngineConfig::small())
        .with_timer(None);
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::DropNewest);
    let mut admin = pipeline.sender();
    for cmd in [
        Command::add_instrument(InstrumentSpec::binary(1, 0)),
        Command::add_account(11),
        Command::add_account(12),
        Command::add_account(13),
        Command::deposit(11, 0, 1_000_000),
        Command::deposit(12, 0, 1_000_000),
        Command::deposit(13, 0, 1_000_000),
    ] {
        admin.try_submit(cmd).unwrap();
    }
    let symbols: HashMap<String, u32> = [("RAIN".to_string(), 1)].into_iter().collect();
    let app = ExchangeApplication::new(pipeline.sender(), sink.receiver.clone(), symbols);
    let mut seller_config = session("SELLER", "12");
    seller_config.accounts.push("13".to_string());
    let gateway = FixServer::spawn(
        FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 16 * 1024,
            order_capacity: 1024,
            sessions: vec![session("BUYER", "11"), seller_config],
        },
        Dictionaries::shared(),
        app,
    )
    .unwrap();
    let addr = gateway.local_addr();
    let mut buyer = Trader::logon(addr, "BUYER");
    let mut seller = Trader::logon(addr, "SELLER");

    // The seller watches RAIN: an empty snapshot first.
    seller.send(
        "V",
        "262=M1|263=1|264=0|265=1|267=3|269=0|269=1|269=2|146=1|55=RAIN|",
    );
    check(
        &seller.receive(),
        &[("35", "W"), ("262", "M1"), ("268", "0")],
    );
    // An unknown symbol is refused with a MarketDataRequestReject.
    seller.send("V", "262=M2|263=1|264=0|267=1|269=0|146=1|55=HAIL|");
    check(
        &seller.receive(),
        &[("35", "Y"), ("262", "M2"), ("281", "0")],
    );

    // A YES bid 3 @ 30 shows up as a new bid level.
    buyer.send("D", "11=B1|21=1|38=3|40=2|44=30|54=1|55=RAIN|60=<T>|");
    check(&buyer.receive(), &[("150", "0"), ("11", "B1")]);
    let level = seller.receive();
    check(
        &level,
        &[
            ("35", "X"),
            ("262", "M1"),
            ("279", "0"),
            ("269", "0"),
            ("270", "30"),
            ("271", "3"),
        ],
    );

    // Buying NO at 75 (account 13 from Parties) is selling YES at 25: it
    // trades 1 at YES 30, which the NO buyer sees as 70.
    seller.send(
        "D",
        "11=N1|21=1|38=1|40=2|44=75|54=1|55=RAIN-NO|60=<T>|453=1|448=13|447=D|452=24|",
    );
    // The new and fill reports and the trade and level increments, in the
    // engine's order; read until the fill report (bounded).
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| field(m, "150") == Some("F")) {
        assert!(seen.len() < 8, "no fill report in {seen:?}");
        seen.push(seller.receive());
    }
    let report = |exec_type: &str| {
        seen.iter()
            .find(|m| field(m, "35") == Some("8") && field(m, "150") == Some(exec_type))
            .unwrap_or_else(|| panic!("no 150={exec_type} in {seen:?}"))
            .clone()
    };
    check(
        &report("0"),
        &[("11", "N1"), ("1", "13"), ("55", "RAIN-NO"), ("54", "1")],
    );
    check(
        &report("F"),
        &[("31", "70"), ("32", "1"), ("39", "2"), ("6", "70.0000")],
    );
    let trade = seen
        .iter()
        .find(|m| field(m, "35") == Some("X") && field(m, "269") == Some("2"))
        .unwrap_or_else(|| panic!("no trade increment in {seen:?}"));
    check(trade, &[("270", "30"), ("271", "1")]);
    check(
        &buyer.receive(),
        &[("150", "F"), ("11", "B1"), ("31", "30"), ("151", "2")],
    );

    // Stop without StopPx, GTD without ExpireTime: rejected before the
    // engine; a stop-limit with both is accepted and waits.
    buyer.send("D", "11=S1|21=1|38=1|40=3|54=1|55=RAIN|60=<T>|");
    check(&buyer.receive(), &[("150", "8"), ("11", "S1")]);
    buyer.send("D", "11=G1|21=1|38=1|40=2|44=20|54=1|55=RAIN|59=6|60=<T>|");
    check(&buyer.receive(), &[("150", "8"), ("11", "G1")]);
    buyer.send("D", "11=S2|21=1|38=1|40=4|44=90|99=90|54=1|55=RAIN|60=<T>|");
    check(&buyer.receive(), &[("150", "0"), ("11", "S2"), ("39", "0")]);

    // The security list names both legs.
    buyer.send("x", "320=L1|559=4|");
    let list = buyer.receive();
    check(&list, &[("35", "y"), ("320", "L1"), ("146", "2")]);
    assert!(
        list.contains("55=RAIN|") && list.contains("55=RAIN-NO|"),
        "{list}"
    );

    gateway.stop().unwrap();
    drop(admin);
    assert!(pipeline.shutdown().health.is_ok());
}
