//! Versions: histories ascend and end at the current version, the versions named by `since`,
//! `deprecated` and `removed` exist, and maps between two objects' versions (inheritance,
//! child pins) are well formed.

use indexmap::IndexMap;

use super::Checker;
use crate::{
    diagnostic::pointer,
    model::{HistoryEntry, Version},
};

impl Checker<'_> {
    /// A history at `at` lists ascending versions and ends at `current`.
    pub(super) fn history(&mut self, at: &[&str], history: &[HistoryEntry], current: Version) {
        let base = pointer(at);
        if history.is_empty() {
            self.out.push(format!("{base}/history"), "the history is empty", "add one entry per version, oldest first");
            return;
        }
        for (index, pair) in history.windows(2).enumerate() {
            if pair[1].version <= pair[0].version {
                self.out.push(
                    format!("{base}/history/{}/version", index + 1),
                    format!("version {} does not come after {}", pair[1].version, pair[0].version),
                    "list versions oldest first, each once",
                );
            }
        }
        let last = history.last().map(|entry| entry.version);
        if last != Some(current) {
            self.out.push(
                format!("{base}/version"),
                format!(
                    "the current version is {current} but the last history entry is {}",
                    last.map(|v| v.to_string()).unwrap_or_default()
                ),
                "add a history entry for the current version, or set `version` to the last entry",
            );
        }
    }

    /// `version` is one of the protocol's.
    pub(super) fn protocol_version(&mut self, at: &str, version: Version) {
        if !self.schema.protocol.history.iter().any(|entry| entry.version == version) {
            self.out.push(
                at,
                format!("protocol version {version} is not in the protocol's history"),
                format!("use one of: {}", versions_list(self.schema.protocol.history.iter().map(|e| e.version))),
            );
        }
    }

    /// Checks a map from versions of `owner` to versions of `target`:
    /// keys exist and ascend, the first key is `first`, values exist and never go down.
    pub(super) fn version_map(
        &mut self,
        at: &str,
        map: &IndexMap<Version, Version>,
        owner: (&str, &[Version]),
        target: (&str, &[Version]),
        first: Option<Version>,
    ) {
        if map.keys().next().copied() != first {
            self.out.push(
                at,
                format!(
                    "the first entry must be {}'s version {}, where the mapping starts",
                    owner.0,
                    first.map(|v| v.to_string()).unwrap_or_default()
                ),
                "start the map at that version",
            );
        }
        let mut previous: Option<(Version, Version)> = None;
        for (key, value) in map {
            let entry = || format!("{at}/{key}");
            if !owner.1.contains(key) {
                self.out.push(
                    entry(),
                    format!("{key} is not a version of {}", owner.0),
                    format!("use one of: {}", versions_list(owner.1.iter().copied())),
                );
            }
            if !target.1.contains(value) {
                self.out.push(
                    entry(),
                    format!("{value} is not a version of {}", target.0),
                    format!("use one of: {}", versions_list(target.1.iter().copied())),
                );
            }
            if let Some((previous_key, previous_value)) = previous {
                if *key <= previous_key {
                    self.out.push(
                        entry(),
                        format!("{key} does not come after {previous_key}"),
                        "list versions oldest first",
                    );
                }
                if *value < previous_value {
                    self.out.push(
                        entry(),
                        format!("{} version goes down from {previous_value} to {value}", target.0),
                        "a newer version never carries an older one",
                    );
                }
            }
            previous = Some((*key, *value));
        }
    }

    /// Checks that `version` is one of `object`'s; the pointer is `at` then `suffix`.
    pub(super) fn object_version(
        &mut self,
        at: &str,
        suffix: &str,
        object: &str,
        versions: &[Version],
        version: Version,
    ) {
        if !versions.contains(&version) {
            self.out.push(
                format!("{at}{suffix}"),
                format!("{version} is not a version of {object}"),
                format!(
                    "use one of {object}'s versions ({}) or add {version} to its history",
                    versions_list(versions.iter().copied())
                ),
            );
        }
    }
}

/// Versions as a diagnostic lists them: `1.0, 1.1`.
fn versions_list(versions: impl Iterator<Item = Version>) -> String {
    versions.map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}
