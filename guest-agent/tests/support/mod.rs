//! Shared by the guest agent's tests: the binary under test, stopping it, reading the tree it
//! published, and waiting for a condition with the agent's log on failure.

#![allow(dead_code)] // each test file takes what it needs

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use vproto_test_support::Process;
use vproto_xenstore::Xenstore;

/// How long a condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The agent under test: `$VPROTO_GUEST_AGENT_BIN` (relative to the workspace root), else the
/// test build.
pub fn agent_binary() -> PathBuf {
    let Some(path) = std::env::var_os("VPROTO_GUEST_AGENT_BIN") else {
        return PathBuf::from(env!("CARGO_BIN_EXE_vproto-guest-agent"));
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path = workspace.join(path);
    assert!(path.is_file(), "VPROTO_GUEST_AGENT_BIN: no file {}", path.display());
    path
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) to the agent.
pub fn signal(agent: &Process, signal: &str) {
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
}

/// Sends SIGTERM to the agent and waits for its exit.
pub async fn terminate(agent: &mut Process) -> ExitStatus {
    signal(agent, "TERM");
    let start = Instant::now();
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < DEADLINE, "the agent ignored SIGTERM: {}", agent.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every leaf under `root` (absolute), as paths relative to `home` → values.
pub async fn leaves(xs: &Xenstore, home: &str, root: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        let Ok(children) = xs.directory(&path).await else { continue };
        if children.is_empty() {
            if let Ok(value) = xs.read(&path).await {
                let relative = path.strip_prefix(home).and_then(|rest| rest.strip_prefix('/')).unwrap_or(&path);
                found.insert(relative.to_string(), String::from_utf8_lossy(&value).into_owned());
            }
        }
        pending.extend(children.into_iter().map(|child| format!("{path}/{child}")));
    }
    found
}

/// Polls `check` every `every` until it passes, failing at the deadline with its last
/// complaint and the log; returns how long it took.
pub async fn wait_for<F, Fut>(what: &str, agent: &Process, every: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return start.elapsed(),
            Err(why) if start.elapsed() > DEADLINE => {
                panic!("{what}: not reached within {DEADLINE:?}: {why}\n--- agent log\n{}", agent.log())
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
