//! Shared by the guest agent's kernel tests and its benchmark: a network namespace and child
//! processes cleaned up on drop, and `vproto xenstored` started inside a namespace.

#![allow(dead_code)] // each user takes what it needs

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use vproto_test_support::Process;

/// The `vproto` binary under test.
pub const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
/// How long a condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Why this test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !vproto_test_support::is_root() {
        return Some("needs root (network namespaces); run as root to include it".into());
    }
    vproto_test_support::first_missing(&["ip", "xenstore-ls", "xenstore-read"])
        .map(|tool| format!("`{tool}` is missing (packages iproute2, xenstore-utils)"))
}

/// Returns from the test when [`skip_reason`] says it cannot run: with a message, or failing
/// under `CI` ([`vproto_test_support::missing_peer`]).
#[macro_export]
macro_rules! skip_unless_able {
    () => {
        if let Some(reason) = $crate::guest_agent_support::skip_reason() {
            return vproto_test_support::missing_peer(&reason);
        }
    };
}

/// Runs `command`, which must succeed.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A network namespace, deleted on drop (also when the test fails).
pub struct Netns {
    /// The namespace name.
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("vproto-ga-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]));
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// `ip -n NS ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Starts `vproto xenstored --socket SOCKET` inside `netns` and waits until it accepts.
pub fn start_xenstored(netns: &Netns, socket: &Path, log: PathBuf) -> Process {
    let _ = std::fs::remove_file(socket);
    let mut command = netns.command(VPROTO);
    command.arg("xenstored").arg("--socket").arg(socket);
    let process = Process::spawn(command, log);
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(start.elapsed() < DEADLINE, "xenstored did not listen on {}: {}", socket.display(), process.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    process
}
