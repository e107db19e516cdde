//! The generator of the corpus's inputs (`cargo xtask hostile --regenerate` writes them into
//! `tests/hostile/PARSER/GROUP.jsonl`; the test itself only reads the files).

use serde_json::{json, Value};

use super::corpus::Case;

/// Collects the cases of one parser.
struct Cases {
    op: Option<String>,
    cases: Vec<Case>,
}

impl Cases {
    fn new() -> Self {
        Cases { op: None, cases: Vec::new() }
    }

    /// The entry point the following cases go to.
    fn op(&mut self, op: &str) -> &mut Self {
        self.op = Some(op.to_string());
        self
    }

    fn add(&mut self, name: impl Into<String>, input: impl Into<Vec<u8>>) {
        let name = name.into();
        assert!(self.cases.iter().all(|case| case.name != name), "two inputs named {name}");
        self.cases.push(Case { name, op: self.op.clone(), input: input.into(), expect: None });
    }

    /// Adds `good` as `change` leaves it, named `group/name`.
    fn add_changed(&mut self, group: &str, good: &Value, name: &str, change: &dyn Fn(&mut Value)) {
        let mut value = good.clone();
        change(&mut value);
        self.add(format!("{group}/{name}"), value.to_string());
    }
}

/// The generated inputs of `parser`, in order.
pub fn generate(parser: &str) -> Vec<Case> {
    match parser {
        "jsonrpc" => jsonrpc(),
        "http" => http(),
        "osvif_envelope" => osvif(),
        "xenstore_server" => xenstore_server(),
        "xenstore_client" => xenstore_client(),
        "data_tree" => data_tree(),
        "vchan_ring" => vchan_ring(),
        "config" => config(),
        other => panic!("no corpus generator for {other}"),
    }
}

/// A well-formed driver config (`vproto serve driver --config`).
pub const DRIVER_CONFIG: &str = "examples/driver.json";
/// A well-formed network host config (`vproto serve network --config`).
pub const NETWORK_CONFIG: &str = "fuzz/seeds/config/network-e2e.json";
/// A well-formed guest data tree, `path=value` lines.
pub const DATA_TREE: &str = "fuzz/seeds/data_tree/v1";
/// A well-formed os-vif envelope.
pub const ENVELOPE: &str = "examples/vif-openvswitch.json";

/// A file of the repository.
pub fn repo_text(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Malformed JSON texts, shared by every JSON parser's corpus.
const BAD_JSON: &[(&str, &str)] = &[
    ("open-brace", "{"),
    ("close-brace", "}"),
    ("open-bracket", "["),
    ("unterminated-object", r#"{"jsonrpc":"2.0""#),
    ("bare-word", "nul"),
    ("truncated-true", "tru"),
    ("unterminated-string", r#""abc"#),
    ("missing-value", r#"{"a":}"#),
    ("lone-comma", "{,}"),
    ("trailing-comma-array", "[1,]"),
    ("trailing-comma-object", r#"{"a":1,}"#),
    ("missing-colon", r#"{"a" 1}"#),
    ("single-quotes", "{'a':1}"),
    ("nan", "NaN"),
    ("infinity", "-Infinity"),
    ("lone-minus", "-"),
    ("leading-zero", "01"),
    ("dot-without-digits", "1."),
    ("leading-dot", ".5"),
    ("exponent-without-digits", "1e"),
    ("short-unicode-escape", r#""\u12""#),
    ("unknown-escape", r#""\q""#),
    ("unquoted-key", "{a:1}"),
    ("comment", "/* c */ {}"),
    ("two-values", "{} {}"),
    ("raw-control-character", "\"a\u{1}b\""),
    ("lone-high-surrogate", r#"{"a":"\ud800"}"#),
    ("lone-low-surrogate", r#"{"a":"\udc00"}"#),
    ("byte-order-mark", "\u{feff}{}"),
    ("empty-key-garbage", r#"{"":}"#),
];

/// Invalid UTF-8 placed where a JSON text has strings.
const BAD_UTF8: &[(&str, &[u8])] = &[
    ("ff-byte", b"\xff"),
    ("overlong-nul", b"\xc0\x80"),
    ("lone-continuation", b"\x80"),
    ("truncated-sequence", b"\xe2\x82"),
    ("encoded-surrogate", b"\xed\xa0\x80"),
    ("beyond-unicode", b"\xf4\x90\x80\x80"),
];

fn request(method: &str, params: Value) -> Vec<u8> {
    let mut line = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string().into_bytes();
    line.push(b'\n');
    line
}

fn line(text: impl AsRef<[u8]>) -> Vec<u8> {
    let mut bytes = text.as_ref().to_vec();
    bytes.push(b'\n');
    bytes
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// The conductor's methods and their parameters, from the schema's OpenRPC document.
fn conductor_methods() -> Vec<(String, Vec<(String, bool)>)> {
    let document: Value = serde_json::from_str(vproto_api::service_openrpc("conductor").unwrap()).unwrap();
    document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|method| {
            let params = method["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["name"].as_str().unwrap().to_string(), p["required"].as_bool().unwrap_or(false)))
                .collect();
            (method["name"].as_str().unwrap().to_string(), params)
        })
        .collect()
}

/// Values of the wrong kind for any parameter.
fn wrong_values() -> Vec<(&'static str, Value)> {
    vec![
        ("number", json!(42)),
        ("string", json!("nonsense")),
        ("bool", json!(true)),
        ("array", json!([1, 2])),
        ("empty-object", json!({})),
        ("huge-number", json!(1e300)),
        ("unknown-fields", json!({"no_such_field": 1})),
    ]
}

fn jsonrpc() -> Vec<Case> {
    let mut c = Cases::new();
    for (name, text) in BAD_JSON {
        c.add(format!("bad-json/{name}"), line(text));
    }
    for (name, bytes) in BAD_UTF8 {
        let mut method = br#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_"#.to_vec();
        method.extend_from_slice(bytes);
        method.extend_from_slice(b"agents\"}");
        c.add(format!("invalid-utf8/in-method/{name}"), line(&method));
        let mut id = br#"{"jsonrpc":"2.0","method":"conductor.list_agents","id":""#.to_vec();
        id.extend_from_slice(bytes);
        id.extend_from_slice(b"\"}");
        c.add(format!("invalid-utf8/in-id/{name}"), line(&id));
        c.add(format!("invalid-utf8/bare/{name}"), line(bytes));
    }
    for depth in [63, 64, 65, 100, 127, 128, 129, 1000, 100_000] {
        let params = nested(depth, "[", "]", "");
        c.add(
            format!("deep/params-arrays-{depth}"),
            line(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","params":{params}}}"#)),
        );
        c.add(format!("deep/bare-arrays-{depth}"), line(nested(depth, "[", "]", "")));
        c.add(format!("deep/objects-{depth}"), line(nested(depth, r#"{"a":"#, "}", "1")));
    }
    c.add("deep/unbalanced-opening-only", line("[".repeat(200_000)));
    for (name, number) in [
        ("id-1e400", "1e400"),
        ("id-minus-1e400", "-1e400"),
        ("id-400-digits", &"9".repeat(400)),
        ("id-fraction", "0.000000000000000000000000000000000001"),
        ("id-negative-zero", "-0"),
    ] {
        c.add(
            format!("huge-number/{name}"),
            line(format!(r#"{{"jsonrpc":"2.0","id":{number},"method":"conductor.no_such_method"}}"#)),
        );
    }
    for (name, version) in [
        ("1.0", r#""1.0""#),
        ("2", r#""2""#),
        ("2.00", r#""2.00""#),
        ("number", "2.0"),
        ("null", "null"),
        ("empty", r#""""#),
        ("spaced", r#"" 2.0""#),
        ("array", r#"["2.0"]"#),
    ] {
        c.add(
            format!("jsonrpc-version/{name}"),
            line(format!(r#"{{"jsonrpc":{version},"id":1,"method":"conductor.list_agents"}}"#)),
        );
    }
    c.add("jsonrpc-version/missing", line(r#"{"id":1,"method":"conductor.list_agents"}"#));
    for (name, id) in
        [("object", r#"{"a":1}"#), ("array", "[1]"), ("true", "true"), ("false", "false"), ("nested", r#"[{"a":[1]}]"#)]
    {
        c.add(
            format!("bad-id/{name}"),
            line(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"conductor.list_agents"}}"#)),
        );
    }
    c.add(
        "bad-id/string-of-100000",
        line(format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"conductor.nope"}}"#, "i".repeat(100_000))),
    );
    for (name, method) in [
        ("missing", None),
        ("number", Some("7")),
        ("null", Some("null")),
        ("empty", Some(r#""""#)),
        ("rpc-prefix", Some(r#""rpc.""#)),
        ("unknown", Some(r#""conductor.teapot""#)),
        ("other-service", Some(r#""driver.list_hardware""#)),
        ("nul-inside", Some(r#""conductor.list_agents\u0000""#)),
        ("very-long", Some(&*format!(r#""{}""#, "m".repeat(50_000)))),
        ("object", Some(r#"{"name":"conductor.list_agents"}"#)),
    ] {
        let text = match method {
            Some(method) => format!(r#"{{"jsonrpc":"2.0","id":1,"method":{method}}}"#),
            None => r#"{"jsonrpc":"2.0","id":1}"#.to_string(),
        };
        c.add(format!("bad-method/{name}"), line(text));
    }
    for (name, members) in [
        ("not-an-object", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","params":[]} "x""#),
        ("unknown-member", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","extra":1}"#),
        ("result-and-method", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","result":1}"#),
        ("response-sent-to-server", r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
        ("error-sent-to-server", r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#),
        ("params-string", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","params":"x"}"#),
        ("params-number", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","params":3}"#),
        ("params-null", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents","params":null}"#),
        ("duplicate-keys", r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"conductor.nope"}"#),
    ] {
        c.add(format!("request-shape/{name}"), line(members));
    }
    for (method, params) in conductor_methods() {
        let short = method.trim_start_matches("conductor.");
        c.add(format!("params/{short}/positional-too-many"), request(&method, json!([1, 2, 3, 4])));
        c.add(format!("params/{short}/unknown-named"), request(&method, json!({"no_such_param": 1})));
        c.add(format!("params/{short}/string"), request(&method, json!("params")));
        if params.iter().any(|(_, required)| *required) {
            c.add(format!("params/{short}/missing-required"), request(&method, json!({})));
        }
        for (param, _) in &params {
            for (kind, value) in wrong_values() {
                c.add(format!("params/{short}/{param}/{kind}"), request(&method, json!({ param: value })));
            }
        }
    }
    let good = r#"{"jsonrpc":"2.0","id":9,"method":"conductor.list_agents"}"#;
    for (name, batch) in [
        ("empty", "[]".to_string()),
        ("numbers", "[1,2,3]".to_string()),
        ("empty-objects", "[{},{}]".to_string()),
        ("nested-batch", "[[]]".to_string()),
        ("mixed", format!(r#"[{good},1,{{"jsonrpc":"1.0","id":2,"method":"x"}}]"#)),
        ("notifications-only", r#"[{"jsonrpc":"2.0","method":"conductor.nope"}]"#.to_string()),
        ("bad-json-inside", format!("[{good},{{]")),
        ("hundred-invalid", format!("[{}]", vec!["0"; 100].join(","))),
        ("hundred-unknown-methods", format!("[{}]", vec![r#"{"jsonrpc":"2.0","id":1,"method":"x.y"}"#; 100].join(","))),
        ("duplicate-ids", format!(r#"[{good},{good}]"#)),
    ] {
        c.add(format!("batch/{name}"), line(batch));
    }
    let big = 1024 * 1024;
    c.add("oversized/one-byte-over", line(format!(r#"{{"x":"{}"}}"#, "a".repeat(big))));
    c.add("oversized/two-mebibytes-then-good", {
        let mut bytes = line(format!(r#"["{}"]"#, "b".repeat(2 * big)));
        bytes.extend(line(good));
        bytes
    });
    c.add("oversized/whitespace", line(" ".repeat(big + 10)));
    c.add("oversized/no-newline-at-end", format!(r#"{{"x":"{}"}}"#, "c".repeat(big + 1)));
    c.add("framing/empty-lines", "\n\n\n");
    c.add("framing/carriage-returns", "\r\n\r\n");
    c.add("framing/nul-bytes", line([0u8; 32]));
    c.add("framing/no-newline", r#"{"jsonrpc":"2.0","id":1,"method":"conductor.nope"}"#);
    c.add("framing/garbage-then-good", [line("garbage"), line(good)].concat());
    c.cases
}

fn http_text(method: &str, path: &str, headers: &[&str], body: &str) -> String {
    String::from_utf8(http_request(method, path, headers, body)).expect("a text request")
}

fn http_request(method: &str, path: &str, headers: &[&str], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: vproto\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() && !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-length")) {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    [text.as_bytes(), body].concat()
}

fn http() -> Vec<Case> {
    let mut c = Cases::new();
    let json_type = "Content-Type: application/json";
    let rpc = r#"{"jsonrpc":"2.0","id":1,"method":"conductor.list_agents"}"#;
    for (name, request) in [
        ("garbage", "GARBAGE\r\n\r\n"),
        ("no-path", "GET\r\n\r\n"),
        ("no-version", "GET /\r\n\r\n"),
        ("version-9.9", "GET / HTTP/9.9\r\n\r\n"),
        ("version-0.9", "GET / HTTP/0.9\r\n\r\n"),
        ("lowercase-version", "GET / http/1.1\r\n\r\n"),
        ("extra-spaces", "GET  /  HTTP/1.1\r\n\r\n"),
        ("tab-separated", "GET\t/\tHTTP/1.1\r\n\r\n"),
        ("bare-newlines", "GET / HTTP/1.1\nHost: x\n\n"),
        ("nul-in-path", "GET /\0 HTTP/1.1\r\n\r\n"),
        ("space-in-path", "GET /a b HTTP/1.1\r\n\r\n"),
        ("absolute-uri", "GET http://evil.example/hardware HTTP/1.1\r\nHost: vproto\r\n\r\n"),
        ("asterisk", "OPTIONS * HTTP/1.1\r\nHost: vproto\r\n\r\n"),
        ("connect", "CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: vproto\r\n\r\n"),
        ("unknown-method", "BREW / HTTP/1.1\r\nHost: vproto\r\n\r\n"),
        ("header-without-colon", "GET /hardware HTTP/1.1\r\nHost vproto\r\n\r\n"),
        ("header-space-before-colon", "GET /hardware HTTP/1.1\r\nHost : vproto\r\n\r\n"),
        ("header-obs-fold", "GET /hardware HTTP/1.1\r\nHost: vproto\r\n folded\r\n\r\n"),
        ("header-nul", "GET /hardware HTTP/1.1\r\nHost: vp\0roto\r\n\r\n"),
    ] {
        c.add(format!("request/{name}"), request);
    }
    // Requests cut short: the client then ends its writing half (`op` eof).
    c.op("eof");
    for (name, request) in [
        ("empty-line-only", "\r\n\r\n".to_string()),
        ("truncated-headers", "GET /hardware HTTP/1.1\r\nHost: vproto\r\n".to_string()),
        ("truncated-request-line", "GET /hardw".to_string()),
        ("content-length-beyond-body", http_text("POST", "/jsonrpc", &[json_type, "Content-Length: 5000"], rpc)),
        (
            "chunked-truncated",
            http_text("POST", "/jsonrpc", &[json_type, "Transfer-Encoding: chunked"], "40\r\n{\"jsonrpc\""),
        ),
    ] {
        c.add(format!("cut-short/{name}"), request);
    }
    c.op = None;
    c.add("request/uri-of-100000", format!("GET /{} HTTP/1.1\r\nHost: vproto\r\n\r\n", "u".repeat(100_000)));
    c.add(
        "headers/one-of-100000",
        format!("GET /hardware HTTP/1.1\r\nHost: vproto\r\nX-Big: {}\r\n\r\n", "h".repeat(100_000)),
    );
    c.add("headers/two-thousand", {
        let headers: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET /hardware HTTP/1.1\r\nHost: vproto\r\n{headers}\r\n")
    });
    for (name, headers, body) in [
        ("content-length-negative", vec!["Content-Length: -1"], rpc),
        ("content-length-word", vec!["Content-Length: abc"], rpc),
        ("content-length-twice-differing", vec!["Content-Length: 5", "Content-Length: 6"], rpc),
        ("content-length-huge", vec!["Content-Length: 99999999999999999999"], rpc),
        ("transfer-encoding-gzip", vec!["Transfer-Encoding: gzip"], rpc),
        ("chunked-bad-size", vec!["Transfer-Encoding: chunked"], "zz\r\nabc\r\n0\r\n\r\n"),
        ("chunked-and-length", vec!["Transfer-Encoding: chunked", "Content-Length: 3"], "3\r\nabc\r\n0\r\n\r\n"),
    ] {
        let mut headers = headers;
        headers.push(json_type);
        c.add(format!("framing/{name}"), http_request("POST", "/jsonrpc", &headers, body));
    }
    for (name, text) in BAD_JSON {
        c.add(format!("rpc-body/{name}"), http_request("POST", "/jsonrpc", &[json_type, "Connection: close"], text));
    }
    for (name, bytes) in BAD_UTF8 {
        let body =
            [br#"{"jsonrpc":"2.0","id":""#.as_slice(), bytes, br#"","method":"conductor.list_agents"}"#].concat();
        c.add(
            format!("rpc-body/invalid-utf8/{name}"),
            http_request("POST", "/jsonrpc", &[json_type, "Connection: close"], body),
        );
    }
    for depth in [65, 128, 100_000] {
        c.add(
            format!("rpc-body/deep-{depth}"),
            http_request("POST", "/jsonrpc", &[json_type, "Connection: close"], nested(depth, "[", "]", "")),
        );
    }
    c.add(
        "rpc-body/oversized",
        http_request("POST", "/jsonrpc", &[json_type], format!(r#"["{}"]"#, "o".repeat(1024 * 1024 + 1))),
    );
    c.add(
        "rpc-body/declared-oversized",
        http_request("POST", "/jsonrpc", &[json_type, "Content-Length: 2097152"], "[1]"),
    );
    c.add(
        "rpc-body/wrong-version",
        http_request("POST", "/jsonrpc", &[json_type], r#"{"jsonrpc":"1.0","id":1,"method":"conductor.list_agents"}"#),
    );
    c.add("rpc-body/empty", http_request("POST", "/jsonrpc", &[json_type, "Content-Length: 0"], ""));
    c.add("rpc-body/batch-of-junk", http_request("POST", "/jsonrpc", &[json_type], "[1,{},[]]"));
    c.add("rpc-body/text-plain", http_request("POST", "/jsonrpc", &["Content-Type: text/plain"], rpc));
    for (name, method, path, body) in [
        ("get-root", "GET", "/", ""),
        ("put-agents", "PUT", "/agents", ""),
        ("delete-hardware", "DELETE", "/hardware", ""),
        ("unknown-path", "GET", "/teapot", ""),
        ("dot-dot", "GET", "/../../etc/passwd", ""),
        ("encoded-path", "GET", "/%68ardware", ""),
        ("trailing-slash", "GET", "/agents/", ""),
        ("query-junk", "GET", "/agents?%zz=1", ""),
        ("hello-bad-json", "POST", "/hello", "{"),
        ("hello-array", "POST", "/hello", "[1]"),
        ("hello-empty-object", "POST", "/hello", "{}"),
        ("hello-wrong-types", "POST", "/hello", r#"{"agent_id":5,"endpoint":[]}"#),
        ("deregister-bad-endpoint", "POST", "/deregister", r#"{"endpoint":{"host":1}}"#),
        ("deregister-no-body", "POST", "/deregister", ""),
        ("discovery-junk-body", "POST", "/discovery", r#"{"agent":"nope"}"#),
        ("events-unknown-event", "GET", "/events?events=conductor.teapot", ""),
        ("events-bad-versions", "GET", "/events?versions=HostInfo", ""),
        ("events-unknown-key", "GET", "/events?colour=red", ""),
        ("events-post", "POST", "/events", ""),
    ] {
        c.add(format!("rest/{name}"), http_request(method, path, &[json_type, "Connection: close"], body));
    }
    c.cases
}

fn envelope(name: &str, version: &str, data: Value) -> Value {
    json!({"versioned_object.name": name, "versioned_object.namespace": "os_vif",
           "versioned_object.version": version, "versioned_object.data": data})
}

/// The JSON pointers of every envelope inside `value` (at `at`).
fn envelopes(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("versioned_object.name") {
                found.push(at.to_string());
            }
            for (key, inner) in map {
                envelopes(inner, &format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), found);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                envelopes(inner, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// Every (envelope pointer, field name) of the envelopes inside `value`.
fn envelope_fields(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    let mut pointers = Vec::new();
    envelopes(value, at, &mut pointers);
    for pointer in pointers {
        let data = value.pointer(&format!("{pointer}/versioned_object.data")).and_then(Value::as_object);
        for key in data.into_iter().flat_map(|data| data.keys()) {
            found.push((pointer.clone(), key.clone()));
        }
    }
}

fn osvif() -> Vec<Case> {
    let mut c = Cases::new();
    for (name, text) in BAD_JSON {
        c.add(format!("bad-json/{name}"), *text);
    }
    for (name, bytes) in BAD_UTF8 {
        let mut input = br#"{"versioned_object.name":""#.to_vec();
        input.extend_from_slice(bytes);
        input.extend_from_slice(b"\"}");
        c.add(format!("invalid-utf8/{name}"), input);
    }
    for (name, value) in [
        ("not-an-object", json!([1])),
        ("empty-object", json!({})),
        ("name-missing", json!({"versioned_object.version": "1.0", "versioned_object.data": {}})),
        (
            "name-number",
            envelope("x", "1.0", json!({}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("versioned_object.name".into(), json!(7));
                    Value::Object(o)
                })
                .unwrap(),
        ),
        ("unknown-object", envelope("Teapot", "1.0", json!({}))),
        (
            "wrong-namespace",
            json!({"versioned_object.name": "Network", "versioned_object.namespace": "nova",
                                    "versioned_object.version": "1.0", "versioned_object.data": {}}),
        ),
        ("deep-data", envelope("Network", "1.0", serde_json::from_str(&nested(120, r#"{"a":"#, "}", "1")).unwrap())),
    ] {
        c.add(format!("envelope/{name}"), value.to_string());
    }
    // A whole VIFOpenVSwitch (with its Network, Subnets, FixedIPs, Routes and port profile),
    // each field of each nested object given a value of the wrong kind, or its envelope key removed.
    let example: Value = serde_json::from_str(&repo_text(ENVELOPE)).expect("the os-vif example is JSON");
    let mut fields = Vec::new();
    envelope_fields(&example, "", &mut fields);
    for (pointer, key) in fields {
        let data_pointer = format!("{pointer}/versioned_object.data/{key}");
        let shown = data_pointer.replace("/versioned_object.data", "");
        for (kind, value) in
            [("number", json!(42)), ("string", json!("nonsense")), ("null", Value::Null), ("array", json!([{}]))]
        {
            let mut changed = example.clone();
            match changed.pointer_mut(&data_pointer) {
                Some(slot) if *slot != value => *slot = value,
                _ => continue,
            }
            c.add(format!("example{shown}/{kind}"), changed.to_string());
        }
    }
    let mut objects = Vec::new();
    envelopes(&example, "", &mut objects);
    for pointer in objects {
        for key in
            ["versioned_object.name", "versioned_object.version", "versioned_object.namespace", "versioned_object.data"]
        {
            let mut changed = example.clone();
            changed.pointer_mut(&pointer).and_then(Value::as_object_mut).expect("an envelope").remove(key);
            let shown = pointer.replace("/versioned_object.data", "");
            c.add(format!("example{shown}/without-{key}"), changed.to_string());
        }
    }
    let registry = &vproto_api::REGISTRY;
    for info in registry.objects {
        if !matches!(info.wire, vproto_support::wire::WireForm::VersionedObject) {
            continue;
        }
        let name = info.name;
        for version in info.versions {
            let v = version.to_string();
            c.add(format!("{name}/{v}/data-string"), envelope(name, &v, json!("data")).to_string());
            c.add(format!("{name}/{v}/unknown-field"), envelope(name, &v, json!({"no_such_field": 1})).to_string());
        }
        for version in ["1", "1.x", "99.0", "-1.0", "1.0.0", ""] {
            c.add(format!("{name}/version-{version}"), envelope(name, version, json!({})).to_string());
        }
        if let Some(field) = info.fields.first() {
            c.add(
                format!("{name}/{}-wrong-type", field.name),
                envelope(name, &info.version.to_string(), json!({ field.name: [[[{}]]] })).to_string(),
            );
        }
    }
    c.cases
}

fn frame(kind: u32, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [kind, req, tx, payload.len() as u32] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.extend_from_slice(payload);
    bytes
}

fn xs(kind: vproto_xenstore::wire::MsgType, payload: &[u8]) -> Vec<u8> {
    frame(kind.as_u32(), 3, 0, payload)
}

fn xenstore_server() -> Vec<Case> {
    use vproto_xenstore::wire::MsgType::*;
    let mut c = Cases::new();
    let read = xs(Read, b"/local\0");
    for cut in [1, 4, 8, 15, 16, 17] {
        c.add(format!("truncated/at-{cut}"), read[..cut].to_vec());
    }
    c.add("length/over-payload-max", frame(Read.as_u32(), 1, 0, &[b'a'; 4097]));
    c.add(
        "length/declared-huge",
        [frame(Read.as_u32(), 1, 0, b"")[..12].to_vec(), u32::MAX.to_le_bytes().to_vec()].concat(),
    );
    for kind in [99, 1000, u32::MAX] {
        c.add(format!("type/unknown-{kind}"), frame(kind, 1, 0, b"/\0"));
    }
    c.add("type/error-sent-to-server", xs(Error, b"EINVAL\0"));
    c.add("type/watch-event-sent-to-server", xs(WatchEvent, b"/a\0tok\0"));
    for (name, path) in [
        ("no-nul", &b"/local"[..]),
        ("empty", b"\0"),
        ("relative-dotdot", b"../etc\0"),
        ("double-slash", b"//a\0"),
        ("trailing-slash", b"/a/\0"),
        ("space", b"/a b\0"),
        ("invalid-utf8", b"/\xff\xfe\0"),
        ("nul-inside", b"/a\0b\0"),
    ] {
        c.add(format!("path/read-{name}"), xs(Read, path));
        c.add(format!("path/write-{name}"), xs(Write, &[path, b"value"].concat()));
        c.add(format!("path/directory-{name}"), xs(Directory, path));
    }
    c.add("path/too-long", xs(Read, &[b"/".as_slice(), &[b'p'; 3100], b"\0"].concat()));
    c.add("write/no-value-separator", xs(Write, b"/a"));
    for (name, perms) in [
        ("letter-only", &b"/a\0r\0"[..]),
        ("bad-letter", b"/a\0x0\0"),
        ("domid-overflow", b"/a\0n99999999999\0"),
        ("negative-domid", b"/a\0r-1\0"),
        ("none-given", b"/a\0"),
    ] {
        c.add(format!("set-perms/{name}"), xs(SetPerms, perms));
    }
    // Every message type Xen defines: with no payload, with bytes that hold no string, with a
    // payload of NULs only, and in a transaction that does not exist.
    for kind in (0..64).filter_map(vproto_xenstore::wire::MsgType::from_u32) {
        let name = kind.name();
        c.add(format!("each-type/{name}/empty"), frame(kind.as_u32(), 5, 0, b""));
        c.add(format!("each-type/{name}/no-string"), frame(kind.as_u32(), 5, 0, b"\xff\xfe\x01"));
        c.add(format!("each-type/{name}/nuls"), frame(kind.as_u32(), 5, 0, b"\0\0\0\0"));
        c.add(format!("each-type/{name}/unknown-tx"), frame(kind.as_u32(), 5, 0xdead_beef, b"/local\0"));
    }
    c.add("transaction/end-unknown-tx", frame(TransactionEnd.as_u32(), 1, 12345, b"T\0"));
    c.add("transaction/end-bad-flag", frame(TransactionEnd.as_u32(), 1, 0, b"X\0"));
    c.add("transaction/read-in-unknown-tx", frame(Read.as_u32(), 1, 777, b"/\0"));
    c.add("watch/missing-token", xs(Watch, b"/a\0"));
    c.add("watch/unwatch-unknown", xs(Unwatch, b"/a\0nope\0"));
    c.add("domain/get-domain-path-word", xs(GetDomainPath, b"abc\0"));
    c.add("domain/introduce-garbage", xs(Introduce, b"x\0y\0z\0"));
    c.add("domain/release-word", xs(Release, b"abc\0"));
    c.add("domain/is-introduced-huge", xs(IsDomainIntroduced, b"99999999999\0"));
    c.add("directory-part/bad-offset", xs(DirectoryPart, b"/\0x\0"));
    c.add("control/unknown-command", xs(Control, b"teapot\0"));
    c.add("garbage/random-bytes", b"\x13\x37\xde\xad\xbe\xef\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b".to_vec());
    c.add("garbage/good-then-truncated", [xs(Read, b"/\0"), read[..10].to_vec()].concat());
    c.add("garbage/good-then-unknown", [xs(Read, b"/\0"), frame(77, 2, 0, b"")].concat());
    c.cases
}

fn xenstore_client() -> Vec<Case> {
    use vproto_xenstore::wire::MsgType::*;
    let mut c = Cases::new();
    // The client's first request has req_id 1.
    let reply = |kind: vproto_xenstore::wire::MsgType, payload: &[u8]| frame(kind.as_u32(), 1, 0, payload);
    for parser in ["read", "directory", "get_perms"] {
        let kind = match parser {
            "read" => Read,
            "directory" => Directory,
            _ => GetPerms,
        };
        c.op(parser);
        let p = parser;
        c.add(format!("{p}/nothing"), Vec::new());
        c.add(format!("{p}/truncated-header"), reply(kind, b"x")[..9].to_vec());
        c.add(format!("{p}/truncated-payload"), reply(kind, b"abcdef")[..19].to_vec());
        c.add(format!("{p}/length-over-max"), frame(kind.as_u32(), 1, 0, &[b'a'; 4097]));
        c.add(format!("{p}/error-einval"), reply(Error, b"EINVAL\0"));
        c.add(format!("{p}/error-unknown"), reply(Error, b"EWHATEVER\0"));
        c.add(format!("{p}/error-no-nul"), reply(Error, b"ENOENT"));
        c.add(format!("{p}/error-invalid-utf8"), reply(Error, b"E\xff\0"));
        c.add(format!("{p}/error-empty"), reply(Error, b""));
        c.add(format!("{p}/wrong-type"), reply(Write, b"OK\0"));
        c.add(format!("{p}/unknown-type"), frame(99, 1, 0, b"x\0"));
        c.add(format!("{p}/wrong-req-id"), frame(kind.as_u32(), 999, 0, b"v\0"));
        c.add(format!("{p}/watch-event-malformed"), frame(WatchEvent.as_u32(), 0, 0, b"no-nul"));
        c.add(format!("{p}/invalid-utf8-payload"), reply(kind, b"\xff\xfe\0"));
    }
    c.op("get_perms");
    for (name, perms) in [
        ("bad-letter", &b"x0\0"[..]),
        ("no-domid", b"r\0"),
        ("domid-overflow", b"n99999999999\0"),
        ("empty-list", b""),
        ("empty-entry", b"\0\0"),
    ] {
        c.add(format!("get_perms/perms-{name}"), reply(GetPerms, perms));
    }
    c.op("directory");
    c.add("directory/name-with-slash", reply(Directory, b"a/b\0"));
    c.add("directory/empty-names", reply(Directory, b"\0\0\0"));
    c.cases
}

fn data_tree() -> Vec<Case> {
    let mut c = Cases::new();
    let good = repo_text(DATA_TREE);
    let lines: Vec<&str> = good.lines().collect();
    c.add("empty", "");
    c.add("no-root", "data/other/x=1\n");
    for (index, line) in lines.iter().enumerate() {
        let (path, _) = line.split_once('=').unwrap();
        let key = path.trim_start_matches("data/vproto/");
        let without: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, l)| *l).collect();
        c.add(format!("{key}/removed"), without.join("\n"));
        for (kind, value) in [
            ("empty", String::new()),
            ("word", "banana".to_string()),
            ("negative", "-1".to_string()),
            ("huge", "9".repeat(40)),
            ("long", "l".repeat(5000)),
            ("control", "\u{1}\u{7f}".to_string()),
        ] {
            let changed: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| if i == index { format!("{path}={value}") } else { l.to_string() })
                .collect();
            c.add(format!("{key}/{kind}"), changed.join("\n"));
        }
    }
    c.add("unknown-nic-field", format!("{good}data/vproto/nics/fa-16-3e-11-22-33/colour=red\n"));
    c.add("nic-without-fields", format!("{good}data/vproto/nics/00-00-00-00-00-01/name=\n"));
    c.add("bad-nic-key", format!("{good}data/vproto/nics/not a mac/name=eth9\n"));
    c.add("deep-unknown-path", format!("{good}data/vproto/{}x=1\n", "d/".repeat(500)));
    c.cases
}
fn vchan_ring() -> Vec<Case> {
    let mut c = Cases::new();
    for (left, right) in [(0, 11), (9, 11), (21, 11), (10, 10), (11, 11), (65535, 10), (20, 20)] {
        c.add(format!("geometry/{left}-{right}"), format!("geometry {left} {right}\n"));
    }
    for (left, right) in [(10, 11), (11, 10), (12, 13), (15, 11)] {
        let size = |order: u32| 1u64 << order;
        for (ring, reader, writer, ring_size) in
            [("left", "server", "client", size(left)), ("right", "client", "server", size(right))]
        {
            let g = format!("geometry {left} {right}\n");
            let lies: Vec<(String, String)> = vec![
                ("prod-one-past-size".into(), format!("store {ring}.prod {}\n", ring_size + 1)),
                ("prod-half-range".into(), format!("store {ring}.prod {}\n", 1u64 << 31)),
                ("prod-max".into(), format!("store {ring}.prod {}\n", u32::MAX)),
                ("cons-ahead-of-prod".into(), format!("store {ring}.cons 1\n")),
                ("cons-far-ahead".into(), format!("store {ring}.cons {}\n", ring_size * 3)),
                (
                    "both-near-wrap-consistent".into(),
                    format!(
                        "store {ring}.cons {}\nstore {ring}.prod {}\n",
                        u32::MAX - 5,
                        (u64::from(u32::MAX) + 10) % (1 << 32)
                    ),
                ),
                (
                    "both-near-wrap-too-far".into(),
                    format!("store {ring}.cons {}\nstore {ring}.prod {}\n", u32::MAX - 5, ring_size + 10),
                ),
                ("exactly-full".into(), format!("store {ring}.prod {ring_size}\n")),
            ];
            for (lie, stores) in lies {
                for op in [
                    format!("read {reader} 64"),
                    format!("ready {reader}"),
                    format!("write {writer} 64"),
                    format!("space {writer}"),
                ] {
                    let verb = op.split_whitespace().next().unwrap().to_string();
                    c.add(format!("{left}-{right}/{ring}/{lie}/{verb}"), format!("{g}{stores}{op}\n"));
                }
            }
        }
    }
    c.cases
}

fn config() -> Vec<Case> {
    let mut c = Cases::new();
    let driver: Value = serde_json::from_str(&repo_text(DRIVER_CONFIG)).expect("the driver example is JSON");
    let network: Value = serde_json::from_str(&repo_text(NETWORK_CONFIG)).expect("the network seed is JSON");
    for (parser, good) in [("driver", &driver), ("network", &network)] {
        c.op(parser);
        for (name, text) in BAD_JSON {
            c.add(format!("{parser}/bad-json/{name}"), *text);
        }
        for (name, bytes) in BAD_UTF8 {
            c.add(format!("{parser}/invalid-utf8/{name}"), [b"{\"x\":\"".as_slice(), bytes, b"\"}"].concat());
        }
        c.add(format!("{parser}/empty-file"), "");
        c.add(format!("{parser}/top-level-array"), "[]");
        c.add(format!("{parser}/deep"), nested(200, "[", "]", ""));
        c.add(format!("{parser}/unknown-field"), {
            let mut value = good.clone();
            value["colour"] = json!("red");
            value.to_string()
        });
        for key in good.as_object().unwrap().keys() {
            let mut without = good.clone();
            without.as_object_mut().unwrap().remove(key);
            c.add(format!("{parser}/{key}/missing"), without.to_string());
            for (kind, value) in wrong_values() {
                let mut changed = good.clone();
                changed[key] = value;
                c.add(format!("{parser}/{key}/{kind}"), changed.to_string());
            }
        }
    }
    c.op("driver");
    let mut mutate = |name: &str, change: &dyn Fn(&mut Value)| c.add_changed("driver", &driver, name, change);
    mutate("duplicate-uuid", &|v| {
        let first = v["hardware"][0].clone();
        v["hardware"].as_array_mut().unwrap().push(first);
    });
    mutate("device-type-mismatch", &|v| v["hardware"][0]["acc_specs"]["device_type"] = json!("GPU"));
    mutate("bad-uuid", &|v| v["hardware"][0]["uuid"] = json!("not-a-uuid"));
    mutate("negative-duration", &|v| v["discovery"]["duration_ms"] = json!(-5));
    mutate("in-progress-outcome", &|v| v["discovery"]["outcome"] = json!("IN-PROGRESS"));
    mutate("unknown-outcome", &|v| v["discovery"]["outcome"] = json!("MAYBE"));
    mutate("unknown-discovery-field", &|v| v["discovery"]["when"] = json!("now"));
    mutate("unknown-device-type", &|v| v["device_type"] = json!("TOASTER"));
    mutate("endpoint-garbage", &|v| v["endpoint"] = json!({"host": 5}));
    c.op("network");
    let mut mutate = |name: &str, change: &dyn Fn(&mut Value)| c.add_changed("network", &network, name, change);
    mutate("duplicate-network", &|v| {
        let first = v["networks"][0].clone();
        v["networks"].as_array_mut().unwrap().push(first);
    });
    mutate("mtu-too-small", &|v| v["networks"][0]["mtu"] = json!(67));
    mutate("mtu-too-large", &|v| v["networks"][0]["mtu"] = json!(65536));
    mutate("cidr-prefix-33", &|v| v["networks"][0]["subnets"][0]["cidr"] = json!("10.0.0.0/33"));
    mutate("cidr-garbage", &|v| v["networks"][0]["subnets"][0]["cidr"] = json!("ten"));
    mutate("gateway-outside", &|v| v["networks"][0]["subnets"][0]["gateway"] = json!("192.168.9.1"));
    mutate("unknown-vif-class", &|v| v["networks"][0]["vif_classes"] = json!(["VIFMagic"]));
    mutate("bad-network-id", &|v| v["networks"][0]["id"] = json!("x"));
    mutate("networks-object", &|v| v["networks"] = json!({"a": 1}));
    mutate("unknown-network-field", &|v| v["networks"][0]["colour"] = json!("red"));
    c.cases
}
