//! A real third-party client: the Python `websockets` package (installed
//! by `scripts/test.sh`, `setup_python_websockets`) drives subscribe,
//! resync and order entry against the gateway. The test fails, rather than
//! skips, when Python or the package is missing.

#[allow(dead_code)]
#[path = "ws/support.rs"]
mod support;

use std::process::Command;

#[test]
fn the_python_websockets_client_subscribes_resyncs_and_trades() {
    let ex = support::Exchange::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/ws_clients/python_client.py"
    );
    let out = Command::new("python3")
        .args([
            script,
            &ex.addr.to_string(),
            support::BINARY,
            &support::key(1),
        ])
        .output()
        .expect("python3 runs (bash scripts/test.sh installs it with the websockets package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python client failed:\n{text}");
    assert!(text.contains("all checks passed"), "{text}");
    ex.stop();
}
