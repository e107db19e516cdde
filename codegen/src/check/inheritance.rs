//! Inheritance: a base that exists and travels the same way, a well-formed map from the
//! subclass's versions to the base's, no field redeclared from a base, and no cycles.

use super::Checker;
use crate::{
    diagnostic::pointer,
    model::{Extends, Object, Version},
};

impl Checker<'_> {
    /// The base that `object` (named `name`, of versions `versions`) extends.
    pub(super) fn extends(&mut self, name: &str, object: &Object, extends: &Extends, versions: &[Version]) {
        let at = pointer(&["objects", name, "extends"]);
        match self.schema.objects.get(&extends.object) {
            None => self.out.push(
                format!("{at}/object"),
                format!("{name} extends `{}`, which is not an object of the schema", extends.object),
                "name an object defined under /objects",
            ),
            Some(base) => {
                if base.wire != object.wire {
                    self.out.push(
                        format!("{at}/object"),
                        format!("{name} and its base {} use different wire forms", extends.object),
                        "a subclass travels the same way as its base",
                    );
                }
                let base_versions: Vec<Version> = base.history.iter().map(|e| e.version).collect();
                self.version_map(
                    &format!("{at}/versions"),
                    &extends.versions,
                    (name, versions),
                    (&extends.object, &base_versions),
                    versions.first().copied(),
                );
                for field in object.fields.keys() {
                    if let Some(owner) = self.find_inherited_field(&extends.object, field) {
                        self.out.push(
                            pointer(&["objects", name, "fields", field]),
                            format!("field `{field}` is already declared by the base object {owner}"),
                            "a subclass inherits base fields; remove this declaration or rename it",
                        );
                    }
                }
            }
        }
    }

    /// Reports every object that is, through its bases, its own base.
    pub(super) fn inheritance_cycles(&mut self) {
        for start in self.schema.objects.keys() {
            let mut chain = vec![start.as_str()];
            let mut current = start.as_str();
            while let Some(base) =
                self.schema.objects.get(current).and_then(|o| o.extends.as_ref()).map(|e| e.object.as_str())
            {
                if base == start {
                    chain.push(base);
                    self.out.push(
                        pointer(&["objects", start, "extends", "object"]),
                        format!("inheritance cycle: {}", chain.join(" -> ")),
                        "an object cannot be its own base; break the cycle",
                    );
                    break;
                }
                if chain.contains(&base) {
                    break;
                }
                chain.push(base);
                current = base;
            }
        }
    }

    /// The object, `object` itself or one of its bases, that declares `field`, if any.
    pub(super) fn find_inherited_field(&self, object: &str, field: &str) -> Option<String> {
        let mut current = object.to_string();
        for _ in 0..=self.schema.objects.len() {
            let definition = self.schema.objects.get(&current)?;
            if definition.fields.contains_key(field) {
                return Some(current);
            }
            current = definition.extends.as_ref()?.object.clone();
        }
        None
    }
}
