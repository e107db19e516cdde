//! HTTP: JSON-RPC on POST /jsonrpc, REST routes, bearer tokens, limits, and the HTTP client.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use vproto_jsonrpc::{Client, ClientOptions, Limits, RestRoute, ServeError, Server};
use vproto_support::rpc::{CallError, ClientTransport, HttpBinding};

fn routes() -> Vec<RestRoute> {
    // Schema bindings (as generated into HTTP_BINDINGS) convert into routes.
    let schema = [
        HttpBinding { service: "test", http_method: "GET", path: "/hardware", method: "test.echo", body: None },
        HttpBinding { service: "test", http_method: "POST", path: "/discovery", method: "test.add", body: None },
        HttpBinding { service: "other", http_method: "POST", path: "/discovery", method: "other.add", body: None },
        HttpBinding {
            service: "test",
            http_method: "POST",
            path: "/hello",
            method: "test.echo",
            body: Some("registration"),
        },
    ];
    let mut routes: Vec<RestRoute> = schema.iter().filter(|b| b.service == "test").map(RestRoute::from).collect();
    routes.extend([
        RestRoute::new("PUT", "/echo", "test.echo"),
        RestRoute::new("POST", "/echo", "test.echo"),
        RestRoute::new("POST", "/fail", "test.fail"),
        RestRoute::new("POST", "/panic", "test.panic"),
        RestRoute::new("GET", "/missing", "test.missing"),
        RestRoute::new("GET", "/reserved", "rpc.secret"),
    ]);
    routes
}

async fn rest_server(token: Option<&'static str>, limits: Limits) -> TestServer {
    start_with("http", Setup { token, routes: routes(), limits: Some(limits), ..Setup::default() }).await
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"))
}

#[tokio::test]
async fn jsonrpc_is_served_on_post_jsonrpc() {
    let server = rest_server(None, Limits::default()).await;
    let addr = server.socket_addr();
    let post = |body: &'static str| {
        http_raw(&addr, "POST", "/jsonrpc", &[("content-type", "application/json")], body.as_bytes())
    };

    let (status, head, body) = post(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1.0}"#).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, r#"{"jsonrpc":"2.0","result":3,"id":1.0}"#);

    let (status, _, body) = post(r#"{"jsonrpc":"2.0","method":"test.count"}"#).await;
    assert_eq!((status, body.as_str()), (204, ""), "notification only");
    let (status, _, body) =
        post(r#"[{"jsonrpc":"2.0","method":"test.count"},{"jsonrpc":"2.0","method":"test.fail"}]"#).await;
    assert_eq!((status, body.as_str()), (204, ""), "notification-only batch");

    let (status, _, body) = post(
        r#"[{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1},{"jsonrpc":"2.0","method":"test.count"},5]"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json_body(&body).as_array().map(Vec::len), Some(2), "{body}");

    for (bad, expected) in [("{", -32700), ("[]", -32600), (r#"{"jsonrpc":"2.0","method":"nope","id":1}"#, -32601)] {
        let (status, _, body) = post(bad).await;
        assert_eq!(status, 200, "JSON-RPC errors travel with status 200: {bad}");
        assert_eq!(code(&json_body(&body)), expected, "{bad}");
    }

    let (status, head, _) = http_raw(&addr, "GET", "/jsonrpc", &[], b"").await;
    assert_eq!(status, 405);
    assert!(head.contains("allow: post"), "{head}");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_routes_call_their_methods() {
    let server = rest_server(None, Limits::default()).await;
    let addr = server.socket_addr();

    let (status, _, body) = http_raw(&addr, "GET", "/hardware?ignored=1", &[], b"").await;
    assert_eq!((status, json_body(&body)), (200, json!({})), "GET passes {{}}");
    let (status, _, body) = http_raw(&addr, "POST", "/discovery", &[], br#"{"a":40,"b":2}"#).await;
    assert_eq!((status, json_body(&body)), (200, json!(42)));
    let (status, _, body) = http_raw(&addr, "PUT", "/echo", &[], br#"{"deep":{"x":[1,2]}}"#).await;
    assert_eq!((status, json_body(&body)), (200, json!({"deep": {"x": [1, 2]}})));
    let (status, _, body) = http_raw(&addr, "POST", "/echo", &[], b"").await;
    assert_eq!((status, json_body(&body)), (200, json!({})), "an empty body is {{}}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_route_with_a_body_param_takes_the_body_as_that_param() {
    let server = rest_server(None, Limits::default()).await;
    let addr = server.socket_addr();
    let registration = json!({"status": "READY", "endpoint": "localhost:1337", "type": "CRYPTO"});
    let wrapped = json!({"registration": registration});

    let (status, _, body) = http_raw(&addr, "POST", "/hello", &[], registration.to_string().as_bytes()).await;
    assert_eq!((status, json_body(&body)), (200, wrapped.clone()), "the body is the param's value");
    let (status, _, body) = http_raw(&addr, "POST", "/hello", &[], wrapped.to_string().as_bytes()).await;
    assert_eq!((status, json_body(&body)), (200, wrapped), "the wrapped form keeps working");
    let (status, _, body) = http_raw(&addr, "POST", "/hello", &[], b"[1, 2]").await;
    assert_eq!((status, json_body(&body)), (200, json!({"registration": [1, 2]})), "any JSON value is the param");
    let (status, _, body) = http_raw(&addr, "POST", "/hello", &[], b"{\"registration\": 1, \"x\": 2}").await;
    assert_eq!(
        (status, json_body(&body)),
        (200, json!({"registration": {"registration": 1, "x": 2}})),
        "only an object whose sole member is the param is the wrapped form"
    );
    let (status, _, body) = http_raw(&addr, "POST", "/hello", &[], b"{\"status\":").await;
    assert_eq!((status, json_body(&body)["code"].clone()), (400, json!(-32700)), "bad JSON is still refused");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_errors_map_to_http_statuses() {
    let server = rest_server(None, Limits::default()).await;
    let addr = server.socket_addr();
    let cases: Vec<(&str, &str, &[u8], u16, i64)> = vec![
        ("POST", "/fail", br#"{"code":1005}"#, 409, 1005),
        ("POST", "/fail", br#"{"code":-32603}"#, 500, -32603),
        ("POST", "/fail", br#"{"code":-32099}"#, 500, -32099),
        ("POST", "/fail", br#"{"code":-32602}"#, 400, -32602),
        ("POST", "/discovery", br#"{"a":"x"}"#, 400, -32602),
        ("POST", "/discovery", b"{", 400, -32700),
        ("POST", "/discovery", b"\xff\xff", 400, -32700),
        ("POST", "/discovery", br#""text""#, 400, -32602),
        ("POST", "/discovery", &[b'['; 100], 400, -32600),
        ("POST", "/panic", b"{}", 500, -32603),
        ("GET", "/missing", b"", 404, -32601),
        ("GET", "/reserved", b"", 404, -32601),
        ("GET", "/no/such/route", b"", 404, -32601),
        ("DELETE", "/echo", b"", 405, -32600),
    ];
    for (method, path, body, status, expected) in cases {
        let (got, head, text) = http_raw(&addr, method, path, &[], body).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        let error = json_body(&text);
        assert_eq!(error["code"], expected, "{method} {path}: the body is the error object: {text}");
        assert!(error["message"].is_string(), "{text}");
        if status == 405 {
            assert!(head.contains("allow: put, post"), "{head}");
        }
    }
    let (_, _, text) = http_raw(&addr, "POST", "/fail", &[], br#"{"code":1005}"#).await;
    assert_eq!(json_body(&text), json!({"code": 1005, "message": "it failed", "data": {"why": "asked to"}}));
    assert_healthy_http(&server).await;
    server.shutdown().await;
}

async fn assert_healthy_http(server: &TestServer) {
    let (status, _, body) = http_raw(
        &server.socket_addr(),
        "POST",
        "/jsonrpc",
        &[],
        br#"{"jsonrpc":"2.0","method":"test.add","params":[2,3],"id":1}"#,
    )
    .await;
    assert_eq!((status, json_body(&body)["result"].clone()), (200, json!(5)));
}

#[tokio::test]
async fn a_token_is_required_as_a_bearer_header() {
    let server = rest_server(Some("t0ken"), Limits::default()).await;
    let addr = server.socket_addr();
    let call = br#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Basic dDBrZW4=")],
        vec![("authorization", "t0ken")],
    ] {
        let (status, head, body) = http_raw(&addr, "POST", "/jsonrpc", &headers, call).await;
        assert_eq!(status, 401, "{headers:?}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        assert_eq!(code(&json_body(&body)), -32001);
        let (status, _, body) = http_raw(&addr, "GET", "/hardware", &headers, b"").await;
        assert_eq!((status, json_body(&body)["code"].clone()), (401, json!(-32001)), "REST too");
    }
    let (status, _, body) = http_raw(&addr, "POST", "/jsonrpc", &[("authorization", "Bearer t0ken")], call).await;
    assert_eq!((status, json_body(&body)["result"].clone()), (200, json!(3)));
    let (status, _, _) = http_raw(&addr, "GET", "/hardware", &[("authorization", "bearer  t0ken ")], b"").await;
    assert_eq!(status, 200);

    let client = Client::connect(&server.addr.clone().into(), client_options(Some("t0ken"))).await.unwrap();
    assert_eq!(client.request("test.add", json!([1, 2])).await.unwrap(), json!(3));
    let anonymous = Client::connect(&server.addr.clone().into(), ClientOptions::default()).await.unwrap();
    match anonymous.request("test.add", json!([1, 2])).await {
        Err(CallError::Rpc(error)) => assert_eq!(error.code, -32001),
        other => panic!("expected -32001, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_and_deep_bodies_are_refused() {
    let limits = Limits { max_message_size: 1024, ..Limits::default() };
    let server = rest_server(None, limits).await;
    let addr = server.socket_addr();
    let big = vec![b' '; 4096];
    let (status, _, body) = http_raw(&addr, "POST", "/jsonrpc", &[], &big).await;
    assert_eq!(status, 413);
    assert_eq!(json_body(&body)["error"]["message"], "message too large");
    let (status, _, body) = http_raw(&addr, "POST", "/echo", &[], &big).await;
    assert_eq!((status, json_body(&body)["message"].clone()), (413, json!("message too large")));
    let deep =
        format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":{}{},"id":1}}"#, "[".repeat(70), "]".repeat(70));
    let (status, _, body) = http_raw(&addr, "POST", "/jsonrpc", &[], deep.as_bytes()).await;
    assert_eq!((status, code(&json_body(&body))), (200, -32600));
    assert_healthy_http(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let limits = Limits { max_connections: 1, ..Limits::default() };
    let server = rest_server(None, limits).await;
    let addr = server.socket_addr();
    let mut held = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Make sure the first connection is being served.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    held.write_all(b"GET /hardware HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 12];
    guard(held.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let (status, _, body) = http_raw(&addr, "GET", "/hardware", &[], b"").await;
    assert_eq!(status, 503);
    assert_eq!(json_body(&body)["error"]["message"], "too many connections");
    drop(held);
    guard(async {
        loop {
            if http_raw(&addr, "GET", "/hardware", &[], b"").await.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn idle_http_connections_are_closed() {
    let limits = Limits { idle_timeout: Duration::from_millis(100), ..Limits::default() };
    let server = rest_server(None, limits).await;
    let mut stream = tokio::net::TcpStream::connect(server.socket_addr()).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    let read = guard(stream.read_to_end(&mut rest)).await;
    assert!(read.is_err() || rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"), "closed: {rest:?}");
    assert_healthy_http(&server).await;
    server.shutdown().await;
}

/// A request whose head or body arrives slower than the message timeout (from its first byte)
/// has its connection closed, while a keep-alive connection idle between requests for longer
/// than that is not.
#[tokio::test]
async fn slow_requests_are_cut_at_the_message_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = Duration::from_millis(400);
    let server = rest_server(None, Limits { message_timeout: limit, ..Limits::default() }).await;
    let addr = server.socket_addr();
    let body = br#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#;
    let whole = [
        format!("POST /jsonrpc HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes(),
        body.to_vec(),
    ]
    .concat();
    // Keep-alive: a request, a pause longer than the limit, another request.
    let mut patient = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        patient.write_all(&whole).await.unwrap();
        let mut head = [0u8; 12];
        guard(patient.read_exact(&mut head)).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let mut rest = vec![0u8; 4096];
        let _ = guard(patient.read(&mut rest)).await.unwrap();
        tokio::time::sleep(limit * 2).await;
    }
    // A head sent a byte at a time, and a whole head with its body a byte at a time.
    let head_len = whole.len() - body.len();
    for (what, at_once) in [("head", 0), ("body", head_len)] {
        let (mut read, mut write) = tokio::net::TcpStream::connect(&addr).await.unwrap().into_split();
        let started = tokio::time::Instant::now();
        write.write_all(&whole[..at_once]).await.unwrap();
        let rest = whole[at_once..whole.len() - 1].to_vec();
        let sender = tokio::spawn(async move {
            for byte in rest {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if write.write_all(&[byte]).await.is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        let ended = tokio::time::timeout(limit * 4, read.read_to_end(&mut answer)).await;
        sender.abort();
        let cut_after = started.elapsed();
        assert!(ended.is_ok(), "a slow {what} is cut within {:?}", limit * 4);
        assert!(cut_after >= limit, "a slow {what} cut after {cut_after:?}, before the limit of {limit:?}");
        assert!(!answer.starts_with(b"HTTP/1.1 200"), "a slow {what} is not answered");
    }
    assert_healthy_http(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_http_client_calls_and_notifies() {
    let server = rest_server(None, Limits::default()).await;
    let client = Client::connect(&server.addr.clone().into(), ClientOptions::default()).await.unwrap();
    let mut calls = Vec::new();
    for n in 0..20i64 {
        calls.push(client.request("test.add", json!({"a": n, "b": 1})));
    }
    for (n, answer) in futures_join(calls).await.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), json!(n + 1));
    }
    client.notify("test.count", json!([])).await.unwrap();
    match client.request("test.fail", json!({"code": 1009})).await {
        Err(CallError::Rpc(error)) => assert_eq!(error.code, 1009),
        other => panic!("expected an RPC error, got {other:?}"),
    }
    server.shutdown().await;
    let error = client.request("test.add", json!([1, 2])).await.unwrap_err();
    assert!(matches!(&error, CallError::Transport(why) if why.contains("POST http://")), "{error}");
}

/// Awaits futures concurrently on this task.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn bad_routes_are_refused_at_startup() {
    for (route, why) in [
        (RestRoute::new("get", "/x", "m"), "upper-case"),
        (RestRoute::new("GET", "x", "m"), "start with `/`"),
        (RestRoute::new("GET", "/x?y", "m"), "no query"),
        (RestRoute::new("POST", "/jsonrpc", "m"), "reserved"),
        (RestRoute::new("GET", "/x", "m").with_body_param("p"), "have a body"),
    ] {
        let server = Server::new(TestHandler::default()).with_rest_routes([route]);
        let error = server.bind(&"http://127.0.0.1:0".parse().unwrap()).await.unwrap_err();
        assert!(matches!(error, ServeError::BadRestRoute { .. }) && error.to_string().contains(why), "{error}");
    }
    let twice = [RestRoute::new("GET", "/x", "a"), RestRoute::new("GET", "/x", "b")];
    let error = Server::new(TestHandler::default())
        .with_rest_routes(twice)
        .bind(&"http://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("bound twice"), "{error}");
}

/// A client that sends a whole request and then shuts its writing side (as `curl` with
/// `--data @-` from a pipe, or a one-shot script, may) still gets its answer, also when the
/// handler is still running when the shutdown arrives (found by the hostile corpus: hyper's
/// default dropped the answer).
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = rest_server(None, Limits::default()).await;
    for ms in [0, 200] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "test.slow", "params": {"ms": ms}}).to_string();
        let request = format!(
            "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(server.socket_addr()).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        guard(stream.read_to_end(&mut answer)).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "handler of {ms} ms: {answer:?}");
        let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
        assert_eq!(json_body(body)["result"], json!(ms), "{answer}");
    }
    assert_healthy_http(&server).await;
    server.shutdown().await;
}
