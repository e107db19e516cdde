//! Data trees in the schema language: broken layouts give precise errors
//! (pointer, what, how to fix), and the emitter describes valid ones.

mod common;

use common::assert_error;
use serde_json::{json, Value};
use vproto_codegen::{parse_schema, Generator};

/// A small valid schema with one data tree; each test breaks it in one place.
fn base() -> Value {
    json!({
        "protocol": {"name": "t", "description": "test", "version": "1.0",
                     "history": [{"version": "1.0", "note": "first"}]},
        "types": {
            "Mac": {"description": "a MAC", "since": "1.0", "schema": {"type": "string", "format": "mac-address"}}
        },
        "objects": {
            "Port": {"description": "p", "wire": "plain", "version": "1.0",
                     "history": [{"version": "1.0", "note": "a"}],
                     "fields": {
                         "mac": {"description": "m", "since": "1.0", "schema": {"$ref": "#/types/Mac"}},
                         "name": {"description": "n", "since": "1.0", "schema": {"type": "string"}},
                         "up": {"description": "u", "since": "1.0", "schema": {"type": "boolean"}},
                         "mtu": {"description": "mtu", "since": "1.0", "schema": {"type": "integer", "minimum": 68},
                                 "required": false},
                         "tags": {"description": "t", "since": "1.0",
                                  "schema": {"type": "array", "items": {"type": "string"}}, "default": []}
                     }},
            "Host": {"description": "h", "wire": "plain", "version": "1.0", "tolerate_unknown_fields": true,
                     "history": [{"version": "1.0", "note": "a"}],
                     "fields": {
                         "layout": {"description": "l", "since": "1.0", "schema": {"type": "string"}},
                         "ports": {"description": "p", "since": "1.0",
                                   "schema": {"type": "array", "items": {"object": "Port"}},
                                   "child_versions": {"1.0": "1.0"}}
                     }}
        },
        "data_trees": {
            "host_v1": {
                "description": "a host tree", "object": "Host", "root": "data/host",
                "version_key": "meta/layout", "layout_version": "1.0.0",
                "history": [{"version": "1.0.0", "note": "first"}],
                "paths": {
                    "layout": {"path": "meta/layout"},
                    "ports": {"path": "ports/{key}", "key": "mac", "fields": {
                        "mac": {"path": "mac"}, "name": {"path": "name"}, "up": {"path": "state/up"},
                        "mtu": {"path": "mtu"}
                    }}
                }
            }
        }
    })
}

const PORTS: &str = "/data_trees/host_v1/paths/ports";

#[test]
fn the_base_schema_is_valid() {
    parse_schema(&base().to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn unknown_field() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ghost"] = json!({"path": "ghost"});
    assert_error(&schema, "/data_trees/host_v1/paths/ghost", "Host has no field `ghost`");
}

#[test]
fn paths_stay_inside_the_tree() {
    for bad in ["../escape", "/abs", "a//b", "a/./b", "sp ace", ""] {
        let mut schema = base();
        schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"]["name"]["path"] = json!(bad);
        assert_error(&schema, &format!("{PORTS}/fields/name/path"), "is not a relative path");
    }
    let mut schema = base();
    schema["data_trees"]["host_v1"]["root"] = json!("data/../x");
    assert_error(&schema, "/data_trees/host_v1/root", "is not a relative Xenstore path");
}

#[test]
fn a_list_needs_a_key_and_a_placeholder() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["path"] = json!("ports");
    assert_error(&schema, &format!("{PORTS}/path"), "must end in `/{key}`");
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"].as_object_mut().unwrap().remove("key");
    assert_error(&schema, PORTS, "names no `key` field");
}

#[test]
fn free_text_never_names_entries() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["key"] = json!("name");
    assert_error(&schema, &format!("{PORTS}/key"), "Port.name cannot name entries");
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["key"] = json!("nope");
    assert_error(&schema, &format!("{PORTS}/key"), "Port has no field `nope`");
}

#[test]
fn the_key_field_keeps_its_own_path() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"].as_object_mut().unwrap().remove("mac");
    assert_error(&schema, &format!("{PORTS}/fields"), "the key field `mac` has no path of its own");
}

#[test]
fn scalars_take_no_key_or_placeholder() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"]["name"]["path"] = json!("names/{key}");
    assert_error(&schema, &format!("{PORTS}/fields/name"), "is a single value");
}

#[test]
fn paths_may_not_overlap() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"]["name"]["path"] = json!("state");
    assert_error(&schema, &format!("{PORTS}/fields/up/path"), "`state/up` overlaps the path of `name`");
}

#[test]
fn required_fields_need_a_path() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"].as_object_mut().unwrap().remove("up");
    assert_error(&schema, &format!("{PORTS}/fields"), "Port.up is required but the tree gives it no path");
}

#[test]
fn lists_of_scalars_and_maps_cannot_be_laid_out() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["paths"]["ports"]["fields"]["tags"] = json!({"path": "tags"});
    assert_error(&schema, &format!("{PORTS}/fields/tags"), "a list of values other than objects");
}

#[test]
fn the_version_key_is_a_mapped_string() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["version_key"] = json!("meta/other");
    assert_error(&schema, "/data_trees/host_v1/version_key", "is not the path of a string field");
}

#[test]
fn layout_history_ascends() {
    let mut schema = base();
    schema["data_trees"]["host_v1"]["history"] =
        json!([{"version": "1.1.0", "note": "b"}, {"version": "1.0.0", "note": "a"}]);
    assert_error(&schema, "/data_trees/host_v1/history/1/version", "does not come after");
    let mut schema = base();
    schema["data_trees"]["host_v1"]["layout_version"] = json!("1.2.0");
    assert_error(&schema, "/data_trees/host_v1/layout_version", "must be the last history entry");
}

#[test]
fn tree_names_are_snake_case() {
    let mut schema = base();
    let tree = schema["data_trees"]["host_v1"].clone();
    schema["data_trees"] = json!({"Host-V1": tree});
    assert_error(&schema, "/data_trees/Host-V1", "is not a valid data tree name");
}

#[test]
fn the_emitter_describes_the_tree() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("schema.json");
    std::fs::write(&path, base().to_string()).expect("write the schema");
    let generated = Generator::new(&path).generate().unwrap_or_else(|d| panic!("{d}"));
    let text = generated.rust_data_trees;
    assert!(text.starts_with("// @generated"), "{text}");
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "pub static HOST_V1: vproto_support::tree::DataTree = vproto_support::tree::DataTree {",
        "root: \"data/host\", version_key: \"meta/layout\", layout_version: vproto_support::tree::LayoutVersion::new(1, 0, 0)",
        "name: \"ports\", path: &[\"ports\"], required: true, kind: vproto_support::tree::FieldKind::List(vproto_support::tree::List { key: \"mac\", key_format: Some(\"mac-address\")",
        "object: \"Port\", tolerate_unknown_keys: false",
        "name: \"up\", path: &[\"state\", \"up\"], required: true, kind: vproto_support::tree::FieldKind::Leaf(vproto_support::tree::Leaf { scalar: vproto_support::tree::Scalar::Boolean",
        "name: \"mtu\", path: &[\"mtu\"], required: false",
        "minimum: Some(68)",
        "pub static DATA_TREES: &[&vproto_support::tree::DataTree] = &[&HOST_V1];",
    ] {
        assert!(flat.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // A Rust file; that it compiles against vproto_support::tree is proven by vproto-api, which includes the real one.
    syn::parse_file(&text).unwrap_or_else(|e| panic!("the output is not a Rust file: {e}\n{text}"));
}

#[test]
fn the_checked_in_layouts_are_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let generated = Generator::new(root.join("schema/vproto.json")).generate().unwrap_or_else(|d| panic!("{d}"));
    let checked_in = std::fs::read_to_string(root.join("generated/src/layouts.rs")).expect("read layouts.rs");
    assert!(checked_in == generated.rust_data_trees, "generated/src/layouts.rs is stale: run `cargo xtask codegen`");
    assert!(checked_in.contains("pub static GUEST_V1: vproto_support::tree::DataTree"));
}
