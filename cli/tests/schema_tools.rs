//! `vproto check`, `vproto diff` and `vproto import` as their users run them: exit codes, what
//! they print, the two Done-when pipelines (`import … > x.json && check x.json`), the test
//! command's `diff --against` the last published protocol, and `conform --serve` mocking vdsm's
//! API from the imported schema, and the run-time compatibility policy (`--compat`) applied by a
//! mock and checked by `vproto conform --compat`.

mod conform_support;
#[path = "../../import/tests/support/mod.rs"]
mod support;

use std::{
    io::BufReader,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use conform_support::{connect_when_listening, exchange_line};
use serde_json::{json, Value};

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn vproto(args: &[&str]) -> Output {
    Command::new(VPROTO).args(args).current_dir(workspace()).output().expect("vproto runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn check_prints_counts_and_every_diagnostic() {
    let output = vproto(&["check", "schema/vproto.json", "--lock", "schema/vproto.lock"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("objects") && text(&output).contains("methods"), "{}", text(&output));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("schema/vproto.json")).unwrap()).unwrap();
    schema["protocol"]["version"] = json!("9.9");
    schema["objects"]["Network"]["fields"]["mtu"]["schema"] = json!({"$ref": "#/types/Nope"});
    std::fs::write(&broken, schema.to_string()).unwrap();
    let output = vproto(&["check", broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("/protocol/version"), "{}", text(&output));
    assert!(text(&output).contains("/objects/Network/fields/mtu/schema"), "{}", text(&output));
    let output = vproto(&["check", "/nonexistent/schema.json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// The repository's schema with `edit` applied, written to a temporary file.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("schema/vproto.json")).unwrap()).unwrap();
    edit(&mut schema);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    path
}

#[test]
fn diff_exits_1_on_a_wire_break_0_on_compatible_changes_2_on_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    let old = edited(dir.path(), "old.json", |_| {});
    let removed = edited(dir.path(), "removed.json", |schema| {
        schema["services"]["driver"]["methods"].as_object_mut().unwrap().remove("list_hardware");
    });
    let (old, removed) = (old.to_str().unwrap(), removed.to_str().unwrap());
    let output = vproto(&["diff", old, removed]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("wire-breaking [method-removed] old /services/driver/methods/list_hardware new -"),
        "{}",
        text(&output)
    );
    let output = vproto(&["diff", old, removed, "--allow", "method-removed=/services/driver/methods/list_hardware"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("(allowed)"), "{}", text(&output));
    let output = vproto(&["diff", old, removed, "--json"]);
    let findings: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(findings[0]["rule"], "method-removed");
    let described = edited(dir.path(), "described.json", |schema| {
        schema["services"]["driver"]["methods"]["list_hardware"]["description"] = json!("Lists it.");
    });
    let output = vproto(&["diff", old, described.to_str().unwrap(), "--all"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("compatible [description-changed]"), "{}", text(&output));
    let output = vproto(&["diff", old, "/nonexistent.json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = vproto(&["diff", old, removed, "--allow", "Not A Rule"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(workspace()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The test command's check: the schema as it is now against the last published protocol, the
/// commit that last changed `schema/vproto.lock` (publishing is blessing versions into the lock).
/// A checkout without history cannot be compared: under CI that fails, since CI runs on a clone.
#[test]
fn the_schema_does_not_break_the_last_published_protocol() {
    let Some(published) = git(&["log", "-1", "--format=%H", "--", "schema/vproto.lock"]).filter(|rev| !rev.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs on a git clone, but no commit of schema/vproto.lock was found"
        );
        eprintln!("skipped: not a git checkout with history of schema/vproto.lock");
        return;
    };
    if git(&["rev-parse", "--is-shallow-repository"]).as_deref() == Some("true") {
        eprintln!("note: a shallow clone: the last published protocol found is {published}, the oldest commit this clone has that changed the lock");
    }
    let output = vproto(&["diff", "--against", &published, "schema/vproto.json"]);
    assert!(
        output.status.success(),
        "vproto diff --against {published} (the last published protocol):\n{}",
        text(&output)
    );
    // A break the test would catch: the same comparison of a revision without a published method.
    let dir = tempfile::tempdir().unwrap();
    let broken = edited(dir.path(), "vproto.json", |schema| {
        schema["services"]["network"]["methods"].as_object_mut().unwrap().remove("create_port");
    });
    let output = vproto(&["diff", &published_file(&published), broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

/// The schema at `rev`, written to a temporary file.
fn published_file(rev: &str) -> String {
    let text = git(&["show", &format!("{rev}:schema/vproto.json")]).expect("git show the published schema");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("published-vproto.json");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `vproto import KIND SOURCE -o OUT --quiet`, which must succeed.
fn import_to(kind: &str, source: &Path, out: &Path) {
    let output = vproto(&["import", kind, source.to_str().unwrap(), "-o", out.to_str().unwrap(), "--quiet"]);
    assert!(output.status.success(), "{}", text(&output));
}

/// `vproto import vdsm … > vdsm.json && vproto check vdsm.json` reports every verb and type.
#[test]
fn vdsm_imports_and_checks_with_every_verb_and_type() {
    let corpus = support::vdsm_corpus();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(VPROTO)
        .args(["import", "vdsm"])
        .arg(corpus.join("vdsm-api.yml"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("vproto import: note: vdsm-api.yml: "),
        "notes name the file"
    );
    let schema = dir.path().join("vdsm.json");
    std::fs::write(&schema, &output.stdout).unwrap();
    let output = vproto(&["check", schema.to_str().unwrap(), "--list"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(listed.lines().filter(|line| line.trim_start().starts_with("method ")).count(), 205, "every verb");
    let types = listed
        .lines()
        .filter(|line| line.trim_start().starts_with("type ") || line.trim_start().starts_with("object "))
        .count();
    assert_eq!(types, 372, "every type");
    assert!(listed.contains("method host.fence_node (wire Host.fenceNode)"), "{listed}");
}

/// The same for QEMU's QAPI schema, with every command and event.
#[test]
fn qapi_imports_and_checks_with_every_command_and_event() {
    let folder = support::qapi_schema_dir();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("qmp.json");
    import_to("qapi", &folder.join("qapi-schema.json"), &schema);
    let output = vproto(&["check", schema.to_str().unwrap(), "--list"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    let (mut commands, mut events) = (0, 0);
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (expression, _, _) in vproto_import::qapi::parse(&text, &path.display().to_string()).unwrap() {
            commands += usize::from(expression.contains_key("command"));
            events += usize::from(expression.contains_key("event"));
        }
    }
    assert_eq!(
        listed.lines().filter(|line| line.trim_start().starts_with("method ")).count(),
        commands,
        "every command"
    );
    assert_eq!(listed.lines().filter(|line| line.trim_start().starts_with("event ")).count(), events, "every event");
    assert!(
        listed.contains("method run_state.query_status (wire query-status)")
            && listed.contains("event run_state.shutdown (wire SHUTDOWN)"),
        "{listed}"
    );
}

/// `vproto conform --serve` mocks vdsm's API from the imported schema's OpenRPC description,
/// called as vdsm's clients call vdsm (`Host.fenceNode`, `volumeID`): a valid call is answered
/// with a result of the declared shape under vdsm's member names, the schema's own names are not
/// vdsm's and are refused, an invalid call is refused and the client judged.
#[test]
fn conform_serve_mocks_vdsm_from_the_import() {
    let corpus = support::vdsm_corpus();
    let dir = tempfile::tempdir().unwrap();
    let (schema, openrpc) = (dir.path().join("vdsm.json"), dir.path().join("vdsm.openrpc.json"));
    import_to("vdsm", &corpus.join("vdsm-api.yml"), &schema);
    let output = vproto(&["check", schema.to_str().unwrap(), "--openrpc", openrpc.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let socket = dir.path().join("mock.sock");
    let report = dir.path().join("report.json");
    let mut mock = Command::new(VPROTO)
        .args(["conform", "--serve", &format!("unix:{}", socket.display()), "--sessions", "1", "--timeout", "60s"])
        .args(["--schema", openrpc.to_str().unwrap(), "--report", "json", "--out", report.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stream = connect_when_listening(&socket);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut call = |request: Value| exchange_line(&stream, &mut reader, &request);
    let params = json!({"addr": "192.0.2.1", "port": 623, "agent": "ipmilan", "username": "u", "password": "p", "action": "status"});
    let answer = call(json!({"jsonrpc": "2.0", "id": 1, "method": "Host.fenceNode", "params": params}));
    let result = answer["result"].as_object().unwrap_or_else(|| panic!("a FenceNodeResult object: {answer}"));
    let known = ["power", "operationStatus"];
    assert!(result.keys().all(|key| known.contains(&key.as_str())), "only FenceNodeResult's members: {answer}");
    if let Some(power) = result.get("power") {
        assert!(power.is_string(), "{answer}");
    }
    // vdsm's camelCase params, by name: `Volume.setDescription` answers vdsm's status (true).
    let uuid = "6c7b0fbc-50d4-4a36-a8a5-0b1c2d3e4f50";
    let params =
        json!({"volumeID": uuid, "storagepoolID": uuid, "storagedomainID": uuid, "imageID": uuid, "description": "d"});
    let answer = call(json!({"jsonrpc": "2.0", "id": 2, "method": "Volume.setDescription", "params": params}));
    assert_eq!(answer["result"], json!(true), "{answer}");
    // The schema's names are not vdsm's wire names.
    let answer = call(json!({"jsonrpc": "2.0", "id": 3, "method": "host.fence_node", "params": {}}));
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    let params = json!({"volume_id": uuid, "storagepool_id": uuid, "storagedomain_id": uuid, "image_id": uuid, "description": "d"});
    let answer = call(json!({"jsonrpc": "2.0", "id": 4, "method": "Volume.setDescription", "params": params}));
    assert_eq!(answer["error"]["code"], -32602, "snake_case params are not vdsm's: {answer}");
    let answer = call(json!({"jsonrpc": "2.0", "id": 5, "method": "Host.fenceNode", "params": {"addr": 5}}));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    drop(reader);
    drop(stream);
    let status = mock.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the client sent an invalid request: the run fails");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let case = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["id"] == "serve/Host.fenceNode/request-valid")
        .expect("judged");
    assert_eq!(case["status"], "fail", "{case}");
}

/// A schema with one deprecated method, one deprecated param and one deprecated result field,
/// beside their current twins, as `vproto check --openrpc` describes it.
fn deprecating_openrpc(dir: &Path) -> PathBuf {
    let schema = json!({
        "protocol": {"name": "inventory", "description": "An inventory.", "version": "1.1",
                     "history": [{"version": "1.0", "note": "First"}, {"version": "1.1", "note": "Deprecations"}]},
        "objects": {
            "Item": {"description": "An item.", "wire": "plain", "version": "1.0",
                     "history": [{"version": "1.0", "note": "First"}],
                     "fields": {
                         "id": {"description": "Its id.", "since": "1.0", "schema": {"type": "string"}},
                         "weight": {"description": "Pounds.", "since": "1.0", "deprecated": "1.0",
                                    "schema": {"type": "integer"}}
                     }}
        },
        "services": {"stock": {"description": "The stock.", "since": "1.0", "methods": {
            "get": {"description": "Reads an item.", "since": "1.0",
                    "params": {
                        "id": {"description": "The item.", "schema": {"type": "string"}},
                        "legacy_format": {"description": "Old.", "required": false, "since": "1.0",
                                          "deprecated": "1.1", "schema": {"type": "boolean"}}
                    },
                    "result": {"object": "Item"}},
            "fetch": {"description": "The old name of get.", "since": "1.0", "deprecated": "1.1",
                      "params": {"id": {"description": "The item.", "schema": {"type": "string"}}},
                      "result": {"object": "Item"}}
        }}}
    });
    let (path, openrpc) = (dir.join("inventory.json"), dir.join("inventory.openrpc.json"));
    std::fs::write(&path, schema.to_string()).unwrap();
    let output = vproto(&["check", path.to_str().unwrap(), "--openrpc", openrpc.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    openrpc
}

/// A `vproto conform --serve` mock of `openrpc` on `socket`, applying `compat` when given.
fn mock(openrpc: &Path, socket: &Path, compat: Option<&str>) -> std::process::Child {
    let mut command = Command::new(VPROTO);
    command
        .args(["conform", "--serve", &format!("unix:{}", socket.display()), "--timeout", "60s"])
        .args(["--schema", openrpc.to_str().unwrap()]);
    if let Some(policy) = compat {
        command.args(["--compat", policy]);
    }
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    drop(connect_when_listening(socket));
    child
}

/// The compatibility policy end to end: a mock applying
/// `deprecated-input=reject,deprecated-output=hide` refuses the deprecated method (-32601) and
/// param (-32602 naming it) and hides the deprecated result field; `vproto conform --compat`
/// passes it, and fails a mock that ignores the policy, case by case.
#[test]
fn compat_policy_is_applied_by_the_mock_and_checked_by_conform() {
    let dir = tempfile::tempdir().unwrap();
    let openrpc = deprecating_openrpc(dir.path());
    let policy = "deprecated-input=reject,deprecated-output=hide";
    let (strict, lax) = (dir.path().join("strict.sock"), dir.path().join("lax.sock"));
    let mut strict_mock = mock(&openrpc, &strict, Some(policy));
    let mut lax_mock = mock(&openrpc, &lax, None);

    let stream = connect_when_listening(&strict);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut call = |method: &str, params: Value| {
        exchange_line(&stream, &mut reader, &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    };
    let answer = call("stock.fetch", json!({"id": "a"}));
    assert_eq!(answer["error"]["code"], -32601, "a deprecated method is refused: {answer}");
    let answer = call("stock.get", json!({"id": "a", "legacy_format": true}));
    assert_eq!(answer["error"]["code"], -32602, "a deprecated param is refused: {answer}");
    assert!(answer["error"].to_string().contains("legacy_format"), "the refusal names the param: {answer}");
    let answer = call("stock.get", json!({"id": "a"}));
    let item = answer["result"].as_object().unwrap_or_else(|| panic!("an Item: {answer}"));
    assert!(item.contains_key("id") && !item.contains_key("weight"), "the deprecated field is hidden: {answer}");

    let conform = |socket: &Path| {
        let target = format!("unix:{}", socket.display());
        vproto(&["conform", "--target", &target, "--schema", openrpc.to_str().unwrap(), "--compat", policy])
    };
    let output = conform(&strict);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("0 failed"), "{}", text(&output));
    let output = conform(&lax);
    assert_eq!(output.status.code(), Some(1), "a mock ignoring the policy fails: {}", text(&output));
    for case in [
        "compat/stock.fetch/deprecated-method",
        "compat/stock.get/deprecated-param/legacy_format",
        "compat/stock.get/result",
    ] {
        assert!(
            text(&output).contains(&format!("FAIL [unix:{}] {case}", lax.display())),
            "{case} fails: {}",
            text(&output)
        );
    }
    // The reference services take the same policy; a bad one is a usage error naming it.
    let socket = dir.path().join("driver.sock");
    let output = vproto(&[
        "serve",
        "driver",
        "--listen",
        &format!("unix:{}", socket.display()),
        "--compat",
        "deprecated-input=maybe",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("deprecated-input is accept or reject, not `maybe`"), "{}", text(&output));
    for child in [&mut strict_mock, &mut lax_mock] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
