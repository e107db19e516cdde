//! `vproto generate`: a user's template directory rendered over vproto's built-in schema or a
//! schema file, with clear failures for a missing directory and a broken template.

use std::{fs, path::Path, process::Command};

fn vproto() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vproto"))
}

fn schema() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/vproto.json").display().to_string()
}

#[test]
fn renders_a_template_directory_with_the_built_in_schema_and_a_schema_file() {
    let templates = tempfile::tempdir().unwrap();
    fs::write(templates.path().join("methods.txt.hbs"), "{{#each methods}}{{wire_name}}\n{{/each}}").unwrap();
    fs::create_dir(templates.path().join("errors")).unwrap();
    fs::write(templates.path().join("errors/[errors].txt.hbs"), "{{item.code}}").unwrap();
    let schema_text: serde_json::Value = serde_json::from_str(&fs::read_to_string(schema()).unwrap()).unwrap();
    let expected: Vec<String> = schema_text["services"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(service, body)| {
            body["methods"].as_object().unwrap().keys().map(move |method| format!("{service}.{method}"))
        })
        .collect();
    for schema_args in [vec![], vec!["--schema".to_string(), schema()]] {
        let out = tempfile::tempdir().unwrap();
        let run = vproto()
            .args(["generate", "--templates"])
            .arg(templates.path())
            .arg("--out")
            .arg(out.path().join("site"))
            .args(&schema_args)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let methods = fs::read_to_string(out.path().join("site/methods.txt")).unwrap();
        assert_eq!(methods.lines().collect::<Vec<_>>(), expected);
        for (name, error) in schema_text["errors"].as_object().unwrap() {
            let code = fs::read_to_string(out.path().join(format!("site/errors/{name}.txt"))).unwrap();
            assert_eq!(code, error["code"].to_string());
        }
        let listed = String::from_utf8_lossy(&run.stdout).lines().count();
        assert_eq!(listed, 1 + schema_text["errors"].as_object().unwrap().len(), "one line per file written");
    }
}

#[test]
fn a_missing_template_directory_is_a_usage_error() {
    let out = tempfile::tempdir().unwrap();
    let run =
        vproto().args(["generate", "--templates", "/nonexistent/templates", "--out"]).arg(out.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/templates"));
}

#[test]
fn a_broken_template_fails_naming_it_and_the_key() {
    let templates = tempfile::tempdir().unwrap();
    fs::write(templates.path().join("broken.txt.hbs"), "{{protocol.nope}}").unwrap();
    let out = tempfile::tempdir().unwrap();
    let run =
        vproto().args(["generate", "--templates"]).arg(templates.path()).arg("--out").arg(out.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("broken.txt.hbs") && stderr.contains("nope"), "{stderr}");
    assert!(!out.path().join("broken.txt").exists(), "nothing is written for a broken template");
}
