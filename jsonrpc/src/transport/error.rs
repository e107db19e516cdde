//! Why a server could not start: what the [`Server`](super::Server) builder and the listeners
//! it configures (HTTP's routes) both report.

use vproto_listen::BindError;

use super::addr::ListenAddr;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be listened on (in use, not a socket, refused by the system).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// REST routes were given for an address that is not `http://`.
    #[error("REST routes are served on http:// addresses only, not on {0}")]
    RestRoutesNeedHttp(ListenAddr),
    /// A REST route cannot be served.
    #[error("REST route {http_method} {path}: {why}")]
    BadRestRoute {
        /// The route's HTTP method, as given.
        http_method: String,
        /// The route's path, as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
}
