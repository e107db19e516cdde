//! Wire names: a field, param, method or event may be spelled on the wire apart from its
//! schema name (`"wire_name": "vmID"` for the field `vm_id`, `"wire_name":
//! "Host.getCapabilities"` for the method `host.get_capabilities`). Each must be usable text,
//! must differ from the name it replaces, and must be unique where the wire tells members
//! apart: among an object's fields (its bases' included), among a method's or event's params,
//! and among every method and event of the schema (a server routes calls by that name alone).

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::Checker;
use crate::{
    diagnostic::{escape_segment, pointer},
    model::Param,
    naming::method_wire_name,
    resolve::lineage,
};

/// Why `text` cannot be a wire name, if it cannot: empty, surrounding or (for a method or
/// event) inner white space, control characters.
fn unusable(text: &str, whole_name: bool) -> Option<&'static str> {
    if text.is_empty() {
        Some("a wire name cannot be empty")
    } else if text.chars().any(char::is_control) {
        Some("a wire name cannot hold control characters")
    } else if text.trim() != text {
        Some("a wire name cannot start or end with white space")
    } else if whole_name && text.chars().any(char::is_whitespace) {
        Some("a method's or event's wire name cannot hold white space")
    } else if whole_name && text.starts_with("rpc.") {
        Some("JSON-RPC reserves the method names that start with `rpc.`")
    } else {
        None
    }
}

impl Checker<'_> {
    /// Every wire name of the schema.
    pub(super) fn wire_names(&mut self) {
        for object_name in self.schema.objects.keys() {
            self.field_wire_names(object_name);
        }
        // Every method and event by the name it travels as, with where it is declared.
        let mut calls: BTreeMap<String, String> = BTreeMap::new();
        for (service_name, service) in &self.schema.services {
            let members = service
                .methods
                .iter()
                .map(|(name, method)| ("methods", name, method.wire_name.as_deref(), &method.params))
                .chain(
                    service
                        .events
                        .iter()
                        .map(|(name, event)| ("events", name, event.wire_name.as_deref(), &event.params)),
                );
            for (kind, name, wire_name, params) in members {
                let at = pointer(&["services", service_name, kind, name]);
                self.param_wire_names(&at, params);
                if let Some(wire_name) = wire_name {
                    self.explicit_wire_name(
                        &format!("{at}/wire_name"),
                        wire_name,
                        &format!("{service_name}.{name}"),
                        true,
                    );
                }
                let effective = wire_name.map_or_else(|| method_wire_name(service_name, name), str::to_string);
                if let Some(first) = calls.get(&effective) {
                    self.out.push(
                        &at,
                        format!("`{effective}` is already the wire name of {first}"),
                        "give each method and event a wire name of its own",
                    );
                } else {
                    calls.insert(effective, at);
                }
            }
        }
    }

    /// An explicit `wire_name` at `at`: usable text, and not the name it would be anyway.
    fn explicit_wire_name(&mut self, at: &str, wire_name: &str, default: &str, whole_name: bool) {
        if let Some(why) = unusable(wire_name, whole_name) {
            self.out.push(at, format!("`{wire_name}`: {why}"), "write the name the foreign protocol sends");
        } else if wire_name == default {
            self.out.push(at, format!("`{wire_name}` is the wire name already"), "remove `wire_name`");
        }
    }

    /// The fields of `object_name`: its own explicit wire names, and no two fields of it or its
    /// bases sent under one name (two fields without a `wire_name` are the duplicate names the
    /// inheritance checks report).
    fn field_wire_names(&mut self, object_name: &str) {
        let schema = self.schema;
        // The bases' fields first, as the object carries them; a cycle leaves only the object.
        let mut seen: BTreeMap<&str, (String, bool)> = BTreeMap::new();
        for (owner, owner_object) in lineage(schema, object_name).into_iter().rev() {
            for (field_name, field) in &owner_object.fields {
                let at = pointer(&["objects", owner, "fields", field_name]);
                let explicit = field.wire_name.is_some();
                if owner == object_name {
                    if let Some(wire_name) = &field.wire_name {
                        self.explicit_wire_name(&format!("{at}/wire_name"), wire_name, field_name, false);
                    }
                }
                let effective = field.wire_name.as_deref().unwrap_or(field_name);
                match seen.get(effective) {
                    Some((first, first_explicit)) if owner == object_name && (explicit || *first_explicit) => {
                        self.out.push(
                            &at,
                            format!("`{effective}` is already the wire name of {first}"),
                            "give each field of an object (its bases' included) a wire name of its own",
                        );
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(effective, (at, explicit));
                    }
                }
            }
        }
    }

    /// The params of a method or event at `at`: explicit wire names usable, all distinct.
    fn param_wire_names(&mut self, at: &str, params: &IndexMap<String, Param>) {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (param_name, param) in params {
            let param_at = format!("{at}/params/{}", escape_segment(param_name));
            if let Some(wire_name) = &param.wire_name {
                self.explicit_wire_name(&format!("{param_at}/wire_name"), wire_name, param_name, false);
            }
            let effective = param.wire_name.as_deref().unwrap_or(param_name);
            if let Some(first) = seen.insert(effective, param_name) {
                self.out.push(
                    &param_at,
                    format!("`{effective}` is already the wire name of the param `{first}`"),
                    "give each param a wire name of its own",
                );
            }
        }
    }
}
