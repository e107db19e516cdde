//! Setting a channel up: the server shares the page, binds the event channel and publishes both
//! in Xenstore; the client reads them there and maps the page. Step for step what
//! libxenvchan's `libxenvchan_server_init` and `libxenvchan_client_init` do, so either side can
//! be the C library.
//!
//! The server writes `<path>/ring-ref` and `<path>/event-channel` in one transaction, each with
//! permissions `n<self>,r<peer>` (only the peer may read them), after learning its own domain id
//! from the relative Xenstore path `domid`; it removes `<path>` when it closes.

use std::{
    io,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use vproto_xenstore::{Access, Permission, Xenstore, XsError, DEFAULT_TX_ATTEMPTS};

use crate::{
    backend::{Backend, DomId, GrantRef, Mapping, Port, UnmapNotify, PAGE_SIZE},
    channel::{Parts, Vchan},
    layout::{
        in_page_offset, pages, Geometry, GeometryError, CLI_LIVE, CLI_NOTIFY, GRANTS, LEFT_ORDER, LIVE_CONNECTED,
        LIVE_WAITING, NOTIFY_WRITE, RIGHT_ORDER, SRV_LIVE,
    },
    ring::{Role, SharedPage},
};

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VchanError {
    /// A grant or event-channel call failed.
    #[error("vchan {path}: {step}: {source}")]
    Backend {
        /// The channel's Xenstore path.
        path: String,
        /// What was being done.
        step: &'static str,
        /// The backend's error.
        source: io::Error,
    },
    /// A Xenstore call failed.
    #[error("vchan {path}: {step}: {source}")]
    Xenstore {
        /// The channel's Xenstore path.
        path: String,
        /// What was being done.
        step: &'static str,
        /// The Xenstore error.
        source: XsError,
    },
    /// The requested or published ring sizes are unusable.
    #[error("vchan {path}: {source}")]
    Geometry {
        /// The channel's Xenstore path.
        path: String,
        /// What is wrong with them.
        source: GeometryError,
    },
    /// A Xenstore node holds something other than what vchan writes there.
    #[error("vchan {path}: {node} holds {value:?}, not a non-zero number")]
    BadNode {
        /// The channel's Xenstore path.
        path: String,
        /// The node read.
        node: String,
        /// What it held.
        value: String,
    },
    /// Another client holds the channel published at the path.
    #[error("vchan {path}: the channel is taken by another client")]
    Taken {
        /// The channel's Xenstore path.
        path: String,
    },
    /// No server published the path (within the time allowed to wait for one).
    #[error("vchan {path}: no server is listening there ({node} is missing or unreadable)")]
    NoServer {
        /// The channel's Xenstore path.
        path: String,
        /// The node that was missing.
        node: String,
    },
}

impl VchanError {
    /// Whether the channel was there but held by another client (worth waiting for the next).
    fn is_taken(&self) -> bool {
        matches!(self, VchanError::Taken { .. } | VchanError::Backend { step: BIND_STEP, .. })
    }
}

/// A server's Xenstore entries, removed when the channel closes.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    xs: Xenstore,
    path: String,
}

impl Published {
    /// Removes the entries (errors are only logged: the channel is closing anyway).
    pub(crate) async fn remove(&self) {
        if let Err(error) = self.xs.rm(&self.path).await {
            tracing::debug!(%error, path = %self.path, "vchan: removing the published path failed");
        }
    }
}

/// What a server asks for.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The domain allowed to connect.
    pub peer: DomId,
    /// Xenstore path to publish at (absolute, or relative to this domain's home).
    pub path: String,
    /// At least this many bytes in the ring the client writes (client → server).
    pub read_min: usize,
    /// At least this many bytes in the ring the server writes (server → client).
    pub write_min: usize,
}

/// Creates the server side of a channel for domain `peer` and publishes it at `path`. Returns
/// at once, before any client connects ([`Vchan::peer_state`] is 2 until one does; see
/// [`Vchan::accepted`]); writes meanwhile fill the ring.
pub async fn listen(backend: Arc<dyn Backend>, xs: &Xenstore, options: &ServerOptions) -> Result<Vchan, VchanError> {
    let path = options.path.trim_end_matches('/').to_string();
    let geometry = Geometry::for_sizes(options.read_min, options.write_min)
        .map_err(|source| VchanError::Geometry { path: path.clone(), source })?;
    let step = |step| {
        let path = path.clone();
        move |source| VchanError::Backend { path, step, source }
    };
    let events = backend.open_events().map_err(step("opening the event channel"))?;
    let port = events.bind_unbound(options.peer).map_err(step("binding an unbound port"))?;
    events.unmask(port).map_err(step("unmasking the port"))?;
    let page = backend
        .share(options.peer, 1, true, Some(UnmapNotify { offset: SRV_LIVE, port }))
        .map_err(step("sharing the ring page"))?;
    let page_ptr = page.as_ptr();
    let mut mappings = vec![page];
    let mut grants = Vec::new();
    let mut data = [std::ptr::null_mut(); 2];
    for (slot, order) in [geometry.left, geometry.right].into_iter().enumerate() {
        data[slot] = match in_page_offset(order) {
            // SAFETY: in-page offsets are inside the page.
            Some(offset) => unsafe { page_ptr.add(offset) },
            None => {
                let ring = backend.share(options.peer, pages(order), true, None).map_err(step("sharing ring pages"))?;
                grants.extend_from_slice(ring.refs());
                let ptr = ring.as_ptr();
                mappings.push(ring);
                ptr
            }
        };
    }
    // SAFETY: the page is mapped and writable, and the fields and grant list lie inside it
    // (`Geometry` checked the list's length).
    unsafe {
        page_ptr.add(LEFT_ORDER).cast::<u16>().write_unaligned(u16::from(geometry.left));
        page_ptr.add(RIGHT_ORDER).cast::<u16>().write_unaligned(u16::from(geometry.right));
        page_ptr.add(CLI_LIVE).write(LIVE_WAITING);
        page_ptr.add(SRV_LIVE).write(LIVE_CONNECTED);
        page_ptr.add(CLI_NOTIFY).write(NOTIFY_WRITE);
        for (i, grant) in grants.iter().enumerate() {
            page_ptr.add(GRANTS + 4 * i).cast::<u32>().write_unaligned(*grant);
        }
    }
    // SAFETY: the mappings move into the channel with the view.
    let shared =
        unsafe { SharedPage::new(page_ptr, Role::Server, (data[0], geometry.left), (data[1], geometry.right)) };
    publish(xs, &path, options.peer, mappings[0].refs()[0], port).await?;
    let parts = Parts {
        shared,
        mappings,
        events,
        port,
        published: Mutex::new(Some(Published { xs: xs.clone(), path: path.clone() })),
    };
    Vchan::start(parts, Role::Server).map_err(step("registering the event channel"))
}

/// Writes `ring-ref` and `event-channel` under `path`, readable by `peer` only.
async fn publish(xs: &Xenstore, path: &str, peer: DomId, ring_ref: GrantRef, port: Port) -> Result<(), VchanError> {
    let xs_error = |step| move |source| VchanError::Xenstore { path: path.to_string(), step, source };
    let own = xs.read("domid").await.map_err(xs_error("reading this domain's id (relative path domid)"))?;
    let own = parse_number(path, "domid", &own)?;
    let perms = [Permission::new(own, Access::None), Permission::new(u32::from(peer), Access::Read)];
    let nodes =
        [(format!("{path}/ring-ref"), ring_ref.to_string()), (format!("{path}/event-channel"), port.to_string())];
    xs.transact(DEFAULT_TX_ATTEMPTS, |tx| {
        let nodes = nodes.clone();
        Box::pin(async move {
            for (node, value) in &nodes {
                tx.write(node, value.as_bytes()).await?;
                tx.set_perms(node, &perms).await?;
            }
            Ok(())
        })
    })
    .await
    .map_err(xs_error("publishing ring-ref and event-channel"))
}

fn parse_number(path: &str, node: &str, value: &[u8]) -> Result<u32, VchanError> {
    let text = String::from_utf8_lossy(value);
    text.trim_end_matches('\0').parse::<u32>().map_err(|_| VchanError::BadNode {
        path: path.to_string(),
        node: node.to_string(),
        value: text.into_owned(),
    })
}

/// Connects to the channel domain `peer` published at `path`. With `wait`, a server that has
/// not published yet, or whose channel another client holds, is waited for (by a Xenstore
/// watch) that long; otherwise either is an error at once, as with libxenvchan.
pub async fn connect(
    backend: Arc<dyn Backend>,
    xs: &Xenstore,
    peer: DomId,
    path: &str,
    wait: Option<Duration>,
) -> Result<Vchan, VchanError> {
    let path = path.trim_end_matches('/');
    let Some(limit) = wait else {
        let published = read_published(xs, path).await?;
        return attach(backend.as_ref(), peer, path, published);
    };
    let deadline = tokio::time::Instant::now() + limit;
    let token = format!("vchan-connect-{}-{:p}", std::process::id(), &deadline);
    let mut watch = xs.watch(path, &token).await.map_err(|source| VchanError::Xenstore {
        path: path.to_string(),
        step: "watching for the server",
        source,
    })?;
    // A channel found taken is not tried again until the server publishes another.
    let mut taken = None;
    let result = loop {
        let error = match read_published(xs, path).await {
            Ok(published) if taken != Some(published) => match attach(backend.as_ref(), peer, path, published) {
                Ok(chan) => break Ok(chan),
                Err(error) if error.is_taken() => {
                    taken = Some(published);
                    error
                }
                // Entries that changed while we attached were stale: try the new ones.
                Err(error) => match read_published(xs, path).await {
                    Ok(now) if now != published && tokio::time::Instant::now() < deadline => continue,
                    _ => break Err(error),
                },
            },
            Ok(_) => VchanError::Taken { path: path.to_string() },
            Err(error @ VchanError::NoServer { .. }) => error,
            Err(error) => break Err(error),
        };
        if tokio::time::Instant::now() >= deadline {
            break Err(error);
        }
        // A change below the path (or the deadline) is the next moment to look.
        let _ = tokio::time::timeout_at(deadline, watch.next()).await;
    };
    let _ = watch.unwatch().await;
    result
}

/// Binds to a published channel's port, maps its pages and claims it.
fn attach(
    backend: &dyn Backend,
    peer: DomId,
    path: &str,
    (ring_ref, port): (GrantRef, Port),
) -> Result<Vchan, VchanError> {
    let step = |step| move |source| VchanError::Backend { path: path.to_string(), step, source };
    // libxenvchan's client stores 1 in cli_live; claiming with a compare-exchange on a first
    // mapping (without an unmap notify, so letting go of it touches nothing) also tells a
    // client that raced to a channel that it is taken. The page comes first: entries that went
    // stale name a page that is gone, and their port number may already be another channel's.
    let probe = backend.map(peer, &[ring_ref], true, None).map_err(step("mapping the ring page"))?;
    // SAFETY: the live byte is inside the mapped page.
    let claim = unsafe { &*probe.as_ptr().add(CLI_LIVE).cast::<AtomicU8>() };
    if claim.compare_exchange(LIVE_WAITING, LIVE_CONNECTED, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(VchanError::Taken { path: path.to_string() });
    }
    // Until the channel is ours for good, a failure hands the claim back.
    let release = |error: VchanError| {
        claim.store(LIVE_WAITING, Ordering::Release);
        error
    };
    let events = backend.open_events().map_err(step("opening the event channel")).map_err(release)?;
    let port = events.bind_interdomain(peer, port).map_err(step(BIND_STEP)).map_err(release)?;
    events.unmask(port).map_err(step("unmasking the port")).map_err(release)?;
    let page = backend
        .map(peer, &[ring_ref], true, Some(UnmapNotify { offset: CLI_LIVE, port }))
        .map_err(step("mapping the ring page"))
        .map_err(release)?;
    drop(probe);
    let page_ptr = page.as_ptr();
    // SAFETY: the page is mapped; the orders are read once and checked before use.
    let (left, right) = unsafe {
        (
            page_ptr.add(LEFT_ORDER).cast::<u16>().read_volatile(),
            page_ptr.add(RIGHT_ORDER).cast::<u16>().read_volatile(),
        )
    };
    let geometry =
        Geometry::from_page(left, right).map_err(|source| VchanError::Geometry { path: path.to_string(), source })?;
    // SAFETY: `Geometry` checked that the grant list lies inside the page.
    let grants: Vec<GrantRef> = (0..geometry.grant_count())
        .map(|i| unsafe { page_ptr.add(GRANTS + 4 * i).cast::<u32>().read_volatile() })
        .collect();
    let mut mappings: Vec<Box<dyn Mapping>> = vec![page];
    let mut data = [std::ptr::null_mut(); 2];
    let mut next_grant = 0;
    // The client writes the left ring and only reads the right one.
    for (slot, (order, writable)) in [(geometry.left, true), (geometry.right, false)].into_iter().enumerate() {
        data[slot] = match in_page_offset(order) {
            // SAFETY: in-page offsets are inside the page.
            Some(offset) => unsafe { page_ptr.add(offset) },
            None => {
                let refs = &grants[next_grant..next_grant + pages(order)];
                next_grant += refs.len();
                let ring = backend.map(peer, refs, writable, None).map_err(step("mapping ring pages"))?;
                debug_assert_eq!(ring.len(), PAGE_SIZE * refs.len());
                let ptr = ring.as_ptr();
                mappings.push(ring);
                ptr
            }
        };
    }
    // SAFETY: the mappings move into the channel with the view.
    let shared =
        unsafe { SharedPage::new(page_ptr, Role::Client, (data[0], geometry.left), (data[1], geometry.right)) };
    // Ask the server to signal its writes, as libxenvchan's client does.
    shared.request_notify(NOTIFY_WRITE);
    let parts = Parts { shared, mappings, events, port, published: Mutex::new(None) };
    let chan = Vchan::start(parts, Role::Client).map_err(step("registering the event channel"))?;
    // Wake the server: it may be waiting for a client.
    chan.wake_peer();
    Ok(chan)
}

/// The step whose failure, when a server is known to have published, means another client
/// holds the channel's port.
const BIND_STEP: &str = "binding to the server's port";

async fn read_published(xs: &Xenstore, path: &str) -> Result<(GrantRef, Port), VchanError> {
    let mut values = [0u32; 2];
    for (value, node) in values.iter_mut().zip(["ring-ref", "event-channel"]) {
        let node = format!("{path}/{node}");
        let raw = xs.read(&node).await.map_err(|source| match source {
            XsError::NoEntry | XsError::Access => VchanError::NoServer { path: path.to_string(), node: node.clone() },
            source => VchanError::Xenstore { path: path.to_string(), step: "reading the published channel", source },
        })?;
        *value = parse_number(path, &node, &raw)?;
        if *value == 0 {
            return Err(VchanError::BadNode { path: path.to_string(), node, value: "0".into() });
        }
    }
    Ok((values[0], values[1]))
}
