//! `vproto vchan listen|connect`: a Xen vchan between this process's stdin/stdout and a peer
//! domain, as Xen's `vchan-socket-proxy` carries one to a socket.
//!
//! Standard input goes into the channel and the channel comes out on standard output. At the
//! end of the input the channel is closed once the peer has read everything (with
//! `--keep-open`, it stays open until the peer closes it); when the peer closes, what is left is
//! written out and the command exits 0. The peer is C libxenvchan or another vproto: the wire is
//! the same (docs/vchan.md).

use std::{
    io::{self, Read},
    sync::Arc,
    time::Duration,
};

use tokio::{io::AsyncWriteExt, sync::mpsc};
use vproto_vchan::{backend::BackendKind, Backend, ServerOptions, Vchan};
use vproto_xenstore::{Xenstore, XenstoreAddr};

use crate::{duration::parse_duration, serve::init_logging, CliError};

/// Arguments of `vproto vchan`.
#[derive(clap::Args)]
pub struct VchanArgs {
    #[command(subcommand)]
    end: End,
}

/// Which end this process is.
#[derive(clap::Subcommand)]
enum End {
    /// Publish a channel for domain --domain at --path and serve one client.
    Listen(EndArgs),
    /// Connect to the channel domain --domain published at --path.
    Connect(EndArgs),
}

/// What both ends are told.
#[derive(clap::Args)]
struct EndArgs {
    /// The peer domain: the one allowed to connect (listen), or the one that listens (connect).
    #[arg(long, value_name = "DOMID")]
    domain: u16,
    /// The channel's Xenstore path (absolute, or relative to this domain's home).
    #[arg(long, value_name = "XS_PATH")]
    path: String,
    /// The Xenstore: unix:PATH, xenbus or xenbus:PATH; default as libxenstore finds it:
    /// $XENSTORED_PATH, else xenstored's socket where it exists, else /dev/xen/xenbus.
    #[arg(long, value_name = "ADDR")]
    xenstore: Option<XenstoreAddr>,
    /// Grants and event channels from Xen's devices or the simulation (VPROTO_SIM_DOMID,
    /// VPROTO_SIM_DIR); default $VPROTO_VCHAN_BACKEND, else xen where /dev/xen/gntalloc exists,
    /// else sim.
    #[arg(long, value_name = "xen|sim")]
    backend: Option<BackendKind>,
    /// Listen: at least this many bytes in each ring (up to 1 MiB; 1024 and 2048 fit in the shared
    /// page).
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    ring_size: usize,
    /// Connect: how long to wait for the server to publish the channel.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    wait: Duration,
    /// At the end of the input, keep the channel open until the peer closes it.
    #[arg(long)]
    keep_open: bool,
    /// Log filter (tracing EnvFilter syntax); default $VPROTO_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

/// Runs one channel to its end.
pub fn run(args: VchanArgs) -> Result<(), CliError> {
    let (listen, args) = match args.end {
        End::Listen(args) => (true, args),
        End::Connect(args) => (false, args),
    };
    init_logging(args.log.as_deref())?;
    let backend = open_backend(args.backend)?;
    let xs_addr = args.xenstore.clone().unwrap_or_else(XenstoreAddr::discover);
    crate::block_on(async move {
        let xs = Xenstore::connect(&xs_addr).await.map_err(|error| CliError::failed(error.to_string()))?;
        let chan = if listen {
            let options = ServerOptions {
                peer: args.domain,
                path: args.path.clone(),
                read_min: args.ring_size,
                write_min: args.ring_size,
            };
            let mut chan = vproto_vchan::listen(backend, &xs, &options).await.map_err(setup_error)?;
            chan.accepted().await;
            chan
        } else {
            vproto_vchan::connect(backend, &xs, args.domain, &args.path, Some(args.wait)).await.map_err(setup_error)?
        };
        copy_stdio(chan, args.keep_open).await
    })
}

fn open_backend(kind: Option<BackendKind>) -> Result<Arc<dyn Backend>, CliError> {
    let kind = match kind {
        Some(kind) => kind,
        None => BackendKind::from_env().map_err(CliError::usage)?,
    };
    kind.open().map_err(|error| CliError::failed(format!("vchan backend {kind:?}: {error}")))
}

/// Bad sizes are the user's; everything else (no server, a refused grant) is a failure.
fn setup_error(error: vproto_vchan::VchanError) -> CliError {
    match error {
        vproto_vchan::VchanError::Geometry { .. } => CliError::usage(error.to_string()),
        error => CliError::failed(error.to_string()),
    }
}

/// Copies stdin into the channel and the channel to stdout until the channel is done with.
async fn copy_stdio(chan: Vchan, keep_open: bool) -> Result<(), CliError> {
    let (mut from_peer, mut to_peer) = chan.into_split();
    let receive = async {
        let mut stdout = tokio::io::stdout();
        let copied = tokio::io::copy(&mut from_peer, &mut stdout).await;
        stdout.flush().await.and(copied.map(drop))
    };
    let send = async {
        let mut input = stdin_chunks();
        while let Some(chunk) = input.recv().await {
            match to_peer.write_all(&chunk?).await {
                Ok(()) => {}
                // The peer closed while we were sending: what it sent still comes out.
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        if keep_open {
            return Ok(false);
        }
        to_peer.shutdown().await.map(|()| true)
    };
    tokio::pin!(receive, send);
    tokio::select! {
        received = &mut receive => received.map_err(|error| CliError::failed(format!("reading the channel: {error}"))),
        sent = &mut send => match sent {
            // Closed after the peer read everything: done.
            Ok(true) => Ok(()),
            // Input over (or the peer gone): the channel's end decides.
            Ok(false) => receive.await.map_err(|error| CliError::failed(format!("reading the channel: {error}"))),
            Err(error) => Err(CliError::failed(format!("writing to the channel: {error}"))),
        },
    }
}

/// Standard input, read on a thread of its own in chunks of up to 64 KiB. A blocking read
/// cannot be cancelled: on tokio's blocking pool it would hold the runtime, and so the exit,
/// until the input ended, even after the peer closed the channel.
fn stdin_chunks() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (chunks, received) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut chunk = vec![0; 64 * 1024];
            let read = match stdin.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            let failed = read.is_err();
            if chunks.blocking_send(read).is_err() || failed {
                break;
            }
        }
    });
    received
}
