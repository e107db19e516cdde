//! [`XsError`]: everything a Xenstore call can fail with.

use super::wire::{ErrorCode, PathError};

/// A failed Xenstore call: one variant per error name of `xs_wire.h` answered by the server, and
/// the client-side failures (connection, protocol, limits checked before sending).
#[derive(Debug, thiserror::Error)]
pub enum XsError {
    /// `EINVAL`: the server found the request malformed.
    #[error("xenstore: invalid request (EINVAL)")]
    Inval,
    /// `EACCES`: permission denied.
    #[error("xenstore: permission denied (EACCES)")]
    Access,
    /// `EEXIST`: already exists (for example the same watch path and token).
    #[error("xenstore: already exists (EEXIST)")]
    Exists,
    /// `EISDIR`.
    #[error("xenstore: is a directory (EISDIR)")]
    IsDir,
    /// `ENOENT`: no such node, transaction or watch.
    #[error("xenstore: no such node (ENOENT)")]
    NoEntry,
    /// `ENOMEM`: the server is out of memory.
    #[error("xenstore: out of memory (ENOMEM)")]
    NoMem,
    /// `ENOSPC`: node or transaction quota exceeded, or value too large.
    #[error("xenstore: quota exceeded or value too large (ENOSPC)")]
    NoSpace,
    /// `EIO`: the server failed internally.
    #[error("xenstore: input/output error (EIO)")]
    ServerIo,
    /// `ENOTEMPTY`.
    #[error("xenstore: not empty (ENOTEMPTY)")]
    NotEmpty,
    /// `ENOSYS`: the server does not implement this request.
    #[error("xenstore: request not supported (ENOSYS)")]
    NoSys,
    /// `EROFS`: the store is read-only.
    #[error("xenstore: read-only (EROFS)")]
    ReadOnly,
    /// `EBUSY`.
    #[error("xenstore: busy (EBUSY)")]
    Busy,
    /// `EAGAIN`: the transaction conflicted with another change; run it again.
    #[error("xenstore: transaction conflict, try again (EAGAIN)")]
    Again,
    /// `EISCONN`.
    #[error("xenstore: already connected (EISCONN)")]
    IsConn,
    /// `E2BIG`: reply too large, or watch quota exceeded.
    #[error("xenstore: too big or too many watches (E2BIG)")]
    TooBig,
    /// `EPERM`: not permitted (a guest changing a node's owner).
    #[error("xenstore: operation not permitted (EPERM)")]
    Perm,
    /// `EQUOTA`: quota exceeded (oxenstored).
    #[error("xenstore: quota exceeded (EQUOTA)")]
    Quota,
    /// An error name no Xenstore is known to send.
    #[error("xenstore: server error {0:?}")]
    Other(String),
    /// The socket or device failed.
    #[error("xenstore: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The connection is gone (closed by the server, or after an I/O error); every pending and
    /// later call on it fails with this.
    #[error("xenstore: connection closed{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    ConnectionClosed(String),
    /// The server sent something that is not the Xenstore protocol.
    #[error("xenstore: protocol error: {0}")]
    Protocol(String),
    /// A request would exceed a limit of `xs_wire.h`; nothing was sent.
    #[error("xenstore: {what} is {len} bytes, the limit is {max}; nothing was sent")]
    TooLong {
        /// What is too long (`payload`, `value`, ...).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A path that Xenstore would refuse; nothing was sent.
    #[error("xenstore: invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why.
        reason: PathError,
    },
    /// A malformed argument (a watch token with a NUL, a bad permission string); nothing was sent.
    #[error("xenstore: invalid argument: {0}")]
    InvalidArgument(String),
    /// A watch with this token is already registered on this connection.
    #[error("xenstore: a watch with token {0:?} is already registered on this connection")]
    TokenInUse(String),
    /// An address that is neither `unix:PATH` nor `xenbus[:PATH]`.
    #[error("xenstore: invalid address {addr:?}: {reason}")]
    InvalidAddr {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
}

impl XsError {
    /// The client-side error for a server's error name.
    pub fn from_wire_name(name: &str) -> XsError {
        match ErrorCode::parse(name) {
            Some(code) => XsError::from(code),
            None => XsError::Other(name.to_string()),
        }
    }

    /// The wire error code this error stands for, when it came from the server.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            XsError::Inval => ErrorCode::Inval,
            XsError::Access => ErrorCode::Acces,
            XsError::Exists => ErrorCode::Exist,
            XsError::IsDir => ErrorCode::IsDir,
            XsError::NoEntry => ErrorCode::NoEnt,
            XsError::NoMem => ErrorCode::NoMem,
            XsError::NoSpace => ErrorCode::NoSpc,
            XsError::ServerIo => ErrorCode::Io,
            XsError::NotEmpty => ErrorCode::NotEmpty,
            XsError::NoSys => ErrorCode::NoSys,
            XsError::ReadOnly => ErrorCode::RoFs,
            XsError::Busy => ErrorCode::Busy,
            XsError::Again => ErrorCode::Again,
            XsError::IsConn => ErrorCode::IsConn,
            XsError::TooBig => ErrorCode::TooBig,
            XsError::Perm => ErrorCode::Perm,
            XsError::Quota => ErrorCode::Quota,
            _ => return None,
        })
    }

    /// True when the connection is unusable and a new one is needed (reconnect and republish).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, XsError::ConnectionClosed(_) | XsError::Io { .. } | XsError::Protocol(_))
    }
}

impl From<ErrorCode> for XsError {
    fn from(code: ErrorCode) -> XsError {
        match code {
            ErrorCode::Inval => XsError::Inval,
            ErrorCode::Acces => XsError::Access,
            ErrorCode::Exist => XsError::Exists,
            ErrorCode::IsDir => XsError::IsDir,
            ErrorCode::NoEnt => XsError::NoEntry,
            ErrorCode::NoMem => XsError::NoMem,
            ErrorCode::NoSpc => XsError::NoSpace,
            ErrorCode::Io => XsError::ServerIo,
            ErrorCode::NotEmpty => XsError::NotEmpty,
            ErrorCode::NoSys => XsError::NoSys,
            ErrorCode::RoFs => XsError::ReadOnly,
            ErrorCode::Busy => XsError::Busy,
            ErrorCode::Again => XsError::Again,
            ErrorCode::IsConn => XsError::IsConn,
            ErrorCode::TooBig => XsError::TooBig,
            ErrorCode::Perm => XsError::Perm,
            ErrorCode::Quota => XsError::Quota,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_both_ways() {
        for code in ErrorCode::ALL {
            assert_eq!(XsError::from_wire_name(code.as_str()).code(), Some(code));
        }
        assert!(matches!(XsError::from_wire_name("EFOO"), XsError::Other(name) if name == "EFOO"));
    }
}
