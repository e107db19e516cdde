//! One guest domain at every quota of the embedded server at once (connections, nodes,
//! watches, transactions) and still knocking at each: another guest and dom0 keep being served
//! promptly, and each quota is the domain's own (issue #18).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc,
};
use std::time::{Duration, Instant};

use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    Watch, Xenstore, XenstoreAddr, XsError,
};

const HOSTILE: u32 = 5;
const BYSTANDER: u32 = 6;

struct Fixture {
    _dir: tempfile::TempDir,
    server: RunningXenstored,
    dom0: XenstoreAddr,
    hostile: XenstoreAddr,
    bystander: XenstoreAddr,
}

async fn start(quotas: Quotas) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let socket = |name: &str| dir.path().join(name);
    let config = XenstoredConfig {
        socket: socket("xs.sock"),
        domains: vec![
            DomainSocket { domid: HOSTILE, path: socket("hostile.sock") },
            DomainSocket { domid: BYSTANDER, path: socket("bystander.sock") },
        ],
        quotas,
    };
    let server = server::serve(config).await.unwrap();
    Fixture {
        dom0: XenstoreAddr::Unix(socket("xs.sock")),
        hostile: XenstoreAddr::Unix(socket("hostile.sock")),
        bystander: XenstoreAddr::Unix(socket("bystander.sock")),
        _dir: dir,
        server,
    }
}

/// A connection the server admitted (it answered a read of the domain's own `domid`).
async fn admitted(addr: &XenstoreAddr) -> Result<Xenstore, XsError> {
    let xs = Xenstore::connect(addr).await?;
    xs.read("domid").await?;
    Ok(xs)
}

/// Calls `op` with 0, 1, 2, ... until it fails; returns how many succeeded and the error.
async fn until_refused<F, Fut, T>(mut op: F) -> (usize, XsError, Vec<T>)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, XsError>>,
{
    let mut kept = Vec::new();
    loop {
        match op(kept.len()).await {
            Ok(value) => kept.push(value),
            Err(error) => return (kept.len(), error, kept),
        }
        assert!(kept.len() < 100_000, "no quota stopped it");
    }
}

/// Latencies of one write-and-read round, in order of size.
struct Latencies(Vec<Duration>);

impl Latencies {
    async fn measure(xs: &Xenstore, path: &str, rounds: usize) -> Latencies {
        let mut all = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let start = Instant::now();
            xs.write(path, round.to_string().as_bytes()).await.unwrap();
            assert_eq!(xs.read(path).await.unwrap(), round.to_string().as_bytes());
            all.push(start.elapsed());
        }
        all.sort();
        Latencies(all)
    }

    fn at(&self, fraction: f64) -> Duration {
        self.0[((self.0.len() - 1) as f64 * fraction) as usize]
    }

    fn summary(&self) -> String {
        format!("p50 {:?}, p99 {:?}, max {:?}", self.at(0.5), self.at(0.99), self.at(1.0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_domain_at_every_quota_leaves_the_others_served() {
    let quotas = Quotas::default();
    let fx = start(quotas).await;
    let dom0 = admitted(&fx.dom0).await.unwrap();
    let bystander = admitted(&fx.bystander).await.unwrap();
    let quiet = (
        Latencies::measure(&dom0, "/local/domain/0/data/k", 200).await,
        Latencies::measure(&bystander, "data/k", 200).await,
    );

    // Connections: the quota's worth, then a refusal (ENOSPC) and the connection closed.
    let (opened, refusal, hostile) = until_refused(|_| admitted(&fx.hostile)).await;
    assert_eq!(opened, quotas.connections_per_domain);
    assert!(matches!(refusal, XsError::NoSpace), "{refusal}");
    let extra = Xenstore::connect(&fx.hostile).await.unwrap();
    assert!(matches!(extra.read("domid").await, Err(XsError::NoSpace)));
    assert!(extra.read("domid").await.unwrap_err().is_disconnect(), "a refused connection is closed");

    // Nodes: the domain owns its home, `data` and the rest up to the quota.
    let first = hostile[0].clone();
    let (nodes, refusal, _) = until_refused(|n| {
        let xs = first.clone();
        async move { xs.write(&format!("data/n{n}"), b"v").await }
    })
    .await;
    assert!(matches!(refusal, XsError::NoSpace), "{refusal}");
    assert_eq!(nodes, quotas.nodes_per_domain - 2, "home and data/ count");
    let big = vec![b'x'; quotas.entry_size + 1];
    assert!(matches!(first.write("data/n0", &big).await, Err(XsError::NoSpace)));

    // Watches and transactions: every connection at both quotas.
    let mut held_watches: Vec<Watch> = Vec::new();
    let mut held_transactions = Vec::new();
    for (c, xs) in hostile.iter().enumerate() {
        let (watches, refusal, kept) = until_refused(|w| {
            let xs = xs.clone();
            async move { xs.watch(&format!("data/n{w}"), &format!("c{c}w{w}")).await }
        })
        .await;
        assert_eq!(watches, quotas.watches_per_connection);
        assert!(matches!(refusal, XsError::TooBig), "{refusal}");
        held_watches.extend(kept);
        let (transactions, refusal, kept) = until_refused(|_| xs.transaction()).await;
        assert_eq!(transactions, quotas.transactions_per_connection);
        assert!(matches!(refusal, XsError::NoSpace), "{refusal}");
        held_transactions.extend(kept);
    }

    // Every hostile connection keeps knocking at every quota, and rewrites what it owns
    // (each write firing a watch on every one of its connections), without reading its events.
    let stop = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(AtomicU64::new(0));
    let knockers: Vec<_> = hostile
        .iter()
        .enumerate()
        .map(|(c, xs)| {
            let (xs, stop, refusals) = (xs.clone(), stop.clone(), refusals.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let outcomes = [
                        xs.write(&format!("data/new{c}-{n}"), b"v").await.err(),
                        xs.watch(&format!("data/w{n}"), &format!("more{n}")).await.err(),
                        xs.transaction().await.err(),
                    ];
                    for outcome in outcomes {
                        match outcome {
                            Some(XsError::NoSpace | XsError::TooBig) => refusals.fetch_add(1, Ordering::Relaxed),
                            other => panic!("a request over quota was not refused: {other:?}"),
                        };
                    }
                    xs.write(&format!("data/n{}", n % quotas.watches_per_connection), b"again").await.unwrap();
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (host, guest) = tokio::join!(
        Latencies::measure(&dom0, "/local/domain/0/data/k", 500),
        Latencies::measure(&bystander, "data/k", 500),
    );
    let knocked = refusals.load(Ordering::Relaxed);
    println!("quiet: dom0 {}; domain {BYSTANDER} {}", quiet.0.summary(), quiet.1.summary());
    println!(
        "domain {HOSTILE} at every quota, {knocked} refusals meanwhile: dom0 {}; domain {BYSTANDER} {}",
        host.summary(),
        guest.summary()
    );
    assert!(knocked > 100, "the hostile domain hardly ran ({knocked} refusals)");
    for (who, latencies) in [("dom0", &host), ("the other guest", &guest)] {
        assert!(latencies.at(0.99) < Duration::from_millis(250), "{who}: {}", latencies.summary());
        assert!(latencies.at(1.0) < Duration::from_secs(2), "{who}: {}", latencies.summary());
    }

    // The other guest's quotas are its own: connections, nodes, watches, transactions.
    let (opened, _, others) = until_refused(|_| admitted(&fx.bystander)).await;
    assert_eq!(opened, quotas.connections_per_domain - 1, "one was open already");
    for n in 0..100 {
        others[n % others.len()].write(&format!("data/mine{n}"), b"v").await.unwrap();
    }
    let _watch = others[0].watch("data/mine0", "mine").await.unwrap();
    others[0].transaction().await.unwrap().commit().await.unwrap();
    // dom0's connections are not counted.
    let mut dom0s = Vec::new();
    for _ in 0..quotas.connections_per_domain + 8 {
        dom0s.push(admitted(&fx.dom0).await.unwrap());
    }

    stop.store(true, Ordering::Relaxed);
    for knocker in knockers {
        knocker.await.unwrap();
    }
    // A closed connection gives its place back.
    drop((held_watches, held_transactions, hostile, first));
    let start = Instant::now();
    while let Err(error) = admitted(&fx.hostile).await {
        assert!(start.elapsed() < Duration::from_secs(5), "no place given back: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fx.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_transactions_cannot_commit_past_the_node_quota() {
    let quotas = Quotas { nodes_per_domain: 10, ..Quotas::default() };
    let fx = start(quotas).await;
    let guest = admitted(&fx.hostile).await.unwrap();
    // Owned: home, a, b (3 of 10).
    guest.mkdir("a").await.unwrap();
    guest.mkdir("b").await.unwrap();
    // Each transaction adds 5 nodes under its own parent: each fits its snapshot (8 of 10),
    // and they touch no common node, so only the quota can refuse the second commit.
    let (one, two) = (guest.transaction().await.unwrap(), guest.transaction().await.unwrap());
    for n in 0..5 {
        one.write(&format!("a/{n}"), b"v").await.unwrap();
        two.write(&format!("b/{n}"), b"v").await.unwrap();
    }
    one.commit().await.unwrap();
    assert!(matches!(two.commit().await, Err(XsError::NoSpace)));
    assert!(matches!(guest.read("b/0").await, Err(XsError::NoEntry)), "nothing of it was applied");
    assert_eq!(guest.directory("a").await.unwrap().len(), 5);
    // Removing nodes in a transaction is never refused.
    let three = guest.transaction().await.unwrap();
    three.rm("a").await.unwrap();
    three.commit().await.unwrap();
    fx.server.shutdown().await;
}
