//! Values generated to satisfy a JSON Schema of the description: types, enums and open
//! enumerations (`x-known-values`), formats (the ones `vproto_support::wire` checks), patterns
//! (strings sampled from the regex with `rand_regex`), ranges, lengths, arrays, `$ref`,
//! `allOf`/`anyOf`/`oneOf` and versioned-object envelopes (`versioned_object.changes` names the
//! fields sent). Seeded, so a run is reproducible.

use std::collections::HashMap;

use rand::{rngs::StdRng, RngExt, SeedableRng};
use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};
use serde_json::{json, Map, Number, Value};
use vproto_support::wire::{self, keys};

use crate::description::Description;

/// Past this depth, objects get only their required members and arrays their minimum length.
const SHALLOW_DEPTH: usize = 4;
/// Past this depth, generation gives up (a schema that requires infinite nesting).
const MAX_DEPTH: usize = 24;

/// The keywords of a schema with its `$ref`s followed and its `allOf` members merged in.
pub fn effective(description: &Description, schema: &Value) -> Map<String, Value> {
    let mut merged = Map::new();
    merge_into(description, schema, &mut merged, 0);
    merged
}

fn merge_into(description: &Description, schema: &Value, merged: &mut Map<String, Value>, depth: usize) {
    if depth > 32 {
        return;
    }
    let schema = description.resolve(schema);
    let Some(map) = schema.as_object() else { return };
    for (key, value) in map {
        match key.as_str() {
            "$ref" => merge_into(description, value, merged, depth + 1),
            "allOf" => {
                for member in value.as_array().into_iter().flatten() {
                    merge_into(description, member, merged, depth + 1);
                }
            }
            "properties" => {
                let target = merged.entry("properties").or_insert_with(|| json!({}));
                if let (Some(target), Some(source)) = (target.as_object_mut(), value.as_object()) {
                    for (name, property) in source {
                        target.insert(name.clone(), property.clone());
                    }
                }
            }
            "required" => {
                let target = merged.entry("required").or_insert_with(|| json!([]));
                if let (Some(target), Some(source)) = (target.as_array_mut(), value.as_array()) {
                    for name in source {
                        if !target.contains(name) {
                            target.push(name.clone());
                        }
                    }
                }
            }
            _ => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The JSON types a schema allows (`type` as a string or an array), empty when unconstrained.
pub fn types_of(schema: &Map<String, Value>) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Why no value could be generated for a schema.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Every attempt was rejected by the validator; the last one, and why.
    #[error("no valid value could be generated: {value} is not valid: {violations}")]
    NoValid {
        /// The last value generated.
        value: Value,
        /// Its violations, `; `-separated.
        violations: String,
    },
    /// The schema requires nesting past the generator's depth limit.
    #[error("the schema nests too deeply to generate a value")]
    TooDeep,
    /// An `enum` without values.
    #[error("an empty enum admits no value")]
    EmptyEnum,
    /// An `anyOf`/`oneOf` without branches.
    #[error("an empty anyOf/oneOf admits no value")]
    EmptyBranches,
    /// A `type` that is not a JSON Schema type.
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// A `pattern` that is not a valid regex.
    #[error("pattern: {0}")]
    Pattern(regex::Error),
    /// No string sampled from the pattern fits the other constraints.
    #[error("no string matching `{0}` could be generated")]
    NoMatch(String),
    /// A `format` the generator does not know.
    #[error("no generator for format `{0}`")]
    UnknownFormat(String),
    /// A generated string that its format's check rejects.
    #[error("generated `{text}` is not a valid {format}")]
    InvalidFormat {
        /// The string generated.
        text: String,
        /// The format.
        format: String,
    },
    /// `uniqueItems` with too few distinct values.
    #[error("cannot generate enough distinct items")]
    NotDistinct,
}

/// A seeded generator of valid values.
pub struct Generator<'d> {
    description: &'d Description,
    rng: StdRng,
    regexes: HashMap<String, Option<rand_regex::Regex>>,
}

impl<'d> Generator<'d> {
    /// A generator seeded with `seed`.
    pub fn new(description: &'d Description, seed: u64) -> Self {
        Generator { description, rng: StdRng::seed_from_u64(seed), regexes: HashMap::new() }
    }

    /// A value satisfying `schema`, checked with the validator; tries a few times.
    pub fn valid(&mut self, schema: &Value) -> Result<Value, GenerateError> {
        let mut last = (Value::Null, String::new());
        for _ in 0..16 {
            let value = self.value(schema, 0)?;
            let violations = self.description.violations(schema, &value);
            if violations.is_empty() {
                return Ok(value);
            }
            last = (value, violations.join("; "));
        }
        Err(GenerateError::NoValid { value: last.0, violations: last.1 })
    }

    /// A value for `schema` (not yet validated).
    pub fn value(&mut self, schema: &Value, depth: usize) -> Result<Value, GenerateError> {
        if depth > MAX_DEPTH {
            return Err(GenerateError::TooDeep);
        }
        let schema = effective(self.description, schema);
        if let Some(constant) = schema.get("const") {
            return Ok(constant.clone());
        }
        if let Some(Value::Array(values)) = schema.get("enum") {
            if values.is_empty() {
                return Err(GenerateError::EmptyEnum);
            }
            return Ok(values[self.rng.random_range(0..values.len())].clone());
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                return self.branch(branches, depth);
            }
        }
        let types = types_of(&schema);
        let chosen = if types.is_empty() {
            if schema.contains_key("properties") {
                "object"
            } else if schema.contains_key("items") {
                "array"
            } else {
                "string"
            }
        } else {
            let not_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
            if not_null.is_empty() || self.rng.random_bool(0.1) && types.contains(&"null") {
                "null"
            } else {
                not_null[self.rng.random_range(0..not_null.len())]
            }
        };
        match chosen {
            "null" => Ok(Value::Null),
            "boolean" => Ok(Value::Bool(self.rng.random_bool(0.5))),
            "integer" => Ok(Value::from(self.integer(&schema))),
            "number" => Ok(self.number(&schema)),
            "string" => self.string(&schema).map(Value::String),
            "array" => self.array(&schema, depth),
            "object" => self.object(&schema, depth),
            other => Err(GenerateError::UnknownType(other.to_string())),
        }
    }

    fn branch(&mut self, branches: &[Value], depth: usize) -> Result<Value, GenerateError> {
        if branches.is_empty() {
            return Err(GenerateError::EmptyBranches);
        }
        // Prefer branches other than a bare null, which teach nothing.
        let useful: Vec<&Value> =
            branches.iter().filter(|branch| types_of(&effective(self.description, branch)) != ["null"]).collect();
        let pool: Vec<&Value> =
            if useful.is_empty() || self.rng.random_bool(0.1) { branches.iter().collect() } else { useful };
        let first = self.rng.random_range(0..pool.len());
        let mut last = GenerateError::EmptyBranches;
        for offset in 0..pool.len() {
            match self.value(pool[(first + offset) % pool.len()], depth + 1) {
                Ok(value) => return Ok(value),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn integer(&mut self, schema: &Map<String, Value>) -> i64 {
        let get = |key: &str| schema.get(key).and_then(Value::as_f64);
        let low = get("minimum")
            .map(|v| v.ceil())
            .or(get("exclusiveMinimum").map(|v| v.floor() + 1.0))
            .unwrap_or(0.0)
            .max(-1e15) as i64;
        let high = get("maximum")
            .map(|v| v.floor())
            .or(get("exclusiveMaximum").map(|v| v.ceil() - 1.0))
            .unwrap_or(low as f64 + 1000.0)
            .min(1e15) as i64;
        if high <= low {
            return low;
        }
        self.rng.random_range(low..=high)
    }

    fn number(&mut self, schema: &Map<String, Value>) -> Value {
        let whole = self.integer(schema);
        let candidate = whole as f64 + 0.5;
        let within = schema.get("maximum").and_then(Value::as_f64).is_none_or(|max| candidate <= max)
            && schema.get("exclusiveMaximum").and_then(Value::as_f64).is_none_or(|max| candidate < max);
        Number::from_f64(if within { candidate } else { whole as f64 }).map(Value::Number).unwrap_or(Value::from(whole))
    }

    fn string(&mut self, schema: &Map<String, Value>) -> Result<String, GenerateError> {
        if let Some(Value::Array(known)) = schema.get("x-known-values") {
            let strings: Vec<&str> = known.iter().filter_map(Value::as_str).collect();
            if !strings.is_empty() {
                return Ok(strings[self.rng.random_range(0..strings.len())].to_string());
            }
        }
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema.get("maxLength").and_then(Value::as_u64).map(|m| m as usize);
        let fits = |text: &str| {
            let length = text.chars().count();
            length >= min && max.is_none_or(|max| length <= max)
        };
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            if wire::FORMATS.contains(&format) {
                return self.format(format);
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(GenerateError::Pattern)?;
            let sampler = self.sampler(pattern);
            if let Some(sampler) = sampler {
                for _ in 0..64 {
                    let text: String = self.rng.sample(&sampler);
                    if anchored.is_match(&text) && fits(&text) {
                        return Ok(text);
                    }
                }
            }
            return Err(GenerateError::NoMatch(pattern.to_string()));
        }
        let high = max.unwrap_or(min.max(1) + 11).max(min);
        let length = if high > min { self.rng.random_range(min..=high.min(min + 16)) } else { min };
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        Ok((0..length)
            .map(|i| ALPHABET[self.rng.random_range(0..if i == 0 { 26 } else { ALPHABET.len() })] as char)
            .collect())
    }

    /// A sampler for `pattern`, anchors removed (rand_regex does not sample assertions).
    fn sampler(&mut self, pattern: &str) -> Option<rand_regex::Regex> {
        if let Some(found) = self.regexes.get(pattern) {
            return found.clone();
        }
        // ASCII classes first (JSON Schema's ECMA-262 `\d` and `\w` are ASCII); Unicode if the
        // pattern needs it.
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(true)
            .build()
            .parse(pattern)
            .ok()
            .or_else(|| regex_syntax::Parser::new().parse(pattern).ok());
        let compiled = hir.and_then(|hir| rand_regex::Regex::with_hir(without_assertions(hir), 8).ok());
        self.regexes.insert(pattern.to_string(), compiled.clone());
        compiled
    }

    fn format(&mut self, format: &str) -> Result<String, GenerateError> {
        let hex = |rng: &mut StdRng, digits: usize| -> String {
            (0..digits).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
        };
        let byte = |rng: &mut StdRng| rng.random_range(1..=254u8);
        let text = match format {
            "uuid" => {
                let variant = ['8', '9', 'a', 'b'][self.rng.random_range(0..4)];
                let r = &mut self.rng;
                format!("{}-{}-4{}-{variant}{}-{}", hex(r, 8), hex(r, 4), hex(r, 3), hex(r, 3), hex(r, 12))
            }
            "mac-address" => {
                let r = &mut self.rng;
                format!("fa:16:3e:{}:{}:{}", hex(r, 2), hex(r, 2), hex(r, 2))
            }
            "ipv4" => format!("10.{}.{}.{}", byte(&mut self.rng), byte(&mut self.rng), byte(&mut self.rng)),
            "ipv6" => format!("fd00::{:x}", self.rng.random_range(1..0xffffu32)),
            "ip-address" => {
                if self.rng.random_bool(0.5) {
                    return self.format("ipv4");
                }
                return self.format("ipv6");
            }
            "ip-network" => format!("10.{}.{}.0/24", byte(&mut self.rng), byte(&mut self.rng)),
            "pci-address" => format!(
                "0000:{}:{:02x}.{}",
                hex(&mut self.rng, 2),
                self.rng.random_range(0..32),
                self.rng.random_range(0..8)
            ),
            "hostname" => format!("host-{}.example", self.rng.random_range(1..1000)),
            "uri" => format!("https://example.invalid/{}", self.rng.random_range(1..1000)),
            "date-time" => format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                self.rng.random_range(10..40),
                self.rng.random_range(1..13),
                self.rng.random_range(1..29),
                self.rng.random_range(0..24),
                self.rng.random_range(0..60),
                self.rng.random_range(0..60)
            ),
            other => return Err(GenerateError::UnknownFormat(other.to_string())),
        };
        if wire::format_is_valid(format, &text) {
            Ok(text)
        } else {
            Err(GenerateError::InvalidFormat { text, format: format.to_string() })
        }
    }

    fn array(&mut self, schema: &Map<String, Value>, depth: usize) -> Result<Value, GenerateError> {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema.get("maxItems").and_then(Value::as_u64).map(|m| m as usize).unwrap_or(min + 2);
        let count = if depth >= SHALLOW_DEPTH || max <= min {
            min
        } else {
            self.rng.random_range(min.max(1)..=max.min(min + 2))
        };
        let items = schema.get("items").cloned().unwrap_or(json!({}));
        let unique = schema.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
        let mut values: Vec<Value> = Vec::with_capacity(count);
        let mut attempts = 0;
        while values.len() < count {
            attempts += 1;
            if attempts > count * 8 + 8 {
                return Err(GenerateError::NotDistinct);
            }
            let value = self.value(&items, depth + 1)?;
            if unique && values.contains(&value) {
                continue;
            }
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn object(&mut self, schema: &Map<String, Value>, depth: usize) -> Result<Value, GenerateError> {
        let mut object = Map::new();
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let properties = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        for (name, property) in &properties {
            let wanted = required.contains(&name.as_str()) || (depth < SHALLOW_DEPTH && self.rng.random_bool(0.5));
            if wanted && name != keys::CHANGES {
                object.insert(name.clone(), self.value(property, depth + 1)?);
            }
        }
        for name in &required {
            if !properties.contains_key(*name) {
                object.insert(name.to_string(), Value::String("x".into()));
            }
        }
        // A map (no declared members): a few entries of the value schema.
        if properties.is_empty() {
            if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
                let count = if depth >= SHALLOW_DEPTH { 0 } else { self.rng.random_range(0..=2) };
                for index in 0..count {
                    object.insert(format!("key{index}"), self.value(values, depth + 1)?);
                }
            }
        }
        // A versioned-object envelope names the fields it carries as changed.
        if let Some(Value::Object(data)) = object.get(keys::DATA) {
            if properties.contains_key(keys::CHANGES) {
                let changes: Vec<Value> = data.keys().map(|name| Value::String(name.clone())).collect();
                object.insert(keys::CHANGES.to_string(), Value::Array(changes));
            }
        }
        Ok(Value::Object(object))
    }
}

/// `hir` with its assertions (anchors, word boundaries) replaced by the empty match.
fn without_assertions(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Look(_) => Hir::empty(),
        HirKind::Concat(items) => Hir::concat(items.into_iter().map(without_assertions).collect()),
        HirKind::Alternation(items) => Hir::alternation(items.into_iter().map(without_assertions).collect()),
        HirKind::Repetition(repetition) => {
            Hir::repetition(Repetition { sub: Box::new(without_assertions(*repetition.sub)), ..repetition })
        }
        HirKind::Capture(capture) => {
            Hir::capture(Capture { sub: Box::new(without_assertions(*capture.sub)), ..capture })
        }
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(literal) => Hir::literal(literal.0),
        HirKind::Class(class) => Hir::class(class),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_param_and_result_of_the_published_description_can_be_generated() {
        let description = Description::published().unwrap();
        let mut generator = Generator::new(&description, 7);
        for method in &description.methods {
            for _ in 0..5 {
                let params = generator.valid(&method.params_schema()).unwrap();
                assert!(description.is_valid(&method.params_schema(), &params), "{}: {params}", method.name);
                generator.valid(&method.result).unwrap();
            }
        }
    }

    #[test]
    fn patterns_and_formats() {
        let description = Description::published().unwrap();
        let mut generator = Generator::new(&description, 1);
        for _ in 0..50 {
            let endpoint = generator.valid(&json!({"$ref": "#/$defs/Endpoint"})).unwrap();
            assert!(description.is_valid(&json!({"$ref": "#/$defs/Endpoint"}), &endpoint), "{endpoint}");
        }
        for format in wire::FORMATS {
            let value = generator.valid(&json!({"type": "string", "format": format})).unwrap();
            assert!(wire::format_is_valid(format, value.as_str().unwrap()), "{format}: {value}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let description = Description::published().unwrap();
        let method = description.method_named("network.create_port").unwrap();
        let a = Generator::new(&description, 3).valid(&method.params_schema()).unwrap();
        let b = Generator::new(&description, 3).valid(&method.params_schema()).unwrap();
        assert_eq!(a, b);
    }
}
