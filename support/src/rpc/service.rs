//! What generated service code shares, whatever the protocol: the errors a handler returns and
//! a client receives, over the protocol's own declared errors, and [`Answer`], a result with
//! the versions to write its objects at.

use std::fmt;

use serde_json::Value;

use super::{CallError, RpcError};
use crate::wire::{backport_named, Registry, Version, WireError, WirePath, WireValue};

/// The declared errors of a protocol, as generated code implements them for its
/// `ProtocolError` enum: each has a name, a stable code and typed data.
pub trait DeclaredError: Clone + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The error's name in the schema.
    fn name(&self) -> &'static str;
    /// The error's stable code.
    fn code(&self) -> i64;
    /// The error as a JSON-RPC error object.
    fn to_rpc(&self) -> RpcError;
    /// Reads a declared error from a JSON-RPC error object: `None` when the code is not a
    /// declared one, an error when it is but the data does not fit.
    fn from_rpc(error: &RpcError) -> Option<Result<Self, WireError>>;
}

/// Why a service method failed (generated code names it `ServiceError` for its protocol).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ServiceError<E> {
    /// A declared error, answered with its code and data.
    #[error("{0}")]
    Protocol(E),
    /// Anything else: logged by the dispatcher and answered as an internal error without
    /// details.
    #[error("internal: {0}")]
    Internal(String),
}

impl<E> From<E> for ServiceError<E> {
    fn from(error: E) -> Self {
        ServiceError::Protocol(error)
    }
}

impl<E: DeclaredError> ServiceError<E> {
    /// The answer to `method`'s caller: a declared error of the method keeps its code and data;
    /// anything else is logged and answered as an internal error.
    pub fn into_rpc(self, method: &str, declared: &[&str]) -> RpcError {
        match self {
            ServiceError::Protocol(error) if declared.contains(&error.name()) => error.to_rpc(),
            ServiceError::Protocol(error) => {
                tracing::error!(method, error = %error, "handler returned an error the method does not declare");
                RpcError::internal()
            }
            ServiceError::Internal(why) => {
                tracing::error!(method, error = %why, "handler failed");
                RpcError::internal()
            }
        }
    }
}

/// Why a client call failed (generated code names it `ClientError` for its protocol).
#[derive(Debug, thiserror::Error)]
pub enum ClientError<E: DeclaredError> {
    /// The server answered with a declared error.
    #[error("{name}: {0}", name = .0.name())]
    Protocol(E),
    /// The call failed otherwise.
    #[error(transparent)]
    Call(CallError),
}

impl<E: DeclaredError> From<CallError> for ClientError<E> {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Rpc(rpc) => match E::from_rpc(&rpc) {
                Some(Ok(declared)) => ClientError::Protocol(declared),
                Some(Err(bad)) => ClientError::Call(CallError::Decode(bad)),
                None => ClientError::Call(CallError::Rpc(rpc)),
            },
            other => ClientError::Call(other),
        }
    }
}

/// A method's result together with the versions its objects are written at: what a handler
/// returns, and the generated dispatcher writes.
///
/// By default every object is written at its current version, children at the versions their
/// parent's version pins (`Answer::from(value)`). A handler that negotiated older versions with
/// its caller names them with [`Answer::at_version`], as oslo.versionedobjects'
/// `obj_to_primitive(target_version)` does: each named object is converted wherever it appears
/// in the result, in the order named, its children following its version's pins unless named
/// after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer<T> {
    value: T,
    versions: Vec<(&'static str, Version)>,
}

impl<T> Answer<T> {
    /// `value`, written at current versions.
    pub fn current(value: T) -> Self {
        Answer { value, versions: Vec::new() }
    }

    /// Writes every `object` in the result at `version` instead of its current one.
    pub fn at_version(mut self, object: &'static str, version: Version) -> Self {
        self.versions.push((object, version));
        self
    }

    /// The result.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The result, without its versions.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The objects written at other than their current version, in the order named.
    pub fn versions(&self) -> &[(&'static str, Version)] {
        &self.versions
    }
}

impl<T> From<T> for Answer<T> {
    fn from(value: T) -> Self {
        Answer::current(value)
    }
}

impl<T: WireValue> Answer<T> {
    /// The result as wire JSON at the chosen versions (`registry` describes every object it may
    /// hold). An error names the object and version that cannot be written.
    pub fn to_wire(&self, registry: &Registry) -> Result<Value, WireError> {
        let mut value = self.value.to_wire();
        let path = WirePath::root().field("result");
        for (object, version) in &self.versions {
            backport_named(registry, &mut value, object, *version, &path)?;
        }
        Ok(value)
    }

    /// What the dispatcher of `method` answers: the wire JSON, or an internal error (logged,
    /// naming the object and version) when the result cannot be written at the chosen versions.
    pub fn into_result(self, registry: &Registry, method: &str) -> Result<Value, RpcError> {
        self.to_wire(registry).map_err(|error| {
            tracing::error!(method, %error, "cannot write the answer at the versions the handler chose");
            RpcError::internal()
        })
    }
}
