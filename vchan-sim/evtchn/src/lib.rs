//! Xen's `libxenevtchn.so.1` over vproto's vchan simulation: the `xenevtchn_*` calls of
//! `/usr/include/xenevtchn.h`, each a thin wrapper over [`SimEventChannel`] of
//! [`SimBackend::from_env`] (`VPROTO_SIM_DOMID`, `VPROTO_SIM_DIR`; docs/vchan.md). Built as
//! `libxenevtchn.so.1` with Xen's symbol versions by `cargo xtask vchan-sim`, so that a program
//! linked against Xen's libraries (libxenvchan) runs on the simulation with `LD_LIBRARY_PATH`.
//!
//! As on Linux, `xenevtchn_pending` blocks until a port is pending (the descriptor of
//! `xenevtchn_fd` polls readable when one may be). Failures return `NULL` or `-1` with `errno`
//! set; `VPROTO_SIM_DEBUG=1` also prints the reason on stderr.
//!
//! Not provided (not honourable without Xen): `xenevtchn_bind_virq` and `xenevtchn_fdopen`.

use std::{ffi::c_void, io};

use libc::{c_int, c_uint};
use vproto_vchan::backend::{
    sim::{
        ffi::{c_result, error},
        SimBackend, SimEventChannel, MAX_DOMID,
    },
    DomId, EventChannel, Port,
};

/// `XENEVTCHN_NO_CLOEXEC`: keep the descriptors across `exec`.
const XENEVTCHN_NO_CLOEXEC: c_uint = 1 << 0;

/// `xenevtchn_handle`.
pub struct Handle {
    channel: SimEventChannel,
}

/// The event channel behind `handle`, or `EINVAL`.
///
/// # Safety
/// `handle` is null or a live handle from [`vproto_sim_xenevtchn_open`].
unsafe fn channel<'a>(handle: *mut Handle) -> io::Result<&'a SimEventChannel> {
    // SAFETY: the caller's promise.
    let handle = unsafe { handle.as_ref() }.ok_or_else(|| error(libc::EINVAL, "no handle (NULL)".into()))?;
    Ok(&handle.channel)
}

fn domid(domid: u32) -> io::Result<DomId> {
    DomId::try_from(domid)
        .ok()
        .filter(|&domid| domid <= MAX_DOMID)
        .ok_or_else(|| error(libc::EINVAL, format!("{domid} is not a domain id")))
}

/// A port as `xenevtchn_port_or_error_t`.
fn port_or_error(port: io::Result<Port>) -> c_int {
    c_result(port.map(|port| port as c_int), -1)
}

/// `0` or `-1` with `errno`.
fn status(result: io::Result<()>) -> c_int {
    c_result(result.map(|()| 0), -1)
}

/// `xenevtchn_open`: a handle of the calling process's domain; the logger is ignored.
///
/// # Safety
/// Callable from C.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_open(_logger: *mut c_void, flags: c_uint) -> *mut Handle {
    let channel = SimBackend::from_env().and_then(|backend| backend.open_channel(flags & XENEVTCHN_NO_CLOEXEC == 0));
    c_result(channel.map(|channel| Box::into_raw(Box::new(Handle { channel }))), std::ptr::null_mut())
}

/// `xenevtchn_close`: unbinds every port of the handle and frees it.
///
/// # Safety
/// `xce` is null or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_close(xce: *mut Handle) -> c_int {
    if !xce.is_null() {
        // SAFETY: a handle from Box::into_raw, given back once.
        drop(unsafe { Box::from_raw(xce) });
    }
    0
}

/// `xenevtchn_fd`: a descriptor that polls readable when a port may be pending.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_fd(xce: *mut Handle) -> c_int {
    // SAFETY: the caller's promise.
    c_result(unsafe { channel(xce) }.map(EventChannel::fd), -1)
}

/// `xenevtchn_notify`: signals the remote end of `port`.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_notify(xce: *mut Handle, port: u32) -> c_int {
    // SAFETY: the caller's promise.
    status(unsafe { channel(xce) }.and_then(|channel| channel.notify(port)))
}

/// `xenevtchn_bind_unbound_port`: a new port that only domain `domid` may connect to.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_bind_unbound_port(xce: *mut Handle, domid: u32) -> c_int {
    // SAFETY: the caller's promise.
    port_or_error(unsafe { channel(xce) }.and_then(|channel| channel.bind_unbound(self::domid(domid)?)))
}

/// `xenevtchn_bind_interdomain`: a new port connected to `remote_port` of domain `domid`.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_bind_interdomain(
    xce: *mut Handle,
    domid: u32,
    remote_port: u32,
) -> c_int {
    // SAFETY: the caller's promise.
    port_or_error(
        unsafe { channel(xce) }.and_then(|channel| channel.bind_interdomain(self::domid(domid)?, remote_port)),
    )
}

/// `xenevtchn_unbind`: closes `port`.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_unbind(xce: *mut Handle, port: u32) -> c_int {
    // SAFETY: the caller's promise.
    status(unsafe { channel(xce) }.and_then(|channel| channel.unbind(port)))
}

/// `xenevtchn_pending`: the next notified port, which stays masked until unmasked; waits for
/// one, as reading Linux's `/dev/xen/evtchn` does.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_pending(xce: *mut Handle) -> c_int {
    // SAFETY: the caller's promise.
    let next = unsafe { channel(xce) }.and_then(|channel| loop {
        if let Some(port) = channel.pending()? {
            return Ok(port);
        }
        let mut poll = libc::pollfd { fd: channel.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd, waiting without a timeout.
        if unsafe { libc::poll(&mut poll, 1, -1) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    });
    port_or_error(next)
}

/// `xenevtchn_unmask`: lets `port` be delivered again (a notification held meanwhile is
/// delivered now).
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_unmask(xce: *mut Handle, port: u32) -> c_int {
    // SAFETY: the caller's promise.
    status(unsafe { channel(xce) }.and_then(|channel| channel.unmask(port)))
}

/// `xenevtchn_restrict`: the handle may only bind ports to and from domain `domid` from now on.
///
/// # Safety
/// `xce` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xenevtchn_restrict(xce: *mut Handle, domid: u16) -> c_int {
    // SAFETY: the caller's promise.
    status(unsafe { channel(xce) }.map(|channel| channel.restrict(domid)))
}

// The exported names, with the versions of Xen's library (symbols.map). Not in the crate's own
// test binary, which links no version script.
#[cfg(not(test))]
std::arch::global_asm!(
    ".symver vproto_sim_xenevtchn_open, xenevtchn_open@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_close, xenevtchn_close@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_fd, xenevtchn_fd@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_notify, xenevtchn_notify@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_bind_unbound_port, xenevtchn_bind_unbound_port@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_bind_interdomain, xenevtchn_bind_interdomain@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_unbind, xenevtchn_unbind@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_pending, xenevtchn_pending@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_unmask, xenevtchn_unmask@@VERS_1.0",
    ".symver vproto_sim_xenevtchn_restrict, xenevtchn_restrict@@VERS_1.1",
);
