//! Helpers shared by the tests that run the `ringex` server: a small HTTP
//! client, polling, and the built binary as a child process.
#![allow(dead_code)] // each test crate uses a part

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One HTTP request on a fresh connection: the status and the body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(key) = key {
        head.push_str(&format!("X-Api-Key: {key}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

pub fn get_json(addr: SocketAddr, path: &str, key: Option<&str>) -> Value {
    let (status, body) = request(addr, "GET", path, key, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The binary, its stdout lines arriving on a channel.
pub struct Ringex {
    child: Child,
    /// The HTTP/WebSocket address from the monitor line.
    lines: mpsc::Receiver<String>,
    pub addr: SocketAddr,
    /// The FIX acceptor's address, when it printed one.
    pub fix_addr: Option<SocketAddr>,
    /// Every stdout line up to the monitor line.
    pub seen: Vec<String>,
}

impl Ringex {
    /// Starts the binary in `work_dir` on free ports with `extra` arguments
    /// and waits for its monitor line.
    pub fn start(work_dir: &Path, extra: &[&str]) -> Ringex {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringex"))
            .args(["--listen", "127.0.0.1:0", "--fix-listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(work_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(wait)
                .unwrap_or_else(|_| panic!("no monitor line within 30 s; got {seen:?}"));
            seen.push(line.clone());
            if let Some(url) = line.strip_prefix("ringex: monitor page http://") {
                break url.trim_end_matches('/').parse().unwrap();
            }
        };
        // "ringex: FIX 4.4 / FIXT.1.1 acceptor on ADDR (sessions: ...)"
        let fix_addr = seen.iter().find_map(|l| {
            let rest = l.split(" acceptor on ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        });
        Ringex {
            child,
            lines,
            addr,
            fix_addr,
            seen,
        }
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    pub fn terminate(mut self) -> Vec<String> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ringex did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.try_iter());
        assert!(status.success(), "exit {status:?}; stdout {seen:?}");
        seen
    }
}

impl Drop for Ringex {
    fn drop(&mut self) {
        // A failed assertion must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
