//! `vproto-load`: a Cyborg conductor under the load of N simulated agents (issue #14's scale
//! figures). It starts a real `vproto serve conductor` process on the transport address given
//! (`--listen`, default a loopback TCP port; `--conductor-arg` passes anything else, such as a
//! bus), then N agents in this process, each a JSON-RPC server on its own loopback port serving
//! `agent.*` over D real [`Driver`]s (their simulated hardware, one device each), each saying
//! hello to the conductor with the services' own hello loop, and measures:
//!
//! 1. registration storm: the N agents start at once; time until `conductor.list_agents`
//!    lists all N;
//! 2. `conductor.list_hardware` latency (p50, p99) once every inventory is stored;
//! 3. conductor memory per agent: its resident set (VmRSS) after the storm minus before, / N;
//! 4. restart under load: the conductor is killed (SIGKILL) while a caller keeps asking
//!    `conductor.list_hardware` and the agents keep saying hello, then started again on the
//!    same address and state: time until it answers again, and how many of the N registrations
//!    it no longer lists (must be 0).
//!
//! ```text
//! vproto-load [--agents N] [--drivers D] [--samples M] [--vproto PATH] [--listen ADDR]
//!             [--state URL] [--heartbeat-interval SECONDS] [--conductor-arg ARG]... [--conductor-log FILTER]
//! ```
//!
//! The figures are printed as one Markdown table row (docs/benchmarks.md). Exit 1 when a
//! registration was lost or a step did not complete in time.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use vproto_api::{
    AgentRegistration, AgentServer, AgentService, ComponentStatus, ConductorClient, Deregistration, DiscoveryState,
    DiscoveryStatus, DriverRegistration, DriverService, Endpoint, HardwareList, HelloAck, ServiceError,
};
use vproto_jsonrpc::{Client, ClientOptions, ConnectAddr, ListenAddr, RunningServer, Server, Token};
use vproto_services::{
    agent::say_hello,
    driver::{Driver, DriverConfig},
    peer::{hello_ack, HelloLoop},
};
use vproto_support::rpc::Answer;

/// What to run.
struct Options {
    agents: usize,
    drivers: usize,
    samples: usize,
    vproto: PathBuf,
    listen: String,
    state: String,
    heartbeat_interval: u64,
    conductor_args: Vec<String>,
    /// The conductor's log filter (`--log`).
    conductor_log: String,
    /// The directory of the default state and the token file, removed at the end.
    dir: PathBuf,
    /// The token the conductor requires and presents to the agents, which require it too.
    token: Token,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "vproto-load: {why}\nusage: vproto-load [--agents N] [--drivers D] [--samples M] [--vproto PATH] \
         [--listen ADDR] [--state URL] [--heartbeat-interval SECONDS] [--conductor-arg ARG]... [--conductor-log FILTER]"
    );
    std::process::exit(2)
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
        listen: format!("tcp:127.0.0.1:{}", port.unwrap_or_else(|e| usage(&format!("no free port: {e}")))),
        state: format!("sqlite:{}", dir.join("conductor.db").display()),
        heartbeat_interval: 30,
        conductor_args: Vec::new(),
        conductor_log: "warn".to_string(),
        dir,
        token,
    };
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
            "--listen" => options.listen = value(),
            "--state" => options.state = value(),
            "--conductor-arg" => options.conductor_args.push(value()),
            "--conductor-log" => options.conductor_log = value(),
            "--help" | "-h" => usage("the conductor under N simulated agents"),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    if !options.vproto.is_file() {
        usage(&format!("no vproto binary at {} (build it, or give --vproto PATH)", options.vproto.display()));
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

/// Starts `vproto serve conductor` and waits for the address it prints.
fn start_conductor(options: &Options) -> Child {
    let token_file = options.dir.join("token");
    if !token_file.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::create_dir_all(&options.dir).and_then(|()| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file)?;
            std::io::Write::write_all(&mut file, options.token.secret().as_bytes())
        });
        written.unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", token_file.display())));
    }
    let mut command = Command::new(&options.vproto);
    command
        .args(["serve", "conductor", "--listen", &options.listen, "--state", &options.state])
        .args(["--heartbeat-interval", &options.heartbeat_interval.to_string(), "--log", &options.conductor_log])
        .arg("--token-file")
        .arg(&token_file)
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
static CONDUCTOR: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);

fn fail(why: &str) -> ! {
    eprintln!("vproto-load: {why}");
    if let Some(pid) = *CONDUCTOR.lock().unwrap_or_else(|p| p.into_inner()) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    std::process::exit(1)
}

/// The conductor's resident set, in KiB.
fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn conductor_client(addr: &ConnectAddr, token: &Token) -> Option<ConductorClient<Client>> {
    let options = ClientOptions {
        request_timeout: Duration::from_secs(10),
        token: Some(token.clone()),
        ..ClientOptions::default()
    };
    Client::connect(addr, options).await.ok().map(ConductorClient::new)
}

/// Polls `conductor.list_agents` until it lists at least `count` agents; answers when.
async fn until_listed(addr: &ConnectAddr, token: &Token, count: usize, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(client) = conductor_client(addr, token).await {
            while Instant::now() < deadline {
                match client.list_agents().await {
                    Ok(list) if list.agents.len() >= count => return Some(Instant::now()),
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

#[tokio::main]
async fn main() {
    let options = parse_options();
    let addr: ConnectAddr = options.listen.parse().unwrap_or_else(|e| usage(&format!("--listen: {e}")));
    let token = options.token.clone();
    let mut conductor = start_conductor(&options);
    let client = conductor_client(&addr, &token).await.unwrap_or_else(|| fail("cannot connect to the conductor"));
    client.list_agents().await.unwrap_or_else(|e| fail(&format!("conductor.list_agents: {e}")));
    let rss_before = rss_kib(&conductor);

    // The agents' servers first, then their hello loops all at once.
    let loopback: ListenAddr = "tcp:127.0.0.1:0".parse().expect("an address");
    let mut servers: Vec<RunningServer> = Vec::with_capacity(options.agents);
    for node in 0..options.agents {
        let agent = Arc::new(SimAgent::new(node, options.drivers));
        // Its drivers list what their (instant) discovery found.
        agent.start_discovery().await.unwrap_or_else(|e| fail(&format!("simulated discovery: {e}")));
        let server = Server::new(AgentServer(agent))
            .with_token(token.clone())
            .bind(&loopback)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        servers.push(server);
    }
    let registrations: Vec<AgentRegistration> = servers
        .iter()
        .map(|server| {
            let text = server.local_addr().to_string();
            let endpoint = Endpoint::new(text.trim_start_matches("tcp:")).expect("host:port");
            AgentRegistration {
                endpoint,
                status: ComponentStatus::Ready,
                protocol_version: Some(vproto_api::PROTOCOL_VERSION.into()),
            }
        })
        .collect();
    let started = Instant::now();
    let hellos: Vec<_> = registrations
        .iter()
        .map(|registration| {
            let hello = HelloLoop {
                target: addr.clone(),
                options: ClientOptions { token: Some(token.clone()), ..ClientOptions::default() },
                retry: Duration::from_millis(100),
                what: "conductor",
            };
            say_hello(hello, registration.clone())
        })
        .collect();
    let Some(listed) = until_listed(&addr, &options.token, options.agents, Duration::from_secs(120)).await else {
        fail("the agents were not all listed within 120 s")
    };
    let storm = listed - started;

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
    let mut latencies = Vec::with_capacity(options.samples);
    for _ in 0..options.samples {
        let call = Instant::now();
        client.list_hardware().await.unwrap_or_else(|e| fail(&format!("conductor.list_hardware: {e}")));
        latencies.push(call.elapsed());
    }
    latencies.sort();
    let rss_after = rss_kib(&conductor);
    let per_agent = (rss_after.saturating_sub(rss_before) as f64 * 1024.0) / options.agents as f64;

    // Restart under load: a caller keeps listing hardware while the conductor is killed.
    let load = {
        let (addr, token) = (addr.clone(), token.clone());
        tokio::spawn(async move {
            let (mut answered, mut failed) = (0u64, 0u64);
            loop {
                match conductor_client(&addr, &token).await {
                    Some(client) => loop {
                        match client.list_hardware().await {
                            Ok(_) => answered += 1,
                            Err(_) => {
                                failed += 1;
                                break;
                            }
                        }
                        if answered % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    },
                    None => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                if answered > u64::MAX / 2 {
                    return (answered, failed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    let _ = conductor.kill();
    let _ = conductor.wait();
    conductor = start_conductor(&options);
    let client = loop {
        if let Some(client) = conductor_client(&addr, &token).await {
            if let Ok(list) = client.list_agents().await {
                break (client, list);
            }
        }
        if killed.elapsed() > Duration::from_secs(60) {
            fail("the restarted conductor did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let serving_again = killed.elapsed();
    let (_client, list) = client;
    let listed: std::collections::BTreeSet<&str> = list.agents.iter().map(|agent| agent.endpoint.as_str()).collect();
    let lost = registrations.iter().filter(|r| !listed.contains(r.endpoint.as_str())).count();
    load.abort();
    for hello in hellos {
        hello.abort();
    }
    let _ = conductor.kill();
    let _ = conductor.wait();

    println!(
        "| TCP ({}) | {} agents x {} drivers | {} | {} / {} | {:.1} KiB | {} | {} |",
        options.state.split(':').next().unwrap_or_default(),
        options.agents,
        options.drivers,
        ms(storm),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        per_agent / 1024.0,
        ms(serving_again),
        lost
    );
    let _ = std::fs::remove_dir_all(&options.dir);
    if lost > 0 {
        fail(&format!("{lost} registrations lost across the restart"));
    }
}
