//! `unix:PATH`: line-framed connections over a Unix socket created mode 0600.
//!
//! The socket is bound inside a fresh private directory (mode 0700), given mode 0600 and
//! renamed onto PATH, so it is never reachable with looser permissions. A stale socket file
//! (nobody listening) is replaced; a live one or a non-socket file is refused. The file is
//! removed on shutdown if it is still ours.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::net::{UnixListener, UnixStream};

use super::server::ServeError;

/// The socket file; removed on drop when PATH still names the socket we created.
#[derive(Debug)]
pub(crate) struct SocketFile {
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

/// Binds `path` as described in the module documentation.
pub(crate) async fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ServeError> {
    let bind_error = |source| ServeError::Bind { addr: format!("unix:{}", path.display()), source };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(ServeError::NotASocket(path.to_path_buf())),
        Ok(_) => match tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path)).await {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale socket file");
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
            Ok(Err(error)) => return Err(bind_error(error)),
            Ok(Ok(_)) | Err(_) => return Err(ServeError::InUse(path.to_path_buf())),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
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
