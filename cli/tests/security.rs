//! Secure by default, as separate `vproto serve` processes (issue #18): a `tcp:` or `http://`
//! listener without credentials refuses to start; with TLS (certificates made at test time,
//! client certificates required) and one token per role, the three-process Cyborg flow works,
//! an agent's token cannot call an operator-only method, and an agent refuses to register a
//! driver that announces a link-local endpoint.

#[path = "../../jsonrpc/tests/certs/mod.rs"]
mod certs;

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use certs::{PkiFiles, TestPki};
use serde_json::{json, Value};
use vproto_test_support::Process;

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
const CRYPTO: &str = "8e45a2ea-5364-4b0d-a252-bf8becaa606e";

/// A `vproto serve` process (killed when dropped, as every [`Process`]) and the address it
/// printed once listening.
struct Service {
    process: Process,
    addr: String,
}

impl Service {
    /// Starts `vproto serve ARGS` with its log in `dir`, and waits until it listens.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Service {
        let mut command = Command::new(VPROTO);
        command.arg("serve").args(args).env("VPROTO_LOG", "info").env("STATE_DIRECTORY", dir);
        let (process, addr) = Process::serving(command, dir.join(format!("{name}.log")), Duration::from_secs(30));
        Service { process, addr }
    }

    fn log(&self) -> String {
        self.process.log()
    }
}

/// A token file (mode 0600) for `role`.
fn token(dir: &Path, role: &str) -> String {
    let path = dir.join(format!("{role}.token"));
    std::fs::write(&path, format!("{role}-token-{}\n", std::process::id())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// TLS options of a process: its certificate (also its client certificate), the CA it trusts,
/// and, for a server, client certificates required.
fn tls_args(pki: &PkiFiles, server: bool) -> Vec<String> {
    let mut args = vec!["--tls-ca", text(&pki.ca)];
    if server {
        args.extend(["--tls-cert", text(&pki.server_cert), "--tls-key", text(&pki.server_key)]);
        args.extend(["--tls-client-ca", text(&pki.ca)]);
    } else {
        args.extend(["--tls-cert", text(&pki.client_cert), "--tls-key", text(&pki.client_key)]);
    }
    args.into_iter().map(str::to_string).collect()
}

/// `vproto call ARGS`.
fn call(args: &[&str]) -> Output {
    Command::new(VPROTO).arg("call").args(args).stdin(Stdio::null()).output().expect("vproto call runs")
}

/// `vproto call` as the operator over TLS with a client certificate.
fn operator_call(pki: &PkiFiles, operator: &str, addr: &str, method: &str, params: &str) -> Output {
    let tls = tls_args(pki, false);
    let mut args: Vec<&str> = vec!["--connect", addr, "--token-file", operator, "--timeout", "10s"];
    args.extend(tls.iter().map(String::as_str));
    args.extend([method, params]);
    call(&args)
}

fn stdout_json(output: &Output) -> Option<Value> {
    output.status.success().then(|| serde_json::from_slice(&output.stdout).ok()).flatten()
}

/// Polls `check` until it gives a value, failing after `seconds` with `what` and the logs.
fn poll<T>(what: &str, seconds: u64, services: &[&Service], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = services.iter().map(|service| service.log()).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n---\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_tcp_or_http_listener_without_credentials_refuses_to_start_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    for listen in ["tcp:127.0.0.1:0", "http://127.0.0.1:0"] {
        let output = Command::new(VPROTO)
            .args(["serve", "agent", "--listen", listen])
            .env("VPROTO_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        for how in ["needs credentials", "--token-file", "--role-token", "--tls-client-ca", "--insecure"] {
            assert!(stderr.contains(how), "{how}: {stderr}");
        }
        assert!(output.stdout.is_empty(), "it never listened");
    }
    // A Unix socket needs none.
    let socket = format!("unix:{}", dir.path().join("agent.sock").display());
    let agent = Service::start(dir.path(), "unix-agent", &["agent", "--listen", &socket]);
    assert_eq!(agent.addr, socket);
    drop(agent);
    // --insecure starts, warning that anyone may call.
    let insecure =
        Service::start(dir.path(), "insecure-agent", &["agent", "--listen", "tcp:127.0.0.1:0", "--insecure"]);
    let answer = call(&["--connect", &insecure.addr, "agent.list_hardware"]);
    assert!(answer.status.success(), "{}", String::from_utf8_lossy(&answer.stderr));
    assert!(insecure.log().contains("--insecure: serving without credentials"), "{}", insecure.log());
}

#[test]
fn over_tls_with_a_token_per_role_the_three_processes_work_and_each_role_calls_only_its_methods() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new().write(dir.path());
    let [driver, agent, conductor, operator] =
        ["driver", "agent", "conductor", "operator"].map(|r| token(dir.path(), r));
    let config = dir.path().join("driver.json");
    let hardware = json!({
        "device_type": "CRYPTO",
        "discovery": {"duration_ms": 200},
        "hardware": [{
            "uuid": CRYPTO,
            "acc_specs": {"remote": false, "num": 1, "device_type": "CRYPTO",
                          "acc_capability": {"num": 2, "features": {"ipsec": {"features": {"aes": {"num": 1}}}}}},
            "acc_status": {"setup_required": true, "reboot_required": false}
        }]
    });
    std::fs::write(&config, hardware.to_string()).unwrap();
    let server_tls = tls_args(&pki, true);
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).chain(server_tls.iter().cloned()).collect()
    };
    let role = |name: &str, file: &str| format!("{name}={file}");

    let conductor_args = with(&[
        "conductor",
        "--listen",
        "tcp:127.0.0.1:0",
        "--heartbeat-interval",
        "1",
        "--token-file",
        &conductor,
        "--role-token",
        &role("agent", &agent),
        "--role-token",
        &role("operator", &operator),
    ]);
    let conductor_service =
        Service::start(dir.path(), "conductor", &conductor_args.iter().map(String::as_str).collect::<Vec<_>>());
    let agent_args = with(&[
        "agent",
        "--listen",
        "tcp:127.0.0.1:0",
        "--conductor",
        &conductor_service.addr,
        "--heartbeat-interval",
        "1",
        "--hello-retry",
        "100ms",
        "--token-file",
        &agent,
        "--role-token",
        &role("driver", &driver),
        "--role-token",
        &role("conductor", &conductor),
        "--role-token",
        &role("operator", &operator),
    ]);
    let agent_service = Service::start(dir.path(), "agent", &agent_args.iter().map(String::as_str).collect::<Vec<_>>());
    let driver_args = with(&[
        "driver",
        "--listen",
        "tcp:127.0.0.1:0",
        "--config",
        text(&config),
        "--agent",
        &agent_service.addr,
        "--hello-retry",
        "100ms",
        "--token-file",
        &driver,
        "--role-token",
        &role("agent", &agent),
        "--role-token",
        &role("operator", &operator),
    ]);
    let driver_service =
        Service::start(dir.path(), "driver", &driver_args.iter().map(String::as_str).collect::<Vec<_>>());
    let all = [&conductor_service, &agent_service, &driver_service];
    let agent_endpoint = agent_service.addr.trim_start_matches("tcp:").to_string();

    // The agent registered with the conductor (hello with the agent's token, over TLS).
    poll("the agent to register with the conductor", 30, &all, || {
        let listed =
            stdout_json(&operator_call(&pki, &operator, &conductor_service.addr, "conductor.list_agents", "{}"))?;
        listed["agents"].as_array()?.iter().any(|a| a["endpoint"] == agent_endpoint.as_str()).then_some(())
    });
    // The operator starts discovery at the conductor, which asks the agent (conductor's token),
    // which asks its driver (agent's token); the hardware ends up listed.
    poll("the hardware to be discovered", 30, &all, || {
        let _ = operator_call(&pki, &operator, &conductor_service.addr, "conductor.start_discovery", "{}");
        let listed =
            stdout_json(&operator_call(&pki, &operator, &conductor_service.addr, "conductor.list_hardware", "{}"))?;
        listed.to_string().contains(CRYPTO).then_some(())
    });

    // The agent's token cannot call an operator-only method.
    let refused = operator_call(&pki, &agent, &conductor_service.addr, "conductor.list_agents", "{}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-32003") && stderr.contains("Forbidden") && stderr.contains("operator"), "{stderr}");
    // Nor can a driver's call what the conductor calls on the agent.
    let refused = operator_call(&pki, &driver, &agent_service.addr, "agent.start_discovery", "{}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("-32003"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Without TLS, or without a client certificate, nothing is answered.
    let plain = call(&[
        "--connect",
        &conductor_service.addr,
        "--token-file",
        &operator,
        "--timeout",
        "5s",
        "conductor.list_agents",
    ]);
    assert_eq!(plain.status.code(), Some(1), "{}", String::from_utf8_lossy(&plain.stderr));
    let no_cert = call(&[
        "--connect",
        &conductor_service.addr,
        "--token-file",
        &operator,
        "--timeout",
        "5s",
        "--tls-ca",
        text(&pki.ca),
        "conductor.list_agents",
    ]);
    assert_eq!(no_cert.status.code(), Some(1), "{}", String::from_utf8_lossy(&no_cert.stderr));

    // A driver announcing the cloud metadata address is refused at hello, with why; the agent
    // never registers (so never dials) it.
    let metadata = json!({"registration": {"endpoint": "169.254.169.254:80", "status": "READY", "type": "CRYPTO"}});
    let refused = operator_call(&pki, &driver, &agent_service.addr, "agent.hello", &metadata.to_string());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1104") && stderr.contains("link-local") && stderr.contains("--allow-peers"), "{stderr}");
    assert!(agent_service.log().contains("refusing an announced endpoint"), "{}", agent_service.log());
}

/// `vproto conform --target tls://…|https://…` checks a server that speaks only TLS and wants a
/// client certificate and a token: the suite passes over both, and a CA that did not sign the
/// server's certificate is a connection failure that says TLS.
#[test]
fn conform_checks_a_tls_server_over_tls_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new().write(dir.path());
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let other_pki = TestPki::new().write(&dir.path().join("other"));
    let shared = token(dir.path(), "shared");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/driver.json");
    let server_tls = tls_args(&pki, true);
    for (listen, scheme) in [("tcp:127.0.0.1:0", "tls://"), ("http://127.0.0.1:0", "https://")] {
        let mut args = vec!["driver", "--listen", listen, "--token-file", &shared, "--config", config];
        args.extend(server_tls.iter().map(String::as_str));
        let driver = Service::start(dir.path(), "driver", &args);
        let target = format!("{scheme}{}", driver.addr.split_once("://").or(driver.addr.split_once(':')).unwrap().1);
        let conform = |pki: &PkiFiles| {
            let mut args = vec!["conform", "--target", &target, "--token-file", &shared, "--services", "driver"];
            let client_tls = tls_args(pki, false);
            args.extend(client_tls.iter().map(String::as_str));
            let output = Command::new(VPROTO).args(&args).stdin(Stdio::null()).output().expect("vproto conform runs");
            (
                output.status.code(),
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
            )
        };
        let (code, out) = conform(&pki);
        assert_eq!(code, Some(0), "{target}: {out}\n{}", driver.log());
        assert!(out.contains(" 0 failed"), "{target}: {out}");
        let (code, out) = conform(&other_pki);
        assert_ne!(code, Some(0), "{target}: a CA that did not sign the server's certificate: {out}");
        assert!(out.contains("TLS") || out.contains("certificate"), "{target}: the failure says why: {out}");
    }
}
