//! Schema errors: each names where (a JSON pointer), what is wrong and how to fix it.

use std::fmt;

/// One problem found in a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// JSON pointer to the offending value, such as `/objects/Network/fields/mtu/since`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "at {at}: {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n    fix: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Every problem found in one schema, reported together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// The file or name the schema was loaded from.
    pub source: String,
    /// The problems, in the order they were found.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty list for the schema called `source`.
    pub fn new(source: impl Into<String>) -> Self {
        Diagnostics { source: source.into(), items: Vec::new() }
    }

    /// Records a problem.
    pub fn push(&mut self, pointer: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.items.push(Diagnostic { pointer: pointer.into(), message: message.into(), hint: hint.into() });
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `Ok(value)` when nothing was found, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.items.len();
        writeln!(f, "{}: {count} error{}", self.source, if count == 1 { "" } else { "s" })?;
        for item in &self.items {
            writeln!(f, "  {item}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Builds a JSON pointer from segments.
pub fn pointer(segments: &[&str]) -> String {
    let mut out = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for segment in segments {
        push_segment(&mut out, segment);
    }
    out
}

/// Appends `/` and the escaped `segment` to a JSON pointer.
pub(crate) fn push_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    if segment.bytes().any(|b| b == b'~' || b == b'/') {
        pointer.push_str(&escape_segment(segment));
    } else {
        pointer.push_str(segment);
    }
}
