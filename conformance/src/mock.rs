//! Serve mode: a mock server that validates a foreign client.
//!
//! Every request is checked against the description (method known, params valid); `rpc.discover`
//! answers the description itself. Answers are
//! schema-valid results: the method's first example result for the first answer, generated
//! values after that. Per method, the mock also injects:
//!
//! 1. **negotiation**: the first request carrying a versioned object of which the schema knows
//!    an older version than the one sent is answered with the declared `UnsupportedVersion`
//!    error naming that object and the version just below the one sent; the client must retry
//!    with the object backleveled to that version: labelled at most that version, and without
//!    the fields that version does not have by the description's `x-since`/`x-removed` (case
//!    `serve/<m>/backlevel-retry`);
//! 2. **declared errors**: after the first successful answer, the next requests each get one of
//!    the method's other declared errors (in declaration order, once each, with generated
//!    `data`), then results again.
//!
//! 3. **events**: the mock serves every event of the description (`x-events`, docs/events.md):
//!    `rpc.subscribe` and `rpc.unsubscribe` are answered by vproto-jsonrpc's transport, and
//!    whenever a connection subscribes the mock publishes every example of every event (their
//!    params as the description writes them, whatever versions the client asked for), so the
//!    client under test receives each example of the events it subscribed to, and nothing else.
//!
//! 4. **compat policy** ([`MockOptions::compat`]): the mock can apply a compatibility policy as
//!    `vproto serve --compat` does (vproto-support's `rpc::compat`), refusing the deprecated
//!    input and hiding the deprecated output the description marks, so a client can test itself
//!    against it, and the compat mode of the runner can be checked against it.
//!
//! A session ends when stdin closes (`stdio`), when `sessions` connections have closed (`unix:`,
//! `tcp:`), after `idle` without a request once one arrived, or at `timeout`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
};
use vproto_jsonrpc::{EventHub, ListenAddr, ServeError, Server};
use vproto_support::{
    rpc::{
        codes,
        compat::{event_sink, Compat, CompatPolicy, Deprecated},
        events::{Event, EventSink},
        BoxFuture, Handler, Params, RpcError,
    },
    wire::{keys, Manifest, Version, WireError},
};

use crate::{
    description::{envelope_versions, Description, Method},
    generate::{effective, Generator},
    run::{Outcome, Status},
};

/// How a serve-mode session runs and ends.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// End after this many connections have closed (line transports other than stdio).
    pub sessions: Option<usize>,
    /// End after this long without a request, once one arrived.
    pub idle: Duration,
    /// End at the latest after this long.
    pub timeout: Duration,
    /// Seed of generated results.
    pub seed: u64,
    /// The compatibility policy applied (`None`: deprecated parts are served as any other).
    pub compat: Option<CompatPolicy>,
}

/// What the mock observed of one method.
#[derive(Default)]
struct MethodLog {
    requests: usize,
    first_invalid: Option<(String, String)>,
    /// (object, version named, the request answered with UnsupportedVersion)
    pending: Option<(String, Version, String)>,
    negotiated: bool,
    retry: Option<Result<String, (String, String)>>,
    answered: usize,
    injected: Vec<String>,
}

struct State {
    methods: BTreeMap<String, MethodLog>,
    unknown: Vec<String>,
    last_request: Option<Instant>,
    counter: u64,
}

struct Mock {
    description: Arc<Description>,
    state: Mutex<State>,
    names: Vec<&'static str>,
    seed: u64,
}

/// The versions the schema knows of the versioned object `name`, oldest first.
fn versions_of(description: &Description, name: &str) -> Vec<Version> {
    envelope_versions(&effective(description, &json!({"$ref": format!("#/$defs/{name}")})))
}

/// One versioned object found in a request.
struct Found {
    name: String,
    version: Version,
    /// The members of its `versioned_object.data`.
    fields: Vec<String>,
}

/// Every versioned object in `value`.
fn envelopes(value: &Value, out: &mut Vec<Found>) {
    match value {
        Value::Object(map) => {
            if let (Some(name), Some(version)) = (
                map.get(keys::NAME).and_then(Value::as_str),
                map.get(keys::VERSION).and_then(Value::as_str).and_then(|v| v.parse::<Version>().ok()),
            ) {
                let fields = map.get(keys::DATA).and_then(Value::as_object).map(|d| d.keys().cloned().collect());
                out.push(Found { name: name.to_string(), version, fields: fields.unwrap_or_default() });
            }
            map.values().for_each(|v| envelopes(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| envelopes(v, out)),
        _ => {}
    }
}

/// The fields of `found` that its version does not have, by the description's `x-since` and
/// `x-removed` (`"<Object> <version>"`; fields inherited from a base are not judged).
fn fields_outside_version(description: &Description, found: &Found) -> Vec<String> {
    let schema = effective(description, &json!({"$ref": format!("#/$defs/{}", found.name)}));
    let Some(properties) = schema.get("properties").and_then(|p| p.pointer(&format!("/{}/properties", keys::DATA)))
    else {
        return Vec::new();
    };
    let own_version = |property: &Value, key: &str| {
        let (owner, version) = property.get(key)?.as_str()?.rsplit_once(' ')?;
        (owner == found.name).then(|| version.parse::<Version>().ok()).flatten()
    };
    found
        .fields
        .iter()
        .filter(|field| {
            properties.get(field.as_str()).is_some_and(|property| {
                own_version(property, "x-since").is_some_and(|since| since > found.version)
                    || own_version(property, "x-removed").is_some_and(|removed| removed <= found.version)
            })
        })
        .cloned()
        .collect()
}

impl Mock {
    fn answer(&self, method: &Method, named: &Map<String, Value>, request: String) -> Result<Value, RpcError> {
        let description = &*self.description;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.counter += 1;
        let counter = state.counter;
        let log = state.methods.entry(method.name.clone()).or_default();
        log.requests += 1;
        let mut found = Vec::new();
        envelopes(&Value::Object(named.clone()), &mut found);
        if let Some((object, version, first)) = log.pending.take() {
            let sent: Vec<&Found> = found.iter().filter(|f| f.name == object).collect();
            let relabelled = sent.iter().find_map(|f| {
                let extra = fields_outside_version(description, f);
                (!extra.is_empty()).then_some((f.version, extra))
            });
            log.retry = Some(if sent.is_empty() {
                Err((request.clone(), format!("the retry carries no {object}; the first request was {first}")))
            } else if let Some(too_new) = sent.iter().find(|f| f.version > version) {
                Err((
                    request.clone(),
                    format!("the retry sends {object} {}, not backleveled to {version}", too_new.version),
                ))
            } else if let Some((at, extra)) = relabelled {
                let extra = extra.join(", ");
                Err((
                    request.clone(),
                    format!("the retry labels {object} {at} but sends fields {at} does not have: {extra}"),
                ))
            } else {
                Ok(request.clone())
            });
        }
        let violations = description.violation_pairs(&method.params_schema(), &Value::Object(named.clone()));
        if !violations.is_empty() {
            if log.first_invalid.is_none() {
                let why: Vec<String> =
                    violations.iter().map(|(pointer, message)| format!("{pointer}: {message}")).collect();
                log.first_invalid = Some((request, why.join("; ")));
            }
            return Err(RpcError::invalid_params(violations));
        }
        if !log.negotiated {
            if let Some(unsupported) = method.declared_named("UnsupportedVersion") {
                let older = found.iter().find_map(|f| {
                    let known = versions_of(description, &f.name);
                    known.iter().rev().find(|v| **v < f.version).map(|v| (f.name.clone(), *v))
                });
                if let Some((object, older)) = older {
                    log.negotiated = true;
                    log.pending = Some((object.clone(), older, request));
                    return Err(RpcError::new(unsupported.code, unsupported.message.clone())
                        .with_data(json!({"object": object, "max_version": older.to_string()})));
                }
            }
        }
        let mut generator = Generator::new(description, self.seed.wrapping_add(counter));
        if log.answered >= 1 {
            let next = method
                .errors
                .iter()
                .filter(|e| e.name != "UnsupportedVersion")
                .find(|e| !log.injected.contains(&e.name));
            if let Some(error) = next {
                log.injected.push(error.name.clone());
                let mut injected = RpcError::new(error.code, error.message.clone());
                if let Some(schema) = &error.data {
                    let data = generator.valid(schema).map_err(|why| RpcError::internal_because(why.to_string()))?;
                    injected = injected.with_data(data);
                }
                return Err(injected);
            }
        }
        log.answered += 1;
        let example = method.examples.iter().find_map(|e| e.result.clone());
        match example {
            Some(result) if log.answered == 1 && description.is_valid(&method.result, &result) => Ok(result),
            _ => generator.valid(&method.result).map_err(|why| RpcError::internal_because(why.to_string())),
        }
    }
}

impl Handler for Mock {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            let request = json!({"method": method, "params": match &params {
                Params::None => Value::Null,
                Params::ByName(map) => Value::Object(map.clone()),
                Params::ByPosition(items) => Value::Array(items.clone()),
            }})
            .to_string();
            self.state.lock().unwrap_or_else(|p| p.into_inner()).last_request = Some(Instant::now());
            if method == "rpc.discover" {
                return Ok(self.description.document.clone());
            }
            let Some(described) = self.description.method_named(method) else {
                self.state.lock().unwrap_or_else(|p| p.into_inner()).unknown.push(request);
                return Err(RpcError::standard(codes::METHOD_NOT_FOUND));
            };
            let names: Vec<&str> = described.params.iter().map(|p| p.name.as_str()).collect();
            let named = match params.into_named(&names) {
                Ok(named) => named,
                Err(error) => {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    let log = state.methods.entry(method.to_string()).or_default();
                    log.requests += 1;
                    log.first_invalid.get_or_insert((request, error.to_string()));
                    return Err(error);
                }
            };
            self.answer(described, &named, request)
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        self.names.clone()
    }
}

/// One example of an event of the description, published as the description writes it.
#[derive(Debug)]
struct ExampleEvent {
    name: &'static str,
    params: Map<String, Value>,
}

impl Event for ExampleEvent {
    fn name(&self) -> &'static str {
        self.name
    }

    fn to_params(&self, _manifest: &Manifest) -> Result<Map<String, Value>, WireError> {
        Ok(self.params.clone())
    }
}

/// Every example of every event of `description`.
fn example_events(description: &Description) -> Vec<Arc<ExampleEvent>> {
    description
        .events
        .iter()
        .flat_map(|event| {
            // The sink names events as 'static: the few names of one description are leaked once.
            let name: &'static str = Box::leak(event.name.clone().into_boxed_str());
            event
                .examples
                .iter()
                .map(move |example| Arc::new(ExampleEvent { name, params: example.params.iter().cloned().collect() }))
        })
        .collect()
}

/// Publishes every example event into `hub` each time it has more subscribers than when last
/// checked (every 20 ms), so each connection that subscribes receives the examples of the
/// events it named; never returns.
async fn emit_examples(hub: EventHub, sink: Arc<dyn EventSink>, examples: Vec<Arc<ExampleEvent>>) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = hub.stats().subscribers;
        if now > last {
            for example in &examples {
                sink.publish(example.clone());
            }
        }
        last = now;
    }
}

/// The mock, shared with the session's bookkeeping, as a handler to wrap.
struct SharedMock(Arc<Mock>);

impl Handler for SharedMock {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        self.0.handle(method, params)
    }

    fn methods(&self) -> Vec<&'static str> {
        self.0.methods()
    }
}

/// Why the mock could not serve.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: ListenAddr,
        /// Why binding failed.
        why: std::io::Error,
    },
    /// The socket's permissions could not be restricted.
    #[error("cannot restrict {addr} to its owner: {why}")]
    Restrict {
        /// The address.
        addr: ListenAddr,
        /// Why it failed.
        why: std::io::Error,
    },
    /// The bound listener has no local address.
    #[error("{0}")]
    LocalAddr(std::io::Error),
    /// The server could not be started.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Serves the mock on `listen` until the session ends; returns the serve-mode cases.
pub async fn serve_mock(
    description: Arc<Description>,
    listen: &ListenAddr,
    options: MockOptions,
) -> Result<Vec<Outcome>, MockError> {
    // The handler trait names methods as 'static: the few names of one description are leaked once.
    let mut names: Vec<&'static str> =
        description.methods.iter().map(|m| &*Box::leak(m.name.clone().into_boxed_str())).collect();
    names.push("rpc.discover");
    let mock = Arc::new(Mock {
        description: description.clone(),
        state: Mutex::new(State { methods: BTreeMap::new(), unknown: Vec::new(), last_request: None, counter: 0 }),
        names,
        seed: options.seed,
    });
    let hub = EventHub::new(description.events.iter().map(|event| event.name.clone()));
    let (handler, sink): (Arc<dyn Handler>, _) = match options.compat {
        None => (mock.clone(), hub.sink()),
        Some(policy) => {
            let deprecated = Arc::new(Deprecated::from_openrpc(&description.document));
            eprintln!("vproto conform: the mock applies the compat policy {policy}");
            let sink = event_sink(hub.sink(), policy, deprecated.clone());
            (Arc::new(Compat::new(SharedMock(mock.clone()), policy, deprecated)), sink)
        }
    };
    let emitter = tokio::spawn(emit_examples(hub.clone(), sink, example_events(&description)));
    let started = Instant::now();
    let ended = {
        let mock = mock.clone();
        let options = options.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let last = mock.state.lock().unwrap_or_else(|p| p.into_inner()).last_request;
                if started.elapsed() >= options.timeout || last.is_some_and(|at| at.elapsed() >= options.idle) {
                    return;
                }
            }
        }
    };
    match (listen, options.sessions) {
        (ListenAddr::Stdio, _) => {
            let serve = Server::from_arc(handler).with_events(hub).serve_io(tokio::io::stdin(), tokio::io::stdout());
            tokio::select! { () = serve => {}, () = ended => {} }
        }
        (ListenAddr::Unix(_) | ListenAddr::Tcp { .. }, Some(sessions)) => {
            let result = tokio::select! { result = accept_sessions(handler, hub, listen, sessions) => result, () = ended => Ok(()) };
            if let ListenAddr::Unix(path) = listen {
                let _ = std::fs::remove_file(path);
            }
            result?;
        }
        _ => {
            let running = Server::from_arc(handler).with_events(hub).bind(listen).await?;
            eprintln!("vproto conform: serving on {}", running.local_addr());
            ended.await;
            running.shutdown().await;
        }
    }
    emitter.abort();
    Ok(outcomes(&mock, started.elapsed()))
}

/// Accepts connections on a Unix or TCP listener until `sessions` of them have closed.
async fn accept_sessions(
    handler: Arc<dyn Handler>,
    hub: EventHub,
    listen: &ListenAddr,
    sessions: usize,
) -> Result<(), MockError> {
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let serve = |read: BoxRead, write: BoxWrite| {
        let server = Server::from_arc(handler.clone()).with_events(hub.clone());
        let done = done_tx.clone();
        tokio::spawn(async move {
            server.serve_io(read, write).await;
            let _ = done.send(());
        });
    };
    let listener = match listen {
        ListenAddr::Unix(path) => {
            let listener = UnixListener::bind(path).map_err(|why| MockError::Listen { addr: listen.clone(), why })?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|why| MockError::Restrict { addr: listen.clone(), why })?;
            eprintln!("vproto conform: serving on {listen}");
            Listener::Unix(listener)
        }
        ListenAddr::Tcp { host, port } => {
            let listener = TcpListener::bind((host.as_str(), *port))
                .await
                .map_err(|why| MockError::Listen { addr: listen.clone(), why })?;
            let local = listener.local_addr().map_err(MockError::LocalAddr)?;
            eprintln!("vproto conform: serving on tcp:{local}");
            Listener::Tcp(listener)
        }
        _ => unreachable!("only called for unix: and tcp:"),
    };
    let mut closed = 0;
    loop {
        tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok((read, write)) => serve(read, write),
                Err(error) => eprintln!("vproto conform: accepting a connection failed: {error}"),
            },
            Some(()) = done_rx.recv() => {
                closed += 1;
                if closed >= sessions {
                    return Ok(());
                }
            }
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// The next connection, as a pair of byte streams.
async fn accept(listener: &Listener) -> std::io::Result<(BoxRead, BoxWrite)> {
    Ok(match listener {
        Listener::Unix(listener) => {
            let (read, write) = listener.accept().await?.0.into_split();
            (Box::new(read), Box::new(write))
        }
        Listener::Tcp(listener) => {
            let (read, write) = listener.accept().await?.0.into_split();
            (Box::new(read), Box::new(write))
        }
    })
}

fn outcomes(mock: &Mock, elapsed: Duration) -> Vec<Outcome> {
    let state = mock.state.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = |id: String, what: &str, failure: Option<(String, String)>, expected: &str| Outcome {
        id,
        target: "client".into(),
        what: what.into(),
        status: if failure.is_some() { Status::Fail } else { Status::Pass },
        request: failure.as_ref().map(|(request, _)| request.clone()).unwrap_or_default(),
        response: String::new(),
        expected: expected.into(),
        why: failure.map(|(_, why)| why).unwrap_or_default(),
        duration: Duration::ZERO,
    };
    let mut out = Vec::new();
    let total: usize = state.methods.values().map(|log| log.requests).sum();
    out.push(outcome(
        "serve/session".into(),
        "the client sent at least one request",
        (total == 0 && state.unknown.is_empty())
            .then(|| (String::new(), format!("no request arrived in {:.1} s", elapsed.as_secs_f64()))),
        "at least one request",
    ));
    for request in state.unknown.iter().take(1) {
        out.push(outcome(
            "serve/method-known".into(),
            "every method the client calls is in the description",
            Some((request.clone(), format!("{} call(s) of methods not in the description", state.unknown.len()))),
            "methods of the description",
        ));
    }
    for (method, log) in &state.methods {
        out.push(outcome(
            format!("serve/{method}/request-valid"),
            &format!("every one of the {} request(s) for {method} has valid params", log.requests),
            log.first_invalid.clone(),
            "params valid against the method's params schema",
        ));
        if let Some((object, version, first)) = &log.pending {
            out.push(outcome(
                format!("serve/{method}/backlevel-retry"),
                &format!("after UnsupportedVersion naming {object} {version}, the client retries with it backleveled"),
                Some((first.clone(), "the client never retried".into())),
                "a retry with the object at the version named",
            ));
        } else if let Some(retry) = &log.retry {
            out.push(outcome(
                format!("serve/{method}/backlevel-retry"),
                "after UnsupportedVersion, the client retries with the object backleveled",
                retry.clone().err(),
                "a retry with the object at the version named",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Conn;
    use vproto_jsonrpc::ConnectAddr;

    #[tokio::test]
    async fn a_subscribed_client_receives_the_examples_of_its_events_only() {
        let description = Arc::new(Description::published().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mock.sock");
        let listen = ListenAddr::Unix(path.clone());
        let options = MockOptions {
            sessions: Some(1),
            idle: Duration::from_secs(2),
            timeout: Duration::from_secs(20),
            seed: 0,
            compat: None,
        };
        let serving = tokio::spawn({
            let description = description.clone();
            async move { serve_mock(description, &listen, options).await }
        });
        let addr = ConnectAddr::Listen(ListenAddr::Unix(path.clone()));
        let mut conn = loop {
            match Conn::open(&addr, None, None, Duration::from_secs(5)).await {
                Ok(conn) => break conn,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        conn.send_line(
            r#"{"jsonrpc":"2.0","method":"rpc.subscribe","params":{"events":["network.port_created"]},"id":1}"#,
        )
        .await
        .unwrap();
        let answer: Value = serde_json::from_str(&conn.read_line().await.unwrap()).unwrap();
        assert_eq!(answer["result"], json!({"subscribed": ["network.port_created"]}), "{answer}");
        let event: Value = serde_json::from_str(&conn.read_line().await.unwrap()).unwrap();
        assert_eq!(event["method"], "network.port_created", "{event}");
        let declared = description.events.iter().find(|e| e.name == "network.port_created").unwrap();
        assert!(description.is_valid(&declared.params_schema(), &event["params"]), "{event}");
        // Nothing else: the other events were published to no one.
        assert_eq!(conn.line_within(Duration::from_millis(200)).await.unwrap(), None);
        conn.send_line(r#"{"jsonrpc":"2.0","method":"driver.list_hardware","params":{},"id":2}"#).await.unwrap();
        conn.read_line().await.unwrap();
        drop(conn);
        let outcomes = serving.await.unwrap().unwrap();
        assert!(outcomes.iter().all(|o| o.status == Status::Pass), "{outcomes:#?}");
    }
}
