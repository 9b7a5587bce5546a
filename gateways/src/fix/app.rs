//! The boundary between the session layer and the application behind it.
//!
//! The session layer hands every application message that passed
//! validation and sequencing to an [`Application`]; replies go back through
//! the session, which numbers, stores and sends them. [`EchoApplication`] is
//! the fixture the QuickFIX acceptance definitions assume.
//!
//! Called on the event-loop thread that owns the sessions.

use std::collections::HashSet;

use super::message::{Message, OutMessage};
use super::session::SessionConfig;

/// Why the application refused a message; the session answers with a
/// BusinessMessageReject (35=j).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReject {
    /// BusinessRejectReason 3, "Unsupported Message Type".
    UnsupportedMessageType,
    /// Any other BusinessRejectReason, with the tag concerned and a text.
    Business {
        /// BusinessRejectReason (380).
        reason: u8,
        /// The tag concerned, if any (appended to the text as QuickFIX does).
        ref_tag: Option<i64>,
        /// Text (58); when `None` the standard text for `reason` is used.
        text: Option<String>,
    },
}

/// What sits behind the sessions.
pub trait Application {
    /// A session completed its logon.
    fn on_logon(&mut self, _session: &SessionConfig) {}

    /// A session ended (logout or lost connection).
    fn on_logout(&mut self, _session: &SessionConfig) {}

    /// An application message arrived in sequence. Replies pushed on
    /// `replies` are sent on the same session, in order.
    fn on_app_message(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject>;

    /// Whether [`Application::poll`] produces messages; the event loop then
    /// calls it on every turn. Without a doorbell
    /// ([`Application::set_wakeup`]) the loop sleeps at most a millisecond.
    fn polls(&self) -> bool {
        false
    }

    /// Offers the application a way to wake the event loop (callable from
    /// any thread). An application that can ring it when messages for
    /// [`Application::poll`] arrive keeps it and returns `true`; the loop
    /// then blocks until input, a tick or the doorbell instead of polling
    /// on a timer. The default cannot: `false`.
    fn set_wakeup(&mut self, _wake: Box<dyn Fn() + Send + Sync>) -> bool {
        false
    }

    /// Called before the loop blocks, when [`Application::set_wakeup`]
    /// returned `true`: `true` if nothing is waiting for
    /// [`Application::poll`] and the doorbell will ring when something
    /// arrives; `false` to have the loop poll again at once.
    fn ready_to_sleep(&mut self) -> bool {
        true
    }

    /// Messages that arise outside a request (execution reports from the
    /// engine): each goes to the session whose
    /// [`SessionConfig::session_name`] is given.
    fn poll(&mut self, _send: &mut dyn FnMut(&str, OutMessage)) {}
}

/// The acceptance fixture: echoes every NewOrderSingle (D) and
/// SecurityDefinition (d) back unchanged; drops a NewOrderSingle with
/// PossResend=Y whose ClOrdID it has already seen on that session (the set
/// is cleared at logout); anything else is an unsupported message type.
#[derive(Debug, Default)]
pub struct EchoApplication {
    seen: HashSet<(String, Vec<u8>)>,
}

impl EchoApplication {
    /// A fixture with no ClOrdIDs seen.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The message as an echo: same header extras (less PossDupFlag and
/// OrigSendingTime, which a fresh send drops) and the same body.
pub fn echo_of(message: &Message) -> OutMessage {
    let mut out = OutMessage::new(&String::from_utf8_lossy(message.msg_type()));
    for f in &message.header.fields {
        if !matches!(f.tag, 8 | 9 | 35 | 34 | 49 | 52 | 56 | 43 | 122) {
            out.header.push((f.tag, message.value(f).to_vec()));
        }
    }
    message.copy_body_to(&mut out);
    out
}

impl Application for EchoApplication {
    fn on_logout(&mut self, session: &SessionConfig) {
        let key = session.session_name();
        self.seen.retain(|(s, _)| *s != key);
    }

    fn on_app_message(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        match message.msg_type() {
            b"D" => {
                let cl_ord_id = message.body_value(11).unwrap_or_default().to_vec();
                let key = (session.session_name(), cl_ord_id);
                let poss_resend = message.header_flag(97);
                if !self.seen.insert(key) && poss_resend {
                    return Ok(());
                }
                replies.push(echo_of(message));
                Ok(())
            }
            b"d" => {
                replies.push(echo_of(message));
                Ok(())
            }
            _ => Err(AppReject::UnsupportedMessageType),
        }
    }
}
