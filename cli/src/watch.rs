//! `vproto watch --connect ADDR [EVENT...]`: subscribe to a server's events and print each as
//! one NDJSON line, `{"event": "service.event", "params": {...}}`, flushed as it comes.
//!
//! EVENTs are the schema's `service.event` names (a typo is refused with the names close to
//! it, as `vproto call` refuses methods); none means every event the server serves.
//! `--versions OBJ=M.m,...` asks for versioned objects at those versions (backlevelled by the
//! server, as results are). A known event whose params do not fit the schema is still printed,
//! with a warning on stderr. Once subscribed, one line on stderr says so.
//!
//! It runs until SIGINT or SIGTERM (exit 0) or until the events end: the server closes the
//! connection (exit 1, the reason on stderr), or ends the subscription with
//! `rpc.subscription_lost` (printed as a line like any event, then exit 1). Bad usage (an
//! unknown event, a bad `--versions`) exits 2 before connecting.

use std::{collections::BTreeMap, io::Write, path::PathBuf, time::Duration};

use serde_json::{json, Value};
use vproto_api::{JSON_SCHEMA, OPENRPC, REGISTRY};
use vproto_jsonrpc::{Client, ConnectAddr};
use vproto_listen::TerminationSignals;
use vproto_support::{
    rpc::{
        codes,
        events::{event_params, Subscription, SUBSCRIPTION_LOST},
        CallError, ClientTransport,
    },
    wire::{Manifest, Version},
};

use crate::{
    call::{client_args, close_names, describe},
    CliError,
};

/// Arguments of `vproto watch`.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// The server: unix:PATH, tcp:HOST:PORT, http://HOST:PORT (its GET /events stream),
    /// vchan:PEER:XS_PATH or exec:COMMAND.
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// The events to print, as service.event (such as conductor.agent_missing) [default: every
    /// event the server serves].
    #[arg(value_name = "EVENT")]
    events: Vec<String>,
    /// Versions to receive versioned objects at, as OBJECT=MAJOR.MINOR, comma-separated (such
    /// as VIFOpenVSwitch=1.0) [default: the newest].
    #[arg(long, value_name = "OBJ=M.m,...", value_delimiter = ',')]
    versions: Vec<String>,
    /// A file (mode 0600) holding the token the server requires (tcp:, http://).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Longest wait for the connection and the subscription's answer [default: 10s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    #[command(flatten)]
    tls: crate::security::TlsArgs,
}

/// An event of the schema, as the OpenRPC document's `x-events` lists it.
struct KnownEvent {
    /// Its params' `$defs` entry in the JSON Schema, `service.event.params`.
    def: &'static str,
    /// The names of its params.
    params: Vec<String>,
}

/// The schema's events by wire name.
fn schema_events() -> BTreeMap<String, KnownEvent> {
    let document: Value = serde_json::from_str(OPENRPC).expect("the generated OpenRPC document is JSON");
    let Some(entries) = document["x-events"].as_array() else { return BTreeMap::new() };
    entries
        .iter()
        .filter_map(|entry| {
            let name = entry["name"].as_str()?.to_string();
            let params = entry["params"]
                .as_array()
                .map(|params| params.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            // Built once per event of the schema, for the life of the command.
            let def: &'static str = Box::leak(format!("{name}.params").into_boxed_str());
            Some((name, KnownEvent { def, params }))
        })
        .collect()
}

/// Checks the events named against the schema's.
fn check_events(named: &[String], known: &BTreeMap<String, KnownEvent>) -> Result<(), CliError> {
    let names: Vec<String> = known.keys().cloned().collect();
    for event in named {
        if known.contains_key(event) {
            continue;
        }
        let close = close_names(event, &names);
        let mut message = format!("unknown event `{event}`");
        if !close.is_empty() {
            message.push_str(&format!("; did you mean {}?", close.join(", ")));
        }
        message.push_str(&format!("\n  events: {}", names.join(", ")));
        return Err(CliError::usage(message));
    }
    Ok(())
}

/// Reads `--versions`: each entry `OBJECT=MAJOR.MINOR`, a versioned object of the schema and
/// one of its versions.
fn read_versions(entries: &[String]) -> Result<Manifest, CliError> {
    let mut manifest = Manifest::new();
    for entry in entries.iter().filter(|entry| !entry.trim().is_empty()) {
        let usage = |why: String| CliError::usage(format!("--versions `{entry}`: {why}"));
        let (object, version) =
            entry.split_once('=').ok_or_else(|| usage("give OBJECT=MAJOR.MINOR, such as VIFBridge=1.0".into()))?;
        let (object, version) = (object.trim(), version.trim());
        let Some(info) = REGISTRY.get(object) else {
            let objects: Vec<String> = REGISTRY.objects.iter().map(|info| info.name.to_string()).collect();
            let close: Vec<&str> =
                objects.iter().filter(|name| strsim::levenshtein(name, object) <= 2).map(String::as_str).collect();
            let hint = if close.is_empty() { String::new() } else { format!("; did you mean {}?", close.join(", ")) };
            return Err(usage(format!("`{object}` is not an object of the schema{hint}")));
        };
        let version: Version = version.parse().map_err(|e| usage(format!("{e}")))?;
        if !info.versions.contains(&version) {
            let known: Vec<String> = info.versions.iter().map(Version::to_string).collect();
            return Err(usage(format!("{object} has no version {version} (its versions: {})", known.join(", "))));
        }
        if manifest.insert(object.to_string(), version).is_some() {
            return Err(usage(format!("{object} is given twice")));
        }
    }
    Ok(manifest)
}

/// Why the subscription was refused, readably.
fn refused(addr: &ConnectAddr, error: CallError) -> CliError {
    CliError::failed(match error {
        CallError::Rpc(error) if error.code == codes::METHOD_NOT_FOUND => {
            format!("{addr} serves no events (it does not know rpc.subscribe)")
        }
        CallError::Rpc(error) => describe("rpc.subscribe", &error),
        CallError::Transport(why) => format!("{addr}: {why}"),
        CallError::Decode(error) => format!("rpc.subscribe: {error}"),
    })
}

/// Writes one event as an NDJSON line and flushes it; false when stdout is closed (a reader
/// that stopped, `| head`).
fn print_event(method: &str, params: &Value) -> Result<bool, CliError> {
    let params = if params.is_null() { json!({}) } else { params.clone() };
    let line = json!({ "event": method, "params": params });
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(CliError::failed(format!("cannot write an event: {error}"))),
    }
}

/// Runs `vproto watch`.
pub async fn run(args: WatchArgs) -> Result<(), CliError> {
    let known = schema_events();
    check_events(&args.events, &known)?;
    let versions = read_versions(&args.versions)?;
    let (addr, options) =
        client_args(&args.connect, args.token_file.as_deref(), args.timeout.as_deref(), Duration::from_secs(10))?;
    let options = vproto_jsonrpc::ClientOptions { tls: args.tls.client()?, ..options };

    // Heard from now on: a signal while connecting ends the command as one while watching does.
    let mut signals = TerminationSignals::watch();
    let subscription = Subscription { events: args.events.clone(), versions };
    let subscribe = async {
        let client = Client::connect(&addr, options).await.map_err(|error| refused(&addr, error))?;
        client.subscribe(subscription).await.map_err(|error| refused(&addr, error))
    };
    let mut events = tokio::select! {
        subscribed = subscribe => subscribed?,
        _ = signals.recv() => return Ok(()),
    };
    let what = if args.events.is_empty() { "every event".to_string() } else { args.events.join(", ") };
    eprintln!("vproto watch: subscribed to {what} at {addr}");

    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = signals.recv() => return Ok(()),
        };
        let Some(event) = event else {
            return Err(CliError::failed(format!("the connection to {addr} was lost: the server closed it")));
        };
        if let Some(schema) = known.get(&event.method) {
            let params: Vec<&str> = schema.params.iter().map(String::as_str).collect();
            if let Err(error) = event_params(JSON_SCHEMA, schema.def, &event.method, &params, &event.params) {
                eprintln!("vproto watch: warning: {error}");
            }
        }
        if !print_event(&event.method, &event.params)? {
            return Ok(());
        }
        if event.method == SUBSCRIPTION_LOST {
            let reason = event.params["reason"].as_str().unwrap_or("no reason given");
            let dropped = event.params["dropped"].as_u64().unwrap_or(0);
            return Err(CliError::failed(format!(
                "{addr} ended the subscription ({dropped} events dropped): {reason}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_events_are_known_with_their_params() {
        let known = schema_events();
        let missing = &known["conductor.agent_missing"];
        assert_eq!(
            (missing.def, missing.params.as_slice()),
            ("conductor.agent_missing.params", &["agent".to_string()][..])
        );
        assert!(known.contains_key("network.port_created") && known.contains_key("agent.driver_registered"));
    }

    #[test]
    fn unknown_events_are_refused_with_the_close_ones() {
        let known = schema_events();
        assert!(check_events(&["conductor.agent_back".into()], &known).is_ok());
        let error = check_events(&["conductor.agent_mising".into()], &known).unwrap_err().to_string();
        let (first, names) = error.split_once('\n').unwrap();
        assert!(first.starts_with("unknown event `conductor.agent_mising`; did you mean "), "{error}");
        assert!(first.contains("conductor.agent_missing") && names.contains("network.port_created"), "{error}");
        let error = check_events(&["agent_missing".into()], &known).unwrap_err().to_string();
        assert!(error.contains("did you mean conductor.agent_missing"), "{error}");
    }

    #[test]
    fn versions_name_known_objects_and_versions() {
        let manifest = read_versions(&["VIFBridge=1.0".into(), " Network = 1.1 ".into()]).unwrap();
        assert_eq!(manifest.len(), 2);
        let text = |entries: &[&str]| {
            read_versions(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap_err().to_string()
        };
        assert!(text(&["VIFBridge"]).contains("give OBJECT=MAJOR.MINOR"));
        assert!(text(&["VIFBrige=1.0"]).contains("did you mean VIFBridge?"));
        assert!(text(&["VIFBridge=9.9"]).contains("VIFBridge has no version 9.9 (its versions: 1.0"));
        assert!(text(&["VIFBridge=one"]).starts_with("--versions `VIFBridge=one`: "));
        assert!(text(&["VIFBridge=1.0", "VIFBridge=1.0"]).contains("given twice"));
    }
}
