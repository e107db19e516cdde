//! Services and methods: names, params, results, declared errors, notifications, and REST
//! bindings (absolute paths, one route per service, a `body` param that can stand for the
//! whole request body).

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::{names::is_field_name, Checker};
use crate::{
    diagnostic::{escape_segment, pointer},
    model::{HttpMethod, JsonType, Method, Param, TypeExpr},
    resolve::lineage,
};

impl Checker<'_> {
    /// Every service, its methods and their REST routes.
    pub(super) fn services(&mut self) {
        let mut routes: BTreeMap<(String, String), String> = BTreeMap::new();
        for (service_name, service) in &self.schema.services {
            let service_at = pointer(&["services", service_name]);
            if !is_field_name(service_name) {
                self.out.push(
                    &service_at,
                    format!("`{service_name}` is not a valid service name"),
                    "use lower_snake_case",
                );
            }
            self.protocol_version(&format!("{service_at}/since"), service.since);
            for (method_name, method) in &service.methods {
                let at = pointer(&["services", service_name, "methods", method_name]);
                if !is_field_name(method_name) {
                    self.out.push(&at, format!("`{method_name}` is not a valid method name"), "use lower_snake_case");
                }
                self.protocol_version(&format!("{at}/since"), method.since);
                self.params(&at, &method.params);
                if let Some(result) = &method.result {
                    self.type_expr(&format!("{at}/result"), result, None);
                }
                if method.notification && (method.result.is_some() || !method.errors.is_empty()) {
                    self.out.push(
                        &at,
                        "a notification is never answered, so it has no result or errors",
                        "remove `result` and `errors`, or make it a method",
                    );
                }
                for (index, error) in method.errors.iter().enumerate() {
                    if !self.schema.errors.contains_key(error) {
                        self.out.push(
                            format!("{at}/errors/{index}"),
                            format!("`{error}` is not an error of the schema"),
                            "name an error defined under /errors",
                        );
                    }
                }
                if let Some(roles) = &method.roles {
                    self.roles(&at, roles);
                }
                if let Some(http) = &method.http {
                    if !http.path.starts_with('/') {
                        self.out.push(
                            format!("{at}/http/path"),
                            "an HTTP path starts with `/`",
                            "write an absolute path",
                        );
                    }
                    let route = (http.method.as_str().to_string(), http.path.clone());
                    let full_name = format!("{service_name}.{method_name}");
                    if let Some(other) = routes.get(&route) {
                        // Different services may share a route: each is served on its own listener.
                        if other.split('.').next() == Some(service_name.as_str()) {
                            self.out.push(
                                format!("{at}/http"),
                                format!("{} {} is already bound to {other}", route.0, route.1),
                                "bind each route once per service",
                            );
                        }
                    }
                    routes.insert(route, full_name);
                    if let Some(body) = &http.body {
                        self.http_body(&format!("{at}/http/body"), method, http.method, body);
                    }
                }
            }
        }
    }

    /// A method's `roles`: lower_snake_case names, each once; absent rather than empty.
    fn roles(&mut self, at: &str, roles: &[String]) {
        if roles.is_empty() {
            self.out.push(
                format!("{at}/roles"),
                "an empty `roles` opens the method to nobody",
                "name a role, or remove `roles` to open it to every caller",
            );
        }
        for (index, role) in roles.iter().enumerate() {
            if !is_field_name(role) {
                self.out.push(
                    format!("{at}/roles/{index}"),
                    format!("`{role}` is not a valid role name"),
                    "use lower_snake_case, such as driver or operator",
                );
            }
            if roles[..index].contains(role) {
                self.out.push(format!("{at}/roles/{index}"), format!("`{role}` is named twice"), "name each role once");
            }
        }
    }

    /// The params of a method or event at `at`: names, types and the protocol versions that
    /// added them.
    pub(super) fn params(&mut self, at: &str, params: &IndexMap<String, Param>) {
        for (param_name, param) in params {
            let param_at = format!("{at}/params/{}", escape_segment(param_name));
            if !is_field_name(param_name) {
                self.out.push(
                    &param_at,
                    format!("`{param_name}` is not a valid parameter name"),
                    "use lower_snake_case",
                );
            }
            self.type_expr(&format!("{param_at}/schema"), &param.schema, None);
            if let Some(since) = param.since {
                self.protocol_version(&format!("{param_at}/since"), since);
            }
            if let Some(deprecated) = param.deprecated {
                self.protocol_version(&format!("{param_at}/deprecated"), deprecated);
                if param.since.is_some_and(|since| deprecated < since) {
                    self.out.push(
                        format!("{param_at}/deprecated"),
                        "a param cannot be deprecated before it exists",
                        "use a version at or after its `since`",
                    );
                }
            }
        }
    }

    /// A route's `body` names a param that can stand for the whole request body: one of the
    /// method's, on a verb that has a body, with every other param optional (the route carries
    /// only this one), and of a type whose value can never look like the wrapped form
    /// `{"<param>": value}` that the route also accepts.
    fn http_body(&mut self, at: &str, method: &Method, verb: HttpMethod, body: &str) {
        let Some(param) = method.params.get(body) else {
            let names: Vec<&str> = method.params.keys().map(String::as_str).collect();
            self.out.push(
                at,
                format!("`{body}` is not a param of the method"),
                format!(
                    "name one of its params ({})",
                    if names.is_empty() { "it has none".into() } else { names.join(", ") }
                ),
            );
            return;
        };
        if !matches!(verb, HttpMethod::Post | HttpMethod::Put) {
            self.out.push(
                at,
                format!("a {} request has no body to carry `{body}`", verb.as_str()),
                "bind the method to POST or PUT, or remove `body`",
            );
        }
        for (other, other_param) in &method.params {
            if other != body && other_param.required {
                self.out.push(
                    at,
                    format!("the required param `{other}` cannot be given on a route whose body is `{body}`"),
                    format!("make `{other}` optional, or remove `body`"),
                );
            }
        }
        // The wrapped form names the param as the wire does.
        let wrapped = param.wire_name.as_deref().unwrap_or(body);
        if self.may_hold_member(&param.schema, wrapped, 0) {
            self.out.push(
                at,
                format!("a `{body}` value may hold a member named `{wrapped}`, so a body could not be told from the wrapped form `{{\"{wrapped}\": ...}}`"),
                "give the param another name, or remove `body`",
            );
        }
    }

    /// Whether a value of `expr` may be a JSON object with a member named `member`: an object
    /// with a field of that wire name (its own or inherited) or a map, through named types.
    fn may_hold_member(&self, expr: &TypeExpr, member: &str, depth: usize) -> bool {
        if let Some(object) = &expr.object {
            return lineage(self.schema, object).iter().any(|(_, owner)| {
                owner.fields.iter().any(|(name, field)| field.wire_name.as_deref().unwrap_or(name) == member)
            });
        }
        let named =
            expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")).and_then(|n| self.schema.types.get(n));
        match named {
            // A cycle of references is reported elsewhere; the depth bound only ends the walk.
            Some(named) => depth <= self.schema.types.len() && self.may_hold_member(&named.schema, member, depth + 1),
            None => expr.json_type == Some(JsonType::Object),
        }
    }
}
