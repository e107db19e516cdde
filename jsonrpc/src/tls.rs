//! TLS (rustls, ring) for `tcp:` and `http://`: a server's certificate and key, and the client
//! certificates it may require ([`ServerTls`]); the authority a client trusts and the
//! certificate it may present ([`ClientTls`]). Files are PEM; a private key file must be
//! readable by its owner only, as a token file.
//!
//! The addresses stay `tcp:HOST:PORT` and `http://HOST:PORT`: a server given a [`ServerTls`]
//! speaks TLS on every TCP listener, a client given a [`ClientTls`] on every `tcp:` and
//! `http://` connection, verifying the server's certificate against HOST (a DNS name or an IP
//! address in the certificate's subject alternative names).

use std::{
    fmt, fs,
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    crypto::{ring, CryptoProvider},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        /// What the file was to hold (`certificate`, `private key`, `CA certificate`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A private key file can be read by other users.
    #[error(
        "the private key {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The PEM holds nothing usable, or cannot be parsed.
    #[error("the {what} {source_name} {why}")]
    BadPem {
        /// What it was to hold.
        what: &'static str,
        /// The file, or `(in memory)`.
        source_name: String,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the certificates or key (a key that does not match the certificate, a
    /// CA that is not a CA certificate, ...).
    #[error("TLS refused {what}: {why}")]
    Rejected {
        /// What was refused.
        what: &'static str,
        /// rustls's reason.
        why: String,
    },
    /// A host cannot be a TLS server name.
    #[error("`{0}` cannot be checked against a certificate (not a DNS name or IP address)")]
    ServerName(String),
}

/// The provider every config here is built with (not the process default, which another crate
/// may have set otherwise). rustls 0.23.48 deprecates ring's provider for lacking post-quantum
/// key exchange (aws-lc-rs has it, but needs cmake and a C toolchain to build); TLS 1.3 with
/// X25519 is what it offers.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// PEM text and where it came from, for error messages.
struct Pem {
    bytes: Vec<u8>,
    source_name: String,
}

impl Pem {
    fn in_memory(bytes: &[u8]) -> Self {
        Pem { bytes: bytes.to_vec(), source_name: "(in memory)".to_string() }
    }

    /// Reads `path`; a private key must be mode 0600 or stricter (checked on the opened file).
    fn read(path: &Path, what: &'static str, private: bool) -> Result<Self, TlsError> {
        let read_error = |source| TlsError::Read { what, path: path.to_path_buf(), source };
        let mut file = fs::File::open(path).map_err(read_error)?;
        if private {
            let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(TlsError::KeyTooOpen { path: path.to_path_buf(), mode });
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_error)?;
        Ok(Pem { bytes, source_name: path.display().to_string() })
    }

    fn bad(&self, what: &'static str, why: impl fmt::Display) -> TlsError {
        TlsError::BadPem { what, source_name: self.source_name.clone(), why: why.to_string() }
    }

    /// Every `CERTIFICATE` block; at least one.
    fn certificates(&self, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certificates = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.bad(what, format!("is not PEM: {error}")))?;
        if certificates.is_empty() {
            return Err(self.bad(what, "holds no `BEGIN CERTIFICATE` block"));
        }
        Ok(certificates)
    }

    /// The first private key block (PKCS#8, PKCS#1 or SEC1).
    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|error| match error {
            rustls_pki_types::pem::Error::NoItemsFound => self.bad("private key", "holds no `BEGIN PRIVATE KEY` block"),
            other => self.bad("private key", format!("is not PEM: {other}")),
        })
    }

    /// A store of the CA certificates it holds.
    fn roots(&self, what: &'static str) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for certificate in self.certificates(what)? {
            roots.add(certificate).map_err(|error| TlsError::Rejected { what, why: error.to_string() })?;
        }
        Ok(roots)
    }
}

/// A server's TLS: its certificate chain and key, and, when set, the CA its clients'
/// certificates must chain to (without one, clients present none).
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_certificates: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("client_certificates", &self.client_certificates).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From PEM files: the certificate chain (leaf first), its private key (mode 0600), and
    /// optionally the CA client certificates must chain to.
    pub fn from_pem_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let client_ca = client_ca.map(|path| Pem::read(path, "client CA certificate", false)).transpose()?;
        ServerTls::build(Pem::read(cert, "certificate", false)?, Pem::read(key, "private key", true)?, client_ca)
    }

    /// From PEM text (tests, embedded certificates).
    pub fn from_pem(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Result<Self, TlsError> {
        ServerTls::build(Pem::in_memory(cert), Pem::in_memory(key), client_ca.map(Pem::in_memory))
    }

    fn build(cert: Pem, key: Pem, client_ca: Option<Pem>) -> Result<Self, TlsError> {
        let chain = cert.certificates("certificate")?;
        let key = key.private_key()?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected { what: "the protocol versions", why: error.to_string() })?;
        let builder = match &client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(ca.roots("client CA certificate")?),
                    provider(),
                )
                .build()
                .map_err(|error| TlsError::Rejected { what: "the client CA", why: error.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|error| TlsError::Rejected { what: "the certificate and key", why: error.to_string() })?;
        Ok(ServerTls { config: Arc::new(config), client_certificates: client_ca.is_some() })
    }

    /// Whether clients must present a certificate the client CA signed.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_certificates
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// A client's TLS: the CA the servers' certificates must chain to, and optionally the
/// certificate and key it presents to servers that require one.
///
/// Two values are equal when they are clones of one loaded configuration (the same files
/// loaded twice are two configurations): that is how the bus tells the broker connections it
/// may share apart.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// The same, as PEM text, for lapin's TLS to an `amqps://` broker (which builds its own
    /// rustls configuration from PEM).
    pem: Arc<ClientPem>,
}

/// A [`ClientTls`] as PEM text.
struct ClientPem {
    ca: String,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ClientTls {}

impl std::hash::Hash for ClientTls {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.config).hash(state);
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// From PEM files: the CA certificate(s), and optionally a certificate chain with its
    /// private key (mode 0600) to present.
    pub fn from_pem_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let identity = match identity {
            Some((cert, key)) => Some((Pem::read(cert, "certificate", false)?, Pem::read(key, "private key", true)?)),
            None => None,
        };
        ClientTls::build(Pem::read(ca, "CA certificate", false)?, identity)
    }

    /// From PEM text (tests, embedded certificates).
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Self, TlsError> {
        ClientTls::build(Pem::in_memory(ca), identity.map(|(cert, key)| (Pem::in_memory(cert), Pem::in_memory(key))))
    }

    fn build(ca: Pem, identity: Option<(Pem, Pem)>) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected { what: "the protocol versions", why: error.to_string() })?
            .with_root_certificates(ca.roots("CA certificate")?);
        let config = match &identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                builder.with_client_auth_cert(cert.certificates("certificate")?, key.private_key()?).map_err(
                    |error| TlsError::Rejected { what: "the client certificate and key", why: error.to_string() },
                )?
            }
        };
        let ca_text = String::from_utf8(ca.bytes).map_err(|_| TlsError::BadPem {
            what: "CA certificate",
            source_name: ca.source_name.clone(),
            why: "is not text".to_string(),
        })?;
        let pem = ClientPem { ca: ca_text, identity: identity.map(|(cert, key)| (cert.bytes, key.bytes)) };
        Ok(ClientTls { config: Arc::new(config), pem: Arc::new(pem) })
    }

    /// lapin's TLS settings for an `amqps://` broker: the CA as the only trusted roots, and the
    /// client certificate and key, if any.
    pub(crate) fn amqp_config(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            cert_chain: Some(self.pem.ca.clone()),
            identity: self
                .pem
                .identity
                .as_ref()
                .map(|(pem, key)| lapin::tcp::OwnedIdentity::PKCS8 { pem: pem.clone(), key: key.clone() }),
        }
    }

    /// The rustls client config, for connections made outside this crate (the conformance
    /// suite's raw connections).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    pub(crate) fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }
}

/// `host` as the name a server certificate is checked against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}
