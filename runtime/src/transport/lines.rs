//! One line-framed connection (unix, tcp, stdio): a reader that frames, authenticates and
//! admits calls, frame tasks that run them, and a writer that sends one response per line.
//!
//! Backpressure: replies go through a bounded channel, so a peer that stops reading stops
//! being read; a reply that cannot be written within the idle timeout ends the connection.
//! Each reply holds its calls' in-flight slots until it is written.

use std::sync::Arc;

use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{mpsc, watch},
    task::JoinSet,
    time::timeout,
};
use vproto_api::rpc::Params;

use super::{
    framing::{Line, LineReader},
    server::Signal,
};
use crate::{
    auth::Token,
    jsonrpc::{
        engine::{message_too_large, unauthorized},
        Engine, Entry, Id, InFlight, Incoming, Reply, Response,
    },
};

const BUFFER: usize = 64 * 1024;

/// What the auth step decided about a frame.
enum AuthStep {
    /// Not an auth matter: dispatch it.
    Dispatch,
    /// Answer this (or nothing) and go on.
    Answer(Option<String>),
    /// Answer this and close the connection.
    Refuse(String),
}

/// The token a call to `rpc.auth` carries, by name (`{"token": ...}`) or first position.
fn token_param(params: &Params) -> Option<&str> {
    match params {
        Params::ByName(map) => map.get("token").and_then(Value::as_str),
        Params::ByPosition(items) => items.first().and_then(Value::as_str),
        Params::None => None,
    }
}

/// Handles `rpc.auth`: required first when the connection has a token; answered `true`
/// afterwards (and on connections without a token) unless the handler serves it itself.
fn auth_step(engine: &Engine, incoming: &Incoming, token: Option<&Token>, authed: &mut bool) -> AuthStep {
    let call = match incoming {
        Incoming::Single(Entry::Call(call)) => Some(call),
        _ => None,
    };
    let is_auth = call.is_some_and(|call| call.method == "rpc.auth");
    if *authed {
        if is_auth && !engine.serves("rpc.auth") {
            let id = call.and_then(|call| call.id.clone());
            return AuthStep::Answer(id.map(|id| Response::result(id, Value::Bool(true)).to_json()));
        }
        return AuthStep::Dispatch;
    }
    let reply_id = call.and_then(|call| call.id.clone()).unwrap_or_else(Id::null);
    let refuse = |detail: &str| AuthStep::Refuse(Response::error(reply_id.clone(), unauthorized(detail)).to_json());
    let Some(call) = call.filter(|_| is_auth) else {
        return refuse("the first call on this connection must be rpc.auth with the token");
    };
    if call.id.is_none() {
        return refuse("rpc.auth must be a request (with an id), not a notification");
    }
    match (token, token_param(&call.params)) {
        (Some(token), Some(given)) if token.matches(given) => {
            *authed = true;
            AuthStep::Answer(Some(Response::result(reply_id, Value::Bool(true)).to_json()))
        }
        (_, None) => refuse("rpc.auth needs params {\"token\": \"...\"}"),
        _ => refuse("wrong token"),
    }
}

/// Serves one line-framed connection until the peer closes it, it idles out, it breaks the
/// auth rule, or the server shuts down; then waits for its running calls and their replies.
pub(crate) async fn serve<R, W>(engine: Arc<Engine>, read: R, write: W, token: Option<Arc<Token>>, shutdown: Signal)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = engine.limits().clone();
    let (tx, rx) = mpsc::channel::<Reply>(32);
    let (dead_tx, dead_rx) = watch::channel(false);
    let reading = read_loop(engine, read, tx, token, shutdown, dead_rx);
    let writing = write_loop(write, rx, limits.idle_timeout, dead_tx);
    tokio::join!(reading, writing);
}

async fn read_loop<R: AsyncRead + Unpin>(
    engine: Arc<Engine>,
    read: R,
    tx: mpsc::Sender<Reply>,
    token: Option<Arc<Token>>,
    mut shutdown: Signal,
    mut dead: watch::Receiver<bool>,
) {
    let limits = engine.limits().clone();
    let mut reader = LineReader::new(BufReader::with_capacity(BUFFER, read), limits.max_message_size);
    let in_flight = InFlight::new(limits.max_in_flight);
    let mut frames = JoinSet::new();
    let mut authed = token.is_none();
    let mut refused = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = dead.wait_for(|dead| *dead) => break,
            next = timeout(limits.idle_timeout, reader.next()) => next,
        };
        while frames.try_join_next().is_some() {}
        let line = match next {
            Err(_idle) if in_flight.running() > 0 => continue,
            Err(_idle) => {
                tracing::debug!("closing an idle connection");
                break;
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "connection read failed");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        let frame = match line {
            Line::Frame(frame) => frame,
            Line::TooLarge => {
                let text = Response::error(Id::null(), message_too_large(limits.max_message_size)).to_json();
                if tx.send(Reply::immediate(Some(text))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let incoming = engine.parse(&frame);
        drop(frame);
        match auth_step(&engine, &incoming, token.as_deref(), &mut authed) {
            AuthStep::Dispatch => {}
            AuthStep::Answer(text) => {
                if text.is_some() && tx.send(Reply::immediate(text)).await.is_err() {
                    break;
                }
                continue;
            }
            AuthStep::Refuse(text) => {
                let _ = tx.send(Reply::immediate(Some(text))).await;
                refused = true;
                break;
            }
        }
        let admitted = engine.admit(incoming, &in_flight);
        if admitted.needs_handler() {
            let (engine, tx) = (engine.clone(), tx.clone());
            frames.spawn(async move {
                let reply = engine.run(admitted).await;
                if reply.text.is_some() {
                    let _ = tx.send(reply).await;
                }
            });
        } else {
            let reply = engine.run(admitted).await;
            if reply.text.is_some() && tx.send(reply).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    if refused {
        // Read what the peer already sent for a moment, so closing does not reset the
        // connection before it has read the refusal.
        let _ = timeout(std::time::Duration::from_secs(1), async {
            for _ in 0..64 {
                if !matches!(reader.next().await, Ok(Some(_))) {
                    break;
                }
            }
        })
        .await;
    }
    // Running calls finish and their replies are written (or dropped if the peer is gone).
    while frames.join_next().await.is_some() {}
}

async fn write_loop<W: AsyncWrite + Unpin>(
    write: W,
    mut rx: mpsc::Receiver<Reply>,
    idle: std::time::Duration,
    dead: watch::Sender<bool>,
) {
    let mut out = BufWriter::with_capacity(BUFFER, write);
    let mut alive = true;
    while let Some(reply) = rx.recv().await {
        let Some(text) = reply.text.as_deref().filter(|_| alive) else { continue };
        let more = !rx.is_empty();
        let written = timeout(idle, async {
            out.write_all(text.as_bytes()).await?;
            out.write_all(b"\n").await?;
            if !more {
                out.flush().await?;
            }
            std::io::Result::Ok(())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!("peer stopped reading; dropping its answers");
            alive = false;
            let _ = dead.send(true);
        }
        // Dropping the reply frees its in-flight slots.
    }
    if alive {
        let _ = timeout(idle, async {
            out.flush().await?;
            out.shutdown().await
        })
        .await;
    }
}
