//! A compatibility policy at run time, as QEMU's `-compat deprecated-input=reject,deprecated-output=hide`:
//! a server can refuse deprecated input and hide deprecated output, so clients can test
//! themselves against the protocol in which the deprecated parts are gone, before it arrives.
//!
//! What is deprecated is read from the service's OpenRPC document (`deprecated: true` on a method,
//! and on an event of `x-events`), which every generated server publishes. [`Compat`] wraps a
//! [`Handler`]: under `deprecated-input=reject` a call of a deprecated method is answered
//! `-32601 Method not found` (its data says it is deprecated and the policy refuses it), as QEMU
//! answers a deprecated command under that policy. [`Compat::hides_event`] tells an event
//! publisher which events `deprecated-output=hide` keeps from subscribers.

use std::{collections::BTreeSet, fmt, str::FromStr};

use serde_json::Value;

use super::{BoxFuture, Handler, Params, RpcError};

/// What a server does with deprecated input (calls of deprecated methods).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeprecatedInput {
    /// Serve it (the default).
    #[default]
    Accept,
    /// Refuse it as if it were gone.
    Reject,
}

/// What a server does with deprecated output (deprecated events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeprecatedOutput {
    /// Send it (the default).
    #[default]
    Accept,
    /// Leave it out, as if it were gone.
    Hide,
}

/// The policy: `deprecated-input=accept|reject,deprecated-output=accept|hide`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompatPolicy {
    /// What happens to deprecated input.
    pub deprecated_input: DeprecatedInput,
    /// What happens to deprecated output.
    pub deprecated_output: DeprecatedOutput,
}

/// A policy text that is not `KEY=VALUE[,KEY=VALUE]` of the known keys and values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("compat policy `{text}`: {why}")]
pub struct CompatPolicyError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for CompatPolicy {
    type Err = CompatPolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why: String| CompatPolicyError { text: text.to_string(), why };
        let mut policy = CompatPolicy::default();
        let mut seen = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| error(format!("`{part}` is not KEY=VALUE")))?;
            if !seen.insert(key) {
                return Err(error(format!("`{key}` is given twice")));
            }
            match (key, value) {
                ("deprecated-input", "accept") => policy.deprecated_input = DeprecatedInput::Accept,
                ("deprecated-input", "reject") => policy.deprecated_input = DeprecatedInput::Reject,
                ("deprecated-output", "accept") => policy.deprecated_output = DeprecatedOutput::Accept,
                ("deprecated-output", "hide") => policy.deprecated_output = DeprecatedOutput::Hide,
                ("deprecated-input", other) => {
                    return Err(error(format!("deprecated-input is accept or reject, not `{other}`")))
                }
                ("deprecated-output", other) => {
                    return Err(error(format!("deprecated-output is accept or hide, not `{other}`")))
                }
                (other, _) => {
                    return Err(error(format!("unknown key `{other}` (deprecated-input, deprecated-output)")))
                }
            }
        }
        Ok(policy)
    }
}

impl fmt::Display for CompatPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = match self.deprecated_input {
            DeprecatedInput::Accept => "accept",
            DeprecatedInput::Reject => "reject",
        };
        let output = match self.deprecated_output {
            DeprecatedOutput::Accept => "accept",
            DeprecatedOutput::Hide => "hide",
        };
        write!(f, "deprecated-input={input},deprecated-output={output}")
    }
}

/// The methods and events an OpenRPC document marks `deprecated: true`, by wire name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deprecated {
    /// `service.method` of every deprecated method.
    pub methods: BTreeSet<String>,
    /// `service.event` of every deprecated event (`x-events`).
    pub events: BTreeSet<String>,
}

impl Deprecated {
    /// Reads the marks of `openrpc` (a whole-protocol or per-service document).
    pub fn from_openrpc(openrpc: &Value) -> Deprecated {
        let marked = |key: &str| -> BTreeSet<String> {
            openrpc[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|entry| entry["deprecated"] == Value::Bool(true))
                .filter_map(|entry| entry["name"].as_str().map(str::to_string))
                .collect()
        };
        Deprecated { methods: marked("methods"), events: marked("x-events") }
    }
}

/// A handler under a compatibility policy.
pub struct Compat<H> {
    inner: H,
    policy: CompatPolicy,
    deprecated: Deprecated,
}

impl<H: Handler> Compat<H> {
    /// `inner` under `policy`, with what `deprecated` marks.
    pub fn new(inner: H, policy: CompatPolicy, deprecated: Deprecated) -> Self {
        Compat { inner, policy, deprecated }
    }

    /// Whether a publisher keeps the event `name` (`service.event`) from subscribers.
    pub fn hides_event(&self, name: &str) -> bool {
        self.policy.deprecated_output == DeprecatedOutput::Hide && self.deprecated.events.contains(name)
    }
}

impl<H: Handler> Handler for Compat<H> {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        if self.policy.deprecated_input == DeprecatedInput::Reject && self.deprecated.methods.contains(method) {
            let refused = RpcError::method_not_found(method).with_data(Value::String(format!(
                "`{method}` is deprecated and the server's compat policy ({}) refuses deprecated input",
                self.policy
            )));
            return Box::pin(async move { Err(refused) });
        }
        self.inner.handle(method, params)
    }

    fn methods(&self) -> Vec<&'static str> {
        self.inner.methods()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rpc::codes;

    /// Answers every call with its method's name.
    struct Echo;

    impl Handler for Echo {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin(async move { Ok(Value::String(method.to_string())) })
        }
        fn methods(&self) -> Vec<&'static str> {
            vec!["shop.old", "shop.new"]
        }
    }

    fn document() -> Value {
        json!({
            "methods": [{"name": "shop.old", "deprecated": true}, {"name": "shop.new", "deprecated": false}],
            "x-events": [{"name": "shop.sold", "deprecated": true}, {"name": "shop.bought", "deprecated": false}]
        })
    }

    fn call(handler: &impl Handler, method: &str) -> Result<Value, RpcError> {
        let params = Params::None;
        ready(handler.handle(method, params))
    }

    /// Polls a future that never waits (the handlers here answer at once).
    fn ready<T>(future: BoxFuture<'_, T>) -> T {
        use std::task::{Context, Poll, Waker};
        let mut future = future;
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the handler waited"),
        }
    }

    #[test]
    fn policies_parse_as_qemu_writes_them() {
        let policy: CompatPolicy = "deprecated-input=reject,deprecated-output=hide".parse().unwrap();
        assert_eq!(policy.deprecated_input, DeprecatedInput::Reject);
        assert_eq!(policy.deprecated_output, DeprecatedOutput::Hide);
        assert_eq!(policy.to_string(), "deprecated-input=reject,deprecated-output=hide");
        assert_eq!("".parse::<CompatPolicy>().unwrap(), CompatPolicy::default());
        for bad in [
            "deprecated-input=hide",
            "deprecated-output",
            "unstable-input=reject",
            "deprecated-input=reject,deprecated-input=accept",
        ] {
            let error = bad.parse::<CompatPolicy>().unwrap_err();
            assert!(error.to_string().starts_with(&format!("compat policy `{bad}`: ")), "{error}");
        }
    }

    #[test]
    fn deprecated_input_is_refused_and_deprecated_events_hidden_only_under_the_policy() {
        let deprecated = Deprecated::from_openrpc(&document());
        assert_eq!(deprecated.methods, BTreeSet::from(["shop.old".to_string()]));
        assert_eq!(deprecated.events, BTreeSet::from(["shop.sold".to_string()]));
        let strict =
            Compat::new(Echo, "deprecated-input=reject,deprecated-output=hide".parse().unwrap(), deprecated.clone());
        let refused = call(&strict, "shop.old").unwrap_err();
        assert_eq!(refused.code, codes::METHOD_NOT_FOUND);
        assert!(refused.data.unwrap().as_str().unwrap().contains("deprecated"));
        assert_eq!(call(&strict, "shop.new").unwrap(), json!("shop.new"));
        assert!(strict.hides_event("shop.sold") && !strict.hides_event("shop.bought"));
        let lenient = Compat::new(Echo, CompatPolicy::default(), deprecated);
        assert_eq!(call(&lenient, "shop.old").unwrap(), json!("shop.old"));
        assert!(!lenient.hides_event("shop.sold"));
        assert_eq!(lenient.methods(), vec!["shop.old", "shop.new"]);
    }
}
