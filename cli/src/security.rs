//! The security options of `vproto serve` and `vproto call`: credentials, TLS, and which
//! announced endpoints the agent and the conductor dial (docs/security.md).
//!
//! A `tcp:` or `http://` listener refuses to start without credentials (exit 2, saying how to
//! give them) unless `--insecure` is given, which is warned about on every start:
//!
//! - `--token-file FILE` (serve's own flag): one token, presented to the peers this service
//!   calls; the listener accepts it from any caller, trusted with every method, unless
//!   `--role-token` is given.
//! - `--role-token ROLE=FILE` (repeatable): the listener accepts FILE's token from callers of
//!   ROLE (`driver`, `agent`, `conductor`, `operator`), who may call only the methods the
//!   schema opens to that role.
//! - `--tls-client-ca FILE`: callers must present a certificate this CA signed.
//!
//! TLS: `--tls-cert`/`--tls-key` make the listener speak TLS; `--tls-ca` makes the clients
//! (`vproto call`, and the peers `serve` dials and says hello to) speak TLS to `tcp:`/`http://`
//! servers whose certificate that CA signed, and to an `amqps://` broker, presenting
//! `--tls-cert` as their client certificate. It is given to each client explicitly (the peers
//! through their [`PeerScheme`], the hello loop in its options): nothing process-wide, so two
//! services in one process may trust different CAs. Unix sockets, stdio and vchan are
//! unchanged: no token, no TLS.

use std::path::PathBuf;

use vproto_jsonrpc::{load_token, ClientTls, Credentials, ListenAddr, Server, ServerTls, Token};
use vproto_services::{peer_policy::PeerPolicy, PeerScheme};
use vproto_support::rpc::Handler;

use crate::CliError;

/// TLS options shared by `serve` and `call`.
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// serve: the certificate chain (PEM) its tcp:/http:// listener presents; also the client
    /// certificate presented with --tls-ca. call: the client certificate presented.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM, mode 0600) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Speak TLS to tcp:/http:// servers, whose certificate this CA (PEM) must have signed.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The client TLS, when --tls-ca is given (with --tls-cert as the client certificate).
    pub fn client(&self) -> Result<Option<ClientTls>, CliError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        ClientTls::from_pem_files(ca, identity).map(Some).map_err(|e| CliError::usage(format!("--tls-ca: {e}")))
    }
}

/// The security options of `vproto serve`.
#[derive(clap::Args, Debug, Default)]
pub struct ServeSecurityArgs {
    #[command(flatten)]
    tls: TlsArgs,
    /// Callers of the tcp:/http:// listener must present a certificate this CA (PEM) signed.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A token the tcp:/http:// listener accepts from callers of ROLE (driver, agent, conductor,
    /// operator), from FILE (mode 0600); repeat for each role.
    #[arg(long = "role-token", value_name = "ROLE=FILE")]
    role_tokens: Vec<String>,
    /// Serve tcp:/http:// without any credentials: anyone who reaches the listener may call.
    #[arg(long)]
    insecure: bool,
    /// agent, conductor: the CIDR blocks announced endpoints may be in, such as
    /// 10.0.0.0/8,fd00::/8 [default: loopback and the private ranges; never link-local].
    #[arg(long, value_name = "CIDR,...")]
    allow_peers: Option<String>,
}

/// What `serve` was told about security, loaded and checked.
pub struct ServeSecurity {
    credentials: Credentials,
    tls: Option<ServerTls>,
    /// `--tls-ca`: how the service's own clients (its peers, its hello) speak TLS.
    client: Option<ClientTls>,
    policy: Option<PeerPolicy>,
    client_ca: bool,
    insecure: bool,
}

impl ServeSecurityArgs {
    /// The client TLS of `--tls-ca` (with `--tls-cert` as the client certificate), for what
    /// needs it before [`ServeSecurityArgs::load`]: an `amqps://` broker of `--bus`.
    pub fn client_tls(&self) -> Result<Option<ClientTls>, CliError> {
        self.tls.client()
    }

    /// Loads the files; `token` is serve's `--token-file`; `dials_peers` says whether the
    /// service dials announced endpoints (agent, conductor), for `--allow-peers`.
    pub fn load(&self, token: Option<&Token>, dials_peers: bool) -> Result<ServeSecurity, CliError> {
        let mut credentials = Credentials::new();
        for entry in &self.role_tokens {
            let (role, path) = entry.split_once('=').ok_or_else(|| {
                CliError::usage(format!(
                    "--role-token `{entry}`: expected ROLE=FILE, such as operator=/etc/vproto/operator.token"
                ))
            })?;
            let role_token = load_token(path).map_err(|e| CliError::usage(format!("--role-token {role}: {e}")))?;
            credentials =
                credentials.with_role(role, role_token).map_err(|e| CliError::usage(format!("--role-token: {e}")))?;
        }
        if let (Some(token), true) = (token, credentials.is_empty()) {
            credentials = Credentials::shared(token.clone());
        }
        let tls = match (&self.tls.tls_cert, &self.tls.tls_key) {
            (Some(cert), Some(key)) => Some(
                ServerTls::from_pem_files(cert, key, self.tls_client_ca.as_deref())
                    .map_err(|e| CliError::usage(format!("--tls-cert: {e}")))?,
            ),
            _ => None,
        };
        let policy = match (&self.allow_peers, dials_peers) {
            (Some(_), false) => {
                return Err(CliError::usage("--allow-peers applies to `serve agent` and `serve conductor` only"))
            }
            (Some(text), true) => {
                Some(text.parse::<PeerPolicy>().map_err(|e| CliError::usage(format!("--allow-peers: {e}")))?)
            }
            (None, true) => Some(PeerPolicy::default()),
            (None, false) => None,
        };
        let client = self.tls.client()?;
        Ok(ServeSecurity {
            credentials,
            tls,
            client,
            policy,
            client_ca: self.tls_client_ca.is_some(),
            insecure: self.insecure,
        })
    }
}

impl ServeSecurity {
    /// The TLS the service's clients speak to `tcp:`/`http://` servers (`--tls-ca`), for its
    /// hello loop's `ClientOptions`.
    pub fn client_tls(&self) -> Option<ClientTls> {
        self.client.clone()
    }

    /// `scheme` over the TLS of `--tls-ca`, if given: how the service dials the peers that
    /// register with it.
    pub fn peer_scheme(&self, scheme: PeerScheme) -> PeerScheme {
        scheme.with_tls(self.client.clone())
    }

    /// `handler`, its hellos checked against `--allow-peers` when the service dials peers.
    pub fn guard(&self, handler: impl Handler) -> std::sync::Arc<dyn Handler> {
        match &self.policy {
            Some(policy) => std::sync::Arc::new(policy.clone().guard(handler)),
            None => std::sync::Arc::new(handler),
        }
    }

    /// `server` with the credentials and TLS, once it is sure a `tcp:`/`http://` `listen` has
    /// credentials or `--insecure` (warned about).
    pub fn apply(&self, server: Server, listen: Option<&ListenAddr>) -> Result<Server, CliError> {
        let networked = matches!(listen, Some(ListenAddr::Tcp { .. } | ListenAddr::Http { .. }));
        let listen = listen.map(ListenAddr::to_string).unwrap_or_default();
        let has_credentials = !self.credentials.is_empty() || self.client_ca;
        if networked && !has_credentials {
            if !self.insecure {
                return Err(CliError::usage(format!(
                    "{listen} needs credentials, or anyone who reaches it may call: give --token-file FILE (one token \
                     every caller presents), --role-token ROLE=FILE for each role (driver, agent, conductor, operator), \
                     or --tls-cert/--tls-key with --tls-client-ca FILE (client certificates); or --insecure to serve \
                     without"
                )));
            }
            tracing::warn!(address = %listen, "--insecure: serving without credentials; anyone who reaches this listener may call every method");
        }
        let server = server.with_credentials(self.credentials.clone());
        Ok(match &self.tls {
            Some(tls) => server.with_tls(tls.clone()),
            None => server,
        })
    }
}
