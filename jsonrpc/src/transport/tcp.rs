//! `tcp:HOST:PORT`: line-framed connections over TCP, with an optional token.

use std::io;

use tokio::net::TcpListener;

use super::addr::ListenAddr;

/// Binds HOST:PORT (the first resolved address that binds) and returns the listener with its
/// actual address (port 0 resolved). Warns when a non-loopback listener has no token.
pub(crate) async fn bind(host: &str, port: u16, has_token: bool, http: bool) -> io::Result<(TcpListener, ListenAddr)> {
    let listener = TcpListener::bind((host, port)).await?;
    let local = listener.local_addr()?;
    if !has_token && !local.ip().is_loopback() {
        tracing::warn!(address = %local, "listening beyond loopback without a token: anyone who can reach it can call");
    }
    let (host, port) = (local.ip().to_string(), local.port());
    let addr = if http { ListenAddr::Http { host, port } } else { ListenAddr::Tcp { host, port } };
    Ok((listener, addr))
}
