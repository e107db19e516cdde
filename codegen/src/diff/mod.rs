//! Schema evolution: compares two checked revisions of a schema and classifies every change.
//!
//! The verdicts follow QAPI's compatibility rules, buf's breaking checks and smithy-diff, and are
//! direction-aware: whether a type is reachable from params (input), from results, events and
//! error data (output), or both ([`reach`]) decides whether narrowing or widening it breaks
//! existing peers. Each [`Finding`] names the JSON pointer of the element in both revisions
//! (either may be absent) and why the verdict is what it is.
//!
//! * [`Severity::WireBreaking`]: a peer built against the old revision fails against the new one.
//! * [`Severity::SourceBreaking`]: the wire is intact, but generated code changes its names.
//! * [`Severity::Compatible`]: additions, deprecations, descriptions.
//!
//! Deliberate breaks are acknowledged with [`AllowRule`]s (`vproto diff --allow`).

mod compare;
mod pairs;
pub mod reach;

use std::{collections::HashMap, fmt};

use crate::{
    diagnostic::pointer,
    model::{Schema, WireForm},
};

pub use reach::{Direction, Reach};

/// How bad a change is for existing peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Existing peers keep working: additions, deprecations, descriptions.
    Compatible,
    /// The wire is intact but generated code changes (a type renamed or moved).
    SourceBreaking,
    /// Existing peers fail: something they send is refused or something they read is missing.
    WireBreaking,
}

impl Severity {
    /// The severity as the report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Compatible => "compatible",
            Severity::SourceBreaking => "source-breaking",
            Severity::WireBreaking => "wire-breaking",
        }
    }
}

/// One classified change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The verdict.
    pub severity: Severity,
    /// The rule that matched, such as `method-removed` (what `--allow` names).
    pub rule: &'static str,
    /// The JSON pointer of the element in the old revision, when it is there.
    pub old: Option<String>,
    /// The JSON pointer of the element in the new revision, when it is there.
    pub new: Option<String>,
    /// Why the change has this verdict.
    pub why: String,
    /// An `--allow` rule acknowledged it: it no longer fails the diff.
    pub allowed: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = if self.allowed { " (allowed)" } else { "" };
        write!(
            f,
            "{}{allowed} [{}] old {} new {}: {}",
            self.severity.as_str(),
            self.rule,
            self.old.as_deref().unwrap_or("-"),
            self.new.as_deref().unwrap_or("-"),
            self.why
        )
    }
}

/// Every change between two revisions, in the order found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The findings of one severity.
    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |finding| finding.severity == severity)
    }

    /// Whether a wire-breaking finding is left that no rule allowed.
    pub fn breaks_wire(&self) -> bool {
        self.of(Severity::WireBreaking).any(|finding| !finding.allowed)
    }

    /// Marks the findings the rules match as allowed; answers the rules that matched nothing (a
    /// stale rule is worth a warning).
    pub fn allow<'r>(&mut self, rules: &'r [AllowRule]) -> Vec<&'r AllowRule> {
        let mut used = vec![false; rules.len()];
        for finding in &mut self.findings {
            for (index, rule) in rules.iter().enumerate() {
                if rule.matches(finding) {
                    finding.allowed = true;
                    used[index] = true;
                }
            }
        }
        rules.iter().zip(used).filter(|(_, used)| !used).map(|(rule, _)| rule).collect()
    }

    /// How many findings of each severity, as `N wire-breaking, N source-breaking, N compatible`.
    pub fn summary(&self) -> String {
        let allowed = self.findings.iter().filter(|finding| finding.allowed).count();
        format!(
            "{} wire-breaking, {} source-breaking, {} compatible ({allowed} allowed)",
            self.of(Severity::WireBreaking).count(),
            self.of(Severity::SourceBreaking).count(),
            self.of(Severity::Compatible).count()
        )
    }
}

/// A deliberate break: `RULE` (every finding of the rule), `POINTER` (every finding at or below
/// the pointer in either revision) or `RULE=POINTER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// The rule name, such as `method-removed`.
    pub rule: Option<String>,
    /// A JSON pointer; findings at it or below it match.
    pub pointer: Option<String>,
}

impl AllowRule {
    /// Parses `RULE`, `/POINTER` or `RULE=/POINTER`.
    pub fn parse(text: &str) -> Result<AllowRule, String> {
        let (rule, pointer) = match text.split_once('=') {
            Some((rule, pointer)) => (Some(rule), Some(pointer)),
            None if text.starts_with('/') => (None, Some(text)),
            None => (Some(text), None),
        };
        if let Some(rule) = rule {
            if rule.is_empty() || !rule.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                return Err(format!("`{text}`: a rule is lower-case words joined by `-`, such as method-removed"));
            }
        }
        if let Some(pointer) = pointer {
            if !pointer.starts_with('/') {
                return Err(format!("`{text}`: a JSON pointer starts with `/`, such as /services/agent/methods/hello"));
            }
        }
        Ok(AllowRule { rule: rule.map(str::to_string), pointer: pointer.map(str::to_string) })
    }

    /// Whether the rule acknowledges `finding`.
    pub fn matches(&self, finding: &Finding) -> bool {
        let rule = self.rule.as_deref().is_none_or(|rule| rule == finding.rule);
        let at = |found: &Option<String>| {
            found.as_deref().is_some_and(|found| {
                self.pointer.as_deref().is_some_and(|pointer| {
                    found == pointer || (found.starts_with(pointer) && found[pointer.len()..].starts_with('/'))
                })
            })
        };
        rule && (self.pointer.is_none() || at(&finding.old) || at(&finding.new))
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, &self.pointer) {
            (Some(rule), Some(pointer)) => write!(f, "{rule}={pointer}"),
            (Some(rule), None) => f.write_str(rule),
            (None, Some(pointer)) => f.write_str(pointer),
            (None, None) => f.write_str("(nothing)"),
        }
    }
}

/// Compares two checked revisions; every change becomes a finding.
pub fn diff(old: &Schema, new: &Schema) -> Report {
    let reach = Reach::of(old).merged(&Reach::of(new));
    let mut differ = compare::Differ {
        old,
        new,
        reach,
        findings: Vec::new(),
        renamed_types: HashMap::new(),
        renamed_objects: HashMap::new(),
    };
    differ.find_renames();
    differ.named_types();
    differ.objects();
    differ.errors();
    differ.services();
    differ.data_trees();
    Report { findings: differ.findings }
}

/// Whether an object's name travels on the wire (the versioned-object envelope names it).
fn name_on_wire(wire: WireForm) -> bool {
    wire == WireForm::VersionedObject
}

/// `pointer` re-exported for the comparison module.
fn at(segments: &[&str]) -> String {
    pointer(segments)
}

#[cfg(test)]
mod tests;
