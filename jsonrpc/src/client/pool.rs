//! [`Pool`]: one [`Reconnecting`] client per address, for a component that calls many peers.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use super::{ClientOptions, Dial, Reconnecting, RetryPolicy};
use crate::transport::ConnectAddr;

/// One [`Reconnecting`] client per address, made on first use and kept: every caller that
/// asks for an address shares its connection. All connect with the same [`ClientOptions`]
/// and [`RetryPolicy`].
///
/// An address costs an entry for as long as the pool lives, and a connection only while it
/// works: a broken one is dropped by its [`Reconnecting`] client and reopened on the next
/// request. Event subscriptions go over the shared connection and end with it, as
/// [`Reconnecting`]'s do.
pub struct Pool {
    options: ClientOptions,
    retry: RetryPolicy,
    clients: Mutex<HashMap<ConnectAddr, Reconnecting<Dial>>>,
}

impl Pool {
    /// An empty pool whose connections use `options` and `retry`.
    pub fn new(options: ClientOptions, retry: RetryPolicy) -> Self {
        Pool { options, retry, clients: Mutex::new(HashMap::new()) }
    }

    /// The options every connection is opened with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The client for `addr` (connected on its first request), shared with every other
    /// caller of the same address.
    pub fn client(&self, addr: &ConnectAddr) -> Reconnecting<Dial> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(addr.clone())
            .or_insert_with(|| {
                Reconnecting::new(Dial { addr: addr.clone(), options: self.options.clone() }, self.retry)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use vproto_support::rpc::{BoxFuture, ClientTransport, Handler, Params, RpcError};

    use super::*;
    use crate::transport::{ListenAddr, Server};

    struct Echo;

    impl Handler for Echo {
        fn handle<'a>(&'a self, _method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin(async move {
                match params {
                    Params::ByPosition(items) => Ok(Value::Array(items)),
                    Params::ByName(map) => Ok(Value::Object(map)),
                    Params::None => Ok(Value::Null),
                }
            })
        }

        fn methods(&self) -> Vec<&'static str> {
            vec!["test.echo"]
        }
    }

    #[tokio::test]
    async fn one_connection_per_address_shared_and_reopened_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let listen = ListenAddr::Unix(dir.path().join("echo.sock"));
        let addr = ConnectAddr::Listen(listen.clone());
        let pool = Pool::new(ClientOptions::default(), RetryPolicy::OnceAfterReuse);

        let server = Server::new(Echo).bind(&listen).await.unwrap();
        let (first, second) = (pool.client(&addr), pool.client(&addr));
        assert_eq!(first.request("test.echo", json!([1])).await.unwrap(), json!([1]));
        assert_eq!(second.request("test.echo", json!([2])).await.unwrap(), json!([2]));
        assert_eq!(pool.clients.lock().unwrap().len(), 1);

        // The peer restarts: the pooled connection is stale, and the next request goes over a
        // new one without the caller seeing the break.
        server.shutdown().await;
        let _server = Server::new(Echo).bind(&listen).await.unwrap();
        assert_eq!(first.request("test.echo", json!([3])).await.unwrap(), json!([3]));
    }
}
