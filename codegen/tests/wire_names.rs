//! Wire names, deprecated params and roles in the generated code and published documents:
//! a member's `wire_name` is what travels (OpenRPC, JSON Schema, the Rust dispatcher, client and
//! object impls), its schema name what code calls it; the checker refuses wire names that are
//! unusable, redundant or shared.

mod common;

use common::{assert_error, generate};
use serde_json::{json, Value};

/// vdsm-like: the method `host.get_stats` is called `Host.getStats`, its param `vm_id` is
/// `vmID`, a param is named `params` (the generated code's own map once had that name), one
/// param is deprecated, and the result's fields keep vdsm's camelCase on the wire.
fn schema() -> Value {
    json!({
        "protocol": {"name": "t", "description": "test", "version": "1.1",
                     "history": [{"version": "1.0", "note": "first"}, {"version": "1.1", "note": "second"}]},
        "objects": {
            "Stats": {"description": "s", "wire": "plain", "version": "1.1",
                      "history": [{"version": "1.0", "note": "a"}, {"version": "1.1", "note": "b"}],
                      "fields": {
                          "vm_id": {"description": "id", "since": "1.0", "wire_name": "vmID", "schema": {"type": "string"}},
                          "mem_total": {"description": "m", "since": "1.0", "wire_name": "memTotal",
                                        "deprecated": "1.1", "schema": {"type": "integer"}}
                      }}
        },
        "services": {
            "host": {"description": "h", "since": "1.0", "methods": {
                "get_stats": {
                    "description": "stats", "since": "1.0", "wire_name": "Host.getStats",
                    "roles": ["operator"],
                    "params": {
                        "vm_id": {"description": "id", "wire_name": "vmID", "schema": {"type": "string"}},
                        "params": {"description": "p", "required": false, "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
                        "legacy": {"description": "old", "required": false, "since": "1.0", "deprecated": "1.1", "schema": {"type": "boolean"}}
                    },
                    "result": {"object": "Stats"},
                    "examples": [{"name": "by vdsm's names", "params": {"vmID": "x", "params": {}},
                                  "result": {"vmID": "x", "memTotal": 1}}]
                }
            }}
        }
    })
}

#[test]
fn the_published_documents_use_wire_names_and_mark_deprecations_and_roles() {
    let generated = generate(&schema());
    let openrpc: Value = serde_json::from_str(&generated.openrpc).unwrap();
    let method = &openrpc["methods"][0];
    assert_eq!(method["name"], "Host.getStats");
    assert_eq!(method["x-roles"], json!(["operator"]));
    let names: Vec<&str> = method["params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    // `json!` sorts keys: the params come in the order legacy, params, vm_id.
    assert_eq!(names, ["legacy", "params", "vmID"]);
    assert_eq!(method["params"][0]["deprecated"], true);
    assert_eq!(method["params"][0]["x-deprecated-since"], "1.1");
    assert!(method["params"][2].get("deprecated").is_none(), "{method}");
    let json_schema: Value = serde_json::from_str(&generated.json_schema).unwrap();
    let stats = &json_schema["$defs"]["Stats"];
    assert_eq!(stats["required"], json!(["memTotal", "vmID"]));
    assert_eq!(stats["properties"]["memTotal"]["deprecated"], true);
    assert!(stats["properties"]["vmID"].get("deprecated").is_none());
    let params = &json_schema["$defs"]["host.get_stats.params"];
    assert_eq!(params["properties"]["legacy"]["deprecated"], true);
    assert_eq!(params["required"], json!(["vmID"]));
}

#[test]
fn the_rust_reads_and_writes_wire_names_and_keeps_its_params_map_apart() {
    let generated = generate(&schema());
    // prettyplease breaks long calls over lines: compare without white space.
    let rust: String = generated.rust.joined().chars().filter(|c| !c.is_whitespace()).collect();
    for wanted in [
        "FieldInfo::new(\"vmID\"",
        "FieldInfo::new(\"memTotal\"",
        "pub vm_id: String",
        "\"Host.getStats\" =>",
        "read_param(&__params, \"vmID\"",
        "read_param(&__params, \"params\"",
        "__params.insert(\"vmID\".to_string()",
        "self.transport.request(\"Host.getStats\"",
    ] {
        let wanted: String = wanted.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(rust.contains(&wanted), "the generated Rust lacks {wanted:?}");
    }
    assert!(!rust.contains("letparams=params.into_named"), "a param named `params` would shadow the map");
}

#[test]
fn unusable_redundant_and_shared_wire_names_are_refused() {
    let mut broken = schema();
    broken["objects"]["Stats"]["fields"]["mem_total"]["wire_name"] = json!("vmID");
    // Fields are checked in key order (mem_total, then vm_id): the second holder is refused.
    assert_error(&broken, "/objects/Stats/fields/vm_id", "`vmID` is already the wire name of");

    let mut broken = schema();
    broken["services"]["host"]["methods"]["get_stats"]["params"]["legacy"]["wire_name"] = json!("params");
    assert_error(
        &broken,
        "/services/host/methods/get_stats/params/params",
        "already the wire name of the param `legacy`",
    );

    let mut broken = schema();
    broken["objects"]["Stats"]["fields"]["vm_id"]["wire_name"] = json!("");
    assert_error(&broken, "/objects/Stats/fields/vm_id/wire_name", "cannot be empty");

    let mut broken = schema();
    broken["objects"]["Stats"]["fields"]["vm_id"]["wire_name"] = json!("vm_id");
    assert_error(&broken, "/objects/Stats/fields/vm_id/wire_name", "is the wire name already");

    let mut broken = schema();
    broken["services"]["host"]["methods"]["get_stats"]["wire_name"] = json!("rpc.discover");
    assert_error(&broken, "/services/host/methods/get_stats/wire_name", "JSON-RPC reserves");

    let mut broken = schema();
    broken["services"]["host"]["methods"]["get_stats"]["wire_name"] = json!("Host get");
    assert_error(&broken, "/services/host/methods/get_stats/wire_name", "cannot hold white space");

    let mut broken = schema();
    broken["services"]["vm"] = json!({"description": "v", "since": "1.0", "methods": {
        "stats": {"description": "s", "since": "1.0", "wire_name": "Host.getStats", "result": {"type": "boolean"}}}});
    assert_error(&broken, "/services/vm/methods/stats", "`Host.getStats` is already the wire name of");

    let mut broken = schema();
    broken["services"]["host"]["methods"]["get_stats"]["params"]["legacy"]["since"] = json!("1.1");
    broken["services"]["host"]["methods"]["get_stats"]["params"]["legacy"]["deprecated"] = json!("1.0");
    assert_error(&broken, "/services/host/methods/get_stats/params/legacy/deprecated", "deprecated before it exists");
}

#[test]
fn examples_are_checked_under_wire_names() {
    let mut broken = schema();
    broken["services"]["host"]["methods"]["get_stats"]["examples"][0]["params"] = json!({"vm_id": "x"});
    assert_error(&broken, "/services/host/methods/get_stats/examples/0/params", "does not fit");
}
