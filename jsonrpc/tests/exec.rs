//! `stdio` servers and `exec:` clients, with real processes: this test binary re-runs itself
//! with `--serve-stdio` as the child, so the server really reads stdin and writes stdout. The
//! child serves events too (`test.publish` publishes them), so subscriptions cross real pipes.

mod common;

use std::{
    future::Future,
    io::{Read, Write},
    panic::AssertUnwindSafe,
    pin::Pin,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use serde_json::{json, Value};
use vproto_jsonrpc::{Client, ClientOptions, ConnectAddr, ListenAddr, Server};
use vproto_support::rpc::{events::Subscription, CallError, ClientTransport};

fn exe() -> String {
    std::env::current_exe().expect("the test binary").display().to_string()
}

/// `exec:` address of this binary serving stdio.
fn child_addr() -> ConnectAddr {
    format!("exec:'{}' --serve-stdio", exe().replace('\'', r"'\''")).parse().expect("exec address")
}

async fn exec_client_talks_to_a_child_over_stdio() {
    let client = guard(Client::connect(&child_addr(), ClientOptions::default())).await.expect("spawns");
    assert_eq!(guard(client.request("test.add", json!({"a": 1, "b": 2}))).await.unwrap(), json!(3));
    let calls: Vec<_> = (0..10).map(|n| client.request("test.echo", json!([n]))).collect();
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(guard(call).await.unwrap(), json!([n]));
    }
    guard(client.notify("test.count", Value::Null)).await.unwrap();
    match guard(client.request("test.fail", json!({"code": 1003}))).await {
        Err(CallError::Rpc(error)) => assert_eq!(error.code, 1003),
        other => panic!("expected an RPC error, got {other:?}"),
    }
    match guard(client.request("rpc.nothing", Value::Null)).await {
        Err(CallError::Rpc(error)) => assert_eq!(error.code, -32601),
        other => panic!("expected -32601, got {other:?}"),
    }
}

async fn a_stdio_server_answers_until_its_input_ends() {
    let mut child = Command::new(exe())
        .arg("--serve-stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            concat!(
                r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#,
                "\n",
                r#"{"jsonrpc":"2.0","method":"test.count"}"#,
                "\n",
                "not json\n",
                "\n",
                r#"[{"jsonrpc":"2.0","method":"test.echo","params":{"x":1},"id":"b"}]"#,
                "\n",
                r#"{"jsonrpc":"2.0","method":"test.add","params":[2,2],"id":2"#,
            )
            .as_bytes(),
        )
        .unwrap();
    drop(stdin);
    let output = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        (text, child.wait().unwrap())
    });
    let (text, status) = guard(output).await.unwrap();
    assert!(status.success(), "the server exits cleanly at end of input: {status}");
    let answers: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("only JSON on stdout")).collect();
    assert_eq!(answers.len(), 4, "{text}");
    assert!(answers.contains(&json!({"jsonrpc": "2.0", "result": 3, "id": 1})), "{text}");
    assert!(answers.contains(&json!([{"jsonrpc": "2.0", "result": {"x": 1}, "id": "b"}])), "{text}");
    let errors: Vec<i64> = answers.iter().filter_map(|a| a["error"]["code"].as_i64()).collect();
    assert_eq!(errors, vec![-32700, -32700], "garbage and the half-sent frame: {text}");
}

async fn a_child_that_exits_fails_calls_with_a_transport_error() {
    for command in ["exec:exit 3", "exec:/nonexistent/vproto-server 2>/dev/null"] {
        let addr: ConnectAddr = command.parse().unwrap();
        let client = guard(Client::connect(&addr, ClientOptions::default())).await.expect("spawning sh works");
        match guard(client.request("test.add", json!([1, 2]))).await {
            Err(CallError::Transport(why)) => assert!(why.contains("closed") || why.contains("failed"), "{why}"),
            other => panic!("{command}: expected a transport error, got {other:?}"),
        }
    }
}

async fn dropping_the_client_ends_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!("exec:echo $$ > '{}'; exec '{}' --serve-stdio", pid_file.display(), exe());
    let client = guard(Client::connect(&command.parse().unwrap(), ClientOptions::default())).await.unwrap();
    assert_eq!(guard(client.request("test.add", json!([1, 1]))).await.unwrap(), json!(2));
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    assert!(alive(), "the child serves while the client lives");
    drop(client);
    guard(async {
        while alive() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn events_cross_a_real_stdio_child() {
    let client = guard(Client::connect(&child_addr(), ClientOptions::default())).await.expect("spawns");
    let subscription = Subscription { events: vec!["test.pong".into()], ..Subscription::default() };
    let mut events = guard(client.subscribe(subscription)).await.expect("subscribes");
    let published = client.request("test.publish", json!({"event": "test.ping", "count": 2})).await.unwrap();
    assert_eq!(published, json!(2));
    guard(client.request("test.publish", json!({"event": "test.pong", "from": 5, "count": 3}))).await.unwrap();
    for n in 5..8 {
        let event = guard(events.next()).await.expect("an event");
        assert_eq!((event.method.as_str(), &event.params), ("test.pong", &json!({"n": n, "thing": "newest"})));
    }
    // Nothing else came: the next event is the one published after this.
    guard(client.request("test.publish", json!({"event": "test.pong", "from": 9}))).await.unwrap();
    assert_eq!(guard(events.next()).await.expect("an event").params["n"], json!(9));
}

type Test = fn() -> Pin<Box<dyn Future<Output = ()>>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if args.iter().any(|arg| arg == "--serve-stdio") {
        runtime.block_on(async {
            let hub = test_hub();
            let handler = Publishing { inner: TestHandler::default(), sink: hub.sink() };
            let server = Server::new(handler).with_events(hub).bind(&ListenAddr::Stdio).await.expect("stdio");
            server.wait().await;
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        return;
    }
    let tests: &[(&str, Test)] = &[
        ("exec_client_talks_to_a_child_over_stdio", || Box::pin(exec_client_talks_to_a_child_over_stdio())),
        ("a_stdio_server_answers_until_its_input_ends", || Box::pin(a_stdio_server_answers_until_its_input_ends())),
        ("a_child_that_exits_fails_calls_with_a_transport_error", || {
            Box::pin(a_child_that_exits_fails_calls_with_a_transport_error())
        }),
        ("dropping_the_client_ends_the_child", || Box::pin(dropping_the_client_ends_the_child())),
        ("events_cross_a_real_stdio_child", || Box::pin(events_cross_a_real_stdio_child())),
    ];
    if args.iter().any(|arg| arg == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in selected {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(test())));
        if outcome.is_ok() {
            passed += 1;
            println!("test {name} ... ok");
        } else {
            failed += 1;
            println!("test {name} ... FAILED");
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
