//! Hostile and broken clients against the embedded server, over raw sockets: every bad request
//! is answered with an error (or, when the stream cannot be trusted any more, that connection is
//! closed), and other connections never notice.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    time::timeout,
};
use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    wire::{self, Header, Message, MsgType},
    Xenstore, XenstoreAddr,
};

struct Fixture {
    dir: tempfile::TempDir,
    server: RunningXenstored,
}

async fn start(quotas: Quotas) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = XenstoredConfig {
        socket: dir.path().join("xs.sock"),
        domains: vec![DomainSocket { domid: 5, path: dir.path().join("dom5.sock") }],
        quotas,
    };
    let server = server::serve(config).await.unwrap();
    Fixture { dir, server }
}

impl Fixture {
    async fn raw(&self) -> UnixStream {
        UnixStream::connect(self.dir.path().join("xs.sock")).await.unwrap()
    }

    async fn client(&self) -> Xenstore {
        Xenstore::connect(&XenstoreAddr::Unix(self.dir.path().join("xs.sock"))).await.unwrap()
    }
}

async fn send(stream: &mut UnixStream, msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
    let message = Message { msg_type, req_id, tx_id, payload: payload.to_vec() };
    stream.write_all(&message.encode()).await.unwrap();
}

async fn recv(stream: &mut UnixStream) -> Message {
    timeout(Duration::from_secs(5), wire::read_message(stream))
        .await
        .expect("no reply within 5 s")
        .map_err(|e| format!("{e:?}"))
        .unwrap()
}

/// Sends one request and returns `Ok(payload)` or `Err(errno name)`.
async fn call(stream: &mut UnixStream, kind: u32, tx_id: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    send(stream, kind, 77, tx_id, payload).await;
    let reply = recv(stream).await;
    assert_eq!(reply.req_id, 77, "the request id is echoed");
    assert_eq!(reply.tx_id, tx_id, "the transaction id is echoed");
    if reply.kind() == Some(MsgType::Error) {
        return Err(String::from_utf8(reply.payload.strip_suffix(b"\0").unwrap().to_vec()).unwrap());
    }
    assert_eq!(reply.msg_type, kind);
    Ok(reply.payload)
}

fn t(kind: MsgType) -> u32 {
    kind.as_u32()
}

/// Asserts the peer closed the stream (after any replies already queued).
async fn assert_closed(stream: &mut UnixStream) {
    let mut sink = Vec::new();
    // Ok (EOF) or a reset (the server closed with our requests unread) both mean closed; an
    // open connection would run into the timeout.
    let _ = timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await.expect("connection still open");
}

#[tokio::test]
async fn malformed_requests_get_errors_and_the_connection_survives() {
    let fx = start(Quotas::default()).await;
    let mut s = fx.raw().await;
    let err = |e: &str| Err(e.to_string());

    assert_eq!(call(&mut s, 99, 0, b"/x\0").await, err("ENOSYS"), "unknown type");
    assert_eq!(call(&mut s, 0xffff, 0, b"").await, err("ENOSYS"), "XS_INVALID");
    assert_eq!(call(&mut s, t(MsgType::Control), 0, b"print\0hi\0").await, err("ENOSYS"), "CONTROL/DEBUG refused");
    assert_eq!(call(&mut s, t(MsgType::WatchEvent), 0, b"/a\0t\0").await, err("ENOSYS"), "server-only type");
    assert_eq!(call(&mut s, t(MsgType::Error), 0, b"EINVAL\0").await, err("ENOSYS"));

    for bad_path in [&b"/a//b\0"[..], b"/a/\0", b"/a.b\0", b"\0", b"/\xff\xfe\0", b"/a b\0", b"@introduceDomain\0"] {
        assert_eq!(call(&mut s, t(MsgType::Read), 0, bad_path).await, err("EINVAL"), "{bad_path:?}");
        assert_eq!(call(&mut s, t(MsgType::Write), 0, bad_path).await, err("EINVAL"), "{bad_path:?}");
    }
    let long = [b"/".as_slice(), &[b'a'; 3072], b"\0"].concat();
    assert_eq!(call(&mut s, t(MsgType::Mkdir), 0, &long).await, err("EINVAL"), "path too long");
    assert_eq!(call(&mut s, t(MsgType::Write), 0, b"/no-nul-separator").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::Watch), 0, b"/only-path\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::Unwatch), 0, b"/w\0never\0").await, err("ENOENT"));
    assert_eq!(call(&mut s, t(MsgType::GetDomainPath), 0, b"abc\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::GetDomainPath), 0, b"65536\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::Introduce), 0, b"0\x001\x002\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::Introduce), 0, b"3\0x\x002\0").await, err("EINVAL"));

    call(&mut s, t(MsgType::Write), 0, b"/p\0v").await.unwrap();
    for bad_perms in [&b"/p\0"[..], b"/p\0x1\0", b"/p\0r70000\0", b"/p\0r\xff\0", b"/p\0r-1\0"] {
        assert_eq!(call(&mut s, t(MsgType::SetPerms), 0, bad_perms).await, err("EINVAL"), "{bad_perms:?}");
    }
    assert_eq!(call(&mut s, t(MsgType::DirectoryPart), 0, b"/\0zzz\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::DirectoryPart), 0, b"/\0999999\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::DirectoryPart), 0, b"/\0").await, err("EINVAL"));

    // Transactions: unknown ids, nesting, bad end argument.
    assert_eq!(call(&mut s, t(MsgType::Read), 12345, b"/p\0").await, err("ENOENT"));
    assert_eq!(call(&mut s, t(MsgType::TransactionEnd), 12345, b"T\0").await, err("ENOENT"));
    let id = call(&mut s, t(MsgType::TransactionStart), 0, b"\0").await.unwrap();
    let id: u32 = std::str::from_utf8(id.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    assert_eq!(call(&mut s, t(MsgType::TransactionStart), id, b"\0").await, err("EBUSY"));
    assert_eq!(call(&mut s, t(MsgType::TransactionEnd), id, b"maybe\0").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::TransactionEnd), id, b"F\0").await, Ok(b"OK\0".to_vec()));

    // A path without its NUL is refused, as C xenstored refuses it; the connection still works.
    assert_eq!(call(&mut s, t(MsgType::Read), 0, b"/p").await, err("EINVAL"));
    assert_eq!(call(&mut s, t(MsgType::Read), 0, b"/p\0").await, Ok(b"v".to_vec()));
    fx.server.shutdown().await;
}

/// Every request's payload must have exactly the layout `xenstore.txt` gives its type (as C
/// xenstored checks it): a string missing its NUL, one string too many or bytes after the last
/// one are EINVAL, never read as some other request. A reserved value (`?`, no NUL) after
/// WATCH's, UNWATCH's, INTRODUCE's and SET_PERMS' arguments is ignored, as the text says.
#[tokio::test]
async fn every_request_must_have_its_payload_shape() {
    use MsgType::*;
    let fx = start(Quotas::default()).await;
    let mut s = fx.raw().await;
    call(&mut s, t(Write), 0, b"/p\0v").await.unwrap();
    // In order: each well-formed request succeeds where the state allows it (MKDIR before RM,
    // INTRODUCE before RESUME and RELEASE).
    let cases: &[(MsgType, &[u8], Option<&str>)] = &[
        (Read, b"/p", Some("EINVAL")),
        (Read, b"/p\0x\0", Some("EINVAL")),
        (Read, b"/p\0x", Some("EINVAL")),
        (Read, b"/p\0\0", Some("EINVAL")),
        (Read, b"/p\0", None),
        (Directory, b"/p", Some("EINVAL")),
        (Directory, b"/p\0\0", Some("EINVAL")),
        (Directory, b"/p\0", None),
        (GetPerms, b"/p", Some("EINVAL")),
        (GetPerms, b"/p\0r0\0", Some("EINVAL")),
        (GetPerms, b"/p\0", None),
        (Mkdir, b"/q", Some("EINVAL")),
        (Mkdir, b"/q\0/r\0", Some("EINVAL")),
        (Mkdir, b"/q\0", None),
        (Rm, b"/q", Some("EINVAL")),
        (Rm, b"/q\0\0", Some("EINVAL")),
        (Rm, b"/q\0", None),
        (Write, b"/w", Some("EINVAL")),
        (DirectoryPart, b"/p\x000", Some("EINVAL")),
        (DirectoryPart, b"/p\x000\0\0", Some("EINVAL")),
        (DirectoryPart, b"/p\0", Some("EINVAL")),
        (DirectoryPart, b"/p\x00+0\0", Some("EINVAL")),
        (DirectoryPart, b"/p\x000\0", None),
        (SetPerms, b"/p\0n0", Some("EINVAL")),
        (SetPerms, b"/p\0n0\0\0", Some("EINVAL")),
        (SetPerms, b"/p\0n0\0r5\0", None),
        (SetPerms, b"/p\0n0\0reserved", None),
        (Watch, b"/p", Some("EINVAL")),
        (Watch, b"/p\0tok", Some("EINVAL")),
        (Watch, b"/p\0tok\0x\0", Some("EINVAL")),
        (Unwatch, b"/p\0tok", Some("EINVAL")),
        (Unwatch, b"/p\0tok\0\0", Some("EINVAL")),
        (TransactionStart, b"", Some("EINVAL")),
        (TransactionStart, b"\0\0", Some("EINVAL")),
        (TransactionStart, b"x\0", Some("EINVAL")),
        (TransactionEnd, b"F", Some("EINVAL")),
        (TransactionEnd, b"F\0\0", Some("EINVAL")),
        (GetDomainPath, b"5", Some("EINVAL")),
        (GetDomainPath, b"5\x006\0", Some("EINVAL")),
        (GetDomainPath, b"5\0", None),
        (IsDomainIntroduced, b"5", Some("EINVAL")),
        (IsDomainIntroduced, b"5\0", None),
        (Introduce, b"7\x001\x002", Some("EINVAL")),
        (Introduce, b"7\x001\x002\0\0", Some("EINVAL")),
        (Introduce, b"7\x001\x002\0", None),
        (Resume, b"7", Some("EINVAL")),
        (Resume, b"7\0", None),
        (Release, b"7\0\0", Some("EINVAL")),
        (Release, b"7\0", None),
        (ResetWatches, b"", Some("EINVAL")),
        (ResetWatches, b"x\0", Some("EINVAL")),
        (ResetWatches, b"\0", None),
    ];
    for (kind, payload, expected) in cases {
        let got = call(&mut s, t(*kind), 0, payload).await.map(drop);
        assert_eq!(
            got,
            expected.map_or(Ok(()), |e| Err(e.to_string())),
            "{kind} {:?}",
            String::from_utf8_lossy(payload)
        );
    }
    // SET_PERMS' reserved value was not read as a permission.
    assert_eq!(call(&mut s, t(GetPerms), 0, b"/p\0").await, Ok(b"n0\0".to_vec()));
    // WRITE's value is everything after the path's NUL, NULs included.
    call(&mut s, t(Write), 0, b"/w\0a\0b\0").await.unwrap();
    assert_eq!(call(&mut s, t(Read), 0, b"/w\0").await, Ok(b"a\0b\0".to_vec()));
    // A watch with a reserved value is set (its first event follows the reply) and removed.
    send(&mut s, t(Watch), 9, 0, b"/p\0tok\0reserved").await;
    assert_eq!(recv(&mut s).await.payload, b"OK\0");
    assert_eq!(recv(&mut s).await.payload, b"/p\0tok\0");
    assert_eq!(call(&mut s, t(Unwatch), 0, b"/p\0tok\0").await, Ok(b"OK\0".to_vec()));
    fx.server.shutdown().await;
}

#[tokio::test]
async fn stream_level_garbage_closes_only_that_connection() {
    let fx = start(Quotas::default()).await;
    let bystander = fx.client().await;
    bystander.write("/alive", b"yes").await.unwrap();
    let mut watch = bystander.watch("/alive", "w").await.unwrap();
    watch.next().await.unwrap();

    // A header announcing more than 4096 bytes: Xen kills such a connection.
    let mut s = fx.raw().await;
    s.write_all(&Header { msg_type: 2, req_id: 1, tx_id: 0, len: 4097 }.encode()).await.unwrap();
    assert_closed(&mut s).await;

    // Random bytes.
    let mut s = fx.raw().await;
    s.write_all(&[0xffu8; 64]).await.unwrap();
    assert_closed(&mut s).await;

    // Half a header, half a payload, then hang up.
    let mut s = fx.raw().await;
    s.write_all(&[1, 0, 0]).await.unwrap();
    drop(s);
    let mut s = fx.raw().await;
    s.write_all(&Header { msg_type: 11, req_id: 1, tx_id: 0, len: 100 }.encode()).await.unwrap();
    s.write_all(b"/alive\0partial").await.unwrap();
    drop(s);

    // Abrupt disconnect in the middle of a transaction: nothing of it is applied.
    let mut s = fx.raw().await;
    let id = call(&mut s, t(MsgType::TransactionStart), 0, b"\0").await.unwrap();
    let id: u32 = std::str::from_utf8(id.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    call(&mut s, t(MsgType::Write), id, b"/alive\0overwritten").await.unwrap();
    call(&mut s, t(MsgType::Watch), 0, b"/alive\0gone\0").await.unwrap();
    drop(s);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bystander.read("/alive").await.unwrap(), b"yes");
    bystander.write("/alive", b"still").await.unwrap();
    assert_eq!(watch.next().await.unwrap().path, "/alive", "the bystander's watch still works");
    let (_, connections) = fx.server.stats();
    assert_eq!(connections, 1, "only the bystander is left");
    fx.server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let quotas = Quotas { outbound_bytes: 64 * 1024, ..Quotas::default() };
    let fx = start(quotas).await;
    let bystander = fx.client().await;
    bystander.write("/big", &[b'x'; 4000]).await.unwrap();

    let mut greedy = fx.raw().await;
    // Ask for ~8 MB of replies without reading any; the kernel buffers a little, the server's
    // queue limit does the rest.
    let request = Message::new(MsgType::Read, 1, 0, b"/big\0".to_vec()).encode();
    let flood = tokio::spawn(async move {
        for _ in 0..2000 {
            if greedy.write_all(&request).await.is_err() {
                break;
            }
        }
        greedy
    });
    for i in 0..50 {
        bystander.write("/counter", i.to_string().as_bytes()).await.unwrap();
    }
    let mut greedy = timeout(Duration::from_secs(20), flood).await.unwrap().unwrap();
    assert_closed(&mut greedy).await;
    assert_eq!(bystander.read("/counter").await.unwrap(), b"49");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fx.server.stats().1, 1);
    fx.server.shutdown().await;
}

#[tokio::test]
async fn many_clients_at_once() {
    let fx = start(Quotas::default()).await;
    let mut tasks = Vec::new();
    for c in 0..16 {
        let xs = fx.client().await;
        tasks.push(tokio::spawn(async move {
            // 50 calls in flight at once on one connection, multiplexed by request id.
            let mut calls = tokio::task::JoinSet::new();
            for i in 0..50 {
                let xs = xs.clone();
                calls.spawn(async move {
                    let path = format!("/c{c}/n{i}");
                    xs.write(&path, path.as_bytes()).await.unwrap();
                    assert_eq!(xs.read(&path).await.unwrap(), path.as_bytes());
                });
            }
            while let Some(done) = calls.join_next().await {
                done.unwrap();
            }
            xs.directory(&format!("/c{c}")).await.unwrap().len()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 50);
    }
    fx.server.shutdown().await;
}
