//! The HTTP client: each call is a `POST /jsonrpc`; a subscription reads the Server-Sent Events
//! of `GET /events` (docs/events.md).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    header::{self, HeaderValue},
    Method, Request, StatusCode, Uri,
};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle, time::timeout};
use vproto_support::rpc::{
    events::{RawEvent, RawEvents, Subscription, SUBSCRIPTION_LOST},
    BoxFuture, CallError, RpcError,
};

use super::{
    describe,
    events::{self, EventSender, EventStream},
    request_text, ClientOptions,
};
use crate::transport::{EVENTS_PATH, SUBSCRIBED_EVENT};

/// What a query value keeps unescaped: event and object names, versions.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'_').remove(b'-').remove(b':');

/// A client posting to `http://HOST:PORT/jsonrpc` (`https://` with TLS).
pub(super) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    /// `http://HOST:PORT` (`https://HOST:PORT` with TLS)
    base: String,
    authorization: Option<HeaderValue>,
    next_id: AtomicU64,
    options: ClientOptions,
}

impl HttpClient {
    pub(super) fn new(host: &str, port: u16, options: ClientOptions) -> Result<Self, CallError> {
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{host}:{port}");
        let uri: Uri =
            format!("{base}/jsonrpc").parse().map_err(|error| CallError::Transport(format!("bad address: {error}")))?;
        let authorization = match &options.token {
            None => None,
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {}", token.secret()))
                    .map_err(|_| CallError::Transport("the token cannot be sent in an HTTP header".to_string()))?,
            ),
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = match &options.tls {
            // Only `https://` URIs are made with TLS, so the plain connector is never used for them.
            Some(tls) => HttpsConnectorBuilder::new().with_tls_config((*tls.config()).clone()).https_only(),
            None => HttpsConnectorBuilder::new().with_tls_config(plain_config()).https_or_http(),
        }
        .enable_http1()
        .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpClient { client, uri, base, authorization, next_id: AtomicU64::new(1), options })
    }

    /// Posts one message; returns the status and the body.
    async fn post(&self, text: String) -> Result<(StatusCode, Bytes), CallError> {
        let mut request = Request::new(Full::new(Bytes::from(text)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = &self.authorization {
            request.headers_mut().insert(header::AUTHORIZATION, authorization.clone());
        }
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| describe(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), self.options.max_message_size)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?;
            Ok::<_, String>((status, body.to_bytes()))
        };
        match timeout(self.options.request_timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(why)) => Err(CallError::Transport(format!("POST {}: {why}", self.uri))),
            Err(_) => Err(CallError::Transport(format!(
                "POST {}: no answer within {:?}",
                self.uri, self.options.request_timeout
            ))),
        }
    }

    /// The error object of a JSON-RPC error response body, if it is one.
    fn error_in(body: &[u8]) -> Option<RpcError> {
        let value: Value = serde_json::from_slice(body).ok()?;
        RpcError::from_json(value.get("error")?)
    }

    pub(super) async fn request(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (status, body) = self.post(request_text(method, &params, Some(id))).await?;
        if let Some(error) = HttpClient::error_in(&body) {
            return Err(CallError::Rpc(error));
        }
        if status != StatusCode::OK {
            return Err(CallError::Transport(format!("POST {}: HTTP {status}", self.uri)));
        }
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|error| CallError::Transport(format!("the answer is not JSON: {error}")))?;
        if answer.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(CallError::Transport(format!("the answer has id {}, not {id}", answer["id"])));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| CallError::Transport("the answer has neither result nor error".to_string()))
    }

    pub(super) async fn notify(&self, method: &str, params: Value) -> Result<(), CallError> {
        let (status, body) = self.post(request_text(method, &params, None)).await?;
        if let Some(error) = HttpClient::error_in(&body) {
            return Err(CallError::Rpc(error));
        }
        if !status.is_success() {
            return Err(CallError::Transport(format!("POST {}: HTTP {status}", self.uri)));
        }
        Ok(())
    }

    /// The `GET /events` URI of a subscription.
    fn events_uri(&self, subscription: &Subscription) -> Result<Uri, CallError> {
        let encode = |text: &str| utf8_percent_encode(text, QUERY_VALUE).to_string();
        let mut query = Vec::new();
        if !subscription.events.is_empty() {
            let names: Vec<String> = subscription.events.iter().map(|name| encode(name)).collect();
            query.push(format!("events={}", names.join(",")));
        }
        if !subscription.versions.is_empty() {
            let versions: Vec<String> =
                subscription.versions.iter().map(|(object, version)| format!("{}:{version}", encode(object))).collect();
            query.push(format!("versions={}", versions.join(",")));
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        format!("{}{EVENTS_PATH}{query}", self.base)
            .parse()
            .map_err(|error| CallError::Transport(format!("bad event stream address: {error}")))
    }

    /// Opens the event stream and waits (within the request timeout) for its first event, which
    /// says the subscription is in place.
    pub(super) async fn subscribe(&self, subscription: Subscription) -> Result<Box<dyn RawEvents>, CallError> {
        let uri = self.events_uri(&subscription)?;
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri.clone();
        request.headers_mut().insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(authorization) = &self.authorization {
            request.headers_mut().insert(header::AUTHORIZATION, authorization.clone());
        }
        let failed = |why: String| CallError::Transport(format!("GET {uri}: {why}"));
        let limit = self.options.request_timeout;
        let response = match timeout(limit, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(failed(describe(&error))),
            Err(_) => return Err(failed(format!("no answer within {limit:?}"))),
        };
        let status = response.status();
        if status != StatusCode::OK {
            let body = timeout(limit, Limited::new(response.into_body(), self.options.max_message_size).collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|body| body.to_bytes());
            let error =
                body.and_then(|body| serde_json::from_slice::<Value>(&body).ok()).and_then(|v| RpcError::from_json(&v));
            return Err(match error {
                Some(error) => CallError::Rpc(error),
                None => failed(format!("HTTP {status}")),
            });
        }
        let (sender, stream) = events::channel(self.options.event_queue);
        let (confirmed, confirmation) = oneshot::channel();
        let reader = read_events(response.into_body(), sender, confirmed, self.options.max_message_size);
        let events = HttpEvents { stream, task: tokio::spawn(reader) };
        match timeout(limit, confirmation).await {
            Ok(Ok(())) => Ok(Box::new(events)),
            Ok(Err(_)) => Err(failed("the event stream ended before it began".to_string())),
            Err(_) => Err(failed(format!("no {SUBSCRIBED_EVENT} event within {limit:?}"))),
        }
    }
}

/// One subscription's events over HTTP; dropping it closes the stream's connection.
struct HttpEvents {
    stream: EventStream,
    task: JoinHandle<()>,
}

impl RawEvents for HttpEvents {
    fn next(&mut self) -> BoxFuture<'_, Option<RawEvent>> {
        Box::pin(self.stream.recv())
    }
}

impl Drop for HttpEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TLS config of a client that never speaks TLS (its URIs are all `http://`): trusts nothing.
fn plain_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Reads Server-Sent Events from `body` into `sender` until the stream ends, the subscription
/// is lost, or the caller falls behind; the first event (`rpc.subscribed`) fires `confirmed`.
async fn read_events(mut body: hyper::body::Incoming, sender: EventSender, confirmed: oneshot::Sender<()>, max: usize) {
    let mut parser = SseParser::new(max);
    let mut confirmed = Some(confirmed);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|error| tracing::debug!(%error, "the event stream broke")) else { return };
        let Ok(data) = data.into_data() else { continue };
        let events = match parser.feed(&data) {
            Ok(events) => events,
            Err(why) => {
                tracing::warn!(%why, "the event stream is not Server-Sent Events; closing it");
                return;
            }
        };
        for (name, data) in events {
            if name == SUBSCRIBED_EVENT {
                if let Some(confirmed) = confirmed.take() {
                    let _ = confirmed.send(());
                }
                continue;
            }
            let params = match serde_json::from_str(&data) {
                Ok(params) => params,
                Err(error) => {
                    tracing::warn!(event = %name, %error, "an event's data is not JSON; dropped");
                    continue;
                }
            };
            let lost = name == SUBSCRIPTION_LOST;
            if !sender.send(RawEvent { method: name, params }) || lost {
                return;
            }
        }
    }
}

/// Splits Server-Sent Events (`event:` and `data:` fields, a blank line ending each; comments,
/// `id:` and `retry:` ignored) out of a byte stream.
struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    max: usize,
}

impl SseParser {
    fn new(max: usize) -> Self {
        SseParser { line: Vec::new(), event: None, data: None, max }
    }

    /// The events completed by `bytes`, as (name, data); an error for a line over `max` bytes
    /// or one that is not UTF-8.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut events = Vec::new();
        for piece in bytes.split_inclusive(|&byte| byte == b'\n') {
            self.line.extend_from_slice(piece);
            if self.line.len() > self.max {
                return Err(format!("a line longer than {} bytes", self.max));
            }
            if self.line.last() != Some(&b'\n') {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let text = std::str::from_utf8(&line).map_err(|_| "a line that is not UTF-8".to_string())?;
            let text = text.trim_end_matches('\n').trim_end_matches('\r');
            if text.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push((self.event.take().unwrap_or_else(|| "message".to_string()), data));
                }
                self.event = None;
                continue;
            }
            let (field, value) = text.split_once(':').unwrap_or((text, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn events_are_split_across_chunks_and_comments_ignored() {
        let mut parser = SseParser::new(1024);
        let mut events = parser.feed(b": hello\r\nevent: s.a\ndata: {\"n\"").unwrap();
        assert!(events.is_empty());
        events.extend(parser.feed(b":1}\n\nevent: s.b\ndata: 1\ndata: 2\n\ndata: x\n\n").unwrap());
        let expected = [("s.a", r#"{"n":1}"#), ("s.b", "1\n2"), ("message", "x")];
        let events: Vec<(&str, &str)> = events.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(events, expected);
        assert!(SseParser::new(4).feed(b"data: 12345").is_err());
    }
}
