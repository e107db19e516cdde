//! The node tree of the embedded server: values, children, permissions, generations.
//!
//! A [`Store`] is a map from absolute path to node. Nodes are shared (`Arc`) so a transaction's
//! snapshot is a cheap copy of the map (Xen: "when a transaction is started whole db is
//! copied"). Every change gives the node a fresh generation from one server-wide counter; a
//! node's generation also changes when its children list does, so DIRECTORY is covered.
//!
//! Every operation records what it used in a [`Tracker`]: the generation of each node it looked
//! at (for a transaction's conflict check at commit), the paths it changed (to apply at commit)
//! and the watch events it causes.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::{
    perms::{Access, Permission},
    wire::ErrorCode,
};

/// One node.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) value: Vec<u8>,
    /// Owner (and everybody else's access) first, then per-domain grants.
    pub(crate) perms: Vec<Permission>,
    pub(crate) children: BTreeSet<String>,
    pub(crate) generation: u64,
}

impl Node {
    fn owner(&self) -> u32 {
        self.perms.first().map(|p| p.domid).unwrap_or(0)
    }
}

/// Who is asking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    pub(crate) domid: u32,
    /// dom0: every access allowed, no node quota.
    pub(crate) privileged: bool,
}

/// Limits applied to unprivileged domains (as Xen's xenstored does).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeLimits {
    /// Nodes a domain may own.
    pub(crate) nodes: usize,
    /// Largest value a domain may store.
    pub(crate) entry_size: usize,
}

/// A watch event caused by a change.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    /// The changed path (absolute, or `@name`).
    pub(crate) path: String,
    /// The node's access list, to tell which watchers may see the event.
    pub(crate) perms: Vec<Permission>,
    /// A subtree removal: watches below `path` fire too, with their own path.
    pub(crate) recursive: bool,
}

/// What an operation touched.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Path → generation (None: absent) when first looked at.
    pub(crate) accessed: HashMap<String, Option<u64>>,
    /// Paths created, changed or removed.
    pub(crate) modified: BTreeSet<String>,
    /// Watch events to fire (at once, or at commit for a transaction).
    pub(crate) events: Vec<Event>,
}

/// What a caller may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rights {
    read: bool,
    write: bool,
}

/// Xen's `perm_for_conn`: dom0 and the owner may do anything; a listed domain gets its entry;
/// anyone else gets the first entry's access.
fn rights(caller: Caller, perms: &[Permission]) -> Rights {
    let Some(first) = perms.first() else {
        return Rights { read: caller.privileged, write: caller.privileged };
    };
    if caller.privileged || first.domid == caller.domid {
        return Rights { read: true, write: true };
    }
    let access = perms[1..].iter().find(|p| p.domid == caller.domid).map(|p| p.access).unwrap_or(first.access);
    Rights { read: access.can_read(), write: access.can_write() }
}

/// Whether `caller` may read a node with these permissions (watch event filtering).
pub(crate) fn can_read(caller: Caller, perms: &[Permission]) -> bool {
    rights(caller, perms).read
}

/// Whether `child` is `parent` or below it (Xen's "is a child of", the root being parent of all).
pub(crate) fn is_child(child: &str, parent: &str) -> bool {
    parent == "/"
        || child == parent
        || (child.len() > parent.len() && child.starts_with(parent) && child.as_bytes()[parent.len()] == b'/')
}

/// The parent of an absolute path other than `/`.
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

fn leaf_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The node tree.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    nodes: BTreeMap<String, Arc<Node>>,
    /// Nodes owned, per domain.
    owned: HashMap<u32, usize>,
}

/// Generations come from one counter shared by the store and every transaction snapshot.
pub(crate) struct Generations(u64);

impl Generations {
    pub(crate) fn new() -> Generations {
        Generations(0)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

impl Store {
    /// A store holding `/` (owned by dom0, no access for others), `/local` and `/local/domain`
    /// (readable by all, as on a Xen host).
    pub(crate) fn new(gens: &mut Generations) -> Store {
        let mut store = Store { nodes: BTreeMap::new(), owned: HashMap::new() };
        let mut add = |store: &mut Store, path: &str, perms: Vec<Permission>| {
            let node = Node { value: Vec::new(), perms, children: BTreeSet::new(), generation: gens.next() };
            store.insert(path, node);
            if path != "/" {
                let parent = parent_of(path).to_string();
                if let Some(parent) = store.nodes.get_mut(&parent) {
                    Arc::make_mut(parent).children.insert(leaf_of(path).to_string());
                }
            }
        };
        add(&mut store, "/", vec![Permission::new(0, Access::None)]);
        add(&mut store, "/local", vec![Permission::new(0, Access::Read)]);
        add(&mut store, "/local/domain", vec![Permission::new(0, Access::Read)]);
        store
    }

    fn insert(&mut self, path: &str, node: Node) {
        *self.owned.entry(node.owner()).or_default() += 1;
        if let Some(old) = self.nodes.insert(path.to_string(), Arc::new(node)) {
            self.disown(old.owner());
        }
    }

    fn disown(&mut self, domid: u32) {
        if let Some(count) = self.owned.get_mut(&domid) {
            *count = count.saturating_sub(1);
        }
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes owned by a domain.
    pub(crate) fn owned_by(&self, domid: u32) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn touch(&self, path: &str, tracker: &mut Tracker) {
        if !tracker.accessed.contains_key(path) {
            tracker.accessed.insert(path.to_string(), self.nodes.get(path).map(|n| n.generation));
        }
    }

    fn get(&self, path: &str, tracker: &mut Tracker) -> Option<&Arc<Node>> {
        self.touch(path, tracker);
        self.nodes.get(path)
    }

    /// The node, if it exists and the caller may read it.
    fn readable(&self, caller: Caller, path: &str, tracker: &mut Tracker) -> Result<&Arc<Node>, ErrorCode> {
        let node = self.get(path, tracker).ok_or(ErrorCode::NoEnt)?;
        if !rights(caller, &node.perms).read {
            return Err(ErrorCode::Acces);
        }
        Ok(node)
    }

    /// READ.
    pub(crate) fn read(&self, caller: Caller, path: &str, tracker: &mut Tracker) -> Result<Vec<u8>, ErrorCode> {
        Ok(self.readable(caller, path, tracker)?.value.clone())
    }

    /// DIRECTORY: children leaf names in order, and the node's generation (DIRECTORY_PART).
    pub(crate) fn directory(
        &self,
        caller: Caller,
        path: &str,
        tracker: &mut Tracker,
    ) -> Result<(Vec<String>, u64), ErrorCode> {
        let node = self.readable(caller, path, tracker)?;
        Ok((node.children.iter().cloned().collect(), node.generation))
    }

    /// GET_PERMS.
    pub(crate) fn get_perms(
        &self,
        caller: Caller,
        path: &str,
        tracker: &mut Tracker,
    ) -> Result<Vec<Permission>, ErrorCode> {
        Ok(self.readable(caller, path, tracker)?.perms.clone())
    }

    /// Creates `path` and its missing parents (empty values, the parent's permissions, owned by
    /// the caller when unprivileged). Returns false when it already existed.
    fn create(
        &mut self,
        caller: Caller,
        limits: NodeLimits,
        path: &str,
        gens: &mut Generations,
        tracker: &mut Tracker,
    ) -> Result<bool, ErrorCode> {
        let mut missing = Vec::new();
        let mut cursor = path;
        while self.get(cursor, tracker).is_none() {
            missing.push(cursor);
            cursor = parent_of(cursor);
        }
        if missing.is_empty() {
            return Ok(false);
        }
        let ancestor = cursor.to_string();
        let parent_perms = self.nodes.get(&ancestor).ok_or(ErrorCode::Io)?.perms.clone();
        if !rights(caller, &parent_perms).write {
            return Err(ErrorCode::Acces);
        }
        if !caller.privileged && self.owned_by(caller.domid) + missing.len() > limits.nodes {
            return Err(ErrorCode::NoSpc);
        }
        let mut perms = parent_perms;
        if let (false, Some(owner)) = (caller.privileged, perms.first_mut()) {
            owner.domid = caller.domid;
        }
        let mut parent = ancestor;
        for new in missing.into_iter().rev() {
            let generation = gens.next();
            if let Some(node) = self.nodes.get_mut(&parent) {
                let node = Arc::make_mut(node);
                node.children.insert(leaf_of(new).to_string());
                node.generation = generation;
            }
            tracker.modified.insert(parent.clone());
            let node = Node { value: Vec::new(), perms: perms.clone(), children: BTreeSet::new(), generation };
            self.insert(new, node);
            tracker.modified.insert(new.to_string());
            parent = new.to_string();
        }
        Ok(true)
    }

    /// WRITE: stores the value, creating missing parents.
    pub(crate) fn write(
        &mut self,
        caller: Caller,
        limits: NodeLimits,
        path: &str,
        value: &[u8],
        gens: &mut Generations,
        tracker: &mut Tracker,
    ) -> Result<(), ErrorCode> {
        if !caller.privileged && value.len() > limits.entry_size {
            return Err(ErrorCode::NoSpc);
        }
        if let Some(node) = self.get(path, tracker) {
            if !rights(caller, &node.perms).write {
                return Err(ErrorCode::Acces);
            }
        } else {
            self.create(caller, limits, path, gens, tracker)?;
        }
        let generation = gens.next();
        let node = self.nodes.get_mut(path).ok_or(ErrorCode::Io)?;
        let node = Arc::make_mut(node);
        node.value = value.to_vec();
        node.generation = generation;
        let perms = node.perms.clone();
        tracker.modified.insert(path.to_string());
        tracker.events.push(Event { path: path.to_string(), perms, recursive: false });
        Ok(())
    }

    /// MKDIR: an existing node is left alone (no event), but the caller must be able to write it.
    pub(crate) fn mkdir(
        &mut self,
        caller: Caller,
        limits: NodeLimits,
        path: &str,
        gens: &mut Generations,
        tracker: &mut Tracker,
    ) -> Result<(), ErrorCode> {
        if let Some(node) = self.get(path, tracker) {
            return if rights(caller, &node.perms).write { Ok(()) } else { Err(ErrorCode::Acces) };
        }
        self.create(caller, limits, path, gens, tracker)?;
        let perms = self.nodes.get(path).ok_or(ErrorCode::Io)?.perms.clone();
        tracker.events.push(Event { path: path.to_string(), perms, recursive: false });
        Ok(())
    }

    /// RM: removes the node and its subtree. A missing node is fine when its parent exists.
    pub(crate) fn rm(
        &mut self,
        caller: Caller,
        path: &str,
        gens: &mut Generations,
        tracker: &mut Tracker,
    ) -> Result<(), ErrorCode> {
        if path == "/" {
            return Err(ErrorCode::Inval);
        }
        let Some(node) = self.get(path, tracker) else {
            return match self.get(parent_of(path), tracker) {
                Some(_) => Ok(()),
                None => Err(ErrorCode::NoEnt),
            };
        };
        if !rights(caller, &node.perms).write {
            return Err(ErrorCode::Acces);
        }
        let perms = node.perms.clone();
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for victim in below.iter().map(String::as_str).chain([path]) {
            self.touch(victim, tracker);
            if let Some(old) = self.nodes.remove(victim) {
                self.disown(old.owner());
            }
            tracker.modified.insert(victim.to_string());
        }
        let parent = parent_of(path).to_string();
        self.touch(&parent, tracker);
        let generation = gens.next();
        if let Some(node) = self.nodes.get_mut(&parent) {
            let node = Arc::make_mut(node);
            node.children.remove(leaf_of(path));
            node.generation = generation;
        }
        tracker.modified.insert(parent);
        tracker.events.push(Event { path: path.to_string(), perms, recursive: true });
        Ok(())
    }

    /// SET_PERMS: the caller must be able to write the node; a guest may not give it away.
    pub(crate) fn set_perms(
        &mut self,
        caller: Caller,
        path: &str,
        perms: Vec<Permission>,
        gens: &mut Generations,
        tracker: &mut Tracker,
    ) -> Result<(), ErrorCode> {
        let node = self.get(path, tracker).ok_or(ErrorCode::NoEnt)?;
        if !rights(caller, &node.perms).write {
            return Err(ErrorCode::Acces);
        }
        let old_owner = node.owner();
        let new_owner = perms.first().map(|p| p.domid).ok_or(ErrorCode::Inval)?;
        if !caller.privileged && new_owner != old_owner {
            return Err(ErrorCode::Perm);
        }
        let generation = gens.next();
        let node = Arc::make_mut(self.nodes.get_mut(path).ok_or(ErrorCode::Io)?);
        node.perms = perms.clone();
        node.generation = generation;
        self.disown(old_owner);
        *self.owned.entry(new_owner).or_default() += 1;
        tracker.modified.insert(path.to_string());
        // Watchers who may read the node under its new access list hear about it.
        tracker.events.push(Event { path: path.to_string(), perms, recursive: false });
        Ok(())
    }

    /// Whether every node a transaction looked at is unchanged here.
    pub(crate) fn unchanged(&self, accessed: &HashMap<String, Option<u64>>) -> bool {
        accessed.iter().all(|(path, generation)| self.nodes.get(path).map(|n| n.generation) == *generation)
    }

    /// Copies the modified paths of a transaction's snapshot into this store.
    pub(crate) fn apply(&mut self, snapshot: &Store, modified: &BTreeSet<String>) {
        for path in modified {
            if let Some(old) = self.nodes.remove(path) {
                self.disown(old.owner());
            }
            if let Some(node) = snapshot.nodes.get(path) {
                *self.owned.entry(node.owner()).or_default() += 1;
                self.nodes.insert(path.clone(), node.clone());
            }
        }
    }

    /// Makes sure a domain's home exists and belongs to it (dom0's belongs to dom0), and writes
    /// `<home>/domid` with the domain's id, owned by dom0 and readable by the domain, as Xen's
    /// toolstack does: a guest learns its own id by reading the relative path `domid`
    /// (libxenvchan's server does). Returns the watch events of what changed.
    pub(crate) fn ensure_home(&mut self, domid: u32, gens: &mut Generations) -> Vec<Event> {
        let home = format!("/local/domain/{domid}");
        let dom0 = Caller { domid: 0, privileged: true };
        let limits = NodeLimits { nodes: usize::MAX, entry_size: usize::MAX };
        let mut tracker = Tracker::default();
        let perms = vec![Permission::new(domid, Access::None)];
        if self.get(&home, &mut tracker).is_none() && self.mkdir(dom0, limits, &home, gens, &mut tracker).is_ok() {
            let _ = self.set_perms(dom0, &home, perms, gens, &mut tracker);
        }
        let path = format!("{home}/domid");
        let mut perms = vec![Permission::new(0, Access::None)];
        if domid != 0 {
            perms.push(Permission::new(domid, Access::Read));
        }
        let value = domid.to_string();
        let current = self.nodes.get(&path);
        if current.is_none_or(|node| node.value != value.as_bytes() || node.perms != perms) {
            let _ = self.write(dom0, limits, &path, value.as_bytes(), gens, &mut tracker);
            let _ = self.set_perms(dom0, &path, perms, gens, &mut tracker);
        }
        tracker.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM0: Caller = Caller { domid: 0, privileged: true };
    const DOM5: Caller = Caller { domid: 5, privileged: false };
    const LIMITS: NodeLimits = NodeLimits { nodes: 4, entry_size: 8 };

    #[test]
    fn children_and_parents() {
        assert!(is_child("/a/b", "/a"));
        assert!(is_child("/a", "/a"));
        assert!(is_child("/a", "/"));
        assert!(!is_child("/ab", "/a"));
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
    }

    #[test]
    fn write_creates_parents_and_rm_removes_subtree() {
        let mut gens = Generations::new();
        let mut store = Store::new(&mut gens);
        let mut t = Tracker::default();
        store.write(DOM0, LIMITS, "/a/b/c", b"v", &mut gens, &mut t).unwrap();
        assert_eq!(store.read(DOM0, "/a/b", &mut t).unwrap(), b"");
        assert_eq!(store.directory(DOM0, "/a", &mut t).unwrap().0, vec!["b"]);
        store.rm(DOM0, "/a/b", &mut gens, &mut t).unwrap();
        assert_eq!(store.read(DOM0, "/a/b/c", &mut t), Err(ErrorCode::NoEnt));
        assert!(store.directory(DOM0, "/a", &mut t).unwrap().0.is_empty());
        assert_eq!(store.rm(DOM0, "/a/x", &mut gens, &mut t), Ok(()));
        assert_eq!(store.rm(DOM0, "/x/y", &mut gens, &mut t), Err(ErrorCode::NoEnt));
        assert_eq!(store.rm(DOM0, "/", &mut gens, &mut t), Err(ErrorCode::Inval));
    }

    #[test]
    fn guest_rights_and_quotas() {
        let mut gens = Generations::new();
        let mut store = Store::new(&mut gens);
        store.ensure_home(5, &mut gens);
        let mut t = Tracker::default();
        assert_eq!(store.write(DOM5, LIMITS, "/secret", b"x", &mut gens, &mut t), Err(ErrorCode::Acces));
        store.write(DOM5, LIMITS, "/local/domain/5/a", b"x", &mut gens, &mut t).unwrap();
        assert_eq!(store.get_perms(DOM5, "/local/domain/5/a", &mut t).unwrap()[0].domid, 5);
        assert_eq!(
            store.write(DOM5, LIMITS, "/local/domain/5/b", b"123456789", &mut gens, &mut t),
            Err(ErrorCode::NoSpc)
        );
        // Owns home + a; two more fit, a third does not.
        store.write(DOM5, LIMITS, "/local/domain/5/b/c", b"", &mut gens, &mut t).unwrap();
        assert_eq!(store.mkdir(DOM5, LIMITS, "/local/domain/5/d", &mut gens, &mut t), Err(ErrorCode::NoSpc));
        store.rm(DOM5, "/local/domain/5/b", &mut gens, &mut t).unwrap();
        store.mkdir(DOM5, LIMITS, "/local/domain/5/d", &mut gens, &mut t).unwrap();
        let give_away = vec![Permission::new(7, Access::Both)];
        assert_eq!(store.set_perms(DOM5, "/local/domain/5/d", give_away, &mut gens, &mut t), Err(ErrorCode::Perm));
        assert_eq!(store.read(DOM5, "/", &mut t), Err(ErrorCode::Acces));
    }
}
