//! The FIX session state machine (acceptor side), without I/O.
//!
//! A [`Session`] takes cut frames ([`Session::on_frame`]) and clock ticks
//! ([`Session::on_tick`]) and writes the bytes to send into the caller's
//! buffer; [`Session::wants_disconnect`] tells the caller to flush and
//! close. The rules are QuickFIX's, which the acceptance definitions
//! encode: Logon (CompIDs, SendingTime, password, ResetSeqNumFlag,
//! ResetOnLogon), Heartbeat and TestRequest timing (heartbeat after
//! HeartBtInt of silence, TestRequest `TEST` after 1.2 × HeartBtInt without
//! input, disconnect after 2.4 ×), ResendRequest (application messages
//! resent with PossDupFlag=Y and OrigSendingTime, admin messages and gaps
//! gap-filled with SequenceReset-GapFill), SequenceReset (GapFill and
//! Reset), Reject with SessionRejectReason and RefTagID (routing fields
//! reversed), Logout (logout timeout 2 s), MsgSeqNum too high (queued, one
//! ResendRequest per gap) and too low (PossDup checks, otherwise Logout and
//! disconnect), garbled messages ignored.
//!
//! Single owner: the event-loop thread that owns the connection.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::app::{AppReject, Application};
use super::dictionary::{is_admin_msg_type, Dictionaries, Protocol};
use super::message::{parse_uint, Message, OutMessage};
use super::store::MessageStore;
use super::time::{format_timestamp_millis, parse_timestamp, Millis};
use super::validate::{validate, Invalid, RejectReason};

fn default_max_latency() -> u32 {
    120
}

fn default_appl_ver_id() -> String {
    "9".to_string()
}

/// One session as configured in the server's config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// `FIX.4.4` or `FIXT.1.1`.
    pub begin_string: String,
    /// Our CompID (the client's TargetCompID).
    pub sender_comp_id: String,
    /// The client's CompID (its SenderCompID).
    pub target_comp_id: String,
    /// DefaultApplVerID sent in a FIXT Logon (`9` = FIX 5.0 SP2).
    #[serde(default = "default_appl_ver_id")]
    pub default_appl_ver_id: String,
    /// The accounts this session may trade (the application enforces it).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// The Password (554) a Logon must carry; none means no check.
    #[serde(default)]
    pub password: Option<String>,
    /// The HeartBtInt (108) a Logon must ask for; none accepts any.
    #[serde(default)]
    pub heartbeat_secs: Option<u32>,
    /// Start both sequence numbers at 1 on every Logon.
    #[serde(default)]
    pub reset_on_logon: bool,
    /// Cancel the session's open orders when it disconnects (the
    /// application acts on it).
    #[serde(default)]
    pub cancel_on_disconnect: bool,
    /// Largest accepted difference between SendingTime and our clock.
    #[serde(default = "default_max_latency")]
    pub max_latency_secs: u32,
    /// Most order-entry messages (D, F, G, q) per second the application
    /// accepts from this session; those beyond are rejected. None: no limit.
    #[serde(default)]
    pub max_orders_per_sec: Option<u32>,
}

impl SessionConfig {
    /// A session with default options.
    pub fn new(begin_string: &str, sender_comp_id: &str, target_comp_id: &str) -> Self {
        Self {
            begin_string: begin_string.to_string(),
            sender_comp_id: sender_comp_id.to_string(),
            target_comp_id: target_comp_id.to_string(),
            default_appl_ver_id: default_appl_ver_id(),
            accounts: Vec::new(),
            password: None,
            heartbeat_secs: None,
            reset_on_logon: false,
            cancel_on_disconnect: false,
            max_latency_secs: default_max_latency(),
            max_orders_per_sec: None,
        }
    }

    /// `BeginString-Sender-Target`, the store's file name.
    pub fn session_name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.begin_string, self.sender_comp_id, self.target_comp_id
        )
    }
}

/// Why processing a message stopped (QuickFIX's exceptions).
enum Fail {
    Reject(Invalid),
    Business(AppReject),
    UnsupportedVersion,
    RejectLogon(String),
    Disconnect,
}

impl From<std::io::Error> for Fail {
    fn from(_: std::io::Error) -> Self {
        // A store that cannot be written cannot keep sequence numbers:
        // drop the connection rather than run on without them.
        Fail::Disconnect
    }
}

#[derive(Debug, Default)]
struct State {
    received_logon: bool,
    sent_logon: bool,
    sent_logout: bool,
    sent_reset: bool,
    received_reset: bool,
    heartbeat_ms: i64,
    last_sent: Millis,
    last_received: Millis,
    test_request: i64,
    queue: BTreeMap<u64, Vec<u8>>,
    resend_range: Option<(u64, u64)>,
    disconnect: bool,
}

/// What a call into the session needs from its caller.
pub struct Io<'a> {
    /// The current time.
    pub now: Millis,
    /// Where bytes to send are appended.
    pub out: &'a mut Vec<u8>,
    /// The application.
    pub app: &'a mut dyn Application,
}

/// One FIX session.
pub struct Session {
    config: SessionConfig,
    dictionaries: Arc<Dictionaries>,
    store: MessageStore,
    st: State,
    logout_timeout_ms: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("logged_on", &self.is_logged_on())
            .finish()
    }
}

/// Why a session cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The BeginString is not FIX.4.4 or FIXT.1.1.
    #[error("unsupported BeginString {0:?} (FIX.4.4 and FIXT.1.1 are supported)")]
    UnsupportedVersion(String),
}

impl Session {
    /// A session over `store`.
    pub fn new(
        config: SessionConfig,
        dictionaries: Arc<Dictionaries>,
        store: MessageStore,
    ) -> Result<Self, SessionError> {
        if dictionaries.protocol(&config.begin_string).is_none() {
            return Err(SessionError::UnsupportedVersion(config.begin_string));
        }
        Ok(Self {
            config,
            dictionaries,
            store,
            st: State::default(),
            logout_timeout_ms: 2000,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn protocol(&self) -> &Protocol {
        self.dictionaries
            .protocol(&self.config.begin_string)
            .unwrap_or(&self.dictionaries.fix44)
    }

    /// Logon received and answered.
    pub fn is_logged_on(&self) -> bool {
        self.st.received_logon && self.st.sent_logon
    }

    /// The caller should flush what was written and close the connection.
    pub fn wants_disconnect(&self) -> bool {
        self.st.disconnect
    }

    /// Writes the store's changes of this turn to its files; the event loop
    /// calls it before writing the session's output to the socket, so
    /// nothing is sent that is not stored. An error means the output must
    /// not be sent: the session asks to be disconnected.
    pub fn flush_store(&mut self) -> std::io::Result<()> {
        let result = self.store.flush();
        if result.is_err() {
            self.st.disconnect = true;
        }
        result
    }

    /// The next MsgSeqNum this side will send.
    pub fn next_sender_seq(&self) -> u64 {
        self.store.next_sender()
    }

    /// The next MsgSeqNum expected from the counterparty.
    pub fn next_target_seq(&self) -> u64 {
        self.store.next_target()
    }

    /// The connection closed: forget the connection's state, keep the
    /// sequence numbers and messages.
    pub fn on_disconnect(&mut self, app: &mut dyn Application) {
        if self.st.received_logon || self.st.sent_logon {
            app.on_logout(&self.config);
        }
        self.st = State::default();
    }

    /// Sends an application message (numbered, stored; sent only while
    /// logged on, otherwise kept for a resend).
    pub fn send_app(&mut self, msg: OutMessage, io: &mut Io<'_>) {
        if self.send_raw(msg, io).is_err() {
            self.st.disconnect = true;
        }
    }

    /// Processes one cut frame.
    pub fn on_frame(&mut self, frame: Vec<u8>, io: &mut Io<'_>) {
        if self.st.disconnect {
            return;
        }
        match Message::parse(frame, self.protocol()) {
            Ok(msg) => self.next_message(msg, io, false),
            Err(_) => {
                // Garbled: ignored, except a garbled Logon ends the connection.
                if !self.st.received_logon {
                    self.st.disconnect = true;
                }
            }
        }
    }

    fn incr_target(&mut self) -> Result<(), Fail> {
        let n = self.store.next_target() + 1;
        self.store.set_next_target(n)?;
        Ok(())
    }

    fn next_message(&mut self, msg: Message, io: &mut Io<'_>, queued: bool) {
        let result = self.process(&msg, io);
        let outcome = match result {
            Ok(()) => Ok(()),
            Err(Fail::Reject(invalid)) => {
                self.generate_reject(&msg, invalid.reason, invalid.tag, io)
            }
            Err(Fail::Business(reject)) => self.generate_business_reject(&msg, reject, io),
            Err(Fail::UnsupportedVersion) => {
                if msg.msg_type() == b"5" {
                    self.next_logout(&msg, io)
                } else {
                    self.generate_logout("Incorrect BeginString", io)
                        .and_then(|_| self.incr_target())
                }
            }
            Err(Fail::RejectLogon(text)) => {
                let r = self.generate_logout(&text, io);
                self.st.disconnect = true;
                r
            }
            Err(Fail::Disconnect) => Err(Fail::Disconnect),
        };
        if outcome.is_err() {
            self.st.disconnect = true;
        }
        if !queued && !self.st.disconnect {
            self.next_queued(io);
        }
    }

    fn process(&mut self, msg: &Message, io: &mut Io<'_>) -> Result<(), Fail> {
        let is_app = !is_admin_msg_type(msg.msg_type());
        for tag in [49, 56] {
            if msg.header_value(tag).is_none() {
                return Err(if is_app {
                    Fail::Business(AppReject::Business {
                        reason: 5,
                        ref_tag: Some(tag),
                        text: None,
                    })
                } else {
                    Fail::Reject(Invalid {
                        reason: RejectReason::RequiredTagMissing,
                        tag: Some(tag),
                    })
                });
            }
        }
        if msg.begin_string() != self.config.begin_string.as_bytes() {
            return Err(Fail::UnsupportedVersion);
        }
        validate(msg, self.protocol()).map_err(Fail::Reject)?;
        match msg.msg_type() {
            b"A" => self.next_logon(msg, io),
            b"0" => {
                if self.verify(msg, true, true, io)? {
                    self.incr_target()?;
                }
                Ok(())
            }
            b"1" => {
                if self.verify(msg, true, true, io)? {
                    let mut hb = OutMessage::new("0");
                    if let Some(id) = msg.body_value(112) {
                        hb.set(112, id);
                    }
                    self.send_raw(hb, io)?;
                    self.incr_target()?;
                }
                Ok(())
            }
            b"4" => self.next_sequence_reset(msg, io),
            b"5" => self.next_logout(msg, io),
            b"2" => self.next_resend_request(msg, io),
            b"3" => {
                if self.verify(msg, false, true, io)? {
                    self.incr_target()?;
                }
                Ok(())
            }
            _ => {
                if self.verify(msg, true, true, io)? {
                    self.incr_target()?;
                }
                Ok(())
            }
        }
    }

    fn valid_logon_state(&self, msg_type: &[u8]) -> bool {
        let st = &self.st;
        let logon = msg_type == b"A";
        (logon && st.sent_reset)
            || st.received_reset
            || (logon && !st.received_logon)
            || (!logon && st.received_logon)
            || (msg_type == b"5" && st.sent_logon)
            || (msg_type != b"5" && st.sent_logout)
            || msg_type == b"4"
            || msg_type == b"3"
    }

    /// QuickFIX's `verify`: logon state, SendingTime, CompIDs, sequence
    /// numbers, then the callback. `Ok(false)` means "handled, go no
    /// further".
    fn verify(
        &mut self,
        msg: &Message,
        check_high: bool,
        check_low: bool,
        io: &mut Io<'_>,
    ) -> Result<bool, Fail> {
        let msg_type = msg.msg_type();
        let sending_time = msg
            .header_value(52)
            .and_then(parse_timestamp)
            .ok_or(Fail::Disconnect)?;
        let seq = if check_high || check_low {
            msg.header_uint(34).ok_or(Fail::Disconnect)?
        } else {
            0
        };
        if !self.valid_logon_state(msg_type) {
            return Err(Fail::Disconnect);
        }
        let max_latency = i64::from(self.config.max_latency_secs) * 1000;
        if (io.now - sending_time).abs() > max_latency {
            self.generate_reject(msg, RejectReason::SendingTimeAccuracyProblem, None, io)?;
            self.generate_logout("", io)?;
            return Ok(false);
        }
        let comp_ids_ok = msg.header_value(49) == Some(self.config.target_comp_id.as_bytes())
            && msg.header_value(56) == Some(self.config.sender_comp_id.as_bytes());
        if !comp_ids_ok {
            self.generate_reject(msg, RejectReason::CompIdProblem, None, io)?;
            self.generate_logout("", io)?;
            return Ok(false);
        }
        let expected = self.store.next_target();
        if check_high && seq > expected {
            self.do_target_too_high(msg, seq, io)?;
            return Ok(false);
        } else if check_low && seq < expected {
            return self.do_target_too_low(msg, seq, io);
        }
        if check_high || check_low {
            if let Some((_, end)) = self.st.resend_range {
                if seq >= end {
                    self.st.resend_range = None;
                }
            }
        }
        self.st.last_received = io.now;
        self.st.test_request = 0;
        if msg_type == b"A" {
            if let Some(password) = &self.config.password {
                if msg.body_value(554) != Some(password.as_bytes()) {
                    return Err(Fail::RejectLogon("Invalid password".to_string()));
                }
            }
            if let Some(hb) = self.config.heartbeat_secs {
                if msg.body_uint(108) != Some(u64::from(hb)) {
                    return Err(Fail::RejectLogon(format!("HeartBtInt must be {hb}")));
                }
            }
        } else if !is_admin_msg_type(msg_type) {
            let mut replies = Vec::new();
            let result = io.app.on_app_message(&self.config, msg, &mut replies);
            for reply in replies {
                self.send_raw(reply, io)?;
            }
            result.map_err(Fail::Business)?;
        }
        Ok(true)
    }

    fn do_target_too_high(&mut self, msg: &Message, seq: u64, io: &mut Io<'_>) -> Result<(), Fail> {
        self.st.queue.insert(seq, msg.raw().to_vec());
        if let Some((begin, _)) = self.st.resend_range {
            if seq >= begin {
                return Ok(());
            }
        }
        self.generate_resend_request(seq, io)
    }

    fn do_target_too_low(
        &mut self,
        msg: &Message,
        seq: u64,
        io: &mut Io<'_>,
    ) -> Result<bool, Fail> {
        if !msg.header_flag(43) {
            let text = format!(
                "MsgSeqNum too low, expecting {} but received {}",
                self.store.next_target(),
                seq
            );
            self.generate_logout(&text, io)?;
            return Err(Fail::Disconnect);
        }
        if msg.msg_type() != b"4" {
            let Some(orig) = msg.header_value(122) else {
                self.generate_reject(msg, RejectReason::RequiredTagMissing, Some(122), io)?;
                return Ok(false);
            };
            let orig = parse_timestamp(orig);
            let sending = msg.header_value(52).and_then(parse_timestamp);
            if let (Some(orig), Some(sending)) = (orig, sending) {
                if orig > sending {
                    self.generate_reject(msg, RejectReason::SendingTimeAccuracyProblem, None, io)?;
                    self.generate_logout("", io)?;
                }
            }
        }
        Ok(false)
    }

    fn next_queued(&mut self, io: &mut Io<'_>) {
        while !self.st.disconnect {
            let expected = self.store.next_target();
            let Some(raw) = self.st.queue.remove(&expected) else {
                return;
            };
            let Ok(msg) = Message::parse(raw, self.protocol()) else {
                continue;
            };
            if matches!(msg.msg_type(), b"A" | b"2") {
                if self.incr_target().is_err() {
                    self.st.disconnect = true;
                }
            } else {
                self.next_message(msg, io, true);
            }
        }
    }

    fn next_logon(&mut self, msg: &Message, io: &mut Io<'_>) -> Result<(), Fail> {
        let reset_flag = msg.body_value(141) == Some(b"Y");
        self.st.received_reset = reset_flag;
        if reset_flag && !self.st.sent_reset {
            self.store.reset()?;
        }
        if self.config.reset_on_logon {
            self.store.reset()?;
        }
        if !self.verify(msg, false, true, io)? {
            return Ok(());
        }
        self.st.received_logon = true;
        let heartbeat = msg.body_uint(108).unwrap_or(0);
        self.st.heartbeat_ms = (heartbeat as i64).saturating_mul(1000);
        let mut logon = OutMessage::new("A");
        logon.set(98, "0").set(108, heartbeat.to_string());
        if self.st.received_reset {
            logon.set(141, "Y");
        }
        if self.protocol().is_fixt() {
            logon.set(1137, self.config.default_appl_ver_id.clone());
        }
        self.send_raw(logon, io)?;
        self.st.sent_logon = true;
        self.st.sent_reset = false;
        self.st.received_reset = false;
        let seq = msg.header_uint(34).unwrap_or(0);
        if seq > self.store.next_target() && !reset_flag {
            self.do_target_too_high(msg, seq, io)?;
        } else {
            self.incr_target()?;
            self.next_queued(io);
        }
        if self.is_logged_on() {
            io.app.on_logon(&self.config);
        }
        Ok(())
    }

    fn next_logout(&mut self, msg: &Message, io: &mut Io<'_>) -> Result<(), Fail> {
        if !self.verify(msg, false, false, io)? {
            return Ok(());
        }
        if !self.st.sent_logout {
            self.generate_logout("", io)?;
        }
        self.incr_target()?;
        self.st.disconnect = true;
        Ok(())
    }

    fn next_sequence_reset(&mut self, msg: &Message, io: &mut Io<'_>) -> Result<(), Fail> {
        let gap_fill = msg.body_value(123) == Some(b"Y");
        if !self.verify(msg, gap_fill, gap_fill, io)? {
            return Ok(());
        }
        if let Some(new_seq) = msg.body_uint(36) {
            let expected = self.store.next_target();
            if new_seq > expected {
                self.store.set_next_target(new_seq)?;
            } else if new_seq < expected {
                self.generate_reject(msg, RejectReason::ValueIsIncorrect, None, io)?;
            }
        }
        Ok(())
    }

    fn next_resend_request(&mut self, msg: &Message, io: &mut Io<'_>) -> Result<(), Fail> {
        if !self.verify(msg, false, false, io)? {
            return Ok(());
        }
        let begin = msg.body_uint(7).unwrap_or(0);
        let mut end = msg.body_uint(16).unwrap_or(0);
        let next_sender = self.store.next_sender();
        if end == 0 || end >= next_sender {
            end = next_sender.saturating_sub(1);
        }
        let messages = self.store.range(begin, end)?;
        let mut gap_begin = 0u64;
        let mut current = begin;
        let mut last_seq = 0u64;
        for stored in messages {
            if current != stored.seq && gap_begin == 0 {
                gap_begin = current;
            }
            match stored.message {
                None => {
                    if gap_begin == 0 {
                        gap_begin = stored.seq;
                    }
                }
                Some(mut app_msg) => {
                    if gap_begin != 0 {
                        self.generate_sequence_reset(gap_begin, stored.seq, io);
                    }
                    app_msg.set_header(43, "Y");
                    app_msg.set_header(122, format_timestamp_millis(stored.sending_time));
                    let (sender, target) =
                        (&self.config.sender_comp_id, &self.config.target_comp_id);
                    app_msg.encode(
                        &self.config.begin_string,
                        stored.seq,
                        sender,
                        target,
                        io.now,
                        io.out,
                    );
                    self.st.last_sent = io.now;
                    gap_begin = 0;
                }
            }
            current = stored.seq + 1;
            last_seq = stored.seq;
        }
        if gap_begin != 0 {
            self.generate_sequence_reset(gap_begin, last_seq + 1, io);
        }
        if end > last_seq {
            let new_seq = (end + 1).min(self.store.next_sender());
            self.generate_sequence_reset(begin, new_seq, io);
        }
        let seq = msg.header_uint(34).unwrap_or(0);
        if seq == self.store.next_target() {
            self.incr_target()?;
        }
        Ok(())
    }

    /// Numbers, stores and (when allowed) writes a message.
    fn send_raw(&mut self, msg: OutMessage, io: &mut Io<'_>) -> Result<(), Fail> {
        let admin = is_admin_msg_type(msg.msg_type.as_bytes());
        let logged_on = self.is_logged_on();
        if !admin
            && !logged_on
            && self.config.reset_on_logon
            && self.store.next_sender() == 1
            && self.store.next_target() == 1
        {
            // It would be discarded by the reset at the next Logon.
            return Ok(());
        }
        let seq = self.store.next_sender();
        let send = if admin {
            matches!(&*msg.msg_type, "A" | "5" | "2" | "4") || logged_on
        } else {
            logged_on
        };
        if send {
            let (sender, target) = (&self.config.sender_comp_id, &self.config.target_comp_id);
            msg.encode(
                &self.config.begin_string,
                seq,
                sender,
                target,
                io.now,
                io.out,
            );
            self.st.last_sent = io.now;
        }
        self.store
            .save(seq, io.now, if admin { None } else { Some(msg) })?;
        self.store.set_next_sender(seq + 1)?;
        Ok(())
    }

    fn generate_logout(&mut self, text: &str, io: &mut Io<'_>) -> Result<(), Fail> {
        let mut logout = OutMessage::new("5");
        if !text.is_empty() {
            logout.set(58, text);
        }
        self.send_raw(logout, io)?;
        self.st.sent_logout = true;
        Ok(())
    }

    fn generate_resend_request(&mut self, seq: u64, io: &mut Io<'_>) -> Result<(), Fail> {
        let begin = self.store.next_target();
        let mut rr = OutMessage::new("2");
        rr.set(7, begin.to_string()).set(16, "0");
        self.send_raw(rr, io)?;
        self.st.resend_range = Some((begin, seq - 1));
        Ok(())
    }

    fn generate_sequence_reset(&mut self, begin: u64, new_seq: u64, io: &mut Io<'_>) {
        let mut sr = OutMessage::new("4");
        sr.set_header(43, "Y");
        sr.set_header(122, format_timestamp_millis(io.now));
        sr.set(36, new_seq.to_string()).set(123, "Y");
        let (sender, target) = (&self.config.sender_comp_id, &self.config.target_comp_id);
        sr.encode(
            &self.config.begin_string,
            begin,
            sender,
            target,
            io.now,
            io.out,
        );
        self.st.last_sent = io.now;
    }

    fn generate_reject(
        &mut self,
        msg: &Message,
        reason: RejectReason,
        tag: Option<i64>,
        io: &mut Io<'_>,
    ) -> Result<(), Fail> {
        let mut reject = OutMessage::new("3");
        reverse_route(msg, &mut reject);
        let seq = msg.header_value(34).filter(|v| !v.is_empty());
        if let Some(seq) = seq {
            reject.set(45, seq);
        }
        let msg_type = msg.msg_type();
        if !msg_type.is_empty() {
            reject.set(372, msg_type);
        }
        reject.set(373, reason.code().to_string());
        let seq_num = seq.and_then(parse_uint).unwrap_or(0);
        if msg_type != b"A" && msg_type != b"4" && seq_num == self.store.next_target() {
            self.incr_target()?;
        }
        reject.set(58, reason.text());
        if tag.is_some() || reason == RejectReason::InvalidTagNumber {
            reject.set(371, tag.unwrap_or(0).to_string());
        }
        if !self.st.received_logon {
            // QuickFIX does not reject before Logon: it drops the connection.
            return Err(Fail::Disconnect);
        }
        self.send_raw(reject, io)
    }

    fn generate_business_reject(
        &mut self,
        msg: &Message,
        reject: AppReject,
        io: &mut Io<'_>,
    ) -> Result<(), Fail> {
        let (reason, ref_tag, text) = match reject {
            AppReject::UnsupportedMessageType => (3u8, None, None),
            AppReject::Business {
                reason,
                ref_tag,
                text,
            } => (reason, ref_tag, text),
        };
        let mut out = OutMessage::new("j");
        if self.protocol().is_fixt() {
            out.set(1137, self.config.default_appl_ver_id.clone());
        }
        out.set(372, msg.msg_type());
        if let Some(seq) = msg.header_value(34) {
            out.set(45, seq);
        }
        out.set(380, reason.to_string());
        self.incr_target()?;
        let text = text.unwrap_or_else(|| business_reject_text(reason).to_string());
        let text = match ref_tag {
            Some(tag) => format!("{text} ({tag})"),
            None => text,
        };
        if !text.is_empty() {
            out.set(58, text);
        }
        self.send_raw(out, io)
    }

    /// Clock tick: heartbeats, test requests, timeouts.
    pub fn on_tick(&mut self, io: &mut Io<'_>) {
        if self.st.disconnect || !self.st.received_logon || self.st.heartbeat_ms <= 0 {
            return;
        }
        let now = io.now;
        let hb = self.st.heartbeat_ms;
        if self.st.sent_logout && now - self.st.last_sent >= self.logout_timeout_ms {
            self.st.disconnect = true;
            return;
        }
        let since_sent = now - self.st.last_sent;
        let since_received = now - self.st.last_received;
        if since_sent < hb && since_received < hb {
            return;
        }
        let result = if since_received * 10 >= hb * 24 {
            self.st.disconnect = true;
            Ok(())
        } else if since_received * 10 >= hb * 12 * (self.st.test_request + 1) {
            let mut tr = OutMessage::new("1");
            tr.set(112, "TEST");
            self.st.test_request += 1;
            self.send_raw(tr, io)
        } else if since_sent >= hb && self.st.test_request == 0 {
            self.send_raw(OutMessage::new("0"), io)
        } else {
            Ok(())
        };
        if result.is_err() {
            self.st.disconnect = true;
        }
    }
}

/// BusinessRejectReason texts as QuickFIX writes them.
fn business_reject_text(reason: u8) -> &'static str {
    match reason {
        0 => "Other",
        1 => "Unknown ID",
        2 => "Unknown Security",
        3 => "Unsupported Message Type",
        4 => "Application not available",
        5 => "Conditionally Required Field Missing",
        6 => "Not authorized",
        7 => "DeliverTo firm not available at this time",
        _ => "",
    }
}

/// Copies the routing fields of `msg` onto `reply`, reversed (OnBehalfOf
/// becomes DeliverTo and the other way round), as QuickFIX does for a
/// Reject.
fn reverse_route(msg: &Message, reply: &mut OutMessage) {
    for (from, to) in [
        (115, 128),
        (116, 129),
        (128, 115),
        (129, 116),
        (144, 145),
        (145, 144),
    ] {
        if let Some(v) = msg.header_value(from).filter(|v| !v.is_empty()) {
            reply.set_header(to, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::app::EchoApplication;
    use super::super::frame::checksum;
    use super::super::time::format_timestamp_seconds;
    use super::*;

    fn frame(fields: &str, now: Millis) -> Vec<u8> {
        let fields = fields
            .replace("<T>", &format_timestamp_seconds(now))
            .replace('|', "\x01");
        let mut out = format!("8=FIX.4.4\x019={}\x01{fields}", fields.len()).into_bytes();
        let sum = checksum(&out);
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        out
    }

    fn msg_types(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .split('\x01')
            .filter_map(|f| f.strip_prefix("35="))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn heartbeat_test_request_and_timeout_follow_the_heartbeat_interval() {
        let mut s = Session::new(
            SessionConfig::new("FIX.4.4", "ISLD", "TW"),
            Dictionaries::shared(),
            MessageStore::in_memory(),
        )
        .unwrap();
        let mut app = EchoApplication::new();
        let t0 = 1_700_000_000_000;
        let mut out = Vec::new();
        let logon = frame("35=A|34=1|49=TW|52=<T>|56=ISLD|98=0|108=10|", t0);
        s.on_frame(
            logon,
            &mut Io {
                now: t0,
                out: &mut out,
                app: &mut app,
            },
        );
        assert!(s.is_logged_on());
        let mut at = |ms: i64, s: &mut Session| {
            let mut out = Vec::new();
            s.on_tick(&mut Io {
                now: t0 + ms,
                out: &mut out,
                app: &mut app,
            });
            msg_types(&out)
        };
        assert!(at(9_900, &mut s).is_empty());
        assert_eq!(
            at(10_000, &mut s),
            vec!["0"],
            "heartbeat after 10 s of silence"
        );
        assert!(at(11_000, &mut s).is_empty());
        assert_eq!(
            at(12_000, &mut s),
            vec!["1"],
            "test request after 12 s without input"
        );
        assert!(
            at(20_000, &mut s).is_empty(),
            "no heartbeat while a test request is out"
        );
        assert!(!s.wants_disconnect());
        at(24_000, &mut s);
        assert!(s.wants_disconnect(), "disconnect after 24 s without input");
        assert_eq!(s.next_sender_seq(), 4);
    }

    #[test]
    fn a_message_after_a_gap_is_queued_and_processed_once_the_gap_fills() {
        let mut s = Session::new(
            SessionConfig::new("FIX.4.4", "ISLD", "TW"),
            Dictionaries::shared(),
            MessageStore::in_memory(),
        )
        .unwrap();
        let mut app = EchoApplication::new();
        let now = 1_700_000_000_000;
        let mut out = Vec::new();
        for f in [
            "35=A|34=1|49=TW|52=<T>|56=ISLD|98=0|108=30|",
            "35=1|34=3|49=TW|52=<T>|56=ISLD|112=LATER|",
        ] {
            s.on_frame(
                frame(f, now),
                &mut Io {
                    now,
                    out: &mut out,
                    app: &mut app,
                },
            );
        }
        assert_eq!(msg_types(&out), vec!["A", "2"]);
        assert_eq!(s.next_target_seq(), 2);
        out.clear();
        let gap = frame("35=1|34=2|49=TW|52=<T>|56=ISLD|112=FIRST|", now);
        s.on_frame(
            gap,
            &mut Io {
                now,
                out: &mut out,
                app: &mut app,
            },
        );
        let text = String::from_utf8_lossy(&out).replace('\x01', "|");
        assert_eq!(msg_types(&out), vec!["0", "0"], "{text}");
        assert!(text.find("112=FIRST").unwrap() < text.find("112=LATER").unwrap());
        assert_eq!(s.next_target_seq(), 4);
    }
}
