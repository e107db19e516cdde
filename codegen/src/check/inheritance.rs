//! Inheritance: no cycles, and no field redeclared from a base.

use super::Checker;
use crate::diagnostic::pointer;

impl Checker<'_> {
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

    /// The base (or base of a base) of `object` that declares `field`, if any.
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
