//! The resource bounds a server enforces. Every violation is answered with a JSON-RPC error
//! (or closes only the offending connection) while the server keeps serving everyone else.

use std::time::Duration;

/// Resource bounds of a server; start from [`Limits::default`] and change what you need:
///
/// ```
/// # use vproto_jsonrpc::Limits;
/// let limits = Limits { max_in_flight: 8, ..Limits::default() };
/// assert_eq!(limits.max_depth, 64);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message (a line, or an HTTP body) in bytes, newline excluded.
    /// Larger ones are answered with `-32000 "message too large"` (id null); line framing then
    /// skips to the next newline without buffering the rest. Default 1 MiB.
    pub max_message_size: usize,
    /// Deepest accepted nesting of arrays and objects in a message (the top-level value counts
    /// as 1). Checked by a byte scan before parsing; deeper messages are answered with
    /// `-32600` naming the limit. serde_json refuses more than 127 levels whatever this says.
    /// Default 64.
    pub max_depth: usize,
    /// Calls (requests and notifications, batch members counted one by one) a connection may
    /// have running at once; excess requests are answered at once with `-32000 "too many
    /// requests in flight"` and excess notifications dropped. Default 64.
    pub max_in_flight: usize,
    /// A connection with nothing in flight that completes no message for this long is closed
    /// (HTTP: no request), unless it is subscribed to events (it is waiting for them); a peer
    /// that does not read its answers or events for this long is disconnected too. Default
    /// 300 s.
    pub idle_timeout: Duration,
    /// A message must arrive whole within this time of its first byte (line framing: from
    /// the line's first byte to its newline; HTTP: from a request's first byte to the end of
    /// its body), or its connection is closed, with a warning in the log. A peer sending a
    /// byte at a time (slow loris) thus holds a connection slot for this long, not for the
    /// idle timeout. Socket listeners only (`stdio` has one trusted peer). Default 30 s.
    pub message_timeout: Duration,
    /// Connections a listener serves at once; further ones get one `-32000 "too many
    /// connections"` answer (HTTP: status 503) and are closed. A listener raises the
    /// process's soft open-file limit (`RLIMIT_NOFILE`) to fit this many, as far as the hard
    /// limit allows, and logs the limit it ends with when that is lower. Default 65,536.
    pub max_connections: usize,
    /// On shutdown, how long running calls may take to finish before they are abandoned.
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// Events a subscribed connection may have waiting to be written (docs/events.md). One
    /// more, and its subscription is lost: the waiting events are dropped and it receives a
    /// final `rpc.subscription_lost` notification. Calls and other connections are not
    /// affected. Default 1,024.
    pub max_queued_events: usize,
    /// Bytes of events a subscribed connection may have waiting (their notification lines),
    /// bounded as [`max_queued_events`](Limits::max_queued_events) is; one event is always
    /// taken into an empty queue, however large. Default 1 MiB.
    pub max_queued_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 1024 * 1024,
            max_depth: 64,
            max_in_flight: 64,
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(30),
            max_connections: 65_536,
            shutdown_grace: Duration::from_secs(10),
            max_queued_events: 1024,
            max_queued_event_bytes: 1024 * 1024,
        }
    }
}
