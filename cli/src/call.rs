//! `vproto call --connect ADDR METHOD [PARAMS-JSON]`: a generic client driven by the schema.
//!
//! METHOD is looked up in the published JSON Schema (`$defs` holds `{service}.{method}.params`);
//! the params (a JSON object, by name; `-` reads them from stdin; none means `{}`) are checked
//! locally with the same validation the generated dispatchers run, so a bad call is refused
//! before anything is sent. The result is printed as pretty JSON on stdout. Exit codes: 0 on
//! success, 1 when the server answers an error or cannot be reached, 2 for bad usage or params.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Map, Value};
use vproto_api::{ProtocolError, JSON_SCHEMA};
use vproto_jsonrpc::{load_token, Client, ClientOptions, ConnectAddr};
use vproto_support::rpc::{codes, validate_params, violations, CallError, ClientTransport, DeclaredError, RpcError};

use crate::{duration::parse_duration, CliError};

/// Arguments of `vproto call`.
#[derive(clap::Args)]
pub struct CallArgs {
    /// The server: unix:PATH, tcp:HOST:PORT, http://HOST:PORT, vchan:PEER:XS_PATH, stdio or exec:COMMAND.
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// The method, as service.method (such as conductor.list_hardware), or rpc.discover.
    method: String,
    /// The params as a JSON object (by name); `-` reads them from stdin [default: {}].
    #[arg(value_name = "PARAMS-JSON")]
    params: Option<String>,
    /// A file (mode 0600) holding the token the server requires (tcp:, http://).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Longest wait for the answer, such as 30s [default: 60s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    #[command(flatten)]
    tls: crate::security::TlsArgs,
}

/// The methods of the schema, as `service.method`, sorted.
fn schema_methods() -> Vec<String> {
    let schema: Value = serde_json::from_str(JSON_SCHEMA).expect("the generated JSON Schema is JSON");
    let mut methods: Vec<String> = schema["$defs"]
        .as_object()
        .map(|defs| defs.keys().filter_map(|key| key.strip_suffix(".params")).map(str::to_string).collect())
        .unwrap_or_default();
    methods.sort();
    methods
}

/// The known methods (or events: any `service.name`) close to `method`: a small edit away, or
/// with the same name in another service, or those of the service named.
pub(crate) fn close_names<'a>(method: &str, known: &'a [String]) -> Vec<&'a str> {
    let (service, name) = method.split_once('.').unwrap_or(("", method));
    let mut close: Vec<&str> = known
        .iter()
        .filter(|candidate| {
            let (other_service, other_name) = candidate.split_once('.').unwrap_or(("", candidate));
            strsim::levenshtein(method, candidate) <= 3.max(method.len() / 4)
                || other_name == name
                || other_name == method
                || (!service.is_empty() && other_service == service)
        })
        .map(String::as_str)
        .collect();
    close.dedup();
    close
}

fn unknown_method(method: &str, known: &[String]) -> CliError {
    let close = close_names(method, known);
    let mut message = format!("unknown method `{method}`");
    if !close.is_empty() {
        message.push_str(&format!("; did you mean {}?", close.join(", ")));
    }
    message.push_str(&format!("\n  methods: {}, rpc.discover", known.join(", ")));
    CliError::usage(message)
}

/// The params given on the command line, as a JSON object.
fn read_params(text: Option<&str>) -> Result<Map<String, Value>, CliError> {
    let text = match text {
        None => return Ok(Map::new()),
        Some("-") => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| CliError::usage(format!("cannot read params from stdin: {e}")))?;
            input
        }
        Some(text) => text.to_string(),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Array(_)) => {
            Err(CliError::usage("give the params by name, as a JSON object such as {\"registration\": {...}}"))
        }
        Ok(other) => Err(CliError::usage(format!("the params must be a JSON object, not {other}"))),
        Err(error) => Err(CliError::usage(format!("the params are not valid JSON: {error}"))),
    }
}

/// A -32602 answer's violations, one per line.
fn violation_lines(data: Option<&Value>) -> String {
    match data.and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .map(|item| {
                let pointer = item["pointer"].as_str().filter(|p| !p.is_empty()).unwrap_or("(params)");
                format!("\n  {pointer}: {}", item["message"].as_str().unwrap_or("invalid"))
            })
            .collect(),
        None => data.map(|data| format!("\n  {data}")).unwrap_or_default(),
    }
}

/// The name of an error code: the schema's errors, then JSON-RPC's.
fn error_name(error: &RpcError) -> Option<&'static str> {
    if let Some(Ok(declared)) = ProtocolError::from_rpc(error) {
        return Some(declared.name());
    }
    Some(match error.code {
        codes::PARSE_ERROR => "ParseError",
        codes::INVALID_REQUEST => "InvalidRequest",
        codes::METHOD_NOT_FOUND => "MethodNotFound",
        codes::INVALID_PARAMS => "InvalidParams",
        codes::INTERNAL_ERROR => "InternalError",
        codes::LIMIT_EXCEEDED => "LimitExceeded",
        codes::UNAUTHORIZED => "Unauthorized",
        codes::FORBIDDEN => "Forbidden",
        _ => return None,
    })
}

/// A server's error answer, readably: code, name, message, then the data.
pub(crate) fn describe(method: &str, error: &RpcError) -> String {
    let name = error_name(error).map(|name| format!(" {name}")).unwrap_or_default();
    let mut text = format!("{method} failed: error {}{name}: {}", error.code, error.message);
    if error.code == codes::INVALID_PARAMS {
        text.push_str(&violation_lines(error.data.as_ref()));
    } else if let Some(data) = &error.data {
        let pretty = serde_json::to_string_pretty(data).unwrap_or_else(|_| data.to_string());
        text.push_str(&format!("\n  data: {}", pretty.replace('\n', "\n  ")));
    }
    text
}

/// A client command's `--connect`, `--token-file` and `--timeout` (`default` when not given):
/// the address, and options with the token, the timeout for answers and at most 10 s of it for
/// connecting. Every problem is a usage error naming its option.
pub(crate) fn client_args(
    connect: &str,
    token_file: Option<&Path>,
    timeout: Option<&str>,
    default: Duration,
) -> Result<(ConnectAddr, ClientOptions), CliError> {
    let addr: ConnectAddr = connect.parse().map_err(|e| CliError::usage(format!("--connect: {e}")))?;
    let token = token_file
        .map(|path| load_token(path).map_err(|e| CliError::usage(format!("--token-file: {e}"))))
        .transpose()?;
    let request_timeout = match timeout {
        Some(text) => parse_duration(text).map_err(|e| CliError::usage(format!("--timeout: {e}")))?,
        None => default,
    };
    let options = ClientOptions {
        token,
        request_timeout,
        connect_timeout: request_timeout.min(Duration::from_secs(10)),
        ..ClientOptions::default()
    };
    Ok((addr, options))
}

/// Runs `vproto call`.
pub async fn run(args: CallArgs) -> Result<(), CliError> {
    let method = args.method.as_str();
    let params = read_params(args.params.as_deref())?;
    let known = schema_methods();
    let params = if method == "rpc.discover" {
        if !params.is_empty() {
            return Err(CliError::usage("rpc.discover takes no params"));
        }
        params
    } else if known.iter().any(|m| m == method) {
        let def: &'static str = Box::leak(format!("{method}.params").into_boxed_str());
        validate_params(JSON_SCHEMA, def, params).map_err(|error| {
            CliError::usage(format!("invalid params for {method}{}", violation_lines(error.data.as_ref())))
        })?
    } else {
        return Err(unknown_method(method, &known));
    };
    let (addr, options) =
        client_args(&args.connect, args.token_file.as_deref(), args.timeout.as_deref(), Duration::from_secs(60))?;
    let options = ClientOptions { tls: args.tls.client()?, ..options };
    let answer = async {
        let client = Client::connect(&addr, options).await?;
        client.request(method, Value::Object(params)).await
    }
    .await;
    match answer {
        Ok(result) => {
            if method != "rpc.discover" {
                let def: &'static str = Box::leak(format!("{method}.result").into_boxed_str());
                if let Ok(problems) = violations(JSON_SCHEMA, def, &result) {
                    for (pointer, message) in problems {
                        eprintln!("vproto call: warning: the result does not fit the schema at `{pointer}`: {message}");
                    }
                }
            }
            let text = serde_json::to_string_pretty(&result).map_err(|e| CliError::failed(e.to_string()))?;
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
                // A reader that stopped early (`| head`) is not an error.
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(CliError::failed(format!("cannot write the result: {error}")))
                }
                _ => Ok(()),
            }
        }
        Err(CallError::Rpc(error)) => Err(CliError::failed(describe(method, &error))),
        Err(CallError::Transport(why)) => Err(CliError::failed(format!("{method} via {addr}: {why}"))),
        Err(CallError::Decode(error)) => Err(CliError::failed(format!("{method}: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_method_is_known() {
        let known = schema_methods();
        for method in ["driver.list_hardware", "agent.hello", "conductor.list_agents", "network.create_port"] {
            assert!(known.iter().any(|m| m == method), "{method} in {known:?}");
        }
    }

    #[test]
    fn close_names_catch_typos_and_wrong_services() {
        let known = schema_methods();
        assert!(close_names("conductor.list_hardwar", &known).contains(&"conductor.list_hardware"));
        let moved = close_names("driver.list_agents", &known);
        assert!(moved.contains(&"conductor.list_agents"), "{moved:?}");
        assert!(close_names("list_agents", &known).contains(&"conductor.list_agents"));
        assert!(close_names("xyzzy", &known).is_empty());
    }

    #[test]
    fn errors_are_described_with_code_name_message_and_data() {
        let error = RpcError::new(1002, "Network not found")
            .with_data(serde_json::json!({"network_id": "7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50"}));
        let text = describe("network.create_port", &error);
        assert!(
            text.starts_with("network.create_port failed: error 1002 NetworkNotFound: Network not found\n  data: {")
        );
        assert!(text.contains("\"network_id\": \"7a1c9e52-4b3d-4f8e-a6c2-1d9b8e7f6a50\""), "{text}");
        let invalid = RpcError::invalid_params([("/port_id", "not a uuid")]);
        assert!(describe("network.create_port", &invalid).ends_with("\n  /port_id: not a uuid"));
    }
}
