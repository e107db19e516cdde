//! Published versions are frozen by the lock; new versions go through `cargo xtask lock`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vproto_codegen::{lock::Lock, Generator};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Writes `schema` and the repository's lock into a temporary directory.
fn setup(schema: &Value) -> (tempfile::TempDir, Generator) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), serde_json::to_string_pretty(schema).unwrap()).unwrap();
    std::fs::copy(repo_file("schema/vproto.lock"), dir.path().join("vproto.lock")).unwrap();
    let generator = Generator::new(dir.path().join("schema.json")).lock_file(dir.path().join("vproto.lock"));
    (dir, generator)
}

fn repo_schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_file("schema/vproto.json")).unwrap()).unwrap()
}

fn new_field(since: &str) -> Value {
    json!({"description": "Queue count.", "since": since, "schema": {"type": "integer"}, "default": 1})
}

#[test]
fn the_repository_schema_matches_its_lock() {
    let generated = Generator::new(repo_file("schema/vproto.json"))
        .lock_file(repo_file("schema/vproto.lock"))
        .generate()
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(generated.unpublished.is_empty(), "unpublished: {:?}", generated.unpublished);
}

#[test]
fn adding_a_field_without_a_new_version_fails_with_a_clear_message() {
    let mut schema = repo_schema();
    schema["objects"]["Network"]["fields"]["queues"] = new_field("1.1");
    let (_dir, generator) = setup(&schema);
    let error = generator.generate().expect_err("the published Network 1.1 changed").to_string();
    assert!(error.contains("the shape of Network 1.1 changed after it was published"), "{error}");
    assert!(error.contains("add a new version to Network's history"), "{error}");
}

#[test]
fn changing_a_type_or_dropping_a_default_fails() {
    let mut schema = repo_schema();
    // integer -> number keeps every example valid, so only the lock objects.
    schema["objects"]["Network"]["fields"]["vlan"]["schema"] = json!({"type": "number"});
    let (_dir, generator) = setup(&schema);
    assert!(generator.generate().unwrap_err().to_string().contains("Network 1.1 changed"));

    let mut schema = repo_schema();
    schema["objects"]["Network"]["fields"]["mtu"].as_object_mut().unwrap().remove("default");
    schema["objects"]["Network"]["fields"]["mtu"]["required"] = json!(false);
    let (_dir, generator) = setup(&schema);
    assert!(generator.generate().unwrap_err().to_string().contains("Network 1.1 changed"));
}

#[test]
fn a_new_version_generates_and_waits_to_be_published() {
    let mut schema = repo_schema();
    let network = &mut schema["objects"]["Network"];
    network["version"] = json!("1.2");
    network["history"].as_array_mut().unwrap().push(json!({"version": "1.2", "note": "Added queues"}));
    network["fields"]["queues"] = new_field("1.2");
    let (dir, generator) = setup(&schema);
    let generated = generator.generate().unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(generated.unpublished, vec!["Network 1.2".to_string()]);
    let rust = generated.rust.joined();
    assert!(rust.contains("pub queues: i64"));
    syn::parse_file(&rust).expect("the generated Rust parses");

    // Publishing it (what `cargo xtask lock` writes) keeps every old fingerprint.
    let old = Lock::parse(&std::fs::read_to_string(dir.path().join("vproto.lock")).unwrap()).unwrap();
    let new = Lock::of(&vproto_codegen::load_schema(&dir.path().join("schema.json")).unwrap());
    for (object, versions) in &old.objects {
        for (version, fingerprint) in versions {
            assert_eq!(&new.objects[object][version], fingerprint, "{object} {version}");
        }
    }
    assert!(new.objects["Network"].contains_key("1.2"));
}

#[test]
fn checked_in_generated_files_are_fresh_and_deterministic() {
    // Configured as xtask's `generator()` is.
    let generator =
        Generator::new(repo_file("schema/vproto.json")).lock_file(repo_file("schema/vproto.lock")).include_documents(
            "../../schema/vproto.schema.json",
            "../../schema/vproto.openrpc.json",
            "../../schema/openrpc",
        );
    let first = generator.generate().unwrap_or_else(|d| panic!("{d}"));
    let second = generator.generate().unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(first.rust, second.rust, "output must be byte-identical across runs");
    for (file, text) in first.rust.files() {
        let checked_in = std::fs::read_to_string(repo_file(&format!("generated/src/{file}"))).unwrap();
        assert!(checked_in == text, "generated/src/{file} is stale: run `cargo xtask codegen`");
        assert!(checked_in.starts_with("// @generated"), "generated files carry the do-not-edit header");
    }
    let meta = std::fs::read_to_string(repo_file("schema/meta.schema.json")).unwrap();
    assert!(meta == first.meta_schema, "schema/meta.schema.json is stale: run `cargo xtask codegen`");
}

fn agent_back(schema: &mut Value) -> &mut Value {
    &mut schema["services"]["conductor"]["events"]["agent_back"]
}

#[test]
fn changing_a_published_event_payload_fails() {
    let mut schema = repo_schema();
    // Still a string, every example still fits: only the lock objects.
    agent_back(&mut schema)["params"]["missing_since"]["schema"] = json!({"type": "string"});
    let (_dir, generator) = setup(&schema);
    let error = generator.generate().expect_err("the published payload changed").to_string();
    assert!(
        error.contains("the payload of conductor.agent_back at protocol version 1.2 changed after it was published"),
        "{error}"
    );
    assert!(error.contains("/services/conductor/events/agent_back") && error.contains("later `since`"), "{error}");

    let mut schema = repo_schema();
    agent_back(&mut schema)["params"]["reason"] =
        json!({"description": "Why it went.", "schema": {"type": "string"}, "required": false});
    let (_dir, generator) = setup(&schema);
    assert!(generator
        .generate()
        .unwrap_err()
        .to_string()
        .contains("conductor.agent_back at protocol version 1.2 changed"));

    let mut schema = repo_schema();
    schema["services"]["conductor"]["events"].as_object_mut().unwrap().remove("agent_back");
    let (_dir, generator) = setup(&schema);
    let error = generator.generate().unwrap_err().to_string();
    assert!(
        error.contains("the event conductor.agent_back was published (1.2) but is no longer in the schema"),
        "{error}"
    );
}

#[test]
fn a_param_added_in_a_new_protocol_version_waits_to_be_published() {
    let mut schema = repo_schema();
    // The protocol version after the schema's current one, whichever that is.
    let current = schema["protocol"]["version"].as_str().unwrap().to_string();
    let (major, minor) = current.split_once('.').unwrap();
    let next = format!("{major}.{}", minor.parse::<u32>().unwrap() + 1);
    schema["protocol"]["version"] = json!(next);
    schema["protocol"]["history"].as_array_mut().unwrap().push(json!({"version": next, "note": "A reason"}));
    agent_back(&mut schema)["params"]["reason"] =
        json!({"description": "Why it went.", "schema": {"type": "string"}, "since": next, "required": false});
    let (dir, generator) = setup(&schema);
    let generated = generator.generate().unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(generated.unpublished, vec![format!("event conductor.agent_back {next}")]);
    assert!(generated.rust.events.contains("reason: Option<String>"));

    let old = Lock::parse(&std::fs::read_to_string(dir.path().join("vproto.lock")).unwrap()).unwrap();
    let new = Lock::of(&vproto_codegen::load_schema(&dir.path().join("schema.json")).unwrap());
    assert_eq!(new.events["conductor.agent_back"]["1.2"], old.events["conductor.agent_back"]["1.2"]);
    assert!(new.events["conductor.agent_back"].contains_key(&next));

    // Moving that `since` once published drops a published version.
    let mut moved = new.clone();
    moved.events.get_mut("conductor.agent_back").unwrap().insert("1.1".into(), "0".repeat(32));
    let mut diagnostics = vproto_codegen::Diagnostics::new("lock");
    moved.verify(&vproto_codegen::load_schema(&dir.path().join("schema.json")).unwrap(), &mut diagnostics);
    assert!(
        diagnostics.to_string().contains("at protocol version 1.1 was published, but no longer changes there"),
        "{diagnostics}"
    );
}

#[test]
fn a_lock_without_events_still_reads() {
    let lock = Lock::parse(r#"{"comment": "", "objects": {"A": {"1.0": "x"}}}"#).unwrap();
    assert!(lock.events.is_empty());
    assert!(!lock.to_text().contains("events"));
}
