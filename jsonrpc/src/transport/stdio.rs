//! `stdio`: one line-framed connection over the process's stdin and stdout.
//!
//! Tokio reads stdin on a blocking thread that cannot be interrupted: a program that stops
//! serving before stdin closes should leave its runtime with `Runtime::shutdown_timeout`.
//! Nothing but responses (and event notifications) may be written to stdout; log to stderr.

use std::sync::Arc;

use vproto_listen::ShutdownSignal;

use super::lines;
use crate::engine::Engine;

/// Serves stdin/stdout until stdin closes or the server shuts down. No token and no message
/// timeout: whoever started the process owns its pipes.
pub(crate) async fn serve(engine: Arc<Engine>, shutdown: ShutdownSignal) {
    lines::serve(engine, tokio::io::stdin(), tokio::io::stdout(), None, None, shutdown).await;
}
