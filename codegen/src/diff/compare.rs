//! The comparisons, element by element: named types, objects and their fields, errors, services
//! with their methods, params, results, routes and events, and data trees.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use super::{
    at, name_on_wire,
    pairs::{pair_by_wire, Pair},
    Direction, Finding, Reach, Severity,
};
use crate::{
    lock,
    model::{Event, Field, JsonType, Method, NamedType, Object, Param, Schema, TypeExpr},
};

use Severity::{Compatible, SourceBreaking, WireBreaking};

/// Both revisions, the directions types travel in, and what was found so far.
pub(super) struct Differ<'s> {
    pub(super) old: &'s Schema,
    pub(super) new: &'s Schema,
    pub(super) reach: Reach,
    pub(super) findings: Vec<Finding>,
    /// Old name → new name of named types that were renamed with their shape kept.
    pub(super) renamed_types: HashMap<&'s str, &'s str>,
    /// Old name → new name of objects renamed with their fields kept.
    pub(super) renamed_objects: HashMap<&'s str, &'s str>,
}

/// Where a type expression sits in each revision, and which way it travels.
struct Place<'p> {
    old: &'p str,
    new: &'p str,
    direction: Direction,
}

impl<'s> Differ<'s> {
    fn push(&mut self, severity: Severity, rule: &'static str, old: Option<&str>, new: Option<&str>, why: String) {
        self.findings.push(Finding {
            severity,
            rule,
            old: old.map(str::to_string),
            new: new.map(str::to_string),
            why,
            allowed: false,
        });
    }

    /// Pairs removed and added types (and objects) of the same shape: renames, not removals.
    pub(super) fn find_renames(&mut self) {
        let (old, new) = (self.old, self.new);
        let mut added: Vec<(&String, &NamedType)> =
            new.types.iter().filter(|(name, _)| !old.types.contains_key(*name)).collect();
        for (name, named) in old.types.iter().filter(|(name, _)| !new.types.contains_key(*name)) {
            if let Some(index) = added.iter().position(|(_, other)| {
                other.schema == named.schema && other.open == named.open && !other.schema.is_empty_expr()
            }) {
                let (other, _) = added.remove(index);
                self.renamed_types.insert(name, other);
            }
        }
        let fields = |object: &Object| serde_json::to_value(&object.fields).ok();
        let mut added: Vec<(&String, &Object)> =
            new.objects.iter().filter(|(name, _)| !old.objects.contains_key(*name)).collect();
        for (name, object) in old.objects.iter().filter(|(name, _)| !new.objects.contains_key(*name)) {
            if let Some(index) = added.iter().position(|(_, other)| {
                fields(other) == fields(object)
                    && other.extends.as_ref().map(|e| &e.object) == object.extends.as_ref().map(|e| &e.object)
            }) {
                let (other, _) = added.remove(index);
                self.renamed_objects.insert(name, other);
            }
        }
    }

    pub(super) fn named_types(&mut self) {
        let (old, new) = (self.old, self.new);
        for (name, before) in &old.types {
            let old_at = at(&["types", name]);
            let direction = self.reach.named_type(name);
            match new.types.get(name) {
                Some(after) => {
                    let new_at = old_at.clone();
                    self.deprecation(&old_at, before.deprecated.is_some(), after.deprecated.is_some());
                    self.description(&old_at, &before.description, &after.description);
                    if before.open != after.open {
                        let (severity, why) = if after.open {
                            (Compatible, "the enum is now open: readers keep values they do not know".to_string())
                        } else if direction.output() {
                            (WireBreaking, "the enum is now closed and travels in output: a value added later fails old readers instead of being kept".to_string())
                        } else {
                            (Compatible, "the enum is now closed; it travels only in input".to_string())
                        };
                        self.push(severity, "enum-openness-changed", Some(&old_at), Some(&new_at), why);
                    }
                    let place = Place { old: &format!("{old_at}/schema"), new: &format!("{new_at}/schema"), direction };
                    self.expr(&before.schema, &after.schema, &place, after.open);
                }
                None => match self.renamed_types.get(name.as_str()) {
                    Some(renamed) => self.push(
                        SourceBreaking,
                        "type-renamed",
                        Some(&old_at),
                        Some(&at(&["types", renamed])),
                        format!("`{name}` is now `{renamed}` with the same shape: the wire is intact, generated names change"),
                    ),
                    None => self.removed(
                        direction,
                        "type-removed",
                        &old_at,
                        format!("the type `{name}` was removed and travels in {}", direction.describe()),
                    ),
                },
            }
        }
        for name in new.types.keys().filter(|name| !old.types.contains_key(*name)) {
            if !self.renamed_types.values().any(|renamed| renamed == name) {
                self.push(Compatible, "type-added", None, Some(&at(&["types", name])), format!("new type `{name}`"));
            }
        }
    }

    pub(super) fn objects(&mut self) {
        let (old, new) = (self.old, self.new);
        for (name, before) in &old.objects {
            let old_at = at(&["objects", name]);
            let direction = self.reach.object(name);
            match new.objects.get(name) {
                Some(after) => self.object(name, before, after, direction),
                None => match self.renamed_objects.get(name.as_str()).copied() {
                    Some(renamed) => {
                        let on_wire = name_on_wire(before.wire) || name_on_wire(new.objects[renamed].wire);
                        let (severity, why) = if on_wire && direction != Direction::NONE {
                            (WireBreaking, format!("`{name}` is now `{renamed}`: the versioned-object envelope carries the name, so old readers refuse it"))
                        } else {
                            (SourceBreaking, format!("`{name}` is now `{renamed}` with the same fields: the plain wire form is intact, generated names change"))
                        };
                        self.push(severity, "object-renamed", Some(&old_at), Some(&at(&["objects", renamed])), why);
                    }
                    None => self.removed(
                        direction,
                        "object-removed",
                        &old_at,
                        format!("the object `{name}` was removed and travels in {}", direction.describe()),
                    ),
                },
            }
        }
        for name in new.objects.keys().filter(|name| !old.objects.contains_key(*name)) {
            if !self.renamed_objects.values().any(|renamed| renamed == name) {
                self.push(
                    Compatible,
                    "object-added",
                    None,
                    Some(&at(&["objects", name])),
                    format!("new object `{name}`"),
                );
            }
        }
    }

    fn object(&mut self, name: &str, before: &'s Object, after: &'s Object, direction: Direction) {
        let here = at(&["objects", name]);
        self.deprecation(&here, before.deprecated.is_some(), after.deprecated.is_some());
        self.description(&here, &before.description, &after.description);
        if before.wire != after.wire || before.namespace != after.namespace {
            self.changed(direction, "object-wire-changed", &here, "the wire form or namespace changed".into());
        }
        let base = |object: &'s Object| object.extends.as_ref().map(|extends| extends.object.as_str());
        if base(before) != base(after)
            && !matches!((base(before), base(after)), (Some(b), Some(a)) if self.renamed_objects.get(b) == Some(&a))
        {
            self.changed(
                direction,
                "object-base-changed",
                &here,
                format!("the base changed from {:?} to {:?}: the inherited fields differ", base(before), base(after)),
            );
        }
        if name_on_wire(before.wire) {
            for entry in &before.history {
                let version_at = format!("{here}/history");
                if !after.history.iter().any(|other| other.version == entry.version) {
                    self.changed(
                        direction,
                        "object-version-removed",
                        &version_at,
                        format!(
                            "version {} of `{name}` is gone: peers that send or ask for it are refused",
                            entry.version
                        ),
                    );
                } else if lock::fingerprint(self.old, before, entry.version)
                    != lock::fingerprint(self.new, after, entry.version)
                {
                    self.changed(
                        direction,
                        "object-version-changed",
                        &here,
                        format!("the shape of published version {} of `{name}` changed (the lock refuses this too); add a version instead", entry.version),
                    );
                }
            }
        }
        let current = |object: &'s Object| -> Vec<(&'s str, &'s Field)> {
            object.fields.iter().filter(|(_, f)| f.removed.is_none()).map(|(n, f)| (n.as_str(), f)).collect()
        };
        let pairs = pair_by_wire(&current(before), &current(after), |name, field: &Field| {
            field.wire_name.clone().unwrap_or_else(|| name.to_string())
        });
        for Pair { old_name, old, new_name, new } in pairs.matched {
            let (old_at, new_at) = (format!("{here}/fields/{old_name}"), format!("{here}/fields/{new_name}"));
            if old_name != new_name {
                self.push(
                    SourceBreaking,
                    "field-renamed",
                    Some(&old_at),
                    Some(&new_at),
                    format!("the field `{old_name}` is now `{new_name}` in generated code; its wire name is kept"),
                );
            }
            self.field(&old_at, &new_at, old, new, direction);
        }
        for Pair { old_name, old, new, .. } in pairs.rewired {
            let field_at = format!("{here}/fields/{old_name}");
            let why = format!(
                "the field travels as `{}` instead of `{}`: peers of either revision miss it",
                new.wire_name.as_deref().unwrap_or(old_name),
                old.wire_name.as_deref().unwrap_or(old_name),
            );
            self.changed(direction, "field-wire-name-changed", &field_at, why);
        }
        for (field_name, _) in pairs.removed {
            let old_at = format!("{here}/fields/{field_name}");
            let new_at = after.fields.contains_key(field_name).then(|| old_at.clone());
            let (severity, why) = if direction.output() {
                (WireBreaking, "a field of a type servers send was removed: old readers expect it".to_string())
            } else if direction.input() && !after.tolerate_unknown_fields {
                (
                    WireBreaking,
                    "a field of a type clients send was removed: servers refuse old clients that still send it"
                        .to_string(),
                )
            } else {
                (Compatible, format!("a field was removed from a type that travels in {}", direction.describe()))
            };
            self.push(severity, "field-removed", Some(&old_at), new_at.as_deref(), why);
        }
        for (field_name, field) in pairs.added {
            let new_at = format!("{here}/fields/{field_name}");
            let (severity, rule, why) = if direction.input() && field.required && field.default.is_none() {
                (
                    WireBreaking,
                    "required-field-added",
                    "a required field without default was added to a type clients send: old clients do not send it",
                )
            } else {
                (Compatible, "field-added", "a field was added that old peers may leave out or skip")
            };
            self.push(severity, rule, None, Some(&new_at), why.to_string());
        }
    }

    fn field(&mut self, here: &str, new_here: &str, before: &'s Field, after: &'s Field, direction: Direction) {
        self.deprecation(here, before.deprecated.is_some(), after.deprecated.is_some());
        self.description(here, &before.description, &after.description);
        let optional = |field: &Field| !field.required || field.default.is_some();
        if optional(before) != optional(after) {
            if optional(after) {
                self.judge(
                    direction.output(),
                    "field-made-optional",
                    here,
                    "the field may now be absent from a type servers send: old readers expect it",
                )
            } else {
                self.judge(
                    direction.input(),
                    "field-made-required",
                    here,
                    "the field must now be given in a type clients send: old clients may leave it out",
                )
            }
        }
        if before.nullable != after.nullable {
            if after.nullable {
                self.judge(
                    direction.output(),
                    "field-made-nullable",
                    here,
                    "the field may now be null in a type servers send: old readers do not expect null",
                )
            } else {
                self.judge(
                    direction.input(),
                    "field-made-non-nullable",
                    here,
                    "the field may no longer be null in a type clients send: old clients may send null",
                )
            }
        }
        if before.default != after.default && before.default.is_some() && after.default.is_some() {
            self.judge(
                direction.input(),
                "default-changed",
                here,
                "the default changed: a value old clients leave out now means something else",
            )
        }
        let place = Place { old: &format!("{here}/schema"), new: &format!("{new_here}/schema"), direction };
        self.expr(&before.schema, &after.schema, &place, false);
    }

    pub(super) fn errors(&mut self) {
        let (old, new) = (self.old, self.new);
        let used: BTreeSet<&str> = old
            .services
            .values()
            .flat_map(|service| service.methods.values())
            .flat_map(|method| method.errors.iter().map(String::as_str))
            .collect();
        for (name, before) in &old.errors {
            let here = at(&["errors", name]);
            let Some(after) = new.errors.get(name) else {
                let direction = if used.contains(name.as_str()) { Direction::OUTPUT } else { Direction::NONE };
                self.removed(direction, "error-removed", &here, format!("the error `{name}` was removed"));
                continue;
            };
            self.description(&here, &before.description, &after.description);
            if before.code != after.code {
                self.push(
                    WireBreaking,
                    "error-code-changed",
                    Some(&format!("{here}/code")),
                    Some(&format!("{here}/code")),
                    format!("the code changed from {} to {}: clients match errors by code", before.code, after.code),
                );
            }
            if before.message != after.message {
                self.push(
                    Compatible,
                    "error-message-changed",
                    Some(&here),
                    Some(&here),
                    "clients match errors by code, not message".into(),
                );
            }
            if before.data != after.data {
                self.push(
                    WireBreaking,
                    "error-data-changed",
                    Some(&format!("{here}/data")),
                    Some(&format!("{here}/data")),
                    "the shape of the error's data changed: clients read it as declared".into(),
                );
            }
        }
        for name in new.errors.keys().filter(|name| !old.errors.contains_key(*name)) {
            self.push(Compatible, "error-added", None, Some(&at(&["errors", name])), format!("new error `{name}`"));
        }
    }

    pub(super) fn services(&mut self) {
        let (old, new) = (self.old, self.new);
        for (name, before) in &old.services {
            let here = at(&["services", name]);
            let Some(after) = new.services.get(name) else {
                self.push(
                    WireBreaking,
                    "service-removed",
                    Some(&here),
                    None,
                    format!("the service `{name}` was removed: its methods and events are gone"),
                );
                continue;
            };
            self.description(&here, &before.description, &after.description);
            let members = |service: &'s IndexMap<String, Method>| -> Vec<(&'s str, &'s Method)> {
                service.iter().map(|(n, m)| (n.as_str(), m)).collect()
            };
            let method_wire = |method_name: &str, method: &Method| {
                method.wire_name.clone().unwrap_or(format!("{name}.{method_name}"))
            };
            let methods = pair_by_wire(&members(&before.methods), &members(&after.methods), method_wire);
            for Pair { old_name, old, new_name, new } in methods.matched {
                let (old_at, new_at) = (method_at(name, "methods", old_name), method_at(name, "methods", new_name));
                if old_name != new_name {
                    self.push(
                        SourceBreaking,
                        "method-renamed",
                        Some(&old_at),
                        Some(&new_at),
                        format!("`{name}.{old_name}` is now `{name}.{new_name}` in generated code; it is called by the same wire name"),
                    );
                }
                self.method(&old_at, old, new);
            }
            for Pair { old_name, old, new, .. } in methods.rewired {
                self.push(
                    WireBreaking,
                    "method-wire-name-changed",
                    Some(&method_at(name, "methods", old_name)),
                    Some(&method_at(name, "methods", old_name)),
                    format!(
                        "`{name}.{old_name}` is now called `{}` instead of `{}`: clients calling the old name get MethodNotFound",
                        method_wire(old_name, new),
                        method_wire(old_name, old)
                    ),
                );
            }
            for (method_name, _) in methods.removed {
                self.push(
                    WireBreaking,
                    "method-removed",
                    Some(&method_at(name, "methods", method_name)),
                    None,
                    format!("`{name}.{method_name}` was removed: clients that call it get MethodNotFound"),
                );
            }
            for (method_name, _) in methods.added {
                self.push(
                    Compatible,
                    "method-added",
                    None,
                    Some(&method_at(name, "methods", method_name)),
                    format!("new method `{name}.{method_name}`"),
                );
            }
            let live = |events: &'s IndexMap<String, Event>| -> Vec<(&'s str, &'s Event)> {
                events.iter().filter(|(_, e)| e.removed.is_none()).map(|(n, e)| (n.as_str(), e)).collect()
            };
            let event_wire =
                |event_name: &str, event: &Event| event.wire_name.clone().unwrap_or(format!("{name}.{event_name}"));
            let events = pair_by_wire(&live(&before.events), &live(&after.events), event_wire);
            for Pair { old_name, old, new_name, new } in events.matched {
                let (old_at, new_at) = (method_at(name, "events", old_name), method_at(name, "events", new_name));
                if old_name != new_name {
                    self.push(
                        SourceBreaking,
                        "event-renamed",
                        Some(&old_at),
                        Some(&new_at),
                        format!("`{name}.{old_name}` is now `{name}.{new_name}` in generated code; it is sent under the same wire name"),
                    );
                }
                self.event(&old_at, old, new);
            }
            for Pair { old_name, old, new, .. } in events.rewired {
                self.push(
                    WireBreaking,
                    "event-wire-name-changed",
                    Some(&method_at(name, "events", old_name)),
                    Some(&method_at(name, "events", old_name)),
                    format!(
                        "`{name}.{old_name}` is now sent as `{}` instead of `{}`: subscribers wait for the old name in vain",
                        event_wire(old_name, new),
                        event_wire(old_name, old)
                    ),
                );
            }
            for (event_name, _) in events.removed {
                let event_at = method_at(name, "events", event_name);
                let new_at = after.events.contains_key(event_name).then(|| format!("{event_at}/removed"));
                self.push(
                    WireBreaking,
                    "event-removed",
                    Some(&event_at),
                    new_at.as_deref(),
                    format!("servers no longer send `{name}.{event_name}`: subscribers wait for it in vain"),
                );
            }
            for (event_name, _) in events.added {
                self.push(
                    Compatible,
                    "event-added",
                    None,
                    Some(&method_at(name, "events", event_name)),
                    format!("new event `{name}.{event_name}`"),
                );
            }
        }
        for name in new.services.keys().filter(|name| !old.services.contains_key(*name)) {
            self.push(
                Compatible,
                "service-added",
                None,
                Some(&at(&["services", name])),
                format!("new service `{name}`"),
            );
        }
    }

    fn method(&mut self, here: &str, before: &'s Method, after: &'s Method) {
        self.deprecation(here, before.deprecated.is_some(), after.deprecated.is_some());
        self.description(here, &before.description, &after.description);
        if before.notification != after.notification {
            self.push(WireBreaking, "notification-changed", Some(here), Some(here), "the method changed between notification and call: one side waits for an answer the other never sends, or sends one unasked".into());
        }
        self.params(here, &before.params, &after.params, Direction::INPUT);
        let result_at = format!("{here}/result");
        match (&before.result, &after.result) {
            (Some(old), Some(new)) => {
                self.expr(old, new, &Place { old: &result_at, new: &result_at, direction: Direction::OUTPUT }, false)
            }
            (Some(_), None) => self.push(
                WireBreaking,
                "result-removed",
                Some(&result_at),
                None,
                "the result is gone: callers read one".into(),
            ),
            (None, Some(_)) => self.push(
                Compatible,
                "result-added",
                None,
                Some(&result_at),
                "a result was added to a method without one".into(),
            ),
            (None, None) => {}
        }
        for error in after.errors.iter().filter(|e| !before.errors.contains(e)) {
            self.push(
                Compatible,
                "method-error-added",
                None,
                Some(&format!("{here}/errors")),
                format!("the method may now answer `{error}`; clients handle errors they do not know by code"),
            );
        }
        for error in before.errors.iter().filter(|e| !after.errors.contains(e)) {
            self.push(
                Compatible,
                "method-error-dropped",
                Some(&format!("{here}/errors")),
                None,
                format!("the method no longer answers `{error}`"),
            );
        }
        let http_at = format!("{here}/http");
        match (&before.http, &after.http) {
            (Some(old), Some(new)) if old.method != new.method || old.path != new.path || old.body != new.body => self
                .push(
                    WireBreaking,
                    "route-changed",
                    Some(&http_at),
                    Some(&http_at),
                    format!(
                        "the REST route changed from {} {} to {} {} (or its body): HTTP clients call the old one",
                        old.method.as_str(),
                        old.path,
                        new.method.as_str(),
                        new.path
                    ),
                ),
            (Some(old), None) => self.push(
                WireBreaking,
                "route-removed",
                Some(&http_at),
                None,
                format!("the REST route {} {} was removed", old.method.as_str(), old.path),
            ),
            (None, Some(new)) => self.push(
                Compatible,
                "route-added",
                None,
                Some(&http_at),
                format!("new REST route {} {}", new.method.as_str(), new.path),
            ),
            _ => {}
        }
    }

    fn event(&mut self, here: &str, before: &'s Event, after: &'s Event) {
        self.deprecation(here, before.deprecated.is_some(), after.deprecated.is_some());
        self.description(here, &before.description, &after.description);
        self.params(here, &before.params, &after.params, Direction::OUTPUT);
    }

    /// A method's params (input) or an event's (output).
    fn params(
        &mut self,
        here: &str,
        before: &'s IndexMap<String, Param>,
        after: &'s IndexMap<String, Param>,
        direction: Direction,
    ) {
        let members = |params: &'s IndexMap<String, Param>| -> Vec<(&'s str, &'s Param)> {
            params.iter().map(|(n, p)| (n.as_str(), p)).collect()
        };
        let param_wire = |name: &str, param: &Param| param.wire_name.clone().unwrap_or_else(|| name.to_string());
        let pairs = pair_by_wire(&members(before), &members(after), param_wire);
        for Pair { old_name, old: param, new_name, new: other } in &pairs.matched {
            let (param_at, new_at) = (format!("{here}/params/{old_name}"), format!("{here}/params/{new_name}"));
            if old_name != new_name {
                self.push(
                    SourceBreaking,
                    "param-renamed",
                    Some(&param_at),
                    Some(&new_at),
                    format!("the param `{old_name}` is now `{new_name}` in generated code; its wire name is kept"),
                );
            }
            self.description(&param_at, &param.description, &other.description);
            self.deprecation(&param_at, param.deprecated.is_some(), other.deprecated.is_some());
            if param.required != other.required {
                if other.required {
                    self.judge(
                        direction.input(),
                        "param-made-required",
                        &param_at,
                        "the param must now be given: old clients may leave it out",
                    );
                } else {
                    self.judge(
                        direction.output(),
                        "param-made-optional",
                        &param_at,
                        "the event's param may now be absent: old subscribers read it",
                    );
                }
            }
            let (schema_at, new_schema_at) = (format!("{param_at}/schema"), format!("{new_at}/schema"));
            self.expr(&param.schema, &other.schema, &Place { old: &schema_at, new: &new_schema_at, direction }, false);
        }
        for Pair { old_name, old, new, .. } in &pairs.rewired {
            let param_at = format!("{here}/params/{old_name}");
            let why = format!(
                "the param travels as `{}` instead of `{}`: peers of either revision miss it",
                param_wire(old_name, new),
                param_wire(old_name, old)
            );
            self.push(WireBreaking, "param-wire-name-changed", Some(&param_at), Some(&param_at), why);
        }
        for (name, param) in &pairs.removed {
            let param_at = format!("{here}/params/{name}");
            if direction.input() {
                self.push(
                    WireBreaking,
                    "param-removed",
                    Some(&param_at),
                    None,
                    "the param was removed: servers refuse old clients that still send it".into(),
                );
            } else if param.required {
                self.push(
                    WireBreaking,
                    "event-param-removed",
                    Some(&param_at),
                    None,
                    "a required param of the event was removed: subscribers read it".into(),
                );
            } else {
                self.push(
                    Compatible,
                    "event-param-removed",
                    Some(&param_at),
                    None,
                    "an optional param of the event was removed: subscribers handle its absence".into(),
                );
            }
        }
        for (name, param) in &pairs.added {
            let param_at = format!("{here}/params/{name}");
            if direction.input() && param.required {
                self.push(
                    WireBreaking,
                    "required-param-added",
                    None,
                    Some(&param_at),
                    "a required param was added: old clients do not send it".into(),
                );
            } else {
                self.push(
                    Compatible,
                    "optional-param-added",
                    None,
                    Some(&param_at),
                    "a param was added that old peers may leave out or skip".into(),
                );
            }
        }
        // By-position callers see the order of the params both revisions share, by wire name.
        let old_order: Vec<String> = pairs.matched.iter().map(|pair| param_wire(pair.old_name, pair.old)).collect();
        let new_order: Vec<String> =
            after.iter().map(|(name, param)| param_wire(name, param)).filter(|wire| old_order.contains(wire)).collect();
        if direction.input() && old_order != new_order {
            self.push(
                WireBreaking,
                "params-reordered",
                Some(&format!("{here}/params")),
                Some(&format!("{here}/params")),
                "the params' order changed: clients that pass them by position send them to the wrong names".into(),
            );
        }
    }

    pub(super) fn data_trees(&mut self) {
        let (old, new) = (self.old, self.new);
        for (name, before) in &old.data_trees {
            let here = at(&["data_trees", name]);
            let Some(after) = new.data_trees.get(name) else {
                self.push(
                    WireBreaking,
                    "tree-removed",
                    Some(&here),
                    None,
                    format!("the data tree `{name}` was removed: its readers find nothing"),
                );
                continue;
            };
            let layout = |tree: &crate::model::DataTree| {
                serde_json::to_value((&tree.object, &tree.root, &tree.version_key, &tree.paths)).ok()
            };
            if layout(before) != layout(after) {
                self.push(
                    WireBreaking,
                    "tree-layout-changed",
                    Some(&here),
                    Some(&here),
                    "the tree's object, root, version key or paths changed: readers of the old layout look elsewhere"
                        .into(),
                );
            }
        }
        for name in new.data_trees.keys().filter(|name| !old.data_trees.contains_key(*name)) {
            self.push(
                Compatible,
                "tree-added",
                None,
                Some(&at(&["data_trees", name])),
                format!("new data tree `{name}`"),
            );
        }
    }

    /// Compares two type expressions at `place`; `open` tells whether the enum the new one is part
    /// of keeps unknown values.
    fn expr(&mut self, before: &'s TypeExpr, after: &'s TypeExpr, place: &Place, open: bool) {
        if before == after {
            return;
        }
        let name = |expr: &'s TypeExpr| expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/"));
        match (name(before), name(after)) {
            // The named type is compared once, where it is declared.
            (Some(b), Some(a)) if b == a || self.renamed_types.get(b) == Some(&a) => return,
            (None, None) => {}
            (b, a) => {
                let (old_resolved, old_open) = self.resolve(self.old, before);
                let (new_resolved, new_open) = self.resolve(self.new, after);
                if old_resolved == new_resolved && old_open == new_open {
                    self.push(
                        SourceBreaking,
                        "type-moved",
                        Some(place.old),
                        Some(place.new),
                        format!("the type is now written {} instead of {}: the same values on the wire, generated types change", describe(a), describe(b)),
                    );
                } else {
                    self.expr(old_resolved, new_resolved, place, new_open);
                }
                return;
            }
        }
        match (&before.object, &after.object) {
            (Some(b), Some(a)) => {
                if b != a && self.renamed_objects.get(b.as_str()) != Some(&a.as_str()) {
                    self.changed(
                        place.direction,
                        "type-changed",
                        place.old,
                        format!("the value is now a `{a}` instead of a `{b}`"),
                    );
                    return;
                }
                if before.subclasses != after.subclasses {
                    if after.subclasses {
                        self.judge_at(place.direction.output(), "type-widened", place, "the field may now hold any subclass, in a type servers send: old readers know only the base")
                    } else {
                        self.judge_at(
                            place.direction.input(),
                            "type-narrowed",
                            place,
                            "the field no longer takes subclasses, in a type clients send",
                        )
                    }
                }
                return;
            }
            (None, None) => {}
            _ => {
                self.changed(
                    place.direction,
                    "type-changed",
                    place.old,
                    "the value changed between an object and another type".into(),
                );
                return;
            }
        }
        if before.json_type != after.json_type {
            match (before.json_type, after.json_type) {
                (Some(JsonType::Integer), Some(JsonType::Number)) => self.judge_at(
                    place.direction.output(),
                    "type-widened",
                    place,
                    "integers became numbers, in a type servers send: old readers expect integers",
                ),
                (Some(JsonType::Number), Some(JsonType::Integer)) => self.judge_at(
                    place.direction.input(),
                    "type-narrowed",
                    place,
                    "numbers became integers, in a type clients send: old clients may send fractions",
                ),
                (b, a) => self.changed(
                    place.direction,
                    "type-changed",
                    place.old,
                    format!("the JSON type changed from {b:?} to {a:?}"),
                ),
            }
            return;
        }
        self.enum_values(before, after, place, open);
        let narrower = |b: Option<u64>, a: Option<u64>, lower: bool| match (b, a) {
            (b, a) if b == a => None,
            (None, Some(_)) => Some(true),
            (Some(_), None) => Some(false),
            (Some(b), Some(a)) => Some(if lower { a > b } else { a < b }),
            _ => None,
        };
        let signed = |v: Option<i64>| v.map(|v| v as i128);
        let narrower_signed = |b: Option<i64>, a: Option<i64>, lower: bool| match (signed(b), signed(a)) {
            (b, a) if b == a => None,
            (None, Some(_)) => Some(true),
            (Some(_), None) => Some(false),
            (Some(b), Some(a)) => Some(if lower { a > b } else { a < b }),
            _ => None,
        };
        let bounds = [
            ("minLength", narrower(before.min_length, after.min_length, true)),
            ("maxLength", narrower(before.max_length, after.max_length, false)),
            ("minItems", narrower(before.min_items, after.min_items, true)),
            ("maxItems", narrower(before.max_items, after.max_items, false)),
            ("minimum", narrower_signed(before.minimum, after.minimum, true)),
            ("maximum", narrower_signed(before.maximum, after.maximum, false)),
        ];
        for (keyword, narrowed) in bounds {
            match narrowed {
                Some(true) => self.judge_at(
                    place.direction.input(),
                    "constraint-narrowed",
                    place,
                    &format!("`{keyword}` is stricter, in a type clients send: values old clients send may be refused"),
                ),
                Some(false) => self.judge_at(
                    place.direction.output(),
                    "constraint-widened",
                    place,
                    &format!("`{keyword}` is looser, in a type servers send: old readers may refuse what is sent"),
                ),
                None => {}
            }
        }
        for (keyword, b, a) in [("format", &before.format, &after.format), ("pattern", &before.pattern, &after.pattern)]
        {
            match (b, a) {
                (b, a) if b == a => {}
                (None, Some(_)) => self.judge_at(
                    place.direction.input(),
                    "constraint-narrowed",
                    place,
                    &format!("a `{keyword}` was added, in a type clients send: values old clients send may be refused"),
                ),
                (Some(_), None) => self.judge_at(
                    place.direction.output(),
                    "constraint-widened",
                    place,
                    &format!(
                        "the `{keyword}` was dropped, in a type servers send: old readers may refuse what is sent"
                    ),
                ),
                _ => self.changed(
                    place.direction,
                    "constraint-changed",
                    place.old,
                    format!("the `{keyword}` changed: values either side sends may be refused"),
                ),
            }
        }
        for (keyword, b, a) in [
            ("items", &before.items, &after.items),
            ("additionalProperties", &before.additional_properties, &after.additional_properties),
        ] {
            if let (Some(b), Some(a)) = (b, a) {
                let inner = Place {
                    old: &format!("{}/{keyword}", place.old),
                    new: &format!("{}/{keyword}", place.new),
                    direction: place.direction,
                };
                self.expr(b, a, &inner, false);
            }
        }
    }

    fn enum_values(&mut self, before: &TypeExpr, after: &TypeExpr, place: &Place, open: bool) {
        match (&before.enum_values, &after.enum_values) {
            (Some(b), Some(a)) => {
                let removed: Vec<&String> = b.iter().filter(|v| !a.contains(v)).collect();
                let added: Vec<&String> = a.iter().filter(|v| !b.contains(v)).collect();
                if !removed.is_empty() {
                    let list = quoted(&removed);
                    if place.direction.input() {
                        self.push(
                            WireBreaking,
                            "enum-value-removed",
                            Some(place.old),
                            Some(place.new),
                            format!(
                                "{list} removed from an enum clients send: servers refuse old clients that send it"
                            ),
                        );
                    } else {
                        self.push(
                            Compatible,
                            "enum-value-removed",
                            Some(place.old),
                            Some(place.new),
                            format!("{list} removed from an enum that travels in {}", place.direction.describe()),
                        );
                    }
                }
                if !added.is_empty() {
                    let list = quoted(&added);
                    if place.direction.output() && !open {
                        self.push(WireBreaking, "enum-value-added", Some(place.old), Some(place.new), format!("{list} added to a closed enum servers send: old readers refuse the new value (make the enum `open` first)"));
                    } else {
                        self.push(
                            Compatible,
                            "enum-value-added",
                            Some(place.old),
                            Some(place.new),
                            format!(
                                "{list} added to an enum that travels in {}{}",
                                place.direction.describe(),
                                if open { ", open" } else { "" }
                            ),
                        );
                    }
                }
            }
            (None, Some(_)) => self.judge_at(
                place.direction.input(),
                "constraint-narrowed",
                place,
                "the value is now limited to an enum, in a type clients send",
            ),
            (Some(_), None) => self.judge_at(
                place.direction.output() && !open,
                "constraint-widened",
                place,
                "the value is no longer limited to an enum, in a type servers send",
            ),
            (None, None) => {}
        }
    }

    /// The type expression a `$ref` names, followed to its end, and whether that type is open.
    fn resolve(&self, schema: &'s Schema, expr: &'s TypeExpr) -> (&'s TypeExpr, bool) {
        let mut current = expr;
        let mut open = false;
        for _ in 0..32 {
            let Some(named) = current
                .reference
                .as_deref()
                .and_then(|r| r.strip_prefix("#/types/"))
                .and_then(|name| schema.types.get(name))
            else {
                break;
            };
            open = named.open;
            current = &named.schema;
        }
        (current, open)
    }

    /// Wire-breaking when `breaks`, else compatible, at the same pointer in both revisions.
    fn judge(&mut self, breaks: bool, rule: &'static str, here: &str, why: &str) {
        let severity = if breaks { WireBreaking } else { Compatible };
        let why = if breaks { why.to_string() } else { format!("compatible for this direction; {why}") };
        self.push(severity, rule, Some(here), Some(here), why);
    }

    fn judge_at(&mut self, breaks: bool, rule: &'static str, place: &Place, why: &str) {
        let severity = if breaks { WireBreaking } else { Compatible };
        let why = if breaks {
            why.to_string()
        } else {
            format!("compatible, the type travels in {}: {why}", place.direction.describe())
        };
        self.push(severity, rule, Some(place.old), Some(place.new), why);
    }

    /// A change that breaks whichever way the type travels, compatible when it travels nowhere.
    fn changed(&mut self, direction: Direction, rule: &'static str, here: &str, why: String) {
        let severity = if direction == Direction::NONE { Compatible } else { WireBreaking };
        self.push(severity, rule, Some(here), Some(here), why);
    }

    fn removed(&mut self, direction: Direction, rule: &'static str, here: &str, why: String) {
        let severity = if direction == Direction::NONE { Compatible } else { WireBreaking };
        self.push(severity, rule, Some(here), None, why);
    }

    fn deprecation(&mut self, here: &str, before: bool, after: bool) {
        if before != after {
            let why = if after { "deprecated: still served, warned about" } else { "no longer deprecated" };
            self.push(Compatible, "deprecated", Some(here), Some(here), why.into());
        }
    }

    fn description(&mut self, here: &str, before: &str, after: &str) {
        if before != after {
            self.push(Compatible, "description-changed", Some(here), Some(here), "documentation only".into());
        }
    }
}

/// The pointer of a service's method or event (`kind` is `methods` or `events`).
fn method_at(service: &str, kind: &str, name: &str) -> String {
    at(&["services", service, kind, name])
}

fn describe(name: Option<&str>) -> String {
    name.map_or("inline".to_string(), |name| format!("as `#/types/{name}`"))
}

fn quoted(values: &[&String]) -> String {
    values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
}

trait EmptyExpr {
    fn is_empty_expr(&self) -> bool;
}

impl EmptyExpr for TypeExpr {
    /// A type expression that says nothing (never true of a checked schema): not a rename key.
    fn is_empty_expr(&self) -> bool {
        *self == TypeExpr::default()
    }
}
