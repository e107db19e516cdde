//! The HTTP client: each call is a `POST /jsonrpc`.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    header::{self, HeaderValue},
    Method, Request, StatusCode, Uri,
};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;
use tokio::time::timeout;
use vproto_support::rpc::{CallError, RpcError};

use super::{describe, request_text, ClientOptions};

/// A client posting to `http://HOST:PORT/jsonrpc`.
pub(super) struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    authorization: Option<HeaderValue>,
    next_id: AtomicU64,
    options: ClientOptions,
}

impl HttpClient {
    pub(super) fn new(host: &str, port: u16, options: ClientOptions) -> Result<Self, CallError> {
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        let uri: Uri = format!("http://{host}:{port}/jsonrpc")
            .parse()
            .map_err(|error| CallError::Transport(format!("bad address: {error}")))?;
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
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpClient { client, uri, authorization, next_id: AtomicU64::new(1), options })
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
}
