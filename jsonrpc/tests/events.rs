//! Events on the wire (docs/events.md): `rpc.subscribe`/`rpc.unsubscribe` on the line transports
//! (unix, tcp with a token, an in-process stream as stdio serves it; a real stdio child is in
//! `exec.rs`), Server-Sent Events over HTTP, the queue bound and the lost subscription, and the
//! client's streams. Events are published straight into the server's hub from the test, so
//! every "nothing arrived" is checked by what arrives next: a call's answer, or a later event.

mod common;

use std::sync::{atomic::Ordering, Arc};

use common::*;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpStream, UnixStream},
};
use vproto_jsonrpc::{
    Client, ClientOptions, ConnectAddr, Dial, EventHub, Limits, ListenAddr, Reconnecting, RetryPolicy, Server,
};
use vproto_support::rpc::{
    events::{EventSink, RawEvent, RawEvents, Subscription, SUBSCRIPTION_LOST},
    CallError, ClientTransport,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A raw line peer over any byte stream, reading exactly what the server writes.
struct Peer {
    reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    next_id: u64,
}

impl Peer {
    fn over(read: impl AsyncRead + Unpin + Send + 'static, write: impl AsyncWrite + Unpin + Send + 'static) -> Self {
        Peer { reader: BufReader::new(Box::new(read)), writer: Box::new(write), next_id: 1 }
    }

    async fn connect(addr: &ListenAddr) -> Self {
        match addr {
            ListenAddr::Unix(path) => {
                let (read, write) = UnixStream::connect(path).await.expect("connect").into_split();
                Peer::over(read, write)
            }
            ListenAddr::Tcp { host, port } => {
                let (read, write) = TcpStream::connect((host.as_str(), *port)).await.expect("connect").into_split();
                Peer::over(read, write)
            }
            other => panic!("no line peer for {other}"),
        }
    }

    async fn send(&mut self, text: &str) {
        self.writer.write_all(format!("{text}\n").as_bytes()).await.expect("send");
        self.writer.flush().await.expect("flush");
    }

    /// The next line's text, or `None` at the end of the stream.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match guard(self.reader.read_line(&mut line)).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
        }
    }

    async fn read(&mut self) -> Value {
        let line = self.line().await.expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a request and returns the next line, which must be its answer: whatever the server
    /// might have sent before it (an event) fails the test.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string()).await;
        let answer = self.read().await;
        assert_eq!(answer["id"], json!(id), "the next line answers {method}: {answer}");
        answer
    }
}

fn ping(n: u64) -> Arc<TestEvent> {
    Arc::new(TestEvent::new("test.ping", n))
}

fn pong(n: u64) -> Arc<TestEvent> {
    Arc::new(TestEvent::new("test.pong", n))
}

fn subscription(events: &[&str]) -> Subscription {
    Subscription { events: events.iter().map(|name| name.to_string()).collect(), ..Subscription::default() }
}

fn at_thing(events: &[&str], version: &str) -> Subscription {
    let mut subscription = subscription(events);
    subscription.versions.insert("Thing".into(), version.parse().unwrap());
    subscription
}

async fn next(events: &mut Box<dyn RawEvents>) -> RawEvent {
    guard(events.next()).await.expect("an event")
}

/// Publishes pings of `pad` bytes in step with `reader` (each one read before the next goes)
/// until the hub has cut a subscriber off; returns how many it published. Then, checks that
/// `reader` still gets ten more.
async fn publish_until_lost(hub: &EventHub, reader: &mut Box<dyn RawEvents>, pad: usize) -> u64 {
    let mut published = 0;
    while hub.stats().lost == 0 {
        assert!(published < 100_000, "the subscriber that does not read was never cut off");
        hub.publish(Arc::new(TestEvent::padded("test.ping", published, pad)));
        assert_eq!(next(reader).await.params["n"], json!(published));
        published += 1;
    }
    for n in published..published + 10 {
        hub.publish(ping(n));
        assert_eq!(next(reader).await.params["n"], json!(n), "the reader goes on");
    }
    published
}

/// A server of kind `kind` on [`test_hub`]'s events, and the hub.
async fn serve_events(kind: &str, limits: Limits, token: Option<&'static str>) -> (EventHub, TestServer) {
    let hub = test_hub();
    let setup = Setup { events: Some(hub.clone()), limits: Some(limits), token, ..Setup::default() };
    (hub, start_with(kind, setup).await)
}

async fn client(server: &TestServer, token: Option<&str>) -> Client {
    guard(Client::connect(&ConnectAddr::from(server.addr.clone()), client_options(token))).await.expect("connects")
}

/// A client and its stream.
type Subscribed = (Client, Box<dyn RawEvents>);

/// A client of `server` subscribed to `subscription`.
async fn subscribed(server: &TestServer, token: Option<&str>, subscription: Subscription) -> Subscribed {
    let client = client(server, token).await;
    let events = guard(client.subscribe(subscription)).await.expect("subscribes");
    (client, events)
}

/// A line server on an in-process stream, served as `stdio` is (`lines::serve` over a pair of
/// byte streams), and a raw peer on the other end.
fn in_process(hub: &EventHub) -> Peer {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(theirs);
    tokio::spawn(Server::new(TestHandler::default()).with_events(hub.clone()).serve_io(read, write));
    let (read, write) = tokio::io::split(ours);
    Peer::over(read, write)
}

// ---------------------------------------------------------------------------------------------
// Line transports

/// The exchange every line transport must get right, byte for byte.
async fn only_what_was_named_between_subscribe_and_unsubscribe(peer: &mut Peer, hub: &EventHub) {
    hub.publish(ping(0));
    let answer = peer.call("rpc.subscribe", json!({"events": ["test.ping"]})).await;
    assert_eq!(answer["result"], json!({"subscribed": ["test.ping"]}), "{answer}");
    hub.publish(pong(1));
    hub.publish(ping(2));
    // Neither the event before the subscription nor the one not named: the next line is ping 2.
    let line = peer.line().await.expect("an event");
    assert_eq!(line, r#"{"jsonrpc":"2.0","method":"test.ping","params":{"n":2,"thing":"newest"}}"#);

    // A second subscription on the connection adds its events and sets the versions of all.
    let answer = peer.call("rpc.subscribe", json!({"events": ["test.pong"], "versions": {"Thing": "1.1"}})).await;
    assert_eq!(answer["result"], json!({"subscribed": ["test.ping", "test.pong"]}), "{answer}");
    hub.publish(ping(3));
    hub.publish(pong(4));
    assert_eq!(peer.read().await["params"], json!({"n": 3, "thing": "1.1"}));
    assert_eq!(peer.read().await, json!({"jsonrpc": "2.0", "method": "test.pong", "params": {"n": 4, "thing": "1.1"}}));

    let answer = peer.call("rpc.unsubscribe", json!({"events": ["test.ping"]})).await;
    assert_eq!(answer["result"], json!({"unsubscribed": ["test.ping"]}), "{answer}");
    hub.publish(ping(5));
    hub.publish(pong(6));
    assert_eq!(peer.read().await["params"]["n"], json!(6), "test.pong still comes, test.ping no more");

    let answer = peer.call("rpc.unsubscribe", json!({})).await;
    assert_eq!(answer["result"], json!({"unsubscribed": ["test.pong"]}), "{answer}");
    hub.publish(ping(7));
    hub.publish(pong(8));
    // Nothing after unsubscribing: the next line is the answer to this call.
    assert_eq!(peer.call("test.add", json!([1, 2])).await["result"], json!(3));
    assert_eq!(hub.stats().subscribers, 0);
}

#[tokio::test]
async fn unix_subscribers_receive_only_what_they_named_while_subscribed() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let mut peer = Peer::connect(&server.addr).await;
        only_what_was_named_between_subscribe_and_unsubscribe(&mut peer, &hub).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn tcp_subscribers_authenticate_first() {
    guard(async {
        let (hub, server) = serve_events("tcp", Limits::default(), Some("s3cret")).await;

        let mut early = Peer::connect(&server.addr).await;
        let refused = early.call("rpc.subscribe", json!({})).await;
        assert_eq!(code(&refused), -32001, "no subscription before rpc.auth: {refused}");
        assert_eq!(early.line().await, None, "and the connection is closed");
        assert_eq!(hub.stats().subscribers, 0);

        let mut peer = Peer::connect(&server.addr).await;
        assert_eq!(peer.call("rpc.auth", json!({"token": "s3cret"})).await["result"], json!(true));
        only_what_was_named_between_subscribe_and_unsubscribe(&mut peer, &hub).await;

        let client = client(&server, Some("s3cret")).await;
        let mut events = guard(client.subscribe(subscription(&["test.pong"]))).await.expect("subscribes");
        hub.publish(pong(1));
        assert_eq!(
            next(&mut events).await,
            RawEvent { method: "test.pong".into(), params: json!({"n": 1, "thing": "newest"}) }
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_stream_served_as_stdio_carries_events_too() {
    guard(async {
        let hub = test_hub();
        let mut peer = in_process(&hub);
        only_what_was_named_between_subscribe_and_unsubscribe(&mut peer, &hub).await;
    })
    .await;
}

#[tokio::test]
async fn unknown_events_and_bad_params_are_refused_naming_them() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let mut peer = Peer::connect(&server.addr).await;
        let answer = peer.call("rpc.subscribe", json!({"events": ["test.ping", "test.nope", "other.x"]})).await;
        assert_eq!(code(&answer), -32602, "{answer}");
        let violations = answer["error"]["data"].as_array().expect("violations").clone();
        let pointers: Vec<&str> = violations.iter().map(|v| v["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/events/1", "/events/2"], "{answer}");
        let message = violations[0]["message"].as_str().unwrap();
        assert!(message.contains("test.nope") && message.contains("test.ping, test.pong"), "{message}");

        let answer = peer.call("rpc.subscribe", json!({"events": "test.ping", "versions": {"Thing": "one"}})).await;
        let pointers: Vec<&str> =
            answer["error"]["data"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/events", "/versions/Thing"], "{answer}");
        let answer = peer.call("rpc.unsubscribe", json!({"events": ["test.nope"]})).await;
        assert_eq!(code(&answer), -32602, "{answer}");

        // Refused means not subscribed: nothing comes before the next answer.
        hub.publish(ping(1));
        assert_eq!(peer.call("test.echo", json!(["after"])).await["result"], json!(["after"]));

        // A batch is the handler's, which serves no rpc.subscribe.
        peer.send(r#"[{"jsonrpc":"2.0","method":"rpc.subscribe","params":{},"id":"b"}]"#).await;
        assert_eq!(code(&peer.read().await[0]), -32601);

        let client = client(&server, None).await;
        match guard(client.subscribe(subscription(&["test.nope"]))).await {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32602, "{error}"),
            Err(other) => panic!("expected invalid params, got {other}"),
            Ok(_) => panic!("expected invalid params, got a stream"),
        }
        server.shutdown().await;

        // A server without events has no rpc.subscribe.
        let plain = start("unix").await;
        let client = Client::connect(&ConnectAddr::from(plain.addr.clone()), ClientOptions::default()).await.unwrap();
        match guard(client.subscribe(Subscription::default())).await {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32601, "{error}"),
            _ => panic!("expected method not found"),
        }
        plain.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn payloads_are_written_once_per_manifest_at_each_subscribers_versions() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let wanted = [
            (subscription(&["test.ping"]), "newest"),
            (Subscription::default(), "newest"),
            (at_thing(&["test.ping"], "1.1"), "1.1"),
            (at_thing(&[], "1.1"), "1.1"),
            (at_thing(&["test.ping"], "1.0"), "1.0"),
        ];
        let mut subscribers = Vec::new();
        for (subscription, _) in &wanted {
            subscribers.push(subscribed(&server, None, subscription.clone()).await);
        }
        // One subscriber at a version its events cannot be written at: it is skipped (and
        // the failure logged), the others are not.
        let mut broken = Peer::connect(&server.addr).await;
        broken.call("rpc.subscribe", json!({"versions": {"Thing": "0.0"}})).await;

        let event = TestEvent::new("test.ping", 7);
        let written = event.written.clone();
        hub.publish(Arc::new(event));
        for ((_, thing), (_, stream)) in wanted.iter().zip(&mut subscribers) {
            assert_eq!(next(stream).await.params, json!({"n": 7, "thing": thing}));
        }
        assert_eq!(written.load(Ordering::SeqCst), 4, "one to_params per distinct manifest: none, 1.1, 1.0, 0.0");
        assert_eq!(broken.call("test.echo", json!([1])).await["result"], json!([1]), "nothing for it");
        assert_eq!(hub.stats().subscribers, 6);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_cut_off_while_others_go_on() {
    guard(async {
        let limits = Limits { max_queued_events: 8, ..Limits::default() };
        let (hub, server) = serve_events("unix", limits, None).await;
        let mut slow = Peer::connect(&server.addr).await;
        slow.call("rpc.subscribe", json!({"events": ["test.ping"]})).await;
        let fast = client(&server, None).await;
        let mut events = guard(fast.subscribe(subscription(&["test.ping"]))).await.expect("subscribes");
        let caller = client(&server, None).await;

        // Until the one that does not read has filled its socket, its connection's buffer and
        // its queue.
        let published = publish_until_lost(&hub, &mut events, 1000).await;
        assert_eq!(hub.stats().subscribers, 1, "it left the hub, its queue with it");
        assert_eq!(guard(caller.request("test.add", json!([2, 3]))).await.unwrap(), json!(5), "calls are answered");

        // It reads at last: what it was sent, in order, then the loss, then nothing more.
        let mut received = 0;
        let lost = loop {
            let line = slow.read().await;
            if line["method"] == "test.ping" {
                assert_eq!(line["params"]["n"], json!(received));
                received += 1;
                continue;
            }
            break line;
        };
        assert_eq!(lost["method"], json!(SUBSCRIPTION_LOST), "{lost}");
        let dropped = lost["params"]["dropped"].as_u64().expect("dropped");
        assert!(dropped >= 1 && lost["params"]["reason"].is_string(), "{lost}");
        assert_eq!(received + dropped, published, "every event is either received or counted dropped");
        assert_eq!(slow.call("test.echo", json!(["still here"])).await["result"], json!(["still here"]));

        // It may subscribe again.
        slow.call("rpc.subscribe", json!({"events": ["test.ping"]})).await;
        hub.publish(ping(1_000_000));
        assert_eq!(slow.read().await["params"]["n"], json!(1_000_000));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn many_subscribers_each_receive_every_event_in_order() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let mut subscribers = Vec::new();
        for _ in 0..100 {
            subscribers.push(subscribed(&server, None, Subscription::default()).await);
        }
        assert_eq!(hub.stats().subscribers, 100);
        let written: Vec<_> = (0..50)
            .map(|n| {
                let event = TestEvent::new(if n % 2 == 0 { "test.ping" } else { "test.pong" }, n);
                let written = event.written.clone();
                hub.publish(Arc::new(event));
                written
            })
            .collect();
        for (_, stream) in &mut subscribers {
            for n in 0..50 {
                assert_eq!(next(stream).await.params["n"], json!(n));
            }
        }
        assert!(written.iter().all(|count| count.load(Ordering::SeqCst) == 1), "written once for 100 subscribers");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn events_and_answers_share_the_connection_line_by_line() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let client = Arc::new(client(&server, None).await);
        let mut events = guard(client.subscribe(Subscription::default())).await.expect("subscribes");
        let big = "y".repeat(20_000);
        let callers: Vec<_> = (0..4)
            .map(|caller| {
                let (client, big) = (client.clone(), big.clone());
                tokio::spawn(async move {
                    for n in 0..50 {
                        let sent = json!([caller, n, big]);
                        assert_eq!(client.request("test.echo", sent.clone()).await.unwrap(), sent);
                    }
                })
            })
            .collect();
        for n in 0..300 {
            hub.publish(Arc::new(TestEvent::padded("test.ping", n, 20_000)));
            tokio::task::yield_now().await;
        }
        for n in 0..300 {
            assert_eq!(next(&mut events).await.params["n"], json!(n));
        }
        for caller in callers {
            guard(caller).await.expect("every answer came whole");
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_a_stream_unsubscribes_what_no_other_stream_wants() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let client = client(&server, None).await;
        let pings = guard(client.subscribe(subscription(&["test.ping"]))).await.unwrap();
        let mut both = guard(client.subscribe(subscription(&["test.ping", "test.pong"]))).await.unwrap();
        let mut pongs = guard(client.subscribe(subscription(&["test.pong"]))).await.unwrap();
        drop(pings);
        hub.publish(ping(1));
        hub.publish(pong(2));
        assert_eq!(next(&mut both).await.params["n"], json!(1), "test.ping is still wanted");
        assert_eq!(next(&mut both).await.params["n"], json!(2));
        assert_eq!(next(&mut pongs).await.params["n"], json!(2));
        drop(both);
        drop(pongs);
        // The unsubscription went before this request on the same connection.
        guard(client.request("test.echo", json!([]))).await.unwrap();
        assert_eq!(hub.stats().subscribers, 0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_stream_loses_it_not_its_calls() {
    guard(async {
        let (hub, server) = serve_events("unix", Limits::default(), None).await;
        let options = ClientOptions { event_queue: 4, ..ClientOptions::default() };
        let client = Client::connect(&ConnectAddr::from(server.addr.clone()), options).await.unwrap();
        let mut events = guard(client.subscribe(Subscription::default())).await.unwrap();
        for n in 0..10 {
            hub.publish(ping(n));
        }
        // The connection's reader never waits for the stream: calls are answered meanwhile.
        assert_eq!(guard(client.request("test.add", json!([1, 1]))).await.unwrap(), json!(2));
        for n in 0..4 {
            assert_eq!(next(&mut events).await.params["n"], json!(n));
        }
        let lost = next(&mut events).await;
        assert_eq!(lost.method, SUBSCRIPTION_LOST);
        assert_eq!(guard(events.next()).await, None);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn server_shutdown_ends_every_stream() {
    guard(async {
        let hub = test_hub();
        let on = |kind, token| start_with(kind, Setup { events: Some(hub.clone()), token, ..Setup::default() });
        let (unix, tcp, http) = (on("unix", None).await, on("tcp", Some("s3cret")).await, on("http", None).await);
        let mut streams = Vec::new();
        let mut clients = Vec::new();
        for (server, token) in [(&unix, None), (&tcp, Some("s3cret")), (&http, None)] {
            let (client, events) = subscribed(server, token, Subscription::default()).await;
            streams.push(events);
            clients.push(client);
        }
        let dial = Dial { addr: ConnectAddr::from(unix.addr.clone()), options: ClientOptions::default() };
        let reconnecting = Reconnecting::new(dial, RetryPolicy::OnceAfterReuse);
        streams.push(guard(reconnecting.subscribe(subscription(&["test.ping"]))).await.expect("subscribes"));
        assert_eq!(hub.stats().subscribers, 4, "one hub serves the three servers");
        hub.publish(ping(1));
        for stream in &mut streams {
            assert_eq!(next(stream).await.params["n"], json!(1));
        }
        let ListenAddr::Unix(path) = unix.addr.clone() else { unreachable!() };
        let TestServer { server: running, dir: _socket_dir, .. } = unix;
        guard(running.expect("running").shutdown()).await;
        for server in [tcp, http] {
            server.shutdown().await;
        }
        for stream in &mut streams {
            assert_eq!(guard(stream.next()).await, None, "the stream ends with its connection");
        }
        assert_eq!(hub.stats().subscribers, 0);

        // A reconnecting client subscribes again on a new connection.
        let restarted = Server::new(TestHandler::default()).with_events(hub.clone());
        let restarted = restarted.bind(&ListenAddr::Unix(path)).await.expect("binds again");
        let mut stream = guard(reconnecting.subscribe(subscription(&["test.ping"]))).await.expect("subscribes again");
        hub.publish(ping(2));
        assert_eq!(next(&mut stream).await.params["n"], json!(2));
        guard(restarted.shutdown()).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// HTTP: Server-Sent Events

/// A raw `GET /events` reader: the response head, then the body de-chunked into events.
struct SseReader {
    stream: TcpStream,
    buffer: Vec<u8>,
    body: Vec<u8>,
    pub head: String,
}

impl SseReader {
    async fn open(addr: &str, query: &str, token: Option<&str>) -> SseReader {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("GET /events{query} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut reader = SseReader { stream, buffer: Vec::new(), body: Vec::new(), head: String::new() };
        loop {
            if let Some(end) = reader.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                reader.head = String::from_utf8(reader.buffer[..end].to_vec()).unwrap().to_ascii_lowercase();
                reader.buffer.drain(..end + 4);
                return reader;
            }
            assert!(reader.fill().await, "the response head is complete");
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match guard(self.stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next event as (name, data), or `None` once the stream ends.
    async fn event(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8(self.body.drain(..end + 2).collect()).unwrap();
                let mut name = String::new();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = value.to_string();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = value.to_string();
                    }
                }
                return Some((name, serde_json::from_str(&data).unwrap_or_else(|e| panic!("data ({e}): {data}"))));
            }
            // De-chunk: SIZE\r\n BYTES \r\n, a zero size ending the body.
            match self.buffer.windows(2).position(|w| w == b"\r\n") {
                Some(end) => {
                    let size = usize::from_str_radix(std::str::from_utf8(&self.buffer[..end]).unwrap().trim(), 16)
                        .expect("a chunk size");
                    if size == 0 {
                        return None;
                    }
                    while self.buffer.len() < end + 2 + size + 2 {
                        assert!(self.fill().await, "a whole chunk");
                    }
                    self.body.extend_from_slice(&self.buffer[end + 2..end + 2 + size]);
                    self.buffer.drain(..end + 2 + size + 2);
                }
                None => {
                    if !self.fill().await {
                        return None;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn http_streams_server_sent_events_behind_the_token() {
    guard(async {
        let (hub, server) = serve_events("http", Limits::default(), Some("s3cret")).await;
        let addr = server.socket_addr();

        let (status, head, _) = http_raw(&addr, "GET", "/events", &[], b"").await;
        assert_eq!(status, 401, "{head}");
        let auth = [("authorization", "Bearer s3cret")];
        let (status, head, _) = http_raw(&addr, "POST", "/events", &auth, b"{}").await;
        assert_eq!((status, head.contains("allow: get")), (405, true), "{head}");
        let (status, _, body) = http_raw(&addr, "GET", "/events?events=test.ping,test.nope", &auth, b"").await;
        assert_eq!(status, 400);
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["code"], json!(-32602));
        assert!(body.contains("/events/1") && body.contains("test.nope"), "{body}");
        let (status, _, body) = http_raw(&addr, "GET", "/events?versions=Thing", &auth, b"").await;
        assert_eq!(status, 400, "{body}");

        // The bytes: a confirmation, then the events named, at the versions asked for.
        let query = "?events=test.ping&versions=Thing%3A1.1";
        let mut raw = SseReader::open(&addr, query, Some("s3cret")).await;
        assert!(raw.head.starts_with("http/1.1 200"), "{}", raw.head);
        assert!(raw.head.contains("content-type: text/event-stream"), "{}", raw.head);
        assert_eq!(raw.event().await, Some(("rpc.subscribed".to_string(), json!({"subscribed": ["test.ping"]}))));
        hub.publish(pong(1));
        hub.publish(ping(2));
        assert_eq!(raw.event().await, Some(("test.ping".to_string(), json!({"n": 2, "thing": "1.1"}))));

        // The client's stream, with the token.
        let client = client(&server, Some("s3cret")).await;
        let mut events = guard(client.subscribe(at_thing(&["test.pong"], "1.0"))).await.expect("subscribes");
        hub.publish(pong(3));
        assert_eq!(
            next(&mut events).await,
            RawEvent { method: "test.pong".into(), params: json!({"n": 3, "thing": "1.0"}) }
        );
        assert_eq!(guard(client.request("test.add", json!([1, 2]))).await.unwrap(), json!(3), "calls still go");
        match guard(client.subscribe(subscription(&["test.nope"]))).await {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32602),
            _ => panic!("expected invalid params"),
        }
        let unauthorized =
            Client::connect(&ConnectAddr::from(server.addr.clone()), ClientOptions::default()).await.unwrap();
        match guard(unauthorized.subscribe(Subscription::default())).await {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32001),
            _ => panic!("expected unauthorized"),
        }

        // Shutdown ends both streams.
        server.shutdown().await;
        assert_eq!(raw.event().await, None);
        assert_eq!(guard(events.next()).await, None);
    })
    .await;
}

#[tokio::test]
async fn an_http_subscriber_that_does_not_read_is_cut_off_while_others_go_on() {
    guard(async {
        let limits = Limits { max_queued_events: 8, ..Limits::default() };
        let (hub, server) = serve_events("http", limits, None).await;
        let addr = server.socket_addr();
        let mut slow = SseReader::open(&addr, "?events=test.ping", None).await;
        assert_eq!(slow.event().await.map(|(name, _)| name).as_deref(), Some("rpc.subscribed"));
        let fast = client(&server, None).await;
        let mut events = guard(fast.subscribe(subscription(&["test.ping"]))).await.expect("subscribes");

        let published = publish_until_lost(&hub, &mut events, 16 * 1024).await;
        assert_eq!(guard(fast.request("test.add", json!([2, 2]))).await.unwrap(), json!(4));

        let mut received = 0;
        let lost = loop {
            let (name, data) = slow.event().await.expect("an event");
            if name == "test.ping" {
                assert_eq!(data["n"], json!(received));
                received += 1;
                continue;
            }
            break (name, data);
        };
        assert_eq!(lost.0, SUBSCRIPTION_LOST);
        assert_eq!(received + lost.1["dropped"].as_u64().unwrap(), published);
        assert_eq!(slow.event().await, None, "the stream ends after the loss");
        server.shutdown().await;
    })
    .await;
}
