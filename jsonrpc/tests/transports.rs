//! Unix, TCP and in-process line transports, tokens, addresses, the client, and shutdown.

mod common;

use std::{os::unix::fs::PermissionsExt, sync::Arc, time::Duration};

use common::*;
use serde_json::{json, Value};
use vproto_jsonrpc::{
    load_token, transport::vchan::VchanAddr, BindError, Client, ClientOptions, ConnectAddr, ListenAddr, RestRoute,
    ServeError, Server, Token, TokenError,
};
use vproto_support::rpc::{CallError, ClientTransport};

#[tokio::test]
async fn the_unix_socket_is_mode_0600_and_removed_on_shutdown() {
    let server = start("unix").await;
    let ListenAddr::Unix(path) = server.addr.clone() else { unreachable!() };
    let mode = std::fs::metadata(&path).expect("the socket exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_healthy(&server.addr).await;
    let leftovers: Vec<_> = std::fs::read_dir(server.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("rpc.sock")], "no temporary files are left behind");
    let TestServer { server: running, dir: _socket_dir, .. } = server;
    guard(running.unwrap().shutdown()).await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_but_a_live_one_or_a_plain_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a stale socket file is left behind");
    let addr = ListenAddr::Unix(path.clone());
    let running = Server::new(TestHandler::default()).bind(&addr).await.expect("a stale socket is replaced");
    assert_healthy(&addr).await;

    let error = Server::new(TestHandler::default()).bind(&addr).await.expect_err("a live socket is not stolen");
    assert!(matches!(error, ServeError::Bind(BindError::InUse(_))), "{error}");
    assert!(error.to_string().contains("another server is listening"), "{error}");
    assert_healthy(&addr).await;

    let plain = dir.path().join("plain");
    std::fs::write(&plain, "data").unwrap();
    let error = Server::new(TestHandler::default()).bind(&ListenAddr::Unix(plain.clone())).await.unwrap_err();
    assert!(matches!(error, ServeError::Bind(BindError::NotASocket(_))), "{error}");
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "data", "the file is untouched");
    guard(running.shutdown()).await;
}

#[tokio::test]
async fn tcp_with_a_token_requires_rpc_auth_first() {
    let server = start_with("tcp", Setup { token: Some("s3cret"), ..Setup::default() }).await;

    // Any other first call is refused with -32001 and the connection closed.
    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#).await;
    let refused = raw.recv().await;
    assert_eq!(code(&refused), -32001, "{refused}");
    assert_eq!(refused["id"], 1);
    assert!(raw.closed().await);

    for (first, id) in [
        (r#"{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"wrong"},"id":1}"#, json!(1)),
        (r#"{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"s3cret"}}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","method":"rpc.auth","params":{},"id":"a"}"#, json!("a")),
        (r#"[{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"s3cret"},"id":1}]"#, Value::Null),
        ("not json", Value::Null),
    ] {
        let mut raw = Raw::connect(&server.addr).await;
        raw.line(first).await;
        let refused = raw.recv().await;
        assert_eq!(code(&refused), -32001, "{first}: {refused}");
        assert_eq!(refused["id"], id, "{first}");
        assert!(raw.closed().await, "{first}: closed");
    }

    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"s3cret"},"id":0}"#).await;
    assert_eq!(raw.recv().await, json!({"jsonrpc": "2.0", "result": true, "id": 0}));
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#).await;
    assert_eq!(raw.recv().await["result"], 3);

    assert_healthy_with(&server.addr, Some("s3cret")).await;
    let addr = ConnectAddr::from(server.addr.clone());
    let error = Client::connect(&addr, client_options(Some("nope"))).await.err().expect("a wrong token is refused");
    assert!(error.to_string().contains("-32001"), "{error}");
    let anonymous = Client::connect(&addr, ClientOptions::default()).await.expect("connects");
    match anonymous.request("test.add", json!([1, 2])).await {
        Err(CallError::Rpc(error)) => assert_eq!(error.code, -32001),
        other => panic!("expected -32001, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unix_sockets_need_no_token_and_accept_rpc_auth_anyway() {
    let server = start_with("unix", Setup { token: Some("s3cret"), ..Setup::default() }).await;
    assert_healthy(&server.addr).await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"rpc.auth","params":{"token":"x"},"id":1}"#).await;
    assert_eq!(answer["result"], true);
    server.shutdown().await;
}

#[test]
fn tokens_load_from_private_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "  abc123\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = load_token(&path).expect("a private token file loads");
    assert_eq!(token.secret(), "abc123", "whitespace is trimmed");
    assert!(!format!("{token:?}").contains("abc123"), "Debug hides the secret");
    assert!(token.matches("abc123") && !token.matches("abc124") && !token.matches("abc"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = load_token(&path).unwrap_err();
    assert!(matches!(error, TokenError::TooOpen { mode: 0o644, .. }), "{error}");
    assert!(error.to_string().contains("chmod 600"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(load_token(&path), Err(TokenError::TooOpen { .. })));

    for empty in ["", " \n\t\n"] {
        std::fs::write(&path, empty).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let error = load_token(&path).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
    }
    let error = load_token(dir.path().join("missing")).unwrap_err();
    assert!(error.to_string().contains("cannot read token file"), "{error}");
    assert!(Token::new("  ").is_err());
}

#[test]
fn addresses_parse_and_print() {
    let cases = [
        ("unix:/run/vproto.sock", ListenAddr::Unix("/run/vproto.sock".into())),
        ("unix:rel/x.sock", ListenAddr::Unix("rel/x.sock".into())),
        ("tcp:127.0.0.1:7000", ListenAddr::Tcp { host: "127.0.0.1".into(), port: 7000 }),
        ("tcp:localhost:0", ListenAddr::Tcp { host: "localhost".into(), port: 0 }),
        ("tcp:[::1]:80", ListenAddr::Tcp { host: "::1".into(), port: 80 }),
        ("stdio", ListenAddr::Stdio),
        ("http://127.0.0.1:8080", ListenAddr::Http { host: "127.0.0.1".into(), port: 8080 }),
        ("http://[::1]:8080", ListenAddr::Http { host: "::1".into(), port: 8080 }),
        (
            "vchan:0:/local/domain/0/data/rpc",
            ListenAddr::Vchan(VchanAddr { peer: 0, path: "/local/domain/0/data/rpc".into() }),
        ),
        ("vchan:5:data/rpc", ListenAddr::Vchan(VchanAddr { peer: 5, path: "data/rpc".into() })),
    ];
    for (text, addr) in cases {
        assert_eq!(text.parse::<ListenAddr>().as_ref(), Ok(&addr), "{text}");
        assert_eq!(addr.to_string(), text);
    }
    assert_eq!("http://h:1/".parse::<ListenAddr>(), Ok(ListenAddr::Http { host: "h".into(), port: 1 }));
    let refused = [
        (
            "",
            "expected unix:PATH, tcp:HOST:PORT, stdio, http://HOST:PORT, vchan:PEER:XS_PATH or \
             amqp://HOST:PORT[/VHOST]/SERVICE[.HOST]",
        ),
        ("amqp://127.0.0.1:5672/", "the service is missing"),
        ("vchan:0", "the Xenstore path is missing"),
        ("vchan:dom0:/x", "must be a domain id"),
        ("vchan:70000:/x", "must be a domain id"),
        ("vchan:0:", "must be non-empty"),
        ("vchan:0:/a//b", "without empty components"),
        ("unix:", "the path is missing"),
        ("tcp:127.0.0.1", "the port is missing"),
        ("tcp::80", "the host is missing"),
        ("tcp:host:http", "is not a port number"),
        ("tcp:host:70000", "is not a port number"),
        ("tcp:::1:80", "in brackets"),
        ("tcp:[::1:80", "closing `]`"),
        ("http://h:1/api", "without a path"),
        ("https://h:1", "https is not served"),
        ("exec:cat", "for clients only"),
        ("udp:1.2.3.4:5", "expected unix:PATH"),
    ];
    for (text, why) in refused {
        let error = text.parse::<ListenAddr>().expect_err(text);
        assert!(error.to_string().contains(why), "{text}: {error}");
        assert!(error.to_string().contains(&format!("`{text}`")), "{text}: {error}");
    }
    assert_eq!("exec:my-server --stdio".parse::<ConnectAddr>(), Ok(ConnectAddr::Exec("my-server --stdio".into())));
    assert_eq!("exec:x".parse::<ConnectAddr>().unwrap().to_string(), "exec:x");
    assert!("exec: ".parse::<ConnectAddr>().unwrap_err().to_string().contains("command is missing"));
    assert!("nope".parse::<ConnectAddr>().unwrap_err().to_string().contains("exec:COMMAND"));
    assert_eq!(
        "tcp:h:1".parse::<ConnectAddr>(),
        Ok(ConnectAddr::Listen(ListenAddr::Tcp { host: "h".into(), port: 1 }))
    );
}

#[tokio::test]
async fn rest_routes_need_an_http_address() {
    let server = Server::new(TestHandler::default()).with_rest_routes([RestRoute::new("GET", "/x", "test.echo")]);
    let error = server.bind(&"tcp:127.0.0.1:0".parse().unwrap()).await.unwrap_err();
    assert!(matches!(error, ServeError::RestRoutesNeedHttp(_)) && error.to_string().contains("http://"), "{error}");
}

#[tokio::test]
async fn serve_io_and_over_io_talk_in_process() {
    let (client_side, server_side) = tokio::io::duplex(4096);
    let (server_read, server_write) = tokio::io::split(server_side);
    let serving = tokio::spawn(Server::new(TestHandler::default()).serve_io(server_read, server_write));
    let (client_read, client_write) = tokio::io::split(client_side);
    let client = Client::over_io(client_read, client_write, ClientOptions::default()).await.unwrap();
    assert_eq!(guard(client.request("test.add", json!({"a": 20, "b": 22}))).await.unwrap(), json!(42));
    guard(client.notify("test.count", Value::Null)).await.unwrap();
    drop(client);
    guard(serving).await.expect("serve_io returns once the input ends");
}

#[tokio::test]
async fn one_client_multiplexes_concurrent_requests() {
    for kind in ["unix", "tcp"] {
        let server = start(kind).await;
        let client = Arc::new(Client::connect(&server.addr.clone().into(), ClientOptions::default()).await.unwrap());
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..50i64 {
            let client = client.clone();
            calls.spawn(async move {
                let ms = (50 - n) % 7;
                let slow = client.request("test.slow", json!({ "ms": ms })).await.unwrap();
                let sum = client.request("test.add", json!([n, 1000])).await.unwrap();
                (n, ms, slow, sum)
            });
        }
        let mut seen = 0;
        while let Some(result) = guard(calls.join_next()).await {
            let (n, ms, slow, sum) = result.unwrap();
            assert_eq!((slow, sum), (json!(ms), json!(n + 1000)));
            seen += 1;
        }
        assert_eq!(seen, 50);
        match client.request("test.fail", json!({"code": 1007})).await {
            Err(CallError::Rpc(error)) => {
                assert_eq!((error.code, error.message.as_str()), (1007, "it failed"));
                assert_eq!(error.data, Some(json!({"why": "asked to"})));
            }
            other => panic!("expected an RPC error, got {other:?}"),
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_request_timeout_fails_that_call_only() {
    let server = start("unix").await;
    let options = ClientOptions { request_timeout: Duration::from_millis(100), ..ClientOptions::default() };
    let client = Client::connect(&server.addr.clone().into(), options).await.unwrap();
    match client.request("test.block", Value::Null).await {
        Err(CallError::Transport(why)) => assert!(why.contains("no answer to `test.block` within"), "{why}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    server.probe.gate.add_permits(1);
    // The late answer is dropped; the connection goes on.
    assert_eq!(client.request("test.add", json!([1, 2])).await.unwrap(), json!(3));
    server.shutdown().await;
}

#[tokio::test]
async fn connect_failures_and_closed_connections_are_transport_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing: ConnectAddr = format!("unix:{}", dir.path().join("none.sock").display()).parse().unwrap();
    let error = Client::connect(&missing, ClientOptions::default()).await.err().unwrap();
    assert!(matches!(&error, CallError::Transport(why) if why.contains("cannot connect to unix:")), "{error}");

    let server = start("unix").await;
    let client = Client::connect(&server.addr.clone().into(), ClientOptions::default()).await.unwrap();
    let pending = {
        let client = &client;
        async move { client.request("test.block", Value::Null).await }
    };
    let probe = server.probe.clone();
    let shutting = async {
        while probe.blocked.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Shut down while the call runs: it still completes and its answer is delivered.
        let handle = server.server.as_ref().unwrap().handle();
        handle.shutdown();
        probe.gate.add_permits(1);
    };
    let (answer, ()) = guard(async { tokio::join!(pending, shutting) }).await;
    assert_eq!(answer.unwrap(), json!("released"), "graceful shutdown finishes running calls");
    let TestServer { server: running, .. } = server;
    guard(running.unwrap().wait()).await;
    match client.request("test.add", json!([1, 2])).await {
        Err(CallError::Transport(why)) => assert!(why.contains("closed"), "{why}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_abandons_calls_that_outlive_the_grace_period() {
    for kind in ["unix", "tcp", "http"] {
        let limits = vproto_jsonrpc::Limits { shutdown_grace: Duration::from_millis(50), ..Default::default() };
        let server = start_limited(kind, limits).await;
        let client = Client::connect(&server.addr.clone().into(), ClientOptions::default()).await.unwrap();
        let stuck = tokio::spawn(async move { client.request("test.block", Value::Null).await });
        let probe = server.probe.clone();
        guard(async {
            while probe.blocked.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        // The gate never opens: shutdown still completes, and the caller learns the call is lost.
        server.shutdown().await;
        let outcome = guard(stuck).await.unwrap();
        assert!(matches!(outcome, Err(CallError::Transport(_))), "{kind}: {outcome:?}");
    }
}
