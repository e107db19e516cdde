//! Test certificates made at test time with rcgen (no private key is checked in): a CA, a
//! server certificate for `localhost` and 127.0.0.1, and a client certificate, all signed by
//! the CA. Shared by jsonrpc/tests/tls.rs and cli/tests/security.rs (`#[path]`).
#![allow(dead_code)]

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate and its private key, as PEM.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA and the server and client identities it signed.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Identity,
    pub client: Identity,
}

/// Where [`TestPki::write`] put the files.
pub struct PkiFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn leaf(names: &[&str], common_name: &str, issuer: &Issuer<'_, KeyPair>) -> Identity {
    let key = KeyPair::generate().expect("a key pair");
    let mut params =
        CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).expect("valid names");
    params.distinguished_name.push(DnType::CommonName, common_name);
    let cert = params.signed_by(&key, issuer).expect("signed by the CA");
    Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

impl TestPki {
    /// A fresh CA with a server and a client certificate.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("a key pair");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "vproto test CA");
        let ca_pem = params.self_signed(&ca_key).expect("a self-signed CA").pem();
        let issuer = Issuer::new(params, ca_key);
        TestPki {
            ca_pem,
            server: leaf(&["localhost", "127.0.0.1"], "vproto test server", &issuer),
            client: leaf(&["vproto-client"], "vproto test client", &issuer),
        }
    }

    /// Writes the PEM files into `dir`, the keys mode 0600.
    pub fn write(&self, dir: &Path) -> PkiFiles {
        let put = |name: &str, text: &str, private: bool| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let mode = if private { 0o600 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        PkiFiles {
            ca: put("ca.pem", &self.ca_pem, false),
            server_cert: put("server.pem", &self.server.cert_pem, false),
            server_key: put("server.key", &self.server.key_pem, true),
            client_cert: put("client.pem", &self.client.cert_pem, false),
            client_key: put("client.key", &self.client.key_pem, true),
        }
    }
}
