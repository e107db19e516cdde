//! The hostile corpus (issue #18, docs/reliability.md "Hostile corpus"): every input of
//! `tests/hostile/PARSER.jsonl` is fed to its parser, the outcome must be the one the file
//! expects (an error's code and a substring of its message, the replies, or a close), and after
//! EACH input the server (or decoder) must still answer a well-formed request.
//!
//! The inputs come from the generator in `hostile_support` (checked: a file that no longer
//! holds exactly the generator's inputs fails, saying to re-bless). `VPROTO_BLESS=1 cargo test
//! -p vproto-cli --test hostile` runs the generator's inputs and writes the files with what
//! happened; review the diff before committing it.
//!
//! Servers are real processes, one per parser: `vproto serve conductor` on a Unix socket
//! (JSON-RPC lines) and on `http://` (HTTP), `vproto xenstored` (the Xenstore wire, both as
//! server and as the peer of the client's healthy check). The os-vif envelopes, the data tree,
//! the vchan ring and the config files are fed to the library as `vproto convert`, the host,
//! the channel and `vproto serve --config` call it.

mod hostile_support;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use hostile_support::{escape, unescape, Case};
use serde_json::{json, Value};
use vproto_test_support::Process;

const VPROTO: &str = env!("CARGO_BIN_EXE_vproto");
/// Longest wait for a server to answer and close after the input's end.
const PATIENCE: Duration = Duration::from_secs(10);
/// Longest message substring a blessed outcome keeps.
const MESSAGE_KEPT: usize = 120;

fn corpus_file(parser_file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/hostile").join(format!("{parser_file}.jsonl"))
}

fn blessing() -> bool {
    std::env::var("VPROTO_BLESS").is_ok_and(|value| !value.is_empty() && value != "0")
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

/// One parser as the corpus drives it.
trait Target {
    /// Feeds one input to `parser` (the file may hold several parsers of one kind) and says
    /// what happened.
    fn feed(&mut self, parser: &str, input: &[u8]) -> Value;
    /// Panics unless the server (or decoder) still answers a well-formed request.
    fn healthy(&mut self, after: &str);
}

/// Runs the corpus of `file` against `target`, or (blessing) writes it from the generator.
fn run_corpus(file: &str, target: &mut dyn Target) {
    let generated = hostile_support::generate(file);
    let path = corpus_file(file);
    if blessing() {
        let mut text = String::new();
        for case in &generated {
            let outcome = kept(target.feed(&case.parser, &case.input));
            target.healthy(&case.name);
            let line =
                json!({"parser": case.parser, "name": case.name, "input": escape(&case.input), "expect": outcome});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("blessed {} inputs into {}", generated.len(), path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut cases = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), number + 1));
        let field =
            |name: &str| entry[name].as_str().unwrap_or_else(|| panic!("{}:{}: no {name}", path.display(), number + 1));
        let case =
            Case { parser: field("parser").into(), name: field("name").into(), input: unescape(&entry["input"]) };
        cases.push((case, entry["expect"].clone()));
    }
    let found: Vec<&Case> = cases.iter().map(|(case, _)| case).collect();
    let stale: Vec<&str> = generated
        .iter()
        .zip(found.iter().copied().map(Some).chain(std::iter::repeat(None)))
        .filter(|(want, got)| got.is_none_or(|got| got != *want))
        .map(|(want, _)| want.name.as_str())
        .collect();
    assert!(
        stale.is_empty() && generated.len() == found.len(),
        "{} no longer holds the generator's inputs ({} generated, {} in the file; first differing: {:?}): \
         re-bless with VPROTO_BLESS=1 cargo test -p vproto-cli --test hostile",
        path.display(),
        generated.len(),
        found.len(),
        stale.first()
    );
    let mut failures = Vec::new();
    for (case, expected) in &cases {
        let outcome = target.feed(&case.parser, &case.input);
        if !matches(expected, &outcome) {
            failures.push(format!("{} ({}): expected {expected}, got {outcome}", case.name, case.parser));
        }
        target.healthy(&case.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of {file} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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

/// A JSON-RPC answer as an outcome: an error's code and message, a result, or a batch of them.
fn answer(value: &Value) -> Value {
    match value {
        Value::Array(items) => json!({"batch": items.iter().map(answer).collect::<Vec<_>>()}),
        Value::Object(map) if map.contains_key("error") => {
            json!({"code": value["error"]["code"], "message": value["error"]["message"]})
        }
        Value::Object(map) if map.contains_key("result") => json!({"result": true}),
        other => json!({"unexpected": other}),
    }
}

/// A process serving until dropped, and where.
fn start(dir: &Path, name: &str, args: &[&str]) -> (Process, String) {
    let mut command = std::process::Command::new(VPROTO);
    command.args(args).env("VPROTO_LOG", "warn");
    Process::serving(command, dir.join(format!("{name}.log")), Duration::from_secs(30))
}

struct JsonRpcLines {
    socket: PathBuf,
}

impl JsonRpcLines {
    fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.socket).expect("the server accepts");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }
}

impl Target for JsonRpcLines {
    fn feed(&mut self, _: &str, input: &[u8]) -> Value {
        let output = exchange(self.connect(), input, |s| {
            let _ = s.shutdown(Shutdown::Write);
        });
        let answers: Vec<Value> = output
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| match serde_json::from_slice::<Value>(line) {
                Ok(value) => answer(&value),
                Err(_) => json!({"not_json": escape(line)}),
            })
            .collect();
        if answers.is_empty() {
            json!("close")
        } else {
            Value::Array(answers)
        }
    }

    fn healthy(&mut self, after: &str) {
        let mut stream = self.connect();
        stream.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"healthy\",\"method\":\"conductor.list_agents\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap_or_else(|e| panic!("after {after}: no answer: {e}"));
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("after {after}: {e}: {line:?}"));
        assert!(value["result"]["agents"].is_array() && value["id"] == "healthy", "after {after}: {line}");
    }
}

#[test]
fn jsonrpc_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("conductor.sock");
    let listen = format!("unix:{}", socket.display());
    let (_server, _) =
        start(dir.path(), "conductor", &["serve", "conductor", "--listen", &listen, "--state", "memory"]);
    run_corpus("jsonrpc", &mut JsonRpcLines { socket });
}

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

/// An HTTP response as an outcome: its status and, for a JSON error body, its code and message.
fn http_outcome(output: &[u8]) -> Value {
    if output.is_empty() {
        return json!("close");
    }
    let text = String::from_utf8_lossy(output);
    let status =
        text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else { return json!({"not_http": escape(&output[..output.len().min(200)])}) };
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("");
    let error = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        let error = if value.get("error").is_some() { value["error"].clone() } else { value };
        error.get("code").map(|code| (code.clone(), error["message"].clone()))
    });
    match error {
        Some((code, message)) => json!({"status": status, "code": code, "message": message}),
        None => json!({"status": status}),
    }
}

impl Target for Http {
    fn feed(&mut self, _: &str, input: &[u8]) -> Value {
        http_outcome(&exchange(self.connect(), input, |s| {
            let _ = s.shutdown(Shutdown::Write);
        }))
    }

    fn healthy(&mut self, after: &str) {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents"}"#;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: vproto\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
fn http_over_a_real_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, address) = start(
        dir.path(),
        "conductor",
        &["serve", "conductor", "--listen", "http://127.0.0.1:0", "--state", "memory", "--insecure"],
    );
    let address = address.trim_start_matches("http://").trim_end_matches('/').to_string();
    run_corpus("http", &mut Http { address });
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
        replies.push(
            json!({"type": kind.unwrap_or_else(|| word(0).to_string()), "payload": escape(&output[16..16 + len])}),
        );
        output = &output[16 + len..];
    }
    if !output.is_empty() {
        replies.push(json!({"trailing": escape(output)}));
    }
    replies
}

/// Whether a well-formed READ of `/` on a new connection to `socket` is answered.
fn xenstore_answers(socket: &Path, after: &str) {
    use vproto_xenstore::wire::{Message, MsgType};
    let mut stream = UnixStream::connect(socket).unwrap_or_else(|e| panic!("after {after}: xenstored refuses: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(&Message::new(MsgType::Read, 7, 0, b"/\0".to_vec()).encode()).unwrap();
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).unwrap_or_else(|e| panic!("after {after}: no reply: {e}"));
    assert_eq!(u32::from_le_bytes(header[0..4].try_into().unwrap()), MsgType::Read.as_u32(), "after {after}");
}

struct XenstoreServer {
    socket: PathBuf,
}

impl Target for XenstoreServer {
    fn feed(&mut self, _: &str, input: &[u8]) -> Value {
        let stream = UnixStream::connect(&self.socket).expect("xenstored accepts");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let replies = xenstore_replies(&exchange(stream, input, |s| {
            let _ = s.shutdown(Shutdown::Write);
        }));
        if replies.is_empty() {
            json!("close")
        } else {
            Value::Array(replies)
        }
    }

    fn healthy(&mut self, after: &str) {
        xenstore_answers(&self.socket, after);
    }
}

#[test]
fn xenstore_server_side_over_a_real_xenstored() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, socket) = xenstored(dir.path());
    run_corpus("xenstore_server", &mut XenstoreServer { socket });
}

/// The client library against a peer that answers its request with the input, then closes.
struct XenstoreClient {
    runtime: tokio::runtime::Runtime,
    socket: PathBuf,
}

impl Target for XenstoreClient {
    fn feed(&mut self, parser: &str, input: &[u8]) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use vproto_xenstore::{Xenstore, XenstoreAddr};
        let input = input.to_vec();
        let parser = parser.to_string();
        self.runtime.block_on(async move {
            let (ours, mut theirs) = tokio::io::duplex(1 << 20);
            let xs = Xenstore::from_stream(ours, XenstoreAddr::Unix("hostile-peer".into()));
            let call = tokio::spawn(async move {
                match parser.as_str() {
                    "xenstore_client.read" => xs.read("/x").await.map(|value| json!({"value": escape(&value)})),
                    "xenstore_client.directory" => xs.directory("/x").await.map(|names| json!({"names": names})),
                    "xenstore_client.get_perms" => xs
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
                Err(error) => json!({"message": error.to_string()}),
            }
        })
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
    let (_server, socket) = xenstored(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    run_corpus("xenstore_client", &mut XenstoreClient { runtime, socket });
}

/// Library decoders: the outcome is the error's message, or `accepted`.
struct Library<F: FnMut(&str, &[u8]) -> Result<(), String>, H: FnMut() -> Result<(), String>> {
    feed: F,
    healthy: H,
}

impl<F: FnMut(&str, &[u8]) -> Result<(), String>, H: FnMut() -> Result<(), String>> Target for Library<F, H> {
    fn feed(&mut self, parser: &str, input: &[u8]) -> Value {
        match (self.feed)(parser, input) {
            Ok(()) => json!("accepted"),
            Err(message) => json!({"message": message}),
        }
    }

    fn healthy(&mut self, after: &str) {
        (self.healthy)().unwrap_or_else(|e| panic!("after {after}: a well-formed input is refused: {e}"));
    }
}

fn repo_file(path: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// As `vproto convert` reads its input.
fn convert(input: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(input).map_err(|e| format!("not valid JSON: {e}"))?;
    vproto_api::convert_primitive(&value, None, None).map(drop).map_err(|e| e.to_string())
}

#[test]
fn osvif_envelopes_at_every_version() {
    let good = repo_file("examples/vif-openvswitch.json");
    run_corpus(
        "osvif_envelope",
        &mut Library { feed: |_: &str, input: &[u8]| convert(input), healthy: || convert(&good) },
    );
}

/// Entries as a host reads a guest's tree: `path=value` lines.
fn decode_tree(input: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(input).expect("tree inputs are UTF-8 (Xenstore values are read as text)");
    let entries: BTreeMap<String, String> = text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .map(|(path, value)| (path.to_string(), value.to_string()))
        .collect();
    vproto_support::tree::decode::<vproto_api::GuestInfo>(&vproto_api::layouts::GUEST_V1, &entries)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn data_tree_decoder() {
    let good = repo_file("fuzz/seeds/data_tree/v1");
    run_corpus(
        "data_tree",
        &mut Library { feed: |_: &str, input: &[u8]| decode_tree(input), healthy: || decode_tree(&good) },
    );
}

/// The vchan ring driven by a script (`hostile_support::ring_script`): after each input, the
/// page it used (or a fresh one) must carry bytes both ways once its indices agree again.
#[derive(Default)]
struct Ring {
    page: Option<vproto_vchan::LoopbackPage>,
}

impl Target for Ring {
    fn feed(&mut self, _: &str, input: &[u8]) -> Value {
        let (result, page) = hostile_support::ring_script(input);
        self.page = page;
        match result {
            Ok(()) => json!("accepted"),
            Err(message) => json!({"message": message}),
        }
    }

    fn healthy(&mut self, after: &str) {
        hostile_support::ring_still_carries(self.page.take()).unwrap_or_else(|e| panic!("after {after}: {e}"));
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
    let load = |parser: &str, input: &[u8]| -> Result<(), String> {
        std::fs::write(&file, input).unwrap();
        let shown = file.display().to_string();
        let result = match parser {
            "config.driver" => vproto_services::driver::DriverConfig::load(&file).map(drop),
            "config.network" => vproto_services::network::NetworkHostConfig::load(&file).map(drop),
            other => panic!("no config parser {other}"),
        };
        result.map_err(|e| e.to_string().replace(&shown, "CONFIG"))
    };
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/driver.json");
    let healthy = || vproto_services::driver::DriverConfig::load(&driver).map(drop).map_err(|e| e.to_string());
    run_corpus("config", &mut Library { feed: load, healthy });
}
