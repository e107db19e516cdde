//! Events: names (lower_snake_case, never a method's name too, distinct once written as Rust
//! variants), the protocol versions of `since`, `deprecated` and `removed` in order, params as
//! methods check theirs (a param added after the event optional), and the names generated code
//! gives a service's events free.

use std::collections::BTreeMap;

use super::{names::is_field_name, Checker};
use crate::{
    diagnostic::{escape_segment, pointer},
    model::{Event, Service},
    naming::{event_enum_name, variant_name, SUBSCRIBE_METHOD},
};

impl Checker<'_> {
    /// Every event of every service.
    pub(super) fn events(&mut self) {
        for (service_name, service) in &self.schema.services {
            if service.events.is_empty() {
                continue;
            }
            self.generated_event_names(service_name, service);
            let mut variants: BTreeMap<String, &str> = BTreeMap::new();
            for (event_name, event) in &service.events {
                let at = pointer(&["services", service_name, "events", event_name]);
                if !is_field_name(event_name) {
                    self.out.push(&at, format!("`{event_name}` is not a valid event name"), "use lower_snake_case");
                }
                if service.methods.contains_key(event_name) {
                    self.out.push(
                        &at,
                        format!("`{event_name}` is also a method of the service: both would be called `{service_name}.{event_name}`"),
                        "rename the event or the method",
                    );
                }
                let variant = variant_name(event_name);
                if let Some(other) = variants.insert(variant.clone(), event_name) {
                    self.out.push(
                        &at,
                        format!("`{other}` and `{event_name}` both become the Rust variant `{variant}`"),
                        "rename one of them",
                    );
                }
                self.event(&at, service, event);
            }
        }
    }

    /// The Rust names generated for a service's events, the `<Service>Event` enum and the
    /// client's `subscribe`, take no name of the schema.
    fn generated_event_names(&mut self, service_name: &str, service: &Service) {
        let enum_name = event_enum_name(service_name);
        let groups = [
            ("types", self.schema.types.contains_key(&enum_name)),
            ("objects", self.schema.objects.contains_key(&enum_name)),
            ("errors", self.schema.errors.contains_key(&enum_name)),
        ];
        for (group, _) in groups.into_iter().filter(|(_, taken)| *taken) {
            self.out.push(
                pointer(&[group, &enum_name]),
                format!("`{enum_name}` is the name of the generated enum of the {service_name} service's events"),
                "rename it",
            );
        }
        if service.methods.contains_key(SUBSCRIBE_METHOD) {
            self.out.push(
                pointer(&["services", service_name, "methods", SUBSCRIBE_METHOD]),
                format!(
                    "the generated client of a service with events has a `{SUBSCRIBE_METHOD}` of its own, which this method's would clash with"
                ),
                "rename the method",
            );
        }
    }

    /// One event's versions and params.
    fn event(&mut self, at: &str, service: &Service, event: &Event) {
        self.protocol_version(&format!("{at}/since"), event.since);
        if event.since < service.since {
            self.out.push(
                format!("{at}/since"),
                format!("the event is older ({}) than its service ({})", event.since, service.since),
                "use the service's version or a later one",
            );
        }
        if let Some(deprecated) = event.deprecated {
            self.protocol_version(&format!("{at}/deprecated"), deprecated);
            if deprecated < event.since {
                self.out.push(
                    format!("{at}/deprecated"),
                    format!("the event is deprecated ({deprecated}) before it exists ({})", event.since),
                    "deprecate it at its `since` or later",
                );
            }
        }
        if let Some(removed) = event.removed {
            self.protocol_version(&format!("{at}/removed"), removed);
            if removed <= event.since {
                self.out.push(
                    format!("{at}/removed"),
                    format!("the event is removed ({removed}) no later than it was added ({})", event.since),
                    "remove it at a version after its `since`",
                );
            }
            if event.deprecated.is_some_and(|deprecated| deprecated > removed) {
                self.out.push(
                    format!("{at}/deprecated"),
                    format!("the event is deprecated after it is removed ({removed})"),
                    "deprecate it before or when it is removed",
                );
            }
        }
        self.params(at, &event.params);
        for (param_name, param) in &event.params {
            let Some(since) = param.since else { continue };
            let param_at = format!("{at}/params/{}", escape_segment(param_name));
            if since < event.since {
                self.out.push(
                    format!("{param_at}/since"),
                    format!("the param is added ({since}) before the event exists ({})", event.since),
                    "use the event's `since` or a later version, or leave `since` out",
                );
            }
            if event.removed.is_some_and(|removed| since >= removed) {
                self.out.push(
                    format!("{param_at}/since"),
                    format!("the param is added ({since}) once the event is removed"),
                    "add it before the event's `removed`",
                );
            }
            if since > event.since && param.required {
                self.out.push(
                    &param_at,
                    format!(
                        "the param is added ({since}) after the event ({}), so servers of older protocol versions do not send it; it cannot be required",
                        event.since
                    ),
                    "give it `\"required\": false`",
                );
            }
        }
    }
}
