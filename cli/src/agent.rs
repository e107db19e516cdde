//! `vproto agent`: the Xen guest agent (not the Cyborg agent, which is `vproto serve agent`).
//!
//! With `--vchan XS_PATH` (or `--guest-channel ADDR`) it also serves the guest channel, the
//! schema's `guest` service, beside the Xenstore publishing, on the agent's own one-thread
//! runtime: `guest.info` and `guest.nic_counters` answer from the agent's live state (the
//! NICs it has just read, whether or not Xenstore is reachable), never from Xenstore.

use std::sync::Arc;

use clap::Args;
use vproto_api::{service_openrpc, GuestServer};
use vproto_jsonrpc::{ListenAddr, Server};
use vproto_listen::TerminationSignals;
use vproto_services::guest_agent::{self, AgentConfig, LiveState};
use vproto_services::guest_channel::GuestChannel;
use vproto_services::guest_tree::{GuestLayout, UnknownLayout};
use vproto_support::rpc::{Discover, Router};
use vproto_xenstore::XenstoreAddr;

use crate::{serve::init_logging, CliError};

/// The domain a guest's channel is offered to: dom0, the toolstack's.
const VCHAN_PEER: u32 = 0;

/// Options of `vproto agent`.
#[derive(Args)]
pub struct AgentArgs {
    /// Where Xenstore is: `xenbus` (/dev/xen/xenbus, inside a Xen guest), `xenbus:DEVICE`, or
    /// `unix:PATH` (a xenstored socket, such as `vproto xenstored --socket PATH`).
    #[arg(long, default_value = "xenbus", value_parser = parse_addr)]
    xenstore: XenstoreAddr,
    /// The data tree layout: `v1` (data/vproto, versioned) or `legacy` (xe-guest-utilities'
    /// data/os_* and attr/vif/* keys, read by existing Xen toolstacks).
    #[arg(long, default_value = "v1", value_parser = parse_layout)]
    layout: GuestLayout,
    /// The domain's home path, such as /local/domain/7. Default: paths relative to the
    /// connection's own home, which is what a guest on xenbus wants.
    #[arg(long, value_name = "PATH")]
    domain_path: Option<String>,
    /// Also serve the guest channel (the `guest` JSON-RPC service: live NIC counters and the
    /// current GuestInfo) to dom0 over vchan, offered at XS_PATH in Xenstore (the listen address
    /// `vchan:0:XS_PATH`).
    #[arg(long, value_name = "XS_PATH", conflicts_with = "guest_channel")]
    vchan: Option<String>,
    /// Serve the guest channel on this address instead of vchan: unix:PATH or
    /// vchan:PEER:XS_PATH (no token is asked for, so not on tcp: or http://).
    #[arg(long, value_name = "ADDR")]
    guest_channel: Option<String>,
    /// Log filter (tracing EnvFilter syntax, such as `debug`); default `$VPROTO_LOG`, else `info`.
    #[arg(long)]
    log: Option<String>,
}

fn parse_addr(text: &str) -> Result<XenstoreAddr, String> {
    text.parse().map_err(|error| format!("{error}"))
}

fn parse_layout(text: &str) -> Result<GuestLayout, UnknownLayout> {
    text.parse()
}

/// Runs the agent until SIGINT or SIGTERM, on the guest agent's own one-thread runtime, with
/// the guest channel beside it when asked for.
pub fn run(args: AgentArgs) -> Result<(), CliError> {
    init_logging(args.log.as_deref())?;
    let listen = guest_channel_addr(args.vchan.as_deref(), args.guest_channel.as_deref())?;
    let config = AgentConfig::new(args.xenstore, args.layout, args.domain_path);
    match listen {
        None => Ok(guest_agent::run_until_signalled(config)?),
        Some(listen) => run_with_guest_channel(config, &listen),
    }
}

/// Where the guest channel is served, if anywhere: `--vchan XS_PATH` is the vchan to dom0
/// offered at XS_PATH (`vchan:0:XS_PATH`), `--guest-channel ADDR` the address given. A
/// channel without a token is refused on `tcp:`, `http://` (anyone who reaches the port could
/// read the guest's data) and `stdio` (not a channel to dom0).
pub fn guest_channel_addr(vchan: Option<&str>, address: Option<&str>) -> Result<Option<ListenAddr>, CliError> {
    let (flag, text) = match (vchan, address) {
        (Some(path), _) => {
            if path.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CliError::usage(format!(
                    "--vchan `{path}`: give the Xenstore path the channel is offered at, such as data/vproto-channel"
                )));
            }
            ("--vchan", format!("vchan:{VCHAN_PEER}:{path}"))
        }
        (None, Some(address)) => ("--guest-channel", address.to_string()),
        (None, None) => return Ok(None),
    };
    let listen: ListenAddr = text.parse().map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    if matches!(listen, ListenAddr::Tcp { .. } | ListenAddr::Http { .. } | ListenAddr::Stdio) {
        return Err(CliError::usage(format!(
            "{flag}: the guest channel asks no token, so it is not served on {listen}: use unix:PATH or vchan:PEER:XS_PATH"
        )));
    }
    Ok(Some(listen))
}

/// Runs the guest agent with its guest channel served on `listen` beside it, on the agent's
/// one-thread runtime, until SIGINT or SIGTERM; the channel answers from the agent's
/// [`LiveState`]. A channel that cannot be bound stops everything before the agent starts; one
/// that stops on its own (its peer went away for good) is logged, and the agent goes on.
pub fn run_with_guest_channel(mut config: AgentConfig, listen: &ListenAddr) -> Result<(), CliError> {
    let live = LiveState::new();
    config.live = Some(live.clone());
    guest_agent::runtime()?.block_on(async move {
        let mut signals = TerminationSignals::watch();
        let router = Router::new().with(GuestServer(Arc::new(GuestChannel::new(live))));
        let discover = Discover::hosting(&router, service_openrpc)
            .map_err(|e| CliError::failed(format!("the OpenRPC document: {e}")))?;
        let running = Server::new(router.with(discover))
            .bind(listen)
            .await
            .map_err(|e| CliError::failed(format!("the guest channel on {listen}: {e}")))?;
        tracing::info!(listen = %running.local_addr(), "guest channel listening");
        let handle = running.handle();
        let mut channel = std::pin::pin!(running.wait());
        let mut agent = std::pin::pin!(guest_agent::run(config, async move {
            let signal = signals.recv().await;
            tracing::info!(%signal, "shutting down");
        }));
        let mut channel_stopped = false;
        let result = tokio::select! {
            result = &mut agent => result,
            () = &mut channel => {
                channel_stopped = true;
                tracing::warn!("the guest channel stopped; the agent goes on publishing");
                agent.await
            }
        };
        handle.shutdown();
        if !channel_stopped {
            channel.await;
        }
        result.map_err(CliError::from)
    })
}
