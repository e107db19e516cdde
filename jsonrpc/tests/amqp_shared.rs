//! The bus behaviours of docs/bus.md beyond routing (tests/amqp.rs), each against private
//! Debian rabbitmq-servers: `amqps://` to brokers with a TLS listener, checked against the CA
//! given (two brokers of two CAs in one process, a wrong CA and no CA refused, to a client
//! and to a server at start); a server
//! started before its broker, served once the broker is up; and the clients and servers of a
//! process sharing one broker connection, before and after a broker restart.

mod certs;
mod common;

use std::{sync::Arc, time::Duration};

use certs::TestPki;
use common::{guard, Probe, TestHandler};
use serde_json::{json, Value};
use vproto_jsonrpc::{
    transport::{
        amqp::{channels_to, connections_to},
        AmqpAddr, AmqpBroker,
    },
    Client, ClientOptions, ClientTls, ConnectAddr, Dial, ListenAddr, Reconnecting, RetryPolicy, RunningServer, Server,
};
use vproto_support::rpc::ClientTransport;
use vproto_test_support::{
    missing_peer,
    rabbitmq::{Broker, BrokerTls},
};

fn options(tls: Option<&ClientTls>) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        tls: tls.cloned(),
        ..ClientOptions::default()
    }
}

/// `target` on the broker at `url`, over `tls` (the broker's own, as a server takes it).
fn amqp(url: &str, target: &str, tls: Option<&ClientTls>) -> AmqpAddr {
    let mut addr: AmqpAddr = format!("{url}/{target}").parse().expect("a valid amqp address");
    addr.broker = Arc::new((*addr.broker).clone().with_tls(tls.cloned()));
    addr
}

async fn serve(addr: AmqpAddr, probe: &Probe) -> RunningServer {
    let handler = TestHandler { probe: probe.clone() };
    Server::new(handler).bind(&ListenAddr::Amqp(addr)).await.expect("serve on the broker")
}

/// A client of `target` on the broker at `url`, the CA given in its options.
async fn client(url: &str, target: &str, tls: Option<&ClientTls>) -> Result<Client, String> {
    let addr: ConnectAddr = format!("{url}/{target}").parse().expect("a valid amqp address");
    Client::connect(&addr, options(tls)).await.map_err(|e| e.to_string())
}

/// `broker` started (again), off the runtime's threads.
async fn started(mut broker: Broker) -> Broker {
    tokio::task::spawn_blocking(move || {
        broker.restart();
        broker
    })
    .await
    .unwrap()
}

fn start_tls_broker(pki: &TestPki) -> Broker {
    Broker::start_with_tls(BrokerTls { cert_pem: pki.server.cert_pem.clone(), key_pem: pki.server.key_pem.clone() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_is_checked_against_the_ca_given_and_two_cas_work_in_one_process() {
    if let Some(why) = Broker::skip_reason() {
        return missing_peer(&why);
    }
    let (pki_a, pki_b) = (Arc::new(TestPki::new()), Arc::new(TestPki::new()));
    let starting =
        [pki_a.clone(), pki_b.clone()].map(|pki| tokio::task::spawn_blocking(move || start_tls_broker(&pki)));
    let [broker_a, broker_b] = starting;
    let (broker_a, broker_b) = (broker_a.await.unwrap(), broker_b.await.unwrap());
    let (url_a, url_b) = (broker_a.tls_url().unwrap(), broker_b.tls_url().unwrap());
    let ca_a = ClientTls::from_pem(pki_a.ca_pem.as_bytes(), None).unwrap();
    let ca_b = ClientTls::from_pem(pki_b.ca_pem.as_bytes(), None).unwrap();
    guard(async {
        // A server and a client on each broker, each trusting its own broker's CA only.
        let (probe_a, probe_b) = (Probe::default(), Probe::default());
        let _server_a = serve(amqp(&url_a, "test.node-a", Some(&ca_a)), &probe_a).await;
        let _server_b = serve(amqp(&url_b, "test.node-b", Some(&ca_b)), &probe_b).await;
        let client_a = client(&url_a, "test.node-a", Some(&ca_a)).await.unwrap();
        let client_b = client(&url_b, "test.node-b", Some(&ca_b)).await.unwrap();
        assert_eq!(client_a.request("test.add", json!({"a": 1, "b": 2})).await.unwrap(), json!(3));
        assert_eq!(client_b.request("test.add", json!({"a": 3, "b": 4})).await.unwrap(), json!(7));
        let counted = |probe: &Probe| probe.counted.load(std::sync::atomic::Ordering::SeqCst);
        client_a.request("test.count", Value::Null).await.unwrap();
        assert_eq!((counted(&probe_a), counted(&probe_b)), (1, 0));
        // One TLS connection to each broker (the server's and the client's shared).
        let broker = |url: &str, tls: &ClientTls| url.parse::<AmqpBroker>().unwrap().with_tls(Some(tls.clone()));
        assert_eq!(connections_to(&broker(&url_a, &ca_a)), 1);
        assert_eq!(connections_to(&broker(&url_b, &ca_b)), 1);

        // The other broker's CA does not vouch for this broker's certificate: refused, saying why.
        let error = client(&url_a, "test.node-a", Some(&ca_b)).await.err().expect("a wrong CA is refused");
        eprintln!("refused: {error}");
        assert!(error.contains(&format!("cannot connect to the broker {url_a}")), "{error}");
        assert!(error.to_lowercase().contains("certificate"), "{error}");
        // A server given the wrong CA does not start (trying again would fail the same way).
        let wrong_ca = ListenAddr::Amqp(amqp(&url_a, "test.y", Some(&ca_b)));
        let refused = Server::new(TestHandler::default()).bind(&wrong_ca).await;
        let error = refused.expect_err("a server with the wrong CA is refused").to_string();
        assert!(error.to_lowercase().contains("certificate") && error.contains("test.y"), "{error}");
        // No CA at all: refused before connecting.
        let error = client(&url_b, "test.node-b", None).await.err().expect("no CA is refused");
        assert!(error.contains("no CA was given"), "{error}");
        let refused = Server::new(TestHandler::default()).bind(&ListenAddr::Amqp(amqp(&url_b, "test.x", None))).await;
        let error = refused.expect_err("a server without a CA is refused").to_string();
        assert!(error.contains("no CA"), "{error}");

        // The refusals left the good connections alone.
        assert_eq!(client_a.request("test.add", json!({"a": 5, "b": 5})).await.unwrap(), json!(10));
        assert_eq!(client_b.request("test.add", json!({"a": 6, "b": 6})).await.unwrap(), json!(12));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_before_its_broker_serves_and_a_process_shares_one_connection() {
    if let Some(why) = Broker::skip_reason() {
        return missing_peer(&why);
    }
    let mut broker = Broker::unstarted();
    let url = broker.url();
    let probe = Probe::default();
    // Bound while nothing listens on the broker's port: not an error, it connects later.
    let _server = guard(serve(amqp(&url, "test.node-1", None), &probe)).await;
    assert!(client(&url, "test.node-1", None).await.is_err(), "no broker yet");
    broker = started(broker).await;
    guard(async {
        // Served once the broker is up (the server retries with backoff, at most 5 s apart).
        let answered = loop {
            match client(&url, "test.node-1", None).await {
                Ok(client) => match client.request("test.add", json!({"a": 20, "b": 22})).await {
                    Ok(answer) => break answer,
                    Err(error) => eprintln!("not yet: {error}"),
                },
                Err(error) => eprintln!("not yet: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(answered, json!(42));

        // Twenty clients and the server: one connection; the server a channel, the clients one
        // channel and one reply queue between them.
        let target: ConnectAddr = format!("{url}/test.node-1").parse().unwrap();
        let callers: Vec<Reconnecting<Dial>> = (0..20)
            .map(|_| {
                let dial = Dial { addr: target.clone(), options: options(None) };
                Reconnecting::new(dial, RetryPolicy::OnceAfterReuse)
            })
            .collect();
        let all_add = |n: i64| {
            let calls = callers.iter().enumerate().map(move |(k, caller)| async move {
                caller.request("test.add", json!({"a": k as i64, "b": n})).await
            });
            futures_util::future::join_all(calls)
        };
        for (k, answer) in all_add(100).await.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), json!(k as i64 + 100));
        }
        let broker_addr: AmqpBroker = url.parse().unwrap();
        assert_eq!(connections_to(&broker_addr), 1);
        assert_eq!(channels_to(&broker_addr), 2, "the server's channel and the clients' shared one");
    })
    .await;

    // The broker restarts: the server and the clients reconnect, and share one connection again.
    broker = started(broker).await;
    guard(async {
        let target: ConnectAddr = format!("{url}/test.node-1").parse().unwrap();
        let callers: Vec<Reconnecting<Dial>> = (0..10)
            .map(|_| Reconnecting::new(Dial { addr: target.clone(), options: options(None) }, RetryPolicy::Never))
            .collect();
        loop {
            let calls = callers.iter().map(|caller| caller.request("test.add", json!({"a": 1, "b": 1})));
            let answers = futures_util::future::join_all(calls).await;
            if answers.iter().all(Result::is_ok) {
                break;
            }
            eprintln!("not yet: {:?}", answers.into_iter().find_map(Result::err));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(connections_to(&url.parse::<AmqpBroker>().unwrap()), 1);
    })
    .await;
    drop(broker);
}
