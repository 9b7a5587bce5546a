//! Fuzz target: arbitrary bytes as a WebSocket client message, through the
//! JSON command decoder and, for order commands, the translation into
//! engine commands for a binary and a spot market.
//!
//! Nothing may panic; every failure is a coded error; a decoded order that
//! translates carries the market's instrument and the caller's account.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_core::records::Outcome;
use ringex_gateways::ws::protocol::{codes, decode_client_message, WsCommand};
use ringex_gateways::ws::MarketConfig;

fuzz_target!(|data: &[u8]| {
    let markets = [
        MarketConfig::binary("B", 1),
        MarketConfig::spot("S", 2, (2, 3), (1, 1_000_000), (0, 1)),
    ];
    match decode_client_message(data) {
        Err(e) => assert!((codes::UNABLE_TO_PROCESS..=codes::TIMEOUT).contains(&e.code)),
        Ok((_, WsCommand::CreateOrder(order))) => {
            for m in &markets {
                if let Ok(cmd) = order.to_command(7, m, 0) {
                    assert_eq!((cmd.account, cmd.instrument), (7, m.instrument));
                }
            }
        }
        Ok((_, WsCommand::CancelOrder(r))) => {
            if let Ok(cmd) = r.to_command(7) {
                assert_eq!(cmd.account, 7);
            }
        }
        Ok((_, WsCommand::AmendOrder(a))) => {
            for m in &markets {
                let _ = a.to_command(7, m, None);
                let _ = a.to_command(7, m, Some((Outcome::No, 40, 10)));
            }
        }
        Ok(_) => {}
    }
});
