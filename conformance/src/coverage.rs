//! Coverage: for each method tested, whether a successful result was observed and checked
//! against the method's result schema.
//!
//! A method is *uncovered* when none was: every call that could have succeeded got a declared
//! error (an implementation that has none of the data the examples name rightly answers
//! `NetworkNotFound`, say), or no such call ran. Its cases may all pass, yet nothing proved
//! that its results are right, so an uncovered method fails the run unless uncovered methods
//! are allowed (`--allow-uncovered`); the way out is fixtures (`--fixtures`, see
//! [`crate::fixtures`]) naming data the implementation really has.
//!
//! Coverage is tallied from what the checks observed ([`Observed`]), never from method names.

use std::collections::BTreeMap;

use crate::{cases::Expect, check::Observed};

/// What the suite saw of one method's answers on one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodCoverage {
    /// The target's label.
    pub target: String,
    /// `service.method`.
    pub method: String,
    /// Cases that called it in a way that could succeed (valid calls, tolerated values,
    /// older object versions, REST examples, protocol cases calling it validly).
    pub calls: usize,
    /// Successful results checked against its result schema.
    pub results: usize,
    /// Of those, the ones that fit it.
    pub valid: usize,
    /// The declared errors those calls got instead, by name, with how many times.
    pub errors: BTreeMap<String, usize>,
}

impl MethodCoverage {
    /// Whether a successful result was observed and checked against the result schema.
    pub fn covered(&self) -> bool {
        self.results > 0
    }

    /// What was seen, in words: the results checked, or why the method is uncovered.
    pub fn explain(&self) -> String {
        if self.covered() {
            return format!(
                "{} successful result(s) checked against the result schema, {} valid",
                self.results, self.valid
            );
        }
        if self.calls == 0 {
            return "no successful result checked: no case that could succeed called it".into();
        }
        let calls = self.calls;
        if self.errors.is_empty() {
            return format!(
                "no successful result checked: its {calls} call(s) that could succeed got no answer a result could be \
                 read from (see the failed cases)"
            );
        }
        let errors: Vec<String> = self.errors.iter().map(|(name, count)| format!("{name} ×{count}")).collect();
        format!(
            "no successful result checked: its {calls} call(s) that could succeed got declared errors only ({}); \
             give param values the implementation really has with --fixtures",
            errors.join(", ")
        )
    }
}

/// Tallies coverage while cases run against one target.
#[derive(Clone, Debug)]
pub struct Tally {
    target: String,
    methods: BTreeMap<String, MethodCoverage>,
}

impl Tally {
    /// A tally for `target` that reports every method of `required` (covered or not), and any
    /// other method a case calls.
    pub fn new<'m>(target: &str, required: impl IntoIterator<Item = &'m str>) -> Self {
        let mut tally = Tally { target: target.to_string(), methods: BTreeMap::new() };
        for method in required {
            tally.entry(method);
        }
        tally
    }

    fn entry(&mut self, method: &str) -> &mut MethodCoverage {
        self.methods.entry(method.to_string()).or_insert_with(|| MethodCoverage {
            target: self.target.clone(),
            method: method.to_string(),
            ..MethodCoverage::default()
        })
    }

    /// Records one case that ran: what it expected (the calls that could succeed) and what
    /// the check of its answer observed.
    pub fn record(&mut self, expect: &Expect, observed: &[Observed]) {
        for method in expect.calls() {
            self.entry(method).calls += 1;
        }
        for seen in observed {
            match seen {
                Observed::Result { method, valid } => {
                    let entry = self.entry(method);
                    entry.results += 1;
                    entry.valid += usize::from(*valid);
                }
                Observed::Declared { method, error } => {
                    *self.entry(method).errors.entry(error.clone()).or_default() += 1;
                }
            }
        }
    }

    /// The coverage of each method, by name.
    pub fn finish(self) -> Vec<MethodCoverage> {
        self.methods.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::{Accept, IdRule};

    fn call(method: &str) -> Expect {
        Expect::Answer {
            method: method.into(),
            id: IdRule::Echo("1".into()),
            accept: Accept::ResultOrDeclared { forbid: None },
        }
    }

    #[test]
    fn a_method_is_covered_only_by_a_checked_result() {
        let mut tally = Tally::new("t", ["a.covered", "a.errors", "a.never"]);
        tally.record(&call("a.covered"), &[Observed::Result { method: "a.covered".into(), valid: false }]);
        let not_found = Observed::Declared { method: "a.errors".into(), error: "NotFound".into() };
        tally.record(&call("a.errors"), std::slice::from_ref(&not_found));
        tally.record(&call("a.errors"), &[not_found]);
        // An expected error is not a call that could succeed.
        tally.record(&Expect::Error { code: -32602, id: IdRule::Null }, &[]);
        let coverage = tally.finish();
        let named = |name: &str| coverage.iter().find(|c| c.method == name).unwrap();
        assert!(named("a.covered").covered());
        assert_eq!((named("a.covered").results, named("a.covered").valid), (1, 0));
        assert!(!named("a.errors").covered());
        assert_eq!(named("a.errors").calls, 2);
        assert!(named("a.errors").explain().contains("NotFound ×2"), "{}", named("a.errors").explain());
        assert!(named("a.errors").explain().contains("--fixtures"));
        assert!(named("a.never").explain().contains("no case"), "{}", named("a.never").explain());
        assert_eq!(coverage.len(), 3);
    }

    #[test]
    fn batches_count_each_call() {
        let mut tally = Tally::new("t", []);
        tally.record(&Expect::Batch(vec![call("a.x"), Expect::Nothing, call("a.x")]), &[]);
        assert_eq!(tally.finish()[0].calls, 2);
    }
}
