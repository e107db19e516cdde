//! The table of edits: each is applied to one small, checked schema, the edited schema is checked
//! again, and the diff must name the rule with the severity the table gives (and, for the
//! compatible edits, no wire-breaking finding at all).

use serde_json::{json, Value};

use super::{diff, AllowRule, Severity};
use crate::{model::Schema, parse_schema};

use Severity::{Compatible, SourceBreaking, WireBreaking};

/// A shop: `Item` is only sent by servers (results, the event), `ItemInput` only by clients
/// (params), `Color` travels in output only, `Size` in input only, `Mode` both ways.
fn base() -> Value {
    let object = |description: &str, fields: Value| {
        json!({
            "description": description, "wire": "plain", "version": "1.0",
            "history": [{"version": "1.0", "note": "Initial version"}], "fields": fields
        })
    };
    let field = |schema: Value| json!({"description": "A field.", "schema": schema, "since": "1.0"});
    let named = |schema: Value| json!({"description": "A type.", "since": "1.0", "schema": schema});
    json!({
        "protocol": {
            "name": "shop", "description": "A shop.", "version": "1.0",
            "history": [{"version": "1.0", "note": "First"}]
        },
        "types": {
            "Color": named(json!({"type": "string", "enum": ["red", "green"]})),
            "Size": named(json!({"type": "string", "enum": ["s", "m", "l"]})),
            "Mode": named(json!({"type": "string", "enum": ["fast", "slow"]})),
            "Name": named(json!({"type": "string", "maxLength": 64}))
        },
        "objects": {
            "Item": object("An item.", json!({
                "id": field(json!({"type": "string"})),
                "color": field(json!({"$ref": "#/types/Color"})),
                "mode": field(json!({"$ref": "#/types/Mode"})),
                "price": field(json!({"type": "integer"}))
            })),
            "ItemInput": object("A new item.", json!({
                "name": field(json!({"$ref": "#/types/Name"})),
                "size": field(json!({"$ref": "#/types/Size"})),
                "mode": field(json!({"$ref": "#/types/Mode"})),
                "count": field(json!({"type": "integer", "minimum": 0}))
            }))
        },
        "errors": {
            "NotFound": {
                "code": 4004, "message": "No such item", "description": "The item does not exist.",
                "since": "1.0", "data": {"type": "string"}
            }
        },
        "services": {
            "shop": {
                "description": "The shop.", "since": "1.0",
                "methods": {
                    "get_item": {
                        "description": "Reads an item.", "since": "1.0",
                        "params": {
                            "id": {"description": "The item.", "schema": {"type": "string"}},
                            "verbose": {"description": "More.", "schema": {"type": "boolean"}, "required": false}
                        },
                        "result": {"object": "Item"},
                        "errors": ["NotFound"],
                        "http": {"method": "GET", "path": "/item"}
                    },
                    "put_item": {
                        "description": "Adds an item.", "since": "1.0",
                        "params": {"item": {"description": "The item.", "schema": {"object": "ItemInput"}}},
                        "result": {"type": "boolean"}
                    }
                },
                "events": {
                    "item_changed": {
                        "description": "An item changed.", "since": "1.0",
                        "params": {
                            "item": {"description": "The item.", "schema": {"object": "Item"}},
                            "note": {"description": "Why.", "schema": {"type": "string"}, "required": false}
                        }
                    }
                }
            }
        }
    })
}

fn checked(value: &Value) -> Schema {
    parse_schema(&value.to_string(), "test").unwrap_or_else(|diagnostics| panic!("{diagnostics}\n{value:#}"))
}

/// The value at `pointer`, created as an object when missing.
fn at<'v>(value: &'v mut Value, pointer: &str) -> &'v mut Value {
    pointer.split('/').skip(1).fold(value, |value, segment| &mut value[segment])
}

fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    at(value, parent).as_object_mut().expect("an object").remove(key);
}

type Edit = fn(&mut Value);

/// (what, edit, rule, severity) — at least 20 edits, breaking and compatible.
fn table() -> Vec<(&'static str, Edit, &'static str, Severity)> {
    vec![
        ("remove a method", |s| remove(s, "/services/shop/methods/put_item"), "method-removed", WireBreaking),
        ("remove a service", |s| remove(s, "/services/shop"), "service-removed", WireBreaking),
        ("remove an event", |s| remove(s, "/services/shop/events/item_changed"), "event-removed", WireBreaking),
        (
            "mark an event removed",
            |s| {
                *at(s, "/services/shop/events/item_changed/removed") = json!("1.1");
                *at(s, "/protocol/version") = json!("1.1");
                at(s, "/protocol/history").as_array_mut().unwrap().push(json!({"version": "1.1", "note": "Next"}));
            },
            "event-removed",
            WireBreaking,
        ),
        ("remove a route", |s| remove(s, "/services/shop/methods/get_item/http"), "route-removed", WireBreaking),
        (
            "move a route",
            |s| *at(s, "/services/shop/methods/get_item/http/path") = json!("/items"),
            "route-changed",
            WireBreaking,
        ),
        (
            "add a required param",
            |s| {
                *at(s, "/services/shop/methods/get_item/params/lang") =
                    json!({"description": "L.", "schema": {"type": "string"}})
            },
            "required-param-added",
            WireBreaking,
        ),
        (
            "make a param required",
            |s| remove(s, "/services/shop/methods/get_item/params/verbose/required"),
            "param-made-required",
            WireBreaking,
        ),
        (
            "remove a param",
            |s| remove(s, "/services/shop/methods/get_item/params/verbose"),
            "param-removed",
            WireBreaking,
        ),
        (
            "remove an enum value of an input type",
            |s| *at(s, "/types/Size/schema/enum") = json!(["s", "m"]),
            "enum-value-removed",
            WireBreaking,
        ),
        (
            "remove an enum value of a type both ways",
            |s| *at(s, "/types/Mode/schema/enum") = json!(["fast"]),
            "enum-value-removed",
            WireBreaking,
        ),
        (
            "add an enum value to a closed output enum",
            |s| *at(s, "/types/Color/schema/enum") = json!(["red", "green", "blue"]),
            "enum-value-added",
            WireBreaking,
        ),
        (
            "narrow an input string",
            |s| *at(s, "/types/Name/schema/maxLength") = json!(16),
            "constraint-narrowed",
            WireBreaking,
        ),
        (
            "narrow an input number",
            |s| *at(s, "/objects/ItemInput/fields/count/schema/minimum") = json!(1),
            "constraint-narrowed",
            WireBreaking,
        ),
        ("remove a result field", |s| remove(s, "/objects/Item/fields/price"), "field-removed", WireBreaking),
        (
            "make a result field optional",
            |s| *at(s, "/objects/Item/fields/price/required") = json!(false),
            "field-made-optional",
            WireBreaking,
        ),
        (
            "make a result field nullable",
            |s| *at(s, "/objects/Item/fields/price/nullable") = json!(true),
            "field-made-nullable",
            WireBreaking,
        ),
        (
            "add a required field to an input type",
            |s| {
                *at(s, "/objects/ItemInput/fields/owner") =
                    json!({"description": "Who.", "schema": {"type": "string"}, "since": "1.0"})
            },
            "required-field-added",
            WireBreaking,
        ),
        (
            "change a result's type",
            |s| *at(s, "/services/shop/methods/put_item/result") = json!({"type": "string"}),
            "type-changed",
            WireBreaking,
        ),
        ("change an error code", |s| *at(s, "/errors/NotFound/code") = json!(4040), "error-code-changed", WireBreaking),
        (
            "change an error's data",
            |s| *at(s, "/errors/NotFound/data") = json!({"type": "integer"}),
            "error-data-changed",
            WireBreaking,
        ),
        (
            "make a method a notification",
            |s| {
                remove(s, "/services/shop/methods/put_item/result");
                *at(s, "/services/shop/methods/put_item/notification") = json!(true);
            },
            "notification-changed",
            WireBreaking,
        ),
        (
            "remove a required event param",
            |s| remove(s, "/services/shop/events/item_changed/params/item"),
            "event-param-removed",
            WireBreaking,
        ),
        (
            "change a field's wire name",
            |s| *at(s, "/objects/Item/fields/price/wire_name") = json!("cost"),
            "field-wire-name-changed",
            WireBreaking,
        ),
        (
            "change a param's wire name",
            |s| *at(s, "/services/shop/methods/get_item/params/id/wire_name") = json!("itemId"),
            "param-wire-name-changed",
            WireBreaking,
        ),
        (
            "give a method a wire name",
            |s| *at(s, "/services/shop/methods/put_item/wire_name") = json!("Shop.putItem"),
            "method-wire-name-changed",
            WireBreaking,
        ),
        (
            "give an event a wire name",
            |s| *at(s, "/services/shop/events/item_changed/wire_name") = json!("ITEM_CHANGED"),
            "event-wire-name-changed",
            WireBreaking,
        ),
        // Source-breaking: the wire is intact.
        (
            "rename a field, keeping its wire name",
            |s| {
                let mut price = at(s, "/objects/Item/fields").as_object_mut().unwrap().remove("price").unwrap();
                price["wire_name"] = json!("price");
                *at(s, "/objects/Item/fields/cost") = price;
            },
            "field-renamed",
            SourceBreaking,
        ),
        (
            "rename a param, keeping its wire name",
            |s| {
                let params = at(s, "/services/shop/methods/get_item/params").as_object_mut().unwrap();
                let mut id = params.remove("id").unwrap();
                id["wire_name"] = json!("id");
                let verbose = params.remove("verbose").unwrap();
                params.insert("item_id".into(), id);
                params.insert("verbose".into(), verbose);
            },
            "param-renamed",
            SourceBreaking,
        ),
        (
            "rename a method, keeping its wire name",
            |s| {
                let mut put = at(s, "/services/shop/methods").as_object_mut().unwrap().remove("put_item").unwrap();
                put["wire_name"] = json!("shop.put_item");
                *at(s, "/services/shop/methods/add_item") = put;
            },
            "method-renamed",
            SourceBreaking,
        ),
        (
            "rename an event, keeping its wire name",
            |s| {
                let mut changed =
                    at(s, "/services/shop/events").as_object_mut().unwrap().remove("item_changed").unwrap();
                changed["wire_name"] = json!("shop.item_changed");
                *at(s, "/services/shop/events/item_updated") = changed;
            },
            "event-renamed",
            SourceBreaking,
        ),
        (
            "rename a named type",
            |s| {
                let size = at(s, "/types").as_object_mut().unwrap().remove("Size").unwrap();
                *at(s, "/types/Sizing") = size;
                *at(s, "/objects/ItemInput/fields/size/schema/$ref") = json!("#/types/Sizing");
            },
            "type-renamed",
            SourceBreaking,
        ),
        (
            "rename a plain object",
            |s| {
                let item = at(s, "/objects").as_object_mut().unwrap().remove("ItemInput").unwrap();
                *at(s, "/objects/NewItem") = item;
                *at(s, "/services/shop/methods/put_item/params/item/schema/object") = json!("NewItem");
            },
            "object-renamed",
            SourceBreaking,
        ),
        (
            "inline a named type",
            |s| *at(s, "/objects/Item/fields/color/schema") = json!({"type": "string", "enum": ["red", "green"]}),
            "type-moved",
            SourceBreaking,
        ),
        // Compatible.
        (
            "add a method",
            |s| {
                *at(s, "/services/shop/methods/ping") =
                    json!({"description": "Ping.", "since": "1.0", "result": {"type": "boolean"}})
            },
            "method-added",
            Compatible,
        ),
        (
            "add an optional param",
            |s| {
                *at(s, "/services/shop/methods/get_item/params/lang") =
                    json!({"description": "L.", "schema": {"type": "string"}, "required": false})
            },
            "optional-param-added",
            Compatible,
        ),
        (
            "add a field to an output-only type",
            |s| {
                *at(s, "/objects/Item/fields/stock") =
                    json!({"description": "S.", "schema": {"type": "integer"}, "since": "1.0"})
            },
            "field-added",
            Compatible,
        ),
        (
            "remove an enum value of an output-only type",
            |s| *at(s, "/types/Color/schema/enum") = json!(["red"]),
            "enum-value-removed",
            Compatible,
        ),
        (
            "add an enum value to an input-only type",
            |s| *at(s, "/types/Size/schema/enum") = json!(["s", "m", "l", "xl"]),
            "enum-value-added",
            Compatible,
        ),
        (
            "add an enum value to an open output enum",
            |s| {
                *at(s, "/types/Color/open") = json!(true);
                *at(s, "/types/Color/schema/enum") = json!(["red", "green", "blue"]);
            },
            "enum-value-added",
            Compatible,
        ),
        (
            "deprecate a method",
            |s| *at(s, "/services/shop/methods/put_item/deprecated") = json!("1.0"),
            "deprecated",
            Compatible,
        ),
        (
            "change a description",
            |s| *at(s, "/services/shop/methods/put_item/description") = json!("Adds."),
            "description-changed",
            Compatible,
        ),
        (
            "widen an input string",
            |s| *at(s, "/types/Name/schema/maxLength") = json!(128),
            "constraint-widened",
            Compatible,
        ),
        (
            "make a param optional",
            |s| *at(s, "/services/shop/methods/get_item/params/id/required") = json!(false),
            "param-made-optional",
            Compatible,
        ),
        (
            "make an input field optional",
            |s| *at(s, "/objects/ItemInput/fields/count/required") = json!(false),
            "field-made-optional",
            Compatible,
        ),
        (
            "add an optional event param",
            |s| {
                *at(s, "/services/shop/events/item_changed/params/by") =
                    json!({"description": "By.", "schema": {"type": "string"}, "required": false})
            },
            "optional-param-added",
            Compatible,
        ),
        (
            "add an event",
            |s| {
                *at(s, "/services/shop/events/item_sold") =
                    json!({"description": "Sold.", "since": "1.0", "params": {}})
            },
            "event-added",
            Compatible,
        ),
        (
            "declare another error",
            |s| {
                *at(s, "/errors/Busy") =
                    json!({"code": 4029, "message": "Busy", "description": "Busy.", "since": "1.0"});
                *at(s, "/services/shop/methods/put_item/errors") = json!(["Busy"]);
            },
            "error-added",
            Compatible,
        ),
    ]
}

#[test]
fn every_edit_of_the_table_is_classified() {
    let table = table();
    assert!(table.len() >= 20, "the table holds {} edits", table.len());
    let old = checked(&base());
    assert!(diff(&old, &old).findings.is_empty(), "a schema does not differ from itself");
    let mut failures = Vec::new();
    for (what, edit, rule, severity) in &table {
        let mut value = base();
        edit(&mut value);
        let new = checked(&value);
        let report = diff(&old, &new);
        let found = report.findings.iter().any(|finding| finding.rule == *rule && finding.severity == *severity);
        let breaks = report.breaks_wire();
        let expected_break = *severity == WireBreaking;
        if !found || breaks != expected_break {
            let listed: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{what}: expected {rule} {severity:?} (breaks wire: {expected_break}), found:\n    {}",
                listed.join("\n    ")
            ));
        }
        for finding in &report.findings {
            assert!(finding.old.is_some() || finding.new.is_some(), "{what}: {finding} names no pointer");
            assert!(!finding.why.is_empty(), "{what}: {finding} says not why");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn findings_name_the_pointer_in_both_revisions() {
    let old = checked(&base());
    let mut value = base();
    *at(&mut value, "/types/Size/schema/enum") = json!(["s", "m"]);
    let report = diff(&old, &checked(&value));
    let finding = report.findings.iter().find(|f| f.rule == "enum-value-removed").expect("found");
    assert_eq!(finding.old.as_deref(), Some("/types/Size/schema"));
    assert_eq!(finding.new.as_deref(), Some("/types/Size/schema"));
    assert!(finding.why.contains("`l`"), "{}", finding.why);
    let mut value = base();
    remove(&mut value, "/services/shop/methods/put_item");
    let report = diff(&old, &checked(&value));
    let finding = report.findings.iter().find(|f| f.rule == "method-removed").expect("found");
    assert_eq!((finding.old.as_deref(), finding.new.as_deref()), (Some("/services/shop/methods/put_item"), None));
}

#[test]
fn allow_rules_acknowledge_deliberate_breaks() {
    let old = checked(&base());
    let mut value = base();
    remove(&mut value, "/services/shop/methods/put_item");
    remove(&mut value, "/services/shop/methods/get_item/http");
    let new = checked(&value);
    let rules = [AllowRule::parse("method-removed=/services/shop/methods/put_item").unwrap()];
    let mut report = diff(&old, &new);
    assert!(report.allow(&rules).is_empty());
    assert!(report.breaks_wire(), "the route's removal is not allowed");
    let rules = [
        AllowRule::parse("method-removed").unwrap(),
        AllowRule::parse("/services/shop/methods/get_item").unwrap(),
        AllowRule::parse("enum-value-added").unwrap(),
    ];
    let mut report = diff(&old, &new);
    let stale = report.allow(&rules);
    assert!(!report.breaks_wire(), "{:?}", report.findings);
    assert_eq!(stale, vec![&rules[2]], "the rule that matched nothing is reported");
    // A pointer rule matches the element and below, not a sibling whose name starts alike.
    let rule = AllowRule::parse("/services/shop/methods/get").unwrap();
    assert!(!report.findings.iter().any(|finding| rule.matches(finding)));
    assert!(AllowRule::parse("Method Removed").is_err());
    assert!(AllowRule::parse("method-removed=services").is_err());
}
