//! QEMU's whole QAPI schema (as the crates.io crate qapi-qmp ships it): imported, checked, every
//! command and event accounted for.

mod support;

use vproto_import::qapi;

#[test]
fn the_whole_qapi_schema_imports_and_passes_every_check() {
    let folder = support::qapi_schema_dir();
    let imported = qapi::import(&folder.join("qapi-schema.json")).expect("imports");
    if let Err(diagnostics) = imported.check() {
        panic!("{diagnostics}");
    }
    // What the files declare, read with the parser alone, file by file.
    let (mut commands, mut events) = (0, 0);
    for entry in std::fs::read_dir(&folder).expect("the folder") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a QAPI file");
        for (expression, _, _) in qapi::parse(&text, &path.display().to_string()).expect("parses") {
            commands += usize::from(expression.contains_key("command"));
            events += usize::from(expression.contains_key("event"));
        }
    }
    let schema = &imported.schema;
    let methods: usize = schema.services.values().map(|service| service.methods.len()).sum();
    let imported_events: usize = schema.services.values().map(|service| service.events.len()).sum();
    assert!(commands > 200 && events > 50, "{commands} commands, {events} events");
    assert_eq!(methods, commands, "every command is a method");
    assert_eq!(imported_events, events, "every event is an event");
    let run_state = &schema.services["run_state"];
    assert!(run_state.methods.contains_key("query_status"));
    assert!(run_state.events.contains_key("shutdown"));
    assert_eq!(schema.protocol.name, "qmp");
    assert!(schema.protocol.history.len() > 20, "Since: lines make the history");
    assert!(
        schema.services.values().flat_map(|s| s.methods.values()).any(|m| m.deprecated.is_some()),
        "features: ['deprecated'] are kept"
    );
}

#[test]
fn a_folder_imports_like_its_top_level_file() {
    let folder = support::qapi_schema_dir();
    let from_folder = qapi::import(&folder).expect("imports");
    let from_file = qapi::import(&folder.join("qapi-schema.json")).expect("imports");
    assert_eq!(from_folder.to_text(), from_file.to_text());
}

#[test]
fn a_broken_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{ 'enum': 'A', 'data': [ 'x' ] }\n\n{ 'struct': 'B' 'data': {} }\n").expect("write");
    let error = qapi::import(&path).expect_err("refused").to_string();
    assert!(error.starts_with("bad.json:3:"), "{error}");
    std::fs::write(&path, "{ 'include': 'missing.json' }\n").expect("write");
    let error = qapi::import(&path).expect_err("refused").to_string();
    assert!(error.contains("missing.json"), "{error}");
}
