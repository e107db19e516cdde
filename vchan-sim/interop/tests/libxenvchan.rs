//! Debian's real libxenvchan on the simulation: `vchan_pair.c`, compiled against it, runs as a
//! server in domain 0 and a client in domain 5 (`VPROTO_SIM_DOMID`), loading the simulation's
//! `libxengnttab.so.1` and `libxenevtchn.so.1` (`LD_LIBRARY_PATH`), with vproto's xenstored as
//! the rendezvous (`XENSTORED_PATH`: dom0's socket for the server, dom5's for the client). They
//! exchange 64 KiB each way, checked, and the server must see the client go however it goes:
//! closing the channel, exiting without closing it (the libraries' `atexit` handler) or killed
//! by `SIGKILL` (the server's event channel watches the client's process).
//!
//! The libraries are the ones cargo built for this test (dev-dependencies: their `.so` lies
//! beside the test binary), or those in `$VPROTO_VCHAN_SIM_LIBS` (`cargo xtask vchan-sim`'s
//! `target/vchan-sim`).

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

use vproto_xenstore::server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig};

const CLIENT_DOMAIN: u16 = 5;
const PATH: &str = "/local/domain/0/data/vchan-interop";
const BYTES: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// What the test needs from the system: gcc and Debian's libxen-dev (libxenvchan and its
/// header). Outside CI a missing one skips the test.
fn missing() -> Option<String> {
    let needs = ["gcc", "/usr/include/libxenvchan.h", "/usr/lib/x86_64-linux-gnu/libxenvchan.so"];
    vproto_test_support::first_missing(&needs)
        .map(|what| format!("{what} is missing (apt-get install gcc libxen-dev libxenmisc4.17)"))
}

/// `vchan_pair`, compiled once per test binary.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vchan_pair.c");
        // Built beside and renamed: another run of this test may be using the program.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vchan_pair");
        let partial = out.with_extension(std::process::id().to_string());
        let output = Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&partial)
            .arg(&source)
            .arg("-lxenvchan")
            .output()
            .expect("run gcc");
        assert!(output.status.success(), "gcc failed: {}", String::from_utf8_lossy(&output.stderr));
        std::fs::rename(&partial, &out).unwrap();
        out
    })
}

/// A directory holding the libraries under Xen's names.
fn libraries(dir: &Path) -> PathBuf {
    if let Some(libs) = std::env::var_os("VPROTO_VCHAN_SIM_LIBS") {
        return PathBuf::from(libs);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let libs = dir.join("lib");
    std::fs::create_dir_all(&libs).unwrap();
    for (built, name) in [("gnttab", "libxengnttab.so.1"), ("evtchn", "libxenevtchn.so.1")] {
        let file = format!("libvproto_vchan_sim_{built}.so");
        let found = [deps.join(&file), deps.parent().unwrap().join(&file)].into_iter().find(|path| path.exists());
        let found = found.unwrap_or_else(|| panic!("{file} is not beside {}: cargo did not build it", exe.display()));
        std::os::unix::fs::symlink(found, libs.join(name)).unwrap();
    }
    libs
}

/// Xenstore and the simulation's directory, for one test.
struct World {
    dir: tempfile::TempDir,
    libs: PathBuf,
    xenstored: Option<RunningXenstored>,
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let config = XenstoredConfig {
            socket: dir.path().join("xs.sock"),
            domains: vec![DomainSocket { domid: CLIENT_DOMAIN.into(), path: dir.path().join("dom5.sock") }],
            quotas: Quotas::default(),
        };
        let xenstored = runtime.block_on(server::serve(config)).unwrap();
        let libs = libraries(dir.path());
        World { dir, libs, xenstored: Some(xenstored), runtime }
    }

    /// `vchan_pair` with `args` as a process of `domain`.
    fn start(&self, domain: u16, args: &[&str]) -> Child {
        let socket = if domain == 0 { "xs.sock" } else { "dom5.sock" };
        Command::new(program())
            .args(args)
            .env("VPROTO_SIM_DOMID", domain.to_string())
            .env("VPROTO_SIM_DIR", self.dir.path().join("sim"))
            .env("XENSTORED_PATH", self.dir.path().join(socket))
            .env_remove("XENSTORED_RUNDIR")
            .env("LD_LIBRARY_PATH", &self.libs)
            .env("VPROTO_SIM_DEBUG", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The files left in the simulation's directory `sub`.
    fn files(&self, sub: &str) -> Vec<String> {
        let dir = self.dir.path().join("sim").join(sub);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(xenstored) = self.xenstored.take() {
            self.runtime.block_on(xenstored.shutdown());
        }
    }
}

/// The next line of `stdout`, waiting at most [`TIMEOUT`].
fn line(stdout: ChildStdout) -> (String, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (rx.recv_timeout(TIMEOUT).unwrap_or_default(), rx)
}

/// Waits for `child` at most [`TIMEOUT`] (killing it then); its status and stderr.
fn finish(child: &mut Child, what: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in {TIMEOUT:?}: {}", stderr(child));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, stderr(child))
}

fn stderr(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    text
}

/// A server with rings `left`/`right` and a client that ends as `end` says (`close`, `exit`,
/// or `hang`, which the test kills).
fn exchange(left: usize, right: usize, end: &str) {
    if let Some(why) = missing() {
        return vproto_test_support::missing_peer(&why);
    }
    let world = World::new();
    let bytes = BYTES.to_string();
    let (left, right) = (left.to_string(), right.to_string());
    let peer = CLIENT_DOMAIN.to_string();
    let mut server = world.start(0, &["server", &peer, PATH, &bytes, &left, &right]);
    let (ready, server_lines) = line(server.stdout.take().unwrap());
    assert_eq!(ready, "ready", "the server did not start: {}", stderr(&mut server));

    let mut client = world.start(CLIENT_DOMAIN, &["client", "0", PATH, &bytes, end]);
    if end == "hang" {
        let (done, _) = line(client.stdout.take().unwrap());
        assert_eq!(done, "done", "the client failed: {}", stderr(&mut client));
        client.kill().unwrap();
    }
    let (status, client_err) = finish(&mut client, "the client");
    if end != "hang" {
        assert!(status.success(), "the client failed ({status}): {client_err}");
    }
    let (status, server_err) = finish(&mut server, "the server");
    assert!(status.success(), "the server failed ({status}): {server_err}");
    assert_eq!(server_lines.recv_timeout(TIMEOUT).unwrap_or_default(), "peer gone");

    // The server closed: its grants and port are gone; nobody owes an unmap notify any more.
    assert_eq!(world.files("dom0/gnt"), Vec::<String>::new(), "grants left");
    assert_eq!(world.files("dom0/evtchn"), ["pending"], "ports left");
    assert_eq!(world.files("exit"), Vec::<String>::new(), "unmap notifies still owed");
}

#[test]
fn multi_page_rings_and_the_client_closes() {
    exchange(8192, 16384, "close");
}

#[test]
fn in_page_rings_and_the_client_exits_without_closing() {
    exchange(0, 0, "exit");
}

#[test]
fn one_page_rings_and_the_client_is_killed() {
    exchange(4096, 4096, "hang");
}
