//! Real foreign clients against the embedded server: Debian's xenstore-utils (through Xen's own
//! libxenstore, which finds the socket through `XENSTORED_PATH`) and python3-pyxs. Each test
//! skips with a message when its client is not installed (`apt-get install xenstore-utils
//! python3-pyxs`, which `cargo xtask test` does as root), or fails under `CI`.

use std::{path::Path, process::Output, time::Duration};

use tokio::{process::Command, time::timeout};
use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    Access, Permission, Xenstore, XenstoreAddr,
};

const GUEST: u32 = 5;

struct Fixture {
    dir: tempfile::TempDir,
    server: RunningXenstored,
}

impl Fixture {
    fn dom0(&self) -> std::path::PathBuf {
        self.dir.path().join("xs.sock")
    }

    fn guest(&self) -> std::path::PathBuf {
        self.dir.path().join("dom5.sock")
    }
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = XenstoredConfig {
        socket: dir.path().join("xs.sock"),
        domains: vec![DomainSocket { domid: GUEST, path: dir.path().join("dom5.sock") }],
        quotas: Quotas::default(),
    };
    let server = server::serve(config).await.unwrap();
    Fixture { dir, server }
}

/// Whether Debian's xenstore-utils are there; when not, skips (or fails under `CI`).
fn have_xenstore_utils() -> bool {
    let tools = [
        "/usr/bin/xenstore-read",
        "/usr/bin/xenstore-write",
        "/usr/bin/xenstore-ls",
        "/usr/bin/xenstore-rm",
        "/usr/bin/xenstore-watch",
        "/usr/bin/xenstore-chmod",
    ];
    let missing = vproto_test_support::first_missing(&tools);
    if let Some(tool) = missing {
        vproto_test_support::missing_peer(&format!(
            "{tool}: Debian's xenstore-utils are not installed (apt-get install xenstore-utils)"
        ));
    }
    missing.is_none()
}

/// Runs a xenstore-utils tool against `socket`, with a deadline.
async fn tool(socket: &Path, name: &str, args: &[&str]) -> Output {
    let mut command = Command::new(Path::new("/usr/bin").join(name));
    command.args(args).env("XENSTORED_PATH", socket).env_remove("XENSTORED_RUNDIR").kill_on_drop(true);
    timeout(Duration::from_secs(20), command.output())
        .await
        .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in 20 s"))
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Runs a tool that must succeed; returns its stdout.
async fn ok(socket: &Path, name: &str, args: &[&str]) -> String {
    let output = tool(socket, name, args).await;
    assert!(
        output.status.success(),
        "{name} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn xenstore_utils_drive_the_server() {
    if !have_xenstore_utils() {
        return;
    }
    let fx = start().await;
    let s = fx.dom0();
    let xs = Xenstore::connect(&XenstoreAddr::Unix(s.clone())).await.unwrap();

    ok(&s, "xenstore-write", &["/vm/a", "hello", "/vm/b", "world"]).await;
    assert_eq!(xs.read("/vm/a").await.unwrap(), b"hello");
    assert_eq!(ok(&s, "xenstore-read", &["/vm/a", "/vm/b"]).await, "hello\nworld\n");
    xs.write("/vm/from-rust", b"binary\x01").await.unwrap();
    assert_eq!(ok(&s, "xenstore-read", &["/vm/from-rust"]).await, "binary\\001\n", "libxenstore escapes");
    assert_eq!(ok(&s, "xenstore-list", &["/vm"]).await, "a\nb\nfrom-rust\n");
    assert_eq!(ok(&s, "xenstore-ls", &["/vm"]).await, "a = \"hello\"\nb = \"world\"\nfrom-rust = \"binary\\001\"\n");

    assert!(tool(&s, "xenstore-exists", &["/vm/a"]).await.status.success());
    assert!(!tool(&s, "xenstore-exists", &["/vm/nope"]).await.status.success());
    let missing = tool(&s, "xenstore-read", &["/vm/nope"]).await;
    assert!(!missing.status.success(), "reading a missing node fails");

    // Permissions, both ways.
    ok(&s, "xenstore-chmod", &["/vm/a", "r5", "b7"]).await;
    assert_eq!(
        xs.get_perms("/vm/a").await.unwrap(),
        vec![Permission::new(5, Access::Read), Permission::new(7, Access::Both)]
    );
    xs.set_perms("/vm/b", &[Permission::new(0, Access::None), Permission::new(GUEST, Access::Read)]).await.unwrap();
    let listing = ok(&s, "xenstore-ls", &["-p", "/vm"]).await;
    assert!(listing.lines().any(|l| l.starts_with("b = \"world\"") && l.ends_with("(n0,r5)")), "{listing}");
    ok(&s, "xenstore-chmod", &["-r", "/vm", "b0"]).await;
    assert_eq!(xs.get_perms("/vm/b").await.unwrap(), vec![Permission::new(0, Access::Both)]);

    ok(&s, "xenstore-rm", &["/vm/a"]).await;
    assert!(xs.read("/vm/a").await.is_err());
    ok(&s, "xenstore-rm", &["/vm"]).await;
    assert_eq!(xs.directory("/").await.unwrap(), vec!["local"]);

    // A children list longer than one reply: libxenstore falls back to DIRECTORY_PART.
    let names: Vec<String> = (0..300).map(|i| format!("a-long-child-name-to-fill-the-payload-{i:04}")).collect();
    let tx = xs.transaction().await.unwrap();
    for name in &names {
        tx.mkdir(&format!("/big/{name}")).await.unwrap();
    }
    tx.commit().await.unwrap();
    let listed = ok(&s, "xenstore-list", &["/big"]).await;
    assert_eq!(listed.lines().collect::<Vec<_>>(), names);
    ok(&s, "xenstore-rm", &["/big"]).await;

    // A guest: relative paths under its home; no access elsewhere.
    let g = fx.guest();
    ok(&g, "xenstore-write", &["data/os_name", "Debian"]).await;
    assert_eq!(xs.read("/local/domain/5/data/os_name").await.unwrap(), b"Debian");
    assert_eq!(ok(&g, "xenstore-read", &["data/os_name"]).await, "Debian\n");
    xs.write("/dom0-only", b"x").await.unwrap();
    let denied = tool(&g, "xenstore-read", &["/dom0-only"]).await;
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("couldn't read path /dom0-only"), "{denied:?}");
    let guest = Xenstore::connect(&XenstoreAddr::Unix(g.clone())).await.unwrap();
    assert!(matches!(guest.read("/dom0-only").await, Err(vproto_xenstore::XsError::Access)));
    fx.server.shutdown().await;
}

#[tokio::test]
async fn xenstore_watch_sees_changes_made_by_our_client() {
    if !have_xenstore_utils() {
        return;
    }
    let fx = start().await;
    let s = fx.dom0();
    let xs = Xenstore::connect(&XenstoreAddr::Unix(s.clone())).await.unwrap();
    let mut watcher = Command::new("/usr/bin/xenstore-watch");
    watcher
        .args(["-n", "3", "/watched"])
        .env("XENSTORED_PATH", &s)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = watcher.spawn().unwrap();
    // Keep writing until the watcher has printed its initial event and two changes (changes
    // made before it registered are not seen, which is fine).
    let writer = tokio::spawn(async move {
        for i in 0.. {
            xs.write(&format!("/watched/n{i}"), b"v").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let output = timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    writer.abort();
    assert!(output.status.success());
    let lines: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "/watched", "the initial event comes first");
    for line in &lines[1..] {
        assert!(line.starts_with("/watched/n"), "{lines:?}");
    }
    fx.server.shutdown().await;
}

fn have_pyxs() -> bool {
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import pyxs"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        vproto_test_support::missing_peer(
            "python3-pyxs is not importable by /usr/bin/python3 (apt-get install python3-pyxs)",
        );
    }
    ok
}

/// Exercises pyxs against the server; prints one line per check, compared below.
const PYXS_SCRIPT: &str = r#"
import sys
from pyxs import Client, PyXSError
path = sys.argv[1]
out = []
with Client(unix_socket_path=path) as c:
    c.write(b"/py/a", b"1")
    out.append(repr((c.read(b"/py/a"), c.list(b"/py"), c.exists(b"/py/a"), c.exists(b"/py/zz"))))
    c.mkdir(b"/py/dir/sub")
    out.append(repr(sorted(c.list(b"/py"))))
    c.set_perms(b"/py/a", [b"b0", b"r5"])
    out.append(repr(c.get_perms(b"/py/a")))
    out.append(repr((c.get_domain_path(5), c.is_domain_introduced(5), c.is_domain_introduced(77))))
    try:
        c.read(b"/nope")
    except PyXSError as e:
        out.append("error %d" % e.args[0])
    c.transaction()
    c.write(b"/py/t", b"tx")
    out.append("commit %s" % c.commit())
    # A conflicting change between read and commit: EAGAIN, reported as False.
    other = Client(unix_socket_path=path)
    other.connect()
    c.transaction()
    c.read(b"/py/a")
    other.write(b"/py/a", b"2")
    c.write(b"/py/t", b"lost")
    out.append("commit %s" % c.commit())
    out.append(repr(c.read(b"/py/t")))
    m = c.monitor()
    m.watch(b"/py", b"tok")
    events = m.wait()
    out.append(repr(next(events)))
    other.delete(b"/py/dir")
    out.append(repr(next(events)))
    other.close()
    c.delete(b"/py")
    out.append(repr(c.exists(b"/py")))
print("\n".join(out))
"#;

#[tokio::test]
async fn pyxs_drives_the_server() {
    if !have_pyxs() {
        return;
    }
    let fx = start().await;
    let mut command = Command::new("/usr/bin/python3");
    command.arg("-c").arg(PYXS_SCRIPT).arg(fx.dom0()).kill_on_drop(true);
    let output = timeout(Duration::from_secs(30), command.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "pyxs failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let expected = [
        "(b'1', [b'a'], True, False)",
        "[b'a', b'dir']",
        "[b'b0', b'r5']",
        "(b'/local/domain/5', True, False)",
        "error 2",
        "commit True",
        "commit False",
        "b'tx'",
        "Event(path=b'/py', token=b'tok')",
        "Event(path=b'/py/dir', token=b'tok')",
        "False",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    let xs = Xenstore::connect(&XenstoreAddr::Unix(fx.dom0())).await.unwrap();
    assert!(xs.read("/py").await.is_err());
    fx.server.shutdown().await;
}
