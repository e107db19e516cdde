//! `http://HOST:PORT`: JSON-RPC on `POST /jsonrpc`, plus REST routes that bind an HTTP method
//! and path to a JSON-RPC method.
//!
//! | request | answer |
//! |---|---|
//! | `POST /jsonrpc` | 200 with the JSON-RPC response (any error included), 204 for notifications only |
//! | a REST route | 200 with the result; the error object with 400 (-32700, -32600, -32602), 404 (-32601), 409 (application errors, code >= 1000), 500 (-32603 and others) |
//! | any request without `Authorization: Bearer TOKEN` when a token is set | 401 |
//! | a call by a role the method is not open to (the schema's `roles`) | the error -32003 (403 on a REST route) |
//! | a body over the size limit | 413 |
//! | a call over the in-flight limit (REST) | 429 |
//! | `GET /events?events=A,B&versions=OBJ:M.m,...` (a server with events) | 200, a `text/event-stream` of the events (docs/events.md); 400 with the error object for unknown events or a bad query |
//!
//! POST, PUT and PATCH routes take the JSON body as params (an empty body is `{}`); other
//! methods get `{}`. A route with a body param (the schema's `http.body`, as google.api.http's
//! `body: "registration"`) takes the body as that param's value: `POST /hello` with the
//! registration object itself calls the method with `{"registration": <body>}`. A body that is
//! an object whose only member is named like the param is taken as params by name, so the
//! wrapped form keeps working.

use std::{
    collections::{BTreeMap, VecDeque},
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited, StreamBody};
use hyper::{
    body::{Body as _, Frame, Incoming as Body},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response as HttpResponse, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
    time::Instant,
};
use vproto_support::{
    rpc::{
        codes,
        events::SUBSCRIPTION_LOST,
        roles::{self, Caller},
        HttpBinding, Params, RpcError,
    },
    wire::{Manifest, Version},
};

use vproto_listen::ShutdownSignal;

use super::error::ServeError;
use crate::{
    auth::Credentials,
    engine::{message_too_large, too_many_in_flight, unauthorized, Engine, InFlight},
    events::{Payload, Request as Subscription, Subscriber},
    message::{Id, Response},
};

/// The route events stream from, on a server that serves events.
pub const EVENTS_PATH: &str = "/events";

/// The first event of every stream: the subscription is in place, and what it holds
/// (`data: {"subscribed": [...]}`). Not an event of any service.
pub const SUBSCRIBED_EVENT: &str = "rpc.subscribed";

/// A REST binding: requests with this HTTP method and exact path call `rpc_method`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RestRoute {
    /// The HTTP method, upper case (`GET`, `POST`, `PUT`, ...).
    pub http_method: String,
    /// The exact path, starting with `/` (the query string is ignored).
    pub path: String,
    /// The JSON-RPC method called, as `service.method`.
    pub rpc_method: String,
    /// The param the body stands for; `None` when the body is the whole params.
    pub body: Option<String>,
}

impl RestRoute {
    /// A route from its three parts.
    pub fn new(http_method: impl Into<String>, path: impl Into<String>, rpc_method: impl Into<String>) -> Self {
        RestRoute { http_method: http_method.into(), path: path.into(), rpc_method: rpc_method.into(), body: None }
    }

    /// The same route with its body standing for the param `param`.
    pub fn with_body_param(mut self, param: impl Into<String>) -> Self {
        self.body = Some(param.into());
        self
    }
}

/// A binding the schema declares (the generated `HTTP_BINDINGS`). Bindings of different
/// services may share a path: serve one service's, as in
/// `HTTP_BINDINGS.iter().filter(|b| b.service == "agent").map(RestRoute::from)`.
impl From<&HttpBinding> for RestRoute {
    fn from(binding: &HttpBinding) -> Self {
        let route = RestRoute::new(binding.http_method, binding.path, binding.method);
        match binding.body {
            Some(param) => route.with_body_param(param),
            None => route,
        }
    }
}

/// A streamed body: the frames of an event stream.
type EventBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

type Body200 = HttpResponse<Either<Full<Bytes>, EventBody>>;

/// A route as the listener looks it up by path.
struct BoundRoute {
    http_method: Method,
    rpc_method: String,
    body: Option<String>,
}

/// What every HTTP connection of a listener shares.
pub(crate) struct HttpShared {
    engine: Arc<Engine>,
    credentials: Option<Credentials>,
    /// path → the routes bound on it, one per HTTP method
    routes: BTreeMap<String, Vec<BoundRoute>>,
}

impl HttpShared {
    /// Checks and indexes the routes.
    pub(crate) fn new(
        engine: Arc<Engine>,
        credentials: Option<Credentials>,
        routes: &[RestRoute],
    ) -> Result<Self, ServeError> {
        let mut table: BTreeMap<String, Vec<BoundRoute>> = BTreeMap::new();
        for route in routes {
            let bad = |why: &'static str| ServeError::BadRestRoute {
                http_method: route.http_method.clone(),
                path: route.path.clone(),
                why,
            };
            let upper = !route.http_method.is_empty() && route.http_method.bytes().all(|b| b.is_ascii_uppercase());
            let method = Method::from_bytes(route.http_method.as_bytes())
                .ok()
                .filter(|_| upper)
                .ok_or_else(|| bad("the HTTP method must be an upper-case token such as GET or POST"))?;
            if !route.path.starts_with('/') || route.path.contains(['?', '#', ' ']) {
                return Err(bad("the path must start with `/` and hold no query, fragment or space"));
            }
            if route.path == "/jsonrpc" {
                return Err(bad("/jsonrpc is reserved for JSON-RPC"));
            }
            if route.path == EVENTS_PATH && engine.events().is_some() {
                return Err(bad("/events is reserved for the event stream on a server with events"));
            }
            if route.body.is_some() && !matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                return Err(bad("only POST, PUT and PATCH requests have a body to stand for a param"));
            }
            let entry = table.entry(route.path.clone()).or_default();
            if entry.iter().any(|bound| bound.http_method == method) {
                return Err(bad("bound twice"));
            }
            entry.push(BoundRoute {
                http_method: method,
                rpc_method: route.rpc_method.clone(),
                body: route.body.clone(),
            });
        }
        Ok(HttpShared { engine, credentials, routes: table })
    }
}

/// The raw HTTP answer to a connection refused for the connection limit.
pub(crate) fn refusal(error: &RpcError) -> String {
    let body = Response::error(Id::null(), error.clone()).to_json();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Requests running on a connection and the time of its last activity, for the idle timeout;
/// when the request being read began, for the message timeout.
struct Activity {
    running: AtomicUsize,
    last: Mutex<Instant>,
    /// When the first byte of the request being read arrived; `None` between requests.
    message_started: Mutex<Option<Instant>>,
    /// Told when a request begins (`message_started` goes from `None` to a time).
    message_begun: Notify,
}

/// Marks a request running until dropped.
struct Busy<'a>(&'a Activity);

impl Activity {
    fn begin(&self) -> Busy<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Bytes arrived: they begin a request unless one is being read.
    fn bytes_arrived(&self) {
        let mut started = self.message_started.lock().unwrap_or_else(|poison| poison.into_inner());
        if started.is_none() {
            *started = Some(Instant::now());
            drop(started);
            self.message_begun.notify_one();
        }
    }

    /// The request being read is whole (its head, and its body if it has one).
    fn message_done(&self) {
        *self.message_started.lock().unwrap_or_else(|poison| poison.into_inner()) = None;
    }

    fn message_started(&self) -> Option<Instant> {
        *self.message_started.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive (hyper does not say
/// when a request's first byte came).
struct Clocked<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.connection.activity.bytes_arrived();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|poison| poison.into_inner()) = Instant::now();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection's state.
struct Connection {
    shared: Arc<HttpShared>,
    in_flight: InFlight,
    activity: Activity,
    /// Ends its event streams at shutdown.
    signal: ShutdownSignal,
}

/// Serves one HTTP/1.1 connection until the peer closes it, it idles out, a request takes
/// longer than the message timeout from its first byte to the end of its body, or shutdown.
pub(crate) async fn serve_connection<S>(shared: Arc<HttpShared>, stream: S, signal: ShutdownSignal)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.engine.limits().clone();
    let connection = Arc::new(Connection {
        shared,
        in_flight: InFlight::new(limits.max_in_flight),
        activity: Activity {
            running: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            message_started: Mutex::new(None),
            message_begun: Notify::new(),
        },
        signal: signal.clone(),
    });
    let service = {
        let connection = connection.clone();
        service_fn(move |request| {
            let connection = connection.clone();
            async move { Ok::<_, Infallible>(connection.respond(request).await) }
        })
    };
    // A client may shut its writing side once its request is sent: the answer is still written
    // (hyper's default takes the read EOF for an abort and drops it).
    let served = http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .serve_connection(TokioIo::new(Clocked { inner: stream, connection: connection.clone() }), service);
    tokio::pin!(served);
    let mut closing = false;
    loop {
        let idle_at = if connection.activity.running.load(Ordering::SeqCst) > 0 {
            Instant::now() + limits.idle_timeout
        } else {
            connection.activity.last() + limits.idle_timeout
        };
        let message_deadline = connection.activity.message_started().map(|at| at + limits.message_timeout);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                break;
            }
            _ = signal.wait(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                let idle = connection.activity.running.load(Ordering::SeqCst) == 0
                    && connection.activity.last() + limits.idle_timeout <= Instant::now();
                if idle {
                    tracing::debug!("closing an idle HTTP connection");
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            // A request began: go round to arm its deadline.
            _ = connection.activity.message_begun.notified(), if message_deadline.is_none() => {}
            _ = tokio::time::sleep_until(message_deadline.unwrap_or(idle_at)), if message_deadline.is_some() => {
                let late = connection.activity.message_started().is_some_and(|at| at + limits.message_timeout <= Instant::now());
                if late {
                    tracing::warn!(
                        limit = ?limits.message_timeout,
                        "closing an HTTP connection whose request arrives too slowly (Limits::message_timeout)"
                    );
                    break;
                }
            }
        }
    }
}

/// `call` run as `caller` (a role's calls with the role in place, for the dispatcher to check).
async fn as_caller<T: Send>(caller: Caller, call: impl std::future::Future<Output = T> + Send) -> T {
    match caller {
        Caller::Trusted => call.await,
        role => roles::scope(role, Box::pin(call)).await,
    }
}

/// A JSON response.
fn json(status: StatusCode, body: String) -> Body200 {
    let mut response = HttpResponse::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The HTTP status a REST error gets.
fn status_for(code: i64) -> StatusCode {
    match code {
        codes::PARSE_ERROR | codes::INVALID_REQUEST | codes::INVALID_PARAMS => StatusCode::BAD_REQUEST,
        codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::UNAUTHORIZED => StatusCode::UNAUTHORIZED,
        codes::FORBIDDEN => StatusCode::FORBIDDEN,
        codes::LIMIT_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
        code if code >= 1000 => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(request: &Request<Body>) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads a body of at most `max` bytes, refusing early on a larger Content-Length; the request
/// is whole once it is read. A body that is refused (or not read at all) leaves the request
/// unfinished, so a connection that goes on sending it is closed at the message timeout.
async fn read_body(request: Request<Body>, max: usize, activity: &Activity) -> Result<Bytes, BodyError> {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = Limited::new(request.into_body(), max).collect().await;
    if read.is_ok() {
        activity.message_done();
    }
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(error) => Err(BodyError::Broken(error.to_string())),
    }
}

impl Connection {
    async fn respond(&self, request: Request<Body>) -> Body200 {
        let _busy = self.activity.begin();
        if request.body().is_end_stream() {
            // No body to wait for: the request is whole.
            self.activity.message_done();
        }
        let rpc = request.uri().path() == "/jsonrpc";
        let error_body = |error: RpcError| {
            if rpc {
                Response::error(Id::null(), error).to_json()
            } else {
                error.to_json().to_string()
            }
        };
        let caller = match &self.shared.credentials {
            None => Caller::Trusted,
            Some(credentials) => match bearer(&request).and_then(|given| credentials.identify(given)) {
                Some(caller) => caller,
                None => {
                    let error = unauthorized("send the header `Authorization: Bearer TOKEN`");
                    let mut response = json(StatusCode::UNAUTHORIZED, error_body(error));
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return response;
                }
            },
        };
        if request.uri().path() == EVENTS_PATH && self.shared.engine.events().is_some() {
            return self.events(&request);
        }
        let max = self.shared.engine.limits().max_message_size;
        if rpc {
            if request.method() != Method::POST {
                let error = RpcError::invalid_request("JSON-RPC is served on POST /jsonrpc");
                let mut response = json(StatusCode::METHOD_NOT_ALLOWED, error_body(error));
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
                return response;
            }
            return match read_body(request, max, &self.activity).await {
                Err(BodyError::TooLarge) => json(StatusCode::PAYLOAD_TOO_LARGE, error_body(message_too_large(max))),
                Err(BodyError::Broken(why)) => json(StatusCode::BAD_REQUEST, error_body(RpcError::parse_error(why))),
                Ok(body) => match as_caller(caller, self.shared.engine.handle(&body, &self.in_flight)).await.text {
                    Some(text) => json(StatusCode::OK, text),
                    None => {
                        let mut response = HttpResponse::new(Either::Left(Full::new(Bytes::new())));
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        response
                    }
                },
            };
        }
        self.rest(request, max, caller).await
    }

    async fn rest(&self, request: Request<Body>, max: usize, caller: Caller) -> Body200 {
        let path = request.uri().path().to_string();
        let error = |status: StatusCode, error: RpcError| json(status, error.to_json().to_string());
        let Some(bindings) = self.shared.routes.get(&path) else {
            let detail = format!("no route for {} {path}", request.method());
            return error(
                StatusCode::NOT_FOUND,
                RpcError::standard(codes::METHOD_NOT_FOUND).with_data(Value::String(detail)),
            );
        };
        let Some(route) = bindings.iter().find(|bound| bound.http_method == request.method()) else {
            let allowed: Vec<&str> = bindings.iter().map(|bound| bound.http_method.as_str()).collect();
            let detail = format!("{} {path} is not served; allowed: {}", request.method(), allowed.join(", "));
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, RpcError::invalid_request(detail));
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            return response;
        };
        let takes_body = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH);
        let params = if takes_body {
            let body = match read_body(request, max, &self.activity).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => return error(StatusCode::PAYLOAD_TOO_LARGE, message_too_large(max)),
                Err(BodyError::Broken(why)) => return error(StatusCode::BAD_REQUEST, RpcError::parse_error(why)),
            };
            if body.iter().all(u8::is_ascii_whitespace) {
                Params::ByName(Map::new())
            } else {
                let value = match self.shared.engine.parse_value(&body) {
                    Ok(value) => value,
                    Err(rpc_error) => return error(status_for(rpc_error.code), rpc_error),
                };
                let value = match &route.body {
                    Some(param) => body_as_param(param, value),
                    None => value,
                };
                match Params::from_value(value) {
                    Some(params) => params,
                    None => {
                        let invalid = RpcError::standard(codes::INVALID_PARAMS)
                            .with_data(Value::String("the body must be a JSON object or array".to_string()));
                        return error(StatusCode::BAD_REQUEST, invalid);
                    }
                }
            }
        } else {
            Params::ByName(Map::new())
        };
        let Some(_slot) = self.in_flight.try_acquire() else {
            return error(StatusCode::TOO_MANY_REQUESTS, too_many_in_flight(self.in_flight.max()));
        };
        match as_caller(caller, self.shared.engine.call(&route.rpc_method, params)).await {
            Ok(result) => json(StatusCode::OK, result.to_string()),
            Err(rpc_error) => error(status_for(rpc_error.code), rpc_error),
        }
    }
}

impl Connection {
    /// `GET /events`: subscribes as the query says and streams the events until the server
    /// shuts down, the client goes, or the subscription is lost.
    fn events(&self, request: &Request<Body>) -> Body200 {
        let error = |status: StatusCode, error: RpcError| json(status, error.to_json().to_string());
        if request.method() != Method::GET {
            let detail = format!("{} {EVENTS_PATH} is not served; allowed: GET", request.method());
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, RpcError::invalid_request(detail));
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let Some(hub) = self.shared.engine.events() else {
            return error(StatusCode::NOT_FOUND, RpcError::method_not_found("rpc.subscribe"));
        };
        let subscription = match events_query(request.uri().query().unwrap_or("")) {
            Ok(subscription) => subscription,
            Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid),
        };
        let mut subscriber = Subscriber::new(hub, self.shared.engine.limits());
        let subscribed = match subscriber.subscribe_to(subscription) {
            Ok(subscribed) => subscribed,
            Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid),
        };
        let mut first = BytesMut::new();
        sse_event(&mut first, SUBSCRIBED_EVENT, serde_json::json!({ "subscribed": subscribed }).to_string().as_bytes());
        let mut response =
            HttpResponse::new(Either::Right(event_stream(subscriber, self.signal.clone(), first.freeze())));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// Reads `events=A,B` (repeatable; absent: every event) and `versions=OBJ:M.m,...` (repeatable)
/// from a query, percent-decoded.
fn events_query(query: &str) -> Result<Subscription, RpcError> {
    let mut events: Option<Vec<String>> = None;
    let mut versions: Option<Manifest> = None;
    let mut violations = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |text: &str| percent_encoding::percent_decode_str(text).decode_utf8().map(|text| text.into_owned());
        let (Ok(key), Ok(value)) = (decode(key), decode(value)) else {
            violations.push(("".to_string(), format!("`{pair}` is not percent-encoded UTF-8")));
            continue;
        };
        let items = value.split(',').map(str::trim).filter(|item| !item.is_empty());
        match key.as_str() {
            "events" => events.get_or_insert_with(Vec::new).extend(items.map(str::to_string)),
            "versions" => {
                let manifest = versions.get_or_insert_with(Manifest::new);
                for item in items {
                    match item.split_once(':').map(|(object, version)| (object, version.parse::<Version>())) {
                        Some((object, Ok(version))) if !object.is_empty() => {
                            manifest.insert(object.to_string(), version);
                        }
                        _ => violations.push((
                            format!("/versions/{item}"),
                            "must be OBJECT:M.m, such as HostInfo:1.0".to_string(),
                        )),
                    }
                }
            }
            other => violations
                .push((format!("/{other}"), "unknown query parameter (expected events, versions)".to_string())),
        }
    }
    if events.as_ref().is_some_and(Vec::is_empty) {
        violations.push(("/events".to_string(), "names no event; leave it out for every event".to_string()));
    }
    if !violations.is_empty() {
        return Err(RpcError::invalid_params(violations));
    }
    Ok(Subscription { events, versions })
}

/// Appends one Server-Sent Event: `event: NAME`, `data: JSON` and a blank line.
fn sse_event(into: &mut BytesMut, name: &str, data: &[u8]) {
    into.reserve(name.len() + data.len() + 16);
    into.put_slice(b"event: ");
    into.put_slice(name.as_bytes());
    into.put_slice(b"\ndata: ");
    into.put_slice(data);
    into.put_slice(b"\n\n");
}

/// The body of an event stream: `first`, then the subscriber's events as they come, each batch
/// one frame; it ends at shutdown, or after the loss notice when the subscription is lost.
/// hyper polls it only when it can write, so a client that does not read leaves its events
/// in the subscriber's bounded queue.
fn event_stream(subscriber: Subscriber, shutdown: ShutdownSignal, first: Bytes) -> EventBody {
    struct State {
        subscriber: Subscriber,
        shutdown: ShutdownSignal,
        first: Option<Bytes>,
        waiting: VecDeque<Payload>,
        done: bool,
    }
    let state = State { subscriber, shutdown, first: Some(first), waiting: VecDeque::new(), done: false };
    let frames = stream::unfold(state, |mut state| async move {
        if let Some(first) = state.first.take() {
            return Some((Ok(Frame::data(first)), state));
        }
        loop {
            if state.done || state.shutdown.fired() {
                return None;
            }
            if !state.subscriber.ready() {
                tokio::select! {
                    _ = state.shutdown.wait() => return None,
                    _ = state.subscriber.wait() => {}
                }
            }
            let lost = state.subscriber.take(&mut state.waiting);
            let mut chunk = BytesMut::new();
            for payload in state.waiting.drain(..) {
                sse_event(&mut chunk, payload.name(), payload.params());
            }
            if let Some(lost) = lost {
                sse_event(&mut chunk, SUBSCRIPTION_LOST, lost.params().to_string().as_bytes());
                state.done = true;
            }
            if !chunk.is_empty() {
                return Some((Ok(Frame::data(chunk.freeze())), state));
            }
        }
    });
    StreamBody::new(frames.boxed())
}

/// The params of a route whose body stands for `param`: `{param: body}`, unless the body is
/// already that (an object whose only member is `param`, the wrapped form).
fn body_as_param(param: &str, body: Value) -> Value {
    if let Value::Object(members) = &body {
        if members.len() == 1 && members.contains_key(param) {
            return body;
        }
    }
    let mut params = Map::new();
    params.insert(param.to_string(), body);
    Value::Object(params)
}
