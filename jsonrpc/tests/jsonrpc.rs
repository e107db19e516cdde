//! Every JSON-RPC 2.0 rule, checked on the wire over a real Unix socket.

mod common;

use common::*;
use serde_json::{json, Value};

fn by_id(answers: &[Value], id: Value) -> &Value {
    answers.iter().find(|answer| answer["id"] == id).unwrap_or_else(|| panic!("no answer with id {id} in {answers:?}"))
}

#[tokio::test]
async fn a_request_gets_its_result_with_jsonrpc_and_id() {
    let server = start("unix").await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.add","params":{"a":1,"b":2},"id":7}"#).await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "result": 3, "id": 7}));
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.add","params":[40,2],"id":"s"}"#).await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "result": 42, "id": "s"}));
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.echo","id":1}"#).await;
    assert_eq!(answer["result"], Value::Null, "no params reach the handler as Params::None");
    server.shutdown().await;
}

#[tokio::test]
async fn ids_are_echoed_exactly_as_sent() {
    let server = start("unix").await;
    for id in ["0", "-5", "1.5", "1.50", "2e3", "1e400", "123456789012345678901234567890", r#""x\"y""#, r#""""#, "null"]
    {
        let mut raw = Raw::connect(&server.addr).await;
        raw.line(&format!(r#"{{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":{id}}}"#)).await;
        let line = raw.read_line().await.expect("an answer");
        assert!(line.ends_with(&format!(r#","id":{id}}}"#)), "id {id} echoed byte for byte: {line}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn notifications_are_never_answered_even_when_they_fail() {
    let server = start("unix").await;
    let answers = exchange(
        &server.addr,
        &[
            r#"{"jsonrpc":"2.0","method":"test.count"}"#,
            r#"{"jsonrpc":"2.0","method":"test.fail","params":{"code":1002}}"#,
            r#"{"jsonrpc":"2.0","method":"no.such.method"}"#,
            r#"{"jsonrpc":"2.0","method":"test.add","params":{"a":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"test.panic"}"#,
            r#"{"jsonrpc":"2.0","method":"rpc.unknown"}"#,
            r#"{"jsonrpc":"2.0","method":"test.echo","params":["last"],"id":1}"#,
        ],
    )
    .await;
    assert_eq!(answers, vec![json!({"jsonrpc": "2.0", "result": ["last"], "id": 1})]);
    assert_eq!(server.probe.counted.load(std::sync::atomic::Ordering::SeqCst), 1, "the notification ran");
    server.shutdown().await;
}

#[tokio::test]
async fn a_null_id_is_a_request_and_is_answered() {
    let server = start("unix").await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":null}"#).await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "result": 2, "id": null}));
    server.shutdown().await;
}

#[tokio::test]
async fn parse_errors_get_32700_with_null_id() {
    let server = start("unix").await;
    for bad in [r#"{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]"#, "{", "nul", r#"{"a":1}}"#, "\u{7f}"] {
        let answer = ask(&server.addr, bad).await;
        assert_eq!(code(&answer), -32700, "{bad}: {answer}");
        assert_eq!(answer["id"], Value::Null);
        assert_eq!(answer["jsonrpc"], "2.0");
    }
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_32600() {
    let server = start("unix").await;
    let cases = [
        (r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#, Value::Null),
        (r#"{"jsonrpc":"1.0","method":"test.echo","id":1}"#, json!(1)),
        (r#"{"method":"test.echo","id":2}"#, json!(2)),
        (r#"{"jsonrpc":2.0,"method":"test.echo","id":3}"#, json!(3)),
        (r#"{"jsonrpc":"2.0","id":4}"#, json!(4)),
        (r#"{"jsonrpc":"2.0","method":null,"id":5}"#, json!(5)),
        (r#"{"jsonrpc":"2.0","method":"test.echo","params":"p","id":6}"#, json!(6)),
        (r#"{"jsonrpc":"2.0","method":"test.echo","params":7,"id":7}"#, json!(7)),
        (r#"{"jsonrpc":"2.0","method":"test.echo","params":null,"id":8}"#, json!(8)),
        (r#"{"jsonrpc":"2.0","method":"test.echo","id":{"a":1}}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","method":"test.echo","id":[1]}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","method":"test.echo","id":true}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","method":"a","method":"b","id":9}"#, Value::Null),
        ("1", Value::Null),
        (r#""a string""#, Value::Null),
        ("null", Value::Null),
    ];
    for (bad, id) in cases {
        let answer = ask(&server.addr, bad).await;
        assert_eq!(code(&answer), -32600, "{bad}: {answer}");
        assert_eq!(answer["id"], id, "{bad}: {answer}");
        assert!(answer["error"]["message"].is_string() && answer["error"].get("data").is_some(), "{answer}");
    }
    assert_healthy(&server.addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_get_32601() {
    let server = start("unix").await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"no.such","id":1}"#).await;
    assert_eq!(code(&answer), -32601);
    server.shutdown().await;
}

#[tokio::test]
async fn rpc_methods_are_reserved_except_those_registered() {
    let server = start("unix").await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"rpc.discover","id":1}"#).await;
    assert_eq!(answer["result"]["openrpc"], "1.3.2", "{answer}");
    for name in ["rpc.other", "rpc.", "rpc.discover2"] {
        let answer = ask(&server.addr, &format!(r#"{{"jsonrpc":"2.0","method":"{name}","id":1}}"#)).await;
        assert_eq!(code(&answer), -32601, "{name}: {answer}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn handler_errors_pass_through_with_code_message_and_data() {
    let server = start("unix").await;
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.fail","params":{"code":1234},"id":1}"#).await;
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "error": {"code": 1234, "message": "it failed", "data": {"why": "asked to"}}, "id": 1})
    );
    let answer = ask(&server.addr, r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2,3],"id":2}"#).await;
    assert_eq!(code(&answer), -32602, "too many positional params: {answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_gets_32603_and_the_connection_lives_on() {
    let server = start("unix").await;
    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.panic","id":1}"#).await;
    let answer = raw.recv().await;
    assert_eq!(code(&answer), -32603);
    assert_eq!(answer["id"], 1);
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[2,2],"id":2}"#).await;
    assert_eq!(raw.recv().await["result"], 4);
    server.shutdown().await;
}

#[tokio::test]
async fn a_mixed_batch_answers_requests_and_invalid_members_only() {
    let server = start("unix").await;
    let batch = r#"[
        {"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":"1"},
        {"jsonrpc":"2.0","method":"test.count","params":[7]},
        {"jsonrpc":"2.0","method":"test.add","params":[42,23],"id":"2"},
        {"foo":"boo"},
        {"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},
        {"jsonrpc":"2.0","method":"test.fail","id":"9"},
        {"jsonrpc":"2.0","method":"test.fail"}
    ]"#
    .replace('\n', "");
    let answers = exchange(&server.addr, &[&batch]).await;
    assert_eq!(answers.len(), 1, "one line for the batch: {answers:?}");
    let items = answers[0].as_array().expect("an array").clone();
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(by_id(&items, json!("1"))["result"], 3);
    assert_eq!(by_id(&items, json!("2"))["result"], 65);
    assert_eq!(code(by_id(&items, json!("5"))), -32601);
    assert_eq!(code(by_id(&items, json!("9"))), 1001);
    assert_eq!(code(by_id(&items, Value::Null)), -32600);
    server.shutdown().await;
}

#[tokio::test]
async fn an_all_notification_batch_gets_no_answer() {
    let server = start("unix").await;
    let answers = exchange(
        &server.addr,
        &[
            r#"[{"jsonrpc":"2.0","method":"test.count","params":[1,2,4]},{"jsonrpc":"2.0","method":"test.fail"}]"#,
            r#"{"jsonrpc":"2.0","method":"test.echo","params":["after"],"id":1}"#,
        ],
    )
    .await;
    assert_eq!(answers, vec![json!({"jsonrpc": "2.0", "result": ["after"], "id": 1})]);
    server.shutdown().await;
}

#[tokio::test]
async fn an_empty_batch_gets_one_invalid_request_object() {
    let server = start("unix").await;
    let answer = ask(&server.addr, "[]").await;
    assert!(answer.is_object(), "not an array: {answer}");
    assert_eq!(code(&answer), -32600);
    assert_eq!(answer["id"], Value::Null);
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_batch_members_each_get_an_error() {
    let server = start("unix").await;
    let answer = ask(&server.addr, "[1,2,3]").await;
    let items = answer.as_array().expect("an array");
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|item| code(item) == -32600 && item["id"].is_null()), "{answer}");
    let answer = ask(&server.addr, "[1]").await;
    assert_eq!(answer.as_array().map(Vec::len), Some(1));
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_with_invalid_json_is_one_parse_error() {
    let server = start("unix").await;
    let answer = ask(
        &server.addr,
        r#"[{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":"1"},{"jsonrpc":"2.0","method""#,
    )
    .await;
    assert!(answer.is_object());
    assert_eq!(code(&answer), -32700);
    server.shutdown().await;
}

#[tokio::test]
async fn batch_members_run_concurrently() {
    let server = start("unix").await;
    // Each test.pair waits for the other: run one after the other, they would never finish.
    let answer = ask(
        &server.addr,
        r#"[{"jsonrpc":"2.0","method":"test.pair","id":1},{"jsonrpc":"2.0","method":"test.pair","id":2}]"#,
    )
    .await;
    assert_eq!(answer.as_array().map(Vec::len), Some(2));
    assert!(answer.as_array().unwrap().iter().all(|item| item["result"] == "met"));
    server.shutdown().await;
}

#[tokio::test]
async fn requests_on_one_connection_run_concurrently_and_answer_out_of_order() {
    let server = start("unix").await;
    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.block","id":"blocked"}"#).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":"quick"}"#).await;
    assert_eq!(raw.recv().await["id"], "quick", "the second request does not wait for the first");
    server.probe.gate.add_permits(1);
    assert_eq!(raw.recv().await, json!({"jsonrpc": "2.0", "result": "released", "id": "blocked"}));
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_even_when_a_partial_line_follows() {
    // Two whole requests and the start of a third in one write: both answers must arrive
    // although the rest of the third never comes until they have been read.
    let server = start("tcp").await;
    let mut raw = Raw::connect(&server.addr).await;
    raw.send(
        concat!(
            r#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"test.add","params":[3,4],"id":2}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"test.add","#
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(guard(raw.recv()).await, json!({"jsonrpc": "2.0", "result": 3, "id": 1}));
    assert_eq!(guard(raw.recv()).await, json!({"jsonrpc": "2.0", "result": 7, "id": 2}));
    raw.line(r#""params":[5,6],"id":3}"#).await;
    assert_eq!(guard(raw.recv()).await, json!({"jsonrpc": "2.0", "result": 11, "id": 3}));
    server.shutdown().await;
}

#[tokio::test]
async fn a_waiting_call_is_answered_while_quick_calls_keep_coming() {
    let server = start("unix").await;
    let mut raw = Raw::connect(&server.addr).await;
    raw.line(r#"{"jsonrpc":"2.0","method":"test.block","id":"blocked"}"#).await;
    server.probe.gate.add_permits(1);
    let mut answered_blocked = false;
    for id in 0..200 {
        raw.line(&format!(r#"{{"jsonrpc":"2.0","method":"test.add","params":[{id},1],"id":{id}}}"#)).await;
        let answer = guard(raw.recv()).await;
        if answer["id"] == "blocked" {
            assert_eq!(answer["result"], "released");
            answered_blocked = true;
            assert_eq!(guard(raw.recv()).await["id"], id);
        } else {
            assert_eq!(answer["id"], id);
        }
    }
    assert!(answered_blocked, "the released call was answered among the quick ones");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_members_are_ignored_and_whitespace_is_allowed() {
    let server = start("unix").await;
    let answer = ask(
        &server.addr,
        " \t{ \"jsonrpc\" : \"2.0\", \"x-trace\": [1,{}], \"method\":\"test.add\", \"params\":[1,2], \"id\":1 }\r",
    )
    .await;
    assert_eq!(answer["result"], 3);
    server.shutdown().await;
}
