//! An embedded, in-memory Xenstore server (`vproto xenstored`) for development and tests: Xen's
//! own daemons need the hypervisor, this one only needs a Unix socket.
//!
//! Semantics follow Xen's `docs/misc/xenstore.txt` and C xenstored:
//! - nodes with values and children; WRITE and MKDIR create missing parents (empty values, the
//!   parent's permissions, owned by the creating guest); RM removes a subtree and succeeds on a
//!   missing node whose parent exists; RM of `/` is `EINVAL`;
//! - permissions (`n`/`r`/`w`/`b` + domid, owner first): dom0 and the owner may do anything,
//!   listed domains get their entry, others the first entry's access; a guest may not change a
//!   node's owner (`EPERM`);
//! - watches fire once on registration and then for every change at or below their path (a
//!   removed parent fires watches below it with the watch's own path); relative watches get
//!   relative paths; `@introduceDomain`/`@releaseDomain` fire on INTRODUCE/RELEASE; guests only
//!   see events for nodes they may read;
//! - transactions work on a snapshot; commit fails with `EAGAIN` when a node the transaction read
//!   or wrote changed meanwhile; their watch events fire at commit;
//! - quotas for guests (nodes owned, value size, watches and transactions per connection,
//!   answered `ENOSPC`/`E2BIG` like C xenstored; a transaction's commit is refused `ENOSPC`
//!   when the nodes it adds would take its domain past the node quota, whatever other
//!   transactions committed meanwhile); connections per guest domain (a connection beyond the
//!   quota has its first request answered `ENOSPC` and is closed; dom0's are not counted); a
//!   payload above 4096 bytes closes the connection (Xen kills such clients); unknown or
//!   unsupported requests get `ENOSYS`;
//! - every request's payload has exactly the layout `xenstore.txt` gives its type
//!   ([`wire::MsgType::request_shape`]: strings NUL-terminated, no string missing or one too
//!   many, nothing after the last but WRITE's value or a reserved value), else `EINVAL`, as C
//!   xenstored answers;
//! - every connection on `--socket` is dom0; a socket given with `--domain DOMID=PATH` makes its
//!   connections that domain (unprivileged, relative paths under `/local/domain/DOMID`, which is
//!   created for it and owned by it); dom0's relative paths resolve under `/local/domain/0`;
//! - every domain served has `/local/domain/<id>/domid` holding its id, owned by dom0 and
//!   readable by the domain, as Xen's toolstack writes it (a program learns its own domain id by
//!   reading the relative path `domid`, as libxenvchan's server does): dom0's (`"0"`), each
//!   `--domain` socket's, and each domain INTRODUCEd later (whose home is created, owned by it,
//!   when missing; a RELEASE leaves the nodes, as the toolstack removes them on a real host).
//!
//! **Architecture Invariant:** a bad client costs only its own connection. Requests are handled
//! under one lock without awaiting; replies and events go to per-connection queues, and a
//! connection whose queue exceeds `outbound_bytes` (it stopped reading) is closed.

mod store;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{unix::OwnedWriteHalf, UnixListener, UnixStream},
    sync::{mpsc, Notify},
    task::JoinHandle,
};
use vproto_listen::{bind_unix, BindError, ShutdownHandle, ShutdownSignal, SocketFile};

use self::store::{can_read, is_child, Caller, Event, Generations, NodeLimits, Store, Tracker};
use crate::{
    perms::{Access, Permission, DOMID_MAX},
    wire::{self, Args, ErrorCode, FrameError, Message, MsgType, ABS_PATH_MAX, PAYLOAD_MAX},
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum XenstoredError {
    /// A socket could not be listened on (in use by a live server, not a socket, ...).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Two `--domain` sockets name the same domain.
    #[error("domain {0} is given twice")]
    DuplicateDomain(u32),
}

/// Why a `DOMID=PATH` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainSocketError {
    /// No `=`.
    #[error("{0:?}: expected DOMID=PATH, e.g. 5=/tmp/dom5.sock")]
    NoEquals(String),
    /// The domain is not a number in 1..=65535.
    #[error("{0:?}: the domid must be 1..=65535 (dom0 is --socket)")]
    BadDomid(String),
    /// Nothing after the `=`.
    #[error("{0:?}: empty socket path")]
    EmptyPath(String),
}

/// Limits applied to guests (unprivileged domains), with C xenstored's defaults (C xenstored
/// has no connection quota: a Xen guest has one ring; here each guest process may connect),
/// plus the outbound queue bound applied to every connection. dom0 is exempt from all but
/// `outbound_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes a guest may own (`ENOSPC` beyond). Default 1000.
    pub nodes_per_domain: usize,
    /// Largest value a guest may write (`ENOSPC` beyond). Default 2048.
    pub entry_size: usize,
    /// Watches per guest connection (`E2BIG` beyond). Default 128.
    pub watches_per_connection: usize,
    /// Open transactions per guest connection (`ENOSPC` beyond). Default 10.
    pub transactions_per_connection: usize,
    /// Open connections per guest domain: one more has its first request answered `ENOSPC`
    /// and is closed. Default 32.
    pub connections_per_domain: usize,
    /// Bytes of replies and events queued for a connection that does not read them before it is
    /// closed. Default 4 MiB.
    pub outbound_bytes: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes_per_domain: 1000,
            entry_size: 2048,
            watches_per_connection: 128,
            transactions_per_connection: 10,
            connections_per_domain: 32,
            outbound_bytes: 4 << 20,
        }
    }
}

/// A socket whose connections are a given guest domain (`DOMID=PATH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSocket {
    /// The domain (1..=65535).
    pub domid: u32,
    /// The socket path.
    pub path: PathBuf,
}

impl FromStr for DomainSocket {
    type Err = DomainSocketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (domid, path) = s.split_once('=').ok_or_else(|| DomainSocketError::NoEquals(s.to_string()))?;
        let domid = domid
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=DOMID_MAX).contains(d))
            .ok_or_else(|| DomainSocketError::BadDomid(s.to_string()))?;
        if path.is_empty() {
            return Err(DomainSocketError::EmptyPath(s.to_string()));
        }
        Ok(DomainSocket { domid, path: PathBuf::from(path) })
    }
}

/// What `vproto xenstored` serves.
#[derive(Clone, Debug)]
pub struct XenstoredConfig {
    /// The dom0 socket.
    pub socket: PathBuf,
    /// Sockets for guest domains.
    pub domains: Vec<DomainSocket>,
    /// Limits.
    pub quotas: Quotas,
}

impl XenstoredConfig {
    /// A dom0 socket with default quotas and no guest sockets.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        XenstoredConfig { socket: socket.into(), domains: Vec::new(), quotas: Quotas::default() }
    }
}

/// A running server; [`RunningXenstored::shutdown`] stops it and removes its socket files
/// (dropping it stops it too).
pub struct RunningXenstored {
    stop: ShutdownHandle,
    accept_loops: Vec<JoinHandle<()>>,
    files: Vec<SocketFile>,
    socket: PathBuf,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for RunningXenstored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningXenstored").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl RunningXenstored {
    /// The dom0 socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Current number of nodes and of open connections.
    pub fn stats(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.store.len(), state.conns.len())
    }

    /// Stops accepting, closes every connection and removes the socket files.
    pub async fn shutdown(self) {
        self.stop.shutdown();
        for task in self.accept_loops {
            let _ = task.await;
        }
        drop(self.files);
    }
}

/// Binds every socket of `config` and starts serving. Fails when a socket path is in use by a
/// live server or is not a socket.
pub async fn serve(config: XenstoredConfig) -> Result<RunningXenstored, XenstoredError> {
    let mut listeners = Vec::new();
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for domain in &config.domains {
        if !seen.insert(domain.domid) {
            return Err(XenstoredError::DuplicateDomain(domain.domid));
        }
    }
    let (listener, file) = bind_unix(&config.socket).await?;
    listeners.push((listener, Caller { domid: 0, privileged: true }));
    files.push(file);
    for domain in &config.domains {
        let (listener, file) = bind_unix(&domain.path).await?;
        listeners.push((listener, Caller { domid: domain.domid, privileged: false }));
        files.push(file);
    }
    let mut state = State::new(config.quotas);
    state.store.ensure_home(0, &mut state.gens);
    for domain in &config.domains {
        state.store.ensure_home(domain.domid, &mut state.gens);
        state.introduced.insert(domain.domid);
    }
    let state = Arc::new(Mutex::new(state));
    let (signal, stop) = ShutdownSignal::new();
    let accept_loops = listeners
        .into_iter()
        .map(|(listener, caller)| tokio::spawn(accept_loop(listener, caller, state.clone(), signal.child())))
        .collect();
    tracing::info!(socket = %config.socket.display(), domains = config.domains.len(), "xenstored listening");
    Ok(RunningXenstored { stop, accept_loops, files, socket: config.socket, state })
}

async fn accept_loop(listener: UnixListener, caller: Caller, state: Arc<Mutex<State>>, stop: ShutdownSignal) {
    let mut connections = Vec::new();
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.retain(|task: &JoinHandle<()>| !task.is_finished());
                    connections.push(tokio::spawn(serve_connection(stream, caller, state.clone(), stop.child())));
                }
                Err(error) => {
                    // Out of descriptors, typically: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    for task in connections {
        let _ = task.await;
    }
}

/// A connection's queue of encoded messages, bounded in bytes.
struct Outbox {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    kill: Arc<Notify>,
}

impl Outbox {
    fn send(&self, message: Message) {
        let frame = message.encode();
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > self.limit {
            // The client stopped reading; it alone pays.
            self.kill.notify_one();
            return;
        }
        let _ = self.frames.send(frame);
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    kill: Arc<Notify>,
) {
    while let Some(frame) = frames.recv().await {
        if let Err(error) = write.write_all(&frame).await {
            tracing::debug!(%error, "xenstored: write failed");
            kill.notify_one();
            return;
        }
        queued.fetch_sub(frame.len(), Ordering::AcqRel);
    }
    let _ = write.shutdown().await;
}

/// How long a refused connection has to send the request its refusal answers.
const REFUSAL_WAIT: Duration = Duration::from_secs(1);
/// Refused connections waiting for that request at once; beyond, they are closed unanswered.
const REFUSALS_IN_FLIGHT: usize = 64;

/// Answers the first request of a connection over its domain's connection quota with `ENOSPC`
/// (waiting at most [`REFUSAL_WAIT`] for it), then closes it.
async fn refuse(mut stream: UnixStream, state: &Mutex<State>, stop: ShutdownSignal) {
    let answer = async {
        let message = wire::read_message(&mut stream).await.ok()?;
        let payload = wire::strings_payload(&[ErrorCode::NoSpc.as_str().as_bytes()]);
        let reply = Message::new(MsgType::Error, message.req_id, message.tx_id, payload);
        stream.write_all(&reply.encode()).await.ok()?;
        stream.shutdown().await.ok()
    };
    tokio::select! {
        _ = stop.wait() => {}
        _ = tokio::time::timeout(REFUSAL_WAIT, answer) => {}
    }
    lock(state).refusing -= 1;
}

async fn serve_connection(stream: UnixStream, caller: Caller, state: Arc<Mutex<State>>, stop: ShutdownSignal) {
    let (frames, queue) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let kill = Arc::new(Notify::new());
    let admitted = {
        let mut state = lock(&state);
        let limit = state.quotas.outbound_bytes;
        state.add_connection(caller, Outbox { frames, queued: queued.clone(), limit, kill: kill.clone() })
    };
    let id = match admitted {
        Admission::Admitted(id) => id,
        Admission::Refused => return refuse(stream, &state, stop).await,
        Admission::Dropped => return,
    };
    let (mut read, write) = stream.into_split();
    let writer = tokio::spawn(write_loop(write, queue, queued, kill.clone()));
    tracing::debug!(id, domid = caller.domid, "xenstored: connection opened");
    let mut killed = false;
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = kill.notified() => {
                tracing::warn!(id, domid = caller.domid, "xenstored: closing a connection that does not read its replies");
                killed = true;
                break;
            }
            message = wire::read_message(&mut read) => match message {
                Ok(message) => lock(&state).handle(id, message),
                Err(FrameError::Eof) => break,
                Err(FrameError::Io(error)) => {
                    tracing::debug!(id, %error, "xenstored: connection failed");
                    break;
                }
                Err(FrameError::TooLong { header }) => {
                    tracing::warn!(
                        id, domid = caller.domid, len = header.len, msg_type = header.msg_type,
                        "xenstored: payload above {PAYLOAD_MAX} bytes, closing the connection (as Xen does)"
                    );
                    break;
                }
            },
        }
    }
    // Dropping the connection drops its transactions, watches and queue sender.
    lock(&state).remove_connection(id);
    if killed {
        writer.abort();
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }
    tracing::debug!(id, "xenstored: connection closed");
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct WatchReg {
    /// Absolute path or `@name`.
    path: String,
    token: Vec<u8>,
    /// Events are reported relative to the domain's home.
    relative: bool,
}

struct Tx {
    snapshot: Store,
    tracker: Tracker,
    /// Nodes the caller's domain owned when the transaction started.
    owned_at_start: usize,
}

struct Conn {
    caller: Caller,
    out: Outbox,
    watches: Vec<WatchReg>,
    txs: HashMap<u32, Tx>,
}

struct State {
    store: Store,
    gens: Generations,
    quotas: Quotas,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    next_tx: u32,
    introduced: BTreeSet<u32>,
    /// Open connections per guest domain.
    guest_connections: HashMap<u32, usize>,
    /// Refused connections being answered ([`refuse`]).
    refusing: usize,
    /// Guest domains at their connection quota whose refusal was logged as a warning (once
    /// until they drop below it).
    warned: BTreeSet<u32>,
}

/// What [`State::add_connection`] decided.
enum Admission {
    /// Served under this id.
    Admitted(u64),
    /// Over its domain's connection quota: answer its first request `ENOSPC`.
    Refused,
    /// Over quota while [`REFUSALS_IN_FLIGHT`] others are being answered: closed at once.
    Dropped,
}

/// A successful reply, and a message to send right after it (a watch's initial event).
struct Reply {
    payload: Vec<u8>,
    then: Option<Message>,
}

impl Reply {
    fn ok() -> Reply {
        Reply { payload: b"OK\0".to_vec(), then: None }
    }

    fn data(payload: Vec<u8>) -> Reply {
        Reply { payload, then: None }
    }
}

fn home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

fn parse_domid(bytes: Option<&&[u8]>) -> Result<u32, ErrorCode> {
    let text = std::str::from_utf8(bytes.ok_or(ErrorCode::Inval)?).map_err(|_| ErrorCode::Inval)?;
    text.parse::<u32>().ok().filter(|d| *d <= DOMID_MAX).ok_or(ErrorCode::Inval)
}

/// A request whose payload is `|` (one empty string) holds nothing else.
fn no_argument(args: &[&[u8]]) -> Result<(), ErrorCode> {
    if args.iter().all(|arg| arg.is_empty()) {
        Ok(())
    } else {
        Err(ErrorCode::Inval)
    }
}

fn event_message(path: &[u8], token: &[u8]) -> Message {
    Message::new(MsgType::WatchEvent, 0, 0, wire::strings_payload(&[path, token]))
}

impl State {
    fn new(quotas: Quotas) -> State {
        let mut gens = Generations::new();
        let store = Store::new(&mut gens);
        State {
            store,
            gens,
            quotas,
            conns: HashMap::new(),
            next_conn: 1,
            next_tx: 1,
            introduced: BTreeSet::new(),
            guest_connections: HashMap::new(),
            refusing: 0,
            warned: BTreeSet::new(),
        }
    }

    /// Admits a connection unless it is a guest's beyond its domain's connection quota.
    fn add_connection(&mut self, caller: Caller, out: Outbox) -> Admission {
        if !caller.privileged {
            let quota = self.quotas.connections_per_domain;
            let open = self.guest_connections.entry(caller.domid).or_default();
            if *open >= quota {
                if self.warned.insert(caller.domid) {
                    tracing::warn!(
                        domid = caller.domid,
                        quota,
                        "xenstored: domain at its connection quota; refusing its further connections (ENOSPC)"
                    );
                } else {
                    tracing::debug!(domid = caller.domid, quota, "xenstored: connection over quota refused");
                }
                if self.refusing >= REFUSALS_IN_FLIGHT {
                    return Admission::Dropped;
                }
                self.refusing += 1;
                return Admission::Refused;
            }
            *open += 1;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, Conn { caller, out, watches: Vec::new(), txs: HashMap::new() });
        Admission::Admitted(id)
    }

    /// Forgets a connection with its watches, transactions and queue.
    fn remove_connection(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else { return };
        if conn.caller.privileged {
            return;
        }
        let domid = conn.caller.domid;
        if let Some(open) = self.guest_connections.get_mut(&domid) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.guest_connections.remove(&domid);
            }
        }
        self.warned.remove(&domid);
    }

    fn limits(&self) -> NodeLimits {
        NodeLimits { nodes: self.quotas.nodes_per_domain, entry_size: self.quotas.entry_size }
    }

    /// Handles one request and queues its reply.
    fn handle(&mut self, id: u64, message: Message) {
        let result = self.dispatch(id, &message);
        let Some(conn) = self.conns.get(&id) else { return };
        match result {
            Ok(reply) => {
                conn.out.send(Message {
                    msg_type: message.msg_type,
                    req_id: message.req_id,
                    tx_id: message.tx_id,
                    payload: reply.payload,
                });
                if let Some(then) = reply.then {
                    conn.out.send(then);
                }
            }
            Err(code) => {
                let payload = wire::strings_payload(&[code.as_str().as_bytes()]);
                conn.out.send(Message::new(MsgType::Error, message.req_id, message.tx_id, payload));
            }
        }
    }

    /// Checks a path and makes it absolute; returns whether it was relative.
    fn resolve(&self, caller: Caller, path: &[u8], allow_special: bool) -> Result<(String, bool), ErrorCode> {
        wire::check_path(path, allow_special).map_err(|_| ErrorCode::Inval)?;
        // check_path allowed ASCII only.
        let text = String::from_utf8_lossy(path).into_owned();
        if text.starts_with('/') || text.starts_with('@') {
            return Ok((text, false));
        }
        let absolute = format!("{}/{text}", home(caller.domid));
        if absolute.len() > ABS_PATH_MAX {
            return Err(ErrorCode::Inval);
        }
        Ok((absolute, true))
    }

    fn dispatch(&mut self, id: u64, message: &Message) -> Result<Reply, ErrorCode> {
        let caller = self.conns.get(&id).ok_or(ErrorCode::Io)?.caller;
        let Some(kind) = message.kind() else {
            tracing::debug!(id, msg_type = message.msg_type, "xenstored: unknown message type");
            return Err(ErrorCode::NoSys);
        };
        // CONTROL (DEBUG) is refused, as are requests this server does not implement and
        // message types only a server sends.
        let shape = match kind {
            MsgType::Control
            | MsgType::SetTarget
            | MsgType::Restrict
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota
            | MsgType::WatchEvent
            | MsgType::Error
            | MsgType::Invalid => None,
            _ => kind.request_shape(),
        };
        let Some(shape) = shape else { return Err(ErrorCode::NoSys) };
        // The payload has exactly the layout its type defines (as C xenstored checks it): a
        // string without its NUL, or one too many, is EINVAL, never read as something else.
        let split = wire::split_request(&message.payload, shape).map_err(|error| {
            tracing::debug!(id, %kind, %error, "xenstored: malformed payload");
            ErrorCode::Inval
        })?;
        let args = &split.strings[..];
        match kind {
            MsgType::Read
            | MsgType::Directory
            | MsgType::DirectoryPart
            | MsgType::GetPerms
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::SetPerms => self.node_op(id, caller, kind, message.tx_id, &split),
            MsgType::Watch => self.watch(id, caller, args),
            MsgType::Unwatch => self.unwatch(id, caller, args),
            MsgType::TransactionStart => self.transaction_start(id, caller, message.tx_id, args),
            MsgType::TransactionEnd => self.transaction_end(id, caller, message.tx_id, args),
            MsgType::GetDomainPath => {
                let domid = parse_domid(args.first())?;
                Ok(Reply::data(wire::strings_payload(&[home(domid).as_bytes()])))
            }
            MsgType::IsDomainIntroduced => {
                let domid = parse_domid(args.first())?;
                let known = domid == 0 || self.introduced.contains(&domid);
                Ok(Reply::data(if known { b"T\0".to_vec() } else { b"F\0".to_vec() }))
            }
            MsgType::Introduce | MsgType::Release | MsgType::Resume => self.domain_op(caller, kind, args),
            MsgType::ResetWatches => {
                no_argument(args)?;
                let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
                conn.watches.clear();
                conn.txs.clear();
                Ok(Reply::ok())
            }
            _ => Err(ErrorCode::NoSys),
        }
    }

    /// A request on a node; `args` are split by its type's shape, `args.tail` is WRITE's value.
    fn node_op(&mut self, id: u64, caller: Caller, kind: MsgType, tx_id: u32, args: &Args) -> Result<Reply, ErrorCode> {
        let (path, _) = self.resolve(caller, args.strings[0], false)?;
        let limits = self.limits();
        let mut direct = Tracker::default();
        let (store, tracker) = if tx_id == 0 {
            (&mut self.store, &mut direct)
        } else {
            let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
            let tx = conn.txs.get_mut(&tx_id).ok_or(ErrorCode::NoEnt)?;
            (&mut tx.snapshot, &mut tx.tracker)
        };
        let gens = &mut self.gens;
        let reply = match kind {
            MsgType::Read => Reply::data(store.read(caller, &path, tracker)?),
            MsgType::Directory => {
                let (children, _) = store.directory(caller, &path, tracker)?;
                let mut out = Vec::new();
                for child in &children {
                    wire::push_str(&mut out, child.as_bytes());
                }
                if out.len() > PAYLOAD_MAX {
                    return Err(ErrorCode::TooBig);
                }
                Reply::data(out)
            }
            MsgType::DirectoryPart => {
                let offset = args.strings[1];
                let offset = std::str::from_utf8(offset)
                    .ok()
                    .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|o| o.parse::<usize>().ok())
                    .ok_or(ErrorCode::Inval)?;
                let (children, generation) = store.directory(caller, &path, tracker)?;
                Reply::data(directory_part(&children, generation, offset)?)
            }
            MsgType::GetPerms => {
                let perms = store.get_perms(caller, &path, tracker)?;
                let texts: Vec<String> = perms.iter().map(Permission::to_string).collect();
                Reply::data(wire::strings_payload(&texts.iter().map(|t| t.as_bytes()).collect::<Vec<_>>()))
            }
            MsgType::Write => {
                store.write(caller, limits, &path, args.tail, gens, tracker)?;
                Reply::ok()
            }
            MsgType::Mkdir => {
                store.mkdir(caller, limits, &path, gens, tracker)?;
                Reply::ok()
            }
            MsgType::Rm => {
                store.rm(caller, &path, gens, tracker)?;
                Reply::ok()
            }
            MsgType::SetPerms => {
                let perms = args.strings[1..]
                    .iter()
                    .map(|p| std::str::from_utf8(p).map_err(|_| ErrorCode::Inval))
                    .collect::<Result<Vec<&str>, _>>()?;
                let perms = Permission::parse_list(perms).map_err(|_| ErrorCode::Inval)?;
                store.set_perms(caller, &path, perms, gens, tracker)?;
                Reply::ok()
            }
            _ => return Err(ErrorCode::NoSys),
        };
        if tx_id == 0 {
            self.fire(&direct.events);
        }
        Ok(reply)
    }

    fn watch(&mut self, id: u64, caller: Caller, args: &[&[u8]]) -> Result<Reply, ErrorCode> {
        let (Some(given), Some(token)) = (args.first(), args.get(1)) else { return Err(ErrorCode::Inval) };
        let (path, relative) = self.resolve(caller, given, true)?;
        let quota = self.quotas.watches_per_connection;
        let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
        if conn.watches.iter().any(|w| w.path == path && w.token == *token) {
            return Err(ErrorCode::Exist);
        }
        if !caller.privileged && conn.watches.len() >= quota {
            return Err(ErrorCode::TooBig);
        }
        conn.watches.push(WatchReg { path, token: token.to_vec(), relative });
        // Every new watch fires once, with the path as given.
        Ok(Reply { payload: b"OK\0".to_vec(), then: Some(event_message(given, token)) })
    }

    fn unwatch(&mut self, id: u64, caller: Caller, args: &[&[u8]]) -> Result<Reply, ErrorCode> {
        let (Some(given), Some(token)) = (args.first(), args.get(1)) else { return Err(ErrorCode::Inval) };
        let (path, _) = self.resolve(caller, given, true)?;
        let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
        let index = conn.watches.iter().position(|w| w.path == path && w.token == *token).ok_or(ErrorCode::NoEnt)?;
        conn.watches.remove(index);
        Ok(Reply::ok())
    }

    fn transaction_start(&mut self, id: u64, caller: Caller, tx_id: u32, args: &[&[u8]]) -> Result<Reply, ErrorCode> {
        no_argument(args)?;
        if tx_id != 0 {
            return Err(ErrorCode::Busy);
        }
        let quota = self.quotas.transactions_per_connection;
        let mut next = self.next_tx;
        let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
        if !caller.privileged && conn.txs.len() >= quota {
            return Err(ErrorCode::NoSpc);
        }
        // Copied only once admitted: a refused start costs no copy of the store.
        let snapshot = self.store.clone();
        while next == 0 || conn.txs.contains_key(&next) {
            next = next.wrapping_add(1);
        }
        let owned_at_start = snapshot.owned_by(caller.domid);
        conn.txs.insert(next, Tx { snapshot, tracker: Tracker::default(), owned_at_start });
        self.next_tx = next.wrapping_add(1);
        Ok(Reply::data(wire::strings_payload(&[next.to_string().as_bytes()])))
    }

    fn transaction_end(&mut self, id: u64, caller: Caller, tx_id: u32, args: &[&[u8]]) -> Result<Reply, ErrorCode> {
        let commit = match args.first().copied() {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(ErrorCode::Inval),
        };
        let conn = self.conns.get_mut(&id).ok_or(ErrorCode::Io)?;
        let tx = conn.txs.remove(&tx_id).ok_or(ErrorCode::NoEnt)?;
        if !commit {
            return Ok(Reply::ok());
        }
        if !self.store.unchanged(&tx.tracker.accessed) {
            return Err(ErrorCode::Again);
        }
        // Each transaction was checked against its own snapshot: the nodes it adds must still
        // fit beside what the domain's other writes added meanwhile.
        let added = tx.snapshot.owned_by(caller.domid).saturating_sub(tx.owned_at_start);
        if !caller.privileged && added > 0 && self.store.owned_by(caller.domid) + added > self.quotas.nodes_per_domain {
            return Err(ErrorCode::NoSpc);
        }
        self.store.apply(&tx.snapshot, &tx.tracker.modified);
        self.fire(&tx.tracker.events);
        Ok(Reply::ok())
    }

    fn domain_op(&mut self, caller: Caller, kind: MsgType, args: &[&[u8]]) -> Result<Reply, ErrorCode> {
        if !caller.privileged {
            return Err(ErrorCode::Acces);
        }
        let domid = parse_domid(args.first())?;
        if domid == 0 {
            return Err(ErrorCode::Inval);
        }
        let special = match kind {
            MsgType::Introduce => {
                // <domid>|<mfn>|<evtchn>|: there is no shared page here, but the form is checked.
                for arg in [args.get(1), args.get(2)] {
                    let text = std::str::from_utf8(arg.ok_or(ErrorCode::Inval)?).map_err(|_| ErrorCode::Inval)?;
                    text.parse::<i64>().map_err(|_| ErrorCode::Inval)?;
                }
                self.introduced.insert(domid);
                let created = self.store.ensure_home(domid, &mut self.gens);
                self.fire(&created);
                "@introduceDomain"
            }
            MsgType::Release => {
                if !self.introduced.remove(&domid) {
                    return Err(ErrorCode::NoEnt);
                }
                "@releaseDomain"
            }
            _ => {
                return if self.introduced.contains(&domid) { Ok(Reply::ok()) } else { Err(ErrorCode::NoEnt) };
            }
        };
        let everyone = vec![Permission::new(0, Access::Read)];
        self.fire(&[Event { path: special.to_string(), perms: everyone, recursive: false }]);
        Ok(Reply::ok())
    }

    /// Sends each event to every matching watch the watcher may see.
    fn fire(&self, events: &[Event]) {
        for event in events {
            let special = event.path.starts_with('@');
            for conn in self.conns.values() {
                if !special && !can_read(conn.caller, &event.perms) {
                    continue;
                }
                for watch in &conn.watches {
                    let reported = if special || watch.path.starts_with('@') {
                        if watch.path != event.path {
                            continue;
                        }
                        &event.path
                    } else if is_child(&event.path, &watch.path) {
                        &event.path
                    } else if event.recursive && is_child(&watch.path, &event.path) {
                        &watch.path
                    } else {
                        continue;
                    };
                    let path = if watch.relative {
                        let prefix = format!("{}/", home(conn.caller.domid));
                        reported.strip_prefix(&prefix).unwrap_or(reported)
                    } else {
                        reported
                    };
                    conn.out.send(event_message(path.as_bytes(), &watch.token));
                }
            }
        }
    }
}

/// DIRECTORY_PART's reply (as C xenstored): `<generation>|` then the children list from byte
/// `offset` of the full NUL-separated list, as much as fits; an extra NUL marks the end.
fn directory_part(children: &[String], generation: u64, offset: usize) -> Result<Vec<u8>, ErrorCode> {
    let mut all = Vec::new();
    for child in children {
        wire::push_str(&mut all, child.as_bytes());
    }
    if offset > all.len() {
        return Err(ErrorCode::Inval);
    }
    let mut out = Vec::new();
    wire::push_str(&mut out, generation.to_string().as_bytes());
    let mut end = offset;
    for name in all[offset..].split_inclusive(|b| *b == 0) {
        if out.len() + (end - offset) + name.len() >= PAYLOAD_MAX {
            break;
        }
        end += name.len();
    }
    out.extend_from_slice(&all[offset..end]);
    if end == all.len() {
        out.push(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_socket_parses() {
        assert_eq!(
            "5=/tmp/x".parse::<DomainSocket>().unwrap(),
            DomainSocket { domid: 5, path: PathBuf::from("/tmp/x") }
        );
        for bad in ["5", "0=/x", "70000=/x", "a=/x", "5="] {
            assert!(bad.parse::<DomainSocket>().is_err(), "{bad}");
        }
    }

    #[test]
    fn directory_part_slices() {
        let children: Vec<String> = (0..1000).map(|i| format!("child{i:04}")).collect();
        let mut offset = 0;
        let mut seen = Vec::new();
        loop {
            let reply = directory_part(&children, 7, offset).unwrap();
            assert!(reply.len() <= PAYLOAD_MAX);
            let rest = reply.strip_prefix(b"7\0").unwrap();
            let end = rest.ends_with(b"\0\0") || rest == b"\0";
            let chunk = if end { &rest[..rest.len() - 1] } else { rest };
            seen.extend(wire::split_strings(chunk).into_iter().map(|c| String::from_utf8(c.to_vec()).unwrap()));
            offset += chunk.len();
            if end {
                break;
            }
        }
        assert_eq!(seen, children);
        assert_eq!(directory_part(&[], 1, 0).unwrap(), b"1\0\0");
        assert_eq!(directory_part(&children, 1, 1 << 20), Err(ErrorCode::Inval));
    }
}
