//! Events in the schema language: checked like everything else (each error with its pointer and
//! a fix), published in the OpenRPC documents (`x-events`) and the JSON Schema (`$defs` of their
//! params), and emitted as one enum per service with a typed `subscribe` on its client.

mod common;

use common::{assert_error, errors_of, generate};
use serde_json::{json, Value};
use vproto_codegen::parse_schema;

/// A valid schema with a `things` service: one method and two events, one of them removed.
fn base() -> Value {
    json!({
        "protocol": {"name": "t", "description": "test", "version": "1.2", "history": [
            {"version": "1.0", "note": "first"}, {"version": "1.1", "note": "second"}, {"version": "1.2", "note": "third"}
        ]},
        "types": {"Uuid": {"description": "an id", "since": "1.0", "schema": {"type": "string", "format": "uuid"}}},
        "objects": {
            "Thing": {"description": "a thing", "namespace": "t", "version": "1.0",
                      "history": [{"version": "1.0", "note": "a"}],
                      "fields": {"id": {"description": "id", "since": "1.0", "schema": {"$ref": "#/types/Uuid"}}}},
            "Unused": {"description": "reached by no method", "wire": "plain", "version": "1.0",
                       "history": [{"version": "1.0", "note": "a"}],
                       "fields": {"size": {"description": "s", "since": "1.0", "schema": {"type": "integer"}}}}
        },
        "services": {"things": {"description": "d", "since": "1.0", "methods": {"get": {
            "description": "d", "since": "1.0",
            "params": {"id": {"description": "i", "schema": {"$ref": "#/types/Uuid"}}},
            "result": {"object": "Thing"}
        }}, "events": {
            "changed": {
                "description": "A thing changed.", "since": "1.1", "deprecated": "1.2",
                "params": {
                    "thing": {"description": "the thing now", "schema": {"object": "Thing"}},
                    "detail": {"description": "what else", "schema": {"object": "Unused"}, "since": "1.2", "required": false}
                },
                "examples": [{"name": "one", "params": {"thing": {
                    "versioned_object.name": "Thing", "versioned_object.namespace": "t", "versioned_object.version": "1.0",
                    "versioned_object.data": {"id": "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"}
                }}}]
            },
            "gone": {"description": "Never sent any more.", "since": "1.0", "removed": "1.1", "params": {}}
        }}}
    })
}

/// The base schema, changed by `edit`, is rejected with an error at `pointer` whose message
/// contains `words`.
fn rejected(edit: impl FnOnce(&mut Value), pointer: &str, words: &str) {
    let mut schema = base();
    edit(&mut schema);
    assert_error(&schema, pointer, words);
}

fn event<'s>(schema: &'s mut Value, name: &str) -> &'s mut Value {
    &mut schema["services"]["things"]["events"][name]
}

#[test]
fn the_base_schema_is_valid() {
    parse_schema(&base().to_string(), "test.json").unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn names_are_identifiers_of_their_own() {
    rejected(
        |schema| *event(schema, "Changed") = json!({"description": "d", "since": "1.0"}),
        "/services/things/events/Changed",
        "not a valid event name",
    );
    rejected(
        |schema| *event(schema, "get") = json!({"description": "d", "since": "1.0"}),
        "/services/things/events/get",
        "both would be called `things.get`",
    );
    rejected(
        |schema| {
            *event(schema, "moved_1") = json!({"description": "d", "since": "1.0"});
            *event(schema, "moved1") = json!({"description": "d", "since": "1.0"});
        },
        "/services/things/events/moved_1",
        "both become the Rust variant `Moved1`",
    );
}

#[test]
fn generated_names_stay_free() {
    rejected(
        |schema| {
            schema["types"]["ThingsEvent"] = json!({"description": "d", "since": "1.0", "schema": {"type": "string"}})
        },
        "/types/ThingsEvent",
        "generated enum of the things service's events",
    );
    rejected(
        |schema| schema["services"]["things"]["methods"]["subscribe"] = json!({"description": "d", "since": "1.0"}),
        "/services/things/methods/subscribe",
        "`subscribe` of its own",
    );
}

#[test]
fn versions_exist_and_come_in_order() {
    rejected(
        |schema| event(schema, "changed")["since"] = json!("1.7"),
        "/services/things/events/changed/since",
        "1.7 is not in the protocol's history",
    );
    rejected(
        |schema| event(schema, "changed")["deprecated"] = json!("1.0"),
        "/services/things/events/changed/deprecated",
        "deprecated (1.0) before it exists",
    );
    rejected(
        |schema| event(schema, "gone")["removed"] = json!("1.0"),
        "/services/things/events/gone/removed",
        "removed (1.0) no later than it was added",
    );
    rejected(
        |schema| event(schema, "gone")["removed"] = json!("2.0"),
        "/services/things/events/gone/removed",
        "2.0 is not in the protocol's history",
    );
    rejected(
        |schema| schema["services"]["things"]["since"] = json!("1.2"),
        "/services/things/events/changed/since",
        "older (1.1) than its service (1.2)",
    );
}

#[test]
fn params_are_checked_as_methods_are() {
    rejected(
        |schema| event(schema, "changed")["params"]["thing"]["schema"] = json!({"$ref": "#/types/Nope"}),
        "/services/things/events/changed/params/thing/schema/$ref",
        "does not name a type",
    );
    rejected(
        |schema| event(schema, "changed")["params"]["thing"]["schema"] = json!({"object": "Ghost"}),
        "/services/things/events/changed/params/thing/schema/object",
        "`Ghost` is not an object",
    );
    rejected(
        |schema| event(schema, "changed")["params"]["Bad"] = json!({"description": "d", "schema": {"type": "string"}}),
        "/services/things/events/changed/params/Bad",
        "not a valid parameter name",
    );
    rejected(
        |schema| event(schema, "changed")["params"]["detail"]["since"] = json!("1.5"),
        "/services/things/events/changed/params/detail/since",
        "1.5 is not in the protocol's history",
    );
    rejected(
        |schema| event(schema, "changed")["params"]["detail"]["since"] = json!("1.0"),
        "/services/things/events/changed/params/detail/since",
        "before the event exists",
    );
}

#[test]
fn a_param_added_later_is_optional() {
    rejected(
        |schema| drop(event(schema, "changed")["params"]["detail"].as_object_mut().unwrap().remove("required")),
        "/services/things/events/changed/params/detail",
        "it cannot be required",
    );
}

#[test]
fn examples_must_fit_the_params() {
    let mut schema = base();
    event(&mut schema, "changed")["examples"] =
        json!([{"name": "bad", "params": {"thing": {"versioned_object.name": "Thing"}, "extra": 1}}]);
    assert_error(&schema, "/services/things/events/changed/examples/0/params/thing", "does not fit");
    assert_error(&schema, "/services/things/events/changed/examples/0/params", "extra");
    rejected(
        |schema| event(schema, "changed")["examples"] = json!([{"name": "no thing", "params": {}}]),
        "/services/things/events/changed/examples/0/params",
        "thing",
    );
}

#[test]
fn shape_errors_name_the_pointer() {
    let mut schema = base();
    event(&mut schema, "changed")["result"] = json!({"type": "string"});
    let diagnostics = errors_of(&schema);
    assert!(
        diagnostics
            .items
            .iter()
            .any(|d| d.pointer == "/services/things/events/changed" && d.message.contains("result")),
        "{diagnostics}"
    );
}

#[test]
fn the_openrpc_documents_carry_x_events() {
    let generated = generate(&base());
    let merged: Value = serde_json::from_str(&generated.openrpc).unwrap();
    let service: Value = serde_json::from_str(&generated.service_openrpc["things"]).unwrap();
    for document in [&merged, &service] {
        let events = document["x-events"].as_array().expect("x-events");
        assert_eq!(events.len(), 2);
        let changed = &events[0];
        assert_eq!(changed["name"], "things.changed");
        assert_eq!(changed["description"], "A thing changed.");
        assert_eq!(changed["x-since"], "1.1");
        assert_eq!(changed["deprecated"], true);
        assert_eq!(changed["x-deprecated-since"], "1.2");
        assert_eq!(
            changed["params"],
            json!([
                {"name": "detail", "description": "what else", "required": false,
                 "schema": {"$ref": "#/components/schemas/Unused"}, "x-since": "1.2"},
                {"name": "thing", "description": "the thing now", "required": true,
                 "schema": {"$ref": "#/components/schemas/Thing"}}
            ])
        );
        assert_eq!(changed["examples"][0]["params"][0]["name"], "thing");
        assert_eq!(events[1]["name"], "things.gone");
        assert_eq!(events[1]["x-removed"], "1.1");
        // An object only an event uses is described too.
        assert!(document["components"]["schemas"]["Unused"].is_object(), "Unused is reachable through the event");
    }
}

#[test]
fn a_service_without_events_has_no_x_events() {
    let mut schema = base();
    schema["services"]["things"].as_object_mut().unwrap().remove("events");
    let generated = generate(&schema);
    let merged: Value = serde_json::from_str(&generated.openrpc).unwrap();
    assert!(merged.get("x-events").is_none());
    let service: Value = serde_json::from_str(&generated.service_openrpc["things"]).unwrap();
    assert!(service.get("x-events").is_none() && service["components"]["schemas"].get("Unused").is_none());
    assert!(!generated.rust.events.contains("enum") && !generated.rust.services.contains("fn subscribe"));
}

#[test]
fn the_json_schema_defines_each_events_params() {
    let generated = generate(&base());
    let document: Value = serde_json::from_str(&generated.json_schema).unwrap();
    assert_eq!(
        document["$defs"]["things.changed.params"],
        json!({
            "description": "The params of the event things.changed, by name.",
            "type": "object",
            "properties": {
                "detail": {"$ref": "#/$defs/Unused"},
                "thing": {"$ref": "#/$defs/Thing"}
            },
            "required": ["thing"],
            "additionalProperties": false
        })
    );
    assert!(document["$defs"]["things.gone.params"].is_object(), "a removed event's payload is still described");
}

#[test]
fn the_rust_has_an_event_enum_and_a_typed_subscribe() {
    let generated = generate(&base());
    let events = &generated.rust.events;
    for expected in [
        "pub enum ThingsEvent {",
        "    Changed {",
        "        thing: Thing,",
        "        detail: Option<Unused>,",
        "pub const CHANGED: &'static str = \"things.changed\";",
        "impl vproto_support::rpc::events::Event for ThingsEvent {",
        "impl vproto_support::rpc::events::EventSet for ThingsEvent {",
        "vproto_support::rpc::events::params_at(&REGISTRY, __params, manifest)",
        "\"things.changed.params\",",
    ] {
        assert!(events.contains(expected), "missing {expected:?} in:\n{events}");
    }
    assert!(!events.contains("Gone"), "a removed event is never sent by a current server:\n{events}");
    assert!(events.contains("/// Deprecated") || events.contains("Deprecated since 1.2."), "{events}");
    let services = &generated.rust.services;
    assert!(
        services.contains("pub async fn subscribe(")
            && services.contains("vproto_support::rpc::events::EventStream<ThingsEvent>"),
        "{services}"
    );
    syn::parse_file(&generated.rust.joined()).expect("the generated Rust parses");
    assert!(generated.rust.files().iter().any(|(file, text)| file == "events.rs" && text.starts_with("// @generated")));
}

#[test]
fn the_meta_schema_describes_events() {
    let meta: Value = serde_json::from_str(&generate(&base()).meta_schema).unwrap();
    let event = &meta["$defs"]["Event"];
    for key in ["description", "since", "deprecated", "removed", "params", "examples"] {
        assert!(event["properties"].get(key).is_some(), "Event.{key} in {event}");
    }
    assert!(meta["$defs"]["Service"]["properties"]["events"].is_object());
}
