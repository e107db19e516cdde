//! The suite is language-neutral: a Python server and Python clients written only from the
//! published description (tests/python_peer/) are judged by `vproto conform`.
//!
//! - the Python server (driver and network services, on stdio, on a Unix socket and over TLS)
//!   passes every case of `--services driver,network`;
//! - the Python client that backlevels its HostInfo on UnsupportedVersion passes `--serve`;
//! - the same client told not to backlevel (`--on-unsupported give-up`), or to retry the same
//!   request (`retry-as-is`), fails `--serve` on the backlevel-retry case.
//!
//! They need the test venv (`$VPROTO_VENV`, else `.venv`, made by `cargo xtask test` from
//! tests/requirements.txt, which pins `jsonschema`); without it they skip with a message, or
//! fail under `CI`.

#[path = "../../jsonrpc/tests/certs/mod.rs"]
mod certs;
mod conform_support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use certs::TestPki;
use conform_support::{
    conform, driver_config, finish_conform, root, shell_quote, shorten, start_conform, wait_limited,
    write_network_config, Run,
};

/// The case `--serve` fails a client on when it does not backlevel and retry.
const BACKLEVEL_RETRY: &str = "serve/network.create_port/backlevel-retry";

/// The venv's Python, if the venv is there with `jsonschema` installed; else why not.
fn python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("VPROTO_VENV").map_or_else(|| root().join(".venv"), PathBuf::from);
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(format!(
            "no Python venv at {} (set VPROTO_VENV, or run `cargo xtask test`, which creates it)",
            venv.display()
        ));
    }
    let probe = Command::new(&python).args(["-c", "import jsonschema, referencing"]).stderr(Stdio::null()).status();
    match probe {
        Ok(status) if status.success() => Ok(python),
        _ => Err(format!(
            "{} lacks jsonschema: `{} -m pip install -r tests/requirements.txt`",
            venv.display(),
            python.display()
        )),
    }
}

/// The venv's Python, or `None` after saying why the test is skipped (failing it under `CI`).
fn python_or_skip(test: &str) -> Option<PathBuf> {
    match python() {
        Ok(python) => Some(python),
        Err(why) => {
            vproto_test_support::missing_peer(&format!("{test}: {why}"));
            None
        }
    }
}

fn peer(script: &str) -> String {
    root().join("tests/python_peer").join(script).display().to_string()
}

fn describe(run: &Run) -> String {
    format!("exit {:?}, failed {:?}\n{}", run.exit, run.failed(), shorten(&run.stderr))
}

/// The Python server's command line (configs in `dir`), before `--listen`.
fn server_args(python: &Path, dir: &Path) -> Vec<String> {
    let network = write_network_config(dir);
    vec![
        python.display().to_string(),
        peer("server.py"),
        "--driver-config".into(),
        driver_config().display().to_string(),
        "--network-config".into(),
        network.display().to_string(),
    ]
}

/// Asserts a run passed every case, the ones that matter among them.
fn assert_passes_everything(run: &Run) {
    assert_eq!(run.exit, Some(0), "the Python server should pass every case: {}", describe(run));
    assert!(run.failed().is_empty(), "{}", describe(run));
    for must in [
        "protocol/batch/mixed",
        "method/network.create_port/valid/example-1",
        "negotiation/network.create_port/host_info/newer",
        "method/driver.list_hardware/valid/example-1",
    ] {
        assert!(run.ran(must), "{must} did not run: {} cases ran", run.cases.len());
    }
}

#[test]
fn python_server_passes_the_suite() {
    let Some(python) = python_or_skip("python_server_passes_the_suite") else { return };
    let dir = tempfile::tempdir().unwrap();
    let command: Vec<String> = server_args(&python, dir.path()).iter().map(|arg| shell_quote(arg)).collect();
    let target = format!("exec:{}", command.join(" "));
    let run =
        conform(dir.path(), &["--target", &target, "--services", "driver,network"]).unwrap_or_else(|e| panic!("{e}"));
    assert_passes_everything(&run);
}

/// Starts the Python server with `listen_args`, reads the address it prints once listening, and
/// runs the suite against the target `target_of` makes of that address (with `conform_args`).
fn serve_and_conform(
    python: &Path,
    dir: &Path,
    listen_args: &[&str],
    target_of: impl Fn(&str) -> String,
    conform_args: &[&str],
) -> (String, Result<Run, String>) {
    let args = server_args(python, dir);
    let mut server = Command::new(&args[0])
        .args(&args[1..])
        .args(listen_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the Python server starts");
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut ready).expect("the server's first line");
    let target = target_of(ready.trim());
    let mut all = vec!["--target", &target, "--services", "driver,network"];
    all.extend(conform_args);
    let run = conform(dir, &all);
    let _ = server.kill();
    let _ = server.wait();
    (ready.trim().to_string(), run)
}

#[test]
fn python_server_passes_the_suite_over_a_unix_socket() {
    let Some(python) = python_or_skip("python_server_passes_the_suite_over_a_unix_socket") else { return };
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix:{}", dir.path().join("server.sock").display());
    let (ready, run) = serve_and_conform(&python, dir.path(), &["--listen", &addr], str::to_string, &[]);
    assert_eq!(ready, addr, "the server prints its address once listening");
    assert_passes_everything(&run.unwrap_or_else(|e| panic!("{e}")));
}

/// The Python server over TCP with TLS (Python's ssl module), judged by `vproto conform --target
/// tls://HOST:PORT --tls-ca CA`.
#[test]
fn python_server_passes_the_suite_over_tls() {
    let Some(python) = python_or_skip("python_server_passes_the_suite_over_tls") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new().write(dir.path());
    let (cert, key, ca) =
        (pki.server_cert.display().to_string(), pki.server_key.display().to_string(), pki.ca.display().to_string());
    let listen = ["--listen", "tcp:127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
    let tls_target = |ready: &str| format!("tls://{}", ready.strip_prefix("tcp:").unwrap_or(ready));
    let (ready, run) = serve_and_conform(&python, dir.path(), &listen, tls_target, &["--tls-ca", &ca]);
    assert!(ready.starts_with("tcp:127.0.0.1:"), "the server prints its address once listening: {ready}");
    assert_passes_everything(&run.unwrap_or_else(|e| panic!("{e}")));
}

/// Runs the Python client against `vproto conform --serve unix:...` and returns the suite's verdict
/// and the client's exit code.
fn serve_session(python: &Path, client_args: &[&str]) -> (Run, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mock.sock");
    let addr = format!("unix:{}", socket.display());
    let conform = start_conform(dir.path(), &["--serve", &addr, "--sessions", "1", "--timeout", "60s"])
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "vproto conform --serve did not create {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let client_log = dir.path().join("client.stderr");
    let mut client = Command::new(python)
        .arg(peer("client.py"))
        .args(["--connect", &addr])
        .args(client_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&client_log).unwrap())
        .spawn()
        .expect("the Python client starts");
    let client_status = wait_limited(&mut client, "the Python client").unwrap_or_else(|e| panic!("{e}"));
    let run = finish_conform(dir.path(), conform).unwrap_or_else(|e| panic!("{e}"));
    (run, client_status.code(), std::fs::read_to_string(client_log).unwrap_or_default())
}

#[test]
fn backlevelling_python_client_passes_serve_mode() {
    let Some(python) = python_or_skip("backlevelling_python_client_passes_serve_mode") else { return };
    let (run, client, client_log) = serve_session(&python, &["--on-unsupported", "backlevel"]);
    assert_eq!(client, Some(0), "the client should succeed: {client_log}");
    assert_eq!(run.exit, Some(0), "the client should pass: {}\nclient: {client_log}", describe(&run));
    assert!(run.failed().is_empty(), "{}", describe(&run));
    assert!(run.ran(BACKLEVEL_RETRY), "{BACKLEVEL_RETRY} did not run; cases: {:?}", run.cases);
}

#[test]
fn python_client_that_does_not_backlevel_fails_serve_mode() {
    let Some(python) = python_or_skip("python_client_that_does_not_backlevel_fails_serve_mode") else { return };
    let (run, client, client_log) = serve_session(&python, &["--on-unsupported", "give-up"]);
    assert_eq!(client, Some(1), "the client gives up on UnsupportedVersion: {client_log}");
    assert_eq!(run.exit, Some(1), "the suite should fail the client: {}", describe(&run));
    assert!(run.failed().contains(BACKLEVEL_RETRY), "{BACKLEVEL_RETRY} should fail: {}", describe(&run));
}

#[test]
fn python_client_that_retries_unchanged_fails_serve_mode() {
    let Some(python) = python_or_skip("python_client_that_retries_unchanged_fails_serve_mode") else { return };
    let (run, _, client_log) = serve_session(&python, &["--on-unsupported", "retry-as-is"]);
    assert_eq!(run.exit, Some(1), "the suite should fail the client: {}\nclient: {client_log}", describe(&run));
    assert!(run.failed().contains(BACKLEVEL_RETRY), "{BACKLEVEL_RETRY} should fail: {}", describe(&run));
}

/// A retry that relabels HostVIFInfo as 1.0 but keeps `supported_port_profiles` (a 1.1 field).
#[test]
fn python_client_that_only_relabels_fails_serve_mode() {
    let Some(python) = python_or_skip("python_client_that_only_relabels_fails_serve_mode") else { return };
    let (run, _, client_log) = serve_session(&python, &["--on-unsupported", "relabel-only"]);
    assert_eq!(run.exit, Some(1), "the suite should fail the client: {}\nclient: {client_log}", describe(&run));
    assert!(run.failed().contains(BACKLEVEL_RETRY), "{BACKLEVEL_RETRY} should fail: {}", describe(&run));
}
