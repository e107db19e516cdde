//! Errors that carry both a message and the `errno` a C caller expects, and what the drop-in C
//! libraries (`vchan-sim/gnttab`, `vchan-sim/evtchn`) need to report them.

use std::{fmt, io};

/// An error of the simulation: the `errno` Xen's libraries would set, and what went wrong.
#[derive(Debug)]
struct SimError {
    errno: i32,
    message: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SimError {}

/// An [`io::Error`] saying `message`, of the kind `errno` maps to, whose [`errno_of`] is `errno`.
pub fn error(errno: i32, message: String) -> io::Error {
    io::Error::new(io::Error::from_raw_os_error(errno).kind(), SimError { errno, message })
}

/// The `errno` for `error`: its OS error, the one given to [`error`], else one matching its kind
/// (`EIO` when none does).
pub fn errno_of(error: &io::Error) -> i32 {
    if let Some(errno) = error.raw_os_error() {
        return errno;
    }
    if let Some(sim) = error.get_ref().and_then(|inner| inner.downcast_ref::<SimError>()) {
        return sim.errno;
    }
    match error.kind() {
        io::ErrorKind::NotFound => libc::ENOENT,
        io::ErrorKind::PermissionDenied => libc::EPERM,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => libc::EINVAL,
        io::ErrorKind::AlreadyExists => libc::EEXIST,
        io::ErrorKind::WouldBlock => libc::EAGAIN,
        io::ErrorKind::NotConnected => libc::ENOTCONN,
        io::ErrorKind::OutOfMemory => libc::ENOMEM,
        io::ErrorKind::Unsupported => libc::ENOSYS,
        _ => libc::EIO,
    }
}

/// Sets the calling thread's `errno` to [`errno_of`] `error`.
pub fn set_errno(error: &io::Error) {
    // SAFETY: __errno_location returns the calling thread's errno, always valid to write.
    unsafe { *libc::__errno_location() = errno_of(error) };
}

/// For an `extern "C"` function: `result`'s value, or `failed` after setting `errno` (and
/// logging the message when `VPROTO_SIM_DEBUG` is set, since C callers see only the number).
pub fn c_result<T>(result: io::Result<T>, failed: T) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            if std::env::var_os("VPROTO_SIM_DEBUG").is_some_and(|value| !value.is_empty()) {
                eprintln!("vproto vchan sim: {error}");
            }
            set_errno(&error);
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_survives_the_message() {
        let e = error(libc::EPERM, "grant 8 of domain 0 is for domain 7".into());
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(errno_of(&e), libc::EPERM);
        assert_eq!(e.to_string(), "grant 8 of domain 0 is for domain 7");
        assert_eq!(errno_of(&io::Error::from_raw_os_error(libc::ENOTCONN)), libc::ENOTCONN);
        assert_eq!(errno_of(&io::Error::new(io::ErrorKind::NotFound, "x")), libc::ENOENT);
        assert_eq!(errno_of(&io::Error::other("x")), libc::EIO);
    }
}
