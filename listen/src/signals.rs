//! The process's termination signals (SIGINT, SIGTERM), watched from the moment
//! [`TerminationSignals::watch`] is called: a server calls it before it says it is ready, so a
//! signal sent as soon as it is ready is heard, not left to its default action.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, being watched.
#[derive(Debug)]
pub struct TerminationSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl TerminationSignals {
    /// Starts watching both signals (inside a tokio runtime); one that cannot be watched is
    /// logged and left to its default action.
    pub fn watch() -> Self {
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).inspect_err(|error| tracing::warn!(%error, "cannot watch {name}")).ok()
        };
        TerminationSignals {
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Resolves on the next SIGINT or SIGTERM, naming it.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(watched: &mut Option<Signal>) {
            match watched {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => "SIGINT",
            () = next(&mut self.terminate) => "SIGTERM",
        }
    }
}
