//! The conductor's durable state through `vproto serve conductor --state` (issue #14): killed
//! with SIGKILL during a registration storm and restarted on its SQLite file, it lists every
//! registration it acknowledged and the agent that vanished as not alive; two conductors on one
//! PostgreSQL answer the same `list_agents`; a state written by a newer vproto is refused.

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use vproto_api::{AgentRegistration, ComponentStatus, ConductorClient, Endpoint};
use vproto_jsonrpc::{Client, ClientOptions, Token};
use vproto_test_support::{postgres::Cluster, Process};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The token every service of a test requires and presents (a tcp: listener needs one).
const TOKEN: &str = "conductor-state-token";

/// Writes the token file (mode 0600) into `dir`.
fn token_file(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    // Written once: rewriting it would truncate it under a process reading it at its start.
    if !path.exists() {
        std::fs::write(&path, TOKEN).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.display().to_string()
}

/// `vproto serve ARGS --token-file DIR/token`, its log in `dir/NAME.log`.
fn serve(dir: &Path, name: &str, args: &[&str]) -> Process {
    let mut command = Command::new(VPROTO);
    command.arg("serve").args(args).args(["--token-file", &token_file(dir)]).env("VPROTO_LOG", "info");
    Process::spawn(command, dir.join(format!("{name}.log")))
}

/// `vproto call --connect ADDR METHOD`, presenting the token.
fn call(addr: &str, method: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(VPROTO)
        .args(["call", "--connect", addr, "--timeout", "5s", "--token-file", &token_file(dir.path()), method])
        .stdin(Stdio::null())
        .output()
        .expect("vproto call runs")
}

/// `conductor.list_agents` at `addr`, once it answers.
fn list_agents(addr: &str) -> Option<Vec<Value>> {
    let output = call(addr, "conductor.list_agents");
    let listed: Value = serde_json::from_slice(&output.stdout).ok()?;
    listed["agents"].as_array().cloned()
}

/// Polls `check` every 100 ms until it gives a value; fails after `seconds` with the logs.
fn poll<T>(what: &str, seconds: u64, logs: &[&Process], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        let logs: Vec<String> = logs.iter().map(|process| process.log()).collect();
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", logs.join("\n---\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn conductor_args<'a>(listen: &'a str, state: &'a str) -> Vec<&'a str> {
    vec!["conductor", "--listen", listen, "--state", state, "--heartbeat-interval", "1", "--peer-timeout", "1s"]
}

/// Says hello for `count` agents at `127.0.0.1:{base + n}` over `connections` connections
/// to `addr`, until done or the conductor is gone; answers the endpoints acknowledged.
async fn storm(addr: String, base: u16, count: u16, connections: u16, acked: Arc<Mutex<Vec<String>>>) {
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let (addr, acked) = (addr.clone(), acked.clone());
        tasks.spawn(async move {
            let options = ClientOptions { token: Some(Token::new(TOKEN).unwrap()), ..ClientOptions::default() };
            let Ok(client) = Client::connect(&addr.parse().unwrap(), options).await else { return };
            let conductor = ConductorClient::new(client);
            for n in (connection..count).step_by(connections as usize) {
                let endpoint = Endpoint::new(format!("127.0.0.1:{}", base + n)).unwrap();
                let registration = AgentRegistration {
                    endpoint: endpoint.clone(),
                    status: ComponentStatus::NotReady,
                    protocol_version: Some(vproto_api::PROTOCOL_VERSION.into()),
                };
                match conductor.hello(&registration).await {
                    Ok(_) => acked.lock().unwrap().push(endpoint.to_string()),
                    Err(_) => return,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[test]
fn a_conductor_killed_during_a_registration_storm_restarts_with_every_acknowledged_agent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/conductor.db");
    let state = format!("sqlite:{}", db.display());
    let listen = format!("tcp:127.0.0.1:{}", free_port());
    let mut conductor = serve(dir.path(), "conductor", &conductor_args(&listen, &state));
    poll("the conductor to answer", 30, &[&conductor], || list_agents(&listen));

    // Two real agents: one stays, one vanishes while the conductor is down.
    let (staying, vanishing) = (free_port(), free_port());
    let staying_agent = serve(
        dir.path(),
        "agent-staying",
        &["agent", "--listen", &format!("tcp:127.0.0.1:{staying}"), "--conductor", &listen, "--hello-retry", "100ms"],
    );
    let mut vanishing_agent = serve(
        dir.path(),
        "agent-vanishing",
        &["agent", "--listen", &format!("tcp:127.0.0.1:{vanishing}"), "--conductor", &listen, "--hello-retry", "100ms"],
    );
    poll("both agents to register", 30, &[&conductor, &staying_agent, &vanishing_agent], || {
        let agents = list_agents(&listen)?;
        (agents.len() == 2).then_some(())
    });

    // The storm; SIGKILL once a few hundred registrations were acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storm_task = runtime.spawn(storm(listen.clone(), 30_000, 3_000, 16, acked.clone()));
    poll("registrations to be acknowledged", 60, &[&conductor], || (acked.lock().unwrap().len() >= 300).then_some(()));
    conductor.kill();
    runtime.block_on(storm_task).unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < 3_000, "killed during the storm, not after it");
    vanishing_agent.kill();

    // The file is whole, and the restarted conductor lists every acknowledged registration.
    let integrity = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&integrity.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&integrity.stderr)
    );
    let conductor = serve(dir.path(), "conductor-restarted", &conductor_args(&listen, &state));
    let (staying, vanishing) = (format!("127.0.0.1:{staying}"), format!("127.0.0.1:{vanishing}"));
    let agents = poll("the vanished agent to be listed not alive", 30, &[&conductor, &staying_agent], || {
        let agents = list_agents(&listen)?;
        let alive = |endpoint: &str| agents.iter().find(|a| a["endpoint"] == endpoint).map(|a| a["alive"] == true);
        (alive(&staying) == Some(true) && alive(&vanishing) == Some(false)).then_some(agents)
    });
    let listed: std::collections::BTreeSet<&str> = agents.iter().filter_map(|a| a["endpoint"].as_str()).collect();
    let lost: Vec<&String> = acked.iter().filter(|endpoint| !listed.contains(endpoint.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged registrations lost: {lost:?}", lost.len());
    assert!(conductor.log().contains("agent is missing"), "{}", conductor.log());
    drop(staying_agent);
}

#[test]
fn a_state_written_by_a_newer_vproto_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conductor.db");
    let state = format!("sqlite:{}", db.display());
    let listen = format!("unix:{}", dir.path().join("c.sock").display());
    let conductor = serve(dir.path(), "conductor", &conductor_args(&listen, &state));
    poll("the conductor to answer", 30, &[&conductor], || list_agents(&listen));
    drop(conductor);
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) VALUES (7, 'future', 1, x'00', 0)\"); c.commit()",
        ])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let output = Command::new(VPROTO)
        .arg("serve")
        .args(conductor_args(&listen, &state))
        .args(["--token-file", &token_file(dir.path())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("written by a newer vproto") && stderr.contains("migration 7"), "{stderr}");
}

#[test]
fn two_conductors_on_one_postgres_answer_the_same_list_agents() {
    if let Some(why) = Cluster::skip_reason() {
        return vproto_test_support::missing_peer(&why);
    }
    let cluster = Cluster::start();
    let url = cluster.create_database("cyborg");
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (format!("tcp:127.0.0.1:{}", free_port()), format!("tcp:127.0.0.1:{}", free_port()));
    let one = serve(dir.path(), "conductor-1", &conductor_args(&first, &url));
    let two = serve(dir.path(), "conductor-2", &conductor_args(&second, &url));
    poll("both conductors to answer", 30, &[&one, &two], || list_agents(&first).and(list_agents(&second)));
    // An agent registers with the first only; a second agent with the second only.
    let agents: Vec<Process> = [&first, &second]
        .iter()
        .enumerate()
        .map(|(n, conductor)| {
            let listen = format!("tcp:127.0.0.1:{}", free_port());
            serve(dir.path(), &format!("agent-{n}"), &["agent", "--listen", &listen, "--conductor", conductor])
        })
        .collect();
    let listed = poll("both agents listed by both", 30, &[&one, &two, &agents[0], &agents[1]], || {
        let (a, b) = (list_agents(&first)?, list_agents(&second)?);
        (a.len() == 2 && a == b && a.iter().all(|agent| agent["alive"] == true)).then_some(a)
    });
    assert_eq!(listed.len(), 2);
}
