//! The timer source: submits `TimerTick` commands through the input ring,
//! so time-based behaviour (GTD expiry) is journaled and replays exactly.

use super::sender::{CommandSender, SubmitError};
use crate::records::Command;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running timer thread; dropping the handle does not stop it, [`Timer::stop`] does.
#[derive(Debug)]
pub(crate) struct Timer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Timer {
    /// Starts a thread that submits a tick every `interval`. A tick refused
    /// as `Busy` is skipped (the next one carries a later time anyway); the
    /// thread ends on `Closed`/`Halted` or when stopped.
    pub(crate) fn start(mut sender: CommandSender, interval: Duration) -> std::io::Result<Timer> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("ringex-timer".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                    next += interval;
                    match sender.try_submit(Command::timer_tick()) {
                        Ok(_) | Err(SubmitError::Busy) => {}
                        Err(SubmitError::Closed | SubmitError::Halted) => break,
                    }
                }
                // `sender` drops here, releasing its hold on the input ring.
            })?;
        Ok(Timer { stop, thread })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
