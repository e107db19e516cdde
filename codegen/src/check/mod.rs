//! Checks of meaning that the meta-schema cannot express: references that
//! resolve, histories in order, versions that exist, inheritance without
//! cycles, child-version pins, names that make valid Rust identifiers, wire names that tell
//! members apart, events that fit their services.
//!
//! One `Checker` walks the schema; each topic adds its methods to it from a module of its
//! own, and every problem becomes a diagnostic (all are reported at once).

use crate::{diagnostic::Diagnostics, model::Schema};

mod data_trees;
mod errors;
mod events;
mod inheritance;
mod names;
mod objects;
mod services;
mod types;
mod versions;
mod wire_names;

/// The formats a string type may name: those the support crate checks.
pub use vproto_support::wire::FORMATS as KNOWN_FORMATS;

/// Runs every check on `schema`, adding what it finds to `out`.
pub fn check(schema: &Schema, out: &mut Diagnostics) {
    let mut checker = Checker { schema, out };
    checker.history(&["protocol"], &schema.protocol.history, schema.protocol.version);
    checker.names();
    checker.named_types();
    for (name, object) in &schema.objects {
        checker.object(name, object);
    }
    checker.inheritance_cycles();
    checker.errors();
    checker.services();
    checker.events();
    checker.wire_names();
    checker.data_trees();
}

/// The schema being checked and where its problems go.
struct Checker<'a> {
    schema: &'a Schema,
    out: &'a mut Diagnostics,
}
