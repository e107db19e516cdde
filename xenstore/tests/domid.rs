//! `/local/domain/<id>/domid`: every domain the server knows can learn its own id by reading the
//! relative path `domid` (libxenvchan's server does), from the Rust client and from Debian's
//! xenstore-utils (Xen's own libxenstore, through `XENSTORED_PATH`).

use std::{path::Path, time::Duration};

use tokio::{process::Command, time::timeout};
use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    Access, Permission, Xenstore, XenstoreAddr, XsError,
};

struct Fixture {
    dir: tempfile::TempDir,
    server: RunningXenstored,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = XenstoredConfig {
            socket: dir.path().join("xs.sock"),
            domains: vec![DomainSocket { domid: 5, path: dir.path().join("dom5.sock") }],
            quotas: Quotas::default(),
        };
        let server = server::serve(config).await.unwrap();
        Fixture { dir, server }
    }

    fn socket(&self, domid: u32) -> std::path::PathBuf {
        self.dir.path().join(if domid == 0 { "xs.sock".to_string() } else { format!("dom{domid}.sock") })
    }

    async fn client(&self, domid: u32) -> Xenstore {
        Xenstore::connect(&XenstoreAddr::Unix(self.socket(domid))).await.unwrap()
    }
}

#[tokio::test]
async fn each_domain_reads_its_own_id_at_the_relative_path() {
    let fx = Fixture::start().await;
    let dom0 = fx.client(0).await;
    let guest = fx.client(5).await;

    assert_eq!(dom0.read("domid").await.unwrap(), b"0", "dom0's relative paths are under /local/domain/0");
    assert_eq!(dom0.read("/local/domain/0/domid").await.unwrap(), b"0");
    assert_eq!(guest.read("domid").await.unwrap(), b"5");
    assert_eq!(dom0.read("/local/domain/5/domid").await.unwrap(), b"5");

    // Owned by dom0, readable by the domain; the guest may not change it or read dom0's.
    let read_only = vec![Permission::new(0, Access::None), Permission::new(5, Access::Read)];
    assert_eq!(dom0.get_perms("/local/domain/5/domid").await.unwrap(), read_only);
    assert_eq!(dom0.get_perms("/local/domain/0/domid").await.unwrap(), vec![Permission::new(0, Access::None)]);
    assert!(matches!(guest.write("domid", b"0").await, Err(XsError::Access)));
    assert!(matches!(guest.read("/local/domain/0/domid").await, Err(XsError::Access)));
    // The guest still owns its home.
    assert_eq!(guest.get_perms("/local/domain/5").await.unwrap()[0], Permission::new(5, Access::None));
    fx.server.shutdown().await;
}

#[tokio::test]
async fn introduced_domains_get_their_domid_node() {
    let fx = Fixture::start().await;
    let dom0 = fx.client(0).await;
    dom0.write("/local/domain/7/name", b"made by the toolstack").await.unwrap();
    let mut watch = dom0.watch("/local/domain", "domains").await.unwrap();
    let first = timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert_eq!(first.path, "/local/domain", "the registration event");

    dom0.introduce(9, 1, 1).await.unwrap();
    assert_eq!(dom0.read("/local/domain/9/domid").await.unwrap(), b"9");
    let read_only = vec![Permission::new(0, Access::None), Permission::new(9, Access::Read)];
    assert_eq!(dom0.get_perms("/local/domain/9/domid").await.unwrap(), read_only);
    assert_eq!(dom0.get_perms("/local/domain/9").await.unwrap()[0], Permission::new(9, Access::None));
    let mut paths = Vec::new();
    while let Ok(Some(event)) = timeout(Duration::from_millis(300), watch.next()).await {
        paths.push(event.path);
    }
    assert!(paths.iter().any(|p| p == "/local/domain/9/domid"), "the new node fires watches: {paths:?}");

    // A home the toolstack made first keeps its owner.
    dom0.introduce(7, 1, 1).await.unwrap();
    assert_eq!(dom0.read("/local/domain/7/domid").await.unwrap(), b"7");
    assert_eq!(dom0.read("/local/domain/7/name").await.unwrap(), b"made by the toolstack");
    assert_eq!(dom0.get_perms("/local/domain/7").await.unwrap()[0].domid, 0);

    // Released and introduced again: the node is still right.
    dom0.release(9).await.unwrap();
    dom0.introduce(9, 1, 1).await.unwrap();
    assert_eq!(dom0.read("/local/domain/9/domid").await.unwrap(), b"9");
    fx.server.shutdown().await;
}

#[tokio::test]
async fn xenstore_read_domid_through_libxenstore() {
    if let Some(tool) = vproto_test_support::first_missing(&["/usr/bin/xenstore-read"]) {
        return vproto_test_support::missing_peer(&format!(
            "{tool}: Debian's xenstore-utils are not installed (apt-get install xenstore-utils)"
        ));
    }
    let fx = Fixture::start().await;
    for (domid, expected) in [(0, "0\n"), (5, "5\n")] {
        let socket = fx.socket(domid);
        assert_eq!(xenstore_read(&socket, "domid").await, expected, "domain {domid}");
    }
    fx.server.shutdown().await;
}

/// `xenstore-read PATH` against `socket`, which must succeed; its stdout.
async fn xenstore_read(socket: &Path, path: &str) -> String {
    let mut command = Command::new("/usr/bin/xenstore-read");
    command.arg(path).env("XENSTORED_PATH", socket).env_remove("XENSTORED_RUNDIR").kill_on_drop(true);
    let output = timeout(Duration::from_secs(20), command.output())
        .await
        .expect("xenstore-read did not finish in 20 s")
        .expect("cannot run xenstore-read");
    assert!(output.status.success(), "xenstore-read {path} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}
