//! Why a data tree read from Xenstore was refused: each error names the path
//! (relative to the domain's home), what is wrong and why.

/// A data tree that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// Nothing was published under the tree's root.
    #[error("{root}: no data tree: nothing is published there (no guest agent running, or it writes another layout)")]
    NoTree {
        /// The tree root.
        root: String,
    },
    /// The tree has data but no layout version.
    #[error("{path}: missing layout version: a reader cannot tell whether it understands the tree")]
    MissingVersion {
        /// The version key.
        path: String,
    },
    /// The layout version is not a semantic version.
    #[error("{path}: layout version {value} is {why}")]
    BadVersion {
        /// The version key.
        path: String,
        /// The value found, quoted.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// The layout's major version is one this reader does not know.
    #[error(
        "{path}: layout {found} is {} than this reader, which reads {reads}.x",
        if found_newer(found, *reads) { "newer" } else { "older" }
    )]
    UnsupportedLayout {
        /// The version key.
        path: String,
        /// The version found.
        found: String,
        /// The major version this reader reads.
        reads: u64,
    },
    /// A required value is absent.
    #[error("{path}: missing: {why}")]
    Missing {
        /// Where it should be.
        path: String,
        /// Which field it is and why it is needed.
        why: String,
    },
    /// A value does not fit its field's type, format or constraints.
    #[error("{path}: {why}")]
    BadValue {
        /// Where it is.
        path: String,
        /// The value found, quoted and shortened.
        value: String,
        /// What is wrong with it, the value quoted.
        why: String,
    },
    /// A list entry's name is not the mangled value of its key field.
    #[error(
        "{path}: entry `{segment}` does not match its {key} {value}, which names the entry `{expected}`: \
         entries are named by their mangled key, so a reader can find them"
    )]
    KeyMismatch {
        /// The entry's path.
        path: String,
        /// The entry's name.
        segment: String,
        /// The key field.
        key: String,
        /// The key field's value, quoted.
        value: String,
        /// The name that value gives.
        expected: String,
    },
    /// A key the layout does not define, below an object that does not tolerate unknown keys.
    #[error("{path}: unknown key: {object} defines no such key in this layout and does not tolerate unknown ones")]
    UnknownKey {
        /// The key's path.
        path: String,
        /// The object whose subtree holds it.
        object: String,
    },
    /// The assembled object failed the schema's checks.
    #[error("{path}: {why}")]
    Invalid {
        /// The tree root.
        path: String,
        /// The schema check that failed.
        why: String,
    },
}

impl TreeError {
    /// The path the error is about, relative to the domain's home.
    pub fn path(&self) -> &str {
        match self {
            TreeError::NoTree { root: path }
            | TreeError::MissingVersion { path }
            | TreeError::BadVersion { path, .. }
            | TreeError::UnsupportedLayout { path, .. }
            | TreeError::Missing { path, .. }
            | TreeError::BadValue { path, .. }
            | TreeError::KeyMismatch { path, .. }
            | TreeError::UnknownKey { path, .. }
            | TreeError::Invalid { path, .. } => path,
        }
    }
}

fn found_newer(found: &str, reads: u64) -> bool {
    found.split('.').next().and_then(|major| major.parse::<u64>().ok()).is_none_or(|major| major > reads)
}

/// A value quoted for an error message: escaped, and cut after 80 characters.
pub fn quote_value(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
        None => format!("{value:?}"),
    }
}
