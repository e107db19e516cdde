//! Which announced endpoints the agent and the conductor agree to dial (`--allow-peers`).
//!
//! A driver announces its `host:port` in `agent.hello`, an agent in `conductor.hello`, and the
//! component it registers with dials that endpoint from then on. Unchecked, anyone who may call
//! hello could make the agent or the conductor connect wherever it likes: the cloud metadata
//! service at 169.254.169.254, a database on the host's private network. [`PeerPolicy`] says
//! which addresses may be dialled (by default loopback and the private ranges, never link-local),
//! and [`PeerPolicy::guard`] refuses a hello whose endpoint is outside them, before the
//! registration is recorded, so nothing ever dials it; the component that announced it gets
//! the declared error EndpointRefused naming the endpoint, the address and the flag that would
//! allow it.
//!
//! A host name is resolved when the hello comes, and every address it resolves to must be
//! allowed. The name is dialled later by name, so a name whose records change afterwards is
//! not caught: announce IP addresses where that matters.
//!
//! CIDR blocks are parsed here (an address and a prefix length): a few lines over `std::net`,
//! not worth a dependency.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    sync::Arc,
};

use serde_json::Value;
use vproto_api::{Endpoint, EndpointRefusedData, ProtocolError, JSON_SCHEMA, METHOD_ROLES};
use vproto_support::rpc::{roles, validate_params, BoxFuture, DeclaredError, Handler, Params, ResultJson, RpcError};

/// An address block: an address and how many leading bits of it a member shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why an `--allow-peers` entry is not a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a CIDR block such as 10.0.0.0/8 or fd00::/8: {why}")]
pub struct CidrError {
    input: String,
    why: String,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Cidr {
    /// The block of `network`/`prefix`; `prefix` must fit the address family.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let width = bits(network).1;
        if prefix > width {
            return Err(CidrError { input: format!("{network}/{prefix}"), why: format!("the prefix is over {width}") });
        }
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is in the block (an IPv4 address is never in an IPv6 block, nor the reverse).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ((network, width), (candidate, candidate_width)) = (bits(self.network), bits(ip));
        if width != candidate_width {
            return false;
        }
        let host_bits = u32::from(width - self.prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            (u128::MAX >> host_bits << host_bits) & (u128::MAX >> (128 - u32::from(width)))
        };
        network & mask == candidate & mask
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDRESS/PREFIX`, or a lone address (the block of that address alone).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = |why: &str| CidrError { input: text.to_string(), why: why.to_string() };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| error("not an IP address before the `/`"))?;
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().map_err(|_| error("the prefix length is not a number"))?,
            None => bits(address).1,
        };
        Cidr::new(address, prefix).map_err(|e| error(&e.why))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The blocks allowed when `--allow-peers` is not given: loopback and the private ranges.
pub const DEFAULT_ALLOWED: &[&str] =
    &["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// The address blocks announced endpoints must fall in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    allowed: Vec<Cidr>,
}

impl Default for PeerPolicy {
    /// Loopback and the private ranges ([`DEFAULT_ALLOWED`]).
    fn default() -> Self {
        PeerPolicy { allowed: DEFAULT_ALLOWED.iter().map(|block| block.parse().expect("a valid block")).collect() }
    }
}

impl FromStr for PeerPolicy {
    type Err = CidrError;

    /// A comma-separated list of CIDR blocks (`--allow-peers 10.1.0.0/16,fd00::/8`); at least one.
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let allowed = text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, _>>()?;
        if allowed.is_empty() {
            return Err(CidrError { input: text.to_string(), why: "no block is given".to_string() });
        }
        Ok(PeerPolicy { allowed })
    }
}

/// What kind of address `ip` is, when that says why it is refused.
fn kind_of(ip: IpAddr) -> &'static str {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if link_local {
        "a link-local address (cloud metadata services such as 169.254.169.254 live there)"
    } else if ip.is_unspecified() {
        "the unspecified address (dialling it reaches this host)"
    } else if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        "a multicast or broadcast address"
    } else {
        "outside the allowed blocks"
    }
}

impl PeerPolicy {
    /// The allowed blocks.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allowed
    }

    /// Whether `ip` may be dialled: in an allowed block, and never the unspecified address
    /// (IPv4-mapped IPv6 addresses count as the IPv4 address they hold).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        !ip.is_unspecified() && self.allowed.iter().any(|block| block.contains(ip))
    }

    /// Checks an announced `host:port` (an IPv6 host in brackets): every address the host is or
    /// resolves to must be allowed. The error says which address, why, and how to allow it.
    pub async fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        let Some((host, port)) = endpoint.rsplit_once(':') else {
            return Err(format!("`{endpoint}` is not HOST:PORT"));
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| format!("`{endpoint}`: `{port}` is not a port"))?;
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|error| format!("`{host}` does not resolve: {error}"))?
                .map(|socket| socket.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        for ip in addresses {
            if !self.allows(ip) {
                let blocks: Vec<String> = self.allowed.iter().map(Cidr::to_string).collect();
                let resolved =
                    if host.parse::<IpAddr>().is_ok() { String::new() } else { format!(" (`{host}` resolves to it)") };
                return Err(format!(
                    "{ip}{resolved} is {}: this component dials only {}; allow it with --allow-peers if it is meant",
                    kind_of(ip),
                    blocks.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// `handler`, refusing the hellos ([`ANNOUNCING`]) whose endpoint this policy does not allow.
    pub fn guard<H: Handler>(self, handler: H) -> Guarded<H> {
        Guarded { policy: Arc::new(self), handler }
    }
}

/// The methods that announce an endpoint to be dialled, their params' definition in the JSON
/// Schema, and the param holding the endpoint (a registration whose `endpoint` member is the
/// `host:port`).
pub const ANNOUNCING: &[(&str, &str, &str)] = &[
    ("agent.hello", "agent.hello.params", "registration"),
    ("conductor.hello", "conductor.hello.params", "registration"),
];

/// A handler whose hellos are checked against a [`PeerPolicy`] first.
pub struct Guarded<H> {
    policy: Arc<PeerPolicy>,
    handler: H,
}

/// The endpoint a hello announces, when the call is one the dispatcher would carry out: the
/// caller's role may call it and its params are valid (otherwise the dispatcher's own answer,
/// -32003 or the precise -32602, is the one to give).
fn announced(method: &str, def: &'static str, param: &str, params: &Params) -> Option<String> {
    let allowed = METHOD_ROLES.iter().find(|(name, _)| *name == method).map_or(&[][..], |(_, roles)| *roles);
    roles::check(method, allowed).ok()?;
    let named = params.clone().into_named(&[param]).ok()?;
    let valid = validate_params(JSON_SCHEMA, def, named).ok()?;
    valid.get(param)?.get("endpoint")?.as_str().map(str::to_string)
}

/// The declared EndpointRefused error for `endpoint`, which the params' validation already
/// found to be an `Endpoint` (an internal error otherwise, never reached).
fn refused(endpoint: String, reason: String) -> RpcError {
    match Endpoint::new(endpoint) {
        Ok(endpoint) => ProtocolError::EndpointRefused(EndpointRefusedData { endpoint, reason }).to_rpc(),
        Err(error) => {
            tracing::error!(%error, "a validated endpoint is not an Endpoint");
            RpcError::internal()
        }
    }
}

impl<H: Handler> Handler for Guarded<H> {
    fn handle<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        let Some((_, def, param)) = ANNOUNCING.iter().find(|(announcing, _, _)| *announcing == method) else {
            return self.handler.handle(method, params);
        };
        Box::pin(async move {
            if let Some(endpoint) = announced(method, def, param, &params) {
                if let Err(reason) = self.policy.check_endpoint(&endpoint).await {
                    tracing::warn!(method, %endpoint, %reason, "refusing an announced endpoint");
                    return Err(refused(endpoint, reason));
                }
            }
            self.handler.handle(method, params).await
        })
    }

    /// A hello as [`Guarded::handle`] answers it; any other call as the guarded handler does
    /// (a result it keeps as JSON text stays text).
    fn handle_json<'a>(&'a self, method: &'a str, params: Params) -> BoxFuture<'a, Result<ResultJson, RpcError>> {
        if ANNOUNCING.iter().any(|(announcing, _, _)| *announcing == method) {
            let answer = self.handle(method, params);
            return Box::pin(async move { answer.await.map(ResultJson::Value) });
        }
        self.handler.handle_json(method, params)
    }

    fn methods(&self) -> Vec<&'static str> {
        self.handler.methods()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain_what_they_should() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.255.3")) && !block.contains(ip("10.2.0.1")));
        assert!(!block.contains(ip("::ffff:10.1.0.1")), "an IPv6 address is not in an IPv4 block");
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
        assert!("192.0.2.7".parse::<Cidr>().unwrap().contains(ip("192.0.2.7")));
        assert!(!"192.0.2.7".parse::<Cidr>().unwrap().contains(ip("192.0.2.8")));
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string(),
            "`10.0.0.0/33` is not a CIDR block such as 10.0.0.0/8 or fd00::/8: the prefix is over 32"
        );
        assert!("ten/8".parse::<Cidr>().unwrap_err().to_string().contains("not an IP address"));
        assert!(",".parse::<PeerPolicy>().unwrap_err().to_string().contains("no block"));
    }

    #[test]
    fn by_default_loopback_and_private_ranges_are_dialled_and_link_local_never() {
        let policy = PeerPolicy::default();
        for allowed in ["127.0.0.1", "::1", "10.3.4.5", "172.20.0.1", "192.168.1.10", "fd12::1", "::ffff:127.0.0.1"] {
            assert!(policy.allows(ip(allowed)), "{allowed}");
        }
        for refused in ["169.254.169.254", "fe80::1", "0.0.0.0", "::", "8.8.8.8", "::ffff:169.254.169.254", "224.0.0.1"]
        {
            assert!(!policy.allows(ip(refused)), "{refused}");
        }
        let opened: PeerPolicy = "169.254.0.0/16".parse().unwrap();
        assert!(opened.allows(ip("169.254.169.254")) && !opened.allows(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn an_endpoint_is_checked_by_every_address_it_names() {
        let policy = PeerPolicy::default();
        assert_eq!(policy.check_endpoint("127.0.0.1:80").await, Ok(()));
        assert_eq!(policy.check_endpoint("[::1]:80").await, Ok(()));
        assert_eq!(policy.check_endpoint("localhost:80").await, Ok(()));
        let metadata = policy.check_endpoint("169.254.169.254:80").await.unwrap_err();
        assert!(metadata.contains("link-local") && metadata.contains("--allow-peers"), "{metadata}");
        let unspecified = policy.check_endpoint("0.0.0.0:80").await.unwrap_err();
        assert!(unspecified.contains("unspecified"), "{unspecified}");
        assert!(policy.check_endpoint("127.0.0.1").await.is_err());
    }

    /// Records the calls that reach it.
    #[derive(Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

    impl Handler for Recorder {
        fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
            self.0.lock().unwrap().push(method.to_string());
            Box::pin(async { Ok(Value::Bool(true)) })
        }

        fn methods(&self) -> Vec<&'static str> {
            vec!["agent.hello", "agent.list_hardware"]
        }
    }

    fn hello(endpoint: &str, status: &str) -> Params {
        let registration = serde_json::json!({"endpoint": endpoint, "status": status, "type": "CRYPTO"});
        Params::from_value(serde_json::json!({ "registration": registration })).unwrap()
    }

    #[tokio::test]
    async fn a_hello_announcing_a_refused_endpoint_never_reaches_the_service() {
        let recorder = Recorder::default();
        let guarded = PeerPolicy::default().guard(recorder.clone());
        let refused = guarded.handle("agent.hello", hello("169.254.169.254:80", "READY")).await.unwrap_err();
        assert_eq!(refused.code, 1104, "EndpointRefused: {refused:?}");
        let data = refused.data.unwrap();
        assert_eq!(data["endpoint"], "169.254.169.254:80");
        assert!(data["reason"].as_str().unwrap().contains("link-local"), "{data}");
        assert!(recorder.0.lock().unwrap().is_empty());
        // Allowed, invalid otherwise (the dispatcher says why), or another method: passed on.
        guarded.handle("agent.hello", hello("127.0.0.1:7002", "READY")).await.unwrap();
        guarded.handle("agent.hello", hello("169.254.169.254:80", "SLEEPY")).await.unwrap();
        guarded.handle("agent.list_hardware", Params::None).await.unwrap();
        assert_eq!(*recorder.0.lock().unwrap(), ["agent.hello", "agent.hello", "agent.list_hardware"]);
        // A role that may not say hello gets the dispatcher's -32003, not a word on the endpoint.
        let role = roles::Caller::role("operator");
        let call = roles::scope(role, guarded.handle("agent.hello", hello("169.254.169.254:80", "READY")));
        call.await.unwrap();
        assert_eq!(recorder.0.lock().unwrap().len(), 4);
    }
}
