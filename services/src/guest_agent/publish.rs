//! Publishing a data tree to Xenstore: one transaction per update, stale entries removed,
//! nothing written outside the layout's owned roots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use vproto_xenstore::{wire, Transaction, Xenstore, XsError, DEFAULT_TX_ATTEMPTS};

/// Why an update was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The layout produced a path outside its owned roots, or one Xenstore would not accept.
    /// Nothing of the update was written.
    #[error("refusing to publish {path:?}: {reason}")]
    Refused {
        /// The offending path, relative to the domain home.
        path: String,
        /// Why.
        reason: String,
    },
    /// Xenstore failed (after retrying `EAGAIN` conflicts).
    #[error("Xenstore: {0}")]
    Xenstore(#[from] XsError),
}

impl PublishError {
    /// True when the connection is gone and the caller should reconnect and republish.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, PublishError::Xenstore(error) if error.is_disconnect())
    }
}

/// What one transaction changes: subtrees removed first, then values written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Topmost stale nodes (absolute or home-relative paths), each removed with its subtree.
    pub removes: Vec<String>,
    /// Nodes whose value is new or changed.
    pub writes: Vec<(String, String)>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.removes.is_empty() && self.writes.is_empty()
    }
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|at| &path[..at])
}

/// Computes the changes that turn `existing` (nodes under the roots, path → value) into
/// `desired` (leaves, path → value). A node is kept when it is desired or an ancestor of a
/// desired leaf; every other node is stale and removed through its topmost stale ancestor
/// that is still inside a root.
pub fn plan(existing: &BTreeMap<String, String>, desired: &BTreeMap<String, String>, roots: &[String]) -> Plan {
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for path in desired.keys() {
        let mut at = Some(path.as_str());
        while let Some(node) = at {
            if !keep.insert(node) {
                break;
            }
            at = parent(node);
        }
    }
    let inside_roots = |node: &str| roots.iter().any(|root| within(node, root));
    let mut removes: BTreeSet<String> = BTreeSet::new();
    for node in existing.keys().filter(|node| !keep.contains(node.as_str())) {
        let mut top = node.as_str();
        while let Some(up) = parent(top) {
            if keep.contains(up) || !inside_roots(up) {
                break;
            }
            top = up;
        }
        removes.insert(top.to_string());
    }
    // Drop removals already covered by a removed ancestor.
    let removes: Vec<String> = removes
        .iter()
        .filter(|node| {
            let mut at = parent(node);
            while let Some(up) = at {
                if removes.contains(up) {
                    return false;
                }
                at = parent(up);
            }
            true
        })
        .cloned()
        .collect();
    let writes = desired
        .iter()
        .filter(|(path, value)| existing.get(*path) != Some(*value))
        .map(|(path, value)| (path.clone(), value.clone()))
        .collect();
    Plan { removes, writes }
}

/// Whether `path` is `root` or below it.
fn within(path: &str, root: &str) -> bool {
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// Checks that a home-relative path is under one of the owned roots, has no empty, `.` or `..`
/// segment, and is a path Xenstore accepts. The layout mangles every name it builds a path
/// from, so a failure here is a bug in a layout; it is refused all the same, whatever an
/// interface is named.
pub fn check_owned(path: &str, roots: &[&str]) -> Result<(), PublishError> {
    let refuse = |reason: String| Err(PublishError::Refused { path: path.to_string(), reason });
    if path.starts_with('/') {
        return refuse("absolute; layouts give paths relative to the domain home".into());
    }
    if path.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return refuse("empty, `.` or `..` path segment".into());
    }
    if !roots.iter().any(|root| within(path, root)) {
        return refuse(format!("outside the layout's owned roots {roots:?}"));
    }
    if let Err(reason) = wire::check_path(path.as_bytes(), false) {
        return refuse(format!("not a valid Xenstore path: {reason}"));
    }
    Ok(())
}

/// Publishes successive states of one data tree to one Xenstore connection.
///
/// The first update after [`Publisher::new`] reads what is under the owned roots (inside the
/// transaction) and corrects all of it: leftovers of an earlier run, or a Xenstore that
/// restarted empty. Later updates diff against what the previous commit wrote.
#[derive(Debug)]
pub struct Publisher {
    base: String,
    owned: Vec<String>,
    roots: Vec<String>,
    published: Option<BTreeMap<String, String>>,
}

impl Publisher {
    /// A publisher writing under `domain_path` (absolute, such as `/local/domain/7`; `None`
    /// for paths relative to the connection's own domain home) into the layout's `roots`.
    pub fn new(domain_path: Option<&str>, roots: &[&str]) -> Result<Self, PublishError> {
        let base = match domain_path {
            None => String::new(),
            Some(path) => {
                let trimmed = path.trim_end_matches('/');
                if !trimmed.starts_with('/') || trimmed.is_empty() {
                    return Err(PublishError::Refused {
                        path: path.to_string(),
                        reason: "the domain path must be absolute, such as /local/domain/7".into(),
                    });
                }
                if let Err(reason) = wire::check_path(trimmed.as_bytes(), false) {
                    return Err(PublishError::Refused {
                        path: path.to_string(),
                        reason: format!("not a valid Xenstore path: {reason}"),
                    });
                }
                trimmed.to_string()
            }
        };
        for root in roots {
            check_owned(root, roots)?;
        }
        let mut publisher = Publisher {
            base,
            owned: roots.iter().map(|root| root.to_string()).collect(),
            roots: Vec::new(),
            published: None,
        };
        publisher.roots = roots.iter().map(|root| publisher.full(root)).collect();
        Ok(publisher)
    }

    fn full(&self, relative: &str) -> String {
        if self.base.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.base)
        }
    }

    /// The absolute (or home-relative) paths of the owned roots.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// Forgets what was published: the next update reads the tree back first. Called after a
    /// reconnection.
    pub fn reset(&mut self) {
        self.published = None;
    }

    /// Publishes `desired` (home-relative leaf paths → values) in one transaction, retried on
    /// `EAGAIN`. Every path is checked with [`check_owned`] before anything is sent. Returns the
    /// number of nodes removed and written.
    pub async fn publish(
        &mut self,
        xs: &Xenstore,
        desired: &BTreeMap<String, String>,
    ) -> Result<(usize, usize), PublishError> {
        let owned: Vec<&str> = self.owned.iter().map(String::as_str).collect();
        for path in desired.keys() {
            check_owned(path, &owned)?;
        }
        let desired: BTreeMap<String, String> =
            desired.iter().map(|(path, value)| (self.full(path), value.clone())).collect();
        let desired = Arc::new(desired);
        let roots = Arc::new(self.roots.clone());
        let known = self.published.clone().map(Arc::new);
        let counts = xs
            .transact(DEFAULT_TX_ATTEMPTS, |tx| {
                let (desired, roots, known) = (desired.clone(), roots.clone(), known.clone());
                Box::pin(async move {
                    let existing = match known {
                        Some(known) => known,
                        None => Arc::new(read_subtrees(tx, &roots).await?),
                    };
                    let plan = plan(&existing, &desired, &roots);
                    for path in &plan.removes {
                        match tx.rm(path).await {
                            Ok(()) | Err(XsError::NoEntry) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    for (path, value) in &plan.writes {
                        tx.write(path, value.as_bytes()).await?;
                    }
                    Ok((plan.removes.len(), plan.writes.len()))
                })
            })
            .await?;
        self.published = Some(Arc::unwrap_or_clone(desired));
        Ok(counts)
    }
}

/// Every node under the roots (roots included when they exist), path → value.
async fn read_subtrees(tx: &Transaction, roots: &[String]) -> Result<BTreeMap<String, String>, XsError> {
    let mut nodes = BTreeMap::new();
    let mut pending: Vec<String> = roots.to_vec();
    while let Some(path) = pending.pop() {
        let value = match tx.read(&path).await {
            Ok(value) => value,
            Err(XsError::NoEntry) => continue,
            Err(error) => return Err(error),
        };
        match tx.directory(&path).await {
            Ok(children) => pending.extend(children.into_iter().map(|child| format!("{path}/{child}"))),
            Err(XsError::NoEntry) => continue,
            Err(error) => return Err(error),
        }
        // A value that is not UTF-8 was not written by us; it never equals a desired value,
        // so it is rewritten (leaf) or left alone (inner node).
        nodes.insert(path, String::from_utf8(value).unwrap_or_else(|_| "\u{fffd}".into()));
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn plan_removes_topmost_stale_and_writes_changes() {
        let roots = vec!["/d/data/vproto".to_string()];
        let existing = map(&[
            ("/d/data/vproto", ""),
            ("/d/data/vproto/nics", ""),
            ("/d/data/vproto/nics/aa", ""),
            ("/d/data/vproto/nics/aa/name", "eth0"),
            ("/d/data/vproto/nics/aa/addresses", ""),
            ("/d/data/vproto/nics/aa/addresses/10-0-0-1", ""),
            ("/d/data/vproto/nics/aa/addresses/10-0-0-1/address", "10.0.0.1"),
            ("/d/data/vproto/nics/bb", ""),
            ("/d/data/vproto/nics/bb/name", "eth1"),
        ]);
        let desired = map(&[("/d/data/vproto/nics/aa/name", "eth9"), ("/d/data/vproto/os/name", "Linux")]);
        let plan = plan(&existing, &desired, &roots);
        assert_eq!(plan.removes, ["/d/data/vproto/nics/aa/addresses", "/d/data/vproto/nics/bb"]);
        assert_eq!(
            plan.writes,
            [
                ("/d/data/vproto/nics/aa/name".to_string(), "eth9".to_string()),
                ("/d/data/vproto/os/name".to_string(), "Linux".to_string())
            ]
        );
        assert!(super::plan(&desired, &desired, &roots).is_empty());
    }

    #[test]
    fn plan_removes_an_emptied_root_but_nothing_above() {
        let roots = vec!["attr/vif".to_string(), "data/os_name".to_string()];
        let existing = map(&[("attr/vif/0/ipv4/0", "10.0.0.1"), ("data/os_name", "x")]);
        let plan = plan(&existing, &map(&[("data/os_name", "x")]), &roots);
        assert_eq!(plan.removes, ["attr/vif"]);
        assert!(plan.writes.is_empty());
    }

    #[test]
    fn paths_outside_the_roots_are_refused() {
        let roots = ["data/vproto"];
        assert!(check_owned("data/vproto/nics/aa/name", &roots).is_ok());
        assert!(check_owned("data/vproto", &roots).is_ok());
        for bad in
            ["data/vprotox/a", "data/other", "/data/vproto/a", "data/vproto/../x", "data/vproto//a", "data/vproto/a b"]
        {
            assert!(check_owned(bad, &roots).is_err(), "{bad}");
        }
        assert!(Publisher::new(Some("local/domain/1"), &roots).is_err());
        assert!(Publisher::new(Some("/local/domain/1/"), &roots).is_ok());
    }
}
