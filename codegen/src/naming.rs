//! The names emitters give to schema elements, in the generated Rust and in the published
//! documents: identifiers of fields, enum variants, descriptors and services, and the keys of
//! the JSON Schema's definitions.
//!
//! A leaf module (it uses nothing else of the crate), so that every emitter names a thing the
//! same way without importing another emitter.

use proc_macro2::{Ident, Span};
use quote::format_ident;

/// Rust's keywords, strict and reserved: a field or method named like one is written raw.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// The Rust identifier of a field, param or method, raw when it is a keyword.
pub fn field_ident(name: &str) -> Ident {
    if KEYWORDS.contains(&name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// UpperCamelCase of an enum value or service name, such as `IN-PROGRESS` -> `InProgress`.
pub fn variant_name(value: &str) -> String {
    let mut out = String::new();
    for word in value.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

/// `VIFPortProfileBase` -> `VIF_PORT_PROFILE_BASE`.
pub fn to_screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (index, c) in chars.iter().enumerate() {
        if index > 0 && c.is_ascii_uppercase() {
            let previous = chars[index - 1];
            let next_is_lower = chars.get(index + 1).is_some_and(|n| n.is_ascii_lowercase());
            if previous.is_ascii_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_ascii_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The static `ObjectInfo` descriptor of an object: `HostInfo` -> `HOST_INFO_INFO`.
pub fn info_ident(object: &str) -> Ident {
    format_ident!("{}_INFO", to_screaming_snake(object))
}

/// The static `DataTree` descriptor of a data tree: `guest_v1` -> `GUEST_V1`.
pub fn tree_ident(tree: &str) -> Ident {
    format_ident!("{}", to_screaming_snake(tree))
}

/// The type (and JSON Schema definition) that holds a polymorphic base or any of its
/// subclasses: `VIFBase` -> `AnyVIFBase`.
pub fn polymorphic_name(base: &str) -> String {
    format!("Any{base}")
}

/// A service's trait, dispatcher or client: `agent` with `Server` -> `AgentServer`.
pub fn service_ident(service: &str, suffix: &str) -> Ident {
    format_ident!("{}{}", variant_name(service), suffix)
}

/// The generated enum of a service's events: `conductor` -> `ConductorEvent`.
pub fn event_enum_name(service: &str) -> String {
    format!("{}Event", variant_name(service))
}

/// The method of a generated client that subscribes to its service's events.
pub const SUBSCRIBE_METHOD: &str = "subscribe";

/// The name a method is called by on the wire: `service.method`.
pub fn method_wire_name(service: &str, method: &str) -> String {
    format!("{service}.{method}")
}

/// The `$defs` key of a method's params object.
pub fn params_def(service: &str, method: &str) -> String {
    format!("{service}.{method}.params")
}

/// The `$defs` key of an event's params object (an event is never named like a method of its
/// service, so the two never share a key).
pub fn event_params_def(service: &str, event: &str) -> String {
    params_def(service, event)
}

/// The `$defs` key of a method's result.
pub fn result_def(service: &str, method: &str) -> String {
    format!("{service}.{method}.result")
}

/// The `$defs` key of an error's data.
pub fn error_data_def(error: &str) -> String {
    format!("{error}.data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert() {
        assert_eq!(variant_name("IN-PROGRESS"), "InProgress");
        assert_eq!(variant_name("vepa"), "Vepa");
        assert_eq!(variant_name("3des"), "V3des");
        assert_eq!(to_screaming_snake("VIFPortProfileBase"), "VIF_PORT_PROFILE_BASE");
        assert_eq!(to_screaming_snake("VIFPortProfile8021Qbg"), "VIF_PORT_PROFILE8021_QBG");
        assert_eq!(to_screaming_snake("HostInfo"), "HOST_INFO");
        assert_eq!(field_ident("type").to_string(), "r#type");
        assert_eq!(service_ident("guest_agent", "Client").to_string(), "GuestAgentClient");
    }
}
