//! What ending a mapping owes (its grant files removed, its unmap notify), paid when the mapping
//! is dropped, at `exit` for the mappings a process never let go of, and by a survivor for a
//! process killed before it could pay.
//!
//! Each owed unmap notify is written to `<dir>/exit/<owner>.<random>`
//! (`granter=G ref=R nonce=N offset=O domain=D port=P`, the byte and the port optional): the
//! process removes it when it pays; whoever finds the owner dead (an event channel watching it,
//! or an allocation reclaiming one of its records) claims the file by removing it and pays in
//! its place. The process-local registry below only lists what this process owes, so that the
//! `atexit` handler can pay it; every copy of this crate (each drop-in library) has its own.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, Once,
    },
    time::Duration,
};

use super::{
    events,
    files::{self, Owner},
    grants::{self, Nonce},
    DomId, GrantRef, Layout, Port, SimBackend,
};
use crate::backend::PAGE_SIZE;

/// The unmap notify a mapping owes.
pub(super) struct Owed {
    /// `<dir>/exit/...`, removed when paid.
    record: PathBuf,
    /// The first page's file (open for writing) and the byte to clear.
    clear: Option<(File, usize)>,
    /// The local port to notify: the directory, the domain and the port.
    event: Option<(PathBuf, DomId, Port)>,
}

/// What ending a mapping owes.
pub(super) struct Ending {
    /// The process that owes it: a child forked since does not pay at its exit (Xen's grant
    /// mappings are not inherited either).
    pub(super) pid: u32,
    /// A share's grant files, removed to end the grants.
    pub(super) grant_files: Vec<PathBuf>,
    /// Its unmap notify.
    pub(super) notify: Option<Owed>,
}

/// What the mappings of this process (of this copy of the crate) still owe, by id.
static OWING: Mutex<BTreeMap<u64, Ending>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static AT_EXIT: Once = Once::new();

/// Writes the record of an unmap notify that mapping `(granter, gref)`'s first page owes:
/// `clear` (the page's file and the byte) and `event` (a port of `backend`'s domain).
pub(super) fn owe(
    backend: &SimBackend,
    (granter, gref, nonce): (DomId, GrantRef, Nonce),
    clear: Option<(File, usize)>,
    event: Option<Port>,
) -> io::Result<Owed> {
    let layout = backend.layout();
    let path = layout.exits().join(format!("{}.{}", backend.owner(), files::random_hex()));
    let offset = clear.as_ref().map_or("-".to_string(), |(_, offset)| offset.to_string());
    let port = event.map_or("-".to_string(), |port| port.to_string());
    let text =
        format!("granter={granter} ref={gref} nonce={nonce} offset={offset} domain={} port={port}\n", backend.domid());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let written = options.open(&path).and_then(|file| file.write_all_at(text.as_bytes(), 0));
    written.map_err(|error| files::context(error, &format!("cannot write {}", path.display())))?;
    let event = event.map(|port| (layout.root.clone(), backend.domid(), port));
    Ok(Owed { record: path, clear, event })
}

/// Registers what a mapping owes when it ends; [`pay`] with the id pays it, and so does the
/// `atexit` handler if the process exits first.
pub(super) fn register(ending: Ending) -> u64 {
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function; it runs at most once, at exit.
        unsafe { libc::atexit(pay_all_at_exit) };
    });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    OWING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id, ending);
    id
}

/// Pays what mapping `id` owes (its memory already unmapped by the caller).
pub(super) fn pay(id: u64) {
    let ending = OWING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id);
    pay_own(ending.into_iter().map(|ending| (id, ending)).collect());
}

extern "C" fn pay_all_at_exit() {
    // Another thread may hold the lock for an instant; never wait long at exit.
    for _ in 0..100 {
        match OWING.try_lock() {
            Ok(mut owing) => {
                let all = std::mem::take(&mut *owing);
                drop(owing);
                return pay_own(all);
            }
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                return pay_own(std::mem::take(&mut *poisoned.into_inner()));
            }
            Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Pays what this process owes of `all` (a forked child leaves its parent's debts alone).
fn pay_own(all: BTreeMap<u64, Ending>) {
    let me = std::process::id();
    all.into_values().filter(|ending| ending.pid == me).for_each(Ending::pay);
}

impl Ending {
    /// Clears the byte, ends the grants, then notifies (Xen's order: the peer woken by the
    /// event sees the byte cleared).
    fn pay(self) {
        let mut event = None;
        if let Some(owed) = self.notify {
            // Removing the record claims the debt; if a survivor took it, it has paid.
            if fs::remove_file(&owed.record).is_ok() {
                if let Some((file, offset)) = &owed.clear {
                    let _ = file.write_all_at(&[0], *offset as u64);
                }
                event = owed.event;
            }
        }
        for file in &self.grant_files {
            let _ = fs::remove_file(file);
        }
        if let Some((root, domid, port)) = event {
            events::signal_from(&Layout { root }, domid, port);
        }
    }
}

/// Pays what dead processes listed in `<dir>/exit/` still owe.
pub(super) fn reap_dead(layout: &Layout) {
    let Ok(entries) = fs::read_dir(layout.exits()) else { return };
    let mut dead: Vec<Owner> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name.to_str().and_then(|name| name.rsplit_once('.')).and_then(|(owner, _)| owner.parse().ok());
        if let Some(owner) = owner {
            if !dead.contains(&owner) && !Owner::alive(&owner) {
                dead.push(owner);
            }
        }
    }
    for owner in dead {
        reap(layout, owner);
    }
}

/// Pays what `owner`, a dead process, still owes.
pub(super) fn reap(layout: &Layout, owner: Owner) {
    if let Ok(_lock) = files::DirLock::acquire(layout) {
        reap_locked(layout, owner);
    }
}

/// [`reap`] with the directory's lock held.
pub(super) fn reap_locked(layout: &Layout, owner: Owner) {
    let Ok(entries) = fs::read_dir(layout.exits()) else { return };
    let prefix = format!("{owner}.");
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(|name| name.starts_with(&prefix)) {
            continue;
        }
        let path = entry.path();
        let Ok(text) = fs::read_to_string(&path) else { continue };
        // Removing the record claims it: exactly one survivor pays.
        if fs::remove_file(&path).is_ok() {
            pay_for_dead(layout, &text);
        }
    }
}

/// Pays one record of a dead process: clears the byte in the page's file (if it is still the
/// page that was mapped: same nonce) and notifies from the dead process's port.
fn pay_for_dead(layout: &Layout, record: &str) {
    let fields = files::fields(record);
    let number = |key: &str| fields.get(key).and_then(|value| value.parse::<u64>().ok());
    if let (Some(granter), Some(gref), Some(offset)) = (number("granter"), number("ref"), number("offset")) {
        let path = layout.grant(granter as DomId, gref as GrantRef);
        if let Ok(file) = OpenOptions::new().read(true).write(true).open(path) {
            let same = grants::read_meta(&file).is_ok_and(|meta| Some(meta.nonce) == number("nonce"));
            if same && (offset as usize) < PAGE_SIZE {
                let _ = file.write_all_at(&[0], offset);
            }
        }
    }
    if let (Some(domain), Some(port)) = (number("domain"), number("port")) {
        events::signal_from(layout, domain as DomId, port as Port);
    }
}
