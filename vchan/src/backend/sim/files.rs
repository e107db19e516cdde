//! The directory's files: owners, records published atomically, numbers allocated by exclusive
//! `link`, and the lock under which a dead owner's leftovers are reclaimed.

use std::{
    collections::HashMap,
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    str::FromStr,
    sync::OnceLock,
};

use super::{exit, ffi, Layout};

/// A process that owns records: its pid and start time (clock ticks after boot, field 22 of
/// `/proc/<pid>/stat`), which tells a reused pid apart. Written `<pid>.<start>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Owner {
    pub(super) pid: u32,
    pub(super) start: u64,
}

impl Owner {
    /// This process (read once; a forked child reads its own).
    pub(super) fn current() -> io::Result<Owner> {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        let pid = std::process::id();
        match CURRENT.get() {
            Some(owner) if owner.pid == pid => Ok(*owner),
            _ => {
                let owner = Owner::of(pid).ok_or_else(|| {
                    ffi::error(libc::ENOSYS, "cannot read this process's start time from /proc/self/stat".into())
                })?;
                let _ = CURRENT.set(owner);
                Ok(owner)
            }
        }
    }

    /// Process `pid` as it is now, if it exists and has not exited (a zombie has).
    fn of(pid: u32) -> Option<Owner> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name, in parentheses, may hold anything: the fields follow the last ')'.
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = fields.next()?;
        if matches!(state, "Z" | "X" | "x") {
            return None;
        }
        // `state` is field 3; the start time is field 22.
        let start = fields.nth(22 - 4)?.parse().ok()?;
        Some(Owner { pid, start })
    }

    /// Whether the process still runs.
    pub(super) fn alive(&self) -> bool {
        Owner::of(self.pid) == Some(*self)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pid, self.start)
    }
}

impl FromStr for Owner {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (pid, start) = s.split_once('.').ok_or(())?;
        Ok(Owner { pid: pid.parse().map_err(|_| ())?, start: start.parse().map_err(|_| ())? })
    }
}

/// A record's `key=value` fields, separated by white space (no value holds any).
pub(super) fn fields(text: &str) -> HashMap<&str, &str> {
    text.split_whitespace().filter_map(|field| field.split_once('=')).collect()
}

/// Field `key` of `fields` parsed, or an `EINVAL` naming `what` was malformed.
pub(super) fn field<T: FromStr>(fields: &HashMap<&str, &str>, key: &str, what: &Path) -> io::Result<T> {
    fields
        .get(key)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| ffi::error(libc::EINVAL, format!("{}: no valid {key}= field", what.display())))
}

/// `error` with `what` in front of its message (the errno kept).
pub(super) fn context(error: io::Error, what: &str) -> io::Error {
    ffi::error(ffi::errno_of(&error), format!("{what}: {error}"))
}

/// 16 random hex digits, for names no other process picks.
pub(super) fn random_hex() -> String {
    format!("{:016x}", random_u64())
}

/// A random number from the kernel (`getrandom`), falling back to the time and pid.
pub(super) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: `bytes` is valid for 8 bytes of writes.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == 8 {
        return u64::from_ne_bytes(bytes);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)
}

/// Creates a new file in `dir` under a random name (mode 0600, close-on-exec), for contents to
/// be written before it is published.
pub(super) fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    let path = dir.join(format!(".new-{}", random_hex()));
    let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
    Ok((file, path))
}

/// Writes `contents` as the record at `target`, replacing what is there, atomically.
pub(super) fn replace(target: &Path, contents: &str) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let (mut file, temp) = create_temp(dir)?;
    let written = file.write_all(contents.as_bytes()).and_then(|()| fs::rename(&temp, target));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Creates `dir` (and its parents) if missing, itself with mode 0700.
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(error) => Err(context(error, &format!("cannot create {}", dir.display()))),
    }
}

/// Refuses `dir` unless this user owns it (the default directory is in `/tmp`, where another
/// user could have made it first).
pub(super) fn check_owned(dir: &Path) -> io::Result<()> {
    let metadata = fs::metadata(dir)?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        return Err(ffi::error(
            libc::EPERM,
            format!(
                "{} belongs to uid {}, not to this user ({me}): set {}",
                dir.display(),
                metadata.uid(),
                super::DIR_VAR
            ),
        ));
    }
    Ok(())
}

/// Publishes the file at `temp` under the first free number of `dir` in `range`, looking from
/// `hint` on and wrapping around: `link` fails on a taken name, so concurrent allocators never
/// collide. A name held by a dead owner (`owner_of` reads it) is reclaimed. `ENOSPC` when every
/// number is taken.
pub(super) fn allocate(
    layout: &Layout,
    dir: &Path,
    temp: &Path,
    range: (u32, u32),
    hint: u32,
    owner_of: impl Fn(&Path) -> Option<Owner>,
) -> io::Result<u32> {
    let (first, last) = range;
    let hint = hint.clamp(first, last);
    let mut alive: HashMap<Owner, bool> = HashMap::new();
    let mut candidates = (hint..=last).chain(first..hint);
    let mut n = candidates.next();
    while let Some(number) = n {
        let path = dir.join(number.to_string());
        match fs::hard_link(temp, &path) {
            Ok(()) => return Ok(number),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let owner = owner_of(&path);
                let dead = owner.is_some_and(|owner| !*alive.entry(owner).or_insert_with(|| owner.alive()));
                if dead && reclaim(layout, &path, &owner_of)? {
                    continue; // the same number again
                }
            }
            Err(error) => return Err(context(error, &format!("cannot create {}", path.display()))),
        }
        n = candidates.next();
    }
    Err(ffi::error(libc::ENOSPC, format!("{}: every number from {first} to {last} is taken", dir.display())))
}

/// Removes the record at `path` if its owner is dead, after performing what that owner still
/// owed (its unmap notifies may need its records). Whether the name is free now.
pub(super) fn reclaim(layout: &Layout, path: &Path, owner_of: &dyn Fn(&Path) -> Option<Owner>) -> io::Result<bool> {
    let _lock = DirLock::acquire(layout)?;
    // Read again under the lock: the record may have been reclaimed and taken meanwhile.
    let Some(owner) = owner_of(path) else { return Ok(!path.exists()) };
    if owner.alive() {
        return Ok(false);
    }
    exit::reap_locked(layout, owner);
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(context(error, &format!("cannot remove {} of dead process {owner}", path.display()))),
    }
}

/// The owner named by the `owner=` field of the text record at `path`.
pub(super) fn record_owner(path: &Path) -> Option<Owner> {
    fields(&fs::read_to_string(path).ok()?).get("owner")?.parse().ok()
}

/// An exclusive `flock` of `<dir>/lock`, held while a dead owner's records are reclaimed.
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(super) fn acquire(layout: &Layout) -> io::Result<DirLock> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(layout.lock())?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock { _file: file });
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(context(error, &format!("cannot lock {}", layout.lock().display())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let me = Owner::current().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(me.alive());
        assert_eq!(me.to_string().parse::<Owner>(), Ok(me));
        assert!(!Owner { start: me.start + 1, ..me }.alive(), "a reused pid is another process");
        assert!(!Owner { pid: u32::MAX, start: 1 }.alive());
        assert_eq!("12".parse::<Owner>(), Err(()));
    }

    #[test]
    fn record_fields() {
        let f = fields("owner=1.2 remote=5  peer=3\n");
        assert_eq!(f.get("remote"), Some(&"5"));
        assert_eq!(field::<u16>(&f, "peer", Path::new("x")).unwrap(), 3);
        assert!(field::<u16>(&f, "sock", Path::new("x")).unwrap_err().to_string().contains("sock="));
    }
}
