//! `vproto conform`: the conformance suite (vproto-conformance) against a server
//! (`--target ADDR`), against the reference services started in-process (`--reference`), or as
//! a mock server validating a client (`--serve ADDR`). The case IDs, flags and exit codes are
//! documented in the vproto-conformance crate and docs/conformance.md.
//!
//! `--target tls://HOST:PORT` and `https://HOST:PORT` are `tcp:` and `http://` spoken over TLS
//! (`--tls-ca` required; `--tls-cert/--tls-key` when the target asks for a client certificate);
//! `tcp:`/`http://` with `--tls-ca` are TLS too, as for `vproto call`. `--compat POLICY` runs the
//! compat cases instead of the suite against a target (they check that it applies the policy,
//! docs/evolution.md), or makes the `--serve` mock apply the policy.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use vproto_api::{
    service_openrpc, AgentEvent, AgentServer, ConductorEvent, ConductorServer, DriverServer, Endpoint, GuestServer,
    NetworkEvent, NetworkServer,
};
use vproto_conformance::{
    compat::run_compat,
    coverage::MethodCoverage,
    mock::{serve_mock, MockOptions},
    report::{Format, Report},
    run::{apply_known_failures, load_known_failures, run_suite, Patterns, Selection, SuiteRun, Target},
    Description, Fixtures,
};
use vproto_jsonrpc::{load_token, Client, ClientOptions, ConnectAddr, EventHub, ListenAddr, RunningServer, Server};
use vproto_services::{
    agent::{Agent, AgentOptions},
    conductor::{Conductor, ConductorOptions},
    driver::{Driver, DriverConfig},
    guest_channel::GuestChannel,
    network::{NetworkHost, NetworkHostConfig},
};
use vproto_support::rpc::{compat::CompatPolicy, ClientTransport, Discover, Router};

use crate::{duration::parse_duration, serve::event_hub, CliError};

/// Arguments of `vproto conform`.
#[derive(clap::Args)]
pub struct ConformArgs {
    /// The server to test: unix:PATH, tcp:HOST:PORT, tls://HOST:PORT, http://HOST:PORT,
    /// https://HOST:PORT or exec:COMMAND.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["reference", "serve"])]
    target: Option<String>,
    /// Start the reference services (driver, agent, conductor, network, guest) in-process on
    /// temporary Unix sockets and run the suite against each.
    #[arg(long, conflicts_with = "serve")]
    reference: bool,
    /// Act as a mock server on ADDR (unix:PATH, tcp:HOST:PORT, http://HOST:PORT, stdio) and
    /// validate the client that talks to it.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// The services to test, comma-separated [default: those the target serves].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    services: Vec<String>,
    /// Run only the cases whose ID matches this glob or lies under this prefix (repeatable).
    #[arg(long, value_name = "PATTERN")]
    only: Vec<String>,
    /// Cases known to fail: one ID or glob per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    known_failures: Option<PathBuf>,
    /// Param values for valid calls, a JSON object keyed by method name:
    /// {"service.method": {"param": value}}; use data the implementation really has.
    #[arg(long, value_name = "FILE", conflicts_with = "serve")]
    fixtures: Option<PathBuf>,
    /// Report methods no successful result was checked for, without failing the run.
    #[arg(long, conflicts_with = "serve")]
    allow_uncovered: bool,
    /// A file (mode 0600) holding the token the target requires (tcp:, http://).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The report format: text, json or junit.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    report: String,
    /// Where to write the report [default: stdout].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The OpenRPC description to derive the suite from [default: the one vproto publishes].
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Seed of generated values.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Generated valid calls per method.
    #[arg(long, value_name = "N", default_value_t = 2)]
    generated: usize,
    /// Runner: longest wait for one answer [default: 5s]. Serve mode: the longest session [default: 60s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Serve mode: end after this many client connections have closed (line transports).
    #[arg(long, value_name = "N")]
    sessions: Option<usize>,
    /// Serve mode: end after this long without a request, once one arrived [default: 2s].
    #[arg(long, value_name = "DURATION")]
    idle: Option<String>,
    /// A compatibility policy, deprecated-input=accept|reject,deprecated-output=accept|hide:
    /// with --target, check that the target applies it (the compat cases, instead of the
    /// suite); with --serve, the mock applies it.
    #[arg(long, value_name = "POLICY", conflicts_with = "reference")]
    compat: Option<String>,
    #[command(flatten)]
    tls: crate::security::TlsArgs,
}

/// A `--target` address: `tls://HOST:PORT` is `tcp:` and `https://HOST:PORT` is `http://`, both
/// requiring TLS; whether it must be TLS.
fn target_addr(text: &str) -> Result<(ConnectAddr, bool), CliError> {
    let (text, tls) = match (text.strip_prefix("tls://"), text.strip_prefix("https://")) {
        (Some(rest), _) => (format!("tcp:{rest}"), true),
        (_, Some(rest)) => (format!("http://{rest}"), true),
        _ => (text.to_string(), false),
    };
    let addr: ConnectAddr = text.parse().map_err(|e| CliError::Usage(format!("--target: {e}")))?;
    Ok((addr, tls))
}

/// Runs `vproto conform`: failed cases are [`CliError::Reported`] (exit 1, the report says
/// which); a failure before or outside the cases is a usage error (exit 2).
pub async fn run(args: ConformArgs) -> Result<(), CliError> {
    match conform(args).await? {
        true => Ok(()),
        false => Err(CliError::Reported),
    }
}

fn duration(flag: &str, text: Option<&str>, default: Duration) -> Result<Duration, CliError> {
    text.map(parse_duration)
        .transpose()
        .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
        .map(|d| d.unwrap_or(default))
}

async fn conform(args: ConformArgs) -> Result<bool, CliError> {
    let format: Format = args.report.parse().map_err(|e| CliError::Usage(format!("--report: {e}")))?;
    let description = Arc::new(match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("--schema {}: {e}", path.display())))?;
            Description::from_openrpc_text(&text)
                .map_err(|e| CliError::Usage(format!("--schema {}: {e}", path.display())))?
        }
        None => Description::published().map_err(|e| CliError::Usage(e.to_string()))?,
    });
    for service in &args.services {
        if !description.services().contains(service) {
            let known = description.services().join(", ");
            return Err(CliError::Usage(format!(
                "--services: `{service}` is not a service of the description ({known})"
            )));
        }
    }
    let mut only = Patterns::default();
    for pattern in &args.only {
        only.add(pattern).map_err(|e| CliError::Usage(format!("--only: {e}")))?;
    }
    let known = match &args.known_failures {
        Some(path) => load_known_failures(path).map_err(|e| CliError::Usage(format!("--known-failures: {e}")))?,
        None => Patterns::default(),
    };
    let fixtures = match &args.fixtures {
        Some(path) => Fixtures::load(path, &description)
            .map_err(|e| CliError::Usage(format!("--fixtures {}: {e}", path.display())))?,
        None => Fixtures::none(),
    };
    let started = Instant::now();
    let selection = Selection {
        description: &description,
        services: args.services.clone(),
        only: &only,
        seed: args.seed,
        generated: args.generated,
        fixtures: &fixtures,
    };
    let compat: Option<CompatPolicy> = args
        .compat
        .as_deref()
        .map(|text| text.parse().map_err(|e| CliError::Usage(format!("--compat: {e}"))))
        .transpose()?;
    let tls = args.tls.client()?;
    if tls.is_some() && args.target.is_none() {
        return Err(CliError::Usage("--tls-ca applies to --target only".into()));
    }
    let SuiteRun { mut outcomes, coverage, not_exercised } = if let Some(listen) = &args.serve {
        let listen: ListenAddr = listen.parse().map_err(|e| CliError::Usage(format!("--serve: {e}")))?;
        if args.sessions == Some(0) {
            return Err(CliError::Usage("--sessions: give at least 1".into()));
        }
        if args.sessions.is_some() && !matches!(listen, ListenAddr::Unix(_) | ListenAddr::Tcp { .. }) {
            return Err(CliError::Usage("--sessions applies to --serve unix:PATH and tcp:HOST:PORT only".into()));
        }
        if listen == ListenAddr::Stdio && args.out.is_none() {
            return Err(CliError::Usage(
                "--serve stdio: give --out FILE for the report (stdout carries the protocol)".into(),
            ));
        }
        let options = MockOptions {
            sessions: args.sessions,
            idle: duration("--idle", args.idle.as_deref(), Duration::from_secs(2))?,
            timeout: duration("--timeout", args.timeout.as_deref(), Duration::from_secs(60))?,
            seed: args.seed,
            compat,
        };
        let mut outcomes =
            serve_mock(description.clone(), &listen, options).await.map_err(|e| CliError::Usage(e.to_string()))?;
        outcomes.retain(|outcome| only.is_empty() || only.matches(&outcome.id));
        // The mock calls no method: there is no result to cover.
        SuiteRun { outcomes, coverage: Vec::new(), not_exercised: Vec::new() }
    } else {
        if args.sessions.is_some() || args.idle.is_some() {
            return Err(CliError::Usage("--sessions and --idle apply to --serve only".into()));
        }
        let wait = duration("--timeout", args.timeout.as_deref(), Duration::from_secs(5))?;
        if args.reference {
            if args.token_file.is_some() {
                return Err(CliError::Usage(
                    "--token-file does not apply to --reference (Unix sockets need no token)".into(),
                ));
            }
            reference(&selection, wait).await?
        } else {
            let text = args
                .target
                .as_deref()
                .ok_or_else(|| CliError::Usage("give --target ADDR, --reference or --serve ADDR".into()))?;
            let (addr, must_tls) = target_addr(text)?;
            if must_tls && tls.is_none() {
                return Err(CliError::Usage(format!(
                    "--target {text}: give --tls-ca FILE, the CA that signed the target's certificate"
                )));
            }
            if tls.is_some() && !matches!(addr, ConnectAddr::Listen(ListenAddr::Tcp { .. } | ListenAddr::Http { .. })) {
                return Err(CliError::Usage(format!(
                    "--tls-ca: TLS applies to tcp:, tls://, http:// and https:// targets, not {text}"
                )));
            }
            let token = args
                .token_file
                .as_deref()
                .map(|path| load_token(path).map_err(|e| CliError::Usage(format!("--token-file: {e}"))))
                .transpose()?;
            let target = Target { addr, label: text.to_string(), token, tls, wait };
            match compat {
                Some(policy) => run_compat(&selection, &target, policy).await,
                None => run_suite(&selection, &target).await,
            }
            .map_err(|e| CliError::Usage(e.to_string()))?
        }
    };
    if outcomes.is_empty() {
        return Err(CliError::Usage("no case ran: --only matches none of the cases".into()));
    }
    apply_known_failures(&mut outcomes, &known);
    let mut notes: Vec<String> = not_exercised.iter().map(|note| format!("not exercised: {note}")).collect();
    let ids: Vec<&str> = outcomes.iter().map(|o| o.id.as_str()).collect();
    for unused in known.unused(&ids) {
        notes.push(format!("the known failure `{unused}` matches no case that ran"));
    }
    let report = Report {
        outcomes: &outcomes,
        coverage: &coverage,
        allow_uncovered: args.allow_uncovered,
        elapsed: started.elapsed(),
        notes: &notes,
    };
    write_report(args.out.as_deref(), &report.render(format))?;
    if format != Format::Text || args.out.is_some() {
        eprintln!("vproto conform: {}", report.summary());
    }
    Ok(report.success())
}

fn write_report(out: Option<&Path>, report: &str) -> Result<(), CliError> {
    match out {
        Some(path) => {
            std::fs::write(path, report).map_err(|e| CliError::Usage(format!("--out {}: {e}", path.display())))
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(report.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::Usage(format!("stdout: {e}")))
        }
    }
}

/// The reference driver's hardware: the schema's driver example (examples/driver.json).
fn reference_driver_config() -> serde_json::Value {
    json!({
        "device_type": "CRYPTO",
        "hardware": [{
            "uuid": "8e45a2ea-5364-4b0d-a252-bf8becaa606e",
            "acc_specs": {"remote": false, "num": 1, "device_type": "CRYPTO", "acc_capability": {
                "num": 2, "features": {"ipsec": {"features": {"aes": {"num": 1, "features": {"3des": {"num": 50}}}}}}}},
            "acc_status": {"setup_required": true, "reboot_required": false},
        }],
        "discovery": {"duration_ms": 200, "outcome": "DONE"},
    })
}

/// The reference network host's config: the network of the schema's `network.create_port` example.
fn reference_network_config() -> serde_json::Value {
    json!({"networks": [{
        "id": "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50", "label": "private", "bridge": "br-int", "mtu": 1450,
        "subnets": [{"cidr": "10.0.0.0/26", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
    }]})
}

/// Serves `router` (and the events of `events`, when its service has any) on `addr`.
async fn bind(router: Router, events: Option<EventHub>, addr: &ListenAddr) -> Result<RunningServer, CliError> {
    let discover = Discover::hosting(&router, service_openrpc)
        .map_err(|e| CliError::Usage(format!("the OpenRPC document: {e}")))?;
    let mut server = Server::new(router.with(discover));
    if let Some(hub) = events {
        server = server.with_events(hub);
    }
    server.bind(addr).await.map_err(|e| CliError::Usage(format!("reference services: {e}")))
}

/// Says hello once, in-process, as a registering component would.
async fn hello(at: &ListenAddr, method: &str, params: &serde_json::Value) -> Result<(), CliError> {
    let client = Client::connect(&ConnectAddr::Listen(at.clone()), ClientOptions::default())
        .await
        .map_err(|e| CliError::Usage(format!("reference services: {e}")))?;
    client
        .request(method, params.clone())
        .await
        .map(drop)
        .map_err(|e| CliError::Usage(format!("reference services: {method}: {e}")))
}

/// Starts the reference services on temporary Unix sockets (the driver and the agent also on
/// loopback TCP, where the agent and the conductor reach them), each with its events as
/// `vproto serve` serves them, registers the driver with the
/// agent and the agent with the conductor, and runs the suite against each service. The guest
/// channel answers from this machine's own NICs, followed from netlink as `vproto serve guest`
/// does.
///
/// The same registrations are the fixtures of the suite's own hello calls (under the user's
/// `--fixtures`): a peer registered at a generated endpoint is unreachable, so the methods that
/// fan out to the registered peers would get only their declared "unavailable" errors and no
/// successful result would ever be checked.
async fn reference(selection: &Selection<'_>, wait: Duration) -> Result<SuiteRun, CliError> {
    let dir = tempfile::tempdir().map_err(|e| CliError::Usage(format!("a temporary directory: {e}")))?;
    let unix = |name: &str| ListenAddr::Unix(dir.path().join(format!("{name}.sock")));
    let loopback = ListenAddr::Tcp { host: "127.0.0.1".into(), port: 0 };
    // Peers the suite registers (generated endpoints) are unreachable: do not wait long on them.
    // The conductor waits longer than the agent, which may itself wait on such a driver.
    let agent_timeout = Duration::from_millis(200);
    let conductor_timeout = Duration::from_secs(1);

    let driver_config =
        DriverConfig::from_json(&reference_driver_config()).map_err(|e| CliError::Usage(e.to_string()))?;
    let driver = Arc::new(Driver::new(driver_config));
    let driver_router = Router::new().with(DriverServer(driver.clone()));
    let (agent_hub, events) = event_hub::<AgentEvent>(None);
    let agent = Arc::new(Agent::new(AgentOptions { call_timeout: agent_timeout, events, ..AgentOptions::default() }));
    let agent_router = Router::new().with(AgentServer(agent));
    let (conductor_hub, events) = event_hub::<ConductorEvent>(None);
    let conductor = Arc::new(Conductor::new(ConductorOptions {
        call_timeout: conductor_timeout,
        events,
        ..ConductorOptions::default()
    }));
    let conductor_router = Router::new().with(ConductorServer(conductor));
    let network_config =
        NetworkHostConfig::from_json(&reference_network_config()).map_err(|e| CliError::Usage(e.to_string()))?;
    let (network_hub, events) = event_hub::<NetworkEvent>(None);
    let network_router =
        Router::new().with(NetworkServer(Arc::new(NetworkHost::new(network_config).with_events(events))));
    let (guest, follower) = GuestChannel::standalone();
    let guest_router = Router::new().with(GuestServer(Arc::new(guest)));

    let mut servers = Vec::new();
    let mut targets = Vec::new();
    for (name, router, events, tcp) in [
        ("driver", driver_router, None, true),
        ("agent", agent_router, Some(agent_hub), true),
        ("conductor", conductor_router, Some(conductor_hub), false),
        ("network", network_router, Some(network_hub), false),
        ("guest", guest_router, None, false),
    ] {
        let on_unix = bind(router.clone(), events.clone(), &unix(name)).await?;
        let tcp_addr = if tcp {
            let on_tcp = bind(router, events, &loopback).await?;
            let addr = on_tcp.local_addr().clone();
            servers.push(on_tcp);
            Some(addr)
        } else {
            None
        };
        targets.push((name, on_unix.local_addr().clone(), tcp_addr));
        servers.push(on_unix);
    }
    let endpoint = |addr: &Option<ListenAddr>| match addr {
        Some(ListenAddr::Tcp { host, port }) => format!("{host}:{port}"),
        _ => unreachable!("bound on tcp above"),
    };
    driver.set_endpoint(
        Endpoint::new(endpoint(&targets[0].2)).map_err(|e| CliError::Usage(format!("driver endpoint: {e}")))?,
    );
    let hellos = [
        (
            &targets[1].1,
            "agent.hello",
            json!({"registration": {"endpoint": endpoint(&targets[0].2), "status": "READY", "type": "CRYPTO"}}),
        ),
        (
            &targets[2].1,
            "conductor.hello",
            json!({"registration": {"endpoint": endpoint(&targets[1].2), "status": "READY"}}),
        ),
    ];
    for (at, method, params) in &hellos {
        hello(at, method, params).await?;
    }
    let known = hellos.iter().filter(|(_, method, _)| selection.description.method_named(method).is_some());
    let builtin = known.map(|(_, method, params)| (method.to_string(), params.clone())).collect();
    let mut fixtures = Fixtures::from_value(serde_json::Value::Object(builtin), selection.description)
        .map_err(|e| CliError::Usage(format!("the reference services' fixtures: {e}")))?;
    fixtures.extend(selection.fixtures);

    let mut outcomes = Vec::new();
    let mut coverage: Vec<MethodCoverage> = Vec::new();
    let mut not_exercised: Vec<String> = Vec::new();
    for (name, addr, _) in &targets {
        if !selection.services.is_empty() && !selection.services.iter().any(|s| s == name) {
            continue;
        }
        let target =
            Target { addr: ConnectAddr::Listen(addr.clone()), label: name.to_string(), token: None, tls: None, wait };
        let service = Selection {
            description: selection.description,
            services: vec![name.to_string()],
            only: selection.only,
            seed: selection.seed,
            generated: selection.generated,
            fixtures: &fixtures,
        };
        let run = run_suite(&service, &target).await.map_err(|e| CliError::Usage(e.to_string()))?;
        outcomes.extend(run.outcomes);
        coverage.extend(run.coverage);
        not_exercised.extend(run.not_exercised);
    }
    for server in servers {
        server.shutdown().await;
    }
    follower.abort();
    Ok(SuiteRun { outcomes, coverage, not_exercised })
}
