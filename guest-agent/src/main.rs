//! `vproto-guest-agent`: the Xen guest agent alone, for guests.
//!
//! The same agent as `vproto agent` (`vproto_services::guest_agent` does all the work; this
//! is only its front end), in a binary that links nothing else: no Cyborg or os-vif services,
//! no conformance suite, no clap, no regex-based log filter. Built with the workspace's
//! `guest-agent` profile (fat LTO, one codegen unit, `panic = "abort"`, stripped), its resident
//! memory in steady state is about a third of `vproto agent`'s (docs/benchmarks.md).
//!
//! ```text
//! vproto-guest-agent [--xenstore unix:PATH|xenbus|xenbus:DEVICE] [--layout v1|legacy]
//!                    [--domain-path PATH] [--log FILTER]
//! ```

use std::process::ExitCode;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use vproto_services::guest_agent::{self, AgentConfig};
use vproto_services::guest_tree::GuestLayout;
use vproto_xenstore::XenstoreAddr;

const NAME: &str = "vproto-guest-agent";

const USAGE: &str = "\
Xen guest agent: publish OS and NIC state in this guest's Xenstore data tree.

Usage: vproto-guest-agent [OPTIONS]

Options:
  --xenstore ADDR      where Xenstore is: `xenbus` (/dev/xen/xenbus, inside a Xen guest),
                       `xenbus:DEVICE`, or `unix:PATH` (a xenstored socket) [default: xenbus]
  --layout LAYOUT      `v1` (data/vproto, versioned) or `legacy` (xe-guest-utilities'
                       data/os_* and attr/vif/* keys) [default: v1]
  --domain-path PATH   the domain's home, such as /local/domain/7 [default: paths relative
                       to the connection's own home, which is what a guest on xenbus wants]
  --log FILTER         `LEVEL` or `target=level,...` (error, warn, info, debug, trace)
                       [default: $VPROTO_LOG, else info]
  -h, --help           print this help
  -V, --version        print the version

The same agent as `vproto agent`; see docs/guest-data-tree.md for the tree it writes.
";

/// The command line, parsed.
#[derive(Debug)]
struct Options {
    xenstore: XenstoreAddr,
    layout: GuestLayout,
    domain_path: Option<String>,
    log: Option<String>,
}

/// What the command line asks for.
enum Request {
    Run(Options),
    Help,
    Version,
}

/// Parses the arguments after the program name. Options take their value as the next
/// argument or after `=`.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Request, String> {
    let mut xenstore = None;
    let mut layout = None;
    let mut domain_path = None;
    let mut log = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value.to_string())),
            _ => (arg, None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        match name.as_str() {
            "-h" | "--help" => return Ok(Request::Help),
            "-V" | "--version" => return Ok(Request::Version),
            "--xenstore" => {
                let text = value(&name)?;
                xenstore = Some(text.parse::<XenstoreAddr>().map_err(|error| format!("--xenstore: {error}"))?);
            }
            "--layout" => {
                layout = Some(value(&name)?.parse::<GuestLayout>().map_err(|error| format!("--layout: {error}"))?)
            }
            "--domain-path" => domain_path = Some(value(&name)?),
            "--log" => log = Some(value(&name)?),
            other => return Err(format!("unexpected argument `{other}` (see --help)")),
        }
    }
    let xenstore = match xenstore {
        Some(addr) => addr,
        None => "xenbus".parse().map_err(|error| format!("{error}"))?,
    };
    Ok(Request::Run(Options { xenstore, layout: layout.unwrap_or(GuestLayout::V1), domain_path, log }))
}

/// Logs to stderr through a `Targets` filter: `--log`, else `$VPROTO_LOG`, else `info`.
fn init_logging(flag: Option<&str>) -> Result<(), String> {
    let text = flag.map(str::to_string).or_else(|| std::env::var("VPROTO_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter: Targets = text.parse().map_err(|error| format!("--log `{text}`: {error}"))?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false))
        .with(filter)
        .try_init()
        .map_err(|error| format!("cannot set up logging: {error}"))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Request::Run(options)) => options,
        Ok(Request::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("{NAME} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{NAME}: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = init_logging(options.log.as_deref()) {
        eprintln!("{NAME}: {message}");
        return ExitCode::from(2);
    }
    let config = AgentConfig::new(options.xenstore, options.layout, options.domain_path);
    match guest_agent::run_until_signalled(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|arg| arg.to_string()))? {
            Request::Run(options) => Ok(options),
            Request::Help | Request::Version => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults_and_both_value_forms() {
        let options = run(&[]).unwrap();
        assert_eq!(options.xenstore.to_string(), "xenbus");
        assert_eq!(options.layout, GuestLayout::V1);
        assert!(options.domain_path.is_none() && options.log.is_none());
        let options = run(&[
            "--xenstore=unix:/tmp/xs.sock",
            "--layout",
            "legacy",
            "--domain-path",
            "/local/domain/7",
            "--log=debug",
        ])
        .unwrap();
        assert_eq!(options.xenstore.to_string(), "unix:/tmp/xs.sock");
        assert_eq!(options.layout, GuestLayout::Legacy);
        assert_eq!(options.domain_path.as_deref(), Some("/local/domain/7"));
        assert_eq!(options.log.as_deref(), Some("debug"));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(run(&["--layout", "v9"]).unwrap_err().starts_with("--layout"));
        assert!(run(&["--xenstore", "tcp:1"]).unwrap_err().starts_with("--xenstore"));
        assert_eq!(run(&["--log"]).unwrap_err(), "--log needs a value");
        assert!(run(&["agent"]).unwrap_err().contains("unexpected argument `agent`"));
        assert!(matches!(parse(["--help".to_string()]), Ok(Request::Help)));
    }
}
