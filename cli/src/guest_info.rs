//! `vproto guest-info`: the host side of the guest data tree. Reads a guest's
//! tree from Xenstore in one read-only transaction (so a concurrent agent
//! update is never half seen), refuses a layout major version it does not
//! know, validates the tree against the schema and prints GuestInfo as JSON.

use std::collections::BTreeMap;

use clap::Args;
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
}

/// The most nodes read from one guest: a guest controls its tree, so a reader bounds its work.
/// Xen's default quota is 1,000 nodes per domain; this leaves room for a generous one.
pub const MAX_NODES: usize = 100_000;

/// Runs the command; every failure is exit 2.
pub async fn run(args: &GuestInfoArgs) -> Result<(), CliError> {
    guest_info(args).await.map_err(CliError::Usage)
}

async fn guest_info(args: &GuestInfoArgs) -> Result<(), String> {
    let layout: GuestLayout = args.layout.parse().map_err(|e| format!("--layout: {e}"))?;
    let addr: XenstoreAddr = args.xenstore.parse().map_err(|e: XsError| format!("--xenstore: {e}"))?;
    let (home, entries) = read_tree(&addr, args.domain, layout).await?;
    let info = layout.decode(&entries).map_err(|error| describe(&home, args.domain, layout, &error))?;
    let text = serde_json::to_string_pretty(&info.to_wire()).map_err(|e| format!("cannot print the tree: {e}"))?;
    println!("{text}");
    Ok(())
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

/// The guest's home path and every node below the layout's read roots,
/// relative to the home path.
async fn read_tree(
    addr: &XenstoreAddr,
    domain: u32,
    layout: GuestLayout,
) -> Result<(String, BTreeMap<String, String>), String> {
    let xs =
        Xenstore::connect(addr).await.map_err(|e| format!("cannot connect to Xenstore at {}: {e}", addr_text(addr)))?;
    let home = match xs.get_domain_path(domain).await {
        Ok(path) if path.starts_with('/') => path.trim_end_matches('/').to_string(),
        Ok(path) => return Err(format!("GET_DOMAIN_PATH({domain}) answered {path:?}, not an absolute path")),
        Err(XsError::NoSys | XsError::Inval | XsError::NoEntry) => format!("/local/domain/{domain}"),
        Err(e) => return Err(format!("GET_DOMAIN_PATH({domain}): {e}")),
    };
    let roots = layout.read_roots();
    // A refusal is the transaction's value, so only Xenstore errors (EAGAIN) rerun it.
    let entries = xs
        .transact(DEFAULT_TX_ATTEMPTS, |tx| {
            let home = home.clone();
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
    Ok((home, entries))
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
