//! JSON-RPC over AMQP 0-9-1 (RabbitMQ), routed as oslo.messaging routes RPC
//! ([docs/bus.md](../../../docs/bus.md)).
//!
//! - A broker is `amqp://[USER:PASS@]HOST[:PORT][/VHOST]` ([`AmqpBroker`]); a service on it is
//!   `amqp://[USER:PASS@]HOST[:PORT][/VHOST]/SERVICE[.HOST]` ([`AmqpAddr`]): the last path
//!   segment names the target, a segment before it the virtual host.
//! - A server of `SERVICE` on instance `HOST` consumes the durable queues `SERVICE` (shared by
//!   every instance: whichever is free answers) and `SERVICE.HOST` (this instance alone), and
//!   an exclusive queue bound to the fanout exchange `SERVICE_fanout` (every instance).
//! - Each JSON-RPC frame is one message: persistent, published with confirms (a call fails at
//!   once when the broker cannot route it), carrying `reply_to` (the caller's exclusive reply
//!   queue) and a `correlation_id`, and expiring after the caller's request timeout. A server
//!   acknowledges a message only once its answer is published (and confirmed), so a request
//!   the broker acknowledged is not lost when a server or the broker stops before answering:
//!   it is delivered again. Notifications are casts: no answer is sent. A fanout
//!   (`SERVICE.*`) carries notifications only.
//! - A client sees the bus as a line connection ([`connect`]): what it writes is published
//!   frame by frame, what comes back for it is read line by line, so the line client (ids,
//!   multiplexing, events) works over it unchanged. The clients of a process share one reply
//!   queue per broker connection and tell their replies apart by correlation id (`replies`);
//!   one that subscribes to events gets a queue of its own. When the broker connection is
//!   lost the reading side fails with why, failing the calls in flight; a new connection is a
//!   new reply queue.
//! - Events: `rpc.subscribe` sent to an instance subscribes the caller's reply queue; the
//!   server casts every event to it, written at the subscriber's versions, until the queue is
//!   gone or it unsubscribes.
//!
//! - Every client and server of a process reaches a broker through one shared connection
//!   (`connection`), each a channel on it; when the connection is lost they see it at once,
//!   and the first to need it again opens a new one the others share.
//! - `amqps://` is TLS to the broker (rustls), checked against the CA given
//!   ([`AmqpBroker::with_tls`], or the client's `ClientOptions::tls`).
//!
//! The server ([`serve`]) reconnects by itself, with backoff, until it is shut down, and
//! starts even when the broker cannot be reached yet: it connects once it can.

mod client;
mod connection;
mod replies;
mod server;

use std::{fmt, str::FromStr, sync::Arc};

use lapin::{publisher_confirm::Confirmation, BasicProperties};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

pub(super) use self::server::{open, serve};
pub use self::{
    client::connect,
    connection::{channels_to, connections_to},
};
use super::addr::AddrError;
use crate::tls::ClientTls;

/// The AMQP port an `amqp://` address without one means.
pub const DEFAULT_PORT: u16 = 5672;
/// The AMQP port an `amqps://` address without one means.
pub const DEFAULT_TLS_PORT: u16 = 5671;

/// The largest queue name AMQP allows, in bytes.
const MAX_QUEUE_NAME: usize = 255;

/// Where a RabbitMQ broker is: `amqp://[USER:PASS@]HOST[:PORT][/VHOST]`.
///
/// Its `Display` leaves the password out (`amqp://USER@HOST:PORT/VHOST`): it is what logs and
/// errors show. [`AmqpBroker::uri`] is the whole address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AmqpBroker {
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port (5672 when not given).
    pub port: u16,
    /// The user (`guest` when not given).
    pub user: String,
    /// The password (`guest` when not given).
    pub password: String,
    /// The virtual host (`/` when not given).
    pub vhost: String,
    /// `amqps://`: TLS to the broker (port 5671 when not given).
    pub secure: bool,
    /// The CA an `amqps://` broker's certificate is checked against, and the client
    /// certificate presented, when set ([`AmqpBroker::with_tls`]); a client without one uses
    /// its `ClientOptions::tls`. Not part of the address's text.
    pub tls: Option<ClientTls>,
}

impl fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which queue or exchange of a service a message goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `SERVICE`: the queue every instance of the service consumes; one of them answers.
    Shared,
    /// `SERVICE.HOST`: the queue of one instance.
    Instance(String),
    /// `SERVICE.*`: the fanout exchange `SERVICE_fanout`, which reaches every instance.
    /// Notifications only.
    Fanout,
}

/// A service on a broker: `amqp://[USER:PASS@]HOST[:PORT][/VHOST]/SERVICE[.HOST]`, or
/// `.../SERVICE.*` for its fanout. A server at an address with an instance consumes both the
/// shared and the instance queue (and the fanout); without one, the shared queue and the
/// fanout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AmqpAddr {
    /// The broker (shared: many addresses name one broker).
    pub broker: Arc<AmqpBroker>,
    /// The service (`agent`, `conductor`, ...): letters, digits, `_` and `-`.
    pub service: String,
    /// Which of its queues.
    pub route: Route,
}

fn invalid(input: &str, reason: impl Into<String>) -> AddrError {
    AddrError { input: input.to_string(), reason: reason.into() }
}

/// Checks a service name: non-empty letters, digits, `_` and `-`.
fn check_service(input: &str, service: &str) -> Result<(), AddrError> {
    if service.is_empty() {
        return Err(invalid(input, "the service name is missing (expected .../SERVICE[.HOST])"));
    }
    if let Some(bad) = service.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(invalid(input, format!("`{bad}` in the service name `{service}`: use letters, digits, _ and -")));
    }
    Ok(())
}

/// Checks an instance name: printable, no `/`, and short enough that `SERVICE.HOST` is a
/// queue name.
fn check_instance(input: &str, service: &str, host: &str) -> Result<(), AddrError> {
    if host.is_empty() {
        return Err(invalid(input, "the instance after `.` is empty (expected SERVICE.HOST)"));
    }
    if let Some(bad) = host.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '/' || *c == '*') {
        return Err(invalid(input, format!("{bad:?} in the instance name `{host}`")));
    }
    if service.len() + 1 + host.len() > MAX_QUEUE_NAME {
        return Err(invalid(input, format!("`{service}.{host}` is longer than a queue name may be (255 bytes)")));
    }
    Ok(())
}

fn decoded(input: &str, part: &str, what: &str) -> Result<String, AddrError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| invalid(input, format!("the {what} is not UTF-8 once percent-decoded")))
}

impl AmqpBroker {
    /// Parses the broker part, `amqp://[USER:PASS@]HOST[:PORT]`, and a vhost (percent-encoded,
    /// `None` for `/`).
    fn parse_parts(input: &str, secure: bool, authority: &str, vhost: Option<&str>) -> Result<AmqpBroker, AddrError> {
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => ("guest".to_string(), "guest".to_string()),
            Some(credentials) => {
                let (user, password) = credentials
                    .split_once(':')
                    .ok_or_else(|| invalid(input, "expected USER:PASS@ before the host (the password is missing)"))?;
                let user = decoded(input, user, "user")?;
                if user.is_empty() {
                    return Err(invalid(input, "the user before `:` is empty"));
                }
                (user, decoded(input, password, "password")?)
            }
        };
        let (host, port) = split_host_port(input, host_port, if secure { DEFAULT_TLS_PORT } else { DEFAULT_PORT })?;
        let vhost = match vhost {
            None => "/".to_string(),
            Some(vhost) => decoded(input, vhost, "virtual host")?,
        };
        if vhost.is_empty() {
            return Err(invalid(input, "the virtual host is empty (leave it out for `/`)"));
        }
        Ok(AmqpBroker { host, port, user, password, vhost, secure, tls: None })
    }

    /// `amqp` or `amqps`.
    fn scheme(&self) -> &'static str {
        if self.secure {
            "amqps"
        } else {
            "amqp"
        }
    }

    /// The address lapin connects to, credentials included, every part percent-encoded.
    pub fn uri(&self) -> String {
        let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        format!(
            "{}://{}:{}@{}:{}/{}",
            self.scheme(),
            encode(&self.user),
            encode(&self.password),
            bracketed(&self.host),
            self.port,
            encode(&self.vhost)
        )
    }

    /// This broker, reached over TLS checked against `tls` (when it is an `amqps://` one).
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `HOST[:PORT]`, an IPv6 host in brackets.
fn split_host_port(input: &str, text: &str, default_port: u16) -> Result<(String, u16), AddrError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| invalid(input, "an IPv6 host needs its closing `]`"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(input, "expected :PORT after the IPv6 host")),
            },
        }
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(invalid(input, "put an IPv6 host in brackets, as in amqp://[::1]:5672"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(input, "the broker's host is missing (expected amqp://HOST:PORT)"));
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(invalid(input, format!("`{port}` is not a port number (1-65535)"))),
        },
    };
    Ok((host.to_string(), port))
}

/// Whether the address is `amqps://`, its authority and its path segments.
fn split_uri(input: &str) -> Result<(bool, &str, Vec<&str>), AddrError> {
    let (secure, rest) = match (input.strip_prefix("amqp://"), input.strip_prefix("amqps://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(invalid(input, "expected amqp://HOST:PORT or amqps://HOST:PORT")),
    };
    if rest.contains(['?', '#']) {
        return Err(invalid(input, "query parameters and fragments are not understood; leave them out"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut parts = rest.split('/');
    let authority = parts.next().unwrap_or_default();
    Ok((secure, authority, parts.collect()))
}

impl FromStr for AmqpBroker {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let (secure, authority, path) = split_uri(input)?;
        match path.as_slice() {
            [] => AmqpBroker::parse_parts(input, secure, authority, None),
            [vhost] => AmqpBroker::parse_parts(input, secure, authority, Some(vhost)),
            _ => Err(invalid(input, "expected amqp://[USER:PASS@]HOST:PORT[/VHOST] (one path segment at most)")),
        }
    }
}

impl fmt::Display for AmqpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme())?;
        if (self.user.as_str(), self.password.as_str()) != ("guest", "guest") {
            write!(f, "{}@", utf8_percent_encode(&self.user, NON_ALPHANUMERIC))?;
        }
        write!(f, "{}:{}", bracketed(&self.host), self.port)?;
        if self.vhost != "/" {
            write!(f, "/{}", utf8_percent_encode(&self.vhost, NON_ALPHANUMERIC))?;
        }
        Ok(())
    }
}

impl AmqpAddr {
    /// The address of `service` on `broker`, by `route`.
    pub fn new(broker: impl Into<Arc<AmqpBroker>>, service: impl Into<String>, route: Route) -> Self {
        AmqpAddr { broker: broker.into(), service: service.into(), route }
    }

    /// The queue a message to this address goes to (`None` for a fanout, which goes to an
    /// exchange).
    pub fn queue(&self) -> Option<String> {
        match &self.route {
            Route::Shared => Some(self.service.clone()),
            Route::Instance(host) => Some(format!("{}.{host}", self.service)),
            Route::Fanout => None,
        }
    }

    /// The fanout exchange of the service, `SERVICE_fanout`.
    pub fn fanout_exchange(&self) -> String {
        format!("{}_fanout", self.service)
    }

    /// The exchange and routing key a message to this address is published with.
    fn destination(&self) -> (String, String) {
        match self.queue() {
            Some(queue) => (String::new(), queue),
            None => (self.fanout_exchange(), String::new()),
        }
    }
}

impl FromStr for AmqpAddr {
    type Err = AddrError;

    fn from_str(input: &str) -> Result<Self, AddrError> {
        let (secure, authority, path) = split_uri(input)?;
        let (vhost, target) = match path.as_slice() {
            [target] => (None, *target),
            [vhost, target] => (Some(*vhost), *target),
            _ => {
                return Err(invalid(
                    input,
                    "expected amqp://[USER:PASS@]HOST:PORT[/VHOST]/SERVICE[.HOST] (the service is missing)",
                ))
            }
        };
        let broker = AmqpBroker::parse_parts(input, secure, authority, vhost)?;
        let target = decoded(input, target, "target")?;
        let (service, route) = match target.split_once('.') {
            None => (target.as_str(), Route::Shared),
            Some((service, "*")) => (service, Route::Fanout),
            Some((service, host)) => {
                check_instance(input, service, host)?;
                (service, Route::Instance(host.to_string()))
            }
        };
        check_service(input, service)?;
        Ok(AmqpAddr { broker: Arc::new(broker), service: service.to_string(), route })
    }
}

impl fmt::Display for AmqpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.broker, self.service)?;
        match &self.route {
            Route::Shared => Ok(()),
            Route::Instance(host) => write!(f, ".{}", utf8_percent_encode(host, TARGET_ESCAPES)),
            Route::Fanout => f.write_str(".*"),
        }
    }
}

/// What is percent-encoded in an instance name when written back into an address.
const TARGET_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'/').add(b'%').add(b' ');

/// Properties of a JSON-RPC message: JSON, persistent, and the rest set by the caller.
fn properties() -> BasicProperties {
    BasicProperties::default().with_content_type("application/json".into()).with_delivery_mode(2)
}

/// Waits for the broker's confirm of one publish; a return (nothing to route it to) or a
/// nack is an error naming `to`.
async fn confirmed(confirm: lapin::Result<lapin::publisher_confirm::PublisherConfirm>, to: &str) -> Result<(), String> {
    let confirmation = match confirm {
        Ok(confirm) => confirm.await,
        Err(error) => Err(error),
    };
    match confirmation {
        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) | Ok(Confirmation::Nack(Some(returned))) => Err(format!(
            "the broker cannot route to {to} ({} {}): no server has declared it",
            returned.reply_code, returned.reply_text
        )),
        Ok(Confirmation::Nack(None)) => Err(format!("the broker refused the message to {to} (nack)")),
        Err(error) => Err(format!("publishing to {to} failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn broker_addresses_parse_with_defaults_and_print_without_the_password() {
        let broker: AmqpBroker = "amqp://127.0.0.1:5673".parse().unwrap();
        assert_eq!((broker.user.as_str(), broker.password.as_str(), broker.vhost.as_str()), ("guest", "guest", "/"));
        assert_eq!(broker.to_string(), "amqp://127.0.0.1:5673");
        assert_eq!(broker.uri(), "amqp://guest:guest@127.0.0.1:5673/%2F");

        let broker: AmqpBroker = "amqp://nova:s%40cret@[::1]/prod".parse().unwrap();
        assert_eq!((broker.host.as_str(), broker.port), ("::1", DEFAULT_PORT));
        assert_eq!((broker.user.as_str(), broker.password.as_str(), broker.vhost.as_str()), ("nova", "s@cret", "prod"));
        assert_eq!(broker.to_string(), "amqp://nova@[::1]:5672/prod");
        assert_eq!("amqp://h:1/%2f".parse::<AmqpBroker>().unwrap().vhost, "/");
    }

    #[test]
    fn service_addresses_name_a_queue_an_instance_or_the_fanout() {
        let addr: AmqpAddr = "amqp://127.0.0.1:5672/agent".parse().unwrap();
        assert_eq!((addr.service.as_str(), &addr.route, addr.queue()), ("agent", &Route::Shared, Some("agent".into())));
        let addr: AmqpAddr = "amqp://127.0.0.1:5672/vh/agent.compute-1:5672".parse().unwrap();
        assert_eq!(addr.route, Route::Instance("compute-1:5672".into()));
        assert_eq!(addr.broker.vhost, "vh");
        assert_eq!(addr.queue().unwrap(), "agent.compute-1:5672");
        assert_eq!(addr.to_string(), "amqp://127.0.0.1:5672/vh/agent.compute-1:5672");
        let fanout: AmqpAddr = "amqp://h/agent.*".parse().unwrap();
        assert_eq!(
            (fanout.route.clone(), fanout.destination()),
            (Route::Fanout, ("agent_fanout".into(), String::new()))
        );
        for text in ["amqp://h:1/agent", "amqp://h:1/v/agent.x.y", "amqp://h:1/agent.*"] {
            let addr: AmqpAddr = text.parse().unwrap();
            assert_eq!(addr.to_string().parse::<AmqpAddr>().unwrap(), addr);
        }
        // The password is never shown.
        let secret: AmqpAddr = "amqp://u:p@h:1/v/agent.x.y".parse().unwrap();
        assert_eq!(secret.to_string(), "amqp://u@h:1/v/agent.x.y");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let cases = [
            ("amqp://", "service is missing"),
            ("amqp:///agent", "host is missing"),
            ("amqp://h:0/agent", "not a port"),
            ("amqp://h:x/agent", "not a port"),
            ("amqp://::1/agent", "brackets"),
            ("amqp://u@h/agent", "password is missing"),
            ("amqp://h/", "service is missing"),
            ("amqp://h/a/b/c", "service is missing"),
            ("amqp://h/ag ent", "service name"),
            ("amqp://h/agent.", "empty"),
            ("amqpx://h/agent", "expected amqp"),
            ("amqp://h/agent?x=1", "query"),
        ];
        for (text, why) in cases {
            let error = text.parse::<AmqpAddr>().unwrap_err();
            assert!(error.reason.contains(why), "{text}: {error}");
        }
        assert!("amqp://h/a/b".parse::<AmqpBroker>().unwrap_err().reason.contains("one path segment"));
        let long = format!("amqp://h/agent.{}", "x".repeat(250));
        assert!(long.parse::<AmqpAddr>().unwrap_err().reason.contains("longer than a queue name"));
    }

    #[test]
    fn requests_are_told_from_notifications() {
        assert!(client::is_request(br#"{"jsonrpc":"2.0","method":"m","id":1}"#));
        assert!(!client::is_request(br#"{"jsonrpc":"2.0","method":"m"}"#));
        assert!(client::is_request(br#"[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"m","id":2}]"#));
        assert!(!client::is_request(br#"[{"jsonrpc":"2.0","method":"m"}]"#));
    }

    #[test]
    fn backoff_grows_to_five_seconds() {
        assert_eq!(server::backoff(0), Duration::from_millis(100));
        assert_eq!(server::backoff(1), Duration::from_millis(200));
        assert_eq!(server::backoff(30), Duration::from_secs(5));
    }
}
