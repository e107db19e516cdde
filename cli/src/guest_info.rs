//! `vproto guest-info`: the host side of the guest data tree. Reads a guest's
//! tree from Xenstore in one read-only transaction (so a concurrent agent
//! update is never half seen), refuses a layout major version it does not
//! know, validates the tree against the schema and prints GuestInfo as JSON.
//!
//! With `--watch`, it keeps a Xenstore watch on each subtree the layout reads and prints the
//! tree as one JSON line, then a new line each time it reads differently. A burst of changes
//! (an agent's transaction fires one watch event per node) is read once: after 20 ms without
//! another event, or 100 ms after the first. It runs until SIGINT or SIGTERM (exit 0); a tree
//! that becomes invalid (or disappears) ends it with the path and the reason, as a refused tree
//! ends a single read.

use std::{collections::BTreeMap, io::Write, time::Duration};

use clap::Args;
use tokio::{sync::mpsc, time::Instant};
use vproto_listen::TerminationSignals;
use vproto_services::guest_tree::GuestLayout;
use vproto_support::{tree::TreeError, wire::WireValue};
use vproto_xenstore::{Transaction, Xenstore, XenstoreAddr, XsError, DEFAULT_TX_ATTEMPTS};

use crate::CliError;

/// Arguments of `vproto guest-info`.
#[derive(Args, Debug)]
pub struct GuestInfoArgs {
    /// Xenstore to read: `unix:PATH` (xenstored's socket, or `vproto xenstored`) or `xenbus`.
    #[arg(long, value_name = "ADDR")]
    xenstore: String,
    /// The guest's domain id; its tree lives under GET_DOMAIN_PATH(ID) (`/local/domain/ID`).
    #[arg(long, value_name = "ID")]
    domain: u32,
    /// The layout to read: `v1` (data/vproto, versioned) or `legacy` (xe-guest-utilities' keys).
    #[arg(long, default_value = "v1", value_name = "v1|legacy")]
    layout: String,
    /// Keep watching: print the tree as one JSON line, then a line on every change, until
    /// SIGINT/SIGTERM or the tree becomes invalid.
    #[arg(long)]
    watch: bool,
}

/// The most nodes read from one guest: a guest controls its tree, so a reader bounds its work.
/// Xen's default quota is 1,000 nodes per domain; this leaves room for a generous one.
pub const MAX_NODES: usize = 100_000;

/// With `--watch`, how long a burst of changes may go quiet before the tree is read.
const QUIET: Duration = Duration::from_millis(20);
/// With `--watch`, the longest a burst of changes delays reading the tree.
const LONGEST_BURST: Duration = Duration::from_millis(100);

/// Runs the command; every failure is exit 2.
pub async fn run(args: &GuestInfoArgs) -> Result<(), CliError> {
    guest_info(args).await.map_err(CliError::Usage)
}

/// One guest's tree in one Xenstore: where it lives and how it is laid out.
struct Guest {
    xs: Xenstore,
    addr: XenstoreAddr,
    home: String,
    domain: u32,
    layout: GuestLayout,
}

async fn guest_info(args: &GuestInfoArgs) -> Result<(), String> {
    let layout: GuestLayout = args.layout.parse().map_err(|e| format!("--layout: {e}"))?;
    let addr: XenstoreAddr = args.xenstore.parse().map_err(|e: XsError| format!("--xenstore: {e}"))?;
    // Heard from now on, so a signal while the first tree is read ends a watch quietly.
    let signals = args.watch.then(TerminationSignals::watch);
    let guest = Guest::connect(addr, args.domain, layout).await?;
    match signals {
        Some(signals) => watch(&guest, signals).await,
        None => {
            let info = guest.read().await?;
            let text =
                serde_json::to_string_pretty(&info.to_wire()).map_err(|e| format!("cannot print the tree: {e}"))?;
            println!("{text}");
            Ok(())
        }
    }
}

/// Prints the tree, then again at every change that reads differently, until a signal.
async fn watch(guest: &Guest, mut signals: TerminationSignals) -> Result<(), String> {
    // Watches first, so no change between the first read and them goes unseen.
    let mut changes = guest.watch().await?;
    let mut printed = None;
    loop {
        let line =
            serde_json::to_string(&guest.read().await?.to_wire()).map_err(|e| format!("cannot print the tree: {e}"))?;
        if printed.as_ref() != Some(&line) {
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
                Ok(()) => {}
                // Whoever read the lines stopped (`| head`): nothing more to do.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(error) => return Err(format!("cannot print the tree: {error}")),
            }
            printed = Some(line);
        }
        tokio::select! {
            burst = next_burst(&mut changes) => {
                if !burst {
                    let why = guest.xs.closed().await;
                    return Err(format!("the connection to Xenstore at {} was lost: {why}", addr_text(&guest.addr)));
                }
            }
            _ = signals.recv() => return Ok(()),
        }
    }
}

/// Waits for a change, then for the rest of its burst ([`QUIET`], at most [`LONGEST_BURST`]);
/// false once the watches have ended (the connection closed).
async fn next_burst(changes: &mut mpsc::UnboundedReceiver<()>) -> bool {
    if changes.recv().await.is_none() {
        return false;
    }
    let longest = Instant::now() + LONGEST_BURST;
    loop {
        let until = (Instant::now() + QUIET).min(longest);
        match tokio::time::timeout_at(until, changes.recv()).await {
            Ok(Some(())) if Instant::now() < longest => continue,
            Ok(None) => return false,
            Ok(Some(())) | Err(_) => return true,
        }
    }
}

impl Guest {
    /// Connects and finds the guest's home path.
    async fn connect(addr: XenstoreAddr, domain: u32, layout: GuestLayout) -> Result<Guest, String> {
        let xs = Xenstore::connect(&addr)
            .await
            .map_err(|e| format!("cannot connect to Xenstore at {}: {e}", addr_text(&addr)))?;
        let home = match xs.get_domain_path(domain).await {
            Ok(path) if path.starts_with('/') => path.trim_end_matches('/').to_string(),
            Ok(path) => return Err(format!("GET_DOMAIN_PATH({domain}) answered {path:?}, not an absolute path")),
            Err(XsError::NoSys | XsError::Inval | XsError::NoEntry) => format!("/local/domain/{domain}"),
            Err(e) => return Err(format!("GET_DOMAIN_PATH({domain}): {e}")),
        };
        Ok(Guest { xs, addr, home, domain, layout })
    }

    /// The tree as it is now, validated.
    async fn read(&self) -> Result<vproto_api::GuestInfo, String> {
        let entries = read_tree(&self.xs, &self.home, self.layout).await?;
        self.layout.decode(&entries).map_err(|error| describe(&self.home, self.domain, self.layout, &error))
    }

    /// Watches every subtree the layout reads; a unit arrives for each watch event, and the
    /// channel ends when a watch does (the connection closed).
    async fn watch(&self) -> Result<mpsc::UnboundedReceiver<()>, String> {
        let (sender, receiver) = mpsc::unbounded_channel();
        for (index, root) in self.layout.read_roots().iter().enumerate() {
            let path = format!("{}/{root}", self.home);
            let mut watch = self
                .xs
                .watch(&path, &format!("vproto-guest-info-{index}"))
                .await
                .map_err(|e| format!("cannot watch {path}: {e}"))?;
            let sender = sender.clone();
            tokio::spawn(async move {
                while watch.next().await.is_some() {
                    if sender.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(receiver)
    }
}

fn describe(home: &str, domain: u32, layout: GuestLayout, error: &TreeError) -> String {
    let hint = match error {
        TreeError::NoTree { .. } => match layout {
            GuestLayout::V1 => " (is `vproto agent` running in the guest? try --layout legacy for xe-guest-utilities)",
            GuestLayout::Legacy => " (is a legacy guest agent running? try --layout v1 for `vproto agent`)",
        },
        _ => "",
    };
    format!("domain {domain}: the {layout} data tree under {home} is refused: {home}/{error}{hint}")
}

/// Every node below the layout's read roots under `home`, relative to it, read in one
/// transaction.
async fn read_tree(xs: &Xenstore, home: &str, layout: GuestLayout) -> Result<BTreeMap<String, String>, String> {
    let roots = layout.read_roots();
    // A refusal is the transaction's value, so only Xenstore errors (EAGAIN) rerun it.
    let entries = xs
        .transact(DEFAULT_TX_ATTEMPTS, |tx| {
            let home = home.to_string();
            Box::pin(async move {
                let mut entries = BTreeMap::new();
                for root in roots {
                    if let Err(refusal) = walk(tx, &home, root, &mut entries).await? {
                        return Ok(Err(refusal));
                    }
                }
                Ok(Ok(entries))
            })
        })
        .await
        .map_err(|e| format!("reading {home}: {e}"))??;
    Ok(entries)
}

fn addr_text(addr: &XenstoreAddr) -> String {
    match addr {
        XenstoreAddr::Unix(path) => format!("unix:{}", path.display()),
        XenstoreAddr::Xenbus(path) => format!("xenbus:{}", path.display()),
    }
}

/// Reads the node `home/relative` and everything below it into `entries`
/// (absent nodes are skipped). Iterative, so a deep tree costs no stack.
/// The inner error is a refusal to read on (non-UTF-8 value, too many nodes).
async fn walk(
    tx: &Transaction,
    home: &str,
    relative: &str,
    entries: &mut BTreeMap<String, String>,
) -> Result<Result<(), String>, XsError> {
    let mut pending = vec![relative.to_string()];
    while let Some(relative) = pending.pop() {
        let path = format!("{home}/{relative}");
        let value = match tx.read(&path).await {
            Ok(value) => value,
            Err(XsError::NoEntry) => continue,
            Err(e) => return Err(e),
        };
        let Ok(value) = String::from_utf8(value) else {
            return Ok(Err(format!("{path}: the value is not UTF-8 text, which no field of the layout holds")));
        };
        entries.insert(relative.clone(), value);
        if entries.len() > MAX_NODES {
            return Ok(Err(format!(
                "{home}: the guest's tree has more than {MAX_NODES} nodes; refusing to read further"
            )));
        }
        let names = match tx.directory(&path).await {
            Ok(names) => names,
            Err(XsError::NoEntry) => continue,
            Err(e) => return Err(e),
        };
        pending.extend(names.into_iter().filter(|name| !name.is_empty()).map(|name| format!("{relative}/{name}")));
    }
    Ok(Ok(()))
}
