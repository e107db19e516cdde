//! Which way each named type and object travels: reachable from params (input), from results,
//! events and error data (output), or both. The verdict on a change to a type depends on it, as
//! in QAPI's compatibility rules and buf's breaking checks.

use std::collections::HashMap;

use crate::model::{Schema, TypeExpr};

/// The directions a type travels in, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction(u8);

impl Direction {
    /// Not reachable from any method, event or error.
    pub const NONE: Direction = Direction(0);
    /// Sent by clients: reachable from a method's params.
    pub const INPUT: Direction = Direction(1);
    /// Sent by servers: reachable from a result, an event's params or an error's data.
    pub const OUTPUT: Direction = Direction(2);
    /// Both ways.
    pub const BOTH: Direction = Direction(3);

    /// Whether clients send values of the type.
    pub fn input(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether servers send values of the type.
    pub fn output(self) -> bool {
        self.0 & 2 != 0
    }

    /// Both directions together.
    pub fn union(self, other: Direction) -> Direction {
        Direction(self.0 | other.0)
    }

    /// The direction as the findings name it.
    pub fn describe(self) -> &'static str {
        match self.0 {
            1 => "input (params)",
            2 => "output (results, events, error data)",
            3 => "both input and output",
            _ => "no method, event or error",
        }
    }
}

/// The direction of every named type (`types/NAME`) and object (`objects/NAME`) of a schema.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    types: HashMap<String, Direction>,
    objects: HashMap<String, Direction>,
}

impl Reach {
    /// Walks every method's params and result, every event's params, every error's data and every
    /// data tree's object (data trees are read and written: both).
    pub fn of(schema: &Schema) -> Reach {
        let mut walk = Walk { schema, reach: Reach::default(), subclasses: HashMap::new() };
        for (name, object) in &schema.objects {
            if let Some(extends) = &object.extends {
                walk.subclasses.entry(extends.object.as_str()).or_default().push(name.as_str());
            }
        }
        for service in schema.services.values() {
            for method in service.methods.values() {
                for param in method.params.values() {
                    walk.expr(&param.schema, Direction::INPUT);
                }
                if let Some(result) = &method.result {
                    walk.expr(result, Direction::OUTPUT);
                }
            }
            for event in service.events.values() {
                for param in event.params.values() {
                    walk.expr(&param.schema, Direction::OUTPUT);
                }
            }
        }
        for error in schema.errors.values() {
            if let Some(data) = &error.data {
                walk.expr(data, Direction::OUTPUT);
            }
        }
        for tree in schema.data_trees.values() {
            walk.object(&tree.object, Direction::BOTH);
        }
        walk.reach
    }

    /// The direction of the named type `name`.
    pub fn named_type(&self, name: &str) -> Direction {
        self.types.get(name).copied().unwrap_or_default()
    }

    /// The direction of the object `name`.
    pub fn object(&self, name: &str) -> Direction {
        self.objects.get(name).copied().unwrap_or_default()
    }

    /// Both revisions' directions together: a change is judged for every way either revision
    /// sends the type.
    pub fn merged(mut self, other: &Reach) -> Reach {
        for (name, direction) in &other.types {
            let entry = self.types.entry(name.clone()).or_default();
            *entry = entry.union(*direction);
        }
        for (name, direction) in &other.objects {
            let entry = self.objects.entry(name.clone()).or_default();
            *entry = entry.union(*direction);
        }
        self
    }
}

struct Walk<'s> {
    schema: &'s Schema,
    reach: Reach,
    subclasses: HashMap<&'s str, Vec<&'s str>>,
}

impl<'s> Walk<'s> {
    fn expr(&mut self, expr: &'s TypeExpr, direction: Direction) {
        if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
            let entry = self.reach.types.entry(name.to_string()).or_default();
            if entry.union(direction) == *entry {
                return;
            }
            *entry = entry.union(direction);
            if let Some(named) = self.schema.types.get(name) {
                self.expr(&named.schema, direction);
            }
        }
        if let Some(object) = &expr.object {
            self.object(object, direction);
            if expr.subclasses {
                let mut pending = vec![object.as_str()];
                while let Some(base) = pending.pop() {
                    for sub in self.subclasses.get(base).cloned().unwrap_or_default() {
                        if self.reach.object(sub).union(direction) != self.reach.object(sub) {
                            pending.push(sub);
                        }
                        self.object(sub, direction);
                    }
                }
            }
        }
        for inner in [&expr.items, &expr.additional_properties].into_iter().flatten() {
            self.expr(inner, direction);
        }
    }

    fn object(&mut self, name: &str, direction: Direction) {
        let entry = self.reach.objects.entry(name.to_string()).or_default();
        if entry.union(direction) == *entry {
            return;
        }
        *entry = entry.union(direction);
        let Some(object) = self.schema.objects.get(name) else { return };
        for field in object.fields.values() {
            self.expr(&field.schema, direction);
        }
        if let Some(extends) = &object.extends {
            self.object(&extends.object, direction);
        }
    }
}
