//! Who is calling, and the schema's rule of which roles may call which methods.
//!
//! A transport that authenticates its callers ([`Caller::Role`], from a role's token) runs each
//! call's future inside [`scope`] (or its first poll inside [`with_caller`]); a generated
//! dispatcher asks [`check`] before it reads a method's params. Outside any scope the caller is
//! [`Caller::Trusted`]: Unix sockets (mode 0600), stdio, vchan, in-process peers and holders
//! of a shared token that grants every role.
//!
//! The caller is kept in a thread-local set for the duration of each poll of the scoped future,
//! so this works on any executor (this module knows no async runtime, like the rest of `rpc`).

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use serde_json::json;

use super::{codes, BoxFuture, RpcError};

/// Who is calling, as the transport authenticated it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Caller {
    /// A caller the transport trusts with every method (no role applies).
    #[default]
    Trusted,
    /// A caller that presented the token of this role (`driver`, `agent`, `conductor`,
    /// `operator`, ...).
    Role(Arc<str>),
}

impl Caller {
    /// A caller holding `role`.
    pub fn role(role: &str) -> Self {
        Caller::Role(Arc::from(role))
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// Puts `caller` in place for as long as it lives, and the previous one back when dropped
/// (also when a poll panics).
struct Swap(Option<Caller>);

impl Swap {
    fn enter(caller: Caller) -> Self {
        Swap(CURRENT.with(|current| current.replace(Some(caller))))
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// The caller of the call running now ([`Caller::Trusted`] outside any scope).
pub fn current() -> Caller {
    CURRENT.with(|current| current.borrow().clone()).unwrap_or_default()
}

/// Runs `f` with `caller` as the current caller (for the synchronous first poll of a call).
pub fn with_caller<R>(caller: Caller, f: impl FnOnce() -> R) -> R {
    let _swap = Swap::enter(caller);
    f()
}

/// A future polled with its caller in place.
struct Scoped<'a, T> {
    caller: Caller,
    future: BoxFuture<'a, T>,
}

impl<T> Future for Scoped<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let _swap = Swap::enter(self.caller.clone());
        self.future.as_mut().poll(cx)
    }
}

/// `future`, each of its polls run with `caller` as the current caller.
pub fn scope<'a, T: 'a>(caller: Caller, future: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
    Box::pin(Scoped { caller, future })
}

/// The error of a call by a role the method does not admit: code
/// [`codes::FORBIDDEN`], `data` naming the method, the caller's role and the roles allowed.
pub fn forbidden(method: &str, role: &str, allowed: &[&str]) -> RpcError {
    RpcError::new(codes::FORBIDDEN, "Forbidden").with_data(json!({
        "method": method,
        "role": role,
        "allowed": allowed,
        "detail": format!("`{method}` may be called by {} only, not by the role `{role}`", allowed.join(", ")),
    }))
}

/// Whether the current caller may call `method`, which the schema opens to `allowed` (every
/// role when empty): a trusted caller may call anything, a role only the methods that name it.
pub fn check(method: &str, allowed: &[&str]) -> Result<(), RpcError> {
    if allowed.is_empty() {
        return Ok(());
    }
    match current() {
        Caller::Trusted => Ok(()),
        Caller::Role(role) if allowed.contains(&&*role) => Ok(()),
        Caller::Role(role) => Err(forbidden(method, &role, allowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<T>(future: BoxFuture<'_, T>) -> Poll<T> {
        let mut future = future;
        let waker = std::task::Waker::noop();
        future.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_role_may_call_only_the_methods_that_name_it() {
        assert_eq!(check("agent.hello", &["driver"]), Ok(()), "outside a scope the caller is trusted");
        with_caller(Caller::role("driver"), || {
            assert_eq!(check("agent.hello", &["driver"]), Ok(()));
            assert_eq!(check("agent.list_hardware", &[]), Ok(()));
            let error = check("agent.start_discovery", &["conductor", "operator"]).unwrap_err();
            assert_eq!(error.code, codes::FORBIDDEN);
            assert_eq!(error.data.as_ref().unwrap()["role"], "driver");
            assert_eq!(error.data.as_ref().unwrap()["allowed"], json!(["conductor", "operator"]));
        });
        assert_eq!(current(), Caller::Trusted, "the previous caller is back");
    }

    #[test]
    fn a_scoped_future_sees_its_caller_on_every_poll_and_leaves_none_behind() {
        let mut polls = 0;
        let future = scope(
            Caller::role("agent"),
            Box::pin(std::future::poll_fn(move |cx| {
                assert_eq!(current(), Caller::role("agent"));
                polls += 1;
                if polls < 2 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(check("conductor.hello", &["agent"]))
                }
            })),
        );
        let mut future = future;
        let waker = std::task::Waker::noop();
        assert!(future.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
        assert_eq!(current(), Caller::Trusted);
        assert_eq!(poll_once(future), Poll::Ready(Ok(())));
    }
}
