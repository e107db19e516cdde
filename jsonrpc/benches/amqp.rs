//! Benchmark (criterion): a JSON-RPC call's round trip through a RabbitMQ broker (`amqp://`,
//! docs/bus.md) against the same call over loopback TCP, side by side in one run (see
//! docs/benchmarks.md, "JSON-RPC over AMQP").
//!
//! The same server (vproto's `Server` answering `bench.echo` with its params) is bound on
//! `tcp:127.0.0.1:0` and on `amqp://BROKER/bench.node-1`, and called by vproto's `Client` over
//! each: one call at a time (the round trip), and 16 calls in flight (the time per call under
//! concurrency). The broker is a private Debian `rabbitmq-server` started for the run
//! (vproto-test-support); without one installed the AMQP targets are left out, saying so.
//! Everything runs on loopback.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use vproto_jsonrpc::{Client, ClientOptions, ConnectAddr, ListenAddr, RunningServer, Server};
use vproto_support::rpc::{BoxFuture, ClientTransport, Handler, Params, RpcError};
use vproto_test_support::rabbitmq::Broker;

/// Answers `bench.echo` with its params.
struct Echo;

impl Handler for Echo {
    fn handle<'a>(&'a self, _method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            Ok(match params {
                Params::ByPosition(items) => Value::Array(items),
                Params::ByName(map) => Value::Object(map),
                Params::None => Value::Null,
            })
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["bench.echo"]
    }
}

/// Concurrent callers of the loaded measurement.
const IN_FLIGHT: u64 = 16;

/// `iters` calls, `in_flight` at a time over one client; the time they took.
async fn calls(client: &Client, iters: u64, in_flight: u64) -> Duration {
    let params = json!({"text": "x".repeat(64)});
    let start = Instant::now();
    let per_caller = iters.div_ceil(in_flight);
    let callers = (0..in_flight).map(|_| async {
        for _ in 0..per_caller {
            black_box(client.request("bench.echo", params.clone()).await.expect("an answer"));
        }
    });
    futures_util::future::join_all(callers).await;
    start.elapsed().mul_f64(iters as f64 / (per_caller * in_flight) as f64)
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let broker = match Broker::skip_reason() {
        None => Some(Broker::start()),
        Some(why) => {
            eprintln!("AMQP targets left out: {why}");
            None
        }
    };
    let mut servers: Vec<RunningServer> = Vec::new();
    let mut targets: Vec<(&str, Client)> = Vec::new();
    runtime.block_on(async {
        let tcp = Server::new(Echo).bind(&"tcp:127.0.0.1:0".parse().unwrap()).await.expect("bind tcp");
        let at = ConnectAddr::Listen(tcp.local_addr().clone());
        targets.push(("tcp", Client::connect(&at, ClientOptions::default()).await.expect("connect tcp")));
        servers.push(tcp);
        if let Some(broker) = &broker {
            let addr: ListenAddr = format!("{}/bench.node-1", broker.url()).parse().unwrap();
            servers.push(Server::new(Echo).bind(&addr).await.expect("serve on the broker"));
            let client = Client::connect(&ConnectAddr::Listen(addr), ClientOptions::default()).await;
            targets.push(("amqp", client.expect("connect through the broker")));
        }
    });
    let mut group = c.benchmark_group("round_trip");
    group.measurement_time(Duration::from_secs(5));
    for (name, client) in &targets {
        group.bench_function(format!("{name}/1"), |b| b.iter_custom(|iters| runtime.block_on(calls(client, iters, 1))));
        group.bench_function(format!("{name}/{IN_FLIGHT}"), |b| {
            b.iter_custom(|iters| runtime.block_on(calls(client, iters, IN_FLIGHT)))
        });
    }
    group.finish();
    drop(targets);
    runtime.block_on(async {
        for server in servers {
            server.shutdown().await;
        }
    });
    drop(broker);
}

criterion_group!(benches, bench);
criterion_main!(benches);
