//! C ↔ C: two programs linked against Xen's real libxenvchan (`tests/vchan/peer.c`) talk through
//! the project's simulation libraries (`cargo xtask vchan-sim`), with vproto's xenstored as the
//! rendezvous: the proof that the simulation is a faithful stage for the Rust pairings, and the
//! harness they reuse (`support/`).
//!
//! The server runs in dom0, the client in dom5. Ring sizes: 1 KiB/2 KiB and 2 KiB/1 KiB inside
//! the shared page, 4 KiB, 64 KiB, 1 MiB and an asymmetric 64 KiB/4 KiB; each one way, the other,
//! and both at once, in stream and packet calls, with random call sizes and every byte checked.
//! Then closing from either side, exiting without closing, a peer closing while data is due,
//! the client before the server, the wrong domain, and one transfer past 4 GiB (the rings'
//! 32-bit indices wrap).

use std::time::Duration;

use vproto_test_support::vchan::{
    self as support, c_pair, stream_bytes, CPeer, ChunkSizes, PeerSpec, Rendezvous, Side, Stream, XorShift, CLIENT_DOM,
    OTHER_DOM, SERVER_DOM, ZERO_SEED_STATE,
};

/// Bytes moved each way for rings of these sizes: several times the larger ring, and an odd
/// amount, so the indices wrap around the rings many times and end mid-ring.
fn amount(left: u64, right: u64) -> u64 {
    (4 * left.max(right)).max(256 << 10) + 12_345
}

/// The transfers of one ring configuration: server → client, client → server, both at once;
/// then both at once in packets. Each run has its own path and seed.
async fn exchange_every_way(name: &str, left: u64, right: u64) {
    let Some(rv) = Rendezvous::start().await else { return };
    let n = amount(left, right);
    let runs = [(n, 0, false), (0, n, false), (n, n, false), (n, n, true)];
    for (seed, (to_client, to_server, packet)) in runs.into_iter().enumerate() {
        let path = rv.vchan_path(SERVER_DOM, name);
        let seed = seed as u64 * 1000 + left;
        let mut server = PeerSpec::server(CLIENT_DOM, &path).rings(left, right).send(to_client).expect(to_server);
        let mut client = PeerSpec::client(SERVER_DOM, &path).send(to_server).expect(to_client);
        server = server.seed(seed).wait_close();
        client = client.seed(seed);
        if packet {
            (server, client) = (server.packet(), client.packet());
        }
        let (server, client) = c_pair(&rv, &server, &client).await;
        client.assert_ok(to_server, to_client);
        server.assert_ok(to_client, to_server);
    }
    rv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_page_rings_1k_2k() {
    exchange_every_way("p1k", 1024, 2048).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_page_rings_2k_1k() {
    exchange_every_way("p2k", 2048, 1024).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rings_4k() {
    exchange_every_way("r4k", 4096, 4096).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rings_64k() {
    exchange_every_way("r64k", 64 << 10, 64 << 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rings_1m() {
    exchange_every_way("r1m", 1 << 20, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn asymmetric_rings_64k_4k() {
    exchange_every_way("a64k", 64 << 10, 4096).await;
}

/// One side sends, then closes or exits without closing (then only the unmap notify tells);
/// the other, waiting for the close, gets every byte, and sees it gone.
#[tokio::test(flavor = "multi_thread")]
async fn closing_or_exiting_after_sending_from_either_side() {
    let Some(rv) = Rendezvous::start().await else { return };
    let n = 200_000;
    for (sender, no_close) in [(Side::Server, false), (Side::Server, true), (Side::Client, false), (Side::Client, true)]
    {
        let path = rv.vchan_path(SERVER_DOM, "close");
        let (server, client) = support::one_way_then_close(&path, sender, no_close, n);
        let (server, client) = c_pair(&rv, &server, &client).await;
        let (to_client, to_server) = if sender == Side::Server { (n, 0) } else { (0, n) };
        server.assert_ok(to_client, to_server);
        client.assert_ok(to_server, to_client);
    }
    rv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_closing_while_data_is_due_is_an_error() {
    let Some(rv) = Rendezvous::start().await else { return };
    // The server closes after 5000 of 100 000 bytes (exiting without close, the other time):
    // more than its 2 KiB ring holds, so it cannot be gone before the client connected.
    for no_close in [false, true] {
        let path = rv.vchan_path(SERVER_DOM, "searly");
        let mut server = PeerSpec::server(CLIENT_DOM, &path).send(5000);
        if no_close {
            server = server.no_close();
        }
        let (server, client) = c_pair(&rv, &server, &PeerSpec::client(SERVER_DOM, &path).expect(100_000)).await;
        server.assert_ok(5000, 0);
        client.assert_failed(3, "the peer closed while data was still expected");
        assert_eq!(client.received, Some(5000), "{client}");
    }
    // The client closes after 1000 bytes; the server, sending 100 000, hears it.
    let path = rv.vchan_path(SERVER_DOM, "cearly");
    let server = PeerSpec::server(CLIENT_DOM, &path).send(100_000);
    let (server, client) = c_pair(&rv, &server, &PeerSpec::client(SERVER_DOM, &path).expect(1000)).await;
    client.assert_ok(0, 1000);
    server.assert_failed(3, "the peer closed while data was still to be sent");
    rv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_before_server_and_wrong_domain_are_refused() {
    let Some(rv) = Rendezvous::start().await else { return };
    // libxenvchan's client reads the server's entries once: no server yet, no channel.
    let path = rv.vchan_path(SERVER_DOM, "early");
    let client = CPeer::spawn(&rv, CLIENT_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(10));
    client.finish().await.assert_failed(3, "libxenvchan_client_init");
    // A channel offered to dom5 cannot be taken by dom7: the entries are readable by dom5 only.
    let server = CPeer::start(&rv, SERVER_DOM, &PeerSpec::server(CLIENT_DOM, &path).send(10).wait_close()).await;
    let intruder = CPeer::spawn(&rv, OTHER_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(10));
    intruder.finish().await.assert_failed(3, "libxenvchan_client_init");
    // The right client still gets it.
    CPeer::start(&rv, CLIENT_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(10))
        .await
        .finish()
        .await
        .assert_ok(0, 10);
    server.finish().await.assert_ok(10, 0);
    rv.shutdown().await;
}

/// 4 GiB + 1 MiB + a bit through 1 MiB rings: the 32-bit ring indices wrap at 4 GiB.
#[tokio::test(flavor = "multi_thread")]
async fn past_4_gib_the_indices_wrap() {
    let Some(rv) = Rendezvous::start().await else { return };
    let n = (4u64 << 30) + (1 << 20) + 4321;
    let path = rv.vchan_path(SERVER_DOM, "wrap");
    let server = PeerSpec::server(CLIENT_DOM, &path).rings(1 << 20, 1 << 20).send(n).seed(7).wait_close();
    let server = CPeer::start(&rv, SERVER_DOM, &server).await;
    let client = CPeer::start(&rv, CLIENT_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(n).seed(7)).await;
    let limit = Duration::from_secs(600);
    client.finish_within(limit).await.assert_ok(0, n);
    server.finish_within(limit).await.assert_ok(n, 0);
    rv.shutdown().await;
}

// The harness itself.

#[tokio::test(flavor = "multi_thread")]
async fn harness_a_wrong_byte_is_caught() {
    let Some(rv) = Rendezvous::start().await else { return };
    let path = rv.vchan_path(SERVER_DOM, "wrong");
    let server =
        CPeer::start(&rv, SERVER_DOM, &PeerSpec::server(CLIENT_DOM, &path).send(100).seed(1).wait_close()).await;
    // Seeded 0, the client expects the stream of 0, not the server's stream of 1.
    let client = CPeer::start(&rv, CLIENT_DOM, &PeerSpec::client(SERVER_DOM, &path).expect(100).wait_close()).await;
    let client = client.finish().await;
    let (want, got) = (stream_bytes(0, 1)[0], stream_bytes(1, 1)[0]);
    client.assert_failed(1, &format!("data mismatch at offset 0: expected {want:#04x}, got {got:#04x}"));
    assert_eq!(client.received, Some(0), "{client}");
    // The client exited there without closing; the server hears it gone.
    server.finish().await.assert_ok(100, 0);
    rv.shutdown().await;
}

#[tokio::test]
async fn harness_stream_is_the_c_peers() {
    let peer = match support::c_peer() {
        Ok(peer) => peer,
        Err(missing) => return vproto_test_support::missing_peer(missing),
    };
    for (seed, n) in [(0, 4099), (1, 8), (u64::MAX, 100_003)] {
        let output = tokio::process::Command::new(peer)
            .args(["stream", "--seed", &seed.to_string(), "--send", &n.to_string()])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert!(output.stdout == stream_bytes(seed, n), "the streams of seed {seed} differ");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn harness_rust_side_helpers() {
    let rv = Rendezvous::start_without_c_peer().await;
    for domid in [SERVER_DOM, CLIENT_DOM, OTHER_DOM] {
        assert_eq!(rv.xenstore(domid).await.read("domid").await.unwrap(), domid.to_string().as_bytes());
    }
    let server = rv.sim_backend(SERVER_DOM).open_events().unwrap();
    let client = rv.sim_backend(CLIENT_DOM).open_events().unwrap();
    let port = server.bind_unbound(CLIENT_DOM).unwrap();
    assert!(client.bind_interdomain(SERVER_DOM, port).unwrap() > 0);
    rv.shutdown().await;
}

#[test]
fn harness_stream_in_any_slicing_is_the_same() {
    let whole = stream_bytes(42, 1000);
    let mut stream = Stream::new(42);
    let mut pieces = Vec::new();
    for size in [1, 7, 8, 3, 100, 0, 881] {
        let mut piece = vec![0; size];
        stream.fill(&mut piece);
        pieces.extend(piece);
    }
    assert_eq!(pieces, whole);
    let mut check = Stream::new(42);
    assert_eq!(check.check(0, &whole[..500]), Ok(()));
    let mut bad = whole[500..].to_vec();
    bad[10] ^= 1;
    assert_eq!(check.check(500, &bad), Err((510, whole[510], whole[510] ^ 1)));
}

#[test]
fn harness_generators() {
    // Seed 1: 1 ^ 1 << 13 = 0x2001; ^ >> 7 = 0x2041; ^ << 17 = 0x40822041.
    assert_eq!(XorShift::new(1).next_u64(), 0x4082_2041);
    assert_eq!(stream_bytes(1, 8), 0x4082_2041u64.to_le_bytes());
    assert_eq!(XorShift::new(0).next_u64(), XorShift::new(ZERO_SEED_STATE).next_u64());
    assert!(ChunkSizes::new(3, 10).take(1000).all(|c| (1..=10).contains(&c)));
}

#[test]
fn harness_peer_arguments() {
    let spec = PeerSpec::server(5, "/p").rings(1024, 2048).send(10).seed(3).packet().wait_close();
    let expected = "server --domain 5 --path /p --left 1024 --right 2048 --send 10 --seed 3 --packet --wait-close";
    assert_eq!(spec.args().join(" "), expected);
    assert_eq!(PeerSpec::client(0, "/p").expect(1).args().join(" "), "client --domain 0 --path /p --expect 1");
}
