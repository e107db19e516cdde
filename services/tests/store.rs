//! The conductor's durable state (issue #14): the SQLite and PostgreSQL stores (a private
//! cluster of Debian's PostgreSQL, see vproto_test_support::postgres) and a conductor on each,
//! restarted over the same database, or two conductors sharing one.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use vproto_api::{AgentRegistration, ComponentStatus, ConductorService, DiscoveryState, Endpoint, HardwareList};
use vproto_services::{
    conductor::{Conductor, ConductorOptions},
    store::{Hello, StateUrl, Store, StoreError},
};
use vproto_support::{
    rpc::events::{Event, EventSink, Publisher},
    wire::{WirePath, WireValue},
};
use vproto_test_support::postgres::Cluster;

/// Keeps the names of the events published into it, with the agent they are about.
#[derive(Default)]
struct Names(Mutex<Vec<String>>);

impl EventSink for Names {
    fn publish(&self, event: Arc<dyn Event>) {
        let params = event.to_params(&Default::default()).expect("written");
        let agent = params["agent"]["endpoint"].as_str().or(params["agent"].as_str()).unwrap_or("?").to_string();
        self.0.lock().unwrap().push(format!("{} {agent}", event.name()));
    }
}

impl Names {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::new(text).unwrap()
}

fn hello(at: i64, name: &str) -> Hello {
    Hello {
        endpoint: endpoint(name),
        status: ComponentStatus::Ready,
        protocol_version: Some("1.2".into()),
        at,
        heartbeat: 1_000,
    }
}

fn hardware(uuid: &str) -> HardwareList {
    let value = serde_json::json!({"hardware": [{
        "uuid": uuid,
        "acc_specs": {"remote": false, "num": 1, "device_type": "GPU", "acc_capability": {"num": 1}},
        "acc_status": {"setup_required": false, "reboot_required": false}
    }]});
    HardwareList::from_wire(&value, &WirePath::root()).unwrap()
}

/// What every backend must do, on the stores `open` opens over one database (each call a
/// "restart": a new connection to the same state).
async fn the_store_keeps_agents_inventories_and_runs(open: impl AsyncFn() -> Store) {
    let store = open().await;
    assert_eq!(store.hello(&hello(1_000, "compute-2:1337")).await.unwrap(), None, "first hello");
    assert_eq!(store.hello(&hello(1_500, "compute-1:1337")).await.unwrap(), None);
    let previous = store.hello(&hello(2_000, "compute-2:1337")).await.unwrap().expect("known");
    assert_eq!((previous.first_seen, previous.last_seen, previous.missing), (1_000, 1_000, false));
    assert!(store
        .set_hardware(&endpoint("compute-1:1337"), &hardware("c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18"))
        .await
        .unwrap());
    assert!(!store
        .set_hardware(&endpoint("nobody:1"), &hardware("c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18"))
        .await
        .unwrap());
    let run = store.discovery_started(&endpoint("compute-1:1337"), &DiscoveryState::InProgress, 2_100).await.unwrap();
    drop(store);

    let store = open().await;
    let agents = store.agents().await.unwrap();
    let listed: Vec<(&str, i64, i64, bool)> =
        agents.iter().map(|a| (a.endpoint.as_str(), a.first_seen, a.last_seen, a.hardware.is_some())).collect();
    assert_eq!(listed, [("compute-1:1337", 1_500, 1_500, true), ("compute-2:1337", 1_000, 2_000, false)]);
    assert_eq!(agents[0].protocol_version.as_deref(), Some("1.2"));
    assert_eq!(agents[0].hardware.as_ref().unwrap().hardware[0].uuid.as_str(), "c1f0d8a4-27b6-4e9a-9d35-5e0a7b3c2f18");
    // Alive for three intervals after the last hello, then flagged missing once.
    assert_eq!(store.next_deadline().await.unwrap(), Some(4_500));
    assert!(store.mark_missing(4_500).await.unwrap().is_empty(), "alive at its deadline");
    let flagged = store.mark_missing(4_501).await.unwrap();
    assert_eq!(flagged.iter().map(|a| a.endpoint.as_str()).collect::<Vec<_>>(), ["compute-1:1337"]);
    assert!(flagged[0].missing);
    assert_eq!(store.next_deadline().await.unwrap(), Some(5_000));
    drop(store);

    let store = open().await;
    assert!(store.mark_missing(4_600).await.unwrap().is_empty(), "flagged once, even across a restart");
    let flagged = store.mark_missing(9_000).await.unwrap();
    assert_eq!(flagged.iter().map(|a| a.endpoint.as_str()).collect::<Vec<_>>(), ["compute-2:1337"]);
    let previous = store.hello(&hello(9_500, "compute-1:1337")).await.unwrap().unwrap();
    assert!(previous.missing, "the hello sees it was missing");
    assert!(!store.agents().await.unwrap()[0].missing, "and clears the flag");
    assert!(store.agents().await.unwrap()[0].hardware.is_some(), "a hello keeps the inventory");

    store.discovery_ended(run, &DiscoveryState::Done, 3_000).await.unwrap();
    store.discovery_started(&endpoint("compute-2:1337"), &DiscoveryState::Failed, 3_100).await.unwrap();
    let runs = store.latest_discoveries().await.unwrap();
    let states: Vec<(&str, DiscoveryState, Option<i64>)> =
        runs.iter().map(|r| (r.agent.as_str(), r.state.clone(), r.finished)).collect();
    assert_eq!(
        states,
        [
            ("compute-1:1337", DiscoveryState::Done, Some(3_000)),
            ("compute-2:1337", DiscoveryState::Failed, Some(3_100))
        ]
    );

    assert!(store.deregister(&endpoint("compute-2:1337")).await.unwrap());
    assert!(!store.deregister(&endpoint("compute-2:1337")).await.unwrap());
    assert_eq!(store.agents().await.unwrap().len(), 1);
    assert_eq!(store.latest_discoveries().await.unwrap().len(), 1, "its runs go with it");
}

fn sqlite_url(dir: &tempfile::TempDir) -> StateUrl {
    StateUrl::Sqlite(dir.path().join("state").join("conductor.db"))
}

#[tokio::test]
async fn sqlite_keeps_the_state_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    the_store_keeps_agents_inventories_and_runs(async || Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn a_database_written_by_a_newer_vproto_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    drop(Store::open(&url).await.unwrap());
    // What a newer binary leaves: a migration this one does not know.
    let StateUrl::Sqlite(path) = &url else { unreachable!() };
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) VALUES (3, 'future', 1, x'00', 0)\"); c.commit()",
        ])
        .arg(path)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    match Store::open(&url).await {
        Err(error @ StoreError::Newer { version: 3, known: 2, .. }) => {
            let text = error.to_string();
            assert!(text.contains("written by a newer vproto") && text.contains(&url.to_string()), "{text}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a newer database was opened"),
    }
}

#[test]
fn state_urls_are_checked() {
    assert_eq!("sqlite:/var/lib/x.db".parse::<StateUrl>().unwrap(), StateUrl::Sqlite("/var/lib/x.db".into()));
    assert!("sqlite:".parse::<StateUrl>().unwrap_err().contains("needs a file path"));
    assert!("mysql://x/y".parse::<StateUrl>().unwrap_err().contains("expected sqlite:PATH or postgres://"));
    let url: StateUrl = "postgres://cyborg:secret@db:5432/cyborg".parse().unwrap();
    assert_eq!(url.to_string(), "postgres://cyborg:***@db:5432/cyborg", "no password in logs");
}

/// A cluster for one test, or None when PostgreSQL is missing (skipped, or failed under CI).
fn cluster() -> Option<Cluster> {
    if let Some(why) = Cluster::skip_reason() {
        vproto_test_support::missing_peer(&why);
        return None;
    }
    Some(Cluster::start())
}

#[tokio::test]
async fn postgres_keeps_the_state_across_reopening() {
    let Some(cluster) = cluster() else { return };
    let url: StateUrl = cluster.create_database("state").parse().unwrap();
    the_store_keeps_agents_inventories_and_runs(async || Store::open(&url).await.unwrap()).await;
}

fn options(events: Publisher<vproto_api::ConductorEvent>) -> ConductorOptions {
    ConductorOptions { heartbeat_interval: Duration::from_secs(1), events, ..ConductorOptions::default() }
}

fn registration(name: &str) -> AgentRegistration {
    // Nothing listens there: inventory refreshes fail quietly.
    AgentRegistration { endpoint: endpoint(name), status: ComponentStatus::NotReady, protocol_version: None }
}

#[tokio::test]
async fn two_conductors_on_one_postgres_answer_the_same_agents_and_alarm_once() {
    let Some(cluster) = cluster() else { return };
    let url: StateUrl = cluster.create_database("shared").parse().unwrap();
    let (sink_a, sink_b) = (Arc::new(Names::default()), Arc::new(Names::default()));
    let a = Arc::new(Conductor::with_store(options(Publisher::new(sink_a.clone())), Store::open(&url).await.unwrap()));
    let b = Arc::new(Conductor::with_store(options(Publisher::new(sink_b.clone())), Store::open(&url).await.unwrap()));

    // A registration storm split over both, concurrently, twice over (first hellos, heartbeats).
    for _ in 0..2 {
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..200 {
            let conductor = if n % 2 == 0 { a.clone() } else { b.clone() };
            calls
                .spawn(async move { conductor.hello(registration(&format!("compute-{n:03}:1337"))).await.map(|_| ()) });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap().unwrap();
        }
    }
    let listed_a = a.list_agents().await.unwrap().into_value().agents;
    let listed_b = b.list_agents().await.unwrap().into_value().agents;
    assert_eq!(listed_a.len(), 200);
    assert_eq!(listed_a, listed_b, "either conductor answers the same");
    let registered = sink_a.take().len() + sink_b.take().len();
    assert_eq!(registered, 200, "each agent registered once, by one of them");

    // Both watch; the agents go quiet: each is alarmed once, by one conductor.
    let watchdogs = [a.spawn_watchdog(), b.spawn_watchdog()];
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let (missing_a, missing_b) = (sink_a.take(), sink_b.take());
    let mut missing: Vec<String> = missing_a.iter().chain(&missing_b).cloned().collect();
    missing.sort();
    missing.dedup();
    assert_eq!(missing.len(), 200, "{missing_a:?} {missing_b:?}");
    assert_eq!(missing_a.len() + missing_b.len(), 200, "once each");
    assert!(missing.iter().all(|event| event.starts_with("conductor.agent_missing ")), "{missing:?}");
    let listed = b.list_agents().await.unwrap().into_value().agents;
    assert!(listed.iter().all(|agent| !agent.alive));
    for watchdog in watchdogs {
        watchdog.abort();
    }
}

#[tokio::test]
async fn a_restarted_conductor_lists_its_agents_and_alarms_on_one_that_left_while_it_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let sink = Arc::new(Names::default());
    let conductor = Conductor::with_store(options(Publisher::new(sink.clone())), Store::open(&url).await.unwrap());
    conductor.hello(registration("compute-1:1337")).await.unwrap();
    conductor.hello(registration("compute-2:1337")).await.unwrap();
    assert_eq!(sink.take(), ["conductor.agent_registered compute-1:1337", "conductor.agent_registered compute-2:1337"]);
    drop(conductor);

    // Down for longer than the window; compute-2 says hello to the new one at once.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let conductor =
        Arc::new(Conductor::with_store(options(Publisher::new(sink.clone())), Store::open(&url).await.unwrap()));
    conductor.hello(registration("compute-2:1337")).await.unwrap();
    assert_eq!(
        sink.take(),
        ["conductor.agent_missing compute-2:1337", "conductor.agent_back compute-2:1337"],
        "its absence spanned the restart"
    );
    let watchdog = conductor.spawn_watchdog();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.take(), ["conductor.agent_missing compute-1:1337"], "noticed at once after the restart");
    let agents = conductor.list_agents().await.unwrap().into_value().agents;
    let listed: Vec<(&str, bool)> = agents.iter().map(|a| (a.endpoint.as_str(), a.alive)).collect();
    assert_eq!(listed, [("compute-1:1337", false), ("compute-2:1337", true)]);
    watchdog.abort();
    drop(conductor);

    // Restarted again: compute-1 was alarmed already, so no second alarm.
    let conductor = Conductor::with_store(options(Publisher::new(sink.clone())), Store::open(&url).await.unwrap());
    let watchdog = conductor.spawn_watchdog();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.take().is_empty());
    assert!(conductor.deregister_agent(&endpoint("compute-1:1337")).await.unwrap());
    let agents = conductor.list_agents().await.unwrap().into_value().agents;
    assert_eq!(agents.iter().map(|a| a.endpoint.as_str()).collect::<Vec<_>>(), ["compute-2:1337"]);
    watchdog.abort();
}
