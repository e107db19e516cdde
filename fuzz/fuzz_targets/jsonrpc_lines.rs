//! The JSON-RPC frame reader and request parser: bytes as a line connection delivers them,
//! framed (with a small size limit, so oversized lines are exercised), each frame parsed and
//! answered by the engine (a handler that echoes its params), every answer valid JSON
//! (syntax: a request id is echoed as it came, and `1e400` is valid JSON no f64 holds).
#![no_main]

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use serde_json::{value::RawValue, Value};
use vproto_jsonrpc::{
    transport::framing::{Line, LineReader},
    Engine, InFlight, Limits,
};
use vproto_support::rpc::{BoxFuture, Handler, Params, RpcError};

struct Echo;

impl Handler for Echo {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            match method {
                "test.echo" => Ok(Value::Object(params.into_named(&["a", "b"])?)),
                other => Err(RpcError::method_not_found(other)),
            }
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["test.echo"]
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(Arc::new(Echo), Limits { max_message_size: 4096, ..Limits::default() }))
}

fuzz_target!(|data: &[u8]| {
    let engine = engine();
    let in_flight = InFlight::new(64);
    let mut reader = LineReader::new(data, 4096);
    loop {
        let line = reader.next().now_or_never().expect("reading a slice never waits");
        let frame = match line {
            Ok(Some(Line::Frame(frame))) => frame.to_vec(),
            Ok(Some(Line::TooLarge)) => continue,
            Ok(None) | Err(_) => break,
        };
        let reply = engine.handle(&frame, &in_flight).now_or_never().expect("the echo handler never waits");
        if let Some(text) = reply.text {
            // Raw: ids are echoed byte for byte, and `1e400` is JSON that no f64 holds.
            serde_json::from_str::<Box<RawValue>>(&text).expect("every answer is JSON");
        }
    }
});
