//! The guest agent under faults (issue #18), each test inside a network namespace of its own
//! (`vproto_test_support::in_netns`: root and iproute2; skips otherwise, or fails under `CI`)
//! with veth pairs, against the embedded xenstored in the test's process:
//!
//! - xenstored restarts: at once, after a second's absence while links change, and into a
//!   store holding a stale tree (the agent stopped meanwhile): the agent reconnects by itself
//!   and republishes the whole tree;
//! - a netlink overrun: the agent stopped (SIGSTOP) while the kernel reports more than its
//!   socket holds, the changes that matter last (those the kernel drops): it resynchronises
//!   from a dump and loses nothing;
//! - 1,000 link flaps a second (a link set down and up again, written to `ip -batch` on a
//!   schedule) for two seconds.
//!
//! Each ends with the whole published tree equal to the tree the services crate computes from
//! a fresh netlink dump (the kernel's truth), and prints its figures (reconnect and
//! convergence times, flaps applied): `cargo test -p vproto-guest-agent --test faults --
//! --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{agent_binary, leaves, signal, terminate, wait_for};
use vproto_netlink::NetlinkCollector;
use vproto_services::guest_agent::{collect_os_info, guest_info, OsSources};
use vproto_services::guest_tree::GuestLayout;
use vproto_test_support::{in_netns, ip_batch, Process};
use vproto_xenstore::server::{self, RunningXenstored, XenstoredConfig};
use vproto_xenstore::{Xenstore, XenstoreAddr};

const HOME: &str = "/local/domain/9";
const ROOT: &str = "/local/domain/9/data/vproto";
/// How often the tree is compared while waiting (the resolution of the figures).
const POLL: Duration = Duration::from_millis(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn ip(command: &str) {
    ip_batch(&[command.to_string()]);
}

/// The tree the agent should have published now: the services crate's encoding of a fresh
/// netlink dump of this namespace.
async fn truth() -> BTreeMap<String, String> {
    let nics = NetlinkCollector::open().await.expect("netlink").nics();
    let os = collect_os_info(&OsSources::default());
    GuestLayout::V1.encode(&guest_info(GuestLayout::V1, &os, &nics))
}

/// Whether the published tree is the kernel's truth now.
async fn converged(dom0: &Xenstore) -> Result<(), String> {
    let (have, want) = (leaves(dom0, HOME, ROOT).await, truth().await);
    if have == want {
        Ok(())
    } else {
        Err(format!("published {have:#?}\nexpected {want:#?}"))
    }
}

/// The embedded xenstored in this process, on `socket`.
async fn xenstored(socket: &Path) -> RunningXenstored {
    server::serve(XenstoredConfig::new(socket)).await.expect("the embedded xenstored starts")
}

/// A dom0 connection to `socket`.
async fn dom0(socket: &Path) -> Xenstore {
    Xenstore::connect(&XenstoreAddr::Unix(socket.to_path_buf())).await.unwrap()
}

/// The embedded xenstored and the agent publishing into it, in a namespace with two veth
/// pairs (one up with carrier and an address, one down), the first publication done.
struct Fixture {
    agent: Process,
    store: Option<RunningXenstored>,
    xs: Xenstore,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        ip_batch(&[
            "link set lo up".into(),
            "link add va0 address 02:00:00:00:0a:01 type veth peer name vb0 address 02:00:00:00:0a:02".into(),
            "link add vc0 address 02:00:00:00:0a:03 type veth peer name vd0 address 02:00:00:00:0a:04".into(),
            "link set va0 up".into(),
            "link set vb0 up".into(),
            "addr add 192.0.2.1/24 dev va0".into(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("xs.sock");
        let store = xenstored(&socket).await;
        let mut command = Command::new(agent_binary());
        command.arg("--xenstore").arg(format!("unix:{}", socket.display()));
        command.args(["--domain-path", HOME, "--log", "debug"]);
        let agent = Process::spawn(command, dir.path().join("agent.log"));
        let xs = dom0(&socket).await;
        let fixture = Fixture { agent, store: Some(store), xs, socket, _dir: dir };
        fixture.converge("first publication").await;
        fixture
    }

    /// Waits until the published tree is the kernel's truth; returns how long that took.
    async fn converge(&self, what: &str) -> Duration {
        wait_for(what, &self.agent, POLL, || converged(&self.xs)).await
    }

    /// Stops the store and, after `away` (during which `meanwhile` runs), starts an empty
    /// one on the same socket, with a new dom0 connection.
    async fn restart(&mut self, away: Duration, meanwhile: impl FnOnce()) {
        if let Some(old) = self.store.take() {
            old.shutdown().await;
        }
        meanwhile();
        tokio::time::sleep(away).await;
        self.store = Some(xenstored(&self.socket).await);
        self.xs = dom0(&self.socket).await;
    }

    /// Stops the agent (SIGTERM, a clean exit asserted) and the store.
    async fn stop(mut self) {
        let status = terminate(&mut self.agent).await;
        assert!(status.success(), "exit on SIGTERM: {status}\n{}", self.agent.log());
        if let Some(store) = self.store.take() {
            store.shutdown().await;
        }
    }
}

#[test]
fn survives_xenstored_restarts() {
    in_netns("survives_xenstored_restarts", || {
        runtime().block_on(async {
            let mut fx = Fixture::start().await;
            // Restarted at once: a new, empty store.
            fx.restart(Duration::ZERO, || {}).await;
            let at_once = fx.converge("republished after an immediate restart").await;

            // Away for a second while links change: published once it is back.
            fx.restart(Duration::from_secs(1), || {
                ip_batch(&[
                    "link set va0 down".into(),
                    "addr add 198.51.100.7/32 dev vc0".into(),
                    "link add ve0 address 02:00:00:00:0a:05 type veth peer name vf0".into(),
                ])
            })
            .await;
            let after_absence = fx.converge("republished after a second's absence").await;

            // Back with a stale tree (as a store that kept its contents would be), the agent
            // stopped meanwhile: a NIC that no longer exists, a wrong value and a stray node.
            signal(&fx.agent, "STOP");
            fx.restart(Duration::ZERO, || ip("link del ve0")).await;
            for (path, value) in
                [("nics/02-00-00-00-0a-05/name", "ve0"), ("nics/02-00-00-00-0a-01/link/admin_up", "1"), ("stray", "x")]
            {
                fx.xs.write(&format!("{ROOT}/{path}"), value.as_bytes()).await.unwrap();
            }
            assert!(converged(&fx.xs).await.is_err(), "the stale tree differs");
            signal(&fx.agent, "CONT");
            let stale = fx.converge("stale tree corrected").await;

            // And it keeps following the kernel on its new connection.
            ip("link set va0 up");
            fx.converge("a change after the restarts").await;
            println!(
                "xenstored restarts: tree republished {at_once:?} after an immediate restart, \
                 {after_absence:?} after the store came back from 1 s away, stale tree corrected \
                 {stale:?} after the agent resumed (polled every {POLL:?})"
            );
            fx.stop().await;
        });
    });
}

#[test]
fn survives_netlink_overruns() {
    in_netns("survives_netlink_overruns", || {
        runtime().block_on(async {
            let fx = Fixture::start().await;
            // Stopped, the agent reads nothing: a link created first, then 1,000 flaps (several
            // MiB of messages, more than its socket holds), then the changes the kernel drops.
            signal(&fx.agent, "STOP");
            let mut commands = vec!["link add ghost0 type veth peer name ghost1".to_string()];
            for _ in 0..1000 {
                commands.push("link set va0 down".into());
                commands.push("link set va0 up".into());
            }
            commands.extend([
                "link del ghost0".into(),
                "link set vb0 down".into(),
                "addr add 203.0.113.9/24 dev vc0".into(),
                "link add late0 address 02:00:00:00:0a:07 type veth peer name late1".into(),
            ]);
            ip_batch(&commands);
            let resumed = Instant::now();
            signal(&fx.agent, "CONT");
            fx.converge("the tree after the overrun").await;
            let took = resumed.elapsed();
            // Nothing changes afterwards: no stale event comes back to undo it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let log = fx.agent.log();
            converged(&fx.xs).await.unwrap_or_else(|why| panic!("undone after converging: {why}\n{log}"));
            assert!(log.contains("overrun"), "the burst did not overrun the agent's socket:\n{log}");
            println!("netlink overrun: the tree is the kernel's {took:?} after the agent resumed");
            fx.stop().await;
        });
    });
}

#[test]
fn survives_1000_link_flaps_a_second() {
    const RATE: u32 = 1000;
    const SECONDS: u32 = 2;
    in_netns("survives_1000_link_flaps_a_second", || {
        runtime().block_on(async {
            let fx = Fixture::start().await;
            // A thread writes one flap (va0 down, then up) to `ip -batch` each millisecond, on
            // an absolute schedule; the storm lasts until `ip` has applied them all.
            let storm = tokio::task::spawn_blocking(|| {
                let mut ip = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn().unwrap();
                let mut stdin = ip.stdin.take().unwrap();
                let start = Instant::now();
                let period = Duration::from_secs(1) / RATE;
                for flap in 0..RATE * SECONDS {
                    if let Some(wait) = (period * flap).checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    stdin.write_all(b"link set va0 down\nlink set va0 up\n").unwrap();
                }
                drop(stdin);
                assert!(ip.wait().unwrap().success(), "ip -batch failed");
                start.elapsed()
            })
            .await
            .unwrap();
            // The last word: va0 down, so the tree must move once more after the storm.
            let ended = Instant::now();
            ip("link set va0 down");
            fx.converge("the tree after the storm").await;
            let took = ended.elapsed();
            let flaps = RATE * SECONDS;
            let log = fx.agent.log();
            println!(
                "link flaps: {flaps} flaps (va0 down and up) in {storm:?} ({:.0} a second); tree \
                 correct {took:?} after the storm; {} overrun(s) resynchronised",
                f64::from(flaps) / storm.as_secs_f64(),
                log.matches("overrun").count()
            );
            assert!(storm < Duration::from_secs_f64(f64::from(SECONDS) * 1.25), "the storm ran late: {storm:?}");
            assert!(!log.contains("reconnecting"), "the agent lost Xenstore during the storm:\n{log}");
            fx.stop().await;
        });
    });
}
