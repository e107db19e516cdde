//! Reports of a run: text (a summary naming each failed case with the request sent, the
//! response received and what was expected, then each method's coverage), JSON, and JUnit XML
//! (coverage as one `coverage/<method>` testcase per method).

use std::{collections::BTreeMap, fmt::Write as _, io::Cursor, str::FromStr, time::Duration};

use quick_xml::{
    events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event},
    Writer,
};
use serde_json::{json, Value};

use crate::{
    coverage::MethodCoverage,
    run::{Outcome, Status},
};

/// The report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML, one testsuite per target.
    Junit,
}

/// A report format that is none of text, json and junit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a report format: use text, json or junit")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, UnknownFormat> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "junit" => Ok(Format::Junit),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// Counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Cases run.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed (not listed as known failures).
    pub failed: usize,
    /// Failed, and listed.
    pub expected_failures: usize,
    /// Passed, but listed: the list must be updated.
    pub now_passing: usize,
}

impl Counts {
    /// Counts `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Self {
        Counts::tally(outcomes.iter().map(|o| o.status))
    }

    /// Counts statuses.
    fn tally(statuses: impl IntoIterator<Item = Status>) -> Self {
        let mut counts = Counts::default();
        for status in statuses {
            counts.total += 1;
            match status {
                Status::Pass => counts.passed += 1,
                Status::Fail => counts.failed += 1,
                Status::ExpectedFailure => counts.expected_failures += 1,
                Status::NowPassing => counts.now_passing += 1,
            }
        }
        counts
    }

    /// Whether every case passed (expected failures allowed).
    pub fn success(&self) -> bool {
        self.failed == 0 && self.now_passing == 0
    }
}

/// A run to report: its cases' outcomes and the coverage of the methods tested.
pub struct Report<'a> {
    /// Every case's outcome.
    pub outcomes: &'a [Outcome],
    /// Every tested method's coverage (empty in serve mode, which calls no method).
    pub coverage: &'a [MethodCoverage],
    /// Whether uncovered methods are allowed (`--allow-uncovered`): named, but not failing the run.
    pub allow_uncovered: bool,
    /// How long the run took.
    pub elapsed: Duration,
    /// Notes for the reader (unused known failures, ...).
    pub notes: &'a [String],
}

impl Report<'_> {
    /// The counts of the cases.
    pub fn counts(&self) -> Counts {
        Counts::of(self.outcomes)
    }

    /// The uncovered methods, each named once, in order.
    pub fn uncovered(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.coverage.iter().filter(|c| !c.covered()).map(|c| c.method.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether the run succeeded: every case passed (expected failures allowed) and every
    /// method is covered, unless uncovered methods are allowed.
    pub fn success(&self) -> bool {
        self.counts().success() && (self.allow_uncovered || self.uncovered().is_empty())
    }

    /// One line: the verdict, the counts, the uncovered methods and how long the run took.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let uncovered = self.uncovered();
        let coverage = match (self.coverage.len(), uncovered.is_empty()) {
            (0, _) => String::new(),
            (methods, true) => format!(", {methods} {} covered", plural(methods, "method")),
            (methods, false) => format!(
                ", {} of {methods} {} uncovered{} ({})",
                uncovered.len(),
                plural(methods, "method"),
                if self.allow_uncovered { ", allowed by --allow-uncovered" } else { "" },
                uncovered.join(", ")
            ),
        };
        format!(
            "{}: {} cases, {} passed, {} failed, {} expected failures, {} now passing{coverage}, in {:.2} s",
            if self.success() { "PASS" } else { "FAIL" },
            counts.total,
            counts.passed,
            counts.failed,
            counts.expected_failures,
            counts.now_passing,
            self.elapsed.as_secs_f64()
        )
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => self.json(),
            Format::Junit => self.junit(),
        }
    }

    /// How an uncovered method is labelled: `UNCOVERED`, or `UNCOVERED (allowed)`.
    fn uncovered_label(&self) -> &'static str {
        if self.allow_uncovered {
            "UNCOVERED (allowed)"
        } else {
            "UNCOVERED"
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for outcome in self.outcomes.iter().filter(|o| o.status != Status::Pass) {
            let _ = write!(
                out,
                "{} [{}] {}: {}\n    {}\n",
                outcome.status.as_str().to_uppercase(),
                outcome.target,
                outcome.id,
                outcome.why,
                outcome.what
            );
            if outcome.status == Status::NowPassing {
                continue;
            }
            let _ = write!(
                out,
                "    sent:\n{}    received:\n{}    expected:\n{}",
                indent(&outcome.request),
                indent(&outcome.response),
                indent(&outcome.expected)
            );
        }
        for note in self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for method in self.coverage {
            let label = if method.covered() { "covered" } else { self.uncovered_label() };
            let _ = writeln!(out, "{label} [{}] {}: {}", method.target, method.method, method.explain());
        }
        let mut targets: BTreeMap<&str, Vec<Status>> = BTreeMap::new();
        for outcome in self.outcomes {
            targets.entry(outcome.target.as_str()).or_default().push(outcome.status);
        }
        for (target, statuses) in targets {
            let c = Counts::tally(statuses);
            let methods: Vec<&MethodCoverage> = self.coverage.iter().filter(|m| m.target == *target).collect();
            let covered = if methods.is_empty() {
                String::new()
            } else {
                let covered = methods.iter().filter(|m| m.covered()).count();
                format!(", {covered} of {} {} covered", methods.len(), plural(methods.len(), "method"))
            };
            let _ = writeln!(
                out,
                "{target}: {} cases, {} passed, {} failed{covered}",
                c.total,
                c.passed,
                c.failed + c.now_passing
            );
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    fn json(&self) -> String {
        let counts = self.counts();
        let cases: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "id": o.id, "target": o.target, "status": o.status.as_str(), "passed": !o.status.fails_run(),
                    "what": o.what, "request": o.request, "response": o.response, "expected": o.expected,
                    "why": o.why, "seconds": o.duration.as_secs_f64(),
                })
            })
            .collect();
        let coverage: Vec<Value> = self
            .coverage
            .iter()
            .map(|c| {
                json!({
                    "target": c.target, "method": c.method, "covered": c.covered(), "calls": c.calls,
                    "results": c.results, "valid_results": c.valid, "declared_errors": c.errors, "why": c.explain(),
                })
            })
            .collect();
        let report = json!({
            "summary": {
                "success": self.success(), "total": counts.total, "passed": counts.passed, "failed": counts.failed,
                "expected_failures": counts.expected_failures, "now_passing": counts.now_passing,
                "uncovered": self.uncovered(), "allow_uncovered": self.allow_uncovered,
                "seconds": self.elapsed.as_secs_f64(),
            },
            "notes": self.notes,
            "coverage": coverage,
            "cases": cases,
        });
        serde_json::to_string_pretty(&report).expect("a JSON value always serializes") + "\n"
    }

    /// JUnit XML: one testsuite per target, with a testcase per case and one `coverage/<method>`
    /// testcase per method (a failure when uncovered, skipped when that is allowed).
    fn junit(&self) -> String {
        let mut writer = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
        let mut suites: BTreeMap<&str, Suite> = BTreeMap::new();
        for outcome in self.outcomes {
            suites.entry(outcome.target.as_str()).or_default().cases.push(outcome);
        }
        for method in self.coverage {
            suites.entry(method.target.as_str()).or_default().coverage.push(method);
        }
        let statuses = |suite: &Suite<'_>| -> Vec<Status> {
            let cases = suite.cases.iter().map(|o| o.status);
            cases.chain(suite.coverage.iter().map(|m| self.coverage_status(m))).collect()
        };
        let total = Counts::tally(suites.values().flat_map(statuses));
        let write = |writer: &mut Writer<Cursor<Vec<u8>>>| -> std::io::Result<()> {
            writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
            let mut root = BytesStart::new("testsuites");
            root.push_attribute(("name", "vproto conform"));
            root.push_attribute(("tests", total.total.to_string().as_str()));
            root.push_attribute(("failures", (total.failed + total.now_passing).to_string().as_str()));
            root.push_attribute(("skipped", total.expected_failures.to_string().as_str()));
            root.push_attribute(("time", format!("{:.3}", self.elapsed.as_secs_f64()).as_str()));
            writer.write_event(Event::Start(root))?;
            for (target, suite) in &suites {
                let c = Counts::tally(statuses(suite));
                let time: f64 = suite.cases.iter().map(|o| o.duration.as_secs_f64()).sum();
                let mut element = BytesStart::new("testsuite");
                element.push_attribute(("name", *target));
                element.push_attribute(("tests", c.total.to_string().as_str()));
                element.push_attribute(("failures", (c.failed + c.now_passing).to_string().as_str()));
                element.push_attribute(("errors", "0"));
                element.push_attribute(("skipped", c.expected_failures.to_string().as_str()));
                element.push_attribute(("time", format!("{time:.3}").as_str()));
                writer.write_event(Event::Start(element))?;
                for outcome in &suite.cases {
                    let details = format!(
                        "{}\nsent: {}\nreceived: {}\nexpected: {}",
                        outcome.what, outcome.request, outcome.response, outcome.expected
                    );
                    testcase(writer, target, &outcome.id, outcome.duration, outcome.status, &outcome.why, &details)?;
                }
                for method in &suite.coverage {
                    let status = self.coverage_status(method);
                    let why = if method.covered() {
                        String::new()
                    } else {
                        format!("{}: {}", self.uncovered_label().to_lowercase(), method.explain())
                    };
                    let name = format!("coverage/{}", method.method);
                    testcase(writer, target, &name, Duration::ZERO, status, &why, &method.explain())?;
                }
                writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
            }
            writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
            Ok(())
        };
        write(&mut writer).expect("writing to memory cannot fail");
        String::from_utf8(writer.into_inner().into_inner()).expect("quick-xml writes UTF-8") + "\n"
    }

    /// A method's coverage as a JUnit status: covered passes; uncovered fails, or is skipped
    /// (as an expected failure) when allowed.
    fn coverage_status(&self, method: &MethodCoverage) -> Status {
        match (method.covered(), self.allow_uncovered) {
            (true, _) => Status::Pass,
            (false, false) => Status::Fail,
            (false, true) => Status::ExpectedFailure,
        }
    }
}

/// `word`, with an `s` unless `count` is 1.
fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn indent(text: &str) -> String {
    if text.is_empty() {
        return "      (nothing)\n".into();
    }
    text.lines().map(|line| format!("      {line}\n")).collect()
}

/// One target's cases and methods, for the JUnit report.
#[derive(Default)]
struct Suite<'a> {
    cases: Vec<&'a Outcome>,
    coverage: Vec<&'a MethodCoverage>,
}

/// Writes one `testcase`: empty when it passed, with a `failure` or `skipped` child otherwise.
fn testcase(
    writer: &mut Writer<Cursor<Vec<u8>>>,
    target: &str,
    name: &str,
    duration: Duration,
    status: Status,
    why: &str,
    details: &str,
) -> std::io::Result<()> {
    let mut case = BytesStart::new("testcase");
    case.push_attribute(("name", name));
    case.push_attribute(("classname", target));
    case.push_attribute(("time", format!("{:.3}", duration.as_secs_f64()).as_str()));
    let element = match status {
        Status::Pass => return writer.write_event(Event::Empty(case)),
        Status::Fail | Status::NowPassing => "failure",
        Status::ExpectedFailure => "skipped",
    };
    writer.write_event(Event::Start(case))?;
    let mut inner = BytesStart::new(element);
    inner.push_attribute(("message", why));
    writer.write_event(Event::Start(inner))?;
    writer.write_event(Event::Text(BytesText::new(details)))?;
    writer.write_event(Event::End(BytesEnd::new(element)))?;
    writer.write_event(Event::End(BytesEnd::new("testcase")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, target: &str, status: Status) -> Outcome {
        Outcome {
            id: id.into(),
            target: target.into(),
            what: "checks <things> & \"more\"".into(),
            status,
            request: r#"{"a":"<b>"}"#.into(),
            response: String::new(),
            expected: "x".into(),
            why: if status == Status::Pass { String::new() } else { "broke & <bad>".into() },
            duration: Duration::from_millis(3),
        }
    }

    fn method(target: &str, method: &str, results: usize) -> MethodCoverage {
        let errors = [("NotFound".to_string(), 3)].into_iter().collect();
        MethodCoverage { target: target.into(), method: method.into(), calls: 3, results, valid: results, errors }
    }

    fn report<'a>(outcomes: &'a [Outcome], coverage: &'a [MethodCoverage], allow_uncovered: bool) -> Report<'a> {
        Report { outcomes, coverage, allow_uncovered, elapsed: Duration::from_secs(1), notes: &[] }
    }

    /// Counts the testcases, failures, skipped and testsuites of a JUnit report.
    fn junit_counts(xml: &str) -> (usize, usize, usize, usize) {
        let mut reader = quick_xml::Reader::from_str(xml);
        let (mut testcases, mut failures, mut skipped, mut suites) = (0, 0, 0, 0);
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                    b"testcase" => testcases += 1,
                    b"failure" => failures += 1,
                    b"skipped" => skipped += 1,
                    b"testsuite" => suites += 1,
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
        (testcases, failures, skipped, suites)
    }

    #[test]
    fn junit_is_well_formed_with_the_right_counts() {
        let outcomes = [
            outcome("a/1", "driver", Status::Pass),
            outcome("a/2", "driver", Status::Fail),
            outcome("a/3", "network", Status::ExpectedFailure),
            outcome("a/4", "network", Status::NowPassing),
        ];
        let xml = report(&outcomes, &[], false).render(Format::Junit);
        assert_eq!(junit_counts(&xml), (4, 2, 1, 2));
        assert!(xml.contains(r#"<testsuites name="vproto conform" tests="4" failures="2" skipped="1""#), "{xml}");
    }

    #[test]
    fn text_and_json_name_the_failures() {
        let outcomes = [outcome("a/1", "t", Status::Pass), outcome("a/2", "t", Status::Fail)];
        let text = report(&outcomes, &[], false).render(Format::Text);
        assert!(text.contains("FAIL [t] a/2: broke"), "{text}");
        assert!(text.contains("FAIL: 2 cases, 1 passed, 1 failed"), "{text}");
        let json: Value = serde_json::from_str(&report(&outcomes, &[], false).render(Format::Json)).unwrap();
        assert_eq!(json["summary"]["failed"], 1);
        assert_eq!(json["cases"][1]["status"], "fail");
    }

    #[test]
    fn every_format_names_uncovered_methods_and_they_fail_the_run_unless_allowed() {
        let outcomes = [outcome("a/1", "t", Status::Pass)];
        let coverage = [method("t", "s.covered", 2), method("t", "s.uncovered", 0)];
        let failing = report(&outcomes, &coverage, false);
        assert!(!failing.success());
        assert_eq!(failing.uncovered(), ["s.uncovered"]);
        let text = failing.render(Format::Text);
        assert!(text.contains("UNCOVERED [t] s.uncovered: no successful result checked"), "{text}");
        assert!(text.contains("NotFound ×3"), "{text}");
        assert!(text.contains("covered [t] s.covered: 2 successful result(s)"), "{text}");
        assert!(text.contains("t: 1 cases, 1 passed, 0 failed, 1 of 2 methods covered"), "{text}");
        assert!(text.contains("FAIL: 1 cases, 1 passed, 0 failed, 0 expected failures, 0 now passing, 1 of 2 methods uncovered (s.uncovered)"), "{text}");
        let json: Value = serde_json::from_str(&failing.render(Format::Json)).unwrap();
        assert_eq!(json["summary"]["success"], false);
        assert_eq!(json["summary"]["uncovered"], json!(["s.uncovered"]));
        assert_eq!(json["coverage"][1]["covered"], false);
        assert_eq!(json["coverage"][1]["declared_errors"]["NotFound"], 3);
        let xml = failing.render(Format::Junit);
        assert_eq!(junit_counts(&xml), (3, 1, 0, 1));
        assert!(xml.contains(r#"<testcase name="coverage/s.uncovered""#), "{xml}");
        assert!(xml.contains(r#"<failure message="uncovered: no successful result checked"#), "{xml}");

        let allowed = report(&outcomes, &coverage, true);
        assert!(allowed.success());
        assert!(allowed.summary().starts_with("PASS:"), "{}", allowed.summary());
        assert!(allowed.summary().contains("allowed by --allow-uncovered (s.uncovered)"), "{}", allowed.summary());
        assert!(allowed.render(Format::Text).contains("UNCOVERED (allowed) [t] s.uncovered"));
        assert_eq!(junit_counts(&allowed.render(Format::Junit)), (3, 0, 1, 1));
        let json: Value = serde_json::from_str(&allowed.render(Format::Json)).unwrap();
        assert_eq!(
            (json["summary"]["success"].clone(), json["summary"]["uncovered"].clone()),
            (json!(true), json!(["s.uncovered"]))
        );
    }
}
