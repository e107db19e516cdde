//! TLS on `tcp:` and `http://` (certificates made at test time), client certificates, and the
//! roles that tokens give callers, as the handler sees them.

mod certs;

use std::{os::unix::fs::PermissionsExt, sync::Arc, time::Duration};

use certs::TestPki;
use serde_json::{json, Value};
use vproto_jsonrpc::{
    Client, ClientOptions, ClientTls, ConnectAddr, Credentials, ListenAddr, RunningServer, Server, ServerTls, TlsError,
    Token,
};
use vproto_support::rpc::{
    codes,
    roles::{self, Caller},
    BoxFuture, CallError, ClientTransport, Handler, Params, RpcError,
};

/// `test.whoami` answers the caller's role (null when trusted); `test.operator_only` is open
/// to the role operator only, checked as a generated dispatcher checks.
struct Roles;

impl Handler for Roles {
    fn handle<'a>(&'a self, method: &'a str, _params: Params) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            // Yield once, so the role must survive a second poll.
            tokio::task::yield_now().await;
            match method {
                "test.whoami" => Ok(match roles::current() {
                    Caller::Trusted => Value::Null,
                    Caller::Role(role) => Value::String(role.to_string()),
                }),
                "test.operator_only" => roles::check(method, &["operator"]).map(|()| json!("done")),
                other => Err(RpcError::method_not_found(other)),
            }
        })
    }

    fn methods(&self) -> Vec<&'static str> {
        vec!["test.whoami", "test.operator_only"]
    }
}

fn token(text: &str) -> Token {
    Token::new(text).unwrap()
}

fn credentials() -> Credentials {
    Credentials::new()
        .with_role("agent", token("agent-secret"))
        .unwrap()
        .with_role("operator", token("operator-secret"))
        .unwrap()
}

async fn serve(kind: &str, tls: Option<ServerTls>) -> RunningServer {
    let addr: ListenAddr = format!("{kind}127.0.0.1:0").parse().unwrap();
    let mut server = Server::new(Roles).with_credentials(credentials());
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    server.bind(&addr).await.unwrap()
}

fn options(secret: Option<&str>, tls: Option<ClientTls>) -> ClientOptions {
    ClientOptions {
        token: secret.map(token),
        tls,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

async fn call(server: &RunningServer, options: ClientOptions, method: &str) -> Result<Value, CallError> {
    let addr = ConnectAddr::from(server.local_addr().clone());
    let client = Client::connect(&addr, options).await?;
    client.request(method, json!({})).await
}

fn server_tls(pki: &TestPki, client_ca: bool) -> ServerTls {
    let ca = client_ca.then_some(pki.ca_pem.as_bytes());
    ServerTls::from_pem(pki.server.cert_pem.as_bytes(), pki.server.key_pem.as_bytes(), ca).unwrap()
}

fn client_tls(pki: &TestPki, with_certificate: bool) -> ClientTls {
    let identity = with_certificate.then_some((pki.client.cert_pem.as_bytes(), pki.client.key_pem.as_bytes()));
    ClientTls::from_pem(pki.ca_pem.as_bytes(), identity).unwrap()
}

fn forbidden(result: Result<Value, CallError>) -> RpcError {
    match result {
        Err(CallError::Rpc(error)) if error.code == codes::FORBIDDEN => error,
        other => panic!("expected -32003, got {other:?}"),
    }
}

#[tokio::test]
async fn over_tls_each_token_is_its_role_and_a_role_cannot_call_what_is_not_open_to_it() {
    let pki = TestPki::new();
    for kind in ["tcp:", "http://"] {
        let server = serve(kind, Some(server_tls(&pki, false))).await;
        let tls = || Some(client_tls(&pki, false));
        assert_eq!(call(&server, options(Some("agent-secret"), tls()), "test.whoami").await.unwrap(), "agent");
        let error = forbidden(call(&server, options(Some("agent-secret"), tls()), "test.operator_only").await);
        assert_eq!(error.data.as_ref().unwrap()["role"], "agent", "{kind}");
        assert_eq!(error.data.as_ref().unwrap()["allowed"], json!(["operator"]), "{kind}");
        let done = call(&server, options(Some("operator-secret"), tls()), "test.operator_only").await;
        assert_eq!(done.unwrap(), "done", "{kind}");
        let unknown = call(&server, options(Some("nobody-secret"), tls()), "test.whoami").await;
        assert!(
            matches!(&unknown, Err(CallError::Transport(why)) if why.contains("wrong token"))
                || matches!(&unknown, Err(CallError::Rpc(error)) if error.code == codes::UNAUTHORIZED),
            "{kind}: {unknown:?}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_plain_client_or_one_trusting_another_ca_gets_nothing_from_a_tls_server() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    for kind in ["tcp:", "http://"] {
        let server = serve(kind, Some(server_tls(&pki, false))).await;
        let plain = call(&server, options(Some("agent-secret"), None), "test.whoami").await;
        assert!(matches!(plain, Err(CallError::Transport(_))), "{kind}: {plain:?}");
        let wrong_ca = call(&server, options(Some("agent-secret"), Some(client_tls(&stranger, false))), "test.whoami");
        match wrong_ca.await {
            Err(CallError::Transport(why)) => assert!(why.contains("certificate"), "{kind}: {why}"),
            other => panic!("{kind}: {other:?}"),
        }
        // The server is still healthy.
        let ok = call(&server, options(Some("agent-secret"), Some(client_tls(&pki, false))), "test.whoami").await;
        assert_eq!(ok.unwrap(), "agent");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_server_with_a_client_ca_wants_a_certificate_it_signed() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    for kind in ["tcp:", "http://"] {
        let server = serve(kind, Some(server_tls(&pki, true))).await;
        assert!(server_tls(&pki, true).requires_client_certificates());
        let without = call(&server, options(Some("agent-secret"), Some(client_tls(&pki, false))), "test.whoami").await;
        assert!(matches!(without, Err(CallError::Transport(_))), "{kind}: {without:?}");
        // A certificate from another CA, presented by a client that trusts the server.
        let foreign = ClientTls::from_pem(
            pki.ca_pem.as_bytes(),
            Some((stranger.client.cert_pem.as_bytes(), stranger.client.key_pem.as_bytes())),
        )
        .unwrap();
        let refused = call(&server, options(Some("agent-secret"), Some(foreign)), "test.whoami").await;
        assert!(matches!(refused, Err(CallError::Transport(_))), "{kind}: {refused:?}");
        let with = call(&server, options(Some("agent-secret"), Some(client_tls(&pki, true))), "test.whoami").await;
        assert_eq!(with.unwrap(), "agent", "{kind}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_shared_token_is_trusted_and_a_unix_socket_needs_none() {
    let dir = tempfile::tempdir().unwrap();
    let unix: ListenAddr = format!("unix:{}", dir.path().join("s.sock").display()).parse().unwrap();
    let server = Server::new(Roles).with_credentials(credentials()).bind(&unix).await.unwrap();
    assert_eq!(call(&server, options(None, None), "test.operator_only").await.unwrap(), "done");
    server.shutdown().await;

    let addr: ListenAddr = "tcp:127.0.0.1:0".parse().unwrap();
    let server = Server::from_arc(Arc::new(Roles)).with_token(token("shared-secret")).bind(&addr).await.unwrap();
    assert_eq!(call(&server, options(Some("shared-secret"), None), "test.whoami").await.unwrap(), Value::Null);
    assert_eq!(call(&server, options(Some("shared-secret"), None), "test.operator_only").await.unwrap(), "done");
    server.shutdown().await;
}

#[test]
fn bad_pem_files_are_refused_naming_the_file_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let files = pki.write(dir.path());
    assert!(ServerTls::from_pem_files(&files.server_cert, &files.server_key, Some(&files.ca)).is_ok());
    assert!(ClientTls::from_pem_files(&files.ca, Some((&files.client_cert, &files.client_key))).is_ok());

    std::fs::set_permissions(&files.server_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = ServerTls::from_pem_files(&files.server_cert, &files.server_key, None).unwrap_err();
    assert!(matches!(open, TlsError::KeyTooOpen { .. }), "{open}");
    assert!(open.to_string().contains("chmod 600"), "{open}");

    // The key where the certificate should be: no certificate in it.
    std::fs::set_permissions(&files.server_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let swapped = ServerTls::from_pem_files(&files.server_key, &files.server_key, None).unwrap_err().to_string();
    assert!(swapped.contains("server.key") && swapped.contains("no `BEGIN CERTIFICATE`"), "{swapped}");

    // A key that is not the certificate's.
    let other = ServerTls::from_pem(pki.server.cert_pem.as_bytes(), pki.client.key_pem.as_bytes(), None).unwrap_err();
    assert!(matches!(other, TlsError::Rejected { .. }), "{other}");

    let missing = ClientTls::from_pem_files(&dir.path().join("nope.pem"), None).unwrap_err().to_string();
    assert!(missing.contains("nope.pem") && missing.contains("CA certificate"), "{missing}");
}
