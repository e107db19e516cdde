//! `vproto convert` as an operator runs it: stdin, stdout, stderr and exit codes.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

fn convert(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vproto"))
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vproto starts");
    // vproto may refuse its arguments before reading stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/vif-openvswitch.json")).unwrap()
}

fn profile() -> String {
    let vif: serde_json::Value = serde_json::from_str(&example()).unwrap();
    vif["versioned_object.data"]["port_profile"].to_string()
}

#[test]
fn converts_stdin_to_stdout() {
    let output = convert(&["--to", "1.1"], &profile());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(out["versioned_object.version"], "1.1");
}

#[test]
fn manifest_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, r#"{"DatapathOffloadBase": "1.0"}"#).unwrap();
    let output = convert(&["--to", "1.3", "--manifest", manifest.to_str().unwrap()], &profile());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn assert_fails(args: &[&str], stdin: &str, words: &str) {
    let output = convert(args, stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(stderr.contains(words), "expected {words:?} in {stderr}");
}

#[test]
fn bad_input_exits_2_with_a_reason() {
    assert_fails(&["--to", "1.1"], "{not json", "stdin is not valid JSON");
    assert_fails(&["--to", "1.9"], &profile(), "newer than the highest supported version 1.4");
    assert_fails(&["--to", "one"], &profile(), "--to: `one` is not a MAJOR.MINOR version");
    assert_fails(
        &["--to", "1.0"],
        &profile().replace("VIFPortProfileOpenVSwitch", "Teapot"),
        "unknown object `Teapot`",
    );
    assert_fails(&["--to", "1.0", "--manifest", "/nonexistent/manifest.json"], &profile(), "--manifest /nonexistent");
}

#[test]
fn bad_manifests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, r#"{"Network": "9.9"}"#).unwrap();
    let path = manifest.to_str().unwrap();
    assert_fails(
        &["--to", "1.0", "--manifest", path],
        &profile(),
        "Network has no version 9.9 (its versions: 1.0, 1.1)",
    );
    std::fs::write(&manifest, r#"{"Ghost": "1.0", "Network": "1.0"}"#).unwrap();
    let output = convert(&["--to", "1.0", "--manifest", path], &profile());
    assert!(output.status.success(), "unknown names are skipped, as oslo does");
    assert!(String::from_utf8_lossy(&output.stderr).contains("ignoring `Ghost`"));
}
