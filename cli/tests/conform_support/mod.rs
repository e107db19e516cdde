//! What the conformance-proof tests share: running `vproto conform` with a deadline and
//! reading the case outcomes out of its JSON report.

#![allow(dead_code)] // Each test binary uses its own part.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The `vproto` binary under test.
pub const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

/// The longest one suite run may take before it is killed and the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ is inside the workspace").to_path_buf()
}

/// Quotes `text` for `sh -c`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text`, cut to its first 2000 bytes.
pub fn shorten(text: &str) -> String {
    if text.len() <= 2000 {
        return text.to_string();
    }
    let mut end = 2000;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// What one suite run gave.
pub struct Run {
    /// The exit code of `vproto conform`.
    pub exit: Option<i32>,
    /// Every case ID in the report, with whether it failed.
    pub cases: Vec<(String, bool)>,
    /// The methods the report names as uncovered (`summary.uncovered`): no successful result
    /// was checked for them.
    pub uncovered: Vec<String>,
    /// What `vproto conform` wrote on stderr (progress, errors).
    pub stderr: String,
}

impl Run {
    /// The IDs of the failed cases.
    pub fn failed(&self) -> BTreeSet<&str> {
        self.cases.iter().filter(|(_, failed)| *failed).map(|(id, _)| id.as_str()).collect()
    }

    /// Whether a case with this ID ran.
    pub fn ran(&self, id: &str) -> bool {
        self.cases.iter().any(|(case, _)| case == id)
    }
}

/// Reads the case outcomes of a JSON report: `cases` (or `results`), each with an `id` and a
/// `status`/`outcome` (`pass`, `fail`, `expected-failure`, ...) or a boolean `passed`.
pub fn outcomes(report: &Value) -> Result<Vec<(String, bool)>, String> {
    let cases = report
        .get("cases")
        .or_else(|| report.get("results"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the report has no `cases` array: {}", shorten(&report.to_string())))?;
    cases
        .iter()
        .map(|case| {
            let id = case.get("id").and_then(Value::as_str).ok_or_else(|| format!("a case without `id`: {case}"))?;
            let status = case.get("status").or(case.get("outcome"));
            let failed = match (case.get("passed").and_then(Value::as_bool), status) {
                (Some(passed), _) => !passed,
                (None, Some(Value::String(status))) => !matches!(
                    status.as_str(),
                    "pass" | "passed" | "ok" | "expected-failure" | "expected_failure" | "skipped" | "skip"
                ),
                _ => return Err(format!("case {id} has no `passed` or `status`: {case}")),
            };
            Ok((id.to_string(), failed))
        })
        .collect()
}

/// Waits for `child` until [`RUN_LIMIT`], killing it then.
pub fn wait_limited(child: &mut Child, what: &str) -> Result<ExitStatus, String> {
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| format!("waiting for {what}: {e}"))? {
            Some(status) => return Ok(status),
            None if started.elapsed() > RUN_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {RUN_LIMIT:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Starts `vproto conform ARGS --report json --out DIR/report.json`, stderr to a file in `dir`.
pub fn start_conform(dir: &Path, args: &[&str]) -> Result<Child, String> {
    let stderr = dir.join("conform.stderr");
    Command::new(VPROTO)
        .arg("conform")
        .args(args)
        .args(["--report", "json", "--out"])
        .arg(dir.join("report.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?)
        .spawn()
        .map_err(|e| format!("cannot run {VPROTO} conform: {e}"))
}

/// Waits for a conform run started by [`start_conform`] and reads its report.
pub fn finish_conform(dir: &Path, mut child: Child) -> Result<Run, String> {
    let status = wait_limited(&mut child, "vproto conform")?;
    let stderr = std::fs::read_to_string(dir.join("conform.stderr")).unwrap_or_default();
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!("no report at {} ({e}); vproto conform exited {status} and said:\n{}", path.display(), shorten(&stderr))
    })?;
    let report: Value = serde_json::from_str(&text).map_err(|e| format!("the report is not JSON: {e}"))?;
    let uncovered = report
        .pointer("/summary/uncovered")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the report has no `summary.uncovered`: {}", shorten(&text)))?
        .iter()
        .filter_map(|method| method.as_str().map(str::to_string))
        .collect();
    Ok(Run { exit: status.code(), cases: outcomes(&report)?, uncovered, stderr })
}

/// Runs `vproto conform ARGS` to the end.
pub fn conform(dir: &Path, args: &[&str]) -> Result<Run, String> {
    let child = start_conform(dir, args)?;
    finish_conform(dir, child)
}

/// The network host config the suite's `network.create_port` example needs: the network it names.
pub fn network_config() -> Value {
    serde_json::json!({"networks": [{
        "id": "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50", "label": "private", "bridge": "br-int", "mtu": 1450,
        "subnets": [{"cidr": "10.0.0.0/26", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
    }]})
}

/// Writes [`network_config`] into `dir`; returns its path.
pub fn write_network_config(dir: &Path) -> PathBuf {
    let path = dir.join("network.json");
    std::fs::write(&path, network_config().to_string()).expect("write the network config");
    path
}

/// A network of a host's own, which neither the schema's examples nor generated calls name.
pub const OWN_NETWORK: &str = "3b0f8d2e-6c41-4a7b-9e25-d8c1f0a94b67";

/// Writes a network host config serving [`OWN_NETWORK`] only into `dir`; returns its path.
pub fn write_own_network_config(dir: &Path) -> PathBuf {
    let path = dir.join("own-network.json");
    let config = serde_json::json!({"networks": [{
        "id": OWN_NETWORK, "label": "tenant-a", "bridge": "br-tenant", "mtu": 1500,
        "subnets": [{"cidr": "192.168.40.0/24", "gateway": "192.168.40.1"}],
    }]});
    std::fs::write(&path, config.to_string()).expect("write the network config");
    path
}

/// Writes a fixtures file giving `network.create_port` the network [`OWN_NETWORK`]; returns its path.
pub fn write_own_network_fixtures(dir: &Path) -> PathBuf {
    let path = dir.join("fixtures.json");
    let fixtures = serde_json::json!({"network.create_port": {"network_id": OWN_NETWORK}});
    std::fs::write(&path, fixtures.to_string()).expect("write the fixtures");
    path
}

/// The example driver config (`examples/driver.json`).
pub fn driver_config() -> PathBuf {
    root().join("examples/driver.json")
}

/// A connection to the Unix socket a just-started server is about to listen on (its file appears
/// just before), failing the test after 20 s.
pub fn connect_when_listening(socket: &Path) -> UnixStream {
    let started = Instant::now();
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return stream,
            Err(error) => {
                assert!(started.elapsed() < Duration::from_secs(20), "{} did not listen: {error}", socket.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A line client: sends `request` as one line on `stream`, returns the answer `reader` reads.
pub fn exchange_line(stream: &UnixStream, reader: &mut BufReader<UnixStream>, request: &Value) -> Value {
    let mut writer = stream;
    writer.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {line:?}"))
}
