//! oVirt vdsm's API schema (`vdsm-api.yml`, optionally with `vdsm-events.yml`) as a vproto
//! schema.
//!
//! | vdsm | vproto |
//! |---|---|
//! | `type: object` with `properties` | a plain object (version 1.0, `tolerate_unknown_fields`), a field per property, optional when it has a `defaultvalue` |
//! | `type: enum` | a named string enum (values as strings); one whose values clash as Rust variants becomes a string with a `pattern` |
//! | `type: map` | a named `type: object` with `additionalProperties` |
//! | `type: union` | a plain object holding every member's fields, all optional |
//! | `type: alias` | a named type of its `sourcetype` |
//! | `Namespace.verb` | method `verb` (snake_case) of service `namespace` |
//! | `'|ns|name|'` events | event `name` of service `ns` |
//! | `added` / `deprecated` | `since` / `deprecated` (protocol versions, see [`crate::names::Releases`]) |

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use indexmap::IndexMap;
use serde_norway::{Mapping, Value};
use vproto_codegen::model::{
    Deprecation, Event, Field, HistoryEntry, JsonType, NamedType, Object, Param, Protocol, Service, TypeExpr, Version,
    WireForm,
};

use crate::{
    names::{enum_or_pattern, snake_case, type_name, Names, Releases},
    read, ImportError, Imported, Note, UNSET,
};

/// What a vdsm type definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Object,
    Union,
    Enum,
    Map,
    Alias,
}

/// One type definition of either file.
struct Definition {
    source: String,
    location: String,
    name: String,
    kind: Kind,
    body: Mapping,
}

/// Imports `api` (vdsm-api.yml) and, when given, `events` (vdsm-events.yml).
pub fn import(api: &Path, events: Option<&Path>) -> Result<Imported, ImportError> {
    let api_text = read(api)?;
    let events_text = events.map(read).transpose()?;
    let api_name = file_name(api);
    let events = events.zip(events_text.as_deref()).map(|(path, text)| (file_name(path), text));
    import_text(&api_name, &api_text, events.as_ref().map(|(name, text)| (name.as_str(), *text)))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// Imports the text of vdsm-api.yml (named `api_name` in notes and errors) and of the events file.
pub fn import_text(api_name: &str, api: &str, events: Option<(&str, &str)>) -> Result<Imported, ImportError> {
    let mut importer = Importer::default();
    let mut parse = |name: &str, text: &str| -> Result<Mapping, ImportError> {
        let value = match serde_norway::from_str::<Value>(text) {
            Ok(value) => value,
            // vdsm-api.yml repeats keys (PyYAML, which vdsm reads it with, keeps the last): read
            // it again through serde_json's maps, which do the same, and say where.
            Err(error) if error.to_string().contains("duplicate entry") => {
                importer.note(name, format!("{error}; the last value is kept, as PyYAML does"));
                let json: serde_json::Value = serde_norway::from_str(text)
                    .map_err(|error| ImportError::invalid(name, format!("not valid YAML: {error}")))?;
                serde_norway::to_value(json).map_err(|error| ImportError::invalid(name, error.to_string()))?
            }
            Err(error) => return Err(ImportError::invalid(name, format!("not valid YAML: {error}"))),
        };
        match value {
            Value::Mapping(mapping) => Ok(mapping),
            _ => Err(ImportError::invalid(name, "the document is not a YAML mapping")),
        }
    };
    let api = parse(api_name, api)?;
    let events = events.map(|(name, text)| parse(name, text).map(|mapping| (name, mapping))).transpose()?;
    importer.definitions(api_name, &api)?;
    if let Some((name, events)) = &events {
        importer.definitions(name, events)?;
    }
    importer.types();
    importer.verbs(api_name, &api)?;
    if let Some((name, events)) = &events {
        importer.events(name, events)?;
    }
    Ok(importer.finish())
}

#[derive(Default)]
struct Importer {
    definitions: Vec<Definition>,
    by_source: HashMap<String, usize>,
    type_names: Names,
    releases: Releases,
    notes: Vec<Note>,
    types: IndexMap<String, NamedType>,
    objects: IndexMap<String, Object>,
    services: BTreeMap<String, Service>,
    service_names: Names,
    /// Versions given to elements, resolved once the history is known (`None`: the first).
    pending_types: Vec<(String, Option<Version>)>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn get<'m>(mapping: &'m Mapping, key: &str) -> Option<&'m Value> {
    mapping.get(key)
}

fn description(mapping: &Mapping, fallback: &str) -> String {
    text(get(mapping, "description"))
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

impl Importer {
    fn note(&mut self, location: &str, what: impl Into<String>) {
        self.notes.push(Note { location: location.to_string(), what: what.into() });
    }

    fn release(&mut self, mapping: &Mapping, key: &str, location: &str) -> Option<Version> {
        let release = text(get(mapping, key))?;
        let version = self.releases.version(&release);
        if version.is_none() {
            self.note(location, format!("`{key}: {release}` is not a release number; left out"));
        }
        version
    }

    fn definitions(&mut self, file: &str, document: &Mapping) -> Result<(), ImportError> {
        let Some(types) = get(document, "types") else { return Ok(()) };
        let types = types
            .as_mapping()
            .ok_or_else(|| ImportError::invalid(format!("{file}: types"), "`types` is not a mapping"))?;
        for (key, body) in types {
            let source = text(Some(key)).unwrap_or_default();
            let location = format!("{file}: types/{source}");
            let body = body
                .as_mapping()
                .ok_or_else(|| ImportError::invalid(&location, "a type definition is a mapping"))?
                .clone();
            if self.by_source.contains_key(&source) {
                self.note(&location, "defined again (the events file repeats API types); the first definition is kept");
                continue;
            }
            let kind = match text(get(&body, "type")).as_deref() {
                Some("object") => Kind::Object,
                // Nine types of vdsm-api.yml leave `type: object` out and give `properties`.
                None if get(&body, "properties").is_some() => Kind::Object,
                // A definition whose `type` is another type (or a list of one) names that type.
                None if matches!(get(&body, "type"), Some(Value::Mapping(_) | Value::Sequence(_))) => Kind::Alias,
                None if get(&body, "type").is_none() => {
                    self.note(&location, "neither `type` nor `properties`: an object without fields");
                    Kind::Object
                }
                Some("union") => Kind::Union,
                Some("enum") => Kind::Enum,
                Some("map") => Kind::Map,
                Some("alias") => Kind::Alias,
                other => {
                    return Err(ImportError::invalid(
                        &location,
                        format!("unknown type kind {other:?} (expected object, union, enum, map or alias)"),
                    ))
                }
            };
            let (name, renamed) = self.type_names.give(&source, type_name);
            if renamed {
                self.note(&location, format!("named `{name}`: type names are UpperCamelCase letters and digits"));
            }
            self.by_source.insert(source.clone(), self.definitions.len());
            self.definitions.push(Definition { source, location, name, kind, body });
        }
        Ok(())
    }

    /// The type expression of a vdsm type: a primitive name, `[T]`, an alias of a definition
    /// (the expanded mapping with its `name`), or an inline map.
    fn expr(&mut self, value: &Value, location: &str) -> TypeExpr {
        let plain = |json_type| TypeExpr { json_type: Some(json_type), ..TypeExpr::default() };
        match value {
            Value::String(name) => match name.as_str() {
                "string" => plain(JsonType::String),
                "int" | "long" => plain(JsonType::Integer),
                "uint" | "ulong" => TypeExpr { minimum: Some(0), ..plain(JsonType::Integer) },
                "float" | "double" => plain(JsonType::Number),
                "boolean" | "bool" => plain(JsonType::Boolean),
                "dict" | "object" | "map" => {
                    self.note(location, format!("`{name}` gives no value type: mapped to a map of strings"));
                    TypeExpr {
                        additional_properties: Some(Box::new(plain(JsonType::String))),
                        ..plain(JsonType::Object)
                    }
                }
                other => match self.by_source.get(other) {
                    Some(&index) => self.reference(index),
                    None => {
                        self.note(location, format!("unknown type `{other}`: mapped to a string"));
                        plain(JsonType::String)
                    }
                },
            },
            Value::Sequence(items) => {
                if items.len() != 1 {
                    self.note(location, format!("a list type names {} element types; the first is used", items.len()));
                }
                let items = match items.first() {
                    Some(item) => self.expr(item, location),
                    None => plain(JsonType::String),
                };
                TypeExpr { items: Some(Box::new(items)), ..plain(JsonType::Array) }
            }
            Value::Mapping(mapping) => {
                if let Some(index) = text(get(mapping, "name")).and_then(|name| self.by_source.get(&name).copied()) {
                    return self.reference(index);
                }
                if text(get(mapping, "type")).as_deref() == Some("map") {
                    return self.map_expr(mapping, location);
                }
                self.note(location, "an inline type without a name: mapped to a string");
                plain(JsonType::String)
            }
            _ => {
                self.note(location, "a type that is neither a name, a list nor a definition: mapped to a string");
                plain(JsonType::String)
            }
        }
    }

    fn map_expr(&mut self, mapping: &Mapping, location: &str) -> TypeExpr {
        if let Some(key) = get(mapping, "key-type") {
            let key = self.expr(key, &format!("{location}/key-type"));
            if key.json_type != Some(JsonType::String) && key.reference.is_none() {
                self.note(location, "the keys are not strings; JSON object keys are, so they travel as their text");
            }
        }
        let values = match get(mapping, "value-type") {
            Some(value) => self.expr(value, &format!("{location}/value-type")),
            None => {
                self.note(location, "a map without `value-type`: values mapped to strings");
                TypeExpr { json_type: Some(JsonType::String), ..TypeExpr::default() }
            }
        };
        TypeExpr {
            json_type: Some(JsonType::Object),
            additional_properties: Some(Box::new(values)),
            ..TypeExpr::default()
        }
    }

    fn reference(&self, index: usize) -> TypeExpr {
        let definition = &self.definitions[index];
        match definition.kind {
            Kind::Object | Kind::Union => TypeExpr { object: Some(definition.name.clone()), ..TypeExpr::default() },
            _ => TypeExpr { reference: Some(format!("#/types/{}", definition.name)), ..TypeExpr::default() },
        }
    }

    fn types(&mut self) {
        for index in 0..self.definitions.len() {
            let (location, name, kind, body) = {
                let d = &self.definitions[index];
                (d.location.clone(), d.name.clone(), d.kind, d.body.clone())
            };
            let since = self.release(&body, "added", &location);
            let deprecated = self.release(&body, "deprecated", &location);
            let description = description(&body, &format!("vdsm's {}.", self.definitions[index].source));
            match kind {
                Kind::Object => {
                    let fields = self.fields(&body, &location);
                    self.object(&name, description, fields, deprecated);
                }
                Kind::Union => {
                    let fields = self.union_fields(&body, &location);
                    self.object(&name, description, fields, deprecated);
                }
                Kind::Enum => {
                    let schema = self.enum_expr(&body, &location);
                    self.named(&name, description, since, deprecated, schema);
                }
                Kind::Map => {
                    let schema = self.map_expr(&body, &location);
                    self.named(&name, description, since, deprecated, schema);
                }
                Kind::Alias => {
                    let schema =
                        match get(&body, "sourcetype").or_else(|| get(&body, "type").filter(|t| !t.is_string())) {
                            Some(source) => self.expr(source, &location),
                            None => {
                                self.note(&location, "an alias without `sourcetype`: mapped to a string");
                                TypeExpr { json_type: Some(JsonType::String), ..TypeExpr::default() }
                            }
                        };
                    self.named(&name, description, since, deprecated, schema);
                }
            }
        }
    }

    fn named(
        &mut self,
        name: &str,
        description: String,
        since: Option<Version>,
        deprecated: Option<Version>,
        schema: TypeExpr,
    ) {
        self.pending_types.push((name.to_string(), since));
        self.types.insert(name.to_string(), NamedType { description, since: UNSET, deprecated, open: false, schema });
    }

    fn object(
        &mut self,
        name: &str,
        description: String,
        fields: IndexMap<String, Field>,
        deprecated: Option<Version>,
    ) {
        let one = Version { major: 1, minor: 0 };
        let deprecated =
            deprecated.map(|since| Deprecation { since: one, note: format!("deprecated in protocol {since}") });
        self.objects.insert(
            name.to_string(),
            Object {
                description,
                namespace: None,
                wire: WireForm::Plain,
                version: one,
                history: vec![HistoryEntry { version: one, note: "Imported from vdsm".into() }],
                is_abstract: false,
                deprecated,
                extends: None,
                tolerate_unknown_fields: true,
                fields,
            },
        );
    }

    fn enum_expr(&mut self, body: &Mapping, location: &str) -> TypeExpr {
        let mut values = Vec::new();
        if let Some(Value::Mapping(listed)) = get(body, "values") {
            for key in listed.keys() {
                match text(Some(key)) {
                    Some(value) => {
                        if !matches!(key, Value::String(_)) {
                            self.note(
                                location,
                                format!("the value {value} is not a string; it is listed as the string \"{value}\""),
                            );
                        }
                        values.push(value);
                    }
                    None => self.note(location, "a value that is not a scalar was left out"),
                }
            }
        }
        let location = location.to_string();
        enum_or_pattern(values, &location, &mut self.notes)
    }

    /// The fields of an object's `properties`.
    fn fields(&mut self, body: &Mapping, location: &str) -> IndexMap<String, Field> {
        let mut fields = IndexMap::new();
        let mut names = Names::default();
        let properties = match get(body, "properties") {
            Some(Value::Sequence(properties)) => properties.clone(),
            Some(_) => {
                self.note(location, "`properties` is not a list; the object has no fields");
                Vec::new()
            }
            None => Vec::new(),
        };
        for property in &properties {
            let Some(property) = property.as_mapping() else {
                self.note(location, "a property that is not a mapping was left out");
                continue;
            };
            let Some(source) = text(get(property, "name")) else {
                self.note(location, "a property without a name was left out");
                continue;
            };
            let at = format!("{location}/properties/{source}");
            // The schema name is lower_snake_case; the wire keeps vdsm's spelling.
            let (name, renamed) = names.give(&source, snake_case);
            let wire_name = renamed.then(|| source.clone());
            let schema = match get(property, "type") {
                Some(value) => self.expr(value, &at),
                None => {
                    self.note(&at, "a property without a type: mapped to a string");
                    TypeExpr { json_type: Some(JsonType::String), ..TypeExpr::default() }
                }
            };
            let mut description = description(property, &format!("vdsm's {source}."));
            for key in ["added", "deprecated"] {
                if let Some(release) = text(get(property, key)) {
                    self.releases.version(&release);
                    description.push_str(&format!(" ({key} in vdsm {release})"));
                }
            }
            let deprecated = get(property, "deprecated").map(|_| Version { major: 1, minor: 0 });
            fields.insert(
                name,
                Field {
                    description,
                    schema,
                    wire_name,
                    since: Version { major: 1, minor: 0 },
                    deprecated,
                    removed: None,
                    nullable: false,
                    required: get(property, "defaultvalue").is_none(),
                    default: None,
                    child_versions: IndexMap::new(),
                },
            );
        }
        fields
    }

    /// Every member's fields, optional (a union's value is one of its members).
    fn union_fields(&mut self, body: &Mapping, location: &str) -> IndexMap<String, Field> {
        let mut fields: IndexMap<String, Field> = IndexMap::new();
        let members = match get(body, "values") {
            Some(Value::Sequence(members)) => members.clone(),
            _ => Vec::new(),
        };
        self.note(location, "a union (no tag) is mapped to one object holding every member's fields, all optional");
        for member in &members {
            let member_name = member.as_mapping().and_then(|m| text(get(m, "name"))).unwrap_or_default();
            let Some(&index) = self.by_source.get(&member_name) else {
                self.note(location, format!("member `{member_name}` is not a named type; left out"));
                continue;
            };
            let definition_body = self.definitions[index].body.clone();
            let member_location = self.definitions[index].location.clone();
            for (name, mut field) in self.fields(&definition_body, &member_location) {
                field.required = false;
                match fields.get(&name) {
                    Some(existing) if existing.schema != field.schema => self.note(
                        location,
                        format!("members give field `{name}` different types; the first member's is kept"),
                    ),
                    Some(_) => {}
                    None => {
                        fields.insert(name, field);
                    }
                }
            }
        }
        fields
    }

    fn verbs(&mut self, file: &str, document: &Mapping) -> Result<(), ImportError> {
        for (key, body) in document {
            let Some(key) = text(Some(key)) else { continue };
            if key == "types" {
                continue;
            }
            let location = format!("{file}: {key}");
            let Some((namespace, verb)) = key.split_once('.') else {
                self.note(&location, "a top-level key that is neither `types` nor `Namespace.verb`; left out");
                continue;
            };
            let body = body.as_mapping().ok_or_else(|| ImportError::invalid(&location, "a verb is a mapping"))?;
            let since = self.release(body, "added", &location);
            let deprecated = self.release(body, "deprecated", &location);
            let params = self.params(body, &location);
            let result = match get(body, "return") {
                Some(Value::Mapping(returns)) => {
                    get(returns, "type").map(|value| self.expr(value, &format!("{location}/return")))
                }
                _ => None,
            };
            let result = result.or_else(|| {
                // vdsm answers every verb; one with no declared return answers its status only.
                Some(TypeExpr { json_type: Some(JsonType::Boolean), ..TypeExpr::default() })
            });
            if get(body, "return").is_none() {
                self.note(
                    &location,
                    "no `return`: vdsm answers only its status; the result is declared `boolean` (true)",
                );
            }
            let mut method = crate::method(
                description(body, &format!("vdsm's {key}.")),
                since.unwrap_or(UNSET),
                deprecated,
                params,
                result,
            );
            let (service, method_name) = self.member(namespace, verb);
            // vdsm's clients call `Host.getCapabilities`, not `host.get_capabilities`.
            method.wire_name = Some(key.clone()).filter(|key| *key != format!("{service}.{method_name}"));
            self.services
                .entry(service)
                .or_insert_with(|| empty_service(namespace))
                .methods
                .insert(method_name, method);
        }
        Ok(())
    }

    /// The service and member names of `Namespace.verb` (or an event's `|ns|name|`), in
    /// lower_snake_case: the method or event keeps vdsm's spelling as its `wire_name`.
    fn member(&mut self, namespace: &str, member: &str) -> (String, String) {
        let (service, _) = self.service_names.give(namespace, snake_case);
        (service, snake_case(member))
    }

    fn params(&mut self, body: &Mapping, location: &str) -> IndexMap<String, Param> {
        let mut params = IndexMap::new();
        let mut names = Names::default();
        let Some(Value::Sequence(listed)) = get(body, "params") else { return params };
        for param in listed {
            let Some(param) = param.as_mapping() else {
                self.note(location, "a param that is not a mapping was left out");
                continue;
            };
            let source = text(get(param, "name")).unwrap_or_else(|| "param".into());
            let at = format!("{location}/params/{source}");
            let (name, renamed) = names.give(&source, snake_case);
            let wire_name = renamed.then(|| source.clone());
            let schema = if text(get(param, "type")).as_deref() == Some("map") {
                self.map_expr(param, &at)
            } else {
                match get(param, "type") {
                    Some(value) => self.expr(value, &at),
                    None => TypeExpr { json_type: Some(JsonType::String), ..TypeExpr::default() },
                }
            };
            let since = self.release(param, "added", &at);
            // A deprecated param is still accepted; a compatibility policy may refuse it.
            let deprecated = get(param, "deprecated").map(|_| self.release(param, "deprecated", &at).unwrap_or(UNSET));
            let optional = get(param, "defaultvalue").is_some() || since.is_some();
            params.insert(
                name,
                Param {
                    description: description(param, &format!("vdsm's {source}.")),
                    schema,
                    wire_name,
                    required: !optional,
                    since,
                    deprecated,
                },
            );
        }
        params
    }

    fn events(&mut self, file: &str, document: &Mapping) -> Result<(), ImportError> {
        for (key, body) in document {
            let Some(key) = text(Some(key)) else { continue };
            if key == "types" {
                continue;
            }
            let location = format!("{file}: {key}");
            let parts: Vec<&str> = key.split('|').filter(|part| !part.is_empty()).collect();
            let [namespace, event] = parts.as_slice() else {
                self.note(&location, "an event not named `|namespace|name|`; left out");
                continue;
            };
            let body = body.as_mapping().ok_or_else(|| ImportError::invalid(&location, "an event is a mapping"))?;
            let since = self.release(body, "added", &location);
            let params = self.params(body, &location);
            let (service, name) = self.member(namespace, event);
            let event = Event {
                description: description(body, &format!("vdsm's {key} event.")),
                since: since.unwrap_or(UNSET),
                // vdsm sends the notification under its key (`|virt|VM_status|`, a VM's id appended).
                wire_name: Some(key.clone()),
                deprecated: None,
                removed: None,
                params,
                examples: Vec::new(),
            };
            self.services.entry(service).or_insert_with(|| empty_service(namespace)).events.insert(name, event);
        }
        Ok(())
    }

    fn finish(self) -> Imported {
        let mut releases = self.releases;
        let (history, version) = releases.history("vdsm", Version { major: 1, minor: 0 });
        let mut types = self.types;
        for (name, since) in self.pending_types {
            if let Some(named) = types.get_mut(&name) {
                named.since = since.unwrap_or(UNSET);
            }
        }
        let protocol = Protocol {
            name: "vdsm".into(),
            description: "oVirt vdsm's JSON-RPC API, imported from vdsm-api.yml by `vproto import vdsm`.".into(),
            version,
            history,
        };
        let notes = self.notes;
        let schema = crate::assemble(protocol, types, self.objects, self.services);
        Imported { schema, notes }
    }
}

fn empty_service(namespace: &str) -> Service {
    Service {
        description: format!("vdsm's {namespace} namespace."),
        since: UNSET,
        methods: IndexMap::new(),
        events: IndexMap::new(),
    }
}
