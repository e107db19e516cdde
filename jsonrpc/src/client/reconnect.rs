//! [`Reconnecting`]: a client layer that opens its connection on first use and opens a new one
//! after it breaks, with a [`RetryPolicy`] for the request that saw it break.

use std::{future::Future, sync::Arc};

use serde_json::Value;
use tokio::sync::Mutex;
use vproto_support::rpc::{
    events::{RawEvents, Subscription},
    BoxFuture, CallError, ClientTransport,
};

use super::{Client, ClientOptions};
use crate::transport::ConnectAddr;

/// Opens connections for a [`Reconnecting`] client.
pub trait Connect: Send + Sync + 'static {
    /// What a connection is: anything requests can be sent through.
    type Connection: ClientTransport + 'static;

    /// Opens one connection.
    fn connect(&self) -> BoxFuture<'_, Result<Self::Connection, CallError>>;
}

/// Dials one address with [`Client::connect`]: the [`Connect`] of a [`Reconnecting`] client
/// over the network.
#[derive(Clone, Debug)]
pub struct Dial {
    /// Where to connect.
    pub addr: ConnectAddr,
    /// Timeouts, token and answer size of every connection.
    pub options: ClientOptions,
}

impl Connect for Dial {
    type Connection = Client;

    fn connect(&self) -> BoxFuture<'_, Result<Client, CallError>> {
        Box::pin(Client::connect(&self.addr, self.options.clone()))
    }
}

/// Whether a request that failed because its connection broke is sent again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Never: the request fails with the transport error, and the next request opens a new
    /// connection. For calls that must not run twice.
    #[default]
    Never,
    /// Once, on a new connection, when the connection that failed had already served a
    /// request (the peer may have closed it while idle, or restarted since). Only for
    /// idempotent calls: the request may have reached the server before its connection broke.
    OnceAfterReuse,
}

/// A client layer over a [`Connect`]: the connection is opened on first use and kept; a
/// transport failure drops it (the next request opens a new one) and, as the [`RetryPolicy`]
/// says, the failed request is sent again on a new connection. Declared and other JSON-RPC
/// errors are answers, not failures: they leave the connection alone.
///
/// Cheap to clone; clones share the connection. Concurrent requests share one connection
/// (a line connection multiplexes them by id); while it is being opened, they wait for it.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use vproto_support::rpc::ClientTransport;
/// use vproto_jsonrpc::{ClientOptions, Dial, Reconnecting, RetryPolicy};
/// let dial = Dial { addr: "tcp:127.0.0.1:4000".parse()?, options: ClientOptions::default() };
/// let client = Reconnecting::new(dial, RetryPolicy::OnceAfterReuse);
/// let answer = client.request("agent.list_hardware", serde_json::Value::Null).await?;
/// # Ok(()) }
/// ```
pub struct Reconnecting<C: Connect = Dial> {
    shared: Arc<Shared<C>>,
}

struct Shared<C: Connect> {
    connect: C,
    retry: RetryPolicy,
    current: Mutex<Option<Arc<C::Connection>>>,
}

impl<C: Connect> Clone for Reconnecting<C> {
    fn clone(&self) -> Self {
        Reconnecting { shared: self.shared.clone() }
    }
}

impl<C: Connect> Reconnecting<C> {
    /// A client that connects with `connect` when first used.
    pub fn new(connect: C, retry: RetryPolicy) -> Self {
        Reconnecting { shared: Arc::new(Shared { connect, retry, current: Mutex::new(None) }) }
    }

    /// How connections are opened.
    pub fn connector(&self) -> &C {
        &self.shared.connect
    }

    /// Drops the current connection, if any (one that may be wedged: a caller gave up waiting
    /// on it); the next request opens a new one.
    pub async fn disconnect(&self) {
        self.shared.current.lock().await.take();
    }

    /// The open connection, or a new one; and whether it had been used before.
    async fn connection(&self) -> Result<(Arc<C::Connection>, bool), CallError> {
        let mut current = self.shared.current.lock().await;
        if let Some(connection) = current.as_ref() {
            return Ok((connection.clone(), true));
        }
        let connection = Arc::new(self.shared.connect.connect().await?);
        *current = Some(connection.clone());
        Ok((connection, false))
    }

    /// Drops `connection` unless a new one has replaced it meanwhile.
    async fn forget(&self, connection: &Arc<C::Connection>) {
        let mut current = self.shared.current.lock().await;
        if current.as_ref().is_some_and(|open| Arc::ptr_eq(open, connection)) {
            current.take();
        }
    }

    /// Sends through the connection with `send`, dropping the connection when it fails and
    /// sending once more on a new one when the policy allows it. `params` is copied only when
    /// a retry may need it.
    async fn send<T, F, Fut>(&self, params: Value, send: F) -> Result<T, CallError>
    where
        F: Fn(Arc<C::Connection>, Value) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let (connection, reused) = self.connection().await?;
        let spare = (reused && self.shared.retry == RetryPolicy::OnceAfterReuse).then(|| params.clone());
        let why = match send(connection.clone(), params).await {
            Err(CallError::Transport(why)) => why,
            answer => return answer,
        };
        self.forget(&connection).await;
        let Some(params) = spare else { return Err(CallError::Transport(why)) };
        tracing::debug!(reason = %why, "a reused connection failed; sending again on a new one");
        let (connection, _) = self.connection().await?;
        let answer = send(connection.clone(), params).await;
        if matches!(answer, Err(CallError::Transport(_))) {
            self.forget(&connection).await;
        }
        answer
    }
}

impl<C: Connect> ClientTransport for Reconnecting<C> {
    fn request<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(self.send(params, move |connection, params| async move { connection.request(method, params).await }))
    }

    fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
        Box::pin(self.send(params, move |connection, params| async move { connection.notify(method, params).await }))
    }

    /// Subscribes on the current connection (opening one if needed; a subscription that fails
    /// on a broken connection is retried as the [`RetryPolicy`] says: subscribing twice does no
    /// harm). The stream keeps that connection open and ends when it ends; it is not carried
    /// over to the next connection, since the events published in between would be lost
    /// unseen: subscribe again.
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<Box<dyn RawEvents>, CallError>> {
        Box::pin(self.send(Value::Null, move |connection, _| {
            let subscription = subscription.clone();
            async move { connection.subscribe(subscription).await }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };

    use serde_json::{json, Value};
    use vproto_support::rpc::{BoxFuture, CallError, ClientTransport, RpcError};

    use super::{Connect, Reconnecting, RetryPolicy};

    /// A connection that answers its serial number, or fails once `broken` is set.
    struct FakeConnection {
        serial: usize,
        broken: Arc<AtomicBool>,
    }

    impl ClientTransport for FakeConnection {
        fn request<'a>(&'a self, method: &'a str, _params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
            Box::pin(async move {
                if method == "declared" {
                    return Err(CallError::Rpc(RpcError::new(1000, "declared")));
                }
                if self.broken.load(Ordering::SeqCst) {
                    return Err(CallError::Transport("connection reset".into()));
                }
                Ok(json!(self.serial))
            })
        }

        fn notify<'a>(&'a self, method: &'a str, params: Value) -> BoxFuture<'a, Result<(), CallError>> {
            Box::pin(async move { self.request(method, params).await.map(|_| ()) })
        }
    }

    /// Counts connections; each new one starts unbroken, and `refuse` fails the next connect.
    #[derive(Default)]
    struct FakeConnect {
        opened: AtomicUsize,
        refuse: AtomicBool,
        current_broken: Arc<std::sync::Mutex<Arc<AtomicBool>>>,
    }

    impl FakeConnect {
        fn break_current(&self) {
            self.current_broken.lock().unwrap().store(true, Ordering::SeqCst);
        }
    }

    impl Connect for FakeConnect {
        type Connection = FakeConnection;

        fn connect(&self) -> BoxFuture<'_, Result<FakeConnection, CallError>> {
            Box::pin(async move {
                if self.refuse.swap(false, Ordering::SeqCst) {
                    return Err(CallError::Transport("connection refused".into()));
                }
                let broken = Arc::new(AtomicBool::new(false));
                *self.current_broken.lock().unwrap() = broken.clone();
                Ok(FakeConnection { serial: self.opened.fetch_add(1, Ordering::SeqCst) + 1, broken })
            })
        }
    }

    async fn serial(client: &Reconnecting<FakeConnect>) -> Result<Value, CallError> {
        client.request("serial", Value::Null).await
    }

    #[tokio::test]
    async fn connects_on_first_use_and_keeps_the_connection() {
        let client = Reconnecting::new(FakeConnect::default(), RetryPolicy::Never);
        assert_eq!(client.connector().opened.load(Ordering::SeqCst), 0);
        assert_eq!(serial(&client).await.unwrap(), json!(1));
        assert_eq!(serial(&client.clone()).await.unwrap(), json!(1));
        assert_eq!(client.connector().opened.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_retry_a_broken_connection_fails_once_then_is_replaced() {
        let client = Reconnecting::new(FakeConnect::default(), RetryPolicy::Never);
        serial(&client).await.unwrap();
        client.connector().break_current();
        assert!(matches!(serial(&client).await, Err(CallError::Transport(_))));
        assert_eq!(serial(&client).await.unwrap(), json!(2));
    }

    #[tokio::test]
    async fn a_reused_connection_that_broke_is_retried_once_on_a_new_one() {
        let client = Reconnecting::new(FakeConnect::default(), RetryPolicy::OnceAfterReuse);
        serial(&client).await.unwrap();
        client.connector().break_current();
        assert_eq!(serial(&client).await.unwrap(), json!(2));
        assert!(client.notify("serial", Value::Null).await.is_ok());
    }

    #[tokio::test]
    async fn a_fresh_connection_that_fails_is_not_retried() {
        let client = Reconnecting::new(FakeConnect::default(), RetryPolicy::OnceAfterReuse);
        client.connector().refuse.store(true, Ordering::SeqCst);
        assert!(matches!(serial(&client).await, Err(CallError::Transport(why)) if why.contains("refused")));
        assert_eq!(serial(&client).await.unwrap(), json!(1));
    }

    #[tokio::test]
    async fn answered_errors_keep_the_connection_and_disconnect_drops_it() {
        let client = Reconnecting::new(FakeConnect::default(), RetryPolicy::OnceAfterReuse);
        assert!(matches!(client.request("declared", Value::Null).await, Err(CallError::Rpc(_))));
        assert_eq!(serial(&client).await.unwrap(), json!(1));
        client.disconnect().await;
        assert_eq!(serial(&client).await.unwrap(), json!(2));
    }
}
