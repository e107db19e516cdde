//! JSON-RPC over Xen's vchan (`vchan:PEER:XS_PATH`): newline-framed like the other stream
//! transports, one client at a time per channel, a fresh channel published for the next client
//! as soon as one connects ([`vproto_vchan::VchanListener`]).
//!
//! Where the channel's parts come from is the environment, as for Xen's own tools: the Xenstore
//! is found as libxenstore finds it (`XENSTORED_PATH`, else xenstored's socket where it exists,
//! else a guest's xenbus device; [`XenstoreAddr::discover`]), `VPROTO_VCHAN_BACKEND` (`xen` or
//! `sim`; by default `xen` where `/dev/xen/gntalloc` exists) the grant and event-channel
//! backend, and the simulation's own `VPROTO_SIM_DOMID` and `VPROTO_SIM_DIR` apply to `sim`.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use vproto_vchan::{backend::BackendKind, Backend, ServerOptions, Vchan, VchanListener};
use vproto_xenstore::{Xenstore, XenstoreAddr};

use super::addr::AddrError;

/// Ring sizes of channels published by a server: 64 KiB each way, enough for most messages to
/// go in one write.
pub const RING_BYTES: usize = 64 * 1024;

/// `vchan:PEER:XS_PATH`: the domain at the other end and the Xenstore path of the channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VchanAddr {
    /// The domain at the other end: the one allowed to connect (server), or the one that
    /// published the channel (client).
    pub peer: u16,
    /// The channel's Xenstore path (absolute, or relative to this domain's home).
    pub path: String,
}

impl FromStr for VchanAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let invalid = |reason: &str| AddrError { input: input.to_string(), reason: reason.to_string() };
        let rest = input.strip_prefix("vchan:").ok_or_else(|| invalid("expected vchan:PEER:XS_PATH"))?;
        let (peer, path) = rest
            .split_once(':')
            .ok_or_else(|| invalid("expected vchan:PEER:XS_PATH (the Xenstore path is missing)"))?;
        let peer = peer.parse::<u16>().map_err(|_| invalid("the peer must be a domain id, 0-65535"))?;
        if path.is_empty() || path.ends_with('/') || path.contains("//") || path.contains('\0') {
            return Err(invalid("the Xenstore path must be non-empty, without empty components"));
        }
        Ok(VchanAddr { peer, path: path.to_string() })
    }
}

impl fmt::Display for VchanAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vchan:{}:{}", self.peer, self.path)
    }
}

/// The backend and Xenstore named by the environment.
async fn environment() -> Result<(Arc<dyn Backend>, Xenstore), String> {
    let backend = BackendKind::from_env()?.open().map_err(|error| format!("vchan backend: {error}"))?;
    let addr = XenstoreAddr::discover();
    let xs = Xenstore::connect(&addr).await.map_err(|error| error.to_string())?;
    Ok((backend, xs))
}

/// Publishes the first channel of a server at `addr`.
pub(super) async fn bind(addr: &VchanAddr) -> Result<VchanListener, String> {
    let (backend, xs) = environment().await?;
    let options =
        ServerOptions { peer: addr.peer, path: addr.path.clone(), read_min: RING_BYTES, write_min: RING_BYTES };
    VchanListener::bind(backend, xs, options).await.map_err(|error| error.to_string())
}

/// Connects to the channel at `addr`, waiting up to `wait` for a server to publish it (or to
/// publish the next one while another client holds the current).
pub async fn connect(addr: &VchanAddr, wait: Duration) -> Result<Vchan, String> {
    let (backend, xs) = environment().await?;
    vproto_vchan::connect(backend, &xs, addr.peer, &addr.path, Some(wait)).await.map_err(|error| error.to_string())
}
