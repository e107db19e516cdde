//! `vproto-load`: a Cyborg conductor under the load of N simulated agents (issue #14's scale
//! figures), over TCP and over the message bus (AMQP), side by side in one run.
//!
//! For each transport asked for (`--transports tcp,amqp`), it starts a real `vproto serve
//! conductor` process with a state of its own, then N agents in this process, each serving
//! `agent.*` over D real [`Driver`]s (their simulated hardware, one device each) and saying
//! hello to the conductor with the services' own hello loop, and measures:
//!
//! 1. registration storm: the N agents start at once; time until `conductor.list_agents`
//!    lists all N;
//! 2. `conductor.list_hardware` latency (p50, p99) once every inventory is stored;
//! 3. conductor memory per agent: its resident set (VmRSS) after the storm and the listings
//!    minus before, / N (and, on standard error, the same once all are listed and once every
//!    inventory is stored);
//! 4. restart under load: the conductor is killed (SIGKILL) while a caller keeps asking
//!    `conductor.list_hardware` and the agents keep saying hello, then started again on the
//!    same address and state: time until it answers again, and how many of the N registrations
//!    it no longer lists (must be 0).
//!
//! Over `tcp` the conductor listens on a loopback port (`--listen`) and each agent on its own,
//! all requiring a token; the conductor dials the endpoints the agents announce. Over `amqp`
//! nothing is dialled but the broker: the conductor is `vproto serve conductor --bus BROKER`,
//! each agent serves its instance queue `agent.127.0.0.1:PORT` (a name, never dialled) on this
//! process's one shared broker connection, says hello to the shared `conductor` queue, and the
//! tool calls the conductor there. The broker is `--bus amqp://...` (give it a broker or vhost
//! of its own: the run declares `conductor` and `agent.*` queues) or, by default, a private
//! Debian `rabbitmq-server` started for the run as the tests start theirs
//! (`vproto_test_support::rabbitmq`).
//!
//! ```text
//! vproto-load [--agents N] [--drivers D] [--samples M] [--vproto PATH] [--transports tcp,amqp]
//!             [--listen tcp:HOST:PORT] [--bus amqp://BROKER] [--state URL] [--heartbeat-interval SECONDS]
//!             [--conductor-arg ARG]... [--conductor-log FILTER]
//! ```
//!
//! `--transports` is `tcp` unless `--bus` is given (then `tcp,amqp`). With several transports a
//! `--state` URL must hold `{transport}`, replaced by each one's name, so every conductor starts
//! from a state of its own. The figures are printed as a Markdown table (docs/benchmarks.md), one
//! row per transport. Exit 1 when a registration was lost or a step did not complete in time.

use std::{
    collections::HashSet,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::json;
use vproto_api::{
    AgentRegistration, AgentServer, AgentService, ComponentStatus, ConductorClient, Deregistration, DiscoveryState,
    DiscoveryStatus, DriverRegistration, DriverService, Endpoint, HardwareList, HelloAck, ServiceError,
};
use vproto_jsonrpc::{
    transport::{AmqpAddr, AmqpBroker, AmqpRoute},
    Client, ClientOptions, ConnectAddr, ListenAddr, RunningServer, Server, Token,
};
use vproto_services::{
    agent::say_hello,
    driver::{Driver, DriverConfig},
    peer::{bus_addr, hello_ack, HelloLoop},
};
use vproto_support::rpc::Answer;
use vproto_test_support::rabbitmq::Broker;

/// What to run.
struct Options {
    agents: usize,
    drivers: usize,
    samples: usize,
    vproto: PathBuf,
    transports: Vec<Transport>,
    /// The TCP conductor's address.
    listen: String,
    /// The broker of `--bus`; a private one is started when `amqp` runs without it.
    bus: Option<AmqpBroker>,
    /// The state URL, `{transport}` replaced by each transport's name.
    state: String,
    heartbeat_interval: u64,
    conductor_args: Vec<String>,
    /// The conductor's log filter (`--log`).
    conductor_log: String,
    /// The directory of the default state and the token file, removed at the end.
    dir: PathBuf,
    /// The token the TCP conductor requires and presents to the agents, which require it too.
    token: Token,
}

/// A transport the conductor and its agents talk over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Amqp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Amqp => "amqp",
        }
    }

    /// How the table's rows name it.
    fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Amqp => "AMQP",
        }
    }
}

const USAGE: &str = "usage: vproto-load [--agents N] [--drivers D] [--samples M] [--vproto PATH] \
     [--transports tcp,amqp] [--listen tcp:HOST:PORT] [--bus amqp://BROKER] [--state URL] \
     [--heartbeat-interval SECONDS] [--conductor-arg ARG]... [--conductor-log FILTER]";

fn usage(why: &str) -> ! {
    eprintln!("vproto-load: {why}\n{USAGE}");
    std::process::exit(2)
}

fn parse_transports(text: &str) -> Vec<Transport> {
    let mut transports = Vec::new();
    for name in text.split(',').map(str::trim) {
        let transport = match name {
            "tcp" => Transport::Tcp,
            "amqp" => Transport::Amqp,
            other => usage(&format!("--transports: `{other}` is not a transport (tcp, amqp)")),
        };
        if !transports.contains(&transport) {
            transports.push(transport);
        }
    }
    transports
}

fn parse_options() -> Options {
    let dir = std::env::temp_dir().join(format!("vproto-load-{}", std::process::id()));
    let secret = format!("vproto-load-{}-{:?}", std::process::id(), Instant::now());
    let token = Token::new(&secret).expect("a token");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let mut options = Options {
        agents: 1_000,
        drivers: 2,
        samples: 500,
        vproto: std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("vproto"))).unwrap_or_default(),
        transports: Vec::new(),
        listen: format!("tcp:127.0.0.1:{}", port.unwrap_or_else(|e| usage(&format!("no free port: {e}")))),
        bus: None,
        state: format!("sqlite:{}", dir.join("conductor-{transport}.db").display()),
        heartbeat_interval: 30,
        conductor_args: Vec::new(),
        conductor_log: "warn".to_string(),
        dir,
        token,
    };
    let mut state_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |text: String, min: usize| match text.parse::<usize>() {
            Ok(n) if n >= min => n,
            _ => usage(&format!("{flag} `{text}`: give a whole number of at least {min}")),
        };
        match flag.as_str() {
            "--agents" => options.agents = number(value(), 1),
            "--drivers" => options.drivers = number(value(), 1),
            "--samples" => options.samples = number(value(), 1),
            "--heartbeat-interval" => options.heartbeat_interval = number(value(), 1) as u64,
            "--vproto" => options.vproto = PathBuf::from(value()),
            "--transports" => options.transports = parse_transports(&value()),
            "--listen" => options.listen = value(),
            "--bus" => {
                let text = value();
                let broker = text.parse::<AmqpBroker>().unwrap_or_else(|e| usage(&format!("--bus: {e}")));
                if broker.secure {
                    usage("--bus: an amqps:// broker is not supported by the load tool; give an amqp:// one");
                }
                options.bus = Some(broker);
            }
            "--state" => {
                options.state = value();
                state_given = true;
            }
            "--conductor-arg" => options.conductor_args.push(value()),
            "--conductor-log" => options.conductor_log = value(),
            "--help" | "-h" => usage("the conductor under N simulated agents"),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    if options.transports.is_empty() {
        options.transports =
            if options.bus.is_some() { vec![Transport::Tcp, Transport::Amqp] } else { vec![Transport::Tcp] };
    }
    if !options.vproto.is_file() {
        usage(&format!("no vproto binary at {} (build it, or give --vproto PATH)", options.vproto.display()));
    }
    match options.listen.parse::<ListenAddr>() {
        Ok(ListenAddr::Tcp { .. }) => {}
        Ok(other) => {
            usage(&format!("--listen {other}: the TCP conductor's address is a tcp: one (for the bus, --bus)"))
        }
        Err(e) => usage(&format!("--listen: {e}")),
    }
    if state_given && options.transports.len() > 1 && !options.state.contains("{transport}") {
        usage("--state: with several transports, put {transport} in the URL (a state for each conductor)");
    }
    if options.bus.is_some() && !options.transports.contains(&Transport::Amqp) {
        usage("--bus is given but --transports has no amqp");
    }
    options
}

/// One simulated node: an agent answering for its drivers, called in process.
struct SimAgent {
    drivers: Vec<Driver>,
}

impl SimAgent {
    fn new(node: usize, drivers: usize) -> SimAgent {
        let drivers = (0..drivers)
            .map(|d| {
                let uuid = format!("{:08x}-0000-4000-8000-{:012x}", node, d);
                let config = json!({
                    "device_type": "GPU",
                    "discovery": {"duration_ms": 0},
                    "hardware": [{
                        "uuid": uuid,
                        "acc_specs": {"remote": false, "num": 1, "device_type": "GPU", "acc_capability": {"num": 1}},
                        "acc_status": {"setup_required": false, "reboot_required": false}
                    }]
                });
                Driver::new(DriverConfig::from_json(&config).expect("a valid driver config"))
            })
            .collect();
        SimAgent { drivers }
    }
}

impl AgentService for SimAgent {
    async fn hello(&self, _registration: DriverRegistration) -> Result<Answer<HelloAck>, ServiceError> {
        Ok(hello_ack(Duration::from_secs(30)).into())
    }

    async fn deregister(&self, endpoint: Endpoint) -> Result<Answer<Deregistration>, ServiceError> {
        // Its drivers are in process, registered by no endpoint: there is none to forget.
        Ok(Deregistration { endpoint, deregistered: false }.into())
    }

    async fn list_hardware(&self) -> Result<Answer<HardwareList>, ServiceError> {
        let mut hardware = Vec::new();
        for driver in &self.drivers {
            hardware.extend(driver.list_hardware().await?.into_value().hardware);
        }
        Ok(HardwareList { hardware }.into())
    }

    async fn start_discovery(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        for driver in &self.drivers {
            driver.start_discovery().await?;
        }
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }

    async fn discovery_status(&self) -> Result<Answer<DiscoveryStatus>, ServiceError> {
        Ok(DiscoveryStatus { status: DiscoveryState::Done }.into())
    }
}

/// One transport's run: how its conductor is started and reached.
struct Setup {
    transport: Transport,
    /// `vproto serve conductor` arguments naming where it serves (and its token).
    serve_args: Vec<String>,
    /// The state URL.
    state: String,
    /// Where the tool and the agents call the conductor.
    conductor: ConnectAddr,
    /// The token presented to the conductor and required by the agents (TCP only).
    token: Option<Token>,
    /// The broker (AMQP only).
    broker: Option<AmqpBroker>,
}

impl Setup {
    fn new(options: &Options, transport: Transport, broker: Option<&AmqpBroker>) -> Setup {
        let state = options.state.replace("{transport}", transport.name());
        match transport {
            Transport::Tcp => Setup {
                transport,
                serve_args: vec!["--listen".into(), options.listen.clone(), "--token-file".into(), token_file(options)],
                state,
                conductor: options.listen.parse().unwrap_or_else(|e| usage(&format!("--listen: {e}"))),
                token: Some(options.token.clone()),
                broker: None,
            },
            Transport::Amqp => {
                let broker = broker.expect("a broker for the amqp run").clone();
                let conductor = AmqpAddr::new(broker.clone(), "conductor", AmqpRoute::Shared);
                Setup {
                    transport,
                    serve_args: vec!["--bus".into(), broker.uri()],
                    state,
                    conductor: ConnectAddr::Listen(ListenAddr::Amqp(conductor)),
                    token: None,
                    broker: Some(broker),
                }
            }
        }
    }

    /// Serves one simulated agent: on its own loopback port (TCP), or at its instance queue on
    /// the broker (AMQP); answers its registration.
    async fn serve_agent(
        &self,
        node: usize,
        agent: Arc<SimAgent>,
    ) -> Result<(RunningServer, AgentRegistration), String> {
        let server = Server::new(AgentServer(agent));
        let (running, endpoint) = match &self.broker {
            None => {
                let loopback: ListenAddr = "tcp:127.0.0.1:0".parse().expect("an address");
                let server = match &self.token {
                    Some(token) => server.with_token(token.clone()),
                    None => server,
                };
                let running = server.bind(&loopback).await.map_err(|e| e.to_string())?;
                let text = running.local_addr().to_string();
                let endpoint = Endpoint::new(text.trim_start_matches("tcp:")).map_err(|e| e.to_string())?;
                (running, endpoint)
            }
            Some(broker) => {
                // A name on the bus, never dialled; an address the conductor's peer policy
                // accepts without resolving anything.
                let port = 10_000 + node % 50_000;
                let endpoint =
                    Endpoint::new(format!("127.0.0.{}:{port}", 1 + node / 50_000)).map_err(|e| e.to_string())?;
                let addr = ListenAddr::Amqp(bus_addr(broker, "agent", &endpoint));
                (server.bind(&addr).await.map_err(|e| e.to_string())?, endpoint)
            }
        };
        let registration = AgentRegistration {
            endpoint,
            status: ComponentStatus::Ready,
            protocol_version: Some(vproto_api::PROTOCOL_VERSION.into()),
        };
        Ok((running, registration))
    }
}

/// The token file the TCP conductor reads, written once.
fn token_file(options: &Options) -> String {
    let token_file = options.dir.join("token");
    if !token_file.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::create_dir_all(&options.dir).and_then(|()| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file)?;
            std::io::Write::write_all(&mut file, options.token.secret().as_bytes())
        });
        written.unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", token_file.display())));
    }
    token_file.display().to_string()
}

/// Starts `vproto serve conductor` and waits for the address it prints.
fn start_conductor(options: &Options, setup: &Setup) -> Child {
    std::fs::create_dir_all(&options.dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", options.dir.display())));
    let mut command = Command::new(&options.vproto);
    command
        .args(["serve", "conductor"])
        .args(&setup.serve_args)
        .args(["--state", &setup.state])
        .args(["--heartbeat-interval", &options.heartbeat_interval.to_string(), "--log", &options.conductor_log])
        .args(&options.conductor_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| usage(&format!("cannot start {command:?}: {e}")));
    *CONDUCTOR.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.id());
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).ok();
    if line.trim().is_empty() {
        let _ = child.wait();
        fail("the conductor did not start (see its log above)");
    }
    child
}

/// The conductor running now, stopped when the tool fails.
static CONDUCTOR: Mutex<Option<u32>> = Mutex::new(None);
/// The private broker, stopped when the tool ends or fails.
static BROKER: Mutex<Option<Broker>> = Mutex::new(None);

fn fail(why: &str) -> ! {
    eprintln!("vproto-load: {why}");
    if let Some(pid) = *CONDUCTOR.lock().unwrap_or_else(|p| p.into_inner()) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    stop_private_broker();
    std::process::exit(1)
}

fn stop_private_broker() {
    let broker = BROKER.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(broker);
}

/// Starts the private broker; answers its address.
async fn start_private_broker() -> AmqpBroker {
    if let Some(why) = Broker::skip_reason() {
        usage(&format!("{why}; or give --bus amqp://BROKER"));
    }
    eprintln!("vproto-load: starting a private rabbitmq-server");
    let broker = tokio::task::spawn_blocking(Broker::start)
        .await
        .unwrap_or_else(|e| fail(&format!("the private rabbitmq-server did not start: {e}")));
    let url = broker.url();
    *BROKER.lock().unwrap_or_else(|p| p.into_inner()) = Some(broker);
    url.parse().unwrap_or_else(|e| fail(&format!("the private broker's address: {e}")))
}

/// A process's resident set, in KiB.
fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The machine's load average over the last minute.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}

fn client_options(token: Option<&Token>) -> ClientOptions {
    ClientOptions { request_timeout: Duration::from_secs(10), token: token.cloned(), ..ClientOptions::default() }
}

async fn conductor_client(addr: &ConnectAddr, token: Option<&Token>) -> Option<ConductorClient<Client>> {
    Client::connect(addr, client_options(token)).await.ok().map(ConductorClient::new)
}

/// Polls `conductor.list_agents` until it lists every endpoint of `expected`; answers when.
async fn until_listed(setup: &Setup, expected: &HashSet<&str>, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(client) = conductor_client(&setup.conductor, setup.token.as_ref()).await {
            while Instant::now() < deadline {
                match client.list_agents().await {
                    Ok(list)
                        if list.agents.iter().filter(|agent| expected.contains(agent.endpoint.as_str())).count()
                            >= expected.len() =>
                    {
                        return Some(Instant::now())
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

/// One transport's figures.
struct Row {
    label: String,
    storm: Duration,
    p50: Duration,
    p99: Duration,
    per_agent_kib: f64,
    serving_again: Duration,
    lost: usize,
    load: String,
}

/// Starts the agents' servers, a few at a time (on the bus each declares its queues).
async fn serve_agents(options: &Options, setup: &Arc<Setup>) -> (Vec<RunningServer>, Vec<AgentRegistration>) {
    let mut started = Vec::with_capacity(options.agents);
    let mut tasks = tokio::task::JoinSet::new();
    for node in 0..options.agents {
        let agent = Arc::new(SimAgent::new(node, options.drivers));
        // Its drivers list what their (instant) discovery found.
        agent.start_discovery().await.unwrap_or_else(|e| fail(&format!("simulated discovery: {e}")));
        let setup = setup.clone();
        tasks.spawn(async move { (node, setup.serve_agent(node, agent).await) });
        if tasks.len() >= 32 {
            started.push(tasks.join_next().await.expect("a task"));
        }
    }
    while let Some(joined) = tasks.join_next().await {
        started.push(joined);
    }
    let mut served: Vec<(usize, RunningServer, AgentRegistration)> = started
        .into_iter()
        .map(|joined| match joined {
            Ok((node, Ok((server, registration)))) => (node, server, registration),
            Ok((node, Err(why))) => fail(&format!("simulated agent {node}: {why}")),
            Err(error) => fail(&format!("a simulated agent's task failed: {error}")),
        })
        .collect();
    served.sort_by_key(|(node, _, _)| *node);
    served.into_iter().map(|(_, server, registration)| (server, registration)).unzip()
}

/// Runs the four measurements over one transport.
async fn run(options: &Options, setup: Setup) -> Row {
    let setup = Arc::new(setup);
    let token = setup.token.as_ref();
    let mut conductor = start_conductor(options, &setup);
    let client = conductor_client(&setup.conductor, token)
        .await
        .unwrap_or_else(|| fail(&format!("cannot connect to the conductor at {}", setup.conductor)));
    client.list_agents().await.unwrap_or_else(|e| fail(&format!("conductor.list_agents: {e}")));
    let rss_before = rss_kib(&conductor);

    // The agents' servers first, then their hello loops all at once.
    let (servers, registrations) = serve_agents(options, &setup).await;
    let expected: HashSet<&str> = registrations.iter().map(|r| r.endpoint.as_str()).collect();
    let started = Instant::now();
    let hellos: Vec<_> = registrations
        .iter()
        .map(|registration| {
            let hello = HelloLoop {
                target: setup.conductor.clone(),
                options: ClientOptions { token: setup.token.clone(), ..ClientOptions::default() },
                retry: Duration::from_millis(100),
                what: "conductor",
            };
            say_hello(hello, registration.clone())
        })
        .collect();
    let Some(listed) = until_listed(&setup, &expected, Duration::from_secs(120)).await else {
        fail("the agents were not all listed within 120 s")
    };
    let storm = listed - started;
    let rss_listed = rss_kib(&conductor);

    // Every inventory stored (fetched as each agent registered), then list_hardware timed.
    let devices = options.agents * options.drivers;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match client.list_hardware().await {
            Ok(list) if list.hardware.len() == devices => break,
            Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(list) => fail(&format!("{} of {devices} devices listed after 120 s", list.hardware.len())),
            Err(error) => fail(&format!("conductor.list_hardware: {error}")),
        }
    }
    let rss_stored = rss_kib(&conductor);
    let mut latencies = Vec::with_capacity(options.samples);
    for _ in 0..options.samples {
        let call = Instant::now();
        client.list_hardware().await.unwrap_or_else(|e| fail(&format!("conductor.list_hardware: {e}")));
        latencies.push(call.elapsed());
    }
    latencies.sort();
    let rss_after = rss_kib(&conductor);
    let per_agent_kib = |rss: u64| rss.saturating_sub(rss_before) as f64 / options.agents as f64;
    eprintln!(
        "vproto-load: {}: conductor memory per agent once all are listed {:.1} KiB, once every inventory is stored {:.1} KiB, after the listings {:.1} KiB (VmRSS {rss_before} KiB before)",
        setup.transport.name(),
        per_agent_kib(rss_listed),
        per_agent_kib(rss_stored),
        per_agent_kib(rss_after),
    );
    drop(client);

    // Restart under load: a caller keeps listing hardware while the conductor is killed.
    let load = {
        let setup = setup.clone();
        tokio::spawn(async move {
            loop {
                match conductor_client(&setup.conductor, setup.token.as_ref()).await {
                    Some(client) => {
                        let mut answered = 0u64;
                        while client.list_hardware().await.is_ok() {
                            answered += 1;
                            if answered % 16 == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    let _ = conductor.kill();
    let _ = conductor.wait();
    conductor = start_conductor(options, &setup);
    let list = loop {
        if let Some(client) = conductor_client(&setup.conductor, token).await {
            if let Ok(list) = client.list_agents().await {
                break list;
            }
        }
        if killed.elapsed() > Duration::from_secs(60) {
            fail("the restarted conductor did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let serving_again = killed.elapsed();
    let listed: HashSet<&str> = list.agents.iter().map(|agent| agent.endpoint.as_str()).collect();
    let lost = expected.iter().filter(|endpoint| !listed.contains(*endpoint)).count();
    load.abort();
    for hello in hellos {
        hello.abort();
    }
    let _ = conductor.kill();
    let _ = conductor.wait();
    *CONDUCTOR.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let load_average = load_average();
    for server in servers {
        server.shutdown().await;
    }
    Row {
        label: format!("{} ({})", setup.transport.label(), setup.state.split(':').next().unwrap_or_default()),
        storm,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        per_agent_kib: per_agent_kib(rss_after),
        serving_again,
        lost,
        load: load_average,
    }
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    let broker = match (&options.bus, options.transports.contains(&Transport::Amqp)) {
        (Some(broker), _) => Some(broker.clone()),
        (None, true) => Some(start_private_broker().await),
        (None, false) => None,
    };
    let mut rows = Vec::new();
    for &transport in &options.transports {
        eprintln!("vproto-load: {} agents x {} drivers over {}", options.agents, options.drivers, transport.name());
        rows.push(run(&options, Setup::new(&options, transport, broker.as_ref())).await);
    }
    println!(
        "| transport (state) | agents | registration storm (all listed) | `list_hardware` p50 / p99 | conductor \
         memory per agent | restart under load: serving again | registrations lost | load average (1 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} × {} drivers | {} | {} / {} | {:.1} KiB | {} | {} | {} |",
            row.label,
            options.agents,
            options.drivers,
            ms(row.storm),
            ms(row.p50),
            ms(row.p99),
            row.per_agent_kib,
            ms(row.serving_again),
            row.lost,
            row.load
        );
    }
    let _ = std::fs::remove_dir_all(&options.dir);
    stop_private_broker();
    let lost: usize = rows.iter().map(|row| row.lost).sum();
    if lost > 0 {
        fail(&format!("{lost} registrations lost across the restarts"));
    }
}
