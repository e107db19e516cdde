//! The accept loop shared by the socket listeners: a connection slot per connection, a
//! refusal for connections over the limit, and the drain at shutdown.

use std::{io, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    sync::Semaphore,
    task::JoinSet,
    time::timeout,
};
use tokio_rustls::TlsAcceptor;
use vproto_listen::{ShutdownSignal, SocketFile};
use vproto_vchan::{Vchan, VchanListener};

use super::{
    http::{self, HttpShared},
    lines,
};
use crate::{
    auth::Credentials,
    engine::{too_many_connections, Engine},
    message::{Id, Response},
};

/// A bound socket listener (TCP with its TLS, when it speaks TLS).
pub(super) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener, Option<TlsAcceptor>),
    Vchan(VchanListener),
}

/// An accepted connection.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Vchan(Vchan),
}

/// What is spoken on the accepted connections.
pub(super) enum Protocol {
    /// Newline-delimited JSON-RPC, with a token required first (tcp) or not (unix).
    Lines(Option<Arc<Credentials>>),
    /// HTTP/1.1.
    Http(Arc<HttpShared>),
}

impl Listener {
    async fn accept(&mut self) -> io::Result<Stream> {
        match self {
            Listener::Unix(listener) => listener.accept().await.map(|(stream, _)| Stream::Unix(stream)),
            Listener::Tcp(listener, _) => listener.accept().await.map(|(stream, _)| Stream::Tcp(stream)),
            Listener::Vchan(listener) => listener.accept().await.map(Stream::Vchan).map_err(io::Error::other),
        }
    }
}

impl Stream {
    /// Best-effort write to a fresh connection's empty send buffer, without waiting.
    fn try_write(&self, bytes: &[u8]) {
        let _ = match self {
            Stream::Unix(stream) => stream.try_write(bytes),
            Stream::Tcp(stream) => stream.try_write(bytes),
            Stream::Vchan(chan) => chan.try_write(bytes),
        };
    }

    /// Sends `bytes`, closes the sending side, and reads (and discards) what the peer already
    /// sent for a moment, so that closing does not reset the connection and lose the message.
    async fn say_and_close(self, bytes: Vec<u8>) {
        async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: Vec<u8>) {
            let moment = Duration::from_secs(1);
            if timeout(moment, stream.write_all(&bytes)).await.is_err() {
                return;
            }
            let _ = timeout(moment, stream.shutdown()).await;
            let mut sink = [0u8; 4096];
            let _ = timeout(moment, async {
                let mut left: usize = 64 * 1024;
                while left > 0 {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            })
            .await;
        }
        match self {
            Stream::Unix(stream) => linger(stream, bytes).await,
            Stream::Tcp(stream) => linger(stream, bytes).await,
            Stream::Vchan(chan) => linger(chan, bytes).await,
        }
    }
}

/// Refuses a connection over the limit with `message`; a bounded number of refusals linger
/// to be delivered cleanly, the rest are written best-effort and dropped.
fn refuse(stream: Stream, message: Vec<u8>, lingering: &Arc<Semaphore>) {
    match lingering.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(async move {
                stream.say_and_close(message).await;
                drop(permit);
            });
        }
        Err(_) => stream.try_write(&message),
    }
}

/// The TLS handshake of an accepted connection, within the idle timeout (10 s at most); `None`
/// (logged) when it fails or takes too long.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    match timeout(limit.min(Duration::from_secs(10)), acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "no TLS handshake within the time allowed");
            None
        }
    }
}

/// Descriptors kept for everything but this listener's connections (its refusals, other
/// listeners, outgoing connections, files), out of the open-file limit.
fn reserved_descriptors(limit: u64) -> u64 {
    (limit / 16).clamp(64, 1024)
}

/// Raises the process's soft open-file limit (`RLIMIT_NOFILE`) so that `connections` fit,
/// as far as the hard limit allows (as Go's runtime does at start), and returns how many
/// connections fit under the limit it ends with (logged when fewer than asked).
fn fit_open_files(connections: usize) -> usize {
    let wanted = connections as u64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return connections;
    }
    let fits = |limit: u64| limit.saturating_sub(reserved_descriptors(limit));
    let needed = wanted.saturating_add(reserved_descriptors(wanted)).max(wanted);
    if fits(limit.rlim_cur) < wanted && limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: needed.min(limit.rlim_max), rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "raised the soft open-file limit (RLIMIT_NOFILE) for the connection limit"
            );
            limit.rlim_cur = raised.rlim_cur;
        } else {
            let error = io::Error::last_os_error();
            tracing::warn!(%error, to = raised.rlim_cur, "could not raise the soft open-file limit (RLIMIT_NOFILE)");
        }
    }
    let fit = fits(limit.rlim_cur).min(wanted);
    if fit < wanted {
        tracing::info!(
            max_connections = connections,
            serving = fit,
            open_files = limit.rlim_cur,
            hard = limit.rlim_max,
            "the open-file limit caps the connections served at once; raise its hard limit (ulimit -Hn, systemd's LimitNOFILE=) to serve more"
        );
    }
    usize::try_from(fit).unwrap_or(connections).max(1)
}

/// Accepts connections until shutdown, each served in its own task while a connection slot
/// is free; connections beyond [`crate::limits::Limits::max_connections`] (or what the
/// open-file limit allows, see [`fit_open_files`]) get one error and are closed.
pub(super) async fn accept_loop(
    mut listener: Listener,
    engine: Arc<Engine>,
    protocol: Protocol,
    signal: ShutdownSignal,
    socket_file: Option<SocketFile>,
) {
    let limits = engine.limits().clone();
    let max_connections = fit_open_files(limits.max_connections).min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let lingering = Arc::new(Semaphore::new(64));
    let tls = match &listener {
        Listener::Tcp(_, tls) => tls.clone(),
        _ => None,
    };
    let mut connections = JoinSet::new();
    // Whether accepting is failing (out of descriptors, most likely): logged once per spell.
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            _ = signal.wait() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok(stream) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("accepting connections again");
                }
                stream
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "accept failed; retrying every 50 ms while it fails");
                }
                // Out of file descriptors (or similar): let connections close before retrying.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = max_connections, "refusing a connection: too many connections");
            let error = too_many_connections(max_connections);
            let message = match &protocol {
                Protocol::Lines(_) => format!("{}\n", Response::error(Id::null(), error).to_json()),
                Protocol::Http(_) => http::refusal(&error),
            };
            refuse(stream, message.into_bytes(), &lingering);
            continue;
        };
        let (engine, signal, message_timeout) = (engine.clone(), signal.child(), limits.message_timeout);
        match (&protocol, stream) {
            (Protocol::Lines(_), Stream::Unix(stream)) => {
                let (read, write) = stream.into_split();
                connections.spawn(async move {
                    lines::serve(engine, read, write, None, Some(message_timeout), signal).await;
                    drop(slot);
                });
            }
            (Protocol::Lines(credentials), Stream::Tcp(stream)) => {
                let _ = stream.set_nodelay(true);
                let (credentials, tls, limit) = (credentials.clone(), tls.clone(), limits.idle_timeout);
                connections.spawn(async move {
                    match tls {
                        None => {
                            let (read, write) = stream.into_split();
                            lines::serve(engine, read, write, credentials, Some(message_timeout), signal).await;
                        }
                        Some(acceptor) => {
                            if let Some(stream) = handshake(acceptor, stream, limit).await {
                                let (read, write) = tokio::io::split(stream);
                                lines::serve(engine, read, write, credentials, Some(message_timeout), signal).await;
                            }
                        }
                    }
                    drop(slot);
                });
            }
            (Protocol::Http(shared), Stream::Tcp(stream)) => {
                let _ = stream.set_nodelay(true);
                let (shared, tls, limit) = (shared.clone(), tls.clone(), limits.idle_timeout);
                connections.spawn(async move {
                    match tls {
                        None => http::serve_connection(shared, stream, signal).await,
                        Some(acceptor) => {
                            if let Some(stream) = handshake(acceptor, stream, limit).await {
                                http::serve_connection(shared, stream, signal).await;
                            }
                        }
                    }
                    drop(slot);
                });
            }
            (Protocol::Lines(_), Stream::Vchan(chan)) => {
                let (read, write) = chan.into_split();
                connections.spawn(async move {
                    lines::serve(engine, read, write, None, Some(message_timeout), signal).await;
                    drop(slot);
                });
            }
            // HTTP is only bound on TCP.
            (Protocol::Http(_), Stream::Unix(_) | Stream::Vchan(_)) => drop(slot),
        }
    }
    drop(listener);
    drop(socket_file);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over: abandoning running calls");
        connections.shutdown().await;
    }
}
