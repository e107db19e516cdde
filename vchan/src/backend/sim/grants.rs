//! Grants: one file per granted page (`dom<D>/gnt/<ref>`: the page, then a page of metadata),
//! mapped `MAP_SHARED` into one region per share or map.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io,
    os::{
        fd::AsRawFd,
        unix::fs::{FileExt, MetadataExt},
    },
    path::{Path, PathBuf},
    ptr::NonNull,
    sync::atomic::Ordering,
};

use super::{
    exit::{self, Ending},
    ffi,
    files::{self, Owner},
    SimBackend, SimNotify, FIRST_REF, MAX_DOMID, MAX_REF,
};
use crate::backend::{DomId, GrantRef, Mapping, PAGE_SIZE};

/// A random number written into a grant's metadata, telling this grant apart from a later one
/// that reuses its reference.
pub(super) type Nonce = u64;

/// A grant's metadata, in the second page of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct GrantMeta {
    /// The only domain that may map the page.
    pub(super) grantee: DomId,
    /// Whether the grantee may map it writable.
    pub(super) writable: bool,
    /// The process that shared it.
    pub(super) owner: Owner,
    pub(super) nonce: Nonce,
}

/// Reads the metadata of the grant file `file`.
pub(super) fn read_meta(file: &File) -> io::Result<GrantMeta> {
    let mut page = vec![0u8; PAGE_SIZE];
    let n = file.read_at(&mut page, PAGE_SIZE as u64)?;
    let end = page[..n].iter().position(|&b| b == 0).unwrap_or(n);
    let text = String::from_utf8_lossy(&page[..end]);
    let fields = files::fields(&text);
    let what = Path::new("grant metadata");
    Ok(GrantMeta {
        grantee: files::field(&fields, "grantee", what)?,
        writable: files::field::<u8>(&fields, "writable", what)? != 0,
        owner: files::field(&fields, "owner", what)?,
        nonce: files::field(&fields, "nonce", what)?,
    })
}

fn write_meta(file: &File, meta: &GrantMeta) -> io::Result<()> {
    let text = format!(
        "grantee={} writable={} owner={} nonce={}\n",
        meta.grantee,
        u8::from(meta.writable),
        meta.owner,
        meta.nonce
    );
    file.set_len(2 * PAGE_SIZE as u64)?;
    file.write_all_at(text.as_bytes(), PAGE_SIZE as u64)
}

/// The owner of the grant file at `path`.
fn grant_owner(path: &Path) -> Option<Owner> {
    read_meta(&File::open(path).ok()?).ok().map(|meta| meta.owner)
}

/// Pages shared with, or mapped from, another domain ([`Mapping`]). Dropping it unmaps the
/// region, ends the grants of a share (removes their files) and runs its unmap notify.
pub struct SimMapping {
    ptr: NonNull<u8>,
    refs: Vec<GrantRef>,
    /// Each page's file as `/proc/self/maps` names it: (major, minor, inode).
    files: Vec<(u64, u64, u64)>,
    /// Pages the caller already unmapped ([`SimMapping::detach_unmapped`]), left alone at drop.
    detached: Vec<bool>,
    /// What ending it owes, registered with [`exit`].
    ending: Option<u64>,
}

// SAFETY: the region is plain shared memory, owned by the mapping until it drops; concurrent
// access to its bytes is the caller's business, as for any `Mapping`.
unsafe impl Send for SimMapping {}
// SAFETY: as above; the mapping's own fields are never mutated through `&self`.
unsafe impl Sync for SimMapping {}

impl fmt::Debug for SimMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimMapping").field("ptr", &self.ptr).field("refs", &self.refs).finish()
    }
}

impl Mapping for SimMapping {
    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.refs.len() * PAGE_SIZE
    }
}

impl SimMapping {
    /// How many pages it maps.
    pub fn pages(&self) -> usize {
        self.refs.len()
    }

    /// Notes which pages the caller has unmapped itself (libxenvchan's close `munmap`s ring
    /// buffers it got from `xengntshr_share_pages`): those whose address `/proc/self/maps` no
    /// longer shows mapped from this mapping's file. Dropping the mapping then leaves them alone
    /// (the address may be someone else's by now) and only ends the grants and pays the notify.
    /// When `/proc/self/maps` cannot be read, no page is unmapped at drop.
    pub fn detach_unmapped(&mut self) {
        let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let areas: Vec<MapsLine> = maps.lines().filter_map(MapsLine::parse).collect();
        for (i, file) in self.files.iter().enumerate() {
            let address = self.ptr.as_ptr() as u64 + (i * PAGE_SIZE) as u64;
            let still = areas.iter().any(|area| {
                (area.start..area.end).contains(&address)
                    && (area.major, area.minor, area.inode) == *file
                    && area.offset + (address - area.start) == 0
            });
            self.detached[i] |= !still;
        }
    }
}

impl Drop for SimMapping {
    fn drop(&mut self) {
        let mut i = 0;
        while i < self.detached.len() {
            let run = self.detached[i..].iter().take_while(|&&detached| !detached).count();
            if run > 0 {
                // SAFETY: pages i..i+run are this mapping's own, mapped since creation.
                unsafe { libc::munmap(self.ptr.as_ptr().add(i * PAGE_SIZE).cast(), run * PAGE_SIZE) };
            }
            i += run.max(1);
        }
        if let Some(id) = self.ending.take() {
            exit::pay(id);
        }
    }
}

/// One line of `/proc/self/maps`: `start-end perms offset major:minor inode [path]`.
struct MapsLine {
    start: u64,
    end: u64,
    offset: u64,
    major: u64,
    minor: u64,
    inode: u64,
}

impl MapsLine {
    fn parse(line: &str) -> Option<MapsLine> {
        let mut parts = line.split_whitespace();
        let (start, end) = parts.next()?.split_once('-')?;
        let _perms = parts.next()?;
        let offset = parts.next()?;
        let (major, minor) = parts.next()?.split_once(':')?;
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        Some(MapsLine {
            start: hex(start)?,
            end: hex(end)?,
            offset: hex(offset)?,
            major: hex(major)?,
            minor: hex(minor)?,
            inode: parts.next()?.parse().ok()?,
        })
    }
}

/// A region reserved with an anonymous `mmap` (so that one `munmap` releases it, whatever was
/// mapped over it), unmapped on drop unless kept.
struct Region {
    ptr: NonNull<u8>,
    pages: usize,
}

impl Region {
    fn reserve(pages: usize) -> io::Result<Region> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), pages * PAGE_SIZE, libc::PROT_NONE, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(files::context(io::Error::last_os_error(), &format!("cannot reserve {pages} pages")));
        }
        Ok(Region { ptr: NonNull::new(ptr.cast()).expect("mmap succeeded"), pages })
    }

    /// Maps page 0 of `file` as page `i` of the region.
    fn map(&self, i: usize, file: &File, prot: libc::c_int) -> io::Result<()> {
        // SAFETY: page i lies inside the region this value owns; MAP_FIXED replaces only it.
        let at = unsafe { self.ptr.as_ptr().add(i * PAGE_SIZE) };
        let flags = libc::MAP_SHARED | libc::MAP_FIXED;
        // SAFETY: as above; the file is open and at least a page long.
        let ptr = unsafe { libc::mmap(at.cast(), PAGE_SIZE, prot, flags, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(files::context(io::Error::last_os_error(), "cannot map a granted page"));
        }
        Ok(())
    }

    /// Keeps the region mapped, and out of children forked from now on (as Xen's grant
    /// mappings are).
    fn keep(self) -> NonNull<u8> {
        let ptr = self.ptr;
        // SAFETY: advice on the region this value owns.
        unsafe { libc::madvise(ptr.as_ptr().cast(), self.pages * PAGE_SIZE, libc::MADV_DONTFORK) };
        std::mem::forget(self);
        ptr
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region is this value's own.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.pages * PAGE_SIZE) };
    }
}

/// Files to remove unless the operation completes.
struct Undo(Vec<PathBuf>);

impl Drop for Undo {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// A page's file as `/proc/self/maps` names it.
fn file_id(file: &File) -> io::Result<(u64, u64, u64)> {
    let metadata = file.metadata()?;
    let dev = metadata.dev();
    Ok((libc::major(dev).into(), libc::minor(dev).into(), metadata.ino()))
}

fn check_request(pages: usize, notify: SimNotify) -> io::Result<()> {
    if pages == 0 {
        return Err(ffi::error(libc::EINVAL, "no pages to share or map".into()));
    }
    if let Some(offset) = notify.clear_byte.filter(|&offset| offset >= PAGE_SIZE) {
        return Err(ffi::error(libc::EINVAL, format!("unmap notify offset {offset} is past the first page")));
    }
    Ok(())
}

/// [`SimBackend::share_pages`].
pub(super) fn share(
    backend: &SimBackend,
    peer: DomId,
    pages: usize,
    writable: bool,
    notify: SimNotify,
) -> io::Result<SimMapping> {
    check_request(pages, notify)?;
    if peer > MAX_DOMID {
        return Err(ffi::error(libc::EINVAL, format!("cannot grant to domain {peer}: reserved")));
    }
    let layout = backend.layout();
    let dir = layout.grants(backend.domid());
    let region = Region::reserve(pages)?;
    let mut made = Undo(Vec::with_capacity(pages));
    let (mut refs, mut ids, mut first) = (Vec::with_capacity(pages), Vec::with_capacity(pages), None);
    for i in 0..pages {
        let (file, temp) = files::create_temp(&dir)?;
        let temp = Undo(vec![temp]);
        let nonce = files::random_u64();
        write_meta(&file, &GrantMeta { grantee: peer, writable, owner: backend.owner(), nonce })?;
        region.map(i, &file, libc::PROT_READ | libc::PROT_WRITE)?;
        let hint = backend.inner.next_ref.load(Ordering::Relaxed);
        let gref = files::allocate(layout, &dir, &temp.0[0], (FIRST_REF, MAX_REF), hint, grant_owner)?;
        backend.inner.next_ref.store(if gref >= MAX_REF { FIRST_REF } else { gref + 1 }, Ordering::Relaxed);
        made.0.push(dir.join(gref.to_string()));
        refs.push(gref);
        ids.push(file_id(&file)?);
        if i == 0 {
            first = Some((file, nonce));
        }
    }
    let (file, nonce) = first.expect("at least one page");
    let owed = match notify {
        SimNotify { clear_byte: None, event: None } => None,
        _ => Some(exit::owe(
            backend,
            (backend.domid(), refs[0], nonce),
            notify.clear_byte.map(|offset| (file, offset)),
            notify.event,
        )?),
    };
    let ending = Ending { pid: std::process::id(), grant_files: std::mem::take(&mut made.0), notify: owed };
    Ok(SimMapping::new(region.keep(), refs, ids, Some(exit::register(ending))))
}

/// [`SimBackend::map_pages`].
pub(super) fn map(
    backend: &SimBackend,
    pages: &[(DomId, GrantRef)],
    writable: bool,
    notify: SimNotify,
) -> io::Result<SimMapping> {
    check_request(pages.len(), notify)?;
    if notify.clear_byte.is_some() && !writable {
        return Err(ffi::error(libc::EINVAL, "an unmap notify cannot clear a byte of a read-only mapping".into()));
    }
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    let region = Region::reserve(pages.len())?;
    let (mut ids, mut first) = (Vec::with_capacity(pages.len()), None);
    for (i, &(granter, gref)) in pages.iter().enumerate() {
        let (file, meta) = open_grant(backend, granter, gref, writable)?;
        region.map(i, &file, prot)?;
        ids.push(file_id(&file)?);
        if i == 0 {
            first = Some((file, meta.nonce));
        }
    }
    let (file, nonce) = first.expect("at least one page");
    let (granter, gref) = pages[0];
    let ending = match notify {
        SimNotify { clear_byte: None, event: None } => None,
        _ => {
            let clear = notify.clear_byte.map(|offset| (file, offset));
            let owed = exit::owe(backend, (granter, gref, nonce), clear, notify.event)?;
            Some(exit::register(Ending { pid: std::process::id(), grant_files: Vec::new(), notify: Some(owed) }))
        }
    };
    let refs = pages.iter().map(|&(_, gref)| gref).collect();
    Ok(SimMapping::new(region.keep(), refs, ids, ending))
}

impl SimMapping {
    fn new(ptr: NonNull<u8>, refs: Vec<GrantRef>, files: Vec<(u64, u64, u64)>, ending: Option<u64>) -> SimMapping {
        let detached = vec![false; refs.len()];
        SimMapping { ptr, refs, files, detached, ending }
    }
}

/// Opens page `gref` of domain `granter` for this domain, checking the grant: it must exist
/// (`ENOENT`), be granted to this domain (`EPERM`) and, if `writable`, be writable (`EPERM`).
fn open_grant(backend: &SimBackend, granter: DomId, gref: GrantRef, writable: bool) -> io::Result<(File, GrantMeta)> {
    let path = backend.layout().grant(granter, gref);
    let file = OpenOptions::new().read(true).write(writable).open(&path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => ffi::error(libc::ENOENT, format!("domain {granter} has no grant {gref}")),
        _ => files::context(error, &format!("cannot open {}", path.display())),
    })?;
    let meta = read_meta(&file).map_err(|error| files::context(error, &format!("grant {gref} of domain {granter}")))?;
    let me = backend.domid();
    if meta.grantee != me {
        let message = format!("grant {gref} of domain {granter} is for domain {}, not domain {me}", meta.grantee);
        return Err(ffi::error(libc::EPERM, message));
    }
    if writable && !meta.writable {
        return Err(ffi::error(libc::EPERM, format!("grant {gref} of domain {granter} is read-only")));
    }
    Ok((file, meta))
}

fn check_span(offset: usize, len: usize) -> io::Result<()> {
    if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
        return Err(ffi::error(libc::EINVAL, format!("{len} bytes at offset {offset} cross the end of the page")));
    }
    Ok(())
}

/// [`SimBackend::copy_from_grant`].
pub(super) fn copy_from(
    backend: &SimBackend,
    granter: DomId,
    gref: GrantRef,
    offset: usize,
    buf: &mut [u8],
) -> io::Result<()> {
    check_span(offset, buf.len())?;
    let (file, _) = open_grant(backend, granter, gref, false)?;
    file.read_exact_at(buf, offset as u64)
}

/// [`SimBackend::copy_to_grant`].
pub(super) fn copy_to(
    backend: &SimBackend,
    granter: DomId,
    gref: GrantRef,
    offset: usize,
    data: &[u8],
) -> io::Result<()> {
    check_span(offset, data.len())?;
    let (file, _) = open_grant(backend, granter, gref, true)?;
    file.write_all_at(data, offset as u64)
}
