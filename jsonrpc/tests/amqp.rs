//! JSON-RPC over a real RabbitMQ broker (Debian's rabbitmq-server, a private one per test):
//! calls to a service's shared queue and to one instance, casts, the fanout, events cast to a
//! subscriber's reply queue, what the broker cannot route, and a broker killed and restarted
//! under a server and a client that reconnect by themselves, with nothing acknowledged lost.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{guard, Probe, Publishing, TestHandler, EVENTS};
use serde_json::{json, Value};
use vproto_jsonrpc::{
    transport::{amqp::channels_to, AmqpBroker},
    Client, ClientOptions, ConnectAddr, Dial, EventHub, ListenAddr, Reconnecting, RetryPolicy, RunningServer, Server,
};
use vproto_support::rpc::{
    events::{RawEvents, Subscription},
    CallError, ClientTransport,
};
use vproto_test_support::{missing_peer, rabbitmq::Broker};

fn addr(broker: &Broker, target: &str) -> ListenAddr {
    format!("{}/{target}", broker.url()).parse().expect("a valid amqp address")
}

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

async fn client(broker: &Broker, target: &str) -> Client {
    Client::connect(&ConnectAddr::Listen(addr(broker, target)), options()).await.expect("connect through the broker")
}

async fn serve(broker: &Broker, target: &str, probe: &Probe) -> RunningServer {
    let handler = TestHandler { probe: probe.clone() };
    Server::new(handler).bind(&addr(broker, target)).await.expect("serve on the broker")
}

/// Waits until `done` holds, polling; fails the test after 20 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_casts_fanout_and_events_go_through_the_broker() {
    if let Some(why) = Broker::skip_reason() {
        return missing_peer(&why);
    }
    let broker = tokio::task::spawn_blocking(Broker::start).await.unwrap();
    guard(async {
        let (one, two) = (Probe::default(), Probe::default());
        let _first = serve(&broker, "test.node-1", &one).await;
        let _second = serve(&broker, "test.node-2", &two).await;

        // An instance answers as itself; the shared queue reaches one of the two.
        let node1 = client(&broker, "test.node-1").await;
        assert_eq!(node1.request("test.add", json!({"a": 2, "b": 3})).await.unwrap(), json!(5));
        node1.request("test.count", Value::Null).await.unwrap();
        assert_eq!((one.counted.load(Ordering::SeqCst), two.counted.load(Ordering::SeqCst)), (1, 0));
        let shared = client(&broker, "test").await;
        assert_eq!(shared.request("test.echo", json!([1, "two"])).await.unwrap(), json!([1, "two"]));
        for _ in 0..4 {
            shared.request("test.count", Value::Null).await.unwrap();
        }
        assert_eq!(one.counted.load(Ordering::SeqCst) + two.counted.load(Ordering::SeqCst), 5);

        // Errors are answers; concurrent calls are told apart.
        match node1.request("test.fail", json!({"code": 1234})).await {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, 1234),
            other => panic!("expected the declared error, got {other:?}"),
        }
        let calls = (0..20).map(|n| node1.request("test.add", json!({"a": n, "b": 1000})));
        let answers = futures_util::future::join_all(calls).await;
        for (n, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), json!(n as i64 + 1000));
        }

        // A cast reaches its instance; the fanout reaches every instance, and takes no calls.
        let counted = one.counted.load(Ordering::SeqCst);
        node1.notify("test.count", Value::Null).await.unwrap();
        eventually("the cast", || one.counted.load(Ordering::SeqCst) == counted + 1).await;
        let before = (one.counted.load(Ordering::SeqCst), two.counted.load(Ordering::SeqCst));
        let fanout = client(&broker, "test.*").await;
        fanout.notify("test.count", Value::Null).await.unwrap();
        eventually("the fanout to both instances", || {
            one.counted.load(Ordering::SeqCst) == before.0 + 1 && two.counted.load(Ordering::SeqCst) == before.1 + 1
        })
        .await;
        let refused = fanout.request("test.echo", json!([1])).await.unwrap_err().to_string();
        assert!(refused.contains("fanout") && refused.contains("notifications only"), "{refused}");

        // Nothing consumes this instance's queue: the broker returns the call, which fails at once.
        let nobody = client(&broker, "test.node-9").await;
        let error = nobody.request("test.echo", json!([1])).await.unwrap_err().to_string();
        assert!(error.contains("cannot route") && error.contains("test.node-9"), "{error}");

        // Events: a subscriber's reply queue gets each event as a cast, at its versions. The
        // subscriber gets a reply queue (and channel) of its own, which goes when it goes.
        let hub = EventHub::new(EVENTS.iter().copied());
        let handler = Publishing { inner: TestHandler::default(), sink: hub.sink() };
        let _events = Server::new(handler).with_events(hub).bind(&addr(&broker, "events.node-1")).await.unwrap();
        let broker_addr: AmqpBroker = broker.url().parse().unwrap();
        let channels = channels_to(&broker_addr);
        let subscriber = client(&broker, "events.node-1").await;
        assert_eq!(channels_to(&broker_addr), channels, "a client takes no channel of its own to call");
        let subscription = Subscription {
            events: vec!["test.ping".into()],
            versions: [("Thing".to_string(), "1.0".parse().unwrap())].into_iter().collect(),
        };
        let mut stream: Box<dyn RawEvents> = subscriber.subscribe(subscription).await.unwrap();
        let published = subscriber.request("test.publish", json!({"event": "test.ping", "from": 7, "count": 3})).await;
        assert_eq!(published.unwrap(), json!(3));
        subscriber.request("test.publish", json!({"event": "test.pong", "from": 0, "count": 1})).await.unwrap();
        for n in 7..10 {
            let event = stream.next().await.expect("an event");
            assert_eq!(
                (event.method.as_str(), &event.params["n"], &event.params["thing"]),
                ("test.ping", &json!(n), &json!("1.0"))
            );
        }
        assert_eq!(channels_to(&broker_addr), channels + 1, "the subscriber's own reply queue");
        drop((stream, subscriber));
        eventually("the subscriber's queue to go with it", || channels_to(&broker_addr) == channels).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_survived_and_nothing_acknowledged_is_lost() {
    if let Some(why) = Broker::skip_reason() {
        return missing_peer(&why);
    }
    let mut broker = tokio::task::spawn_blocking(Broker::start).await.unwrap();
    let probe = Probe::default();
    let server = serve(&broker, "restart.node-1", &probe).await;
    let target = ConnectAddr::Listen(addr(&broker, "restart.node-1"));
    let caller = Reconnecting::new(Dial { addr: target.clone(), options: options() }, RetryPolicy::OnceAfterReuse);
    assert_eq!(caller.request("test.add", json!({"a": 1, "b": 1})).await.unwrap(), json!(2));

    // A call in flight when the broker dies fails, saying so; a `Reconnecting` client that
    // retries once (its connection was reused) sends it again at once, which fails while the
    // broker is down, saying that. Their requests expire after a minute: long enough to be
    // delivered again after the restart below.
    let patient = ClientOptions { request_timeout: Duration::from_secs(60), ..options() };
    let plain = Client::connect(&target, patient.clone()).await.unwrap();
    let retrying = Reconnecting::new(Dial { addr: target.clone(), options: patient }, RetryPolicy::OnceAfterReuse);
    assert_eq!(retrying.request("test.add", json!({"a": 1, "b": 2})).await.unwrap(), json!(3));
    let blocked = tokio::spawn(async move { plain.request("test.block", Value::Null).await });
    let retried = tokio::spawn(async move { retrying.request("test.block", Value::Null).await });
    eventually("the blocking calls to start", || probe.blocked.load(Ordering::SeqCst) == 2).await;
    // The broker has the requests on disk once it confirmed them (persistent, durable queue).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    broker = tokio::task::spawn_blocking(move || {
        broker.kill();
        broker
    })
    .await
    .unwrap();
    let error = guard(blocked).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("broker connection") && error.contains("lost"), "{error}");
    let error = guard(retried).await.unwrap().unwrap_err().to_string();
    assert!(error.contains("cannot connect to the broker"), "{error}");

    // Back again: the server reconnects by itself, and the client on its next call.
    broker = tokio::task::spawn_blocking(move || {
        broker.restart();
        broker
    })
    .await
    .unwrap();
    guard(async {
        loop {
            match caller.request("test.add", json!({"a": 2, "b": 2})).await {
                Ok(answer) => break assert_eq!(answer, json!(4)),
                Err(error) => {
                    eprintln!("not yet: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await;

    // At least once: the two requests the server had not acknowledged when the broker died are
    // delivered again, and run again, though their callers were told they failed (their answers
    // go to reply queues that are gone). A call that is not idempotent can run twice.
    guard(eventually("the unacknowledged calls to run again", || probe.blocked.load(Ordering::SeqCst) == 4)).await;
    probe.gate.add_permits(2);

    // A cast the broker acknowledged while the server was away is handled once it is back,
    // even across another broker restart: the queue is durable, the message persistent, and
    // unacknowledged until handled.
    server.shutdown().await;
    let counted = probe.counted.load(Ordering::SeqCst);
    let cast = Client::connect(&target, options()).await.unwrap();
    cast.notify("test.count", Value::Null).await.unwrap();
    // The notify returns once the frame is handed over; the publish's confirm follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(cast);
    broker = tokio::task::spawn_blocking(move || {
        broker.restart();
        broker
    })
    .await
    .unwrap();
    assert_eq!(probe.counted.load(Ordering::SeqCst), counted);
    let _server = serve(&broker, "restart.node-1", &probe).await;
    guard(eventually("the queued cast to be handled", || probe.counted.load(Ordering::SeqCst) == counted + 1)).await;
    drop(broker);
}
