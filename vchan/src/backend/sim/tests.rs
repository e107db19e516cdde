//! Two (or three) domains in one process, over a temporary directory.

use std::{fs, io, path::Path};

use super::*;
use crate::backend::PAGE_SIZE;

struct Domains {
    dir: tempfile::TempDir,
    dom0: SimBackend,
    dom5: SimBackend,
}

fn domains() -> Domains {
    let dir = tempfile::tempdir().unwrap();
    let dom0 = SimBackend::new(dir.path(), 0).unwrap();
    let dom5 = SimBackend::new(dir.path(), 5).unwrap();
    Domains { dir, dom0, dom5 }
}

fn get(mapping: &dyn Mapping, i: usize) -> u8 {
    assert!(i < mapping.len());
    // SAFETY: inside the live mapping.
    unsafe { mapping.as_ptr().add(i).read_volatile() }
}

fn set(mapping: &dyn Mapping, i: usize, value: u8) {
    assert!(i < mapping.len());
    // SAFETY: inside the live, writable mapping.
    unsafe { mapping.as_ptr().add(i).write_volatile(value) }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A connected pair of ports: dom0's unbound for 5, dom5's bound to it.
fn connected(d: &Domains) -> (SimEventChannel, Port, SimEventChannel, Port) {
    let ev0 = d.dom0.open_channel(true).unwrap();
    let ev5 = d.dom5.open_channel(true).unwrap();
    let p0 = ev0.bind_unbound(5).unwrap();
    let p5 = ev5.bind_interdomain(0, p0).unwrap();
    assert_eq!(ev0.pending().unwrap(), None, "the connection itself is no event");
    (ev0, p0, ev5, p5)
}

fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd, no waiting.
    unsafe { libc::poll(&mut poll, 1, 0) == 1 }
}

#[test]
fn share_and_map_see_the_same_bytes_both_ways() {
    let d = domains();
    let shared = d.dom0.share(5, 2, true, None).unwrap();
    assert_eq!(shared.len(), 2 * PAGE_SIZE);
    assert!(shared.refs().iter().all(|&gref| gref >= FIRST_REF), "refs 0-7 are Xen's: {:?}", shared.refs());
    assert!((0..shared.len()).all(|i| get(shared.as_ref(), i) == 0), "shared pages start zeroed");
    let mapped = d.dom5.map(0, shared.refs(), true, None).unwrap();
    set(shared.as_ref(), PAGE_SIZE + 7, 0xa5);
    assert_eq!(get(mapped.as_ref(), PAGE_SIZE + 7), 0xa5);
    set(mapped.as_ref(), 3, 0x5a);
    assert_eq!(get(shared.as_ref(), 3), 0x5a);
    // Unsharing ends the grant, but the peer's mapping stays valid, as on Xen.
    let refs = shared.refs().to_vec();
    drop(shared);
    assert_eq!(get(mapped.as_ref(), 3), 0x5a);
    let again = d.dom5.map(0, &refs[..1], true, None).unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::NotFound, "{again}");
    assert_eq!(ffi::errno_of(&again), libc::ENOENT);
}

#[test]
fn refs_map_in_the_order_given() {
    let d = domains();
    let pages: Vec<SimMapping> =
        (0..3).map(|_| d.dom0.share_pages(5, 1, true, SimNotify::default()).unwrap()).collect();
    for (i, page) in pages.iter().enumerate() {
        set(page, 0, i as u8 + 1);
    }
    let order = [pages[2].refs()[0], pages[0].refs()[0], pages[1].refs()[0]];
    let mapped = d.dom5.map(0, &order, false, None).unwrap();
    let seen: Vec<u8> = (0..3).map(|i| get(mapped.as_ref(), i * PAGE_SIZE)).collect();
    assert_eq!(seen, [3, 1, 2]);
    assert_eq!(mapped.refs(), order);
}

#[test]
fn only_the_grantee_maps_and_read_only_is_honoured() {
    let d = domains();
    let dom7 = SimBackend::new(d.dir.path(), 7).unwrap();
    let shared = d.dom0.share(5, 1, false, None).unwrap();
    let error = dom7.map(0, shared.refs(), false, None).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("is for domain 5, not domain 7"), "{error}");

    let error = d.dom5.map(0, shared.refs(), true, None).unwrap_err();
    assert_eq!(ffi::errno_of(&error), libc::EPERM);
    assert!(error.to_string().contains("read-only"), "{error}");
    let mapped = d.dom5.map(0, shared.refs(), false, None).unwrap();
    set(shared.as_ref(), 9, 9);
    assert_eq!(get(mapped.as_ref(), 9), 9);
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|line| line.starts_with(&format!("{:x}-", mapped.as_ptr() as usize))).unwrap();
    assert!(line.split_whitespace().nth(1).unwrap().starts_with("r--s"), "mapped read-only: {line}");

    // Grant copies obey the same checks.
    let mut buf = [0u8; 2];
    d.dom5.copy_from_grant(0, shared.refs()[0], 8, &mut buf).unwrap();
    assert_eq!(buf, [0, 9]);
    assert_eq!(d.dom5.copy_to_grant(0, shared.refs()[0], 8, &buf).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(
        dom7.copy_from_grant(0, shared.refs()[0], 0, &mut buf).unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert_eq!(ffi::errno_of(&d.dom5.copy_from_grant(0, shared.refs()[0], 4095, &mut buf).unwrap_err()), libc::EINVAL);
}

#[test]
fn unmap_notify_clears_the_byte_and_notifies_on_drop() {
    let d = domains();
    let (ev0, p0, ev5, p5) = connected(&d);
    let shared = d.dom0.share(5, 1, true, Some(UnmapNotify { offset: 100, port: p0 })).unwrap();
    let mapped = d.dom5.map(0, shared.refs(), true, Some(UnmapNotify { offset: 101, port: p5 })).unwrap();
    let watcher = d.dom5.map(0, shared.refs(), true, None).unwrap();
    set(shared.as_ref(), 100, 1);
    set(shared.as_ref(), 101, 1);

    drop(mapped);
    assert_eq!(get(shared.as_ref(), 101), 0, "the mapper's byte is cleared");
    assert_eq!(get(shared.as_ref(), 100), 1);
    assert!(readable(ev0.fd()));
    assert_eq!(ev0.pending().unwrap(), Some(p0));
    ev0.unmask(p0).unwrap();

    drop(shared);
    assert_eq!(get(watcher.as_ref(), 100), 0, "the granter's byte is cleared");
    assert_eq!(ev5.pending().unwrap(), Some(p5));
    assert_eq!(ev5.pending().unwrap(), None);
}

#[test]
fn a_delivered_port_stays_masked_until_unmasked() {
    let d = domains();
    let (ev0, p0, ev5, p5) = connected(&d);
    assert!(!readable(ev0.fd()));
    ev5.notify(p5).unwrap();
    ev5.notify(p5).unwrap(); // coalesced with the first: still pending
    assert!(readable(ev0.fd()));
    assert_eq!(ev0.pending().unwrap(), Some(p0));
    assert_eq!(ev0.pending().unwrap(), None);

    ev5.notify(p5).unwrap();
    assert_eq!(ev0.pending().unwrap(), None, "masked: held, not delivered");
    assert!(!readable(ev0.fd()));
    ev0.unmask(p0).unwrap();
    assert!(readable(ev0.fd()), "the held notification makes the descriptor readable");
    assert_eq!(ev0.pending().unwrap(), Some(p0));
    ev0.unmask(p0).unwrap();
    assert_eq!(ev0.pending().unwrap(), None, "delivered once");

    // And the other way.
    ev0.notify(p0).unwrap();
    assert_eq!(ev5.pending().unwrap(), Some(p5));
    ev5.unmask(p5).unwrap();
    ev0.unmask(12345).unwrap(); // unknown ports are ignored, as by Linux's driver
    assert_eq!(ffi::errno_of(&ev0.notify(12345).unwrap_err()), libc::ENOTCONN);
}

#[test]
fn bind_interdomain_checks_the_domain_and_the_port() {
    let d = domains();
    let dom7 = SimBackend::new(d.dir.path(), 7).unwrap();
    let ev0 = d.dom0.open_channel(true).unwrap();
    let ev5 = d.dom5.open_channel(true).unwrap();
    let ev7 = dom7.open_channel(true).unwrap();
    let p0 = ev0.bind_unbound(5).unwrap();
    assert_eq!(p0, 1, "ports start at 1");

    let error = ev7.bind_interdomain(0, p0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("for domain 5 to connect to, not domain 7"), "{error}");
    assert_eq!(ffi::errno_of(&ev5.bind_interdomain(0, p0 + 1).unwrap_err()), libc::EINVAL);

    let p5 = ev5.bind_interdomain(0, p0).unwrap();
    let error = ev5.bind_interdomain(0, p0).unwrap_err();
    assert!(error.to_string().contains("already connected"), "{error}");

    ev7.restrict(0);
    assert_eq!(ev7.bind_unbound(5).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    ev7.bind_unbound(0).unwrap();

    ev5.unbind(p5).unwrap();
    assert_eq!(ffi::errno_of(&ev5.unbind(p5).unwrap_err()), libc::ENOTCONN);
}

#[test]
fn an_event_sent_just_before_its_sender_unbound_is_delivered() {
    // A loaded receiver reads the connection's hello and the event only after the sender has
    // notified and unbound (which puts the receiver's port back to unbound): the event must
    // still come through, or a vchan server waiting for its client's close waits forever.
    let d = domains();
    let ev0 = d.dom0.open_channel(true).unwrap();
    let ev5 = d.dom5.open_channel(true).unwrap();
    let p0 = ev0.bind_unbound(5).unwrap();
    let p5 = ev5.bind_interdomain(0, p0).unwrap();
    ev5.notify(p5).unwrap();
    ev5.unbind(p5).unwrap();
    assert_eq!(ev0.pending().unwrap(), Some(p0));
    // And the port can be bound again by the same domain.
    let again = d.dom5.open_channel(true).unwrap();
    again.bind_interdomain(0, p0).expect("the port is unbound again");
}

#[test]
fn a_notify_to_a_peer_gone_is_lost_not_an_error() {
    let d = domains();
    let (ev0, p0, ev5, _p5) = connected(&d);
    drop(ev5);
    ev0.notify(p0).unwrap();
    ev0.notify(p0).unwrap();
}

#[test]
fn nothing_is_left_behind() {
    let d = domains();
    {
        let (ev0, p0, ev5, p5) = connected(&d);
        let shared = d.dom0.share(5, 3, true, Some(UnmapNotify { offset: 0, port: p0 })).unwrap();
        let _mapped = d.dom5.map(0, shared.refs(), true, Some(UnmapNotify { offset: 1, port: p5 })).unwrap();
        assert_eq!(names(&d.dir.path().join("dom0/gnt")).len(), 3);
        assert_eq!(names(&d.dir.path().join("exit")).len(), 2, "two unmap notifies owed");
        drop((ev0, ev5));
    }
    assert_eq!(names(&d.dir.path().join("dom0/gnt")), Vec::<String>::new());
    assert_eq!(names(&d.dir.path().join("dom0/evtchn")), ["pending"]);
    assert_eq!(names(&d.dir.path().join("dom5/evtchn")), ["pending"]);
    assert_eq!(names(&d.dir.path().join("exit")), Vec::<String>::new());
}

#[test]
fn what_a_dead_process_owed_is_paid_and_its_records_reclaimed() {
    let d = domains();
    let (ev0, p0, _ev5, p5) = connected(&d);
    let shared = d.dom0.share_pages(5, 1, true, SimNotify::default()).unwrap();
    set(&shared, 42, 1);
    // A process that died owing an unmap notify on dom5's port (as if it had been killed).
    let dead = files::Owner { pid: u32::MAX - 1, start: 1 };
    let nonce =
        grants::read_meta(&fs::File::open(d.dir.path().join(format!("dom0/gnt/{}", shared.refs()[0]))).unwrap())
            .unwrap()
            .nonce;
    let record = format!("granter=0 ref={} nonce={nonce} offset=42 domain=5 port={p5}\n", shared.refs()[0]);
    fs::write(d.dir.path().join(format!("exit/{dead}.0123")), record).unwrap();
    // The next backend opened over the directory pays it.
    let _dom9 = SimBackend::new(d.dir.path(), 9).unwrap();
    assert_eq!(get(&shared, 42), 0);
    assert_eq!(ev0.pending().unwrap(), Some(p0));
    assert_eq!(names(&d.dir.path().join("exit")), Vec::<String>::new());

    // A grant and a port left by a dead process are taken over by the next allocation.
    let meta = format!("grantee=5 writable=1 owner={dead} nonce=1\n");
    let stale_ref = shared.refs()[0] + 1;
    fs::write(d.dir.path().join(format!("dom0/gnt/{stale_ref}")), [vec![0u8; PAGE_SIZE], meta.into_bytes()].concat())
        .unwrap();
    d.dom0.inner.next_ref.store(FIRST_REF, std::sync::atomic::Ordering::Relaxed);
    let fresh = d.dom0.share_pages(5, 1, true, SimNotify::default()).unwrap();
    assert_eq!(fresh.refs(), [stale_ref], "the live grant is skipped, the dead one's taken over");
    fs::write(d.dir.path().join("dom5/evtchn/2"), format!("owner={dead} remote=0 sock=00\n")).unwrap();
    let ev5 = d.dom5.open_channel(true).unwrap();
    assert_eq!(ev5.bind_unbound(0).unwrap(), 2);
}

#[test]
fn concurrent_allocations_never_collide() {
    let d = domains();
    let ports: Vec<Port> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let ev = d.dom0.open_channel(true).unwrap();
                    let ports: Vec<Port> = (0..16).map(|_| ev.bind_unbound(5).unwrap()).collect();
                    std::mem::forget(ev); // keep the records for the check below
                    ports
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
    });
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 64, "{ports:?}");
}

#[test]
fn domain_ids_from_the_environment() {
    assert_eq!(parse_domid(None).unwrap(), 0);
    assert_eq!(parse_domid(Some("5".into())).unwrap(), 5);
    for bad in ["five", "-1", "32752", ""] {
        let error = parse_domid(Some(bad.into())).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().starts_with(&format!("VPROTO_SIM_DOMID={bad:?}")), "{error}");
    }
    assert!(SimBackend::new("/tmp/unused", MAX_DOMID + 1).is_err());
}
