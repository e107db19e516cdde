//! Listen and connect addresses, as given on a command line:
//! `unix:PATH`, `tcp:HOST:PORT`, `stdio`, `http://HOST:PORT`, `vchan:PEER:XS_PATH`,
//! `amqp://HOST:PORT[/VHOST]/SERVICE[.HOST]`, and for clients `exec:COMMAND`;
//! and the `HOST:PORT` a server announces to its peers, dialled with a [`HostPortScheme`].

use std::{fmt, path::PathBuf, str::FromStr};

pub use super::{
    amqp::{AmqpAddr, AmqpBroker, Route as AmqpRoute},
    vchan::VchanAddr,
};

/// The forms an address may take, for error messages.
const LISTEN_FORMS: &str =
    "unix:PATH, tcp:HOST:PORT, stdio, http://HOST:PORT, vchan:PEER:XS_PATH or amqp://HOST:PORT[/VHOST]/SERVICE[.HOST]";
const CONNECT_FORMS: &str = "unix:PATH, tcp:HOST:PORT, stdio, http://HOST:PORT, vchan:PEER:XS_PATH, \
                             amqp://HOST:PORT[/VHOST]/SERVICE[.HOST] or exec:COMMAND";

/// Why an address string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address `{input}`: {reason}")]
pub struct AddrError {
    /// The string given.
    pub input: String,
    /// What is wrong with it and what was expected.
    pub reason: String,
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// `unix:PATH`: a Unix socket, created mode 0600. Newline-delimited JSON; no token.
    Unix(PathBuf),
    /// `tcp:HOST:PORT`: newline-delimited JSON over TCP. Port 0 picks a free port.
    Tcp {
        /// A host name or IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// `stdio`: newline-delimited JSON over the process's stdin and stdout; one connection.
    Stdio,
    /// `http://HOST:PORT`: JSON-RPC on `POST /jsonrpc` plus REST routes.
    Http {
        /// A host name or IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// `vchan:PEER:XS_PATH`: newline-delimited JSON over a Xen vchan with domain PEER, published
    /// at XS_PATH in Xenstore (see [`super::vchan`]). No token: only PEER can connect.
    Vchan(VchanAddr),
    /// `amqp://[USER:PASS@]HOST:PORT[/VHOST]/SERVICE[.HOST]`: JSON-RPC over a RabbitMQ broker
    /// (see [`super::amqp`]). A server consumes the service's shared queue, the instance's
    /// queue and the fanout; a client calls whichever the address names. No token: the
    /// broker's credentials admit.
    Amqp(AmqpAddr),
}

/// Where a client connects: a [`ListenAddr`], or a command to spawn and talk to over its
/// stdin/stdout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectAddr {
    /// Any address a server listens on (`stdio` means this process's own stdin/stdout).
    Listen(ListenAddr),
    /// `exec:COMMAND`: run COMMAND with `sh -c` and speak newline-delimited JSON over its
    /// stdin/stdout; its stderr is inherited.
    Exec(String),
}

fn error(input: &str, reason: impl Into<String>) -> AddrError {
    AddrError { input: input.to_string(), reason: reason.into() }
}

/// Parses `HOST:PORT` (IPv6 hosts in brackets).
fn host_port_of(input: &str, rest: &str, form: &str) -> Result<(String, u16), AddrError> {
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(error(input, format!("expected {form} (the port is missing)")));
    };
    let host = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').ok_or_else(|| error(input, "an IPv6 host needs its closing `]`"))?
    } else if host.contains(':') {
        return Err(error(input, format!("put an IPv6 host in brackets, as in {}", form.replace("HOST", "[::1]"))));
    } else {
        host
    };
    if host.is_empty() {
        return Err(error(input, format!("expected {form} (the host is missing; use 127.0.0.1 for loopback only)")));
    }
    let port = port.parse::<u16>().map_err(|_| error(input, format!("`{port}` is not a port number (0-65535)")))?;
    Ok((host.to_string(), port))
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        if input == "stdio" {
            return Ok(ListenAddr::Stdio);
        }
        if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(error(input, "expected unix:PATH (the path is missing)"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = input.strip_prefix("tcp:") {
            let (host, port) = host_port_of(input, rest, "tcp:HOST:PORT")?;
            return Ok(ListenAddr::Tcp { host, port });
        }
        if let Some(rest) = input.strip_prefix("http://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') {
                return Err(error(input, "expected http://HOST:PORT without a path (JSON-RPC is served on /jsonrpc)"));
            }
            let (host, port) = host_port_of(input, rest, "http://HOST:PORT")?;
            return Ok(ListenAddr::Http { host, port });
        }
        if input.starts_with("vchan:") {
            return input.parse().map(ListenAddr::Vchan);
        }
        if input.starts_with("amqp://") || input.starts_with("amqps://") {
            return input.parse().map(ListenAddr::Amqp);
        }
        if input.starts_with("https://") {
            return Err(error(input, "https is not served; listen on http://127.0.0.1:PORT behind a TLS proxy"));
        }
        if input.starts_with("exec:") {
            return Err(error(input, format!("exec: is for clients only; a server listens on {LISTEN_FORMS}")));
        }
        Err(error(input, format!("expected {LISTEN_FORMS}")))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Tcp { host, port } => write!(f, "tcp:{}:{port}", bracketed(host)),
            ListenAddr::Stdio => f.write_str("stdio"),
            ListenAddr::Http { host, port } => write!(f, "http://{}:{port}", bracketed(host)),
            ListenAddr::Vchan(addr) => addr.fmt(f),
            ListenAddr::Amqp(addr) => addr.fmt(f),
        }
    }
}

impl ListenAddr {
    /// The `HOST:PORT` a server listening here can announce for peers to dial (with the
    /// [`HostPortScheme`] of its kind): `None` for `unix:` and `stdio`, which are not reached by
    /// host and port; an error for a wildcard host (`0.0.0.0`, `::`), which peers cannot dial.
    pub fn announced_host_port(&self) -> Option<Result<String, WildcardHost>> {
        let (host, port) = match self {
            ListenAddr::Tcp { host, port } | ListenAddr::Http { host, port } => (host, *port),
            ListenAddr::Unix(_) | ListenAddr::Stdio | ListenAddr::Vchan(_) | ListenAddr::Amqp(_) => return None,
        };
        if matches!(host.as_str(), "0.0.0.0" | "::" | "[::]") {
            return Some(Err(WildcardHost(self.clone())));
        }
        Some(Ok(format!("{}:{port}", bracketed(host))))
    }
}

/// A server listening on every address cannot say where peers reach it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} listens on every address, so it cannot tell peers where to reach it")]
pub struct WildcardHost(pub ListenAddr);

/// How a peer dials a `HOST:PORT` another component announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HostPortScheme {
    /// `tcp:HOST:PORT`: newline-delimited JSON-RPC over TCP.
    #[default]
    Tcp,
    /// `http://HOST:PORT`: JSON-RPC over HTTP (`POST /jsonrpc`).
    Http,
}

/// A [`HostPortScheme`] was not `tcp` or `http`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a scheme to dial HOST:PORT with (expected tcp or http)")]
pub struct UnknownScheme(pub String);

impl HostPortScheme {
    /// The address `host_port` (`HOST:PORT`, an IPv6 host in brackets) is dialled at.
    pub fn connect_addr(self, host_port: &str) -> Result<ConnectAddr, AddrError> {
        let (host, port) = host_port_of(host_port, host_port, "HOST:PORT")?;
        Ok(ConnectAddr::Listen(match self {
            HostPortScheme::Tcp => ListenAddr::Tcp { host, port },
            HostPortScheme::Http => ListenAddr::Http { host, port },
        }))
    }
}

impl FromStr for HostPortScheme {
    type Err = UnknownScheme;

    fn from_str(text: &str) -> Result<Self, UnknownScheme> {
        match text {
            "tcp" => Ok(HostPortScheme::Tcp),
            "http" => Ok(HostPortScheme::Http),
            other => Err(UnknownScheme(other.to_string())),
        }
    }
}

impl fmt::Display for HostPortScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostPortScheme::Tcp => "tcp",
            HostPortScheme::Http => "http",
        })
    }
}

impl FromStr for ConnectAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        if let Some(command) = input.strip_prefix("exec:") {
            if command.trim().is_empty() {
                return Err(error(input, "expected exec:COMMAND (the command is missing)"));
            }
            return Ok(ConnectAddr::Exec(command.to_string()));
        }
        input.parse::<ListenAddr>().map(ConnectAddr::Listen).map_err(|mut error| {
            if error.reason.contains(LISTEN_FORMS) {
                error.reason = format!("expected {CONNECT_FORMS}");
            }
            error
        })
    }
}

impl fmt::Display for ConnectAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectAddr::Listen(addr) => addr.fmt(f),
            ConnectAddr::Exec(command) => write!(f, "exec:{command}"),
        }
    }
}

impl From<ListenAddr> for ConnectAddr {
    fn from(addr: ListenAddr) -> Self {
        ConnectAddr::Listen(addr)
    }
}

/// Starts `command` with `sh -c` for an `exec:` address: a server speaking on its stdin and
/// stdout, its stderr passed through, killed when the returned child is dropped.
pub fn spawn_exec(
    command: &str,
) -> std::io::Result<(tokio::process::Child, tokio::process::ChildStdout, tokio::process::ChildStdin)> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    match (child.stdout.take(), child.stdin.take()) {
        (Some(read), Some(write)) => Ok((child, read, write)),
        _ => Err(std::io::Error::other("the child's pipes are missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_host_port_is_dialled_back_at_the_same_address() {
        for (listen, scheme) in [("tcp:127.0.0.1:4000", HostPortScheme::Tcp), ("http://[::1]:80", HostPortScheme::Http)]
        {
            let listen: ListenAddr = listen.parse().unwrap();
            let announced = listen.announced_host_port().unwrap().unwrap();
            assert_eq!(scheme.connect_addr(&announced).unwrap(), ConnectAddr::Listen(listen));
        }
    }

    #[test]
    fn wildcards_and_sockets_announce_nothing_dialable() {
        let wildcard: ListenAddr = "tcp:0.0.0.0:4000".parse().unwrap();
        assert!(wildcard.announced_host_port().unwrap().is_err());
        assert!(ListenAddr::Stdio.announced_host_port().is_none());
        assert!("unix:/tmp/x".parse::<ListenAddr>().unwrap().announced_host_port().is_none());
    }

    #[test]
    fn schemes_parse_and_print() {
        assert_eq!("http".parse::<HostPortScheme>().unwrap().to_string(), "http");
        assert_eq!(HostPortScheme::default(), HostPortScheme::Tcp);
        assert!("udp".parse::<HostPortScheme>().unwrap_err().to_string().contains("tcp or http"));
    }
}
