//! `vproto agent`: the Xen guest agent (not the Cyborg agent, which is `vproto serve agent`).

use clap::Args;
use vproto_services::guest_agent::{self, AgentConfig};
use vproto_services::guest_tree::{GuestLayout, UnknownLayout};
use vproto_xenstore::XenstoreAddr;

use crate::{serve::init_logging, CliError};

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

/// Runs the agent until SIGINT or SIGTERM, on the guest agent's own one-thread runtime.
pub fn run(args: AgentArgs) -> Result<(), CliError> {
    init_logging(args.log.as_deref())?;
    let config = AgentConfig::new(args.xenstore, args.layout, args.domain_path);
    Ok(guest_agent::run_until_signalled(config)?)
}
