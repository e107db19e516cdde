//! The guest agent (`vproto agent`): publishes the guest's [`GuestInfo`] in its Xenstore data
//! tree and keeps it current.
//!
//! ```text
//!   /etc/os-release, kernel release ─────(once)────────────┐
//!   NetlinkCollector (dump + events) ─► Interfaces ─► nics ─┴─► GuestInfo ─► GuestLayout::encode ─► Publisher
//!                                                   (GuestNic)                (v1 | legacy)       one transaction
//! ```
//!
//! - OS data is read once at start ([`os`]); NIC state comes from vproto-netlink's
//!   [`NetlinkCollector`], which sleeps until the kernel reports a change, as plain
//!   `Interface`s that [`nics`] makes the schema's `GuestNic`s of.
//! - A burst of netlink events becomes one update ([`Coalesce`]: 2 ms of quiet, at most
//!   10 ms), and an update that leaves the encoded tree as it was writes nothing.
//! - Each update is one Xenstore transaction, retried on `EAGAIN` ([`publish`]): it removes
//!   what went away and writes what changed, so a reader sees the old tree or the new one,
//!   never a mix. Every path is checked to be under the layout's owned roots first.
//! - When the Xenstore connection drops (noticed by a watch on the tree that ends, or by a
//!   failed update), the agent reconnects with exponential backoff (50 ms to 5 s) and
//!   republishes everything, reading back and correcting whatever the store holds. A
//!   connection or an update that gets no answer within [`AgentConfig::xenstore_timeout`] (a
//!   xenstored that hangs) is given up the same way, and a signal to stop is heard meanwhile.
//!   If the netlink socket fails, it is reopened the same way.
//! - Every reading of the NICs is also published into the agent's [`LiveState`], if it has
//!   one ([`AgentConfig::live`]), whether or not Xenstore is reachable: the guest channel
//!   answers from it ([`live`]).

pub mod live;
pub mod nics;
pub mod os;
pub mod publish;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::guest_tree::GuestLayout;
use tokio::time::Instant;
use vproto_api::{GuestInfo, GuestProtocol, OsInfo};
use vproto_listen::TerminationSignals;
use vproto_netlink::{Coalesce, Interface, NetlinkCollector, NetlinkError};
use vproto_xenstore::{Watch, Xenstore, XenstoreAddr, XsError};

pub use live::{follow, LiveState, Snapshot};
pub use nics::{guest_nics, nic_counters};
pub use os::{collect_os_info, OsSources};
pub use publish::{PublishError, Publisher};

/// The protocol name the v1 tree carries at `protocol/name`.
pub const PROTOCOL_NAME: &str = "vproto-guest-data";

/// The watch token the agent uses to notice a dropped connection.
const WATCH_TOKEN: &str = "vproto-guest-agent";

/// First reconnection delay (to Xenstore, or reopening netlink), doubled on each failure.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest reconnection delay.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting (with the agent's watch) or one update may wait for Xenstore.
pub const DEFAULT_XENSTORE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Where the Xenstore is.
    pub xenstore: XenstoreAddr,
    /// Which layout to publish.
    pub layout: GuestLayout,
    /// The domain's home path (such as `/local/domain/7`); `None` writes paths relative to the
    /// connection's own home (what a guest on xenbus wants).
    pub domain_path: Option<String>,
    /// How bursts of netlink events are gathered.
    pub coalesce: Coalesce,
    /// Where OS identification is read from.
    pub os_sources: OsSources,
    /// First reconnection delay; doubled on each failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnection delay.
    pub max_backoff: Duration,
    /// How long connecting or one update may wait for Xenstore before the connection is given
    /// up and made again (with backoff).
    pub xenstore_timeout: Duration,
    /// Where every reading of the NICs is also published (the guest channel's source); `None`:
    /// Xenstore only.
    pub live: Option<LiveState>,
}

impl AgentConfig {
    /// Defaults for everything but where to publish.
    pub fn new(xenstore: XenstoreAddr, layout: GuestLayout, domain_path: Option<String>) -> Self {
        AgentConfig {
            xenstore,
            layout,
            domain_path,
            coalesce: Coalesce::default(),
            os_sources: OsSources::default(),
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            xenstore_timeout: DEFAULT_XENSTORE_TIMEOUT,
            live: None,
        }
    }
}

/// Why the agent could not start. Once running it never stops on an error: it logs, backs off
/// and tries again.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work (a bad domain path).
    #[error("{0}")]
    Config(#[from] PublishError),
    /// The async runtime of [`run_until_signalled`] could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl AgentError {
    /// The exit code of a front end that stops on this error: 1 when the process could not
    /// run at all, 2 for a configuration that cannot work.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Runtime(_) => 1,
            AgentError::Config(_) => 2,
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM on a runtime of one thread (the agent waits on two
/// sockets and does little work per event; one thread keeps its memory small, see
/// docs/benchmarks.md). What both front ends, `vproto agent` and `vproto-guest-agent`, run.
pub fn run_until_signalled(config: AgentConfig) -> Result<(), AgentError> {
    let result = runtime()?.block_on(async {
        let mut signals = TerminationSignals::watch();
        run(config, async move {
            let signal = signals.recv().await;
            tracing::info!(%signal, "shutting down");
        })
        .await
    });
    if let Err(error) = &result {
        tracing::error!(%error, "cannot run");
    }
    result
}

/// The agent's runtime: one thread, time and I/O enabled. A front end that runs more beside
/// the agent (the guest channel's server) runs it on this one, to keep the agent's footprint.
pub fn runtime() -> Result<tokio::runtime::Runtime, AgentError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AgentError::Runtime)
}

/// The [`GuestInfo`] the layout publishes, with the NICs among `interfaces`.
pub fn guest_info(layout: GuestLayout, os: &OsInfo, interfaces: &[Interface]) -> GuestInfo {
    GuestInfo {
        protocol: GuestProtocol {
            name: PROTOCOL_NAME.to_string(),
            layout_version: layout.layout_version().to_string(),
        },
        os: os.clone(),
        nics: guest_nics(interfaces),
    }
}

struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, next: min }
    }

    fn take(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The netlink collector of a loop that follows the NICs, (re)opened with backoff.
pub(crate) struct Nics {
    collector: Option<NetlinkCollector>,
    backoff: Backoff,
}

impl Nics {
    /// Nothing opened yet; reopening waits `min` to `max` between attempts.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Nics { collector: None, backoff: Backoff::new(min, max) }
    }

    /// The collector, opened first if it is not (retrying with backoff until it opens);
    /// `None` when `shutdown` completed first.
    pub(crate) async fn ready<S: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut S>,
    ) -> Option<&mut NetlinkCollector> {
        while self.collector.is_none() {
            match NetlinkCollector::open().await {
                Ok(opened) => {
                    tracing::info!(links = opened.state().links().len(), "netlink collector ready");
                    self.collector = Some(opened);
                    self.backoff.reset();
                }
                Err(error) => {
                    let delay = self.backoff.take();
                    tracing::warn!(%error, ?delay, "netlink unavailable; retrying");
                    if pause(delay, shutdown).await {
                        return None;
                    }
                }
            }
        }
        self.collector.as_mut()
    }

    /// The collector stopped with `error`: the next [`Nics::ready`] opens another.
    pub(crate) fn failed(&mut self, error: &NetlinkError) {
        tracing::warn!(%error, "netlink collector stopped; reopening");
        self.collector = None;
    }
}

struct Connection {
    xs: Xenstore,
    /// Ends (`None`) when the connection closes; its events (our own writes) are ignored.
    watch: Watch,
}

async fn connect(config: &AgentConfig, publisher: &Publisher) -> Result<Connection, XsError> {
    let xs = Xenstore::connect(&config.xenstore).await?;
    let watched = publisher.roots().first().cloned().unwrap_or_else(|| "data".into());
    let watch = xs.watch(&watched, WATCH_TOKEN).await?;
    Ok(Connection { xs, watch })
}

/// Waits for the connection's watch to end (the connection closed) and answers `false`; its
/// events (our own writes) answer `true`. Without a connection, never completes.
async fn watch_open(connection: Option<&mut Connection>) -> bool {
    match connection {
        Some(connection) => connection.watch.next().await.is_some(),
        None => std::future::pending().await,
    }
}

/// Runs the agent until `shutdown` completes. Returns an error only for a configuration that
/// cannot work; Xenstore and netlink failures are retried forever with backoff. While
/// Xenstore is unreachable the agent keeps following the NICs (into [`AgentConfig::live`]).
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let mut publisher = Publisher::new(config.domain_path.as_deref(), config.layout.owned_roots())?;
    let os = collect_os_info(&config.os_sources);
    tracing::info!(
        os = %os.name,
        version = os.version.as_deref().unwrap_or("-"),
        kernel = os.kernel_version.as_deref().unwrap_or("-"),
        layout = %config.layout,
        xenstore = %config.xenstore,
        "guest agent starting"
    );
    tokio::pin!(shutdown);
    let mut nics = Nics::new(config.min_backoff, config.max_backoff);
    let mut connection: Option<Connection> = None;
    let mut xenstore_backoff = Backoff::new(config.min_backoff, config.max_backoff);
    // When to try (again) to connect to Xenstore, while there is no connection.
    let mut connect_at = Instant::now();
    // The encoded tree last committed on this connection, to skip updates that change nothing.
    let mut last: Option<BTreeMap<String, String>> = None;
    loop {
        let Some(nl) = nics.ready(&mut shutdown).await else { return Ok(()) };
        let interfaces = nl.nics();
        let info = guest_info(config.layout, &os, &interfaces);
        let desired = config.layout.encode(&info);
        if let Some(live) = &config.live {
            live.publish(Snapshot { info, interfaces });
        }

        if connection.is_none() && Instant::now() >= connect_at {
            match bounded(config.xenstore_timeout, &mut shutdown, connect(&config, &publisher)).await {
                Bounded::Shutdown => return Ok(()),
                Bounded::Done(Ok(opened)) => {
                    tracing::info!(xenstore = %config.xenstore, "connected to Xenstore");
                    publisher.reset();
                    last = None;
                    connection = Some(opened);
                }
                Bounded::Done(Err(error)) => {
                    let delay = xenstore_backoff.take();
                    tracing::warn!(%error, ?delay, "cannot connect to Xenstore; retrying");
                    connect_at = Instant::now() + delay;
                }
                Bounded::TimedOut => {
                    let delay = xenstore_backoff.take();
                    let timeout = config.xenstore_timeout;
                    tracing::warn!(?timeout, ?delay, "Xenstore did not answer the connection; retrying");
                    connect_at = Instant::now() + delay;
                }
            }
        }
        if let Some(conn) = &connection {
            if last.as_ref() != Some(&desired) {
                let published = match bounded(
                    config.xenstore_timeout,
                    &mut shutdown,
                    publisher.publish(&conn.xs, &desired),
                )
                .await
                {
                    Bounded::Shutdown => return Ok(()),
                    Bounded::Done(published) => published,
                    Bounded::TimedOut => Err(PublishError::Xenstore(XsError::ConnectionClosed(format!(
                        "no answer within {:?}",
                        config.xenstore_timeout
                    )))),
                };
                match published {
                    Ok((removed, written)) => {
                        tracing::debug!(removed, written, "published");
                        xenstore_backoff.reset();
                        last = Some(desired);
                    }
                    Err(error @ PublishError::Refused { .. }) => {
                        // A layout bug: nothing was written. Try again on the next change.
                        tracing::error!(%error, "update refused");
                        last = Some(desired);
                    }
                    Err(error) => {
                        let delay = xenstore_backoff.take();
                        tracing::warn!(%error, ?delay, "publishing failed; reconnecting");
                        connection = None;
                        connect_at = Instant::now() + delay;
                    }
                }
            }
        }

        tokio::select! {
            () = &mut shutdown => return Ok(()),
            changed = nl.next_change(config.coalesce) => {
                if let Err(error) = changed {
                    nics.failed(&error);
                }
            }
            open = watch_open(connection.as_mut()) => {
                if !open {
                    tracing::warn!("Xenstore connection closed; reconnecting");
                    connection = None;
                    connect_at = Instant::now();
                }
            }
            () = tokio::time::sleep_until(connect_at), if connection.is_none() => {}
        }
    }
}

/// How a [`bounded`] step ended.
enum Bounded<T> {
    /// It completed.
    Done(T),
    /// It did not complete in time (and was dropped).
    TimedOut,
    /// `shutdown` completed first.
    Shutdown,
}

/// Runs `step` for at most `timeout`, unless `shutdown` completes first.
async fn bounded<T>(
    timeout: Duration,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    step: impl Future<Output = T>,
) -> Bounded<T> {
    tokio::select! {
        () = shutdown.as_mut() => Bounded::Shutdown,
        done = tokio::time::timeout(timeout, step) => done.map_or(Bounded::TimedOut, Bounded::Done),
    }
}

/// Sleeps for `delay` unless `shutdown` completes first; returns whether it did.
async fn pause(delay: Duration, shutdown: &mut Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        () = shutdown.as_mut() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xenstored that accepts and never answers: the agent gives each connection up after
    /// its timeout and connects again, and stops when asked to while waiting.
    #[tokio::test]
    async fn a_xenstored_that_never_answers_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("hung.sock");
        let hung = tokio::net::UnixListener::bind(&socket).unwrap();
        let mut config = AgentConfig::new(XenstoreAddr::Unix(socket), GuestLayout::V1, Some("/local/domain/3".into()));
        config.xenstore_timeout = Duration::from_millis(200);
        config.min_backoff = Duration::from_millis(10);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = tokio::spawn(run(config, async move {
            let _ = stopped.await;
        }));
        let mut held = Vec::new();
        for _ in 0..3 {
            let (connection, _) = tokio::time::timeout(Duration::from_secs(5), hung.accept())
                .await
                .expect("the agent connected again after giving the last connection up")
                .unwrap();
            held.push(connection);
        }
        stop.send(()).unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(1), agent).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "the agent did not stop while Xenstore hung");
    }
}
