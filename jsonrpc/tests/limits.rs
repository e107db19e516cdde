//! Limits and bad input: each violation gets a clear answer, and a fresh client's call still
//! succeeds afterwards.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vproto_jsonrpc::Limits;

fn small(limits: impl FnOnce(&mut Limits)) -> Limits {
    let mut value = Limits::default();
    limits(&mut value);
    value
}

#[tokio::test]
async fn an_oversized_line_is_answered_and_framing_recovers_on_the_same_connection() {
    let server = start_limited("unix", small(|l| l.max_message_size = 1024)).await;
    let mut raw = Raw::connect(&server.addr).await;
    // 64 KiB of a single string: far over the limit; sent in pieces, with no newline at first.
    let big = format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":1}}"#, "x".repeat(64 * 1024));
    raw.send(&big.as_bytes()[..2048]).await;
    let answer = raw.recv().await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert_eq!(answer["error"]["message"], "message too large");
    assert_eq!(answer["error"]["data"]["limit"], 1024);
    assert_eq!(answer["id"], Value::Null);
    raw.send(&big.as_bytes()[2048..]).await;
    raw.line("").await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":2}"#).await;
    assert_eq!(raw.recv().await, json!({"jsonrpc": "2.0", "result": 3, "id": 2}));
    // Exactly at the limit is fine.
    let pad = 1024 - r#"{"jsonrpc":"2.0","method":"test.echo","params":[""],"id":3}"#.len();
    let exact = format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":3}}"#, "y".repeat(pad));
    assert_eq!(exact.len(), 1024);
    raw.line(&exact).await;
    assert_eq!(raw.recv().await["id"], 3);
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_huge_line_is_discarded_without_being_buffered() {
    // 32 MiB through a server whose limit is 1 KiB: answered once, then the next line works.
    let server = start_limited("tcp", small(|l| l.max_message_size = 1024)).await;
    let mut raw = Raw::connect(&server.addr).await;
    let chunk = vec![b'['; 1024 * 1024];
    let (mut read, mut write) = match raw {
        Raw::Tcp(stream) => stream.into_inner().into_split(),
        _ => unreachable!(),
    };
    let sender = tokio::spawn(async move {
        for _ in 0..32 {
            write.write_all(&chunk).await.expect("send");
        }
        write
            .write_all(b"\n{\"jsonrpc\":\"2.0\",\"method\":\"test.add\",\"params\":[2,2],\"id\":9}\n")
            .await
            .expect("send");
        write
    });
    let mut lines = tokio::io::BufReader::new(&mut read);
    let mut first = String::new();
    guard(tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first)).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&first).unwrap()["error"]["message"], "message too large");
    let mut second = String::new();
    guard(tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut second)).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&second).unwrap()["result"], 4);
    drop(guard(sender).await.unwrap());
    raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":1}"#).await;
    assert_eq!(raw.recv().await["result"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn deep_nesting_is_refused_naming_the_limit() {
    let server = start("unix").await;
    for depth in [65usize, 200, 100_000] {
        let params = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let line = format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":{params},"id":1}}"#);
        let answer = ask(&server.addr, &line).await;
        assert_eq!(code(&answer), -32600, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("64"), "{answer}");
        assert_eq!(answer["error"]["data"]["limit"], 64);
    }
    // Unbalanced brackets deeper than the limit are refused before any parsing, too.
    let answer = ask(&server.addr, &"{\"a\":".repeat(10_000)).await;
    assert_eq!(code(&answer), -32600);
    // Within the limit is fine: the request object is level 1, params 2..=64.
    let params = format!("{}{}", "[".repeat(63), "]".repeat(63));
    let answer =
        ask(&server.addr, &format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":{params},"id":1}}"#)).await;
    assert!(answer.get("result").is_some(), "{answer}");
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_depth_limit_is_configurable() {
    let server = start_limited("unix", small(|l| l.max_depth = 3)).await;
    let ok = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.echo","params":[[1]],"id":1}"#).await;
    assert_eq!(ok["result"], json!([[1]]));
    let deep = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.echo","params":[[[1]]],"id":1}"#).await;
    assert_eq!(code(&deep), -32600);
    assert!(deep["error"]["message"].as_str().unwrap().contains('3'));
    server.shutdown().await;
}

#[tokio::test]
async fn excess_requests_in_flight_are_refused_at_once() {
    let server = start_limited("unix", small(|l| l.max_in_flight = 2)).await;
    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.block","id":1}"#).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.block","id":2}"#).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":3}"#).await;
    let refused = raw.recv().await;
    assert_eq!(refused["id"], 3);
    assert_eq!(code(&refused), -32000);
    assert_eq!(refused["error"]["message"], "too many requests in flight");
    assert_eq!(refused["error"]["data"]["limit"], 2);
    // A batch that does not fit: members beyond the budget are refused, notifications dropped.
    raw.line(
        r#"[{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":4},{"jsonrpc":"2.0","method":"test.count"}]"#,
    )
    .await;
    let batch = raw.recv().await;
    assert_eq!(batch.as_array().map(Vec::len), Some(1), "{batch}");
    assert_eq!(code(&batch[0]), -32000);
    // Other connections have their own budget.
    assert_healthy(&server.addr).await;
    server.probe.gate.add_permits(2);
    let mut released: Vec<Value> = vec![raw.recv().await["id"].clone(), raw.recv().await["id"].clone()];
    released.sort_by_key(|id| id.as_i64());
    assert_eq!(released, vec![json!(1), json!(2)]);
    // Slots are free again.
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":5}"#).await;
    assert_eq!(raw.recv().await["result"], 3);
    assert_eq!(server.probe.counted.load(Ordering::SeqCst), 0, "the refused notification never ran");
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = start_limited("tcp", small(|l| l.idle_timeout = Duration::from_millis(100))).await;
    let mut raw = Raw::connect(&server.addr).await;
    assert!(raw.closed().await, "an idle connection is closed by the server");
    // A connection with a call in flight is not idle, however long the call takes.
    let mut busy = Raw::connect(&server.addr).await;
    busy.line(r#"{"jsonrpc":"2.0","method":"test.slow","params":{"ms":400},"id":1}"#).await;
    assert_eq!(busy.recv().await["result"], 400);
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_an_error() {
    let server = start_limited("unix", small(|l| l.max_connections = 2)).await;
    let mut first = Raw::connect(&server.addr).await;
    let mut second = Raw::connect(&server.addr).await;
    // Make sure both are being served before the third arrives.
    for raw in [&mut first, &mut second] {
        raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":1}"#).await;
        assert_eq!(raw.recv().await["result"], 2);
    }
    let mut third = Raw::connect(&server.addr).await;
    let refused = third.recv().await;
    assert_eq!(code(&refused), -32000);
    assert_eq!(refused["error"]["message"], "too many connections");
    assert!(third.closed().await);
    // The served ones are unaffected.
    first.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[2,2],"id":2}"#).await;
    assert_eq!(first.recv().await["result"], 4);
    // Once one closes, a new client gets in (the slot is freed when the server sees the close).
    drop(second);
    guard(async {
        loop {
            let mut raw = Raw::connect(&server.addr).await;
            raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[3,3],"id":3}"#).await;
            if raw.recv().await.get("result") == Some(&json!(6)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn two_thousand_idle_connections_do_not_starve_a_fresh_client() {
    let server = start("tcp").await;
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        idle.push(Raw::connect(&server.addr).await);
    }
    assert_healthy(&server.addr).await;
    // The idle ones are still served.
    for (n, raw) in idle.iter_mut().enumerate().step_by(250) {
        raw.line(&format!(r#"{{"jsonrpc":"2.0","method":"test.add","params":[{n},1],"id":{n}}}"#)).await;
        assert_eq!(raw.recv().await["result"], n + 1);
    }
    drop(idle);
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_set_leaves_the_server_healthy() {
    let server = start("unix").await;
    let cases: Vec<(&str, Vec<u8>, Option<i64>)> = vec![
        ("malformed JSON", b"{\"jsonrpc\":\"2.0\",,}\n".to_vec(), Some(-32700)),
        ("invalid UTF-8", b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\",\"id\":1}\n".to_vec(), Some(-32700)),
        ("lone surrogate escape", b"{\"jsonrpc\":\"2.0\",\"method\":\"\\ud800\",\"id\":1}\n".to_vec(), Some(-32600)),
        ("NUL bytes", b"\0\0\0\n".to_vec(), Some(-32700)),
        (
            "binary garbage",
            (0u8..=255).filter(|b| *b != b'\n').collect::<Vec<u8>>().into_iter().chain([b'\n']).collect(),
            Some(-32700),
        ),
        (
            "wrong types",
            br#"{"jsonrpc":["2.0"],"method":{},"params":1,"id":[]}"#.iter().copied().chain([b'\n']).collect(),
            Some(-32600),
        ),
        ("unknown method", b"{\"jsonrpc\":\"2.0\",\"method\":\"x.y\",\"id\":1}\n".to_vec(), Some(-32601)),
        ("invalid batch", b"[1,\"2\",null,[]]\n".to_vec(), Some(-32600)),
        ("half-sent frame at EOF", b"{\"jsonrpc\":\"2.0\",\"method\":\"test.ad".to_vec(), Some(-32700)),
        (
            "complete frame without newline at EOF",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"test.add\",\"params\":[1,2],\"id\":1}".to_vec(),
            None,
        ),
        ("only whitespace", b"\n\r\n \t \n".to_vec(), None),
        ("deep nesting", [b"[".repeat(5000), b"\n".to_vec()].concat(), Some(-32600)),
        (
            "huge number",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"test.echo\",\"params\":[1e999999],\"id\":1}\n".to_vec(),
            Some(-32600),
        ),
    ];
    for (name, bytes, expected) in cases {
        let mut raw = Raw::connect(&server.addr).await;
        raw.send(&bytes).await;
        raw.finish().await;
        let answers = raw.drain().await;
        match expected {
            Some(expected) => {
                assert_eq!(answers.len(), 1, "{name}: {answers:?}");
                let answer: Value = serde_json::from_str(&answers[0]).expect("JSON answer");
                let first = if answer.is_array() { answer[0].clone() } else { answer };
                assert_eq!(code(&first), expected, "{name}: {first}");
            }
            None if name.starts_with("complete") => {
                assert_eq!(answers.len(), 1, "{name}: {answers:?}");
                assert!(answers[0].contains(r#""result":3"#), "{name}: {answers:?}");
            }
            None => assert!(answers.is_empty(), "{name}: {answers:?}"),
        }
        assert_healthy(&server.addr).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn abrupt_disconnects_drop_in_flight_answers_without_affecting_others() {
    let server = start("tcp").await;
    let mut watcher = Raw::connect(&server.addr).await;
    watcher.line(r#"{"jsonrpc":"2.0","method":"test.block","id":"w"}"#).await;
    for _ in 0..20 {
        let mut raw = Raw::connect(&server.addr).await;
        raw.line(r#"{"jsonrpc":"2.0","method":"test.block","id":1}"#).await;
        raw.send(br#"{"jsonrpc":"2.0","method":"test.ec"#).await;
        drop(raw);
    }
    // Wait until all 21 blocked calls have started, then release them all.
    guard(async {
        while server.probe.blocked.load(Ordering::SeqCst) < 21 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    server.probe.gate.add_permits(21);
    assert_eq!(watcher.recv().await["id"], "w");
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_disconnected_without_harming_others() {
    let server = start_limited("unix", small(|l| l.idle_timeout = Duration::from_millis(200))).await;
    let mut greedy = Raw::connect(&server.addr).await;
    // Ask for far more answer bytes than the socket buffers hold, and never read them.
    let request = format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":["{}"],"id":1}}"#, "z".repeat(60_000));
    let mut sent = 0;
    loop {
        let mut line = request.clone().into_bytes();
        line.push(b'\n');
        let result = match &mut greedy {
            Raw::Unix(stream) => guard(stream.get_mut().write_all(&line)).await,
            _ => unreachable!(),
        };
        if result.is_err() || sent == 400 {
            break;
        }
        sent += 1;
    }
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

/// A line sent a byte at a time (slow loris) is cut at the message timeout, counted from its
/// first byte, while another client is answered meanwhile; time between lines is not counted.
#[tokio::test]
async fn a_slow_line_is_cut_at_the_message_timeout_while_others_are_served() {
    let limit = Duration::from_millis(400);
    let server = start_limited("tcp", small(|l| l.message_timeout = limit)).await;
    // Idle for longer than the message timeout, then a whole line: answered.
    let mut patient = Raw::connect(&server.addr).await;
    tokio::time::sleep(limit * 2).await;
    patient.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#).await;
    assert_eq!(patient.recv().await["result"], 3);
    let (mut slow_read, mut slow) = tokio::net::TcpStream::connect(server.socket_addr()).await.unwrap().into_split();
    let mut fast = Raw::connect(&server.addr).await;
    let started = tokio::time::Instant::now();
    let line = br#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":1}"#;
    let mut answered = 0;
    // A byte every 50 ms: the line would take 3 s, far past the limit.
    for byte in line {
        if slow.write_all(&[*byte]).await.is_err() || started.elapsed() > limit * 4 {
            break;
        }
        fast.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[2,2],"id":2}"#).await;
        assert_eq!(fast.recv().await["result"], 4);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rest = Vec::new();
    let ended = guard(tokio::io::AsyncReadExt::read_to_end(&mut slow_read, &mut rest)).await;
    let cut_after = started.elapsed();
    assert!(ended.is_err() || rest.is_empty(), "the slow client gets no answer: {rest:?}");
    assert!(cut_after >= limit, "cut after {cut_after:?}, before the limit of {limit:?}");
    assert!(cut_after < limit * 4, "cut after {cut_after:?}, long after the limit of {limit:?}");
    assert!(answered >= 5, "the fast client was answered meanwhile ({answered} calls)");
    // The patient connection, idle again, is still served.
    patient.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[3,4],"id":2}"#).await;
    assert_eq!(patient.recv().await["result"], 7);
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}
