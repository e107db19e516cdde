//! Graceful shutdown: one signal a server and each of its connections watch.

use std::sync::Arc;

use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

/// A signal every connection watches; it fires on [`ShutdownHandle::shutdown`], or when every
/// [`ShutdownHandle`] is gone.
///
/// A tree of cancellation tokens: each connection waits on a [`child`](ShutdownSignal::child)
/// of its own, so waiting does not take a lock shared with every other connection.
#[derive(Clone, Debug)]
pub struct ShutdownSignal(CancellationToken);

impl ShutdownSignal {
    /// A signal and the handle that fires it.
    pub fn new() -> (ShutdownSignal, ShutdownHandle) {
        let token = CancellationToken::new();
        (ShutdownSignal(token.clone()), ShutdownHandle(Arc::new(token.drop_guard())))
    }

    /// A signal of its own for one connection, fired with this one.
    #[inline]
    pub fn child(&self) -> ShutdownSignal {
        ShutdownSignal(self.0.child_token())
    }

    /// Waits for shutdown.
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }

    /// Waits for shutdown, owning what it waits on (to be pinned once and polled many times).
    #[inline]
    pub fn wait_owned(&self) -> WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }

    /// Whether shutdown has started (or every handle is gone). Inlined: a line connection asks
    /// it for every buffered frame.
    #[inline]
    pub fn fired(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Fires a [`ShutdownSignal`]. Cloneable; when the last clone is dropped, the signal fires too.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<DropGuard>);

impl ShutdownHandle {
    /// Starts the shutdown; returns at once.
    pub fn shutdown(&self) {
        self.0.token().cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_fires_with_its_parent() {
        let (signal, handle) = ShutdownSignal::new();
        let child = signal.child();
        assert!(!child.fired());
        handle.shutdown();
        child.wait().await;
        assert!(signal.fired());
    }

    #[tokio::test]
    async fn dropping_every_handle_fires() {
        let (signal, handle) = ShutdownSignal::new();
        let clone = handle.clone();
        drop(handle);
        assert!(!signal.fired());
        drop(clone);
        signal.wait_owned().await;
    }
}
