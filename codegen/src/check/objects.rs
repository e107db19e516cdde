//! Objects and their fields: wire form and namespace, versions of fields, defaults for fields
//! that older data lacks, and child-version pins of fields that hold objects.

use super::{names::is_field_name, Checker};
use crate::{
    diagnostic::pointer,
    model::{Field, Object, Version, WireForm},
    resolve::object_target,
};

impl Checker<'_> {
    /// One object: its history, namespace, deprecation, base and fields.
    pub(super) fn object(&mut self, name: &str, object: &Object) {
        let at = pointer(&["objects", name]);
        self.history(&["objects", name], &object.history, object.version);
        let versions: Vec<Version> = object.history.iter().map(|e| e.version).collect();
        if object.wire == WireForm::VersionedObject && object.namespace.is_none() {
            self.out.push(
                &at,
                format!("{name} travels as a versioned object but has no `namespace`"),
                "add `namespace`, written to versioned_object.namespace",
            );
        }
        if let Some(deprecation) = &object.deprecated {
            self.object_version(&at, "/deprecated/since", name, &versions, deprecation.since);
        }
        if let Some(extends) = &object.extends {
            self.extends(name, object, extends, &versions);
        }
        let first = versions.first().copied();
        for (field_name, field) in &object.fields {
            self.field(name, object, &versions, first, field_name, field);
        }
    }

    fn field(
        &mut self,
        object_name: &str,
        object: &Object,
        versions: &[Version],
        first: Option<Version>,
        name: &str,
        field: &Field,
    ) {
        let at = pointer(&["objects", object_name, "fields", name]);
        if !is_field_name(name) {
            self.out.push(
                &at,
                format!("`{name}` is not a valid field name"),
                "use lower_snake_case ASCII letters, digits and underscores, starting with a letter",
            );
        }
        self.object_version(&at, "/since", object_name, versions, field.since);
        if let Some(deprecated) = field.deprecated {
            self.object_version(&at, "/deprecated", object_name, versions, deprecated);
            if deprecated < field.since {
                self.out.push(
                    format!("{at}/deprecated"),
                    "a field cannot be deprecated before it exists",
                    "use a version at or after `since`",
                );
            }
        }
        if let Some(removed) = field.removed {
            self.object_version(&at, "/removed", object_name, versions, removed);
            if removed <= field.since {
                self.out.push(
                    format!("{at}/removed"),
                    "a field must exist for at least one version before it is removed",
                    "use a version after `since`",
                );
            }
            if field.required && field.default.is_none() {
                self.out.push(
                    format!("{at}/removed"),
                    format!("`{name}` is required by the versions before {removed} but has no default to fill it in when converting down"),
                    "add a `default`",
                );
            }
        }
        self.type_expr(&format!("{at}/schema"), &field.schema, Some(object));
        if Some(field.since) > first && field.required && field.default.is_none() {
            self.out.push(
                &at,
                format!(
                    "`{name}` was added in {object_name} {} and is required, but data from earlier versions lacks it and there is no default",
                    field.since
                ),
                "add a `default`, or set `\"required\": false`",
            );
        }
        if let Some(default) = &field.default {
            if let Err(why) = self.default_fits(default, &field.schema, field.nullable) {
                self.out.push(
                    format!("{at}/default"),
                    format!("the default does not fit the field's type: {why}"),
                    "give a default of the field's type",
                );
            }
        }
        self.child_versions(&at, object_name, versions, name, field);
    }

    /// `field_at` is the field's pointer.
    fn child_versions(&mut self, field_at: &str, object_name: &str, versions: &[Version], name: &str, field: &Field) {
        // Built only when needed: most fields are fine.
        let at = || format!("{field_at}/child_versions");
        let Some((child, polymorphic)) = object_target(&self.schema.types, &field.schema) else {
            if !field.child_versions.is_empty() {
                self.out.push(at(), "`child_versions` only applies to fields that hold objects", "remove it");
            }
            return;
        };
        let Some(child_object) = self.schema.objects.get(child) else { return };
        if field.child_versions.is_empty() {
            if !polymorphic {
                self.out.push(
                    at(),
                    format!("`{name}` holds {child} objects but does not pin which {child} version each {object_name} version carries"),
                    format!(
                        "add `\"child_versions\": {{\"{}\": \"{}\"}}` (this object's version: {child}'s version)",
                        field.since, child_object.version
                    ),
                );
            }
            return;
        }
        let child_versions: Vec<Version> = child_object.history.iter().map(|e| e.version).collect();
        self.version_map(
            &at(),
            &field.child_versions,
            (object_name, versions),
            (child, &child_versions),
            Some(field.since),
        );
    }
}
