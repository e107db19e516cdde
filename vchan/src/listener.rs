//! [`VchanListener`]: a server that takes one client after another at one Xenstore path.
//!
//! A vchan joins exactly two ends. To serve more than one client, the listener publishes a
//! fresh channel at the same path as soon as a client has taken the current one; a client that
//! raced to a taken channel waits for the next ([`crate::connect`] with a wait).

use std::sync::Arc;

use vproto_xenstore::Xenstore;

use crate::{listen, Backend, ServerOptions, Vchan, VchanError};

/// Publishes channels at one path and hands them out as clients connect.
#[derive(Debug)]
pub struct VchanListener {
    backend: Arc<dyn Backend>,
    xs: Xenstore,
    options: ServerOptions,
    next: Option<Vchan>,
}

impl VchanListener {
    /// Publishes the first channel.
    pub async fn bind(backend: Arc<dyn Backend>, xs: Xenstore, options: ServerOptions) -> Result<Self, VchanError> {
        let next = listen(backend.clone(), &xs, &options).await?;
        Ok(VchanListener { backend, xs, options, next: Some(next) })
    }

    /// What the channels are published as.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Waits for a client to take the published channel, publishes the next one, and returns
    /// the taken one. Cancelling it while waiting loses nothing.
    pub async fn accept(&mut self) -> Result<Vchan, VchanError> {
        let current = match self.next.take() {
            Some(current) => current,
            // The previous republish failed; try again.
            None => listen(self.backend.clone(), &self.xs, &self.options).await?,
        };
        // Parked in `next` while waiting, so that cancelling this call keeps it published.
        let current = self.next.insert(current);
        current.accepted().await;
        let taken = self.next.take().expect("parked above");
        taken.keep_path_on_close();
        self.next = Some(listen(self.backend.clone(), &self.xs, &self.options).await?);
        Ok(taken)
    }
}
