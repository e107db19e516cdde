//! `vproto serve driver|agent|conductor|network|guest`: one reference service as a process.
//!
//! The service's generated dispatcher (params checked against the schema) plus `rpc.discover`
//! (the OpenRPC document) are served on `--listen`; on `http://` the schema's REST bindings of
//! that service are served too. Once listening, the address (with port 0 resolved) is printed
//! as one line on stdout, except for `stdio`, where stdout carries the protocol. Logs go to
//! stderr (filter: `--log`, else `VPROTO_LOG`, else `info`). SIGINT or SIGTERM shuts down
//! gracefully: no new connections, running calls finish, the Unix socket file is removed.
//!
//! A driver says hello to its agent (`--agent`), an agent to its conductor (`--conductor`),
//! announcing their endpoint `host:port`: `--endpoint`, else (driver) the config file's, else
//! the `tcp:`/`http://` listen address. The agent and the conductor dial the endpoints
//! registered with them with `--peer-scheme` (`tcp`, the default: `tcp:host:port`; `http`:
//! `http://host:port`). One `--token-file` serves both ways: listeners on `tcp:`/`http://`
//! require it, and it is presented to the agent, conductor and drivers called.
//!
//! `guest` is the guest channel a guest agent serves to dom0 (`vproto agent --vchan`), here
//! on any transport: this machine's GuestInfo and its NICs' counters, the NICs followed from
//! netlink as the agent follows them (no Xenstore).
//!
//! The conductor keeps its agents, their inventories and its discovery runs in `--state`:
//! `sqlite:PATH` (the default: `conductor.db` in the state directory, which is
//! `$STATE_DIRECTORY` as systemd's `StateDirectory=` sets it, else `$XDG_STATE_HOME/vproto`,
//! else `~/.local/state/vproto`), `postgres://...` (several
//! conductors sharing one state) or `memory` (nothing kept). Its schema is migrated at start;
//! one written by a newer vproto is refused (exit 1).
//!
//! With `--bus amqp://...` a driver, agent or conductor is served on a RabbitMQ broker too (and
//! `--listen` becomes optional), and reaches its peers through it by name ([`bus`],
//! docs/bus.md).
//!
//! A service with events (agent, conductor, network) publishes them into the server's event
//! hub, which knows exactly that service's events: clients subscribe with `rpc.subscribe`
//! (`vproto watch`), or from `GET /events` on `http://`; a subscription naming any other event
//! is refused. The agent and the conductor watch their rosters, so a peer that goes missing is
//! logged and published as soon as its three heartbeat intervals are over, even when nobody
//! calls.
//!
//! `--compat deprecated-input=accept|reject,deprecated-output=accept|hide` (QEMU's `-compat`)
//! applies a compatibility policy to what the service's OpenRPC document marks deprecated
//! (vproto-support's `rpc::compat`, docs/evolution.md): `reject` answers a deprecated method
//! -32601 and a deprecated param or member -32602 naming it; `hide` removes deprecated members
//! from results and events and sends no deprecated event. The policy is logged at start.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use tokio::task::JoinHandle;
use vproto_api::{
    service_openrpc, AgentEvent, AgentRegistration, AgentServer, ComponentStatus, ConductorEvent, DriverRegistration,
    DriverServer, Endpoint, GuestServer, NetworkEvent, NetworkServer, HTTP_BINDINGS,
};
use vproto_jsonrpc::{
    load_token, ClientOptions, ConnectAddr, EventHub, ListenAddr, RestRoute, RunningServer, Server, Token,
};
use vproto_listen::TerminationSignals;
use vproto_services::{
    agent::{self, Agent, AgentOptions},
    conductor::{Conductor, ConductorHandler, ConductorOptions},
    driver::{self, Driver, DriverConfig},
    guest_channel::GuestChannel,
    network::{NetworkHost, NetworkHostConfig},
    peer::{endpoint_of, HelloLoop},
    store::{StateUrl, Store},
    PeerScheme,
};
use vproto_support::rpc::{
    compat::{event_sink, Compat, CompatPolicy, Deprecated},
    events::{Event, EventSet, Publisher},
    Discover, Router,
};

use crate::{duration::parse_duration, CliError};

mod bus;

/// The services `vproto serve` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// A Cyborg driver reporting simulated hardware from --config.
    Driver,
    /// A Cyborg agent: drivers register with it; it fans out to them.
    Agent,
    /// The Cyborg conductor: agents register with it; it aggregates their hardware.
    Conductor,
    /// An os-vif network host: creates ports, negotiating the VIF with the host's plugins.
    Network,
    /// The guest channel: this machine's GuestInfo and live NIC counters (netlink).
    Guest,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Driver => "driver",
            Service::Agent => "agent",
            Service::Conductor => "conductor",
            Service::Network => "network",
            Service::Guest => "guest",
        }
    }
}

/// Arguments of `vproto serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    service: Service,
    /// Where to listen: unix:PATH, tcp:HOST:PORT, http://HOST:PORT or stdio (optional with --bus).
    #[arg(long, value_name = "ADDR", required_unless_present = "bus")]
    listen: Option<String>,
    /// driver, agent, conductor: a RabbitMQ broker, amqp://[USER:PASS@]HOST:PORT[/VHOST], to
    /// serve on and to reach the other components through by name (docs/bus.md).
    #[arg(long, value_name = "URL")]
    bus: Option<String>,
    /// A file (mode 0600) holding the token clients must present on tcp:/http:// listeners;
    /// also presented to the agent, conductor or drivers this service calls.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// driver: the hardware (JSON); network: the networks (JSON).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// driver: the agent to register with (unix:PATH, tcp:HOST:PORT, http://HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    agent: Option<String>,
    /// agent: the conductor to register with (unix:PATH, tcp:HOST:PORT, http://HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    conductor: Option<String>,
    /// driver, agent: the host:port announced in hello (default: the driver config's
    /// endpoint, else the tcp:/http:// listen address).
    #[arg(long, value_name = "HOST:PORT")]
    endpoint: Option<String>,
    /// agent, conductor: how registered host:port endpoints are dialled: tcp or http [default: tcp].
    #[arg(long, value_name = "SCHEME")]
    peer_scheme: Option<String>,
    /// agent, conductor: the heartbeat interval given to registering components, in whole
    /// seconds; one silent for three intervals is no longer alive [default: 30].
    #[arg(long, value_name = "SECONDS")]
    heartbeat_interval: Option<u64>,
    /// agent, conductor: longest wait for one call to a peer, such as 500ms or 5s
    /// [default: 5s for the agent, 10s for the conductor]; driver, agent: also bounds a hello.
    #[arg(long, value_name = "DURATION")]
    peer_timeout: Option<String>,
    /// driver, agent: wait between hello attempts while the target cannot be reached [default: 2s].
    #[arg(long, value_name = "DURATION")]
    hello_retry: Option<String>,
    /// conductor: where its state is kept: sqlite:PATH, postgres://[USER[:PASSWORD]@]HOST[:PORT]/DB
    /// or memory [default: sqlite:conductor.db in the state directory].
    #[arg(long, value_name = "URL")]
    state: Option<String>,
    /// Log filter, such as `debug` or `vproto_services=debug` [default: $VPROTO_LOG, else info].
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// A compatibility policy for what the schema marks deprecated, as QEMU's -compat:
    /// deprecated-input=accept|reject,deprecated-output=accept|hide [default: accept both].
    #[arg(long, value_name = "POLICY")]
    compat: Option<String>,
    #[command(flatten)]
    security: crate::security::ServeSecurityArgs,
}

/// A compatibility policy and what it applies to.
type CompatRule = (CompatPolicy, Arc<Deprecated>);

/// `--compat` of `service`: the policy, with what the service's OpenRPC document marks
/// deprecated; logged.
fn compat_rule(text: Option<&str>, service: Service) -> Result<Option<CompatRule>, CliError> {
    let Some(text) = text else { return Ok(None) };
    let policy: CompatPolicy = text.parse().map_err(|e| CliError::usage(format!("--compat: {e}")))?;
    let document = service_openrpc(service.name())
        .ok_or_else(|| CliError::failed(format!("no OpenRPC document for `{}`", service.name())))?;
    let document: serde_json::Value =
        serde_json::from_str(document).map_err(|e| CliError::failed(format!("the OpenRPC document: {e}")))?;
    let deprecated = Deprecated::from_openrpc(&document);
    if deprecated.is_empty() {
        tracing::warn!(%policy, "compat policy: the schema marks nothing of `{}` deprecated, so it changes nothing", service.name());
    } else {
        let methods: Vec<&str> = deprecated.methods.iter().map(String::as_str).collect();
        let events: Vec<&str> = deprecated.events.iter().map(String::as_str).collect();
        tracing::info!(%policy, deprecated_methods = ?methods, deprecated_events = ?events, "compat policy");
    }
    Ok(Some((policy, Arc::new(deprecated))))
}

/// Runs `vproto serve` until SIGINT/SIGTERM (or, for stdio, the end of stdin).
pub fn run(args: ServeArgs) -> Result<(), CliError> {
    init_logging(args.log.as_deref())?;
    keep_freed_memory_from_staying_resident();
    crate::block_on(serve(args)).inspect_err(|error| tracing::error!("{error}"))
}

/// Has glibc's malloc hand freed memory back rather than keep it resident, for a server that
/// runs for months through bursts (a registration storm, 600 KB listings answered over and
/// over); docs/benchmarks.md has the figures. Two settings, before the runtime starts a thread:
/// - every allocation of 128 KiB or more gets its own mapping, returned when freed (by default
///   glibc raises that threshold to the largest block freed so far, and serves later large
///   blocks from the heap, where freed ones stay resident);
/// - one arena for all threads (by default each thread that contends gets its own, up to eight
///   per core, and a block freed by another thread stays in the arena it came from), so what a
///   burst frees coalesces and is trimmed. The runtime's few worker threads contend little.
///
/// Other allocators and C libraries: nothing to do.
fn keep_freed_memory_from_staying_resident() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (parameter, value, what) in
        [(libc::M_MMAP_THRESHOLD, 128 * 1024, "the mmap threshold"), (libc::M_ARENA_MAX, 1, "the arena limit")]
    {
        // SAFETY: mallopt only sets a parameter of malloc, which locks what it changes.
        if unsafe { libc::mallopt(parameter, value) } != 1 {
            tracing::debug!("malloc did not take {what}");
        }
    }
}

/// Logs to stderr, filtered by `flag`, else `$VPROTO_LOG`, else `info`; a bad filter is a usage error.
pub(crate) fn init_logging(flag: Option<&str>) -> Result<(), CliError> {
    let filter = match flag.map(str::to_string).or_else(|| std::env::var("VPROTO_LOG").ok()) {
        Some(text) => tracing_subscriber::EnvFilter::try_new(&text)
            .map_err(|e| CliError::usage(format!("--log `{text}`: {e}")))?,
        None => tracing_subscriber::EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| CliError::usage(format!("cannot set up logging: {e}")))
}

/// Refuses the options that do not apply to the service.
fn check_applicable(args: &ServeArgs) -> Result<(), CliError> {
    let service = args.service;
    let given: [(&str, bool, &[Service]); 10] = [
        ("--config", args.config.is_some(), &[Service::Driver, Service::Network]),
        ("--agent", args.agent.is_some(), &[Service::Driver]),
        ("--conductor", args.conductor.is_some(), &[Service::Agent]),
        ("--endpoint", args.endpoint.is_some(), &[Service::Driver, Service::Agent]),
        ("--peer-scheme", args.peer_scheme.is_some(), &[Service::Agent, Service::Conductor]),
        ("--heartbeat-interval", args.heartbeat_interval.is_some(), &[Service::Agent, Service::Conductor]),
        ("--peer-timeout", args.peer_timeout.is_some(), &[Service::Driver, Service::Agent, Service::Conductor]),
        ("--hello-retry", args.hello_retry.is_some(), &[Service::Driver, Service::Agent]),
        ("--state", args.state.is_some(), &[Service::Conductor]),
        ("--bus", args.bus.is_some(), &[Service::Driver, Service::Agent, Service::Conductor]),
    ];
    for (flag, present, services) in given {
        if present && !services.contains(&service) {
            let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
            return Err(CliError::usage(format!(
                "{flag} does not apply to `serve {}` (only to {})",
                service.name(),
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// What was built for the service before listening.
struct Built {
    router: Router,
    /// The driver, to set its endpoint once the listen address is known.
    driver: Option<Arc<Driver>>,
    /// The hub the service publishes its events into, when it has events.
    events: Option<EventHub>,
    /// Its background tasks (the guest channel's NIC follower, a roster's watchdog), to stop
    /// with the server.
    tasks: Vec<JoinHandle<()>>,
}

/// A hub serving the events of `E` (one service's), and a publisher into it (under `compat`'s
/// output rule, when given).
pub(crate) fn event_hub<E: Event + EventSet>(compat: Option<&CompatRule>) -> (EventHub, Publisher<E>) {
    let hub = EventHub::new(E::NAMES.iter().copied());
    let sink = match compat {
        Some((policy, deprecated)) => event_sink(hub.sink(), *policy, deprecated.clone()),
        None => hub.sink(),
    };
    (hub, Publisher::new(sink))
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    check_applicable(&args)?;
    let service = args.service;
    let compat = compat_rule(args.compat.as_deref(), service)?;
    let listen: Option<ListenAddr> =
        args.listen.as_deref().map(str::parse).transpose().map_err(|e| CliError::usage(format!("--listen: {e}")))?;
    let bus = bus::Bus::from_args(&args)?;
    let token: Option<Token> = args
        .token_file
        .as_ref()
        .map(|path| load_token(path).map_err(|e| CliError::usage(format!("--token-file: {e}"))))
        .transpose()?;
    let peer_scheme: PeerScheme = match &bus {
        Some(bus) => bus.peer_scheme(service.name()),
        None => args
            .peer_scheme
            .as_deref()
            .unwrap_or("tcp")
            .parse()
            .map_err(|e| CliError::usage(format!("--peer-scheme: {e}")))?,
    };
    let heartbeat_interval = match args.heartbeat_interval {
        Some(0) => return Err(CliError::usage("--heartbeat-interval: give at least 1 second")),
        Some(seconds) => Duration::from_secs(seconds),
        None => Duration::from_secs(30),
    };
    let peer_timeout = args
        .peer_timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| CliError::usage(format!("--peer-timeout: {e}")))?;
    let hello_retry = parse_duration(args.hello_retry.as_deref().unwrap_or("2s"))
        .map_err(|e| CliError::usage(format!("--hello-retry: {e}")))?;
    let endpoint_flag = args
        .endpoint
        .as_deref()
        .map(|text| {
            Endpoint::new(text).map_err(|e| CliError::usage(format!("--endpoint `{text}` is not HOST:PORT: {e}")))
        })
        .transpose()?;
    let register_with = match (service, &args.agent, &args.conductor) {
        (Service::Driver, Some(addr), _) | (Service::Agent, _, Some(addr)) => {
            Some(addr.parse::<ConnectAddr>().map_err(|e| {
                CliError::usage(format!("--{}: {e}", if service == Service::Driver { "agent" } else { "conductor" }))
            })?)
        }
        _ => bus.as_ref().and_then(|bus| bus.register_with(service.name())),
    };

    let store = match service {
        Service::Conductor => Some(open_state(args.state.as_deref()).await?),
        _ => None,
    };
    let security = args.security.load(token.as_ref(), matches!(service, Service::Agent | Service::Conductor))?;
    let peer_scheme = security.peer_scheme(peer_scheme);
    let built = build(&args, token.clone(), peer_scheme, heartbeat_interval, peer_timeout, store, compat.as_ref())?;
    let discover = Discover::hosting(&built.router, service_openrpc)
        .map_err(|e| CliError::failed(format!("the OpenRPC document: {e}")))?;
    let handler = built.router.with(discover);
    let guarded = match compat {
        Some((policy, deprecated)) => security.guard(Compat::new(handler, policy, deprecated)),
        None => security.guard(handler),
    };
    let mut server = security.apply(Server::from_arc(guarded), listen.as_ref())?;
    if let Some(hub) = built.events {
        server = server.with_events(hub);
    }
    let bus_server = server.clone();
    if matches!(listen, Some(ListenAddr::Http { .. })) {
        let routes = HTTP_BINDINGS.iter().filter(|binding| binding.service == service.name()).map(RestRoute::from);
        server = server.with_rest_routes(routes);
    }
    let mut servers = Vec::new();
    if let Some(listen) = &listen {
        servers.push(server.bind(listen).await.map_err(|e| CliError::failed(e.to_string()))?);
    }
    let local = servers.first().map(|running| running.local_addr().clone());

    // The endpoint this service announces, when it registers somewhere (on the bus, also the
    // name of its instance queue).
    let endpoint = endpoint_flag
        .map(Ok)
        .or_else(|| built.driver.as_ref().and_then(|driver| driver.config().endpoint.clone()).map(Ok))
        .or_else(|| bus.as_ref().map(|bus| Ok(bus.endpoint())))
        .or_else(|| local.as_ref().and_then(endpoint_of));
    if let (Some(driver), Some(Ok(endpoint))) = (&built.driver, &endpoint) {
        driver.set_endpoint(endpoint.clone());
    }
    if let Some(bus) = &bus {
        let instance = match &endpoint {
            Some(Ok(endpoint)) => endpoint.clone(),
            _ => bus.endpoint(),
        };
        servers.push(bus.serve(bus_server, service.name(), &instance).await?);
    }
    let mut background = built.tasks;
    if let Some(target) = register_with {
        let endpoint = match endpoint {
            Some(Ok(endpoint)) => endpoint,
            Some(Err(why)) => return Err(CliError::usage(why.to_string())),
            None => {
                return Err(CliError::usage(format!(
                    "{} gives peers no host:port to reach this {}: give --endpoint HOST:PORT",
                    local.as_ref().map_or_else(String::new, ToString::to_string),
                    service.name()
                )))
            }
        };
        let timeout = peer_timeout.unwrap_or(Duration::from_secs(5));
        let options = ClientOptions {
            connect_timeout: timeout,
            request_timeout: timeout,
            token: token.clone(),
            tls: security.client_tls(),
            ..Default::default()
        };
        tracing::info!(%endpoint, target_addr = %target, "announcing this {} to its peer", service.name());
        match (service, &built.driver) {
            (Service::Driver, Some(driver)) => {
                let what = "agent";
                let registration = DriverRegistration {
                    endpoint,
                    status: ComponentStatus::Ready,
                    r#type: driver.config().device_type.clone(),
                    protocol_version: Some(vproto_api::PROTOCOL_VERSION.to_string()),
                };
                background
                    .push(driver::say_hello(HelloLoop { target, options, retry: hello_retry, what }, registration));
            }
            _ => {
                let what = "conductor";
                let registration = AgentRegistration {
                    endpoint,
                    status: ComponentStatus::Ready,
                    protocol_version: Some(vproto_api::PROTOCOL_VERSION.to_string()),
                };
                background
                    .push(agent::say_hello(HelloLoop { target, options, retry: hello_retry, what }, registration));
            }
        }
    }
    // Ready: tell whoever started us where we listen, once a signal they send would be heard.
    let mut signals = TerminationSignals::watch();
    for running in servers.iter().filter(|running| *running.local_addr() != ListenAddr::Stdio) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", running.local_addr()).and_then(|()| stdout.flush());
    }
    let handles: Vec<_> = servers.iter().map(RunningServer::handle).collect();
    let mut finished = std::pin::pin!(async move {
        for running in servers {
            running.wait().await;
        }
    });
    tokio::select! {
        () = &mut finished => tracing::info!("input closed; stopping"),
        signal = signals.recv() => {
            tracing::info!(%signal, "shutting down");
            handles.iter().for_each(|handle| handle.shutdown());
            finished.await;
        }
    }
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

fn build(
    args: &ServeArgs,
    token: Option<Token>,
    peer_scheme: PeerScheme,
    heartbeat_interval: Duration,
    peer_timeout: Option<Duration>,
    store: Option<Store>,
    compat: Option<&CompatRule>,
) -> Result<Built, CliError> {
    let config = || {
        args.config
            .as_ref()
            .ok_or_else(|| CliError::usage(format!("`serve {}` needs --config FILE", args.service.name())))
    };
    let mut built = Built { router: Router::new(), driver: None, events: None, tasks: Vec::new() };
    match args.service {
        Service::Driver => {
            let config = DriverConfig::load(config()?).map_err(|e| CliError::usage(e.to_string()))?;
            tracing::info!(device_type = %config.device_type, devices = config.hardware.len(), "driver configured");
            let driver = Arc::new(Driver::new(config));
            built.router = built.router.with(DriverServer(driver.clone()));
            built.driver = Some(driver);
        }
        Service::Agent => {
            let (hub, events) = event_hub::<AgentEvent>(compat);
            let mut options =
                AgentOptions { heartbeat_interval, peer_scheme, token, events, ..AgentOptions::default() };
            if let Some(timeout) = peer_timeout {
                options.call_timeout = timeout;
            }
            let agent = Arc::new(Agent::new(options));
            built.tasks.push(agent.spawn_watchdog());
            built.router = built.router.with(AgentServer(agent));
            built.events = Some(hub);
        }
        Service::Conductor => {
            let (hub, events) = event_hub::<ConductorEvent>(compat);
            let mut options =
                ConductorOptions { heartbeat_interval, peer_scheme, token, events, ..ConductorOptions::default() };
            if let Some(timeout) = peer_timeout {
                options.call_timeout = timeout;
            }
            let conductor = Arc::new(Conductor::with_store(options, store.unwrap_or_else(Store::memory)));
            built.tasks.push(conductor.spawn_watchdog());
            built.router = built.router.with(ConductorHandler::new(conductor));
            built.events = Some(hub);
        }
        Service::Network => {
            let config = NetworkHostConfig::load(config()?).map_err(|e| CliError::usage(e.to_string()))?;
            tracing::info!(networks = config.networks.len(), "network host configured");
            let (hub, events) = event_hub::<NetworkEvent>(compat);
            built.router = built.router.with(NetworkServer(Arc::new(NetworkHost::new(config).with_events(events))));
            built.events = Some(hub);
        }
        Service::Guest => {
            let (guest, follower) = GuestChannel::standalone();
            built.tasks.push(follower);
            built.router = built.router.with(GuestServer(Arc::new(guest)));
        }
    }
    Ok(built)
}

/// The conductor's store: `--state` (`memory`, `sqlite:PATH`, `postgres://...`), else
/// `conductor.db` in the state directory; opened and migrated now.
async fn open_state(flag: Option<&str>) -> Result<Store, CliError> {
    let url = match flag {
        Some("memory") => {
            tracing::info!("conductor state in memory: nothing is kept across restarts");
            return Ok(Store::memory());
        }
        Some(text) => text.parse::<StateUrl>().map_err(|e| CliError::usage(format!("--state: {e}")))?,
        None => StateUrl::Sqlite(default_state_dir()?.join("conductor.db")),
    };
    let store = Store::open(&url).await.map_err(|e| CliError::failed(e.to_string()))?;
    tracing::info!(state = %url, "conductor state opened");
    Ok(store)
}

/// Where the conductor keeps its state when `--state` is not given: `$STATE_DIRECTORY`
/// (systemd's `StateDirectory=`; the first of several), else `$XDG_STATE_HOME/vproto`, else
/// `~/.local/state/vproto`.
fn default_state_dir() -> Result<PathBuf, CliError> {
    let env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dirs) = env("STATE_DIRECTORY") {
        let first = dirs.to_string_lossy().split(':').next().unwrap_or_default().to_string();
        return Ok(PathBuf::from(first));
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return Ok(PathBuf::from(state).join("vproto"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/vproto")),
        None => {
            Err(CliError::usage("no state directory (no $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME): give --state"))
        }
    }
}
