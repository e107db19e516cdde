//! Xen's `libxengnttab.so.1` over vproto's vchan simulation: the `xengnttab_*` (mapping) and
//! `xengntshr_*` (sharing) calls of `/usr/include/xengnttab.h`, each a thin wrapper over
//! [`SimBackend`] (`VPROTO_SIM_DOMID`, `VPROTO_SIM_DIR`; docs/vchan.md). Built as
//! `libxengnttab.so.1` with Xen's symbol versions by `cargo xtask vchan-sim`, so that a program
//! linked against Xen's libraries (libxenvchan) runs on the simulation with `LD_LIBRARY_PATH`.
//!
//! Failures return `NULL` or `-1` with `errno` set (`ENOENT`: no such grant, `EPERM`: not
//! granted to this domain or read-only, `EINVAL`: bad arguments); `VPROTO_SIM_DEBUG=1` also
//! prints the reason on stderr.
//!
//! Not provided (not honourable without Xen): `xengnttab_fd`, `xengntshr_fd` and the dma-buf
//! calls. `xengnttab_set_max_grants` is accepted and sets no limit, as on current Linux.

use std::{
    collections::BTreeMap,
    ffi::c_void,
    io,
    sync::{Mutex, MutexGuard},
};

use libc::{c_int, c_uint};
use vproto_vchan::backend::{
    sim::{
        ffi::{c_result, errno_of, error},
        SimBackend, SimMapping, SimNotify, MAX_DOMID,
    },
    DomId, GrantRef, Mapping, PAGE_SIZE,
};

/// `xengnttab_handle` and `xengntshr_handle`: a backend from the environment and the regions
/// made through the handle, by address (`xengnttab_unmap` and `xengntshr_unshare` receive only
/// the address).
pub struct Handle {
    backend: SimBackend,
    regions: Mutex<BTreeMap<usize, SimMapping>>,
}

impl Handle {
    fn open() -> io::Result<Handle> {
        Ok(Handle { backend: SimBackend::from_env()?, regions: Mutex::new(BTreeMap::new()) })
    }

    fn regions(&self) -> MutexGuard<'_, BTreeMap<usize, SimMapping>> {
        self.regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `mapping` until it is unmapped or the handle closed; its address.
    fn keep(&self, mapping: SimMapping) -> *mut c_void {
        let (start, end) = (mapping.as_ptr() as usize, mapping.as_ptr() as usize + mapping.len());
        let mut regions = self.regions();
        // A region the kernel just handed out again was unmapped by the caller (libxenvchan
        // `munmap`s ring buffers itself): the old one is over.
        let stale: Vec<usize> = regions
            .range(..end)
            .filter(|(_, old)| old.as_ptr() as usize + old.len() > start)
            .map(|(&at, _)| at)
            .collect();
        for at in stale {
            if let Some(mut old) = regions.remove(&at) {
                old.detach_unmapped();
            }
        }
        regions.insert(start, mapping);
        start as *mut c_void
    }

    /// Unmaps (or unshares) the region at `address` of `count` pages.
    fn release(&self, address: *mut c_void, count: u32) -> io::Result<()> {
        let mut regions = self.regions();
        let pages = regions.get(&(address as usize)).map(SimMapping::pages);
        match pages {
            Some(pages) if pages == count as usize => {
                let mapping = regions.remove(&(address as usize));
                drop(regions);
                drop(mapping);
                Ok(())
            }
            Some(pages) => Err(error(libc::EINVAL, format!("{address:p} maps {pages} pages, not {count}"))),
            None => Err(error(libc::EINVAL, format!("no grant region of this handle starts at {address:p}"))),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        for (_, mut mapping) in std::mem::take(&mut *self.regions()) {
            mapping.detach_unmapped();
        }
    }
}

/// The handle behind `handle`, or `EINVAL`.
///
/// # Safety
/// `handle` is null or a live handle from an `_open` of this library.
unsafe fn handle<'a>(handle: *mut Handle) -> io::Result<&'a Handle> {
    // SAFETY: the caller's promise.
    unsafe { handle.as_ref() }.ok_or_else(|| error(libc::EINVAL, "no handle (NULL)".into()))
}

fn domid(domid: u32) -> io::Result<DomId> {
    DomId::try_from(domid)
        .ok()
        .filter(|&domid| domid <= MAX_DOMID)
        .ok_or_else(|| error(libc::EINVAL, format!("{domid} is not a domain id")))
}

/// The unmap notify of `notify_offset` and `notify_port`, `-1` meaning none.
fn notify(offset: u32, port: u32) -> SimNotify {
    SimNotify { clear_byte: (offset != u32::MAX).then_some(offset as usize), event: (port != u32::MAX).then_some(port) }
}

/// `count` elements at `items`, or `EINVAL` if there are none.
///
/// # Safety
/// `items` points to `count` readable elements (when `count` is not 0).
unsafe fn slice<'a, T>(items: *const T, count: usize) -> io::Result<&'a [T]> {
    if count == 0 || items.is_null() {
        return Err(error(libc::EINVAL, "no grant references".into()));
    }
    // SAFETY: the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(items, count) })
}

/// Maps `pages` through `handle`, writable if `prot` has `PROT_WRITE`.
///
/// # Safety
/// `handle` as for [`handle`].
unsafe fn map(
    handle: *mut Handle,
    pages: io::Result<Vec<(DomId, GrantRef)>>,
    prot: c_int,
    notify: SimNotify,
) -> *mut c_void {
    // SAFETY: passed on from the caller.
    let result = unsafe { self::handle(handle) }.and_then(|handle| {
        let mapping = handle.backend.map_pages(&pages?, prot & libc::PROT_WRITE != 0, notify)?;
        Ok(handle.keep(mapping))
    });
    c_result(result, std::ptr::null_mut())
}

/// `xengnttab_open`: a handle for mapping grants; the logger and flags are ignored.
///
/// # Safety
/// Callable from C.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_open(_logger: *mut c_void, _open_flags: c_uint) -> *mut Handle {
    c_result(Handle::open().map(|handle| Box::into_raw(Box::new(handle))), std::ptr::null_mut())
}

/// `xengnttab_close`: unmaps what the handle still maps and frees it.
///
/// # Safety
/// `xgt` is null or a live handle of this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_close(xgt: *mut Handle) -> c_int {
    if !xgt.is_null() {
        // SAFETY: a handle from Box::into_raw, given back once.
        drop(unsafe { Box::from_raw(xgt) });
    }
    0
}

/// `xengnttab_map_grant_ref`: maps one page of domain `domid`.
///
/// # Safety
/// `xgt` is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_map_grant_ref(
    xgt: *mut Handle,
    domid: u32,
    gref: u32,
    prot: c_int,
) -> *mut c_void {
    // SAFETY: the caller's promise.
    unsafe { map(xgt, self::domid(domid).map(|domid| vec![(domid, gref)]), prot, SimNotify::default()) }
}

/// `xengnttab_map_grant_refs`: maps `count` pages, page i being `refs[i]` of `domids[i]`.
///
/// # Safety
/// `xgt` is a live handle; `domids` and `refs` hold `count` elements.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_map_grant_refs(
    xgt: *mut Handle,
    count: u32,
    domids: *const u32,
    refs: *const u32,
    prot: c_int,
) -> *mut c_void {
    // SAFETY: the caller's promise.
    let pages = unsafe { slice(domids, count as usize).and_then(|domids| Ok((domids, slice(refs, count as usize)?))) }
        .and_then(|(domids, refs)| domids.iter().zip(refs).map(|(&d, &gref)| Ok((domid(d)?, gref))).collect());
    // SAFETY: the caller's promise.
    unsafe { map(xgt, pages, prot, SimNotify::default()) }
}

/// `xengnttab_map_domain_grant_refs`: maps `count` pages of domain `domid`.
///
/// # Safety
/// `xgt` is a live handle; `refs` holds `count` elements.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_map_domain_grant_refs(
    xgt: *mut Handle,
    count: u32,
    domid: u32,
    refs: *const u32,
    prot: c_int,
) -> *mut c_void {
    let pages = self::domid(domid).and_then(|domid| {
        // SAFETY: the caller's promise.
        Ok(unsafe { slice(refs, count as usize) }?.iter().map(|&gref| (domid, gref)).collect())
    });
    // SAFETY: the caller's promise.
    unsafe { map(xgt, pages, prot, SimNotify::default()) }
}

/// `xengnttab_map_grant_ref_notify`: maps one page; when it is unmapped (or the process exits),
/// the byte at `notify_offset` is cleared and `notify_port` notified (`-1`: not).
///
/// # Safety
/// `xgt` is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_map_grant_ref_notify(
    xgt: *mut Handle,
    domid: u32,
    gref: u32,
    prot: c_int,
    notify_offset: u32,
    notify_port: u32,
) -> *mut c_void {
    let pages = self::domid(domid).map(|domid| vec![(domid, gref)]);
    // SAFETY: the caller's promise.
    unsafe { map(xgt, pages, prot, notify(notify_offset, notify_port)) }
}

/// `xengnttab_unmap`: unmaps the `count` pages mapped at `start_address`.
///
/// # Safety
/// `xgt` is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_unmap(xgt: *mut Handle, start_address: *mut c_void, count: u32) -> c_int {
    // SAFETY: the caller's promise.
    c_result(unsafe { handle(xgt) }.and_then(|handle| handle.release(start_address, count)).map(|()| 0), -1)
}

/// `xengnttab_set_max_grants`: accepted; the simulation sets no limit.
///
/// # Safety
/// `xgt` is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_set_max_grants(xgt: *mut Handle, _nr_grants: u32) -> c_int {
    // SAFETY: the caller's promise.
    c_result(unsafe { handle(xgt) }.map(|_| 0), -1)
}

/// `union xengnttab_copy_ptr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union CopyPtr {
    virt: *mut c_void,
    foreign: Foreign,
}

/// The `foreign` member of `union xengnttab_copy_ptr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Foreign {
    gref: u32,
    offset: u16,
    domid: u16,
}

/// `struct xengnttab_grant_copy_segment`.
#[repr(C)]
pub struct CopySegment {
    source: CopyPtr,
    dest: CopyPtr,
    len: u16,
    flags: u16,
    status: i16,
}

const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
const GNTCOPY_DEST_GREF: u16 = 1 << 1;
const GNTST_GENERAL_ERROR: i16 = -1;
const GNTST_BAD_DOMAIN: i16 = -2;
const GNTST_BAD_GNTREF: i16 = -3;
const GNTST_PERMISSION_DENIED: i16 = -8;
const GNTST_BAD_COPY_ARG: i16 = -10;

/// One segment of a grant copy.
///
/// # Safety
/// A local side's `virt` points to `len` bytes (readable as a source, writable as a destination).
unsafe fn copy_segment(backend: &SimBackend, segment: &CopySegment) -> io::Result<()> {
    let len = usize::from(segment.len);
    let (from_grant, to_grant) = (segment.flags & GNTCOPY_SOURCE_GREF != 0, segment.flags & GNTCOPY_DEST_GREF != 0);
    if !from_grant && !to_grant {
        return Err(error(libc::EINVAL, "a grant copy segment needs a grant on one side".into()));
    }
    let mut buf = vec![0u8; len];
    if from_grant {
        // SAFETY: the flag says `foreign` is the member in use.
        let source = unsafe { segment.source.foreign };
        backend.copy_from_grant(domid(source.domid.into())?, source.gref, source.offset.into(), &mut buf)?;
    } else {
        // SAFETY: the caller's promise for `virt`.
        buf.copy_from_slice(unsafe { std::slice::from_raw_parts(segment.source.virt.cast::<u8>(), len) });
    }
    if to_grant {
        // SAFETY: the flag says `foreign` is the member in use.
        let dest = unsafe { segment.dest.foreign };
        backend.copy_to_grant(domid(dest.domid.into())?, dest.gref, dest.offset.into(), &buf)
    } else {
        // SAFETY: the caller's promise for `virt`.
        unsafe { std::slice::from_raw_parts_mut(segment.dest.virt.cast::<u8>(), len) }.copy_from_slice(&buf);
        Ok(())
    }
}

/// `xengnttab_grant_copy`: copies each of `count` segments between local memory and granted
/// pages (or between two granted pages), setting each segment's `status` (`GNTST_*`). Returns 0
/// once all are tried.
///
/// # Safety
/// `xgt` is a live handle; `segs` holds `count` segments whose local pointers are valid.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengnttab_grant_copy(
    xgt: *mut Handle,
    count: u32,
    segs: *mut CopySegment,
) -> c_int {
    // SAFETY: the caller's promise.
    let handle = match unsafe { handle(xgt) } {
        Ok(handle) => handle,
        Err(error) => return c_result(Err(error), -1),
    };
    if count == 0 {
        return 0;
    }
    if segs.is_null() {
        return c_result(Err(error(libc::EINVAL, "no grant copy segments".into())), -1);
    }
    // SAFETY: the caller's promise.
    for segment in unsafe { std::slice::from_raw_parts_mut(segs, count as usize) } {
        // SAFETY: the caller's promise.
        segment.status = match unsafe { copy_segment(&handle.backend, segment) } {
            Ok(()) => 0,
            Err(error) => match errno_of(&error) {
                libc::ENOENT => GNTST_BAD_GNTREF,
                libc::EPERM => GNTST_PERMISSION_DENIED,
                libc::EINVAL if segment.len as usize > PAGE_SIZE => GNTST_BAD_COPY_ARG,
                libc::EINVAL if error.to_string().contains("domain id") => GNTST_BAD_DOMAIN,
                libc::EINVAL => GNTST_BAD_COPY_ARG,
                _ => GNTST_GENERAL_ERROR,
            },
        };
    }
    0
}

/// `xengntshr_open`: a handle for sharing pages; the logger and flags are ignored.
///
/// # Safety
/// Callable from C.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengntshr_open(_logger: *mut c_void, _open_flags: c_uint) -> *mut Handle {
    c_result(Handle::open().map(|handle| Box::into_raw(Box::new(handle))), std::ptr::null_mut())
}

/// `xengntshr_close`: ends the grants the handle still holds and frees it.
///
/// # Safety
/// `xgs` is null or a live handle of this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengntshr_close(xgs: *mut Handle) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { vproto_sim_xengnttab_close(xgs) }
}

/// Shares `count` pages with domain `domid` through `xgs`.
///
/// # Safety
/// `xgs` as for [`handle`]; `refs` holds `count` writable elements.
unsafe fn share(
    xgs: *mut Handle,
    domid: u32,
    count: c_int,
    refs: *mut u32,
    writable: c_int,
    notify: SimNotify,
) -> *mut c_void {
    // SAFETY: passed on from the caller.
    let result = unsafe { handle(xgs) }.and_then(|handle| {
        let count = usize::try_from(count).ok().filter(|&count| count > 0 && !refs.is_null());
        let count = count.ok_or_else(|| error(libc::EINVAL, "no pages to share".into()))?;
        let mapping = handle.backend.share_pages(self::domid(domid)?, count, writable != 0, notify)?;
        // SAFETY: the caller's promise: `count` elements.
        unsafe { std::slice::from_raw_parts_mut(refs, count) }.copy_from_slice(mapping.refs());
        Ok(handle.keep(mapping))
    });
    c_result(result, std::ptr::null_mut())
}

/// `xengntshr_share_pages`: allocates `count` zeroed pages granted to `domid` and maps them;
/// their grant references are written to `refs`.
///
/// # Safety
/// `xgs` is a live handle; `refs` holds `count` writable elements.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengntshr_share_pages(
    xgs: *mut Handle,
    domid: u32,
    count: c_int,
    refs: *mut u32,
    writable: c_int,
) -> *mut c_void {
    // SAFETY: the caller's promise.
    unsafe { share(xgs, domid, count, refs, writable, SimNotify::default()) }
}

/// `xengntshr_share_page_notify`: shares one page (its reference written to `*gref`); when it
/// is unshared (or the process exits), the byte at `notify_offset` is cleared and `notify_port`
/// notified (`-1`: not).
///
/// # Safety
/// `xgs` is a live handle; `gref` points to a writable `u32`.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengntshr_share_page_notify(
    xgs: *mut Handle,
    domid: u32,
    gref: *mut u32,
    writable: c_int,
    notify_offset: u32,
    notify_port: u32,
) -> *mut c_void {
    // SAFETY: the caller's promise.
    unsafe { share(xgs, domid, 1, gref, writable, notify(notify_offset, notify_port)) }
}

/// `xengntshr_unshare`: unmaps the `count` pages shared at `start_address` and ends their grants.
///
/// # Safety
/// `xgs` is a live handle of this library.
#[no_mangle]
pub unsafe extern "C" fn vproto_sim_xengntshr_unshare(
    xgs: *mut Handle,
    start_address: *mut c_void,
    count: u32,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { vproto_sim_xengnttab_unmap(xgs, start_address, count) }
}

// The exported names, with the versions of Xen's library (symbols.map). Not in the crate's own
// test binary, which links no version script.
#[cfg(not(test))]
std::arch::global_asm!(
    ".symver vproto_sim_xengnttab_open, xengnttab_open@@VERS_1.0",
    ".symver vproto_sim_xengnttab_close, xengnttab_close@@VERS_1.0",
    ".symver vproto_sim_xengnttab_map_grant_ref, xengnttab_map_grant_ref@@VERS_1.0",
    ".symver vproto_sim_xengnttab_map_grant_refs, xengnttab_map_grant_refs@@VERS_1.0",
    ".symver vproto_sim_xengnttab_map_domain_grant_refs, xengnttab_map_domain_grant_refs@@VERS_1.0",
    ".symver vproto_sim_xengnttab_map_grant_ref_notify, xengnttab_map_grant_ref_notify@@VERS_1.0",
    ".symver vproto_sim_xengnttab_unmap, xengnttab_unmap@@VERS_1.0",
    ".symver vproto_sim_xengnttab_set_max_grants, xengnttab_set_max_grants@@VERS_1.0",
    ".symver vproto_sim_xengnttab_grant_copy, xengnttab_grant_copy@@VERS_1.1",
    ".symver vproto_sim_xengntshr_open, xengntshr_open@@VERS_1.0",
    ".symver vproto_sim_xengntshr_close, xengntshr_close@@VERS_1.0",
    ".symver vproto_sim_xengntshr_share_pages, xengntshr_share_pages@@VERS_1.0",
    ".symver vproto_sim_xengntshr_share_page_notify, xengntshr_share_page_notify@@VERS_1.0",
    ".symver vproto_sim_xengntshr_unshare, xengntshr_unshare@@VERS_1.0",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_layouts_match_xengnttab_h() {
        // struct xengnttab_grant_copy_segment on x86-64: two 8-byte unions, then three
        // 16-bit fields, padded to 24.
        assert_eq!(std::mem::size_of::<CopySegment>(), 24);
        assert_eq!(std::mem::offset_of!(CopySegment, len), 16);
        assert_eq!(std::mem::offset_of!(CopySegment, status), 20);
        assert_eq!(std::mem::offset_of!(Foreign, domid), 6);
    }

    #[test]
    fn minus_one_means_no_notify() {
        assert_eq!(notify(u32::MAX, u32::MAX), SimNotify::default());
        assert_eq!(notify(12, u32::MAX), SimNotify { clear_byte: Some(12), event: None });
        assert_eq!(notify(u32::MAX, 3), SimNotify { clear_byte: None, event: Some(3) });
        assert!(domid(0x7ff0).is_err() && domid(1 << 16).is_err());
    }
}
