//! Broken schemas give precise errors (pointer, what, how to fix), all at once.

mod common;

use common::{assert_error, errors_of};
use serde_json::{json, Value};
use vproto_codegen::parse_schema;

/// A small valid schema that the tests break in one place each.
fn base() -> Value {
    json!({
        "protocol": {"name": "t", "description": "test", "version": "1.0",
                     "history": [{"version": "1.0", "note": "first"}]},
        "types": {
            "Uuid": {"description": "an id", "since": "1.0", "schema": {"type": "string", "format": "uuid"}}
        },
        "objects": {
            "Child": {"description": "c", "namespace": "t", "version": "1.1",
                      "history": [{"version": "1.0", "note": "a"}, {"version": "1.1", "note": "b"}],
                      "fields": {"id": {"description": "id", "since": "1.0", "schema": {"$ref": "#/types/Uuid"}}}},
            "Parent": {"description": "p", "namespace": "t", "version": "1.0",
                       "history": [{"version": "1.0", "note": "a"}],
                       "fields": {"child": {"description": "c", "since": "1.0", "schema": {"object": "Child"},
                                            "child_versions": {"1.0": "1.1"}}}}
        }
    })
}

#[test]
fn the_base_schema_is_valid() {
    parse_schema(&base().to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn dangling_type_reference() {
    let mut schema = base();
    schema["objects"]["Child"]["fields"]["id"]["schema"]["$ref"] = json!("#/types/Nope");
    assert_error(&schema, "/objects/Child/fields/id/schema/$ref", "does not name a type");
}

#[test]
fn dangling_object_reference() {
    let mut schema = base();
    schema["objects"]["Parent"]["fields"]["child"]["schema"]["object"] = json!("Ghost");
    assert_error(&schema, "/objects/Parent/fields/child/schema/object", "`Ghost` is not an object");
}

#[test]
fn history_out_of_order() {
    let mut schema = base();
    schema["objects"]["Child"]["history"] = json!([{"version": "1.1", "note": "b"}, {"version": "1.0", "note": "a"}]);
    assert_error(&schema, "/objects/Child/history/1/version", "does not come after");
}

#[test]
fn field_since_not_a_version() {
    let mut schema = base();
    schema["objects"]["Child"]["fields"]["id"]["since"] = json!("1.5");
    assert_error(&schema, "/objects/Child/fields/id/since", "1.5 is not a version of Child");
}

#[test]
fn pinned_child_version_must_exist() {
    let mut schema = base();
    schema["objects"]["Parent"]["fields"]["child"]["child_versions"] = json!({"1.0": "1.7"});
    assert_error(&schema, "/objects/Parent/fields/child/child_versions/1.0", "1.7 is not a version of Child");
}

#[test]
fn object_fields_must_pin_child_versions() {
    let mut schema = base();
    schema["objects"]["Parent"]["fields"]["child"].as_object_mut().unwrap().remove("child_versions");
    assert_error(&schema, "/objects/Parent/fields/child/child_versions", "does not pin");
}

#[test]
fn inheritance_cycle() {
    let mut schema = base();
    schema["objects"]["Child"]["extends"] = json!({"object": "Parent", "versions": {"1.0": "1.0"}});
    schema["objects"]["Parent"]["extends"] = json!({"object": "Child", "versions": {"1.0": "1.0"}});
    assert_error(&schema, "/objects/Child/extends/object", "inheritance cycle");
}

#[test]
fn later_required_field_needs_a_default() {
    let mut schema = base();
    schema["objects"]["Child"]["fields"]["size"] =
        json!({"description": "s", "since": "1.1", "schema": {"type": "integer"}});
    assert_error(&schema, "/objects/Child/fields/size", "no default");
}

#[test]
fn duplicate_keys_are_reported() {
    let text = base().to_string().replacen("\"Child\":{", "\"Child\":{\"version\":\"1.1\",", 1);
    let diagnostics = parse_schema(&text, "test.json").expect_err("duplicate");
    assert!(diagnostics.items.iter().any(|d| d.pointer == "/objects/Child/version"), "{diagnostics}");
}

#[test]
fn shape_errors_name_the_pointer() {
    let mut schema = base();
    schema["objects"]["Child"]["fields"]["id"]["nullable"] = json!("yes");
    schema["objects"]["Child"]["colour"] = json!("blue");
    let diagnostics = errors_of(&schema);
    assert!(diagnostics.items.iter().any(|d| d.pointer == "/objects/Child/fields/id/nullable"), "{diagnostics}");
    assert!(
        diagnostics.items.iter().any(|d| d.pointer == "/objects/Child" && d.message.contains("colour")),
        "{diagnostics}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let mut schema = base();
    schema["objects"]["Child"]["fields"]["id"]["since"] = json!("1.5");
    schema["objects"]["Parent"]["fields"]["child"]["child_versions"] = json!({"1.0": "1.7"});
    schema["types"]["Uuid"]["schema"]["format"] = json!("colour");
    let diagnostics = errors_of(&schema);
    assert!(diagnostics.items.len() >= 3, "{diagnostics}");
    let text = diagnostics.to_string();
    assert!(text.contains("unknown format `colour`") && text.contains("fix:"), "{text}");
}

#[test]
fn reserved_error_codes_are_refused() {
    let mut schema = base();
    schema["errors"] = json!({"Bad": {"code": -32001, "message": "m", "description": "d", "since": "1.0"}});
    assert_error(&schema, "/errors/Bad/code", "reserved by JSON-RPC");
}

#[test]
fn examples_must_fit_the_method() {
    let mut schema = base();
    schema["services"] = json!({"things": {"description": "d", "since": "1.0", "methods": {"get": {
        "description": "d", "since": "1.0",
        "params": {"id": {"description": "i", "schema": {"$ref": "#/types/Uuid"}}},
        "result": {"type": "integer", "minimum": 0},
        "examples": [{"name": "bad", "params": {"id": 7, "extra": true}, "result": -1}]
    }}}});
    assert_error(&schema, "/services/things/methods/get/examples/0/params/id", "does not fit");
    assert_error(&schema, "/services/things/methods/get/examples/0/result", "does not fit");
    assert_error(&schema, "/services/things/methods/get/examples/0/params", "extra");
}

/// A service whose `put` method binds `POST /things` with `http`.
fn with_route(http: Value, params: Value) -> Value {
    let mut schema = base();
    schema["services"] = json!({"things": {"description": "d", "since": "1.0", "methods": {"put": {
        "description": "d", "since": "1.0", "params": params, "result": {"type": "boolean"}, "http": http
    }}}});
    schema
}

#[test]
fn a_route_body_names_a_param_that_can_stand_for_the_body() {
    let child = json!({"child": {"description": "c", "schema": {"object": "Child"}}});
    let body = "/services/things/methods/put/http/body";
    let valid = with_route(json!({"method": "POST", "path": "/things", "body": "child"}), child.clone());
    parse_schema(&valid.to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));

    let unknown = with_route(json!({"method": "POST", "path": "/things", "body": "ghost"}), child.clone());
    assert_error(&unknown, body, "`ghost` is not a param");
    let no_body = with_route(json!({"method": "GET", "path": "/things", "body": "child"}), child.clone());
    assert_error(&no_body, body, "a GET request has no body");
    let mut two = child.clone();
    two["other"] = json!({"description": "o", "schema": {"type": "integer"}});
    let required_other = with_route(json!({"method": "PUT", "path": "/things", "body": "child"}), two.clone());
    assert_error(&required_other, body, "the required param `other`");
    two["other"]["required"] = json!(false);
    let optional_other = with_route(json!({"method": "PUT", "path": "/things", "body": "child"}), two);
    parse_schema(&optional_other.to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));
    // `Child` has a field `id`: a body `{"id": ...}` could be the wrapped form or a Child.
    let ambiguous = with_route(
        json!({"method": "POST", "path": "/things", "body": "id"}),
        json!({"id": {"description": "c", "schema": {"object": "Child"}}}),
    );
    assert_error(&ambiguous, body, "may hold a member named `id`");
    let map = with_route(
        json!({"method": "POST", "path": "/things", "body": "tags"}),
        json!({"tags": {"description": "t", "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}),
    );
    assert_error(&map, body, "may hold a member named `tags`");
    let mut named_map = with_route(
        json!({"method": "POST", "path": "/things", "body": "tags"}),
        json!({"tags": {"description": "t", "schema": {"$ref": "#/types/Tags"}}}),
    );
    named_map["types"]["Tags"] = json!({"description": "tags", "since": "1.0",
                                        "schema": {"type": "object", "additionalProperties": {"type": "string"}}});
    assert_error(&named_map, body, "may hold a member named `tags`");
}

#[test]
fn roles_name_each_role_once_in_lower_snake_case_and_never_none() {
    let with_roles = |roles: Value| {
        let mut schema = with_route(json!({"method": "POST", "path": "/things"}), json!({}));
        schema["services"]["things"]["methods"]["put"]["roles"] = roles;
        schema
    };
    let valid = with_roles(json!(["operator", "agent"]));
    let parsed = parse_schema(&valid.to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        parsed.services["things"].methods["put"].roles.as_deref(),
        Some(&["operator".into(), "agent".into()][..])
    );
    let at = "/services/things/methods/put/roles";
    assert_error(&with_roles(json!([])), at, "opens the method to nobody");
    assert_error(&with_roles(json!(["Operator"])), &format!("{at}/0"), "`Operator` is not a valid role name");
    assert_error(&with_roles(json!(["agent", "agent"])), &format!("{at}/1"), "`agent` is named twice");
}
