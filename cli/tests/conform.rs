//! `vproto conform` as a user runs it: the reference services pass over every transport, the
//! reports parse, known failures behave as documented, a method no successful result was
//! checked for fails the run until fixtures give data the target has, and serve mode judges
//! real clients.

mod conform_support;

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use conform_support::{
    connect_when_listening, exchange_line, write_own_network_config, write_own_network_fixtures, OWN_NETWORK,
};
use serde_json::{json, Map, Value};
use vproto_conformance::Description;
use vproto_support::wire::Manifest;

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

fn conform(args: &[&str]) -> Output {
    Command::new(VPROTO).arg("conform").args(args).stdin(Stdio::null()).output().expect("vproto starts")
}

/// The network host's config: the network of the schema's `network.create_port` example.
fn network_config(dir: &Path) -> PathBuf {
    let path = dir.join("network.json");
    let config = json!({"networks": [{
        "id": "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50", "label": "private", "bridge": "br-int", "mtu": 1450,
        "subnets": [{"cidr": "10.0.0.0/26", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
    }]});
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn driver_config() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/driver.json").to_string()
}

/// A `vproto serve` process, killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(VPROTO)
        .arg("serve")
        .args(args)
        // A conductor's state is its own, not the machine's default file other tests share.
        .args(if args.first() == Some(&"conductor") { &["--state", "memory"][..] } else { &[] })
        .args(["--log", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("vproto serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(!line.trim().is_empty(), "vproto serve {args:?} printed no address");
    Served { child, addr: line.trim().to_string() }
}

/// Runs the suite with a JSON report and returns (exit code, report).
fn run_json(args: &[&str], dir: &Path) -> (Option<i32>, Value) {
    let out = dir.join("report.json");
    let output = conform(&[args, &["--report", "json", "--out", out.to_str().unwrap()]].concat());
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("no report ({e}); stderr: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), serde_json::from_str(&text).unwrap())
}

fn assert_all_pass(code: Option<i32>, report: &Value, at_least: usize) {
    let cases = report["cases"].as_array().unwrap();
    let failed: Vec<&Value> = cases.iter().filter(|c| c["status"] != "pass").collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    assert_eq!(report["summary"]["uncovered"], json!([]), "uncovered methods: {:#}", report["coverage"]);
    assert_eq!(code, Some(0));
    assert!(cases.len() >= at_least, "only {} cases ran", cases.len());
    assert_eq!(report["summary"]["total"], cases.len());
}

#[test]
fn reference_services_pass_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "conformance-secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let network = network_config(dir.path());
    let unix = format!("unix:{}", dir.path().join("driver.sock").display());
    let driver = serve(&["driver", "--listen", &unix, "--config", &driver_config()]);
    let (code, report) = run_json(&["--target", &driver.addr], dir.path());
    assert_all_pass(code, &report, 30);

    // The conductor fans conductor.list_hardware out to its agents: the agents the suite
    // registers must be reachable for a result to come back, so the fixtures register a real one.
    let token_file = token.to_str().unwrap();
    let agent = serve(&["agent", "--listen", "tcp:127.0.0.1:0", "--token-file", token_file]);
    let agent_endpoint = agent.addr.strip_prefix("tcp:").expect("a tcp: address");
    let fixtures = dir.path().join("fixtures.json");
    let registration = json!({"endpoint": agent_endpoint, "status": "READY"});
    std::fs::write(&fixtures, json!({"conductor.hello": {"registration": registration}}).to_string()).unwrap();
    let conductor = serve(&["conductor", "--listen", "tcp:127.0.0.1:0", "--token-file", token_file]);
    let with_token = ["--target", conductor.addr.as_str(), "--token-file", token_file];
    let (code, report) = run_json(&[&with_token[..], &["--fixtures", fixtures.to_str().unwrap()]].concat(), dir.path());
    assert_all_pass(code, &report, 40);
    // Without the token the target cannot be tested at all: exit 2, not a pass.
    assert_eq!(conform(&["--target", &conductor.addr]).status.code(), Some(2));

    let http = serve(&[
        "network",
        "--listen",
        "http://127.0.0.1:0",
        "--config",
        network.to_str().unwrap(),
        "--token-file",
        token_file,
    ]);
    let (code, report) = run_json(&["--target", &http.addr, "--token-file", token_file], dir.path());
    assert_all_pass(code, &report, 100);
    let rest = report["cases"].as_array().unwrap().iter().filter(|c| c["id"].as_str().unwrap().starts_with("rest/"));
    assert_eq!(rest.count(), 1, "the REST route of network.create_port is tested over HTTP");
    let refused = conform(&["--target", &http.addr]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token-file"));

    let exec = format!("exec:{VPROTO} serve network --listen stdio --log error --config {}", network.display());
    let (code, report) = run_json(&["--target", &exec], dir.path());
    assert_all_pass(code, &report, 100);
    let ids: Vec<&str> = report["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    for wanted in [
        "protocol/notification-no-reply",
        "protocol/batch/all-notifications",
        "method/network.create_port/valid/example-1/by-position",
        "method/network.create_port/invalid/constraint/network_id/format",
        "negotiation/network.create_port/host_info/newer",
        "negotiation/network.create_port/host_info/nested/HostVIFInfo/older/1.0",
    ] {
        assert!(ids.contains(&wanted), "{wanted} did not run");
    }
}

#[test]
fn reference_mode_passes_and_every_report_format_parses() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run_json(&["--reference"], dir.path());
    assert_all_pass(code, &report, 250);
    let targets: std::collections::BTreeSet<&str> =
        report["cases"].as_array().unwrap().iter().map(|c| c["target"].as_str().unwrap()).collect();
    let services = ["agent", "conductor", "driver", "guest", "network"];
    assert_eq!(targets.into_iter().collect::<Vec<_>>(), services);
    let total = report["summary"]["total"].as_u64().unwrap();
    // Every method of the five services got a successful result checked.
    let coverage = report["coverage"].as_array().unwrap();
    let tested =
        Description::published().unwrap().methods.iter().filter(|m| services.contains(&m.service.as_str())).count();
    assert_eq!(coverage.len(), tested, "{coverage:#?}");
    assert!(coverage.iter().all(|c| c["covered"] == true && c["valid_results"].as_u64() > Some(0)), "{coverage:#?}");
    let methods = coverage.len() as u64;

    let junit = dir.path().join("report.xml");
    let output = conform(&["--reference", "--report", "junit", "--out", junit.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut testcases, mut failures, mut suites) = (0u64, 0u64, 0u64);
    loop {
        match reader.read_event().expect("the JUnit report is well-formed XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => testcases += 1,
                b"failure" => failures += 1,
                b"testsuite" => suites += 1,
                b"testsuites" => {
                    let tests = e.try_get_attribute("tests").unwrap().unwrap();
                    assert_eq!(tests.unescape_value().unwrap(), (total + methods).to_string());
                }
                _ => {}
            },
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    // One testcase per case, and one `coverage/<method>` per method.
    assert_eq!((testcases, failures, suites), (total + methods, 0, services.len() as u64));
    assert!(xml.contains(r#"<testcase name="coverage/network.create_port" classname="network""#), "{xml}");

    let output = conform(&["--reference", "--only", "protocol/id"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0));
    // Seven ids per service.
    assert!(text.contains("PASS: 35 cases, 35 passed, 0 failed"), "{text}");
}

#[test]
fn known_failures_are_expected_and_stale_entries_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("known-failures.txt");
    std::fs::write(&list, "# this server is fine\nprotocol/id/large   # listed, but passes\nprotocol/batch/*\n")
        .unwrap();
    let args =
        ["--reference", "--services", "driver", "--only", "protocol", "--known-failures", list.to_str().unwrap()];
    let (code, report) = run_json(&args, dir.path());
    assert_eq!(code, Some(1), "a listed case that passes fails the run");
    let status =
        |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("protocol/id/large"), "now-passing");
    assert_eq!(status("protocol/batch/mixed"), "now-passing");
    assert_eq!(status("protocol/id/null"), "pass");

    std::fs::write(&list, "protocol/id/large extra words\n").unwrap();
    let output = conform(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("known-failures.txt:1"));
}

#[test]
fn the_suite_derives_from_any_description_file() {
    let dir = tempfile::tempdir().unwrap();
    let published = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/vproto.openrpc.json");
    let (code, report) = run_json(&["--reference", "--schema", published], dir.path());
    assert_all_pass(code, &report, 250);
    // A description without the network's examples still yields generated calls for it.
    let mut document: Value = serde_json::from_str(&std::fs::read_to_string(published).unwrap()).unwrap();
    for method in document["methods"].as_array_mut().unwrap() {
        if method["name"] == "network.create_port" {
            method["examples"] = json!([]);
        }
    }
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, document.to_string()).unwrap();
    let args = ["--reference", "--services", "network", "--schema", edited.to_str().unwrap()];
    // Generated values name no network the host has: every case passes, yet no result was
    // checked, so the run fails naming the method.
    let (code, report) = run_json(&args, dir.path());
    assert_eq!(code, Some(1));
    assert!(report["cases"].as_array().unwrap().iter().all(|c| c["status"] == "pass"));
    assert_eq!(report["summary"]["uncovered"], json!(["network.create_port"]));
    let ids: Vec<&str> = report["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&"method/network.create_port/valid/example-1"));
    assert!(ids.contains(&"method/network.create_port/valid/generated-1"));
    // Fixtures with the host's network and a HostInfo it can serve make the generated calls succeed.
    let example = example_params("network.create_port");
    let fixtures = dir.path().join("fixtures.json");
    let given =
        json!({"network.create_port": {"network_id": example["network_id"], "host_info": example["host_info"]}});
    std::fs::write(&fixtures, given.to_string()).unwrap();
    let (code, report) = run_json(&[&args[..], &["--fixtures", fixtures.to_str().unwrap()]].concat(), dir.path());
    assert_all_pass(code, &report, 40);

    std::fs::write(&edited, r#"{"methods": [{"params": []}]}"#).unwrap();
    let output = conform(&["--reference", "--schema", edited.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/methods/0/name"));
}

/// Issue #11: a network host configured with its own networks answers every call the suite
/// can make on its own with NetworkNotFound. Every case passes, but no result is ever checked:
/// the run fails naming the method in every report format, until `--allow-uncovered` or, better,
/// fixtures naming a network the host has.
#[test]
fn a_host_with_its_own_data_is_uncovered_until_fixtures_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_own_network_config(dir.path());
    let socket = format!("unix:{}", dir.path().join("network.sock").display());
    let network = serve(&["network", "--listen", &socket, "--config", config.to_str().unwrap()]);
    let target = ["--target", network.addr.as_str()];

    let (code, report) = run_json(&target, dir.path());
    assert_eq!(code, Some(1), "an uncovered method fails the run");
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.iter().all(|c| c["status"] == "pass"), "no case can see anything wrong");
    assert_eq!(report["summary"]["success"], false);
    assert_eq!(report["summary"]["uncovered"], json!(["network.create_port"]));
    let coverage = &report["coverage"][0];
    assert_eq!(
        (coverage["method"].as_str(), coverage["covered"].as_bool()),
        (Some("network.create_port"), Some(false))
    );
    assert_eq!(coverage["results"], 0);
    assert!(coverage["declared_errors"]["NetworkNotFound"].as_u64() > Some(0), "{coverage:#}");
    assert!(coverage["why"].as_str().unwrap().contains("--fixtures"), "{coverage:#}");

    let text = conform(&target);
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.contains(&format!("UNCOVERED [{}] network.create_port: ", network.addr)), "{stdout}");
    assert!(stdout.contains("FAIL: ") && stdout.contains("1 of 1 method uncovered (network.create_port)"), "{stdout}");
    let stderr = String::from_utf8(text.stderr).unwrap();
    assert!(stderr.contains("uncovered (no successful result checked): network.create_port"), "{stderr}");

    let junit = dir.path().join("report.xml");
    let output = conform(&[&target[..], &["--report", "junit", "--out", junit.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let testcase = xml.split("<testcase ").find(|t| t.starts_with(r#"name="coverage/network.create_port""#));
    assert!(testcase.expect("a coverage testcase").contains("<failure message=\"uncovered: "), "{xml}");

    // Allowed: still named, no longer failing.
    let (code, report) = run_json(&[&target[..], &["--allow-uncovered"]].concat(), dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(report["summary"]["uncovered"], json!(["network.create_port"]));
    assert_eq!(report["summary"]["allow_uncovered"], true);

    // Fixtures naming the host's own network: the valid calls succeed and their results are checked.
    let fixtures = write_own_network_fixtures(dir.path());
    let (code, report) = run_json(&[&target[..], &["--fixtures", fixtures.to_str().unwrap()]].concat(), dir.path());
    assert_all_pass(code, &report, 100);
    let coverage = &report["coverage"][0];
    assert_eq!(coverage["covered"], true, "{coverage:#}");
    assert!(coverage["valid_results"].as_u64() > Some(0), "{coverage:#}");
    let example =
        report["cases"].as_array().unwrap().iter().find(|c| c["id"] == "method/network.create_port/valid/example-1");
    let example = example.expect("the example still runs, with the fixture");
    assert!(example["request"].as_str().unwrap().contains(OWN_NETWORK), "{example:#}");
    assert!(example["response"].as_str().unwrap().contains("\"result\""), "{example:#}");
}

/// A fixtures file that cannot be used is refused before any case runs, naming the method,
/// the param and why, with the exit code of the command's other usage errors.
#[test]
fn bad_fixtures_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fixtures.json");
    let path = file.to_str().unwrap();
    let cases: [(&str, &[&str]); 7] = [
        ("{", &["not JSON"]),
        ("[]", &["a JSON object keyed by method name", "got an array"]),
        (r#"{"network.no_such_method": {}}"#, &["`network.no_such_method` is not a method", "network.create_port"]),
        (r#"{"network.create_port": "x"}"#, &["`network.create_port`", "object of param values", "got a string"]),
        (r#"{"network.create_port": {"network": "x"}}"#, &["`network` is not one of its params", "network_id"]),
        (
            r#"{"network.create_port": {"network_id": "not-a-uuid"}}"#,
            &["`network.create_port` param `network_id`", "\"not-a-uuid\"", "uuid"],
        ),
        (r#"{"network.create_port": {"port_id": 7}}"#, &["param `port_id`", "7 does not fit", "string"]),
    ];
    for (text, words) in cases {
        std::fs::write(&file, text).unwrap();
        let output = conform(&["--reference", "--fixtures", path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(&format!("--fixtures {path}: ")), "{text}: {stderr}");
        for word in words {
            assert!(stderr.contains(word), "{text}: `{word}` missing from {stderr}");
        }
        assert!(output.stdout.is_empty(), "{text}: no case ran");
    }
    let missing = conform(&["--reference", "--fixtures", dir.path().join("absent.json").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.json: cannot read it"));
    // Serve mode calls no method: fixtures and --allow-uncovered do not apply.
    for flag in [&["--fixtures", path][..], &["--allow-uncovered"]] {
        let output = conform(&[&["--serve", "stdio", "--out", "x.json"][..], flag].concat());
        assert_eq!(output.status.code(), Some(2), "{flag:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for (args, words) in [
        (vec!["--target", "ftp://x"], "--target"),
        (vec!["--reference", "--report", "xml"], "--report"),
        (vec!["--reference", "--only", "["], "--only"),
        (vec!["--reference", "--services", "nosuch"], "nosuch"),
        (vec!["--reference", "--only", "no/such/case"], "no case ran"),
        (vec!["--serve", "http://127.0.0.1:0", "--sessions", "1"], "--sessions"),
        (vec!["--serve", "stdio"], "--out"),
        (vec![], "--target"),
    ] {
        let output = conform(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(words), "{args:?}");
    }
}

/// A line client of the mock: sends the request, returns the answer.
fn call(stream: &UnixStream, reader: &mut BufReader<UnixStream>, id: u64, method: &str, params: &Value) -> Value {
    exchange_line(stream, reader, &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// Starts `vproto conform --serve` on a Unix socket for one session.
fn mock(dir: &Path) -> (Child, PathBuf, PathBuf) {
    let socket = dir.join("mock.sock");
    let report = dir.join("serve.json");
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(VPROTO)
        .args(["conform", "--serve", &format!("unix:{}", socket.display()), "--sessions", "1"])
        .args(["--timeout", "30s", "--report", "json", "--out", report.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    (child, socket, report)
}

fn example_params(method: &str) -> Value {
    let description = Description::published().unwrap();
    let example = &description.method_named(method).unwrap().examples[0];
    Value::Object(example.params.iter().cloned().collect::<Map<String, Value>>())
}

/// Relabels every `name` object in `value` as `version`, keeping its fields: a fake backlevel.
fn relabel(value: &mut Value, name: &str, version: &str) {
    match value {
        Value::Object(map) => {
            if map.get("versioned_object.name") == Some(&json!(name)) {
                map.insert("versioned_object.version".into(), json!(version));
            }
            map.values_mut().for_each(|v| relabel(v, name, version));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relabel(v, name, version)),
        _ => {}
    }
}

/// Serve mode: a client that backlevels passes; one that resends the same object, or only
/// relabels it, fails.
#[test]
fn serve_mode_checks_that_clients_backlevel() {
    for client in ["backlevels", "resends", "relabels"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, socket, report) = mock(dir.path());
        let stream = connect_when_listening(&socket);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let listed = call(&stream, &mut reader, 1, "driver.list_hardware", &json!({}));
        assert!(listed["result"]["hardware"].is_array(), "{listed}");
        let mut params = example_params("network.create_port");
        let answer = call(&stream, &mut reader, 2, "network.create_port", &params);
        assert_eq!(answer["error"]["code"], 1000, "the mock negotiates first: {answer}");
        let object = answer["error"]["data"]["object"].as_str().unwrap().to_string();
        let version = answer["error"]["data"]["max_version"].as_str().unwrap().to_string();
        match client {
            "backlevels" => {
                let manifest: Manifest = [(object, version.parse().unwrap())].into_iter().collect();
                params["host_info"] =
                    vproto_api::convert_primitive(&params["host_info"], None, Some(&manifest)).unwrap();
            }
            "relabels" => relabel(&mut params, &object, &version),
            _ => {}
        }
        let retried = call(&stream, &mut reader, 3, "network.create_port", &params);
        assert!(retried.get("result").is_some(), "{retried}");
        drop((stream, reader));
        let status = child.wait().unwrap();
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let case = |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned();
        assert_eq!(case("serve/driver.list_hardware/request-valid").unwrap()["status"], "pass");
        assert_eq!(case("serve/network.create_port/request-valid").unwrap()["status"], "pass");
        let retry = case("serve/network.create_port/backlevel-retry").expect("the retry is judged");
        match client {
            "backlevels" => {
                assert_eq!(retry["status"], "pass", "{report:#}");
                assert_eq!(status.code(), Some(0));
            }
            _ => {
                assert_eq!(retry["status"], "fail", "{client}: {report:#}");
                assert_eq!(status.code(), Some(1));
            }
        }
        if client == "relabels" {
            assert!(retry["why"].as_str().unwrap().contains("supported_port_profiles"), "{retry}");
        }
    }
}

#[test]
fn an_agent_over_http_takes_the_seeds_flat_hello_body_and_the_wrapped_one() {
    let dir = tempfile::tempdir().unwrap();
    let agent = serve(&["agent", "--listen", "http://127.0.0.1:0", "--insecure"]);
    // The suite's hellos announce drivers that do not exist, so the agent's fan-out methods
    // have no result to check here: coverage is not what this test is about.
    let (code, report) = run_json(&["--target", &agent.addr, "--allow-uncovered"], dir.path());
    let failed: Vec<&Value> = report["cases"].as_array().unwrap().iter().filter(|c| c["status"] != "pass").collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    assert_eq!(code, Some(0));
    let passed: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "pass")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for wanted in ["rest/agent.hello/example-1", "rest/agent.hello/example-1/wrapped"] {
        assert!(passed.contains(&wanted), "{wanted} not among {passed:#?}");
    }
}
