//! The async Xenstore client: one connection multiplexed by request id.
//!
//! ```text
//!   Xenstore (cheap clone) ──► writer task (frames in call order) ──► socket | xenbus device
//!        ▲  oneshot per req_id                                                  │
//!        └──────────── reader task: replies by req_id, WATCH_EVENT by token ◄───┘
//! ```
//!
//! Requests are checked (paths, payload length, tokens) before anything is sent. Replies may
//! arrive in any order. When the connection drops, every pending call and every later call fails
//! with [`XsError::ConnectionClosed`] and every [`Watch`] ends.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot, watch},
    task::AbortHandle,
};

use super::{
    perms::Permission,
    wire::{self, FrameError, Message, MsgType, Shape, Tail, PAYLOAD_MAX},
    XenstoreAddr, XsError,
};

/// How many times [`Xenstore::transact`] runs a transaction by default before giving up on
/// `EAGAIN`.
pub const DEFAULT_TX_ATTEMPTS: u32 = 16;

/// The future a [`Xenstore::transact`] body returns: boxed, so it may borrow the transaction.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, XsError>> + Send + 't>>;

/// State shared by the handles and the reader/writer tasks.
#[derive(Default)]
struct ConnState {
    /// Calls waiting for their reply, by request id.
    pending: HashMap<u32, oneshot::Sender<Result<Message, XsError>>>,
    /// Registered watches, by token.
    watches: HashMap<String, mpsc::UnboundedSender<WatchEvent>>,
    /// Set once the connection is gone, with the reason.
    closed: Option<String>,
}

/// The connection state and a signal raised once it is closed.
struct Shared {
    state: Mutex<ConnState>,
    closed: watch::Sender<bool>,
}

type Core = Arc<Shared>;

fn lock(core: &Core) -> std::sync::MutexGuard<'_, ConnState> {
    core.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks the connection closed: every pending call gets the reason, every watch ends.
fn close(core: &Core, reason: String) {
    let (pending, watches) = {
        let mut state = lock(core);
        if state.closed.is_none() {
            state.closed = Some(reason.clone());
        }
        (std::mem::take(&mut state.pending), std::mem::take(&mut state.watches))
    };
    for (_, waiter) in pending {
        let _ = waiter.send(Err(XsError::ConnectionClosed(reason.clone())));
    }
    drop(watches);
    core.closed.send_replace(true);
}

struct Inner {
    core: Core,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    next_req: AtomicU32,
    reader: AbortHandle,
    addr: XenstoreAddr,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer ends when `frames` is dropped; the reader would wait for the peer forever.
        self.reader.abort();
    }
}

/// A connection to a Xenstore. Clones share the connection; it closes when the last clone,
/// [`Transaction`] and [`Watch`] are gone.
#[derive(Clone)]
pub struct Xenstore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xenstore").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

/// One watch notification: the path that changed (relative when the watch path was) and the
/// watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The changed path (or the watched path, when a parent of it was removed).
    pub path: String,
    /// The token the watch was registered with.
    pub token: String,
}

/// A registered watch. The first event arrives right after registration (Xenstore fires every
/// new watch once). Events wait in an unbounded queue until read, so the connection never stalls
/// on a slow consumer. Dropping the watch unregisters it.
#[derive(Debug)]
pub struct Watch {
    xs: Xenstore,
    path: String,
    token: String,
    events: mpsc::UnboundedReceiver<WatchEvent>,
    active: bool,
}

impl Watch {
    /// The next event; `None` once the watch is unregistered or the connection is closed.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// The watched path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Unregisters the watch and waits for the server's answer.
    pub async fn unwatch(mut self) -> Result<(), XsError> {
        self.active = false;
        self.xs.forget_watch(&self.token);
        let payload = wire::strings_payload(&[self.path.as_bytes(), self.token.as_bytes()]);
        self.xs.request(MsgType::Unwatch, 0, payload).await.map(drop)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.active {
            self.xs.forget_watch(&self.token);
            let payload = wire::strings_payload(&[self.path.as_bytes(), self.token.as_bytes()]);
            self.xs.send_unanswered(MsgType::Unwatch, 0, payload);
        }
    }
}

/// An open transaction. Reads and writes see the transaction's own view; [`Transaction::commit`]
/// applies them atomically or fails with [`XsError::Again`] when a node it used changed meanwhile.
/// Dropping it without commit aborts it.
#[derive(Debug)]
pub struct Transaction {
    xs: Xenstore,
    id: u32,
    finished: bool,
}

impl Transaction {
    /// The transaction id given by the server.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Reads a node's value.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.xs.do_read(self.id, path).await
    }

    /// Writes a node's value, creating missing parents.
    pub async fn write(&self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.xs.do_write(self.id, path, value).await
    }

    /// Makes sure a node exists.
    pub async fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.xs.do_path_op(MsgType::Mkdir, self.id, path).await
    }

    /// Removes a node and its subtree.
    pub async fn rm(&self, path: &str) -> Result<(), XsError> {
        self.xs.do_path_op(MsgType::Rm, self.id, path).await
    }

    /// The leaf names of a node's children.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.xs.do_directory(self.id, path).await
    }

    /// A node's access list.
    pub async fn get_perms(&self, path: &str) -> Result<Vec<Permission>, XsError> {
        self.xs.do_get_perms(self.id, path).await
    }

    /// Replaces a node's access list.
    pub async fn set_perms(&self, path: &str, perms: &[Permission]) -> Result<(), XsError> {
        self.xs.do_set_perms(self.id, path, perms).await
    }

    /// Commits; [`XsError::Again`] means another change conflicted and nothing was applied.
    pub async fn commit(mut self) -> Result<(), XsError> {
        self.finished = true;
        self.xs.request(MsgType::TransactionEnd, self.id, b"T\0".to_vec()).await.map(drop)
    }

    /// Discards every change of the transaction.
    pub async fn abort(mut self) -> Result<(), XsError> {
        self.finished = true;
        self.xs.request(MsgType::TransactionEnd, self.id, b"F\0".to_vec()).await.map(drop)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.xs.send_unanswered(MsgType::TransactionEnd, self.id, b"F\0".to_vec());
        }
    }
}

/// Removes a pending entry when its call is cancelled.
struct PendingGuard<'a> {
    core: &'a Core,
    req_id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.core).pending.remove(&self.req_id);
    }
}

fn check_path(path: &str, allow_special: bool) -> Result<(), XsError> {
    wire::check_path(path.as_bytes(), allow_special)
        .map_err(|reason| XsError::InvalidPath { path: path.to_string(), reason })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, XsError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| XsError::Protocol(format!("{what} is not UTF-8: {bytes:?}")))
}

/// The children a `DIRECTORY` reply (or a `DIRECTORY_PART` slice) for `path` lists:
/// `<child-leaf-name>|*`, each name a path element of its own (not empty, no `/`, only the
/// characters paths allow), since callers join it to `path`.
fn child_names(reply: &[u8], what: &str, path: &str) -> Result<Vec<String>, XsError> {
    let refuse = |why: String| XsError::Protocol(format!("{what} reply for {path}: {why}"));
    let list = Shape { min: 0, max: None, tail: Tail::Nothing };
    let names = wire::split_request(reply, list).map_err(|error| refuse(format!("not a list of names: {error}")))?;
    names
        .strings
        .into_iter()
        .map(|name| {
            let name =
                String::from_utf8(name.to_vec()).map_err(|_| refuse(format!("child name {name:?} is not UTF-8")))?;
            if name.is_empty() {
                return Err(refuse("an empty child name".into()));
            }
            if name.contains('/') {
                return Err(refuse(format!("child name {name:?} holds a '/', so it is not one path element")));
            }
            let child = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
            wire::check_path(child.as_bytes(), false)
                .map_err(|reason| refuse(format!("child name {name:?} makes the path {child:?}: {reason}")))?;
            Ok(name)
        })
        .collect()
}

impl Xenstore {
    /// Connects to a Xenstore's Unix socket or opens the xenbus device.
    pub async fn connect(addr: &XenstoreAddr) -> Result<Self, XsError> {
        let io_error = |source| XsError::Io { context: format!("cannot connect to {addr}"), source };
        match addr {
            XenstoreAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(io_error)?;
                let (read, write) = stream.into_split();
                Ok(Self::from_halves(read, write, addr.clone()))
            }
            XenstoreAddr::Xenbus(path) => {
                let file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io_error)?;
                // Two handles on one open file description: the device's state (watches,
                // transactions) is shared, and a blocked read never holds up a write.
                let writer = file.try_clone().map_err(io_error)?;
                Ok(Self::from_halves(tokio::fs::File::from_std(file), tokio::fs::File::from_std(writer), addr.clone()))
            }
        }
    }

    /// A client over any byte stream speaking the Xenstore protocol (tests, proxies).
    pub fn from_stream<S>(stream: S, addr: XenstoreAddr) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        Self::from_halves(read, write, addr)
    }

    fn from_halves<R, W>(mut read: R, mut write: W, addr: XenstoreAddr) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let core: Core = Arc::new(Shared { state: Mutex::default(), closed: watch::Sender::new(false) });
        let (frames, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer_core = core.clone();
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if let Err(error) = async {
                    write.write_all(&frame).await?;
                    write.flush().await
                }
                .await
                {
                    close(&writer_core, format!("write failed: {error}"));
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        let reader_core = core.clone();
        let reader = tokio::spawn(async move {
            let reason = loop {
                match wire::read_message(&mut read).await {
                    Ok(message) => dispatch(&reader_core, message),
                    Err(FrameError::Eof) => break "the server closed the connection".to_string(),
                    Err(FrameError::Io(error)) => break format!("read failed: {error}"),
                    Err(FrameError::TooLong { header }) => {
                        break format!(
                            "the server announced a {}-byte payload (limit {PAYLOAD_MAX}) for request {}",
                            header.len, header.req_id
                        )
                    }
                }
            };
            tracing::debug!(%reason, "xenstore connection closed");
            close(&reader_core, reason);
        })
        .abort_handle();
        Xenstore { inner: Arc::new(Inner { core, frames, next_req: AtomicU32::new(1), reader, addr }) }
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &XenstoreAddr {
        &self.inner.addr
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.core).closed.is_some()
    }

    /// Resolves once the connection is gone (server closed it, I/O error), with the reason; an
    /// idle client learns of it without polling, to reconnect and republish.
    pub async fn closed(&self) -> String {
        let mut signal = self.inner.core.closed.subscribe();
        let _ = signal.wait_for(|closed| *closed).await;
        lock(&self.inner.core).closed.clone().unwrap_or_default()
    }

    /// Reads a node's value.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.do_read(0, path).await
    }

    /// Writes a node's value, creating missing parents with empty values.
    pub async fn write(&self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.do_write(0, path, value).await
    }

    /// Makes sure a node (and its parents) exists, leaving existing values alone.
    pub async fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.do_path_op(MsgType::Mkdir, 0, path).await
    }

    /// Removes a node and its subtree; removing a missing node whose parent exists succeeds.
    pub async fn rm(&self, path: &str) -> Result<(), XsError> {
        self.do_path_op(MsgType::Rm, 0, path).await
    }

    /// The leaf names of a node's children (long lists are fetched with `DIRECTORY_PART`).
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.do_directory(0, path).await
    }

    /// A node's access list: owner first.
    pub async fn get_perms(&self, path: &str) -> Result<Vec<Permission>, XsError> {
        self.do_get_perms(0, path).await
    }

    /// Replaces a node's access list (owner first; at least one entry).
    pub async fn set_perms(&self, path: &str, perms: &[Permission]) -> Result<(), XsError> {
        self.do_set_perms(0, path, perms).await
    }

    /// A domain's home path, `/local/domain/<domid>`.
    pub async fn get_domain_path(&self, domid: u32) -> Result<String, XsError> {
        let reply =
            self.request(MsgType::GetDomainPath, 0, wire::strings_payload(&[domid.to_string().as_bytes()])).await?;
        utf8(reply.strip_suffix(&[0]).unwrap_or(&reply), "GET_DOMAIN_PATH reply")
    }

    /// Whether the server knows the domain (`IS_DOMAIN_INTRODUCED`).
    pub async fn is_domain_introduced(&self, domid: u32) -> Result<bool, XsError> {
        let reply = self
            .request(MsgType::IsDomainIntroduced, 0, wire::strings_payload(&[domid.to_string().as_bytes()]))
            .await?;
        match reply.strip_suffix(&[0]).unwrap_or(&reply) {
            b"T" => Ok(true),
            b"F" => Ok(false),
            other => Err(XsError::Protocol(format!("IS_DOMAIN_INTRODUCED answered {other:?}, expected T or F"))),
        }
    }

    /// Announces a domain (`INTRODUCE`, toolstack only): fires `@introduceDomain`.
    pub async fn introduce(&self, domid: u32, mfn: u64, evtchn: u32) -> Result<(), XsError> {
        let parts = [domid.to_string(), mfn.to_string(), evtchn.to_string()];
        let payload = wire::strings_payload(&[parts[0].as_bytes(), parts[1].as_bytes(), parts[2].as_bytes()]);
        self.request(MsgType::Introduce, 0, payload).await.map(drop)
    }

    /// Releases a domain (`RELEASE`, toolstack only): fires `@releaseDomain`.
    pub async fn release(&self, domid: u32) -> Result<(), XsError> {
        self.request(MsgType::Release, 0, wire::strings_payload(&[domid.to_string().as_bytes()])).await.map(drop)
    }

    /// Starts a transaction.
    pub async fn transaction(&self) -> Result<Transaction, XsError> {
        let reply = self.request(MsgType::TransactionStart, 0, b"\0".to_vec()).await?;
        let text = utf8(reply.strip_suffix(&[0]).unwrap_or(&reply), "TRANSACTION_START reply")?;
        let id =
            text.parse::<u32>().ok().filter(|id| *id != 0).ok_or_else(|| {
                XsError::Protocol(format!("TRANSACTION_START answered {text:?}, not a transaction id"))
            })?;
        Ok(Transaction { xs: self.clone(), id, finished: false })
    }

    /// Runs `body` in a transaction and commits it, running it again (up to `max_attempts` times
    /// in all) while the body or the commit fails with [`XsError::Again`]. Any other error aborts
    /// the transaction and is returned; after the last attempt [`XsError::Again`] is returned.
    ///
    /// ```no_run
    /// # async fn f(xs: vproto_xenstore::Xenstore) -> Result<(), vproto_xenstore::XsError> {
    /// let n = xs
    ///     .transact(16, |tx| {
    ///         Box::pin(async move {
    ///             let n: u64 = String::from_utf8_lossy(&tx.read("/counter").await?).parse().unwrap_or(0);
    ///             tx.write("/counter", (n + 1).to_string().as_bytes()).await?;
    ///             Ok(n + 1)
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transact<T, F>(&self, max_attempts: u32, mut body: F) -> Result<T, XsError>
    where
        F: for<'t> FnMut(&'t Transaction) -> TxFuture<'t, T>,
    {
        for attempt in 1..=max_attempts.max(1) {
            if attempt > 2 {
                // A short, growing pause lets the conflicting writer finish.
                tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
            }
            let tx = self.transaction().await?;
            match body(&tx).await {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    Err(XsError::Again) => continue,
                    Err(error) => return Err(error),
                },
                Err(XsError::Again) => {
                    let _ = tx.abort().await;
                }
                Err(error) => {
                    let _ = tx.abort().await;
                    return Err(error);
                }
            }
        }
        Err(XsError::Again)
    }

    /// Registers a watch on `path` (or a special name such as `@introduceDomain`) with `token`.
    /// Tokens are unique per connection here, so events reach the right [`Watch`].
    pub async fn watch(&self, path: &str, token: &str) -> Result<Watch, XsError> {
        check_path(path, true)?;
        if token.contains('\0') {
            return Err(XsError::InvalidArgument(format!("watch token {token:?} contains a NUL byte")));
        }
        let payload = wire::strings_payload(&[path.as_bytes(), token.as_bytes()]);
        if payload.len() > PAYLOAD_MAX {
            return Err(XsError::TooLong { what: "WATCH payload", len: payload.len(), max: PAYLOAD_MAX });
        }
        let (sender, events) = mpsc::unbounded_channel();
        {
            let mut state = lock(&self.inner.core);
            if let Some(reason) = &state.closed {
                return Err(XsError::ConnectionClosed(reason.clone()));
            }
            if state.watches.contains_key(token) {
                return Err(XsError::TokenInUse(token.to_string()));
            }
            // Registered before sending, so the initial event cannot be missed.
            state.watches.insert(token.to_string(), sender);
        }
        match self.request(MsgType::Watch, 0, payload).await {
            Ok(_) => {
                Ok(Watch { xs: self.clone(), path: path.to_string(), token: token.to_string(), events, active: true })
            }
            Err(error) => {
                self.forget_watch(token);
                Err(error)
            }
        }
    }

    /// Removes every watch and transaction of this connection on the server (`RESET_WATCHES`).
    /// Existing [`Watch`]es end.
    pub async fn reset_watches(&self) -> Result<(), XsError> {
        self.request(MsgType::ResetWatches, 0, b"\0".to_vec()).await?;
        lock(&self.inner.core).watches.clear();
        Ok(())
    }

    fn forget_watch(&self, token: &str) {
        lock(&self.inner.core).watches.remove(token);
    }

    async fn do_read(&self, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        check_path(path, false)?;
        self.request(MsgType::Read, tx, wire::strings_payload(&[path.as_bytes()])).await
    }

    async fn do_write(&self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        check_path(path, false)?;
        let mut payload = Vec::with_capacity(path.len() + 1 + value.len());
        wire::push_str(&mut payload, path.as_bytes());
        payload.extend_from_slice(value);
        if payload.len() > PAYLOAD_MAX {
            return Err(XsError::TooLong {
                what: "WRITE payload (path, NUL and value)",
                len: payload.len(),
                max: PAYLOAD_MAX,
            });
        }
        self.request(MsgType::Write, tx, payload).await.map(drop)
    }

    async fn do_path_op(&self, kind: MsgType, tx: u32, path: &str) -> Result<(), XsError> {
        check_path(path, false)?;
        self.request(kind, tx, wire::strings_payload(&[path.as_bytes()])).await.map(drop)
    }

    async fn do_directory(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        check_path(path, false)?;
        match self.request(MsgType::Directory, tx, wire::strings_payload(&[path.as_bytes()])).await {
            Ok(reply) => child_names(&reply, "DIRECTORY", path),
            Err(XsError::TooBig) => self.directory_part(tx, path).await,
            Err(error) => Err(error),
        }
    }

    /// Fetches a children list too long for one reply, slice by slice; restarts when the node's
    /// generation changes between slices.
    async fn directory_part(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        'restart: for _ in 0..8 {
            let mut names = Vec::new();
            let mut generation: Option<Vec<u8>> = None;
            let mut offset = 0usize;
            loop {
                let offset_text = offset.to_string();
                let payload = wire::strings_payload(&[path.as_bytes(), offset_text.as_bytes()]);
                let reply = self.request(MsgType::DirectoryPart, tx, payload).await?;
                let split = reply
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| XsError::Protocol("DIRECTORY_PART reply without a generation".into()))?;
                let (gen, rest) = (&reply[..split], &reply[split + 1..]);
                match &generation {
                    Some(known) if known.as_slice() != gen => continue 'restart,
                    Some(_) => {}
                    None => generation = Some(gen.to_vec()),
                }
                let end = rest == b"\0" || rest.ends_with(b"\0\0") || rest.is_empty();
                let chunk = if end && !rest.is_empty() { &rest[..rest.len() - 1] } else { rest };
                names.extend(child_names(chunk, "DIRECTORY_PART", path)?);
                if end {
                    return Ok(names);
                }
                if chunk.is_empty() {
                    return Err(XsError::Protocol("DIRECTORY_PART made no progress".into()));
                }
                offset += chunk.len();
            }
        }
        Err(XsError::Again)
    }

    async fn do_get_perms(&self, tx: u32, path: &str) -> Result<Vec<Permission>, XsError> {
        check_path(path, false)?;
        let reply = self.request(MsgType::GetPerms, tx, wire::strings_payload(&[path.as_bytes()])).await?;
        let items = wire::split_strings(&reply)
            .into_iter()
            .map(|item| {
                std::str::from_utf8(item).map_err(|_| XsError::Protocol(format!("permission {item:?} is not UTF-8")))
            })
            .collect::<Result<Vec<&str>, _>>()?;
        Permission::parse_list(items).map_err(|error| XsError::Protocol(format!("GET_PERMS reply: {error}")))
    }

    async fn do_set_perms(&self, tx: u32, path: &str, perms: &[Permission]) -> Result<(), XsError> {
        check_path(path, false)?;
        if perms.is_empty() {
            return Err(XsError::InvalidArgument("SET_PERMS needs at least the owner entry".into()));
        }
        if let Some(bad) = perms.iter().find(|p| p.domid > super::perms::DOMID_MAX) {
            return Err(XsError::InvalidArgument(format!("permission {bad}: domid above 65535")));
        }
        let texts: Vec<String> = perms.iter().map(Permission::to_string).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(texts.iter().map(|t| t.as_bytes()));
        self.request(MsgType::SetPerms, tx, wire::strings_payload(&parts)).await.map(drop)
    }

    fn next_req_id(&self) -> u32 {
        self.inner.next_req.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request whose reply nobody waits for (cleanup from `Drop`).
    fn send_unanswered(&self, kind: MsgType, tx: u32, payload: Vec<u8>) {
        let message = Message::new(kind, self.next_req_id(), tx, payload);
        let _ = self.inner.frames.send(message.encode());
    }

    /// Sends one request and waits for its reply; an `ERROR` reply becomes the matching variant.
    async fn request(&self, kind: MsgType, tx: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        if payload.len() > PAYLOAD_MAX {
            return Err(XsError::TooLong { what: "request payload", len: payload.len(), max: PAYLOAD_MAX });
        }
        let core = &self.inner.core;
        let (sender, receiver) = oneshot::channel();
        let req_id = {
            let mut state = lock(core);
            if let Some(reason) = &state.closed {
                return Err(XsError::ConnectionClosed(reason.clone()));
            }
            let mut req_id = self.next_req_id();
            while state.pending.contains_key(&req_id) {
                req_id = self.next_req_id();
            }
            state.pending.insert(req_id, sender);
            req_id
        };
        let _guard = PendingGuard { core, req_id };
        let frame = Message::new(kind, req_id, tx, payload).encode();
        if self.inner.frames.send(frame).is_err() {
            let reason = lock(core).closed.clone().unwrap_or_else(|| "the writer stopped".into());
            return Err(XsError::ConnectionClosed(reason));
        }
        let reply = match receiver.await {
            Ok(reply) => reply?,
            Err(_) => return Err(XsError::ConnectionClosed(lock(core).closed.clone().unwrap_or_default())),
        };
        match reply.kind() {
            Some(MsgType::Error) => {
                let name = reply.payload.strip_suffix(&[0]).unwrap_or(&reply.payload);
                Err(XsError::from_wire_name(&String::from_utf8_lossy(name)))
            }
            Some(got) if got == kind => Ok(reply.payload),
            _ => Err(XsError::Protocol(format!(
                "request {req_id} ({kind}) was answered with message type {}",
                reply.kind().map(|k| k.name().to_string()).unwrap_or_else(|| reply.msg_type.to_string())
            ))),
        }
    }
}

/// Routes one incoming message: a watch event to its watch, a reply to its caller.
fn dispatch(core: &Core, message: Message) {
    if message.kind() == Some(MsgType::WatchEvent) {
        let parts = wire::split_strings(&message.payload);
        let (Some(path), Some(token)) = (parts.first(), parts.get(1)) else {
            tracing::warn!(payload = ?message.payload, "malformed WATCH_EVENT ignored");
            return;
        };
        let event = WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        };
        let state = lock(core);
        match state.watches.get(&event.token) {
            Some(sender) => {
                let _ = sender.send(event);
            }
            None => tracing::debug!(?event, "event for a watch no longer registered"),
        }
        return;
    }
    let waiter = lock(core).pending.remove(&message.req_id);
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(Ok(message));
        }
        None => tracing::debug!(req_id = message.req_id, "reply nobody waits for (cancelled or fire-and-forget)"),
    }
}
