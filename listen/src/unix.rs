//! Unix sockets for servers, created mode 0600.
//!
//! The socket is bound inside a fresh private directory (mode 0700), given mode 0600 and
//! renamed onto PATH, so it is never reachable with looser permissions. A stale socket file
//! (nobody listening) is replaced; a live one or a non-socket file is refused. The file is
//! removed on shutdown if it is still ours.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::net::{UnixListener, UnixStream};

/// Why an address could not be listened on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address, as a listen address is written (`unix:PATH`, `tcp:HOST:PORT`, ...).
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Another server is listening on the socket file.
    #[error("unix:{}: another server is listening on this socket", .0.display())]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is not replaced.
    #[error("unix:{}: the path exists and is not a socket; remove it or choose another path", .0.display())]
    NotASocket(PathBuf),
}

/// The socket file of a bound listener; removed on drop when PATH still names the socket
/// [`bind_unix`] created (not one another server has put there since).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds `path` as described in the module documentation: a listener, and the socket file
/// that goes with it (keep it as long as the listener serves).
pub async fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let bind_error = |source| BindError::Io { addr: format!("unix:{}", path.display()), source };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(BindError::NotASocket(path.to_path_buf())),
        Ok(_) => match tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path)).await {
            Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
            }
            Ok(Err(error)) if error.kind() == io::ErrorKind::NotFound => {}
            Ok(Err(error)) => return Err(bind_error(error)),
            Ok(Ok(_)) | Err(_) => return Err(BindError::InUse(path.to_path_buf())),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(bind_error(error)),
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Short, so the temporary path is no longer than PATH whenever PATH's file name has 12 or
    // more characters (socket paths are limited to 107 bytes).
    let private = parent.join(format!(".vp{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    fs::DirBuilder::new().mode(0o700).create(&private).map_err(bind_error)?;
    let temporary = private.join("s");
    let bound = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))?;
        fs::rename(&temporary, path)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })();
    let _ = fs::remove_file(&temporary);
    let _ = fs::remove_dir(&private);
    let listener = bound.map_err(bind_error)?;
    let meta = fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() };
    let listener = UnixListener::from_std(listener).map_err(bind_error)?;
    Ok((listener, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_0600_and_removes_the_file_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sock");
        let (listener, file) = bind_unix(&path).await.unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(bind_unix(&path).await, Err(BindError::InUse(_))));
        drop(listener);
        drop(file);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_plain_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (_listener, _file) = bind_unix(&path).await.unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"").unwrap();
        assert!(matches!(bind_unix(&plain).await, Err(BindError::NotASocket(_))));
    }
}
