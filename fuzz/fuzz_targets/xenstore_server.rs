//! The Xenstore wire decoder as the embedded server reads requests: any bytes sent on a
//! connection to a running `vproto xenstored` (one server for the whole run), which must
//! answer or close, and then still answer a well-formed request on a new connection.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
    runtime::Runtime,
};
use vproto_xenstore::{
    server::{serve, RunningXenstored, XenstoredConfig},
    wire::{read_message, Message, MsgType},
};

struct Fixture {
    runtime: Runtime,
    _server: RunningXenstored,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("xs.sock");
        let server = runtime.block_on(serve(XenstoredConfig::new(&socket))).expect("xenstored starts");
        Fixture { runtime, _server: server, _dir: dir, socket }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    fixture.runtime.block_on(async {
        let mut stream = UnixStream::connect(&fixture.socket).await.expect("the server accepts");
        let _ = stream.write_all(data).await;
        let _ = stream.shutdown().await;
        let mut sink = Vec::new();
        // Answers (or a close) come at once; a request still incomplete is waited for, so stop.
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.read_to_end(&mut sink)).await;
        drop(stream);
        let mut healthy = UnixStream::connect(&fixture.socket).await.expect("the server still accepts");
        let read = Message::new(MsgType::Read, 7, 0, b"/\0".to_vec());
        healthy.write_all(&read.encode()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), read_message(&mut healthy))
            .await
            .expect("the server still answers")
            .expect("a well-formed reply");
        assert_eq!(reply.req_id, 7);
    });
});
