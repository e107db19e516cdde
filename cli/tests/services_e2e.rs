//! The reference services as separate `vproto serve` processes, driven by `vproto call`:
//! conductor on a Unix socket, agent and driver on loopback TCP (their `host:port` endpoints
//! are dialled over TCP), a network host on a Unix socket.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
const CRYPTO: &str = "8e45a2ea-5364-4b0d-a252-bf8becaa606e";
const NETWORK: &str = "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50";

/// A service's name and log file.
type Log = (String, PathBuf);

/// A `vproto serve` process, killed when dropped.
struct Service {
    child: Child,
    name: String,
    log: PathBuf,
    /// The address it printed once listening.
    addr: String,
    _stdout: BufReader<ChildStdout>,
}

impl Service {
    /// Starts `vproto serve ARGS` with its log in `dir`, and waits until it listens.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Service {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(VPROTO)
            .arg("serve")
            .args(args)
            // A conductor's state is its own, not the machine's default file other tests share.
            .args(if args.first() == Some(&"conductor") { &["--state", "memory"][..] } else { &[] })
            .env("VPROTO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("vproto serve starts");
        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send((line, reader));
        });
        let service = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok((line, reader)) if !line.trim().is_empty() => {
                Service { child, name: name.to_string(), log, addr: line.trim().to_string(), _stdout: reader }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        service
    }

    /// Where its log is, for [`poll`]'s report.
    fn log_file(&self) -> Log {
        (self.name.clone(), self.log.clone())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vproto call ARGS`.
fn call(args: &[&str]) -> Output {
    Command::new(VPROTO).arg("call").args(args).stdin(Stdio::null()).output().expect("vproto call runs")
}

/// `vproto call` that must succeed, its result parsed.
fn call_ok(args: &[&str]) -> Value {
    let output = call(args);
    assert!(output.status.success(), "vproto call {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the result is JSON")
}

/// Polls `check` until it gives a value, failing after `seconds` with `what` and the logs.
fn poll<T>(what: &str, seconds: u64, logs: &[Log], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|(name, path)| format!("--- {name} ---\n{}", std::fs::read_to_string(path).unwrap_or_default()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token_file(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    std::fs::write(&path, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

fn driver_config(dir: &Path) -> String {
    let path = dir.join("driver.json");
    let config = json!({
        "device_type": "CRYPTO",
        "discovery": {"duration_ms": 200},
        "hardware": [{
            "uuid": CRYPTO,
            "acc_specs": {"remote": false, "num": 1, "device_type": "CRYPTO",
                          "acc_capability": {"num": 2, "features": {"ipsec": {"features": {"aes": {"num": 1}}}}}},
            "acc_status": {"setup_required": true, "reboot_required": false}
        }]
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

fn agents(conductor: &str) -> Vec<Value> {
    call_ok(&["--connect", conductor, "conductor.list_agents"])["agents"].as_array().unwrap().clone()
}

#[test]
fn the_conductor_lists_the_drivers_hardware_and_notices_a_dead_agent() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let socket = format!("unix:{}", dir.path().join("conductor.sock").display());
    let conductor = Service::start(
        dir.path(),
        "conductor",
        &[
            "conductor",
            "--listen",
            &socket,
            "--heartbeat-interval",
            "1",
            "--peer-timeout",
            "3s",
            "--token-file",
            &token,
        ],
    );
    assert_eq!(conductor.addr, socket);
    let mut agent = Service::start(
        dir.path(),
        "agent",
        &[
            "agent",
            "--listen",
            "tcp:127.0.0.1:0",
            "--conductor",
            &socket,
            "--heartbeat-interval",
            "1",
            "--hello-retry",
            "100ms",
            "--token-file",
            &token,
        ],
    );
    assert!(agent.addr.starts_with("tcp:127.0.0.1:"), "{}", agent.addr);
    let driver = Service::start(
        dir.path(),
        "driver",
        &[
            "driver",
            "--listen",
            "tcp:127.0.0.1:0",
            "--config",
            &driver_config(dir.path()),
            "--agent",
            &agent.addr,
            "--hello-retry",
            "100ms",
            "--token-file",
            &token,
        ],
    );
    let endpoint = agent.addr.trim_start_matches("tcp:").to_string();
    let all = [conductor.log_file(), agent.log_file(), driver.log_file()];
    poll("the agent to register", 20, &all, || {
        agents(&socket).iter().any(|a| a["endpoint"] == endpoint.as_str()).then_some(())
    });

    // The agent wants the token: a call without it is refused, with it discovery starts.
    let refused = call(&["--connect", &agent.addr, "--timeout", "5s", "agent.start_discovery"]);
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    poll("the driver to register and discovery to start", 20, &all, || {
        let output = call(&["--connect", &agent.addr, "--token-file", &token, "agent.start_discovery"]);
        let result: Value = serde_json::from_slice(&output.stdout).ok()?;
        // DONE until the driver has registered: there is nothing to discover yet.
        (result["status"] == "IN-PROGRESS").then_some(())
    });
    let hardware = poll("the driver's hardware at the conductor", 20, &all, || {
        let listed = call_ok(&["--connect", &socket, "conductor.list_hardware"]);
        let hardware = listed["hardware"].as_array()?.clone();
        (!hardware.is_empty()).then_some(hardware)
    });
    assert_eq!(hardware.len(), 1);
    assert_eq!(hardware[0]["uuid"], CRYPTO);
    assert_eq!(hardware[0]["acc_specs"]["device_type"], "CRYPTO");

    // Discovery through the conductor: a new run (the first one ended with its hardware listed),
    // followed until it ends and published once; reading the status starts no run.
    let started = call_ok(&["--connect", &socket, "conductor.start_discovery"]);
    assert_eq!(started, json!({"agents": [{"agent": endpoint, "status": "IN-PROGRESS"}]}));
    poll("the conductor to see the run end", 20, &all, || conductor.log().contains("discovery finished").then_some(()));
    let status = call_ok(&["--connect", &agent.addr, "--token-file", &token, "agent.discovery_status"]);
    assert_eq!(status, json!({"status": "DONE"}));
    assert_eq!(conductor.log().matches("discovery finished").count(), 1, "{}", conductor.log());

    // The agent dies: the conductor lists it, not alive, and says so in its log.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let gone = poll("the conductor to notice the dead agent", 30, &all, || {
        agents(&socket).into_iter().find(|a| a["endpoint"] == endpoint.as_str() && a["alive"] == false)
    });
    assert_eq!(gone["status"], "READY");
    poll("the missing-agent warning", 10, &all, || conductor.log().contains("agent is missing").then_some(()));
    // Not alive, so no longer contacted: the hardware list is empty, not an error.
    assert_eq!(call_ok(&["--connect", &socket, "conductor.list_hardware"]), json!({"hardware": []}));
}

#[test]
fn an_alive_agent_that_cannot_be_reached_is_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix:{}", dir.path().join("conductor.sock").display());
    let conductor =
        Service::start(dir.path(), "conductor", &["conductor", "--listen", &socket, "--peer-timeout", "2s"]);
    // Register an agent by hand at an endpoint where nothing listens.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("127.0.0.1:{}", unused.local_addr().unwrap().port());
    drop(unused);
    let hello = json!({"registration": {"status": "READY", "endpoint": endpoint}}).to_string();
    let ack = call_ok(&["--connect", &socket, "conductor.hello", &hello]);
    assert_eq!(ack, json!({"protocol_version": vproto_api::PROTOCOL_VERSION, "heartbeat_interval": 30}));
    let output = call(&["--connect", &socket, "conductor.list_hardware"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error 1102 AgentUnavailable: Agent unavailable"), "{stderr}");
    assert!(stderr.contains(&format!("\"endpoint\": \"{endpoint}\"")), "{stderr}");
    drop(conductor);
}

fn network_config(dir: &Path) -> String {
    let path = dir.join("network.json");
    let config = json!({"networks": [{
        "id": NETWORK, "label": "private", "bridge": "br-int", "mtu": 1450,
        "subnets": [{"cidr": "10.0.0.0/26", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
        "vif_classes": ["VIFOpenVSwitch", "VIFBridge"]
    }]});
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

fn envelope(name: &str, version: &str, data: Value) -> Value {
    json!({"versioned_object.name": name, "versioned_object.namespace": "os_vif",
           "versioned_object.version": version, "versioned_object.data": data})
}

fn create_port_params(plugins: Vec<Value>, port: &str) -> String {
    json!({
        "host_info": envelope("HostInfo", "1.0", json!({"plugin_info": plugins})),
        "instance": envelope("InstanceInfo", "1.0", json!({"uuid": "d2b4c6e8-0a1b-4c3d-8e5f-6a7b8c9d0e1f", "name": "vm"})),
        "network_id": NETWORK,
        "port_id": port,
    })
    .to_string()
}

fn ovs_plugin(vif_max: &str, profile_min: &str, profile_max: &str) -> Value {
    let profile = envelope(
        "HostPortProfileInfo",
        "1.0",
        json!({"profile_object_name": "VIFPortProfileOpenVSwitch", "min_version": profile_min, "max_version": profile_max}),
    );
    let vif = envelope(
        "HostVIFInfo",
        "1.1",
        json!({"vif_object_name": "VIFOpenVSwitch", "min_version": "1.0", "max_version": vif_max,
               "supported_port_profiles": [profile]}),
    );
    envelope("HostPluginInfo", "1.0", json!({"plugin_name": "ovs", "vif_info": [vif]}))
}

fn version(text: &Value) -> (u32, u32) {
    let (major, minor) = text.as_str().unwrap().split_once('.').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

#[test]
fn create_port_answers_a_vif_within_the_plugins_range_or_no_compatible_vif() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix:{}", dir.path().join("network.sock").display());
    let network = Service::start(
        dir.path(),
        "network",
        &["network", "--listen", &socket, "--config", &network_config(dir.path())],
    );

    let params = create_port_params(vec![ovs_plugin("1.0", "1.0", "1.2")], "3f9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c");
    let vif = call_ok(&["--connect", &socket, "network.create_port", &params]);
    assert_eq!(vif["versioned_object.name"], "VIFOpenVSwitch");
    assert_eq!(vif["versioned_object.version"], "1.0");
    let profile = &vif["versioned_object.data"]["port_profile"];
    let profile_version = version(&profile["versioned_object.version"]);
    assert!(((1, 0)..=(1, 2)).contains(&profile_version), "{profile}");
    assert_eq!(profile_version, (1, 2), "the highest version in range");
    assert_eq!(vif["versioned_object.data"]["plugin"], "ovs");

    // A plugin that takes only a VIF class this network cannot give.
    let sriov = envelope(
        "HostPluginInfo",
        "1.0",
        json!({"plugin_name": "sriov", "vif_info": [envelope("HostVIFInfo", "1.0",
            json!({"vif_object_name": "VIFHostDevice", "min_version": "1.0", "max_version": "1.0"}))]}),
    );
    let params = create_port_params(vec![sriov], "9a9e1b2c-8d4a-4e6f-9b1c-2d3e4f5a6b7c");
    let output = call(&["--connect", &socket, "network.create_port", &params]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("error 1001 NoCompatibleVif: No compatible VIF"), "{stderr}");
    assert!(stderr.contains("\"sriov\"") && stderr.contains("\"VIFOpenVSwitch\""), "{stderr}");
    drop(network);
}

#[test]
fn the_rest_bindings_are_served_on_http() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Service::start(
        dir.path(),
        "driver",
        &["driver", "--listen", "http://127.0.0.1:0", "--config", &driver_config(dir.path()), "--insecure"],
    );
    let host_port = driver.addr.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host_port).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /hardware HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"hardware\":[]}"), "nothing discovered yet: {answer}");
    // JSON-RPC is served beside the routes, rpc.discover included.
    let document = call_ok(&["--connect", &driver.addr, "rpc.discover"]);
    assert!(document["methods"].as_array().is_some_and(|m| !m.is_empty()), "{document}");
}

/// One HTTP/1.1 request with a JSON body to `host_port`; the status and the body of the answer.
fn http(host_port: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer}"));
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}")))
}

#[test]
fn the_seeds_flat_hello_body_registers_a_driver_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Service::start(
        dir.path(),
        "driver",
        &["driver", "--listen", "tcp:127.0.0.1:0", "--config", &driver_config(dir.path()), "--insecure"],
    );
    let agent = Service::start(dir.path(), "agent", &["agent", "--listen", "http://127.0.0.1:0", "--insecure"]);
    let agent_at = agent.addr.trim_start_matches("http://").to_string();
    let endpoint = driver.addr.trim_start_matches("tcp:");

    // Cyborg's seed: `POST /hello` with the registration object itself.
    let seed_body = json!({"status": "READY", "endpoint": endpoint, "type": "CRYPTO"}).to_string();
    let (status, ack) = http(&agent_at, "POST", "/hello", &seed_body);
    assert_eq!(status, 200, "{ack}");
    assert!(ack["heartbeat_interval"].is_u64(), "{ack}");
    // The wrapped form of earlier releases still works.
    let (status, ack) = http(&agent_at, "POST", "/hello", &format!(r#"{{"registration": {seed_body}}}"#));
    assert_eq!(status, 200, "{ack}");
    // A flat body that does not fit is refused, naming the field inside the param.
    let (status, error) =
        http(&agent_at, "POST", "/hello", r#"{"status": "SLEEPY", "endpoint": "x:1", "type": "CRYPTO"}"#);
    assert_eq!((status, &error["code"]), (400, &json!(-32602)), "{error}");
    assert!(error.to_string().contains("/registration/status"), "{error}");

    // The driver is registered: discovery through the agent reaches it, and its hardware shows.
    let (status, started) = http(&agent_at, "POST", "/discovery", "");
    assert_eq!(status, 200, "{started}");
    let logs = [agent.log_file(), driver.log_file()];
    poll("the driver's hardware at the agent", 20, &logs, || {
        let (status, listed) = http(&agent_at, "GET", "/hardware", "");
        (status == 200 && listed.to_string().contains(CRYPTO)).then_some(())
    });
}

/// One JSON-RPC request over a Unix socket, its whole answer.
fn raw_call(socket: &str, method: &str, params: Value) -> Value {
    use std::os::unix::net::UnixStream;
    let mut stream = UnixStream::connect(socket.trim_start_matches("unix:")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    writeln!(stream, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn each_service_discovers_exactly_its_own_methods() {
    let dir = tempfile::tempdir().unwrap();
    let whole: Value = serde_json::from_str(vproto_api::OPENRPC).unwrap();
    for service in ["driver", "agent", "conductor", "network", "guest"] {
        let socket = format!("unix:{}", dir.path().join(format!("{service}.sock")).display());
        let mut args = vec![service, "--listen", &socket];
        let config = match service {
            "driver" => Some(driver_config(dir.path())),
            "network" => Some(network_config(dir.path())),
            _ => None,
        };
        if let Some(config) = &config {
            args.extend(["--config", config]);
        }
        let server = Service::start(dir.path(), service, &args);
        let document = call_ok(&["--connect", &server.addr, "rpc.discover"]);
        let advertised: Vec<&str> =
            document["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        let own: Vec<&str> = whole["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .filter(|name| name.split_once('.').is_some_and(|(s, _)| s == service))
            .collect();
        assert_eq!(advertised, own, "{service} advertises exactly its own methods");
        assert_eq!(document, serde_json::from_str::<Value>(vproto_api::service_openrpc(service).unwrap()).unwrap());
        // Every advertised schema reference resolves inside the document.
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(document["components"]["schemas"].get(name).is_some(), "{service}: dangling {name}");
        }
        // A probe of every advertised method with its params missing: each exists (never
        // -32601) and each with a required param says which is missing (-32602).
        for method in document["methods"].as_array().unwrap() {
            let name = method["name"].as_str().unwrap();
            let answer = raw_call(&server.addr, name, json!({}));
            let requires = method["params"].as_array().unwrap().iter().any(|p| p["required"] == true);
            let code = &answer["error"]["code"];
            assert_ne!(code, &json!(-32601), "{name}: {answer}");
            if requires {
                assert_eq!(code, &json!(-32602), "{name}: {answer}");
            }
        }
    }
}

#[test]
fn sigterm_stops_a_server_gracefully_and_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conductor.sock");
    let mut conductor =
        Service::start(dir.path(), "conductor", &["conductor", "--listen", &format!("unix:{}", path.display())]);
    assert!(path.exists());
    let status = Command::new("kill").args(["-TERM", &conductor.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exited = poll("the conductor to exit", 20, &[conductor.log_file()], || conductor.child.try_wait().unwrap());
    assert!(exited.success(), "{exited:?}: {}", conductor.log());
    assert!(!path.exists(), "the socket file is removed");
    assert!(conductor.log().contains("shutting down"));
}

#[test]
fn call_checks_the_method_and_params_before_connecting() {
    // Nothing listens there: only local checks can answer.
    let nowhere = "unix:/nonexistent/vproto.sock";
    let output = call(&["--connect", nowhere, "conductor.list_hardwares"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown method `conductor.list_hardwares`; did you mean"), "{stderr}");
    assert!(stderr.contains("conductor.list_hardware"), "{stderr}");

    let output = call(&["--connect", nowhere, "agent.hello", r#"{"registration": {"status": "SLEEPY"}, "extra": 1}"#]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid params for agent.hello"), "{stderr}");
    assert!(stderr.contains("/registration/status") && stderr.contains("extra"), "{stderr}");

    let output = call(&["--connect", nowhere, "agent.hello", "{not json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));

    // Valid params, unreachable server: a runtime failure, exit 1.
    let output = call(&["--connect", nowhere, "conductor.list_agents"]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn serve_refuses_a_bad_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("driver.json");
    std::fs::write(&config, r#"{"device_type": "GPU", "hardware": [{"uuid": "nope"}]}"#).unwrap();
    let output = Command::new(VPROTO)
        .args(["serve", "driver", "--listen", "tcp:127.0.0.1:0", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("driver.json") && stderr.contains("field `hardware[0]"), "{stderr}");
    assert!(output.stdout.is_empty(), "it never listened");

    let output = Command::new(VPROTO)
        .args(["serve", "network", "--listen", "stdio", "--conductor", "unix:/x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--conductor does not apply to `serve network`"), "{stderr}");
}
