//! The netlink collector and the link counters against the real kernel, in a network namespace
//! of its own: the test re-runs itself inside `ip netns exec` (a socket belongs to the namespace
//! of the process that opens it). Needs root and iproute2; skips with a message otherwise, or
//! fails under `CI` (`vproto_test_support::missing_peer`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vproto_netlink::{Coalesce, Interface, NetlinkCollector, StatsReader};

const CHILD_ENV: &str = "VPROTO_NETLINK_TEST_CHILD";
const DEADLINE: Duration = Duration::from_secs(20);
/// Links created at once (veth pairs, so half as many commands).
const BURST: usize = 300;

fn skip_reason() -> Option<&'static str> {
    if !vproto_test_support::is_root() {
        return Some("the netlink tests need root (network namespaces)");
    }
    if vproto_test_support::first_missing(&["ip"]).is_some() {
        return Some("`ip` is missing (apt-get install iproute2)");
    }
    None
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs `test` inside a fresh network namespace, in a child process of this test binary.
fn in_netns(name: &str, test: fn()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        return test();
    }
    if let Some(reason) = skip_reason() {
        return vproto_test_support::missing_peer(reason);
    }
    let netns = Netns(format!("vproto-nl-{}-{name}", std::process::id()));
    assert!(Command::new("ip").args(["netns", "add", &netns.0]).status().unwrap().success());
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("ip")
        .args(["netns", "exec", &netns.0])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn ip_batch(lines: &[String]) {
    let mut child = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(lines.join("\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "ip -batch failed");
}

fn ip(args: &str) {
    ip_batch(&[args.to_string()]);
}

/// Applies events until `done` holds, failing at the deadline.
async fn until(collector: &mut NetlinkCollector, what: &str, done: impl Fn(&NetlinkCollector) -> bool) {
    let start = Instant::now();
    while !done(collector) {
        let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_else(|| panic!("{what}: deadline passed"));
        match tokio::time::timeout(left, collector.next_change(Coalesce::default())).await {
            Ok(result) => result.unwrap_or_else(|error| panic!("{what}: {error}")),
            Err(_) => panic!("{what}: no change within {DEADLINE:?}; NICs: {:?}", collector.nics()),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn collector_dumps_then_follows_events() {
    in_netns("collector_dumps_then_follows_events", || {
        // veth pairs: they exist in every kernel that has namespaces (dummy is a module).
        ip("link add before0 address 02:00:00:00:01:01 type veth peer name before1 address 02:00:00:00:01:11");
        runtime().block_on(async {
            let mut collector = NetlinkCollector::open().await.unwrap();
            let names = |c: &NetlinkCollector| c.nics().into_iter().map(|nic| nic.name).collect::<Vec<_>>();
            assert_eq!(names(&collector), ["before0", "before1"], "the dump has the pair and not lo");

            ip("link add after0 address 02:00:00:00:01:02 type veth peer name after1 address 02:00:00:00:01:12");
            until(&mut collector, "link added", |c| names(c) == ["after0", "after1", "before0", "before1"]).await;
            ip("link set after0 up");
            until(&mut collector, "admin up", |c| c.nics()[0].admin_up).await;
            ip("addr add 192.0.2.1/24 dev after0");
            ip("addr add 2001:db8::1/64 dev after0 nodad");
            let has = |c: &NetlinkCollector, text: &str| {
                c.nics()[0].addresses.iter().any(|(address, prefix)| format!("{address}/{prefix}") == text)
            };
            until(&mut collector, "addresses added", |c| has(c, "192.0.2.1/24") && has(c, "2001:db8::1/64")).await;
            ip("addr del 192.0.2.1/24 dev after0");
            until(&mut collector, "address removed", |c| !has(c, "192.0.2.1/24")).await;
            ip("link set after0 name renamed0");
            until(&mut collector, "renamed", |c| names(c) == ["after1", "before0", "before1", "renamed0"]).await;
            ip("link del renamed0");
            until(&mut collector, "pair removed", |c| names(c) == ["before0", "before1"]).await;
            assert_eq!(collector.resyncs(), 0, "no overrun expected with the default buffer");
        });
    });
}

#[test]
fn collector_recovers_from_overrun_by_dumping_again() {
    in_netns("collector_recovers_from_overrun_by_dumping_again", || {
        runtime().block_on(async {
            // A tiny receive buffer: a burst of link creations cannot fit, the kernel reports
            // ENOBUFS, and the collector must rebuild its table from a dump.
            let mut collector = NetlinkCollector::open_with_receive_buffer(4096).await.unwrap();
            let adds: Vec<String> =
                (0..BURST / 2).map(|n| format!("link add burst{n}a type veth peer name burst{n}b")).collect();
            ip_batch(&adds);
            until(&mut collector, "every link of the burst", |c| c.nics().len() == BURST).await;
            assert!(collector.resyncs() >= 1, "the burst should have overrun a 4 KiB buffer");

            let dels: Vec<String> = (0..BURST / 2).map(|n| format!("link del burst{n}a")).collect();
            ip_batch(&dels);
            until(&mut collector, "every link of the burst removed", |c| c.nics().is_empty()).await;
        });
    });
}

#[test]
fn stats_reader_sees_traffic_move_the_counters() {
    in_netns("stats_reader_sees_traffic_move_the_counters", || {
        // Datagrams to 198.51.100.2 leave through tx0 (its connected route) to a neighbour fixed
        // at rx0's MAC, so they cross the pair without ARP; rx0 has no address, so the kernel
        // does not take the destination for a local one and short-cut through lo.
        ip("link add tx0 address 02:00:00:00:02:01 type veth peer name rx0 address 02:00:00:00:02:11");
        ip("link set tx0 up");
        ip("link set rx0 up");
        ip("addr add 198.51.100.1/24 dev tx0");
        ip("neigh add 198.51.100.2 lladdr 02:00:00:00:02:11 dev tx0 nud permanent");
        runtime().block_on(async {
            let collector = NetlinkCollector::open().await.unwrap();
            let index =
                |name: &str| collector.nics().iter().find(|nic| nic.name == name).map(|nic: &Interface| nic.index);
            let (tx0, rx0) = (index("tx0").unwrap(), index("rx0").unwrap());
            let reader = StatsReader::open().unwrap();
            let before = reader.read().await.unwrap();
            assert!(before.contains_key(&tx0) && before.contains_key(&rx0), "every link has counters: {before:?}");
            assert!(before.contains_key(&1), "lo has counters too, though it is no NIC");

            const SENT: u64 = 20;
            const SIZE: usize = 1000;
            let socket = std::net::UdpSocket::bind("198.51.100.1:0").unwrap();
            for _ in 0..SENT {
                socket.send_to(&[0x5a; SIZE], "198.51.100.2:9").unwrap();
            }
            // veth counts synchronously on transmit, but leave the kernel a moment anyway.
            let start = Instant::now();
            let (tx_delta, rx_delta) = loop {
                let after = reader.read().await.unwrap();
                let tx =
                    (after[&tx0].tx.packets - before[&tx0].tx.packets, after[&tx0].tx.bytes - before[&tx0].tx.bytes);
                let rx =
                    (after[&rx0].rx.packets - before[&rx0].rx.packets, after[&rx0].rx.bytes - before[&rx0].rx.bytes);
                if (tx.0 >= SENT && rx.0 >= SENT) || start.elapsed() > DEADLINE {
                    break (tx, rx);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // IPv6 may add its own packets (router solicitations, MLD): at least what was sent.
            assert!(tx_delta.0 >= SENT && tx_delta.1 >= SENT * SIZE as u64, "tx0 sent {tx_delta:?}");
            assert!(rx_delta.0 >= SENT && rx_delta.1 >= SENT * SIZE as u64, "rx0 received {rx_delta:?}");

            // Two readers (or one, shared) may read at once.
            let (first, second) = tokio::join!(reader.read(), reader.read());
            assert_eq!(first.unwrap().keys().collect::<Vec<_>>(), second.unwrap().keys().collect::<Vec<_>>());
            assert!(!reader.is_closed());
        });
    });
}
