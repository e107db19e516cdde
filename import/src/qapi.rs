//! QEMU's QAPI schema (`qapi-schema.json` and the files it includes, or a folder of them) as a
//! vproto schema.
//!
//! QAPI's dialect is JSON with `'single quotes'` and `#` comments; each file is a sequence of
//! top-level expressions, each preceded by its doc comment (`##` … `##`), whose `Since:` line
//! gives the version. Mapping (docs/importers.md has the table):
//!
//! | QAPI | vproto |
//! |---|---|
//! | `enum` | a named string enum (one whose values clash as Rust variants: a string with a `pattern`) |
//! | `struct` (with `base`) | a plain object whose fields are the base's members then its own; `*name` optional |
//! | `union` (flat, `discriminator`) | a plain object: the base's members, then every branch's members, optional |
//! | `alternate` | its first branch's type (the language has no untagged alternatives) |
//! | `command` | a method of the service named after the file (module) declaring it; `data` → params, `returns` → result (`{}` when absent) |
//! | `event` | an event of that service |
//! | `features: ['deprecated']` | `deprecated`; `unstable` is written in the description |
//! | `if` | kept, the condition written in the description |
//! | `Since:` | `since` (protocol versions, see [`crate::names::Releases`]) |
//! | `any` | a map of strings (the language has no "any value") |

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
};

use indexmap::IndexMap;
use serde_json::{Map, Value};
use vproto_codegen::model::{
    Deprecation, Event, Field, HistoryEntry, JsonType, NamedType, Object, Param, Protocol, Service, TypeExpr, Version,
    WireForm,
};

use crate::{
    names::{enum_or_pattern, plain, snake_case, type_name, Names, Releases},
    read, ImportError, Imported, Note, UNSET,
};

/// One top-level expression and the doc comment before it.
#[derive(Clone, Debug)]
pub struct Expression {
    /// The file (module) it was read from, without `.json`.
    pub module: String,
    /// `file:line` of the expression.
    pub location: String,
    /// The expression.
    pub value: Map<String, Value>,
    /// The doc comment's text, `#` removed.
    pub doc: String,
}

/// Imports `qapi-schema.json` (following its includes), or every `.json` file of a folder.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let mut expressions = Vec::new();
    let mut seen = HashSet::new();
    if path.is_dir() {
        let top = path.join("qapi-schema.json");
        if top.is_file() {
            read_file(&top, &mut seen, &mut expressions)?;
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|error| ImportError::Read { path: path.display().to_string(), error })?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|ext| ext == "json"))
                .collect();
            files.sort();
            for file in files {
                read_file(&file, &mut seen, &mut expressions)?;
            }
        }
    } else {
        read_file(path, &mut seen, &mut expressions)?;
    }
    Ok(from_expressions(&expressions))
}

/// Reads one QAPI file and, depth first, the files it includes (each once).
fn read_file(path: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<Expression>) -> Result<(), ImportError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) {
        return Ok(());
    }
    let text = read(path)?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let module = name.trim_end_matches(".json").to_string();
    for (value, doc, line) in parse(&text, &name)? {
        let location = format!("{name}:{line}");
        if let Some(include) = value.get("include") {
            let include = include
                .as_str()
                .ok_or_else(|| ImportError::invalid(&location, "`include` names a file with a string"))?;
            let folder = path.parent().unwrap_or(Path::new("."));
            read_file(&folder.join(include), seen, out)?;
            continue;
        }
        out.push(Expression { module: module.clone(), location, value, doc });
    }
    Ok(())
}

/// One top-level expression of a file: the object, its doc comment's text and its line.
pub type Parsed = (Map<String, Value>, String, usize);

/// The expressions of a QAPI file with their doc comments and lines.
pub fn parse(text: &str, name: &str) -> Result<Vec<Parsed>, ImportError> {
    let mut parser = Parser { text: text.as_bytes(), at: 0, line: 1, doc: String::new(), name };
    let mut out = Vec::new();
    loop {
        parser.space();
        if parser.at >= parser.text.len() {
            return Ok(out);
        }
        let doc = std::mem::take(&mut parser.doc);
        let line = parser.line;
        match parser.value()? {
            Value::Object(map) => out.push((map, doc, line)),
            _ => return Err(parser.error("a top-level expression is an object")),
        }
    }
}

struct Parser<'t> {
    text: &'t [u8],
    at: usize,
    line: usize,
    /// The comment lines read since the last expression.
    doc: String,
    name: &'t str,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> ImportError {
        ImportError::invalid(format!("{}:{}", self.name, self.line), message)
    }

    /// Skips white space and comments, keeping the comments' text as the next doc.
    fn space(&mut self) {
        while let Some(&c) = self.text.get(self.at) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'#' => {
                    let end =
                        self.text[self.at..].iter().position(|&c| c == b'\n').map_or(self.text.len(), |p| self.at + p);
                    let comment = String::from_utf8_lossy(&self.text[self.at + 1..end]);
                    if comment.trim() == "#" {
                        // `##` opens and closes a doc block: a new block replaces the text before.
                        if !self.doc.is_empty() && !self.doc.ends_with("\u{0}") {
                            self.doc.push('\u{0}');
                        } else {
                            self.doc.clear();
                        }
                    } else {
                        self.doc.push_str(comment.strip_prefix(' ').unwrap_or(&comment));
                        self.doc.push('\n');
                    }
                    self.at = end;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<Value, ImportError> {
        self.space();
        match self.text.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut map = Map::new();
                loop {
                    self.space();
                    if self.text.get(self.at) == Some(&b'}') {
                        self.at += 1;
                        return Ok(Value::Object(map));
                    }
                    let key = match self.value()? {
                        Value::String(key) => key,
                        _ => return Err(self.error("an object key is a string")),
                    };
                    self.space();
                    if self.text.get(self.at) != Some(&b':') {
                        return Err(self.error("expected `:` after a key"));
                    }
                    self.at += 1;
                    let value = self.value()?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(self.error(&format!("the key '{key}' appears twice")));
                    }
                    self.space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {}
                        _ => return Err(self.error("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.space();
                    if self.text.get(self.at) == Some(&b']') {
                        self.at += 1;
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value()?);
                    self.space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {}
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
            Some(b'\'') => {
                self.at += 1;
                let mut bytes = Vec::new();
                loop {
                    match self.text.get(self.at) {
                        None | Some(b'\n') => return Err(self.error("a string is not closed on its line")),
                        Some(b'\\') => {
                            let escaped =
                                *self.text.get(self.at + 1).ok_or_else(|| self.error("a string ends in `\\`"))?;
                            bytes.push(escaped);
                            self.at += 2;
                        }
                        Some(b'\'') => {
                            self.at += 1;
                            break;
                        }
                        Some(&c) => {
                            bytes.push(c);
                            self.at += 1;
                        }
                    }
                }
                String::from_utf8(bytes).map(Value::String).map_err(|_| self.error("a string is not UTF-8"))
            }
            Some(b't') if self.text[self.at..].starts_with(b"true") => {
                self.at += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.text[self.at..].starts_with(b"false") => {
                self.at += 5;
                Ok(Value::Bool(false))
            }
            _ => Err(self.error("expected an object, a list, a 'string', true or false")),
        }
    }
}

/// The doc block's last part: the text after the last `##` (the block right before the
/// expression).
fn own_doc(doc: &str) -> &str {
    doc.trim_end_matches('\u{0}').rsplit('\u{0}').next().unwrap_or("")
}

/// `Since: 2.12` of a doc block.
fn since_of(doc: &str) -> Option<String> {
    doc.lines().rev().find_map(|line| {
        let rest = line.trim().strip_prefix("Since:")?;
        let release = rest.split_whitespace().next()?.trim_end_matches(['.', ',', ')']);
        Some(release.to_string())
    })
}

/// The first paragraph after the `@name:` line.
fn summary(doc: &str, fallback: &str) -> String {
    let mut lines = doc.lines().skip_while(|line| line.trim().is_empty() || line.trim_start().starts_with('@'));
    let mut words = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() {
            if words.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with("Since:")
            || line.starts_with("Returns:")
            || line.starts_with("..")
            || line.starts_with("Features:")
        {
            break;
        }
        words.push(line.to_string());
    }
    let text = words.join(" ");
    if text.is_empty() {
        fallback.to_string()
    } else {
        text
    }
}

/// `@member: text (since 5.0)` of a doc block: each member's text and release.
fn member_docs(doc: &str) -> HashMap<String, (String, Option<String>)> {
    let mut out: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('@') {
            if let Some((name, text)) = rest.split_once(':') {
                if !name.contains(' ') {
                    current = Some(name.to_string());
                    out.insert(name.to_string(), (text.trim().to_string(), None));
                    continue;
                }
            }
        }
        if trimmed.is_empty() || !line.starts_with(' ') {
            current = None;
            continue;
        }
        if let Some(name) = &current {
            if let Some(entry) = out.get_mut(name) {
                entry.0.push(' ');
                entry.0.push_str(trimmed);
            }
        }
    }
    for (text, since) in out.values_mut() {
        let lower = text.to_ascii_lowercase();
        if let Some(position) = lower.find("(since ") {
            let release =
                lower[position + 7..].split([')', ' ']).next().unwrap_or("").trim_end_matches('.').to_string();
            *since = Some(release);
        }
    }
    out
}

fn any_map() -> TypeExpr {
    TypeExpr { additional_properties: Some(Box::new(plain(JsonType::String))), ..plain(JsonType::Object) }
}

/// What a QAPI type name is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Enum,
    Struct,
    Union,
    Alternate,
}

#[derive(Default)]
struct Importer<'e> {
    /// Every named type: its kind and the expression defining it.
    definitions: HashMap<&'e str, (Kind, &'e Expression)>,
    type_names: Names,
    releases: Releases,
    notes: Vec<Note>,
    types: IndexMap<String, NamedType>,
    objects: IndexMap<String, Object>,
    services: BTreeMap<String, Service>,
    conditional: usize,
    any: usize,
}

/// Builds the schema from QAPI expressions (in the order read).
pub fn from_expressions(expressions: &[Expression]) -> Imported {
    let mut importer = Importer::default();
    for expression in expressions {
        for (key, kind) in
            [("enum", Kind::Enum), ("struct", Kind::Struct), ("union", Kind::Union), ("alternate", Kind::Alternate)]
        {
            if let Some(name) = expression.value.get(key).and_then(Value::as_str) {
                importer.definitions.insert(name, (kind, expression));
            }
        }
    }
    // Names first, in the order read, so that each source name always gets the same one.
    for expression in expressions {
        for key in ["enum", "struct", "union", "alternate"] {
            if let Some(name) = expression.value.get(key).and_then(Value::as_str) {
                let (given, changed) = importer.type_names.give(name, type_name);
                if changed {
                    importer.note(
                        &expression.location,
                        format!("`{name}` named `{given}`: type names are UpperCamelCase letters and digits"),
                    );
                }
            }
        }
    }
    for expression in expressions {
        importer.expression(expression);
    }
    importer.finish()
}

impl<'e> Importer<'e> {
    fn note(&mut self, location: &str, what: impl Into<String>) {
        self.notes.push(Note { location: location.to_string(), what: what.into() });
    }

    fn name(&mut self, source: &str) -> String {
        self.type_names.give(source, type_name).0
    }

    /// The description with what the schema language does not hold (conditions, unstable)
    /// written into it.
    fn description(&mut self, expression: &Expression, value: &Map<String, Value>, fallback: &str) -> String {
        let mut text = summary(own_doc(&expression.doc), fallback);
        if let Some(condition) = value.get("if") {
            self.conditional += 1;
            text.push_str(&format!(" (QAPI condition: {})", condition_text(condition)));
        }
        if features(value).contains(&"unstable".to_string()) {
            text.push_str(" (unstable)");
        }
        text
    }

    fn since(&mut self, expression: &Expression) -> Option<Version> {
        let release = since_of(own_doc(&expression.doc))?;
        let version = self.releases.version(&release);
        if version.is_none() {
            self.note(&expression.location, format!("`Since: {release}` is not a release number; left out"));
        }
        version
    }

    fn expression(&mut self, expression: &'e Expression) {
        let value = &expression.value;
        let location = expression.location.as_str();
        if let Some(name) = value.get("enum").and_then(Value::as_str) {
            let schema = self.enum_expr(value, location);
            let description = self.description(expression, value, &format!("QAPI enum {name}."));
            let since = self.since(expression);
            let deprecated = self.deprecated(value, since);
            let name = self.name(name);
            self.types.insert(
                name,
                NamedType { description, since: since.unwrap_or(UNSET), deprecated, open: false, schema },
            );
        } else if let Some(name) = value.get("struct").and_then(Value::as_str) {
            let description = self.description(expression, value, &format!("QAPI struct {name}."));
            let fields = self.struct_fields(name, location, 0);
            self.object(name, description, fields, value);
        } else if let Some(name) = value.get("union").and_then(Value::as_str) {
            let description = self.description(expression, value, &format!("QAPI union {name}."));
            let fields = self.union_fields(value, location);
            self.object(name, description, fields, value);
        } else if let Some(name) = value.get("alternate").and_then(Value::as_str) {
            let description = self.description(expression, value, &format!("QAPI alternate {name}."));
            let since = self.since(expression);
            let first = value.get("data").and_then(Value::as_object).and_then(|data| data.iter().next());
            let schema = match first {
                Some((branch, branch_type)) => {
                    self.note(location, format!("alternate `{name}` mapped to its first branch `{branch}`; values of the other branches are refused"));
                    self.member_type(type_of(branch_type), location)
                }
                None => any_map(),
            };
            let name = self.name(name);
            self.types.insert(
                name,
                NamedType { description, since: since.unwrap_or(UNSET), deprecated: None, open: false, schema },
            );
        } else if let Some(name) = value.get("command").and_then(Value::as_str) {
            self.command(expression, name);
        } else if let Some(name) = value.get("event").and_then(Value::as_str) {
            self.event(expression, name);
        } else if value.contains_key("pragma") {
            // Pragmas steer QEMU's generator (naming exceptions): nothing for the wire.
        } else {
            self.note(
                location,
                "an expression that is no enum, struct, union, alternate, command, event, include or pragma; left out",
            );
        }
    }

    fn deprecated(&self, value: &Map<String, Value>, since: Option<Version>) -> Option<Version> {
        features(value).contains(&"deprecated".to_string()).then(|| since.unwrap_or(UNSET))
    }

    fn object(
        &mut self,
        source: &str,
        description: String,
        fields: IndexMap<String, Field>,
        value: &Map<String, Value>,
    ) {
        let one = Version { major: 1, minor: 0 };
        let deprecated = features(value)
            .contains(&"deprecated".to_string())
            .then(|| Deprecation { since: one, note: "deprecated (QAPI feature `deprecated`)".into() });
        let name = self.name(source);
        self.objects.insert(
            name,
            Object {
                description,
                namespace: None,
                wire: WireForm::Plain,
                version: one,
                history: vec![HistoryEntry { version: one, note: "Imported from QAPI".into() }],
                is_abstract: false,
                deprecated,
                extends: None,
                tolerate_unknown_fields: true,
                fields,
            },
        );
    }

    fn enum_expr(&mut self, value: &Map<String, Value>, location: &str) -> TypeExpr {
        let values: Vec<String> = value
            .get("data")
            .and_then(Value::as_array)
            .map(|data| {
                data.iter()
                    .filter_map(|member| match member {
                        Value::String(name) => Some(name.clone()),
                        Value::Object(member) => member.get("name").and_then(Value::as_str).map(str::to_string),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        enum_or_pattern(values, location, &mut self.notes)
    }

    /// A struct's members, its bases' first.
    fn struct_fields(&mut self, name: &str, location: &str, depth: usize) -> IndexMap<String, Field> {
        let Some(&(Kind::Struct, expression)) = self.definitions.get(name) else {
            self.note(location, format!("`{name}` is not a struct; its members are left out"));
            return IndexMap::new();
        };
        let mut fields = match expression.value.get("base") {
            Some(base) if depth < 16 => self.base_fields(base, location, depth),
            _ => IndexMap::new(),
        };
        if let Some(data) = expression.value.get("data") {
            let docs = member_docs(own_doc(&expression.doc));
            fields.extend(self.members(data, &docs, location, true));
        }
        fields
    }

    fn base_fields(&mut self, base: &Value, location: &str, depth: usize) -> IndexMap<String, Field> {
        match base {
            Value::String(base) => self.struct_fields(base, location, depth + 1),
            data => self.members(data, &HashMap::new(), location, true),
        }
    }

    /// Members (`'name': 'Type'`, `'*name'` optional, `{'type': T, 'if': …, 'features': …}`).
    fn members(
        &mut self,
        data: &Value,
        docs: &HashMap<String, (String, Option<String>)>,
        location: &str,
        _fields: bool,
    ) -> IndexMap<String, Field> {
        let mut out = IndexMap::new();
        let Some(data) = data.as_object() else {
            self.note(location, "members that are not an object were left out");
            return out;
        };
        let mut names = Names::default();
        for (key, member) in data {
            let optional = key.starts_with('*');
            let source = key.trim_start_matches('*');
            let (name, renamed) = names.give(source, snake_case);
            // The schema name is lower_snake_case; the wire keeps QEMU's spelling.
            let wire_name = renamed.then(|| source.to_string());
            let schema = self.member_type(type_of(member), location);
            let mut description = docs
                .get(source)
                .map(|(text, _)| text.clone())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("QAPI member {source}."));
            if let Some(condition) = member.as_object().and_then(|m| m.get("if")) {
                self.conditional += 1;
                description.push_str(&format!(" (QAPI condition: {})", condition_text(condition)));
            }
            let member_features = member.as_object().map(features).unwrap_or_default();
            if member_features.contains(&"unstable".to_string()) {
                description.push_str(" (unstable)");
            }
            if let Some(since) = docs.get(source).and_then(|(_, since)| since.as_deref()) {
                self.releases.version(since);
            }
            out.insert(
                name,
                Field {
                    description,
                    schema,
                    wire_name,
                    since: Version { major: 1, minor: 0 },
                    deprecated: member_features
                        .contains(&"deprecated".to_string())
                        .then_some(Version { major: 1, minor: 0 }),
                    removed: None,
                    nullable: false,
                    required: !optional,
                    default: None,
                    child_versions: IndexMap::new(),
                },
            );
        }
        out
    }

    /// A flat union: the base's members, then every branch's members (optional).
    fn union_fields(&mut self, value: &Map<String, Value>, location: &str) -> IndexMap<String, Field> {
        let mut fields = match value.get("base") {
            Some(base) => self.base_fields(base, location, 0),
            None => IndexMap::new(),
        };
        self.note(location, "a union is mapped to one object: the base's members (the discriminator among them), then every branch's members, optional");
        let branches = value.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        for (_, branch) in branches {
            let Some(branch) = type_of(&branch).as_str() else { continue };
            for (name, mut field) in self.struct_fields(branch, location, 0) {
                field.required = false;
                match fields.get(&name) {
                    Some(existing) if existing.schema != field.schema => {
                        self.note(location, format!("branches give member `{name}` different types; the first is kept"))
                    }
                    Some(_) => {}
                    None => {
                        fields.insert(name, field);
                    }
                }
            }
        }
        fields
    }

    fn member_type(&mut self, member_type: &Value, location: &str) -> TypeExpr {
        match member_type {
            Value::Array(items) => {
                let items = items.first().map_or_else(any_map, |item| self.member_type(item, location));
                TypeExpr { items: Some(Box::new(items)), ..plain(JsonType::Array) }
            }
            Value::String(name) => self.named_type(name, location),
            Value::Object(_) => {
                self.note(location, "an inline anonymous type: mapped to a map of strings");
                any_map()
            }
            _ => any_map(),
        }
    }

    fn named_type(&mut self, name: &str, location: &str) -> TypeExpr {
        let bounded = |minimum: i64, maximum: Option<i64>| TypeExpr {
            minimum: Some(minimum),
            maximum,
            ..plain(JsonType::Integer)
        };
        match name {
            "str" => plain(JsonType::String),
            "number" => plain(JsonType::Number),
            "bool" => plain(JsonType::Boolean),
            "int" | "int64" => plain(JsonType::Integer),
            "int8" => bounded(i8::MIN.into(), Some(i8::MAX.into())),
            "int16" => bounded(i16::MIN.into(), Some(i16::MAX.into())),
            "int32" => bounded(i32::MIN.into(), Some(i32::MAX.into())),
            "uint8" => bounded(0, Some(u8::MAX.into())),
            "uint16" => bounded(0, Some(u16::MAX.into())),
            "uint32" => bounded(0, Some(u32::MAX.into())),
            "uint64" | "size" => bounded(0, None),
            "any" | "null" | "QType" => {
                self.any += 1;
                any_map()
            }
            other => match self.definitions.get(other) {
                Some((Kind::Struct | Kind::Union, _)) => {
                    TypeExpr { object: Some(self.name(other)), ..TypeExpr::default() }
                }
                Some(_) => TypeExpr { reference: Some(format!("#/types/{}", self.name(other))), ..TypeExpr::default() },
                None => {
                    self.note(location, format!("unknown type `{other}`: mapped to a map of strings"));
                    any_map()
                }
            },
        }
    }

    fn command(&mut self, expression: &'e Expression, name: &str) {
        let value = &expression.value;
        let location = expression.location.as_str();
        let description = self.description(expression, value, &format!("QMP command {name}."));
        let since = self.since(expression);
        let params = self.params(expression, value.get("data"), location);
        let result = match value.get("returns") {
            Some(returns) => self.member_type(returns, location),
            None => any_map(),
        };
        if value.get("success-response") == Some(&Value::Bool(false)) {
            self.note(location, "`success-response: false`: QEMU sends no answer; declared with a result all the same (the mock answers `{}`)");
        }
        let deprecated = self.deprecated(value, since);
        let mut method = crate::method(description, since.unwrap_or(UNSET), deprecated, params, Some(result));
        // QMP names a command by itself (`{"execute": "query-status"}`), without its module.
        method.wire_name = Some(name.to_string());
        let service = self.service(&expression.module);
        let method_name = snake_case(name);
        service.methods.insert(method_name, method);
    }

    fn params(&mut self, expression: &Expression, data: Option<&Value>, location: &str) -> IndexMap<String, Param> {
        let fields = match data {
            None => IndexMap::new(),
            Some(Value::String(name)) => self.struct_fields(name, location, 0),
            Some(data) => {
                let docs = member_docs(own_doc(&expression.doc));
                let fields = self.members(data, &docs, location, false);
                // A member's `(since X)` makes it a late, optional param.
                let mut params = IndexMap::new();
                for (name, field) in fields {
                    let source = field.wire_name.clone().unwrap_or_else(|| name.clone());
                    let since = docs
                        .get(source.as_str())
                        .and_then(|(_, since)| since.as_deref())
                        .and_then(|since| self.releases.version(since));
                    params.insert(name, param_of(field, since));
                }
                return params;
            }
        };
        fields.into_iter().map(|(name, field)| (name, param_of(field, None))).collect()
    }

    fn event(&mut self, expression: &'e Expression, name: &str) {
        let value = &expression.value;
        let location = expression.location.as_str();
        let description = self.description(expression, value, &format!("QMP event {name}."));
        let since = self.since(expression);
        let params = self.params(expression, value.get("data"), location);
        let deprecated = self.deprecated(value, since);
        let mut event_name = snake_case(name);
        let service = self.service(&expression.module);
        if service.methods.contains_key(&event_name) {
            event_name.push_str("_event");
        }
        service.events.insert(
            event_name,
            Event {
                description,
                since: since.unwrap_or(UNSET),
                // QMP names an event by itself (`{"event": "BLOCK_JOB_COMPLETED"}`).
                wire_name: Some(name.to_string()),
                deprecated,
                removed: None,
                params,
                examples: Vec::new(),
            },
        );
    }

    fn service(&mut self, module: &str) -> &mut Service {
        self.services.entry(snake_case(module)).or_insert_with(|| Service {
            description: format!("The commands and events of QAPI module {module}."),
            since: UNSET,
            methods: IndexMap::new(),
            events: IndexMap::new(),
        })
    }

    fn finish(mut self) -> Imported {
        if self.conditional > 0 {
            self.note("*", format!("{} definitions and members carry `if` conditions: kept, the condition written in their description", self.conditional));
        }
        if self.any > 0 {
            self.note("*", format!("{} uses of `any`, `null` or `QType` are mapped to a map of strings: the language has no \"any value\"", self.any));
        }
        let (history, version) = self.releases.history("QEMU", Version { major: 1, minor: 0 });
        let protocol = Protocol {
            name: "qmp".into(),
            description: "QEMU's QMP, imported from its QAPI schema by `vproto import qapi`.".into(),
            version,
            history,
        };
        let notes = self.notes;
        let schema = crate::assemble(protocol, self.types, self.objects, self.services);
        Imported { schema, notes }
    }
}

/// A member's type: the value itself, or its `type` when it is `{'type': T, ...}`.
fn type_of(member: &Value) -> &Value {
    match member {
        Value::Object(map) => map.get("type").unwrap_or(member),
        _ => member,
    }
}

fn features(value: &Map<String, Value>) -> Vec<String> {
    value
        .get("features")
        .and_then(Value::as_array)
        .map(|features| {
            features
                .iter()
                .filter_map(|feature| match feature {
                    Value::String(name) => Some(name.clone()),
                    Value::Object(feature) => feature.get("name").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn condition_text(condition: &Value) -> String {
    match condition {
        Value::String(name) => name.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(op, args)| match args {
                Value::Array(items) => {
                    format!("{op}({})", items.iter().map(condition_text).collect::<Vec<_>>().join(", "))
                }
                other => format!("{op}({})", condition_text(other)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A member as a param: a deprecated member (QAPI's `features: ['deprecated']`) is a deprecated
/// param, from the release that added its command or event (settled by [`crate::assemble`]).
fn param_of(field: Field, since: Option<Version>) -> Param {
    Param {
        description: field.description,
        schema: field.schema,
        wire_name: field.wire_name,
        required: field.required,
        since,
        deprecated: field.deprecated.map(|_| UNSET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dialect_with_doc_comments() {
        let text = "# license\n\n##\n# @Color:\n#\n# A colour.\n#\n# Since: 2.12\n##\n{ 'enum': 'Color', 'data': [ 'red', { 'name': 'blue', 'if': 'CONFIG_BLUE' } ] }\n##\n# @ping:\n#\n# Ping.\n#\n# Since: 8.0\n##\n{ 'command': 'ping', 'data': { '*count': 'int', 'who\\'s': 'str' } }\n";
        let parsed = parse(text, "t.json").unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(since_of(own_doc(&parsed[0].1)).as_deref(), Some("2.12"));
        assert_eq!(summary(own_doc(&parsed[0].1), "-"), "A colour.");
        assert_eq!(since_of(own_doc(&parsed[1].1)).as_deref(), Some("8.0"));
        assert_eq!(parsed[1].2, 18);
        assert!(parsed[1].0["data"].as_object().unwrap().contains_key("who's"));
        let error = parse("{ 'enum': 'X', }\n{ 'a' 'b' }", "bad.json").unwrap_err().to_string();
        assert!(error.starts_with("bad.json:2:"), "{error}");
    }
}
