//! `vproto xenstored` as a process, as a user runs it: it prints its socket, serves dom0 and a
//! guest socket to Xen's own xenstore-utils, and removes its sockets on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

/// The server process, killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn xenstore(tool: &str, socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new(Path::new("/usr/bin").join(tool))
        .args(args)
        .env("XENSTORED_PATH", socket)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
}

#[test]
fn serves_dom0_and_a_guest_and_stops_cleanly() {
    if !Path::new("/usr/bin/xenstore-write").exists() {
        return vproto_test_support::missing_peer(
            "Debian's xenstore-utils are not installed (apt-get install xenstore-utils)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("xs.sock");
    let guest = dir.path().join("dom7.sock");
    let mut child = Command::new(VPROTO)
        .args(["xenstored", "--socket"])
        .arg(&socket)
        .arg("--domain")
        .arg(format!("7={}", guest.display()))
        .args(["--quota-entry-size", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), format!("unix:{}", socket.display()));

    let write = xenstore("xenstore-write", &socket, &["/local/domain/7/name", "guest7"]);
    assert!(write.status.success(), "{write:?}");
    let read = xenstore("xenstore-read", &guest, &["name"]);
    assert_eq!(String::from_utf8_lossy(&read.stdout), "guest7\n", "{read:?}");
    let too_big = xenstore("xenstore-write", &guest, &["data/x", "123456789"]);
    assert!(!too_big.status.success(), "--quota-entry-size applies to the guest");
    let fits = xenstore("xenstore-write", &guest, &["data/x", "12345678"]);
    assert!(fits.status.success(), "{fits:?}");

    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "xenstored did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists() && !guest.exists(), "the socket files are removed");
}

#[test]
fn refuses_bad_options_clearly() {
    for (args, expected) in [
        (&["xenstored", "--socket", "/tmp/x.sock", "--domain", "0=/tmp/y"][..], "1..=65535"),
        (&["xenstored", "--socket", "/tmp/x.sock", "--domain", "nonsense"][..], "DOMID=PATH"),
    ] {
        let output = Command::new(VPROTO).args(args).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let not_a_socket = dir.path().join("file");
    std::fs::write(&not_a_socket, b"").unwrap();
    let output = Command::new(VPROTO).args(["xenstored", "--socket"]).arg(&not_a_socket).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a socket"));
}
