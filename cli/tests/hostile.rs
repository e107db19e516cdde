//! The hostile corpus (issue #18; tests/hostile/README.md): every input under
//! `tests/hostile/PARSER/*.jsonl` is fed to its parser, its outcome must be the one the file
//! expects (a JSON-RPC error's code and message, a decoder error's kind and message naming
//! what, where and why, the replies, or a close), and after EACH input the server (or decoder)
//! must still answer a well-formed request, on a new connection and on one opened before.
//!
//! Servers are real: `vproto serve conductor` on a Unix socket (JSON-RPC lines) and on
//! `http://`, `vproto xenstored` (the Xenstore wire, server side; the client side reads what a
//! lying peer answers, and its health is a read from the real xenstored). The os-vif
//! envelopes, the data tree, the vchan ring and the config files go to the library as
//! `vproto convert`, a host reading a guest's tree, the channel and `vproto serve --config` call it.
//!
//! The test only reads the files. `cargo xtask hostile --regenerate` (this test with
//! `VPROTO_HOSTILE_REGENERATE=1`) writes the generator's inputs (`hostile/generate.rs`) with the
//! outcomes they have now, keeping `added.jsonl`'s inputs: review the diff before committing.

mod hostile {
    pub mod corpus;
    pub mod generate;
    pub mod ring;
}

use std::{
    collections::BTreeMap,
    fmt::Debug,
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hostile::{
    corpus::{self, escape, Case},
    generate::{self, repo_text},
    ring::{ring_script, ring_still_carries, RingOutcome},
};
use serde_json::{json, value::RawValue, Value};
use vproto_test_support::Process;

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
/// Longest wait for a server to answer and close after the input's end.
const PATIENCE: Duration = Duration::from_secs(10);
/// Longest message prefix an expected outcome keeps.
const MESSAGE_KEPT: usize = 160;

fn regenerating() -> bool {
    std::env::var("VPROTO_HOSTILE_REGENERATE").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// Whether `actual` is what `expected` says: equal, but a `message` only has to contain the
/// expected one.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            want.len() == got.len()
                && want.iter().all(|(key, want)| match (key.as_str(), want, got.get(key)) {
                    ("message", Value::String(want), Some(Value::String(got))) => got.contains(want.as_str()),
                    (_, want, Some(got)) => matches(want, got),
                    _ => false,
                })
        }
        (Value::Array(want), Value::Array(got)) => {
            want.len() == got.len() && want.iter().zip(got).all(|(want, got)| matches(want, got))
        }
        _ => expected == actual,
    }
}

/// An outcome as the corpus keeps it: messages cut to their first `MESSAGE_KEPT` characters.
fn kept(outcome: Value) -> Value {
    match outcome {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("message", Value::String(text)) => (key, Value::String(text.chars().take(MESSAGE_KEPT).collect())),
                    (_, value) => (key, kept(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(kept).collect()),
        other => other,
    }
}

/// An error as an outcome: its kind (the variant's name) and its message.
fn refusal<E: Debug + std::fmt::Display>(error: &E) -> Value {
    let debug = format!("{error:?}");
    let kind: String = debug.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    json!({"kind": kind, "message": error.to_string()})
}

/// One parser as the corpus drives it.
trait Target {
    /// Feeds one input to its entry point and says what happened.
    fn feed(&mut self, case: &Case) -> Value;
    /// What must hold of any outcome, whatever the file expects (a bug otherwise).
    fn sound(&self, outcome: &Value) -> Result<(), String>;
    /// Panics unless the server (or decoder) still answers a well-formed request.
    fn healthy(&mut self, after: &str);
}

/// Runs the corpus of `parser` against `target` (regenerating: writes it from the generator
/// with the outcomes found, after checking that each is sound and the target stays healthy).
fn run_corpus(parser: &str, target: &mut dyn Target) {
    let started = Instant::now();
    let dir = corpus::dir(parser);
    let mut files =
        if regenerating() { corpus::regenerated(&dir, generate::generate(parser)) } else { corpus::read(&dir) };
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut count = 0;
    for (file, cases) in &mut files {
        for case in cases {
            count += 1;
            if !names.insert(case.name.clone()) {
                failures.push(format!("{file}.jsonl: two inputs named {}", case.name));
            }
            let outcome = target.feed(case);
            if let Err(why) = target.sound(&outcome) {
                failures.push(format!("{file}.jsonl {}: {why}: {outcome}", case.name));
            }
            match &case.expect {
                _ if regenerating() => case.expect = Some(kept(outcome)),
                Some(expected) if matches(expected, &outcome) => {}
                Some(expected) => {
                    failures.push(format!("{file}.jsonl {}: expected {expected}, got {outcome}", case.name))
                }
                None => {
                    failures.push(format!("{file}.jsonl {}: no `expect` (regenerate to record {outcome})", case.name))
                }
            }
            target.healthy(&case.name);
        }
    }
    if regenerating() {
        corpus::write(&dir, &files);
    }
    println!(
        "hostile corpus: {parser}: {count} inputs in {} files, {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(count > 0, "{} holds no input", dir.display());
    assert!(failures.is_empty(), "{} of {count} inputs of {parser} fail:\n{}", failures.len(), failures.join("\n"));
}

/// Writes `input` to a stream, ends the writing half and reads everything until the peer closes.
fn exchange<S: Read + Write>(mut stream: S, input: &[u8], shutdown: impl FnOnce(&S)) -> Vec<u8> {
    // The server may close before taking everything (that is an outcome too).
    let _ = stream.write_all(input);
    shutdown(&stream);
    let mut output = Vec::new();
    match stream.read_to_end(&mut output) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server neither answered nor closed within {PATIENCE:?} ({e}); got {output:?}"),
    }
    output
}

/// A process serving until dropped, and the address it printed.
fn start(dir: &Path, name: &str, args: &[&str]) -> (Process, String) {
    let mut command = std::process::Command::new(VPROTO);
    command.args(args).env("VPROTO_LOG", "warn");
    Process::serving(command, dir.join(format!("{name}.log")), Duration::from_secs(30))
}

/// Panics if a server logged a panic (a connection task's panic does not end the process).
fn no_panic_logged(server: &Process) {
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A JSON-RPC answer as an outcome: the id as written (the server echoes it byte for byte, so
/// `1e400` too) and an error's code, message and data or `"result": true`; a batch's in order.
fn answer(raw: &RawValue) -> Value {
    if raw.get().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).expect("an array of answers");
        return json!({"batch": items.into_iter().map(answer).collect::<Vec<_>>()});
    }
    let Ok(members) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) else {
        return json!({"unexpected": raw.get()});
    };
    let mut outcome = json!({"id": members.get("id").map(|id| id.get())});
    let error = members.get("error").map(|error| serde_json::from_str::<Value>(error.get()));
    match (error, members.contains_key("result")) {
        (Some(Ok(error)), false) => {
            outcome["code"] = error["code"].clone();
            outcome["message"] = error["message"].clone();
            if let Some(data) = error.get("data") {
                outcome["data"] = data.clone();
            }
        }
        (None, true) => outcome["result"] = json!(true),
        _ => return json!({"unexpected": raw.get()}),
    }
    outcome
}

/// What holds of any JSON-RPC outcome: answers, not internal errors (a hostile input is the
/// caller's fault, so -32603 would be a server bug), each with a message.
fn sound_answers(outcome: &Value) -> Result<(), String> {
    let answers: Vec<&Value> = match outcome {
        Value::Array(answers) => answers
            .iter()
            .flat_map(|answer| match answer.get("batch") {
                Some(Value::Array(items)) => items.iter().collect(),
                _ => vec![answer],
            })
            .collect(),
        _ => vec![],
    };
    for answer in answers {
        if answer.get("unexpected").is_some() || answer.get("not_json").is_some() {
            return Err("not a JSON-RPC answer".into());
        }
        if answer["code"] == -32603 {
            return Err("an internal error answers a bad input".into());
        }
        if answer.get("code").is_some() && answer["message"].as_str().is_none_or(str::is_empty) {
            return Err("an error without a message".into());
        }
    }
    Ok(())
}

/// `vproto serve conductor` on a Unix socket: lines.
struct JsonRpcLines {
    socket: PathBuf,
    /// A connection opened before the first input, which must stay served throughout.
    kept: BufReader<UnixStream>,
}

impl JsonRpcLines {
    fn connect(socket: &Path) -> UnixStream {
        let stream = UnixStream::connect(socket).expect("the server accepts");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }
}

/// Sends a well-formed call on `stream` and checks its answer.
fn list_agents(stream: &mut BufReader<UnixStream>, after: &str) {
    stream
        .get_mut()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"healthy\",\"method\":\"conductor.list_agents\"}\n")
        .unwrap_or_else(|e| panic!("after {after}: cannot send: {e}"));
    let mut line = String::new();
    stream.read_line(&mut line).unwrap_or_else(|e| panic!("after {after}: no answer: {e}"));
    let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("after {after}: {e}: {line:?}"));
    assert!(value["result"]["agents"].is_array() && value["id"] == "healthy", "after {after}: {line}");
}

impl Target for JsonRpcLines {
    fn feed(&mut self, case: &Case) -> Value {
        let output = exchange(Self::connect(&self.socket), &case.input, |s| {
            let _ = s.shutdown(Shutdown::Write);
        });
        let answers: Vec<Value> = output
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| match serde_json::from_slice::<&RawValue>(line) {
                Ok(raw) => answer(raw),
                Err(_) => json!({"not_json": escape(line)}),
            })
            .collect();
        if answers.is_empty() {
            json!("close")
        } else {
            Value::Array(answers)
        }
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        sound_answers(outcome)
    }

    fn healthy(&mut self, after: &str) {
        list_agents(&mut BufReader::new(Self::connect(&self.socket)), after);
        list_agents(&mut self.kept, after);
    }
}

#[test]
fn jsonrpc_lines_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("conductor.sock");
    let listen = format!("unix:{}", socket.display());
    let (server, _) = start(dir.path(), "conductor", &["serve", "conductor", "--listen", &listen, "--state", "memory"]);
    let kept = BufReader::new(JsonRpcLines::connect(&socket));
    run_corpus("jsonrpc", &mut JsonRpcLines { socket, kept });
    no_panic_logged(&server);
}

/// `vproto serve conductor` on `http://`.
struct Http {
    address: String,
}

impl Http {
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.address).expect("the server accepts");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }
}

/// An HTTP response as an outcome: its status and, for a JSON-RPC error body, its code and
/// message.
fn http_outcome(output: &[u8]) -> Value {
    if output.is_empty() {
        return json!("close");
    }
    let text = String::from_utf8_lossy(output);
    let status =
        text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else { return json!({"not_http": escape(&output[..output.len().min(200)])}) };
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("");
    match serde_json::from_str::<Value>(body) {
        Ok(value) if value.get("error").is_some() || value.is_array() => {
            let raw: &RawValue = serde_json::from_str(body).expect("JSON already parsed");
            json!({"status": status, "body": answer(raw)})
        }
        Ok(value) if value.get("code").is_some() => {
            json!({"status": status, "body": {"code": value["code"], "message": value["message"]}})
        }
        _ => json!({"status": status}),
    }
}

/// Reads one HTTP response (its head, then `content-length` bytes of body) or until the
/// server closes; `None` if neither comes within `PATIENCE`.
fn read_response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut output = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        if let Some(end) = output.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&output[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok());
            if length.is_some_and(|length| output.len() >= end + 4 + length) {
                return Some(output);
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Some(output),
            Ok(read) => output.extend_from_slice(&buffer[..read]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(output),
            Err(_) => return None,
        }
    }
}

impl Target for Http {
    /// A request is sent and its response read, the connection left open (hyper drops a
    /// response when the client half-closes while the handler runs); an input with `op`
    /// `eof` (a request cut short) is followed by the end of the client's writing half, and
    /// the outcome is what the server says then.
    fn feed(&mut self, case: &Case) -> Value {
        let mut stream = self.connect();
        let _ = stream.write_all(&case.input);
        if case.op.as_deref() == Some("eof") {
            let _ = stream.shutdown(Shutdown::Write);
        }
        match read_response(&mut stream) {
            Some(output) => http_outcome(&output),
            None => json!("no answer"),
        }
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        if *outcome == json!("no answer") {
            return Err(format!("neither an answer nor a close within {PATIENCE:?}"));
        }
        if outcome.get("not_http").is_some() {
            return Err("not an HTTP response".into());
        }
        if outcome["status"].as_u64().is_some_and(|status| status >= 500) {
            return Err("a server error answers a bad request".into());
        }
        match outcome.get("body") {
            Some(body) => sound_answers(&json!([body])),
            None => Ok(()),
        }
    }

    fn healthy(&mut self, after: &str) {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents"}"#;
        let request = format!(
            "POST /jsonrpc HTTP/1.1\r\nHost: vproto\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = self.connect();
        stream.write_all(request.as_bytes()).unwrap();
        let mut output = String::new();
        stream.read_to_string(&mut output).unwrap_or_else(|e| panic!("after {after}: {e}"));
        assert!(output.starts_with("HTTP/1.1 200") && output.contains("\"agents\""), "after {after}: {output}");
    }
}

#[test]
fn jsonrpc_http_over_a_real_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = start(
        dir.path(),
        "conductor",
        &["serve", "conductor", "--listen", "http://127.0.0.1:0", "--state", "memory", "--insecure"],
    );
    let address = address.trim_start_matches("http://").trim_end_matches('/').to_string();
    run_corpus("http", &mut Http { address });
    no_panic_logged(&server);
}

/// A running `vproto xenstored` and its socket.
fn xenstored(dir: &Path) -> (Process, PathBuf) {
    let socket = dir.join("xs.sock");
    let (server, _) = start(dir, "xenstored", &["xenstored", "--socket", socket.to_str().unwrap()]);
    (server, socket)
}

/// Xenstore frames as outcomes: each reply's type and payload.
fn xenstore_replies(mut output: &[u8]) -> Vec<Value> {
    let mut replies = Vec::new();
    while output.len() >= 16 {
        let word = |at: usize| u32::from_le_bytes(output[at..at + 4].try_into().unwrap());
        let kind = vproto_xenstore::wire::MsgType::from_u32(word(0)).map(|kind| kind.name().to_string());
        let len = (word(12) as usize).min(output.len() - 16);
        replies.push(json!({
            "type": kind.unwrap_or_else(|| word(0).to_string()),
            "req_id": word(4),
            "payload": escape(&output[16..16 + len])
        }));
        output = &output[16 + len..];
    }
    if !output.is_empty() {
        replies.push(json!({"trailing": escape(output)}));
    }
    replies
}

/// A READ of `/` on `stream`, answered.
fn xenstore_read_root(stream: &mut UnixStream, after: &str) {
    use vproto_xenstore::wire::{Message, MsgType};
    stream
        .write_all(&Message::new(MsgType::Read, 7, 0, b"/\0".to_vec()).encode())
        .unwrap_or_else(|e| panic!("after {after}: cannot send: {e}"));
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).unwrap_or_else(|e| panic!("after {after}: no reply: {e}"));
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    assert_eq!((word(0), word(4)), (MsgType::Read.as_u32(), 7), "after {after}: not the read's reply");
    let mut payload = vec![0; word(12) as usize];
    stream.read_exact(&mut payload).unwrap_or_else(|e| panic!("after {after}: a short reply: {e}"));
}

fn xenstore_connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).expect("xenstored accepts");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// `vproto xenstored`, fed requests.
struct XenstoreServer {
    socket: PathBuf,
    kept: UnixStream,
}

impl Target for XenstoreServer {
    fn feed(&mut self, case: &Case) -> Value {
        let replies = xenstore_replies(&exchange(xenstore_connect(&self.socket), &case.input, |s| {
            let _ = s.shutdown(Shutdown::Write);
        }));
        if replies.is_empty() {
            json!("close")
        } else {
            Value::Array(replies)
        }
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        for reply in outcome.as_array().into_iter().flatten() {
            if reply.get("trailing").is_some() {
                return Err("a reply cut short".into());
            }
        }
        Ok(())
    }

    fn healthy(&mut self, after: &str) {
        xenstore_read_root(&mut xenstore_connect(&self.socket), after);
        xenstore_read_root(&mut self.kept, after);
    }
}

#[test]
fn xenstore_server_side_over_a_real_xenstored() {
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = xenstored(dir.path());
    let kept = xenstore_connect(&socket);
    run_corpus("xenstore_server", &mut XenstoreServer { socket, kept });
    no_panic_logged(&server);
}

/// The client library against a peer that answers its request with the input, then closes.
struct XenstoreClient {
    runtime: tokio::runtime::Runtime,
    socket: PathBuf,
}

impl Target for XenstoreClient {
    fn feed(&mut self, case: &Case) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use vproto_xenstore::{Xenstore, XenstoreAddr};
        let input = case.input.clone();
        let op = case.op.clone().unwrap_or_else(|| panic!("{}: no `op` (read, directory, get_perms)", case.name));
        self.runtime.block_on(async move {
            let (ours, mut theirs) = tokio::io::duplex(1 << 20);
            let xs = Xenstore::from_stream(ours, XenstoreAddr::Unix("hostile-peer".into()));
            let call = tokio::spawn(async move {
                match op.as_str() {
                    "read" => xs.read("/x").await.map(|value| json!({"value": escape(&value)})),
                    "directory" => xs.directory("/x").await.map(|names| json!({"names": names})),
                    "get_perms" => xs
                        .get_perms("/x")
                        .await
                        .map(|perms| json!({"perms": perms.iter().map(ToString::to_string).collect::<Vec<_>>()})),
                    other => panic!("no client operation {other}"),
                }
            });
            let mut header = [0u8; 16];
            theirs.read_exact(&mut header).await.expect("the client sends its request");
            let len = u32::from_le_bytes(header[12..16].try_into().unwrap()) as usize;
            let mut payload = vec![0; len];
            theirs.read_exact(&mut payload).await.expect("the request's payload");
            let _ = theirs.write_all(&input).await;
            let _ = theirs.shutdown().await;
            let result = tokio::time::timeout(PATIENCE, call).await.expect("the client gives up when the peer closes");
            match result.expect("the client call does not panic") {
                Ok(value) => value,
                Err(error) => refusal(&error),
            }
        })
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        sound_refusal(outcome)
    }

    fn healthy(&mut self, after: &str) {
        use vproto_xenstore::{Xenstore, XenstoreAddr};
        let socket = self.socket.clone();
        self.runtime.block_on(async move {
            let xs =
                Xenstore::connect(&XenstoreAddr::Unix(socket)).await.unwrap_or_else(|e| panic!("after {after}: {e}"));
            xs.read("/").await.unwrap_or_else(|e| panic!("after {after}: {e}"));
        });
    }
}

#[test]
fn xenstore_client_side_against_a_lying_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = xenstored(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    run_corpus("xenstore_client", &mut XenstoreClient { runtime, socket });
    no_panic_logged(&server);
}

/// What holds of a library's refusal: it has a kind and a message.
fn sound_refusal(outcome: &Value) -> Result<(), String> {
    match outcome.get("message") {
        Some(Value::String(message))
            if !message.is_empty() && outcome["kind"].as_str().is_some_and(|k| !k.is_empty()) =>
        {
            Ok(())
        }
        Some(_) => Err("a refusal without a kind or message".into()),
        None => Ok(()),
    }
}

/// A library decoder: the outcome is `accepted` or the refusal; healthy while a well-formed
/// input is still accepted.
struct Library<F: FnMut(&Case) -> Result<(), Value>, H: FnMut() -> Result<(), Value>> {
    feed: F,
    healthy: H,
}

impl<F: FnMut(&Case) -> Result<(), Value>, H: FnMut() -> Result<(), Value>> Target for Library<F, H> {
    fn feed(&mut self, case: &Case) -> Value {
        match (self.feed)(case) {
            Ok(()) => json!("accepted"),
            Err(refusal) => refusal,
        }
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        sound_refusal(outcome)
    }

    fn healthy(&mut self, after: &str) {
        (self.healthy)().unwrap_or_else(|e| panic!("after {after}: a well-formed input is refused: {e}"));
    }
}

/// As `vproto convert` reads its input (JSON, then the envelope at the version it claims,
/// converted to the object's current version).
fn convert(input: &[u8]) -> Result<(), Value> {
    let value: Value = serde_json::from_slice(input)
        .map_err(|e| json!({"kind": format!("Json{:?}", e.classify()), "message": e.to_string()}))?;
    vproto_api::convert_primitive(&value, None, None).map(drop).map_err(|e| refusal(&e))
}

/// Runs the corpus of a library decoder `decode`, healthy while the repository file `good`
/// still decodes.
fn run_decoder(parser: &str, decode: fn(&[u8]) -> Result<(), Value>, good: &str) {
    let good = repo_text(good);
    run_corpus(parser, &mut Library { feed: |case: &Case| decode(&case.input), healthy: || decode(good.as_bytes()) });
}

#[test]
fn osvif_envelopes_at_every_version() {
    run_decoder("osvif_envelope", convert, generate::ENVELOPE);
}

/// Entries as a host reads a guest's tree: `path=value` lines.
fn decode_tree(input: &[u8]) -> Result<(), Value> {
    let text = std::str::from_utf8(input).expect("tree inputs are UTF-8 (Xenstore values are read as text)");
    let entries: BTreeMap<String, String> = text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .map(|(path, value)| (path.to_string(), value.to_string()))
        .collect();
    vproto_support::tree::decode::<vproto_api::GuestInfo>(&vproto_api::layouts::GUEST_V1, &entries)
        .map(drop)
        .map_err(|e| refusal(&e))
}

#[test]
fn data_tree_decoder() {
    run_decoder("data_tree", decode_tree, generate::DATA_TREE);
}

/// The vchan ring driven by a script (`hostile::ring`): after each input, the page it used (or
/// a fresh one) must carry bytes both ways once its indices agree again.
#[derive(Default)]
struct Ring {
    page: Option<vproto_vchan::LoopbackPage>,
}

impl Target for Ring {
    fn feed(&mut self, case: &Case) -> Value {
        let (outcome, page) = ring_script(&case.input);
        self.page = page;
        match outcome {
            RingOutcome::Accepted => json!("accepted"),
            RingOutcome::Geometry(error) => refusal(&error),
            RingOutcome::Corrupt(error) => refusal(&error),
        }
    }

    fn sound(&self, outcome: &Value) -> Result<(), String> {
        sound_refusal(outcome)
    }

    fn healthy(&mut self, after: &str) {
        ring_still_carries(self.page.take()).unwrap_or_else(|e| panic!("after {after}: {e}"));
    }
}

#[test]
fn vchan_ring_against_lying_indices() {
    run_corpus("vchan_ring", &mut Ring::default());
}

#[test]
fn config_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let load = |case: &Case| -> Result<(), Value> {
        std::fs::write(&file, &case.input).unwrap();
        let shown = file.display().to_string();
        let hide = |error: vproto_services::config::ConfigError| {
            let mut outcome = refusal(&error);
            outcome["message"] = json!(error.to_string().replace(&shown, "CONFIG"));
            outcome
        };
        match case.op.as_deref() {
            Some("driver") => vproto_services::driver::DriverConfig::load(&file).map(drop).map_err(hide),
            Some("network") => vproto_services::network::NetworkHostConfig::load(&file).map(drop).map_err(hide),
            other => panic!("{}: no config parser {other:?} (driver, network)", case.name),
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (driver, network) = (root.join(generate::DRIVER_CONFIG), root.join(generate::NETWORK_CONFIG));
    let healthy = || {
        vproto_services::driver::DriverConfig::load(&driver).map_err(|e| refusal(&e))?;
        vproto_services::network::NetworkHostConfig::load(&network).map(drop).map_err(|e| refusal(&e))
    };
    run_corpus("config", &mut Library { feed: load, healthy });
}
