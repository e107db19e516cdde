//! The Xenstore client against the embedded server (and against scripted peers for the cases a
//! well-behaved server never produces: out-of-order replies, a dropped connection).

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    time::timeout,
};
use vproto_xenstore::{
    server::{self, DomainSocket, Quotas, RunningXenstored, XenstoredConfig},
    wire::{self, Message, MsgType, PathError, ABS_PATH_MAX, PAYLOAD_MAX, REL_PATH_MAX},
    Access, Permission, WatchEvent, Xenstore, XenstoreAddr, XsError,
};

const GUEST: u32 = 5;

struct Fixture {
    _dir: tempfile::TempDir,
    server: RunningXenstored,
    dom0: XenstoreAddr,
    guest: XenstoreAddr,
}

async fn start(quotas: Quotas) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("xs.sock");
    let guest = dir.path().join("dom5.sock");
    let config = XenstoredConfig {
        socket: socket.clone(),
        domains: vec![DomainSocket { domid: GUEST, path: guest.clone() }],
        quotas,
    };
    let server = server::serve(config).await.unwrap();
    Fixture { _dir: dir, server, dom0: XenstoreAddr::Unix(socket), guest: XenstoreAddr::Unix(guest) }
}

async fn next_event(watch: &mut vproto_xenstore::Watch) -> WatchEvent {
    timeout(Duration::from_secs(5), watch.next()).await.expect("no watch event within 5 s").expect("watch ended")
}

/// No event arrives within a short wait (used after the events that must arrive were seen).
async fn assert_quiet(watch: &mut vproto_xenstore::Watch) {
    if let Ok(event) = timeout(Duration::from_millis(200), watch.next()).await {
        panic!("unexpected event {event:?}");
    }
}

#[tokio::test]
async fn every_operation_against_the_server() {
    let fx = start(Quotas::default()).await;
    let xs = Xenstore::connect(&fx.dom0).await.unwrap();

    xs.write("/vm/1/name", b"guest one").await.unwrap();
    assert_eq!(xs.read("/vm/1/name").await.unwrap(), b"guest one");
    assert_eq!(xs.read("/vm/1").await.unwrap(), b"", "WRITE creates parents with empty values");
    xs.write("/vm/1/bin", &[0, 1, 2, 255]).await.unwrap();
    assert_eq!(xs.read("/vm/1/bin").await.unwrap(), vec![0, 1, 2, 255], "values are binary");
    xs.mkdir("/vm/1/devices/vif").await.unwrap();
    xs.mkdir("/vm/1").await.unwrap();
    assert_eq!(xs.read("/vm/1/name").await.unwrap(), b"guest one", "MKDIR leaves existing nodes alone");
    assert_eq!(xs.directory("/vm/1").await.unwrap(), vec!["bin", "devices", "name"]);
    assert_eq!(xs.directory("/vm/1/devices/vif").await.unwrap(), Vec::<String>::new());

    xs.rm("/vm/1/devices").await.unwrap();
    assert!(matches!(xs.read("/vm/1/devices/vif").await, Err(XsError::NoEntry)));
    xs.rm("/vm/1/devices").await.unwrap();
    assert!(matches!(xs.rm("/vm/9/x").await, Err(XsError::NoEntry)), "RM needs the parent to exist");
    assert!(matches!(xs.rm("/").await, Err(XsError::Inval)));
    assert!(matches!(xs.directory("/nothing").await, Err(XsError::NoEntry)));

    let perms = vec![Permission::new(GUEST, Access::Read), Permission::new(7, Access::Both)];
    xs.set_perms("/vm/1/name", &perms).await.unwrap();
    assert_eq!(xs.get_perms("/vm/1/name").await.unwrap(), perms);
    assert_eq!(xs.get_perms("/").await.unwrap(), vec![Permission::new(0, Access::None)]);

    assert_eq!(xs.get_domain_path(GUEST).await.unwrap(), "/local/domain/5");
    assert_eq!(xs.get_domain_path(0).await.unwrap(), "/local/domain/0");
    assert!(xs.is_domain_introduced(GUEST).await.unwrap());
    assert!(!xs.is_domain_introduced(9).await.unwrap());

    // A long children list needs DIRECTORY_PART: the client falls back on E2BIG.
    let names: Vec<String> = (0..400).map(|i| format!("a-rather-long-child-name-{i:04}")).collect();
    let tx = xs.transaction().await.unwrap();
    for name in &names {
        tx.write(&format!("/big/{name}"), b"").await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(xs.directory("/big").await.unwrap(), names);
    fx.server.shutdown().await;
}

#[tokio::test]
async fn client_checks_limits_before_sending() {
    let fx = start(Quotas::default()).await;
    let xs = Xenstore::connect(&fx.dom0).await.unwrap();
    let nodes_before = fx.server.stats().0;

    let big = vec![b'x'; PAYLOAD_MAX];
    match xs.write("/big", &big).await {
        Err(XsError::TooLong { len, max, .. }) => assert_eq!((len, max), (PAYLOAD_MAX + 5, PAYLOAD_MAX)),
        other => panic!("expected TooLong, got {other:?}"),
    }
    xs.write("/fits", &big[..PAYLOAD_MAX - "/fits".len() - 1]).await.unwrap();

    let long = format!("/{}", "a".repeat(ABS_PATH_MAX));
    assert!(matches!(
        xs.read(&long).await,
        Err(XsError::InvalidPath { reason: PathError::TooLong { max: ABS_PATH_MAX, .. }, .. })
    ));
    let relative = "a".repeat(REL_PATH_MAX + 1);
    assert!(matches!(
        xs.write(&relative, b"").await,
        Err(XsError::InvalidPath { reason: PathError::TooLong { max: REL_PATH_MAX, .. }, .. })
    ));
    for bad in ["", "/a//b", "/a/", "/a b", "/é", "@releaseDomain"] {
        assert!(matches!(xs.read(bad).await, Err(XsError::InvalidPath { .. })), "{bad:?}");
    }
    assert!(matches!(xs.watch("/w", "to\0ken").await, Err(XsError::InvalidArgument(_))));
    assert!(matches!(xs.set_perms("/fits", &[]).await, Err(XsError::InvalidArgument(_))));
    assert!(matches!(
        xs.set_perms("/fits", &[Permission::new(70_000, Access::Read)]).await,
        Err(XsError::InvalidArgument(_))
    ));
    // Only /fits was created: nothing else reached the server.
    assert_eq!(fx.server.stats().0, nodes_before + 1);
    // The connection is still fine.
    assert_eq!(xs.read("/fits").await.unwrap().len(), PAYLOAD_MAX - 6);
    fx.server.shutdown().await;
}

#[tokio::test]
async fn guest_permissions_relative_paths_and_quotas() {
    let quotas = Quotas {
        nodes_per_domain: 6,
        entry_size: 16,
        watches_per_connection: 2,
        transactions_per_connection: 1,
        ..Quotas::default()
    };
    let fx = start(quotas).await;
    let dom0 = Xenstore::connect(&fx.dom0).await.unwrap();
    let guest = Xenstore::connect(&fx.guest).await.unwrap();

    // Relative paths resolve under the guest's home, which it owns.
    guest.write("data/os", b"linux").await.unwrap();
    assert_eq!(dom0.read("/local/domain/5/data/os").await.unwrap(), b"linux");
    assert_eq!(guest.read("/local/domain/5/data/os").await.unwrap(), b"linux");
    assert_eq!(dom0.get_perms("/local/domain/5/data/os").await.unwrap()[0].domid, GUEST);

    // Outside its home the guest has no rights.
    assert!(matches!(guest.write("/evil", b"x").await, Err(XsError::Access)));
    assert!(matches!(guest.directory("/").await, Err(XsError::Access)));
    dom0.write("/secret", b"s").await.unwrap();
    assert!(matches!(guest.read("/secret").await, Err(XsError::Access)));
    // Granted read, not write.
    dom0.set_perms("/secret", &[Permission::new(0, Access::None), Permission::new(GUEST, Access::Read)]).await.unwrap();
    assert_eq!(guest.read("/secret").await.unwrap(), b"s");
    assert!(matches!(guest.write("/secret", b"t").await, Err(XsError::Access)));
    // A guest cannot give a node away.
    assert!(matches!(guest.set_perms("data/os", &[Permission::new(7, Access::Both)]).await, Err(XsError::Perm)));
    guest.set_perms("data/os", &[Permission::new(GUEST, Access::Read)]).await.unwrap();
    // Introduce/release are for the toolstack.
    assert!(matches!(guest.introduce(9, 1, 1).await, Err(XsError::Access)));

    // Quotas: value size, nodes owned (home, data, data/os = 3 of 6), watches, transactions.
    assert!(matches!(guest.write("data/v", &[b'x'; 17]).await, Err(XsError::NoSpace)));
    guest.write("data/a/b/c", b"").await.unwrap();
    assert!(matches!(guest.write("data/d", b"").await, Err(XsError::NoSpace)));
    dom0.write("/local/domain/5/data/by-dom0", &[b'x'; 100]).await.unwrap();
    let _w1 = guest.watch("data", "w1").await.unwrap();
    let _w2 = guest.watch("data", "w2").await.unwrap();
    assert!(matches!(guest.watch("data", "w3").await, Err(XsError::TooBig)));
    let tx = guest.transaction().await.unwrap();
    assert!(matches!(guest.transaction().await, Err(XsError::NoSpace)));
    tx.abort().await.unwrap();
    let tx = guest.transaction().await.unwrap();
    tx.abort().await.unwrap();

    // An idle client learns that the server went away.
    let idle = tokio::spawn(async move { dom0.closed().await });
    fx.server.shutdown().await;
    timeout(Duration::from_secs(5), idle).await.expect("closed() did not resolve").unwrap();
    assert!(matches!(guest.read("data/os").await, Err(XsError::ConnectionClosed(_))));
}

#[tokio::test]
async fn watches_fire_initially_and_on_changes() {
    let fx = start(Quotas::default()).await;
    let xs = Xenstore::connect(&fx.dom0).await.unwrap();
    let other = Xenstore::connect(&fx.dom0).await.unwrap();

    let mut watch = xs.watch("/w", "tok").await.unwrap();
    assert_eq!(next_event(&mut watch).await, WatchEvent { path: "/w".into(), token: "tok".into() });
    other.write("/w/a/b", b"1").await.unwrap();
    assert_eq!(next_event(&mut watch).await.path, "/w/a/b");
    other.write("/wx", b"sibling").await.unwrap();
    other.set_perms("/w/a", &[Permission::new(0, Access::Read)]).await.unwrap();
    assert_eq!(next_event(&mut watch).await.path, "/w/a", "the sibling /wx does not match");
    other.mkdir("/w/a").await.unwrap(); // exists: no event
    other.rm("/w").await.unwrap();
    assert_eq!(next_event(&mut watch).await.path, "/w");
    assert_quiet(&mut watch).await;

    // A watch below a removed subtree fires with its own path.
    other.write("/tree/deep/node", b"").await.unwrap();
    let mut deep = xs.watch("/tree/deep/node", "deep").await.unwrap();
    next_event(&mut deep).await;
    other.rm("/tree").await.unwrap();
    assert_eq!(next_event(&mut deep).await, WatchEvent { path: "/tree/deep/node".into(), token: "deep".into() });

    // Duplicates are refused: locally by token, by the server for the same path and token.
    assert!(matches!(xs.watch("/other", "tok").await, Err(XsError::TokenInUse(_))));
    let raw = other.watch("/dup", "same").await.unwrap();
    drop(raw);
    let mut again = other.watch("/dup", "same").await.unwrap();
    assert_eq!(next_event(&mut again).await.path, "/dup", "dropping a watch unregistered it");

    // Explicit unwatch: no more events.
    watch.unwatch().await.unwrap();
    let mut check = xs.watch("/w", "check").await.unwrap();
    next_event(&mut check).await;
    other.write("/w", b"x").await.unwrap();
    assert_eq!(next_event(&mut check).await.path, "/w");

    // Special watches.
    let mut intro = xs.watch("@introduceDomain", "intro").await.unwrap();
    let mut release = xs.watch("@releaseDomain", "rel").await.unwrap();
    assert_eq!(next_event(&mut intro).await.path, "@introduceDomain");
    assert_eq!(next_event(&mut release).await.path, "@releaseDomain");
    other.write("/unrelated", b"").await.unwrap();
    other.introduce(9, 1234, 3).await.unwrap();
    assert_eq!(next_event(&mut intro).await.path, "@introduceDomain");
    assert!(other.is_domain_introduced(9).await.unwrap());
    other.release(9).await.unwrap();
    assert_eq!(next_event(&mut release).await.path, "@releaseDomain");
    assert_quiet(&mut intro).await;
    assert!(matches!(other.release(9).await, Err(XsError::NoEntry)));

    // RESET_WATCHES ends every watch of the connection.
    xs.reset_watches().await.unwrap();
    assert!(timeout(Duration::from_secs(5), check.next()).await.unwrap().is_none());
    fx.server.shutdown().await;
}

#[tokio::test]
async fn guest_watches_are_relative_and_filtered_by_permissions() {
    let fx = start(Quotas::default()).await;
    let dom0 = Xenstore::connect(&fx.dom0).await.unwrap();
    let guest = Xenstore::connect(&fx.guest).await.unwrap();
    let mut relative = guest.watch("control", "ctl").await.unwrap();
    assert_eq!(next_event(&mut relative).await.path, "control");
    dom0.write("/local/domain/5/control/shutdown", b"poweroff").await.unwrap();
    assert_eq!(next_event(&mut relative).await.path, "control/shutdown");

    let mut everything = guest.watch("/", "all").await.unwrap();
    next_event(&mut everything).await;
    dom0.write("/hidden", b"x").await.unwrap(); // owned by dom0, no access for others
    dom0.write("/local/domain/5/visible", b"x").await.unwrap();
    assert_eq!(next_event(&mut everything).await.path, "/local/domain/5/visible", "/hidden is not readable");
    fx.server.shutdown().await;
}

#[tokio::test]
async fn transactions_isolate_and_conflict() {
    let fx = start(Quotas::default()).await;
    let xs = Xenstore::connect(&fx.dom0).await.unwrap();
    let other = Xenstore::connect(&fx.dom0).await.unwrap();
    xs.write("/t/a", b"0").await.unwrap();
    let mut watch = other.watch("/t", "t").await.unwrap();
    next_event(&mut watch).await;

    let tx = xs.transaction().await.unwrap();
    tx.write("/t/b", b"in tx").await.unwrap();
    assert_eq!(tx.read("/t/b").await.unwrap(), b"in tx", "a transaction reads its own writes");
    assert_eq!(tx.directory("/t").await.unwrap(), vec!["a", "b"]);
    assert!(matches!(other.read("/t/b").await, Err(XsError::NoEntry)), "invisible before commit");
    assert_quiet(&mut watch).await;
    tx.commit().await.unwrap();
    assert_eq!(other.read("/t/b").await.unwrap(), b"in tx");
    assert_eq!(next_event(&mut watch).await.path, "/t/b", "events fire at commit");

    // Conflict: the transaction read /t/a, which changed before the commit.
    let tx = xs.transaction().await.unwrap();
    let _ = tx.read("/t/a").await.unwrap();
    tx.write("/t/c", b"x").await.unwrap();
    other.write("/t/a", b"changed").await.unwrap();
    assert!(matches!(tx.commit().await, Err(XsError::Again)));
    assert!(matches!(xs.read("/t/c").await, Err(XsError::NoEntry)), "a failed commit applies nothing");

    // No conflict when unrelated nodes change.
    let tx = xs.transaction().await.unwrap();
    let _ = tx.read("/t/a").await.unwrap();
    other.write("/elsewhere", b"x").await.unwrap();
    tx.commit().await.unwrap();

    // Abort (explicit and by drop) discards.
    let tx = xs.transaction().await.unwrap();
    tx.rm("/t").await.unwrap();
    tx.abort().await.unwrap();
    let tx = xs.transaction().await.unwrap();
    tx.rm("/t").await.unwrap();
    drop(tx);
    assert_eq!(xs.read("/t/a").await.unwrap(), b"changed");

    // Transactions are independent.
    let tx = xs.transaction().await.unwrap();
    let tx2 = xs.transaction().await.unwrap();
    assert_ne!(tx.id(), tx2.id());
    tx.abort().await.unwrap();
    tx2.commit().await.unwrap();
    fx.server.shutdown().await;
}

#[tokio::test]
async fn transact_retries_conflicts_until_every_increment_lands() {
    let fx = start(Quotas::default()).await;
    let xs = Xenstore::connect(&fx.dom0).await.unwrap();
    xs.write("/counter", b"0").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let xs = Xenstore::connect(&fx.dom0).await.unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                xs.transact(64, |tx| {
                    Box::pin(async move {
                        let n: u64 = String::from_utf8_lossy(&tx.read("/counter").await?).parse().unwrap();
                        // Widen the window between read and commit so conflicts happen.
                        tokio::task::yield_now().await;
                        tx.write("/counter", (n + 1).to_string().as_bytes()).await?;
                        Ok(())
                    })
                })
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(xs.read("/counter").await.unwrap(), b"40");

    // Deterministic conflict: the first attempt is interfered with, the second commits.
    let other = Xenstore::connect(&fx.dom0).await.unwrap();
    xs.write("/c2", b"base").await.unwrap();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = attempts.clone();
    let attempt = xs
        .transact(5, move |tx| {
            let other = other.clone();
            let attempt = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Box::pin(async move {
                let value = tx.read("/c2").await?;
                if attempt == 1 {
                    other.write("/c2", b"interfering").await?;
                }
                tx.write("/c2", &[value.as_slice(), b"+1"].concat()).await?;
                Ok(attempt)
            })
        })
        .await
        .unwrap();
    assert_eq!(attempt, 2);
    assert_eq!(xs.read("/c2").await.unwrap(), b"interfering+1");

    // The helper gives up with Again after max_attempts, and passes other errors through.
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = attempts.clone();
    let result: Result<(), _> = xs
        .transact(3, move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(XsError::Again) })
        })
        .await;
    assert!(matches!(result, Err(XsError::Again)));
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
    let result: Result<Vec<u8>, _> = xs.transact(3, |tx| Box::pin(tx.read("/missing"))).await;
    assert!(matches!(result, Err(XsError::NoEntry)));
    fx.server.shutdown().await;
}

/// Reads one request from a scripted peer.
async fn read_request(stream: &mut UnixStream) -> Message {
    wire::read_message(stream).await.map_err(|e| format!("{e:?}")).unwrap()
}

#[tokio::test]
async fn replies_out_of_order_and_interleaved_events() {
    let (client_end, mut server_end) = UnixStream::pair().unwrap();
    let xs = Xenstore::from_stream(client_end, XenstoreAddr::Unix("/scripted".into()));
    let peer = tokio::spawn(async move {
        let mut requests = Vec::new();
        for _ in 0..3 {
            requests.push(read_request(&mut server_end).await);
        }
        let watch = requests.iter().position(|r| r.kind() == Some(MsgType::Watch)).unwrap();
        // Answer in reverse order, with watch events in between.
        for request in requests.iter().rev() {
            let payload = match request.kind() {
                Some(MsgType::Read) => request.payload.strip_suffix(b"\0").unwrap().to_vec(),
                _ => b"OK\0".to_vec(),
            };
            let reply = Message { payload, ..request.clone() };
            server_end.write_all(&reply.encode()).await.unwrap();
            let event = Message::new(MsgType::WatchEvent, 0, 0, wire::strings_payload(&[b"/x/y", b"tok"]));
            server_end.write_all(&event.encode()).await.unwrap();
        }
        let _ = watch;
        server_end
    });
    let (a, b, w) = tokio::join!(xs.read("/first"), xs.read("/second"), xs.watch("/x", "tok"));
    assert_eq!(a.unwrap(), b"/first");
    assert_eq!(b.unwrap(), b"/second");
    let mut watch = w.unwrap();
    assert_eq!(next_event(&mut watch).await.path, "/x/y");
    let _server_end = peer.await.unwrap();
}

#[tokio::test]
async fn a_dropped_connection_fails_every_pending_and_later_call() {
    let (client_end, mut server_end) = UnixStream::pair().unwrap();
    let xs = Xenstore::from_stream(client_end, XenstoreAddr::Unix("/scripted".into()));
    let peer = tokio::spawn(async move {
        // Accept a watch, then read two requests and hang up without answering.
        let watch = read_request(&mut server_end).await;
        server_end.write_all(&Message { payload: b"OK\0".to_vec(), ..watch }.encode()).await.unwrap();
        read_request(&mut server_end).await;
        read_request(&mut server_end).await;
    });
    let mut watch = xs.watch("/w", "t").await.unwrap();
    let (a, b) = tokio::join!(xs.read("/a"), xs.write("/b", b"v"));
    peer.await.unwrap();
    assert!(matches!(a, Err(XsError::ConnectionClosed(_))), "{a:?}");
    assert!(matches!(b, Err(XsError::ConnectionClosed(_))), "{b:?}");
    assert!(timeout(Duration::from_secs(5), watch.next()).await.unwrap().is_none(), "the watch ends");
    assert!(matches!(xs.read("/later").await, Err(XsError::ConnectionClosed(_))));
    assert!(xs.is_closed());
    let reason = timeout(Duration::from_secs(5), xs.closed()).await.unwrap();
    assert!(reason.contains("closed the connection"), "{reason}");
    assert!(XsError::ConnectionClosed(String::new()).is_disconnect());
}

#[tokio::test]
async fn protocol_violations_by_the_server_close_the_connection() {
    let (client_end, mut server_end) = UnixStream::pair().unwrap();
    let xs = Xenstore::from_stream(client_end, XenstoreAddr::Unix("/scripted".into()));
    let peer = tokio::spawn(async move {
        let request = read_request(&mut server_end).await;
        // A reply of the wrong type, then a header announcing too much.
        let wrong = Message { msg_type: MsgType::Directory.as_u32(), payload: vec![], ..request };
        server_end.write_all(&wrong.encode()).await.unwrap();
        let request = read_request(&mut server_end).await;
        let mut header = wire::Header { msg_type: 2, req_id: request.req_id, tx_id: 0, len: 5000 }.encode().to_vec();
        header.extend_from_slice(&[0; 16]);
        server_end.write_all(&header).await.unwrap();
        let mut rest = Vec::new();
        let _ = server_end.read_to_end(&mut rest).await;
    });
    assert!(matches!(xs.read("/a").await, Err(XsError::Protocol(_))));
    assert!(matches!(xs.read("/b").await, Err(XsError::ConnectionClosed(reason)) if reason.contains("5000")));
    drop(xs);
    timeout(Duration::from_secs(5), peer).await.unwrap().unwrap();
}

/// A DIRECTORY (or DIRECTORY_PART) reply whose names are not each one path element is refused,
/// saying which reply, for which node, and what is wrong with it; well-formed replies still work.
#[tokio::test]
async fn directory_replies_with_bad_child_names_are_refused() {
    let (client_end, mut server_end) = UnixStream::pair().unwrap();
    let xs = Xenstore::from_stream(client_end, XenstoreAddr::Unix("/scripted".into()));
    let replies: [&[u8]; 7] = [b"a/b\0", b"ok\0\0", b"\0", b"ok\0tail", b"a b\0", b"\xff\0", b"a\0@b\0c-d_e\0"];
    let peer = tokio::spawn(async move {
        for payload in replies {
            let request = read_request(&mut server_end).await;
            server_end.write_all(&Message { payload: payload.to_vec(), ..request }.encode()).await.unwrap();
        }
        // A long list: E2BIG, then a DIRECTORY_PART slice holding a name with a slash.
        let request = read_request(&mut server_end).await;
        let too_big = Message { msg_type: MsgType::Error.as_u32(), payload: b"E2BIG\0".to_vec(), ..request };
        server_end.write_all(&too_big.encode()).await.unwrap();
        let request = read_request(&mut server_end).await;
        assert_eq!(request.kind(), Some(MsgType::DirectoryPart));
        server_end.write_all(&Message { payload: b"7\0fine\0x/y\0\0".to_vec(), ..request }.encode()).await.unwrap();
        server_end
    });
    let refusal = |result: Result<Vec<String>, XsError>| match result {
        Err(XsError::Protocol(message)) => message,
        other => panic!("expected a protocol error, got {other:?}"),
    };
    let slash = refusal(xs.directory("/x").await);
    assert_eq!(slash, "DIRECTORY reply for /x: child name \"a/b\" holds a '/', so it is not one path element");
    assert_eq!(refusal(xs.directory("/x").await), "DIRECTORY reply for /x: an empty child name");
    assert_eq!(refusal(xs.directory("/").await), "DIRECTORY reply for /: an empty child name");
    let unterminated = refusal(xs.directory("/x").await);
    assert!(unterminated.starts_with("DIRECTORY reply for /x: not a list of names: "), "{unterminated}");
    assert!(refusal(xs.directory("/x").await)
        .starts_with("DIRECTORY reply for /x: child name \"a b\" makes the path \"/x/a b\": byte 0x20"));
    assert!(refusal(xs.directory("/x").await).contains("is not UTF-8"));
    assert_eq!(xs.directory("/x").await.unwrap(), ["a", "@b", "c-d_e"]);
    let part = refusal(xs.directory("/long").await);
    assert_eq!(part, "DIRECTORY_PART reply for /long: child name \"x/y\" holds a '/', so it is not one path element");
    drop(timeout(Duration::from_secs(5), peer).await.unwrap().unwrap());
}

#[tokio::test]
async fn connect_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = XenstoreAddr::Unix(dir.path().join("none.sock"));
    assert!(matches!(Xenstore::connect(&missing).await, Err(XsError::Io { .. })));
    let missing = XenstoreAddr::Xenbus(dir.path().join("xenbus"));
    assert!(matches!(Xenstore::connect(&missing).await, Err(XsError::Io { .. })));
}
