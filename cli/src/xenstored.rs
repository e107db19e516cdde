//! `vproto xenstored`: the embedded Xenstore server, for development and tests.
//!
//! Every connection on `--socket` is dom0 (privileged). Each `--domain DOMID=PATH` adds a socket
//! whose connections are that guest (unprivileged, quotas apply, relative paths resolve under
//! `/local/domain/DOMID`, which is created and owned by it). Once listening, `unix:PATH` of the
//! dom0 socket is printed as one line on stdout; SIGINT or SIGTERM stops the server and removes
//! the socket files. The store lives in memory only.

use std::{io::Write, path::PathBuf};

use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, XenstoredConfig},
    XenstoreAddr,
};

use crate::{block_on, serve::init_logging, CliError};

/// Arguments of `vproto xenstored`.
#[derive(clap::Args)]
pub struct XenstoredArgs {
    /// The dom0 socket; default $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else
    /// /var/run/xenstored/socket (as libxenstore looks for it).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A socket whose connections are guest DOMID (repeatable), e.g. 5=/tmp/dom5.sock.
    #[arg(long = "domain", value_name = "DOMID=PATH")]
    domains: Vec<DomainSocket>,
    /// Nodes a guest may own (ENOSPC beyond).
    #[arg(long, value_name = "N", default_value_t = Quotas::default().nodes_per_domain)]
    quota_nodes: usize,
    /// Largest value a guest may write, in bytes (ENOSPC beyond).
    #[arg(long, value_name = "BYTES", default_value_t = Quotas::default().entry_size)]
    quota_entry_size: usize,
    /// Watches per guest connection (E2BIG beyond).
    #[arg(long, value_name = "N", default_value_t = Quotas::default().watches_per_connection)]
    quota_watches: usize,
    /// Open transactions per guest connection (ENOSPC beyond).
    #[arg(long, value_name = "N", default_value_t = Quotas::default().transactions_per_connection)]
    quota_transactions: usize,
    /// Open connections per guest domain (the next one's first request is answered ENOSPC and
    /// it is closed); dom0's are not counted.
    #[arg(long, value_name = "N", default_value_t = Quotas::default().connections_per_domain)]
    quota_connections: usize,
    /// Bytes queued for a connection that does not read its replies before it is closed.
    #[arg(long, value_name = "BYTES", default_value_t = Quotas::default().outbound_bytes)]
    max_outbound: usize,
    /// Log filter (tracing EnvFilter syntax); default $VPROTO_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: XenstoredArgs) -> Result<(), CliError> {
    init_logging(args.log.as_deref())?;
    let socket = args.socket.clone().unwrap_or_else(|| XenstoreAddr::from_env().path().to_path_buf());
    if args.socket.is_none() {
        if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| CliError::usage(format!("cannot create {}: {error}", dir.display())))?;
        }
    }
    let config = XenstoredConfig {
        socket,
        domains: args.domains,
        quotas: Quotas {
            nodes_per_domain: args.quota_nodes,
            entry_size: args.quota_entry_size,
            watches_per_connection: args.quota_watches,
            transactions_per_connection: args.quota_transactions,
            connections_per_domain: args.quota_connections,
            outbound_bytes: args.max_outbound,
        },
    };
    block_on(async move {
        let server = server::serve(config).await.map_err(|error| CliError::failed(error.to_string()))?;
        // Ready once a signal would be heard.
        let mut signals = vproto_listen::TerminationSignals::watch();
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "unix:{}", server.socket().display());
        let _ = stdout.flush();
        let signal = signals.recv().await;
        tracing::info!(%signal, "shutting down");
        server.shutdown().await;
        Ok(())
    })
}
