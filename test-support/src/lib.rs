//! Shared by the workspace's tests (a dev-dependency only): the one decision every test makes
//! when a real peer it needs is missing (root for network namespaces, iproute2, Debian's
//! xenstore-utils and python3-pyxs, the Python venv).
//!
//! On a developer's machine such a test skips with a message; in CI (`CI` set, as CI services
//! and `.ci/run`'s runner do) it fails, so a missing package can never pass as green.
//! `cargo xtask test` installs the packages when it runs as root, so neither happens there.
//!
//! [`rabbitmq`] starts private RabbitMQ brokers (killable and restartable) for the `amqp://`
//! transport's tests.
//!
//! With the `postgres` feature, [`postgres`] makes private PostgreSQL clusters (the conductor's
//! shared state).
//!
//! With the `vchan` feature, [`vchan`] is the vchan interop harness (Xenstore rendezvous, the
//! simulation's libraries, the C peer on Xen's libxenvchan, the checked data stream).
//!
//! ```no_run
//! fn skip_reason() -> Option<String> {
//!     (!std::path::Path::new("/usr/bin/xenstore-ls").exists()).then(|| "xenstore-utils is missing".into())
//! }
//!
//! #[test]
//! fn against_xenstore_utils() {
//!     if let Some(why) = skip_reason() {
//!         return vproto_test_support::missing_peer(&why);
//!     }
//!     // ...
//! }
//! ```

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rabbitmq;
#[cfg(feature = "vchan")]
pub mod vchan;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// A child process of a test, killed and reaped on drop; its stderr goes to a file the test
/// shows when it fails.
pub struct Process {
    /// The child.
    pub child: Child,
    log: PathBuf,
    /// Its stdout after the line [`Process::serving`] read, kept open so it may go on writing.
    _stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Process {
    /// Starts `command` with no stdin or stdout and its stderr in `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Process {
        let file =
            std::fs::File::create(&log).unwrap_or_else(|error| panic!("cannot create {}: {error}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        Process { child, log, _stdout: None }
    }

    /// Starts `command` (a server that prints where it serves once ready, as `vproto serve`
    /// does) with its stderr in `log`, and waits up to `wait` for that first line of its
    /// stdout; panics with its log if none comes.
    pub fn serving(mut command: Command, log: PathBuf, wait: std::time::Duration) -> (Process, String) {
        use std::io::BufRead;
        let file =
            std::fs::File::create(&log).unwrap_or_else(|error| panic!("cannot create {}: {error}", log.display()));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("a piped stdout"));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send((line, reader));
        });
        let mut process = Process { child, log, _stdout: None };
        match receiver.recv_timeout(wait) {
            Ok((line, reader)) if !line.trim().is_empty() => {
                process._stdout = Some(reader);
                (process, line.trim().to_string())
            }
            _ => panic!("{command:?} printed no address within {wait:?}:\n{}", process.log()),
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this run is CI's: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

fn ci_value(value: Option<&str>) -> bool {
    value.is_some_and(|value| !matches!(value.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
}

/// A test cannot meet a peer it needs (`why` says which and how to install it): outside CI it
/// prints `SKIPPED: <why>` and the caller returns; in CI it fails the test.
#[track_caller]
pub fn missing_peer(why: &str) {
    if in_ci() {
        panic!(
            "CI is set, so a missing peer fails instead of skipping: {why} (`cargo xtask test` installs them as root)"
        );
    }
    eprintln!("SKIPPED: {why}");
}

/// Whether this process runs as root (network namespaces, `ip netns exec`).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    euid == Some("0")
}

/// Set in the child [`in_netns`] starts.
const NETNS_CHILD: &str = "VPROTO_TEST_NETNS_CHILD";

/// Runs `test` inside a network namespace of its own: a socket belongs to the namespace of the
/// process that opens it, so the test binary runs itself again, only the test `name`, under
/// `ip netns exec` in a fresh namespace (deleted afterwards), and there `test` runs. Fails when
/// the child fails, showing its output; the child's stdout (figures a test prints) is printed
/// either way. Needs root and iproute2: skips, or fails under `CI`, without them
/// ([`missing_peer`]).
#[track_caller]
pub fn in_netns(name: &str, test: impl FnOnce()) {
    if std::env::var_os(NETNS_CHILD).is_some() {
        return test();
    }
    if !is_root() {
        return missing_peer("needs root (network namespaces)");
    }
    if first_missing(&["ip"]).is_some() {
        return missing_peer("`ip` is missing (apt-get install iproute2)");
    }
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let short: String = name.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    let netns = Netns(format!("vproto-t{}-{short}", std::process::id()));
    let added = Command::new("ip").args(["netns", "add", &netns.0]).status();
    assert!(added.is_ok_and(|status| status.success()), "ip netns add {} failed", netns.0);
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new("ip")
        .args(["netns", "exec", &netns.0])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(NETNS_CHILD, "1")
        .output()
        .expect("ip netns exec");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "{name} failed in network namespace {}:\n{}",
        netns.0,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `ip -batch -` with `commands`, one a line (in this process's network namespace, which
/// is the test's own inside [`in_netns`]); fails the test unless every one succeeds.
#[track_caller]
pub fn ip_batch(commands: &[String]) {
    use std::io::Write;
    let mut child = Command::new("ip").args(["-batch", "-"]).stdin(Stdio::piped()).spawn().expect("ip");
    let mut stdin = child.stdin.take().expect("ip's stdin");
    stdin.write_all(commands.join("\n").as_bytes()).expect("writing to ip -batch");
    drop(stdin);
    assert!(child.wait().expect("ip -batch").success(), "ip -batch failed");
}

/// The first of `programs` (absolute paths, or names looked up in `PATH`) that is not there.
pub fn first_missing<'a>(programs: &[&'a str]) -> Option<&'a str> {
    programs.iter().copied().find(|program| !found(program))
}

fn found(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        for set in ["true", "1", "yes", "TRUE"] {
            assert!(ci_value(Some(set)), "{set}");
        }
        for unset in [None, Some(""), Some("0"), Some("false"), Some("False"), Some("no")] {
            assert!(!ci_value(unset), "{unset:?}");
        }
    }

    #[test]
    fn programs() {
        assert_eq!(first_missing(&["sh", "/bin/sh"]), None);
        assert_eq!(first_missing(&["sh", "vproto-no-such-program", "/no/such/file"]), Some("vproto-no-such-program"));
    }
}
