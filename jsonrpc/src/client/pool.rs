//! [`Pool`]: one [`Reconnecting`] client per address, for a component that calls many peers,
//! keeping only the most recently used ones.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, PoisonError},
};

use super::{ClientOptions, Dial, Reconnecting, RetryPolicy};
use crate::transport::ConnectAddr;

/// One [`Reconnecting`] client per address, made on first use: every caller that asks for an
/// address while it is in the pool shares its connection. All connect with the same
/// [`ClientOptions`] and [`RetryPolicy`].
///
/// The pool keeps the clients of the `max_idle` most recently asked-for addresses (default
/// [`Pool::DEFAULT_MAX_IDLE`]); asking for one more drops the least recently asked-for client from
/// the pool. Its connection closes once its callers are done with it (calls in flight are
/// answered on it); the next request to that address makes a new client and dials again.
/// A component calling thousands of peers thus holds connections to the busiest few, not
/// one per peer.
///
/// A broken connection is dropped by its [`Reconnecting`] client and reopened on the next
/// request. Event subscriptions go over the shared connection and end with it, as
/// [`Reconnecting`]'s do: a stream keeps its connection open after the pool has let go of it.
pub struct Pool {
    options: ClientOptions,
    retry: RetryPolicy,
    max_idle: usize,
    clients: Mutex<Clients>,
}

/// The pooled clients, each with the tick of its last use, and the addresses by that tick
/// (oldest first).
#[derive(Default)]
struct Clients {
    by_addr: HashMap<ConnectAddr, (Reconnecting<Dial>, u64)>,
    by_use: BTreeMap<u64, ConnectAddr>,
    tick: u64,
}

impl Pool {
    /// How many clients a pool keeps unless told otherwise ([`Pool::with_max_idle`]).
    pub const DEFAULT_MAX_IDLE: usize = 64;

    /// An empty pool whose connections use `options` and `retry`, keeping
    /// [`Pool::DEFAULT_MAX_IDLE`] clients.
    pub fn new(options: ClientOptions, retry: RetryPolicy) -> Self {
        Pool { options, retry, max_idle: Self::DEFAULT_MAX_IDLE, clients: Mutex::new(Clients::default()) }
    }

    /// The same pool keeping at most `max_idle` clients (at least 1).
    pub fn with_max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle.max(1);
        self
    }

    /// The options every connection is opened with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// How many clients the pool keeps at most.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// How many clients the pool holds now.
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).by_addr.len()
    }

    /// Whether the pool holds no client.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client for `addr` (connected on its first request), shared with every other
    /// caller of the same address while the pool keeps it. Drops the least recently used
    /// client when the pool would hold more than its bound.
    pub fn client(&self, addr: &ConnectAddr) -> Reconnecting<Dial> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let Clients { by_addr, by_use, tick } = &mut *clients;
        *tick += 1;
        let now = *tick;
        let client = match by_addr.get_mut(addr) {
            Some((client, used)) => {
                by_use.remove(used);
                *used = now;
                client.clone()
            }
            None => {
                let client = Reconnecting::new(Dial { addr: addr.clone(), options: self.options.clone() }, self.retry);
                by_addr.insert(addr.clone(), (client.clone(), now));
                client
            }
        };
        by_use.insert(now, addr.clone());
        while by_addr.len() > self.max_idle {
            let Some((_, oldest)) = by_use.pop_first() else { break };
            // Dropping the pool's clone closes the connection once no caller holds another.
            by_addr.remove(&oldest);
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use vproto_support::rpc::{BoxFuture, ClientTransport, Handler, Params, RpcError};

    use super::*;
    use crate::{
        transport::{ListenAddr, RunningServer, Server},
        Client, Limits,
    };

    struct Echo;

    impl Handler for Echo {
        fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            Box::pin(async move {
                if method == "test.slow" {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                match params {
                    Params::ByPosition(items) => Ok(Value::Array(items)),
                    Params::ByName(map) => Ok(Value::Object(map)),
                    Params::None => Ok(Value::Null),
                }
            })
        }

        fn methods(&self) -> Vec<&'static str> {
            vec!["test.echo", "test.slow"]
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
        assert_eq!(pool.len(), 1);

        // The peer restarts: the pooled connection is stale, and the next request goes over a
        // new one without the caller seeing the break.
        server.shutdown().await;
        let _server = Server::new(Echo).bind(&listen).await.unwrap();
        assert_eq!(first.request("test.echo", json!([3])).await.unwrap(), json!([3]));
    }

    /// `count` servers, each on its own socket in `dir` and serving one connection at a time,
    /// so that whether a pooled connection to one is still open shows in whether another
    /// client is served there.
    async fn single_connection_servers(dir: &std::path::Path, count: usize) -> (Vec<ConnectAddr>, Vec<RunningServer>) {
        let (mut addrs, mut servers) = (Vec::new(), Vec::new());
        for index in 0..count {
            let listen = ListenAddr::Unix(dir.join(format!("echo-{index}.sock")));
            let limits = Limits { max_connections: 1, ..Limits::default() };
            let server = Server::new(Echo).with_limits(limits).bind(&listen).await.unwrap();
            addrs.push(ConnectAddr::Listen(listen));
            servers.push(server);
        }
        (addrs, servers)
    }

    /// Whether a new connection to `addr` is served (the server's one slot is free).
    async fn served(addr: &ConnectAddr) -> bool {
        match Client::connect(addr, ClientOptions::default()).await {
            Ok(client) => client.request("test.echo", json!([0])).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Waits up to 5 s for `addr` to be served by a new connection (a closed connection is
    /// noticed by its server a moment after the client drops it).
    async fn becomes_served(addr: &ConnectAddr) -> bool {
        for _ in 0..100 {
            if served(addr).await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn keeps_the_most_recently_used_connections_and_dials_again_for_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (addrs, _servers) = single_connection_servers(dir.path(), 5).await;
        let pool = Pool::new(ClientOptions::default(), RetryPolicy::OnceAfterReuse).with_max_idle(2);
        assert_eq!(pool.max_idle(), 2);

        for (index, addr) in addrs.iter().enumerate() {
            assert_eq!(pool.client(addr).request("test.echo", json!([index])).await.unwrap(), json!([index]));
        }
        assert_eq!(pool.len(), 2);
        // The two most recently used keep their connections (their servers' one slot is taken);
        // the three others were closed.
        assert!(!served(&addrs[3]).await && !served(&addrs[4]).await);
        for addr in &addrs[1..3] {
            assert!(becomes_served(addr).await, "{addr} still has the pool's connection");
        }

        // A call to a dropped address dials again and is answered (which also shows the old
        // connection closed: its server serves one at a time); the least recently used
        // (addrs[3]) makes way for it.
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(value) = pool.client(&addrs[0]).request("test.echo", json!(["again"])).await {
                answer = Some(value);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(answer, Some(json!(["again"])));
        assert_eq!(pool.len(), 2);
        assert!(becomes_served(&addrs[3]).await);
        assert!(!served(&addrs[0]).await && !served(&addrs[4]).await);
    }

    #[tokio::test]
    async fn a_call_in_flight_is_answered_on_a_connection_the_pool_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let (addrs, _servers) = single_connection_servers(dir.path(), 3).await;
        let pool = Pool::new(ClientOptions::default(), RetryPolicy::Never).with_max_idle(1);

        let slow = pool.client(&addrs[0]);
        let call = tokio::spawn(async move { slow.request("test.slow", json!([1])).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Two other addresses push addrs[0] out of the pool while its call runs.
        for addr in &addrs[1..] {
            pool.client(addr).request("test.echo", json!([2])).await.unwrap();
        }
        assert_eq!(pool.len(), 1);
        assert_eq!(call.await.unwrap().unwrap(), json!([1]));
        // Answered, the connection closes: nobody holds it any more.
        assert!(becomes_served(&addrs[0]).await);
        assert!(becomes_served(&addrs[1]).await);
        assert!(!served(&addrs[2]).await);
    }
}
