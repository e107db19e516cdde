//! Raw connections to a target: exact bytes out, exact bytes back, so the suite can send what
//! no well-behaved client would (broken JSON, odd ids, batches) and see precisely what comes
//! back. Line transports (`unix:`, `tcp:`, `exec:`, `vchan:`, and `amqp://`, where each line is
//! one message) send one frame per line; `http://` posts
//! each frame to `/jsonrpc`, or sends it to a REST route. Given a [`ClientTls`], `tcp:` and
//! `http://` connections speak TLS (`https://` for HTTP), the server's certificate checked
//! against the host as `vproto call --tls-ca` checks it.

use std::{io, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client as HttpClient},
    rt::TokioExecutor,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpStream, UnixStream},
    process::Child,
    time::timeout,
};
use vproto_jsonrpc::{
    client::describe,
    transport::{
        addr::spawn_exec,
        framing::{Line, LineReader},
    },
    ClientTls, ConnectAddr, ListenAddr, Token,
};

/// The largest answer read, in bytes.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// A bus client's options: `wait` to connect and for each answer, answers up to [`MAX_ANSWER`],
/// and `tls` for an `amqps://` broker.
fn amqp_options(wait: Duration, tls: Option<&ClientTls>) -> vproto_jsonrpc::client::ClientOptions {
    vproto_jsonrpc::client::ClientOptions {
        connect_timeout: wait,
        request_timeout: wait,
        max_message_size: MAX_ANSWER,
        tls: tls.cloned(),
        ..Default::default()
    }
}

type Reader = LineReader<BufReader<Box<dyn AsyncRead + Unpin + Send>>>;

enum Kind {
    Line { reader: Reader, writer: Box<dyn AsyncWrite + Unpin + Send>, _child: Option<Child> },
    Http { client: Http, base: String, token: Option<String> },
}

/// An HTTP client, plain or TLS.
enum Http {
    Plain(HttpClient<HttpConnector, Full<Bytes>>),
    Tls(HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Http {
    async fn request(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Http::Plain(client) => client.request(request).await,
            Http::Tls(client) => client.request(request).await,
        }
    }
}

/// Why a raw connection could not be opened, or an exchange on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Connecting to (or authenticating with) the target failed.
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// The target.
        addr: ConnectAddr,
        /// What failed.
        why: Box<ConnError>,
    },
    /// No connection within the wait.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// The socket could not be connected, or the command not spawned.
    #[error("{0}")]
    Unreachable(io::Error),
    /// `stdio` names a listening side, not something to connect to.
    #[error("stdio is where a server listens; use exec:COMMAND to spawn one")]
    Stdio,
    /// The target refused the token.
    #[error("rpc.auth was refused: {0}")]
    AuthRefused(String),
    /// A line operation on an HTTP connection.
    #[error("not a line connection")]
    NotLine,
    /// An HTTP operation on a line connection.
    #[error("not an HTTP connection")]
    NotHttp,
    /// The frame could not be written within the wait.
    #[error("could not send within {0:?}")]
    SendTimeout(Duration),
    /// Writing the frame failed.
    #[error("sending failed: {0}")]
    Send(io::Error),
    /// Nothing came back within the wait.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// Reading a line failed.
    #[error("reading failed: {0}")]
    Read(io::Error),
    /// The TLS handshake failed, or the host cannot be checked against a certificate.
    #[error("TLS: {0}")]
    Tls(String),
    /// The target closed the connection.
    #[error("the connection was closed")]
    Closed,
    /// A line longer than [`MAX_ANSWER`].
    #[error("an answer longer than {MAX_ANSWER} bytes")]
    TooLarge,
    /// A line that is not UTF-8.
    #[error("an answer that is not UTF-8")]
    NotUtf8,
    /// The verb is not an HTTP method.
    #[error("`{0}` is not an HTTP method")]
    BadVerb(String),
    /// The HTTP request could not be built.
    #[error("building the request: {0}")]
    Build(hyper::http::Error),
    /// The HTTP request failed (described with its causes).
    #[error("the request failed: {0}")]
    Request(String),
    /// Reading the HTTP body failed.
    #[error("reading the body failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    /// An HTTP body that is not UTF-8.
    #[error("a body that is not UTF-8")]
    BodyNotUtf8,
}

/// One raw connection to a target.
pub struct Conn {
    kind: Kind,
    wait: Duration,
}

/// What came back for one HTTP post.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Conn {
    /// Connects to `addr` (spawning it for `exec:`), speaking `tls` on `tcp:` and `http://` when
    /// given, authenticating with `token` on `tcp:` and `http://`; `wait` bounds the connection
    /// and every later read.
    pub async fn open(
        addr: &ConnectAddr,
        token: Option<&Token>,
        tls: Option<&ClientTls>,
        wait: Duration,
    ) -> Result<Conn, ConnError> {
        let failed = |why: ConnError| ConnError::Connect { addr: addr.clone(), why: Box::new(why) };
        let line = |read: Box<dyn AsyncRead + Unpin + Send>, write: Box<dyn AsyncWrite + Unpin + Send>, child| {
            Kind::Line { reader: LineReader::new(BufReader::new(read), MAX_ANSWER), writer: write, _child: child }
        };
        let kind = match addr {
            ConnectAddr::Listen(ListenAddr::Unix(path)) => {
                let stream = timeout(wait, UnixStream::connect(path))
                    .await
                    .map_err(|_| failed(ConnError::ConnectTimeout(wait)))?
                    .map_err(|e| failed(ConnError::Unreachable(e)))?;
                let (read, write) = stream.into_split();
                line(Box::new(read), Box::new(write), None)
            }
            ConnectAddr::Listen(ListenAddr::Tcp { host, port }) => {
                let stream = timeout(wait, TcpStream::connect((host.as_str(), *port)))
                    .await
                    .map_err(|_| failed(ConnError::ConnectTimeout(wait)))?
                    .map_err(|e| failed(ConnError::Unreachable(e)))?;
                let _ = stream.set_nodelay(true);
                match tls {
                    None => {
                        let (read, write) = stream.into_split();
                        line(Box::new(read), Box::new(write), None)
                    }
                    Some(tls) => {
                        let name = vproto_jsonrpc::tls::server_name(host)
                            .map_err(|e| failed(ConnError::Tls(e.to_string())))?;
                        let connector = tokio_rustls::TlsConnector::from(tls.config());
                        let stream = timeout(wait, connector.connect(name, stream))
                            .await
                            .map_err(|_| failed(ConnError::ConnectTimeout(wait)))?
                            .map_err(|e| failed(ConnError::Tls(e.to_string())))?;
                        let (read, write) = tokio::io::split(stream);
                        line(Box::new(read), Box::new(write), None)
                    }
                }
            }
            ConnectAddr::Exec(command) => {
                let (child, read, write) = spawn_exec(command).map_err(|e| failed(ConnError::Unreachable(e)))?;
                line(Box::new(read), Box::new(write), Some(child))
            }
            ConnectAddr::Listen(ListenAddr::Http { host, port }) => {
                let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                let builder = HttpClient::builder(TokioExecutor::new());
                let (client, scheme) = match tls {
                    None => (Http::Plain(builder.build_http()), "http"),
                    Some(tls) => {
                        let mut plain = HttpConnector::new();
                        plain.enforce_http(false);
                        let connector = HttpsConnectorBuilder::new()
                            .with_tls_config((*tls.config()).clone())
                            .https_only()
                            .enable_http1()
                            .wrap_connector(plain);
                        (Http::Tls(builder.build(connector)), "https")
                    }
                };
                Kind::Http {
                    client,
                    base: format!("{scheme}://{host}:{port}"),
                    token: token.map(|t| t.secret().to_string()),
                }
            }
            ConnectAddr::Listen(ListenAddr::Vchan(vchan_addr)) => {
                let chan = vproto_jsonrpc::transport::vchan::connect(vchan_addr, wait)
                    .await
                    .map_err(|e| failed(ConnError::Unreachable(std::io::Error::other(e))))?;
                let (read, write) = chan.into_split();
                line(Box::new(read), Box::new(write), None)
            }
            ConnectAddr::Listen(ListenAddr::Amqp(amqp_addr)) => {
                let (read, write) = vproto_jsonrpc::transport::amqp::connect(amqp_addr, &amqp_options(wait, tls))
                    .await
                    .map_err(|e| failed(ConnError::Unreachable(std::io::Error::other(e))))?;
                line(Box::new(read), Box::new(write), None)
            }
            ConnectAddr::Listen(ListenAddr::Stdio) => return Err(failed(ConnError::Stdio)),
        };
        let mut conn = Conn { kind, wait };
        if let (Some(token), ConnectAddr::Listen(ListenAddr::Tcp { .. })) = (token, addr) {
            let auth = serde_json::json!({
                "jsonrpc": "2.0", "method": "rpc.auth", "params": {"token": token.secret()}, "id": "conformance-auth",
            });
            conn.send_line(&auth.to_string()).await.map_err(failed)?;
            let answer = conn.read_line().await.map_err(failed)?;
            let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            if value.get("error").is_some() || value.get("result").is_none() {
                return Err(failed(ConnError::AuthRefused(answer)));
            }
        }
        Ok(conn)
    }

    /// Whether this is an HTTP connection (one post per frame) rather than a line connection.
    pub fn is_http(&self) -> bool {
        matches!(self.kind, Kind::Http { .. })
    }

    /// Sends one frame followed by a newline (line transports).
    pub async fn send_line(&mut self, frame: &str) -> Result<(), ConnError> {
        let Kind::Line { writer, .. } = &mut self.kind else { return Err(ConnError::NotLine) };
        let mut bytes = Vec::with_capacity(frame.len() + 1);
        bytes.extend_from_slice(frame.as_bytes());
        bytes.push(b'\n');
        let write = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        timeout(self.wait, write).await.map_err(|_| ConnError::SendTimeout(self.wait))?.map_err(ConnError::Send)
    }

    /// The next line that comes back (line transports), within the wait.
    pub async fn read_line(&mut self) -> Result<String, ConnError> {
        let wait = self.wait;
        self.line_within(wait).await?.ok_or(ConnError::NoAnswer(wait))
    }

    /// A line that arrives within `grace`, if any (`None`: silence). The reader is cancel-safe,
    /// so a line cut by the deadline is read whole next time.
    pub async fn line_within(&mut self, grace: Duration) -> Result<Option<String>, ConnError> {
        let Kind::Line { reader, .. } = &mut self.kind else { return Err(ConnError::NotLine) };
        match timeout(grace, reader.next()).await {
            Err(_) => Ok(None),
            Ok(Err(error)) => Err(ConnError::Read(error)),
            Ok(Ok(None)) => Err(ConnError::Closed),
            Ok(Ok(Some(Line::TooLarge))) => Err(ConnError::TooLarge),
            Ok(Ok(Some(Line::Frame(bytes)))) => {
                std::str::from_utf8(bytes).map(|text| Some(text.to_string())).map_err(|_| ConnError::NotUtf8)
            }
        }
    }

    /// Posts one frame to `/jsonrpc` (HTTP) and returns the status and body.
    pub async fn post(&mut self, frame: &str) -> Result<HttpAnswer, ConnError> {
        self.http("POST", "/jsonrpc", frame).await
    }

    /// Sends one HTTP request (`verb` on `path`, `body` unless empty) and returns the status
    /// and body.
    pub async fn http(&mut self, verb: &str, path: &str, body: &str) -> Result<HttpAnswer, ConnError> {
        let wait = self.wait;
        let Kind::Http { client, base, token } = &self.kind else { return Err(ConnError::NotHttp) };
        let verb = hyper::Method::from_bytes(verb.as_bytes()).map_err(|_| ConnError::BadVerb(verb.to_string()))?;
        let mut request = hyper::Request::builder().method(verb).uri(format!("{base}{path}"));
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body.to_string()))).map_err(ConnError::Build)?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| ConnError::Request(describe(&e)))?;
            let status = response.status().as_u16();
            let body =
                Limited::new(response.into_body(), MAX_ANSWER).collect().await.map_err(ConnError::Body)?.to_bytes();
            let body = String::from_utf8(body.to_vec()).map_err(|_| ConnError::BodyNotUtf8)?;
            Ok(HttpAnswer { status, body })
        };
        timeout(wait, exchange).await.map_err(|_| ConnError::NoAnswer(wait))?
    }
}
