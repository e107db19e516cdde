//! What both importers share: the schema language's names (UpperCamelCase types,
//! lower_snake_case members) made from the source's, and release numbers made protocol versions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use vproto_codegen::{
    model::{HistoryEntry, JsonType, TypeExpr, Version},
    naming::variant_name,
};

use crate::Note;

/// `tlsPort` → `tls_port`, `VmID` → `vm_id`, `x-vga` → `x_vga`, `0day` → `n0day`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (index, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous = index.checked_sub(1).map(|i| chars[i]);
            let next = chars.get(index + 1);
            let boundary = previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (previous.is_some_and(|p| p.is_ascii_uppercase()) && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 'n');
    }
    out
}

/// `BlockDeviceInfo` stays, `x-dbus-vmstate` → `XDbusVmstate`, `QCryptoBlock_Format` →
/// `QCryptoBlockFormat`.
pub fn type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_uppercase()) {
        out.insert(0, 'T');
    }
    out
}

/// Hands out unique names within one namespace, noting each name that had to change.
#[derive(Default)]
pub struct Names {
    taken: BTreeSet<String>,
    given: HashMap<String, String>,
}

impl Names {
    /// The name given to `source` (made with `make`, a digit appended on a clash); the same
    /// source always gets the same name. The second value tells whether it differs from `source`.
    pub fn give(&mut self, source: &str, make: impl Fn(&str) -> String) -> (String, bool) {
        if let Some(given) = self.given.get(source) {
            return (given.clone(), given != source);
        }
        let base = make(source);
        let mut name = base.clone();
        let mut number = 2;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}{number}");
            number += 1;
        }
        self.given.insert(source.to_string(), name.clone());
        let changed = name != source;
        (name, changed)
    }
}

/// Release numbers (`3.1`, `4.4.5`, QEMU's `2.12`, `8.0`) as protocol versions: MAJOR.MINOR.PATCH
/// becomes MAJOR.(MINOR × 100 + PATCH), so the order is kept (patches stay below 100 in both
/// projects) and every release is a version of its own.
#[derive(Default)]
pub struct Releases {
    seen: BTreeMap<Version, String>,
}

impl Releases {
    /// The protocol version of a release, recorded for the history; `None` when the text is not
    /// a release number.
    pub fn version(&mut self, release: &str) -> Option<Version> {
        let parts: Vec<u32> = release.trim().split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
        let (major, minor, patch) = match parts.as_slice() {
            [major] => (*major, 0, 0),
            [major, minor] => (*major, *minor, 0),
            [major, minor, patch] if *patch < 100 => (*major, *minor, *patch),
            _ => return None,
        };
        let version = Version { major, minor: minor.checked_mul(100)?.checked_add(patch)? };
        self.seen.entry(version).or_insert_with(|| release.trim().to_string());
        Some(version)
    }

    /// The oldest release seen (the version of what has no `added`/`Since`), `fallback` when none.
    pub fn first(&self, fallback: Version) -> Version {
        self.seen.keys().next().copied().unwrap_or(fallback)
    }

    /// One history entry per release seen, oldest first, and the newest version; `fallback`
    /// (noted as `what`) when none was seen.
    pub fn history(&mut self, project: &str, fallback: Version) -> (Vec<HistoryEntry>, Version) {
        if self.seen.is_empty() {
            self.seen.insert(fallback, fallback.to_string());
        }
        let history: Vec<HistoryEntry> = self
            .seen
            .iter()
            .map(|(version, release)| HistoryEntry { version: *version, note: format!("{project} {release}") })
            .collect();
        let last = history.last().expect("one entry at least").version;
        (history, last)
    }
}

/// A type expression of one JSON type and nothing more.
pub fn plain(json_type: JsonType) -> TypeExpr {
    TypeExpr { json_type: Some(json_type), ..TypeExpr::default() }
}

/// A string enum of `values`, or, when two would be one Rust variant, a string with a `pattern`
/// of them (noted).
pub fn enum_or_pattern(values: Vec<String>, location: &str, notes: &mut Vec<Note>) -> TypeExpr {
    if values.is_empty() {
        notes.push(Note { location: location.into(), what: "an enum without values: mapped to a string".into() });
        return plain(JsonType::String);
    }
    let variants: HashSet<String> = values.iter().map(|value| variant_name(value)).collect();
    if variants.len() != values.len() {
        notes.push(Note {
            location: location.into(),
            what: "values that differ only in case or punctuation would be one Rust variant: mapped to a string with a `pattern` of the values".into(),
        });
        let alternatives: Vec<String> = values.iter().map(|value| escape_regex(value)).collect();
        return TypeExpr { pattern: Some(format!("^(?:{})$", alternatives.join("|"))), ..plain(JsonType::String) };
    }
    TypeExpr { enum_values: Some(values), ..plain(JsonType::String) }
}

pub fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_schema_language() {
        assert_eq!(snake_case("tlsPort"), "tls_port");
        assert_eq!(snake_case("vmID"), "vm_id");
        assert_eq!(snake_case("VMFullInfo"), "vm_full_info");
        assert_eq!(snake_case("x-vga"), "x_vga");
        assert_eq!(snake_case("balloon_cur"), "balloon_cur");
        assert_eq!(snake_case("0day"), "n0day");
        assert_eq!(type_name("x-dbus-vmstate"), "XDbusVmstate");
        assert_eq!(type_name("QCryptoBlock_Format"), "QCryptoBlockFormat");
        let mut names = Names::default();
        assert_eq!(names.give("aB", snake_case), ("a_b".to_string(), true));
        assert_eq!(names.give("a_b", snake_case), ("a_b2".to_string(), true));
        assert_eq!(names.give("aB", snake_case), ("a_b".to_string(), true));
    }

    #[test]
    fn releases_keep_their_order() {
        let mut releases = Releases::default();
        let v = |r: &mut Releases, text| r.version(text).unwrap();
        assert!(v(&mut releases, "4.4.5") > v(&mut releases, "4.4"));
        assert!(v(&mut releases, "4.10") > v(&mut releases, "4.4.99"));
        assert_eq!(v(&mut releases, "3.1").to_string(), "3.100");
        assert!(releases.version("4.x").is_none());
        assert!(releases.version("1.2.300").is_none());
    }
}
