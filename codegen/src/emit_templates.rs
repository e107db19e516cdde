//! The template-driven emitter: handlebars templates over [`SchemaView`], the IR's
//! serializable view, write clients in other languages and the reference site.
//!
//! A template directory is rendered whole, by these rules:
//!
//! - `NAME.hbs` renders to `NAME` at the same relative place in the output;
//! - a path segment holding `[objects]`, `[types]`, `[errors]`, `[services]`, `[methods]`,
//!   `[events]` or `[data_trees]` renders once per item of that list, the placeholder replaced
//!   by the item's `slug` (`objects/[objects].html.hbs` → `objects/HostInfo.html`); the item is
//!   `item` beside the whole view;
//! - `NAME.partial.hbs` is a partial named `NAME` (`{{> NAME}}`), rendered nowhere itself;
//! - any other file is copied unchanged (a runtime library, a `tsconfig.json`).
//!
//! Templates are rendered in strict mode (a key the view does not have is an error naming the
//! template and line). Templates whose output ends in `.html` escape `{{ }}` for HTML;
//! every other output is code and is not escaped (`no_escape`). The helpers of
//! [`register_helpers`] name things in each language (`py_name`, `py_type`, `ts_type`, ...), so
//! that adding a language means adding templates.

use std::{
    collections::BTreeMap,
    path::{Component, Path, PathBuf},
};

use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, JsonRender, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use heck::{ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use serde_json::Value;

use crate::ir::view::SchemaView;

/// The lists a per-item template can iterate, as they appear in a path segment (`[objects]`).
pub const ITEM_LISTS: [&str; 7] = ["objects", "types", "errors", "services", "methods", "events", "data_trees"];

/// A problem with a template directory or one of its templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The directory or a file in it cannot be read.
    #[error("cannot read the template {path}: {why}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        why: String,
    },
    /// A template does not parse.
    #[error("the template {path} does not parse: {why}")]
    Parse {
        /// The template.
        path: PathBuf,
        /// What the parser said (with line and column).
        why: String,
    },
    /// A template fails to render (a key the view lacks, a helper's wrong argument).
    #[error("the template {path} fails to render{item}: {why}")]
    Render {
        /// The template.
        path: PathBuf,
        /// ` for <slug>` for a per-item template.
        item: String,
        /// What the renderer said (with line and column).
        why: String,
    },
    /// The generator was not asked for the view (`Generator::with_view`).
    #[error("the view templates render was not built: configure the generator with `with_view()`")]
    NoView,
    /// A template's path is not one the rules above allow.
    #[error("the template {path}: {why}")]
    Path {
        /// The template.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// One output file: where (relative to the output directory) and what.
pub type Rendered = BTreeMap<PathBuf, Vec<u8>>;

/// Renders every template of `dir` over `view`; the result maps each output path, relative to
/// the output directory, to its contents.
pub fn render_dir(dir: &Path, view: &SchemaView) -> Result<Rendered, TemplateError> {
    let files = list_files(dir)?;
    let mut code = Handlebars::new();
    code.set_strict_mode(true);
    code.register_escape_fn(handlebars::no_escape);
    register_helpers(&mut code);
    let mut html = Handlebars::new();
    html.set_strict_mode(true);
    html.register_escape_fn(handlebars::html_escape);
    register_helpers(&mut html);
    let read = |relative: &Path| {
        std::fs::read(dir.join(relative))
            .map_err(|e| TemplateError::Read { path: dir.join(relative), why: e.to_string() })
    };
    let text = |relative: &Path| -> Result<String, TemplateError> {
        String::from_utf8(read(relative)?)
            .map_err(|_| TemplateError::Read { path: dir.join(relative), why: "not UTF-8".into() })
    };
    let mut templates = Vec::new();
    let mut out = Rendered::new();
    for relative in files {
        let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let Some(stem) = name.strip_suffix(".hbs") else {
            out.insert(relative.clone(), read(&relative)?);
            continue;
        };
        let source = text(&relative)?;
        if let Some(partial) = stem.strip_suffix(".partial") {
            for registry in [&mut code, &mut html] {
                registry
                    .register_partial(partial, &source)
                    .map_err(|e| TemplateError::Parse { path: dir.join(&relative), why: e.to_string() })?;
            }
            continue;
        }
        let key = relative.to_string_lossy().into_owned();
        let registry = if stem.ends_with(".html") { &mut html } else { &mut code };
        registry
            .register_template_string(&key, &source)
            .map_err(|e| TemplateError::Parse { path: dir.join(&relative), why: e.to_string() })?;
        templates.push((relative.with_file_name(stem), key, stem.ends_with(".html")));
    }
    let root = serde_json::to_value(view).expect("the view serializes");
    let render_error = |key: &str, item: String, error: RenderError| TemplateError::Render {
        path: dir.join(key),
        item,
        why: error.to_string(),
    };
    for (output, key, is_html) in templates {
        let registry = if is_html { &html } else { &code };
        let lists: Vec<&str> =
            ITEM_LISTS.iter().copied().filter(|list| output.to_string_lossy().contains(&format!("[{list}]"))).collect();
        match lists.as_slice() {
            [] => {
                let text = registry.render(&key, &root).map_err(|e| render_error(&key, String::new(), e))?;
                out.insert(output, text.into_bytes());
            }
            [list] => {
                let items = root[*list].as_array().cloned().unwrap_or_default();
                let mut context = root.clone();
                for item in items {
                    let slug = item["slug"].as_str().unwrap_or_default().to_string();
                    context["item"] = item;
                    let text = registry
                        .render_with_context(&key, &Context::wraps(&context).expect("JSON values wrap"))
                        .map_err(|e| render_error(&key, format!(" for {slug}"), e))?;
                    let path = PathBuf::from(output.to_string_lossy().replace(&format!("[{list}]"), &slug));
                    out.insert(path, text.into_bytes());
                }
            }
            _ => {
                return Err(TemplateError::Path {
                    path: dir.join(&key),
                    why: format!("names more than one list ({}); a template iterates one", lists.join(", ")),
                })
            }
        }
    }
    Ok(out)
}

/// Every file under `dir`, relative to it, sorted; symbolic links and paths leaving `dir` are
/// refused.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, TemplateError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let here = dir.join(&relative);
        let entries =
            std::fs::read_dir(&here).map_err(|e| TemplateError::Read { path: here.clone(), why: e.to_string() })?;
        for entry in entries {
            let entry = entry.map_err(|e| TemplateError::Read { path: here.clone(), why: e.to_string() })?;
            let kind = entry.file_type().map_err(|e| TemplateError::Read { path: entry.path(), why: e.to_string() })?;
            let path = relative.join(entry.file_name());
            if path.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(TemplateError::Path { path, why: "leaves the template directory".into() });
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push(path);
            } else {
                return Err(TemplateError::Path {
                    path: entry.path(),
                    why: "is neither a file nor a directory (symbolic links are not followed)".into(),
                });
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The words Python reserves, which a name must not be.
const PYTHON_KEYWORDS: [&str; 38] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match", "case", "type",
];

/// The words TypeScript reserves as identifiers.
const TS_KEYWORDS: [&str; 40] = [
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "let",
    "static",
    "yield",
    "await",
];

/// `name` as a Python identifier: snake_case, `_` appended to a keyword.
pub fn py_name(name: &str) -> String {
    let snake = name.to_snake_case();
    if PYTHON_KEYWORDS.contains(&snake.as_str()) {
        format!("{snake}_")
    } else {
        snake
    }
}

/// A JSON value as a Python literal (`True`, `None`, dicts and lists).
pub fn py_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => serde_json::to_string(text).expect("strings serialize"),
        Value::Array(items) => format!("[{}]", items.iter().map(py_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, item)| format!("{}: {}", py_literal(&Value::String(key.clone())), py_literal(item)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A [`crate::ir::view::TypeView`] as a Python annotation (objects by class name, quoted
/// forward references left to `from __future__ import annotations`).
pub fn py_type(view: &Value) -> String {
    let name = view["name"].as_str().unwrap_or_default();
    match view["kind"].as_str().unwrap_or_default() {
        "string" => "str".into(),
        "integer" => "int".into(),
        "number" => "float".into(),
        "boolean" => "bool".into(),
        "named" => py_type(&view["resolved"]),
        "object" => name.into(),
        "any_of" => {
            let members: Vec<&str> =
                view["members"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            match members.as_slice() {
                [] => "Any".into(),
                [one] => (*one).into(),
                many => format!("Union[{}]", many.join(", ")),
            }
        }
        "list" => format!("List[{}]", py_type(&view["item"])),
        "map" => format!("Dict[str, {}]", py_type(&view["item"])),
        _ => "Any".into(),
    }
}

/// A [`crate::ir::view::TypeView`] as a TypeScript type, named types and objects written
/// with `prefix` (a module alias such as `o.`, or nothing).
pub fn ts_type(view: &Value, prefix: &str) -> String {
    let name = view["name"].as_str().unwrap_or_default();
    match view["kind"].as_str().unwrap_or_default() {
        "string" => match view["schema"]["enum"].as_array() {
            Some(values) if !values.is_empty() => values.iter().map(Value::to_string).collect::<Vec<_>>().join(" | "),
            _ => "string".into(),
        },
        "integer" | "number" => "number".into(),
        "boolean" => "boolean".into(),
        "named" | "object" => format!("{prefix}{name}"),
        "any_of" => {
            let members: Vec<String> = view["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|member| format!("{prefix}{member}"))
                .collect();
            if members.is_empty() {
                "unknown".into()
            } else {
                members.join(" | ")
            }
        }
        "list" => format!("Array<{}>", ts_type(&view["item"], prefix)),
        "map" => format!("Record<string, {}>", ts_type(&view["item"], prefix)),
        _ => "unknown".into(),
    }
}

/// `name` as a TypeScript identifier: lowerCamelCase, `_` appended to a reserved word.
pub fn ts_name(name: &str) -> String {
    let camel = name.to_lower_camel_case();
    if TS_KEYWORDS.contains(&camel.as_str()) {
        format!("{camel}_")
    } else {
        camel
    }
}

/// `key` as a TypeScript property name: itself when it is an identifier, else quoted.
pub fn ts_key(key: &str) -> String {
    let mut chars = key.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier {
        key.into()
    } else {
        serde_json::to_string(key).expect("strings serialize")
    }
}

/// Registers the helpers every template may use:
///
/// - text: `snake_case`, `camel_case`, `pascal_case`, `kebab_case`, `screaming_snake_case`,
///   `replace TEXT FROM TO`, `concat A B ...`, `join LIST SEP`, `one_line TEXT` (whitespace runs
///   as one space), `doc_safe TEXT` (`*/` and `"""` broken up, for comments and docstrings),
///   `md_cell TEXT` (one line, `|` escaped: a Markdown table cell);
/// - data: `json VALUE` (compact JSON), `json_pretty VALUE`, `contains LIST VALUE`,
///   `first LIST`, `is_empty VALUE`;
/// - Python: `py_name`, `py_type TYPE`, `py_literal VALUE`, `py_str TEXT` (a string literal);
/// - TypeScript: `ts_name`, `ts_type TYPE [prefix=P]` (named types and objects as `P` + name),
///   `ts_key KEY`, `ts_str TEXT`.
///
/// Handlebars' own (`if`, `each`, `with`, `eq`, `ne`, `and`, `or`, `not`, `len`, ...) stay.
pub fn register_helpers(registry: &mut Handlebars) {
    handlebars_helper!(snake_case: |s: str| s.to_snake_case());
    handlebars_helper!(camel_case: |s: str| s.to_lower_camel_case());
    handlebars_helper!(pascal_case: |s: str| s.to_upper_camel_case());
    handlebars_helper!(kebab_case: |s: str| s.to_kebab_case());
    handlebars_helper!(screaming_snake_case: |s: str| s.to_shouty_snake_case());
    handlebars_helper!(replace: |s: str, from: str, to: str| s.replace(from, to));
    handlebars_helper!(one_line: |s: str| s.split_whitespace().collect::<Vec<_>>().join(" "));
    handlebars_helper!(doc_safe: |s: str| s.replace("*/", "* /").replace("\"\"\"", "\"\" \"").replace('\\', "\\\\"));
    handlebars_helper!(md_cell: |s: str| s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|"));
    handlebars_helper!(json: |v: Json| serde_json::to_string(v).expect("JSON values serialize"));
    handlebars_helper!(json_pretty: |v: Json| serde_json::to_string_pretty(v).expect("JSON values serialize"));
    handlebars_helper!(contains: |list: array, v: Json| list.contains(v));
    handlebars_helper!(first: |list: array| list.first().cloned().unwrap_or(Value::Null));
    handlebars_helper!(is_empty: |v: Json| match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::String(text) => text.is_empty(),
        _ => false,
    });
    handlebars_helper!(join: |list: array, sep: str| list
        .iter()
        .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_string))
        .collect::<Vec<_>>()
        .join(sep));
    handlebars_helper!(py_name_helper: |s: str| py_name(s));
    handlebars_helper!(py_type_helper: |v: Json| py_type(v));
    handlebars_helper!(py_literal_helper: |v: Json| py_literal(v));
    handlebars_helper!(str_literal: |s: str| serde_json::to_string(s).expect("strings serialize"));
    handlebars_helper!(ts_name_helper: |s: str| ts_name(s));
    handlebars_helper!(ts_type_helper: |v: Json, {prefix: str = ""}| ts_type(v, prefix));
    handlebars_helper!(ts_key_helper: |s: str| ts_key(s));
    registry.register_helper("snake_case", Box::new(snake_case));
    registry.register_helper("camel_case", Box::new(camel_case));
    registry.register_helper("pascal_case", Box::new(pascal_case));
    registry.register_helper("kebab_case", Box::new(kebab_case));
    registry.register_helper("screaming_snake_case", Box::new(screaming_snake_case));
    registry.register_helper("replace", Box::new(replace));
    registry.register_helper("one_line", Box::new(one_line));
    registry.register_helper("doc_safe", Box::new(doc_safe));
    registry.register_helper("md_cell", Box::new(md_cell));
    registry.register_helper("json", Box::new(json));
    registry.register_helper("json_pretty", Box::new(json_pretty));
    registry.register_helper("contains", Box::new(contains));
    registry.register_helper("first", Box::new(first));
    registry.register_helper("is_empty", Box::new(is_empty));
    registry.register_helper("join", Box::new(join));
    registry.register_helper("concat", Box::new(concat));
    registry.register_helper("py_name", Box::new(py_name_helper));
    registry.register_helper("py_type", Box::new(py_type_helper));
    registry.register_helper("py_literal", Box::new(py_literal_helper));
    registry.register_helper("py_str", Box::new(str_literal));
    registry.register_helper("ts_name", Box::new(ts_name_helper));
    registry.register_helper("ts_type", Box::new(ts_type_helper));
    registry.register_helper("ts_key", Box::new(ts_key_helper));
    registry.register_helper("ts_str", Box::new(str_literal));
}

/// `concat A B ...`: its params' texts one after the other.
fn concat(helper: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    if helper.params().is_empty() {
        return Err(RenderErrorReason::ParamNotFoundForIndex("concat", 0).into());
    }
    for param in helper.params() {
        out.write(&param.value().render())?;
    }
    Ok(())
}
