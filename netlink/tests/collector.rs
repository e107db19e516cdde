//! The netlink collector and the link counters against the real kernel, in a network namespace
//! of its own: the test re-runs itself inside `ip netns exec` (a socket belongs to the namespace
//! of the process that opens it). Needs root and iproute2; skips with a message otherwise, or
//! fails under `CI` (`vproto_test_support::missing_peer`).

use std::time::{Duration, Instant};

use vproto_netlink::{Coalesce, Interface, NetlinkCollector, StatsReader};
use vproto_test_support::{in_netns, ip_batch};

const DEADLINE: Duration = Duration::from_secs(20);
/// Links created at once (veth pairs, so half as many commands).
const BURST: usize = 300;

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
fn collector_overrun_does_not_bring_back_what_was_deleted() {
    in_netns("collector_overrun_does_not_bring_back_what_was_deleted", || {
        runtime().block_on(async {
            // The socket is not read while `ip` runs (this thread blocks in it): its buffer (the
            // default, 2 MiB here) fills with a link's creation and a thousand flaps of another
            // pair, the kernel drops the rest (the first link's deletion among them) and reports
            // ENOBUFS before handing over the messages it kept, more than one read of the
            // socket takes in.
            let mut collector = NetlinkCollector::open().await.unwrap();
            let mut commands = vec![
                "link add ghost0 type veth peer name ghost1".to_string(),
                "link add flap0 type veth peer name flap1".into(),
                "link set flap1 up".into(),
            ];
            for _ in 0..1000 {
                commands.push("link set flap0 up".into());
                commands.push("link set flap0 down".into());
            }
            commands.push("link del ghost0".into());
            commands.push("link add late0 address 02:00:00:00:03:01 type veth peer name late1".into());
            ip_batch(&commands);
            // Apply everything until 300 ms pass without a change.
            while let Ok(changed) = tokio::time::timeout(Duration::from_millis(300), async {
                collector.next_change(Coalesce::default()).await
            })
            .await
            {
                changed.unwrap();
            }
            assert!(collector.resyncs() >= 1, "the burst should have overrun the socket");
            let names = |c: &NetlinkCollector| c.nics().into_iter().map(|nic| nic.name).collect::<Vec<_>>();
            let kernel = NetlinkCollector::open().await.unwrap();
            assert_eq!(names(&kernel), ["flap0", "flap1", "late0", "late1"]);
            assert_eq!(names(&collector), names(&kernel), "the table after the overrun is the kernel's");
            assert_eq!(collector.nics(), kernel.nics());
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
