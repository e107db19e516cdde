//! Reports of a run: text (a summary naming each failed case with the request sent, the
//! response received and what was expected), JSON, and JUnit XML.

use std::{collections::BTreeMap, fmt::Write as _, io::Cursor, str::FromStr, time::Duration};

use quick_xml::{
    events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event},
    Writer,
};
use serde_json::{json, Value};

use crate::run::{Outcome, Status};

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

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "junit" => Ok(Format::Junit),
            other => Err(format!("`{other}` is not a report format: use text, json or junit")),
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
    /// One line: the verdict, the counts and how long the run took.
    pub fn summary(&self, elapsed: std::time::Duration) -> String {
        format!(
            "{}: {} cases, {} passed, {} failed, {} expected failures, {} now passing, in {:.2} s",
            if self.success() { "PASS" } else { "FAIL" },
            self.total,
            self.passed,
            self.failed,
            self.expected_failures,
            self.now_passing,
            elapsed.as_secs_f64()
        )
    }
}

impl Counts {
    /// Counts `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Self {
        let mut counts = Counts { total: outcomes.len(), ..Counts::default() };
        for outcome in outcomes {
            match outcome.status {
                Status::Pass => counts.passed += 1,
                Status::Fail => counts.failed += 1,
                Status::ExpectedFailure => counts.expected_failures += 1,
                Status::NowPassing => counts.now_passing += 1,
            }
        }
        counts
    }

    /// Whether the run succeeded.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.now_passing == 0
    }
}

/// Renders `outcomes` (of a run that took `elapsed`) in `format`.
pub fn render(format: Format, outcomes: &[Outcome], elapsed: Duration, notes: &[String]) -> String {
    match format {
        Format::Text => text(outcomes, elapsed, notes),
        Format::Json => json(outcomes, elapsed, notes),
        Format::Junit => junit(outcomes, elapsed),
    }
}

fn indent(text: &str) -> String {
    if text.is_empty() {
        return "      (nothing)\n".into();
    }
    text.lines().map(|line| format!("      {line}\n")).collect()
}

fn text(outcomes: &[Outcome], elapsed: Duration, notes: &[String]) -> String {
    let mut out = String::new();
    let counts = Counts::of(outcomes);
    for outcome in outcomes.iter().filter(|o| o.status != Status::Pass) {
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
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    let mut targets: BTreeMap<&str, Counts> = BTreeMap::new();
    for outcome in outcomes {
        let entry = targets.entry(outcome.target.as_str()).or_default();
        entry.total += 1;
        match outcome.status {
            Status::Pass => entry.passed += 1,
            Status::Fail => entry.failed += 1,
            Status::ExpectedFailure => entry.expected_failures += 1,
            Status::NowPassing => entry.now_passing += 1,
        }
    }
    for (target, c) in &targets {
        let _ = writeln!(out, "{target}: {} cases, {} passed, {} failed", c.total, c.passed, c.failed + c.now_passing);
    }
    let _ = writeln!(out, "{}", counts.summary(elapsed));
    out
}

fn json(outcomes: &[Outcome], elapsed: Duration, notes: &[String]) -> String {
    let counts = Counts::of(outcomes);
    let cases: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            json!({
                "id": o.id, "target": o.target, "status": o.status.as_str(), "passed": !o.status.fails_run(),
                "what": o.what, "request": o.request, "response": o.response, "expected": o.expected,
                "why": o.why, "seconds": o.duration.as_secs_f64(),
            })
        })
        .collect();
    let report = json!({
        "summary": {
            "success": counts.success(), "total": counts.total, "passed": counts.passed, "failed": counts.failed,
            "expected_failures": counts.expected_failures, "now_passing": counts.now_passing,
            "seconds": elapsed.as_secs_f64(),
        },
        "notes": notes,
        "cases": cases,
    });
    serde_json::to_string_pretty(&report).expect("a JSON value always serializes") + "\n"
}

fn junit(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut writer = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    let counts = Counts::of(outcomes);
    let mut suites: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        suites.entry(outcome.target.as_str()).or_default().push(outcome);
    }
    let write = |writer: &mut Writer<Cursor<Vec<u8>>>| -> std::io::Result<()> {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut root = BytesStart::new("testsuites");
        root.push_attribute(("name", "vproto conform"));
        root.push_attribute(("tests", counts.total.to_string().as_str()));
        root.push_attribute(("failures", (counts.failed + counts.now_passing).to_string().as_str()));
        root.push_attribute(("skipped", counts.expected_failures.to_string().as_str()));
        root.push_attribute(("time", format!("{:.3}", elapsed.as_secs_f64()).as_str()));
        writer.write_event(Event::Start(root))?;
        for (target, cases) in &suites {
            let c = Counts::of(&cases.iter().map(|o| (*o).clone()).collect::<Vec<_>>());
            let time: f64 = cases.iter().map(|o| o.duration.as_secs_f64()).sum();
            let mut suite = BytesStart::new("testsuite");
            suite.push_attribute(("name", *target));
            suite.push_attribute(("tests", c.total.to_string().as_str()));
            suite.push_attribute(("failures", (c.failed + c.now_passing).to_string().as_str()));
            suite.push_attribute(("errors", "0"));
            suite.push_attribute(("skipped", c.expected_failures.to_string().as_str()));
            suite.push_attribute(("time", format!("{time:.3}").as_str()));
            writer.write_event(Event::Start(suite))?;
            for outcome in cases {
                let mut case = BytesStart::new("testcase");
                case.push_attribute(("name", outcome.id.as_str()));
                case.push_attribute(("classname", *target));
                case.push_attribute(("time", format!("{:.3}", outcome.duration.as_secs_f64()).as_str()));
                let element = match outcome.status {
                    Status::Pass => None,
                    Status::Fail | Status::NowPassing => Some("failure"),
                    Status::ExpectedFailure => Some("skipped"),
                };
                match element {
                    None => writer.write_event(Event::Empty(case))?,
                    Some(element) => {
                        writer.write_event(Event::Start(case))?;
                        let mut inner = BytesStart::new(element);
                        inner.push_attribute(("message", outcome.why.as_str()));
                        writer.write_event(Event::Start(inner))?;
                        let details = format!(
                            "{}\nsent: {}\nreceived: {}\nexpected: {}",
                            outcome.what, outcome.request, outcome.response, outcome.expected
                        );
                        writer.write_event(Event::Text(BytesText::new(&details)))?;
                        writer.write_event(Event::End(BytesEnd::new(element)))?;
                        writer.write_event(Event::End(BytesEnd::new("testcase")))?;
                    }
                }
            }
            writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
        }
        writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
        Ok(())
    };
    write(&mut writer).expect("writing to memory cannot fail");
    String::from_utf8(writer.into_inner().into_inner()).expect("quick-xml writes UTF-8") + "\n"
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

    #[test]
    fn junit_is_well_formed_with_the_right_counts() {
        let outcomes = [
            outcome("a/1", "driver", Status::Pass),
            outcome("a/2", "driver", Status::Fail),
            outcome("a/3", "network", Status::ExpectedFailure),
            outcome("a/4", "network", Status::NowPassing),
        ];
        let xml = render(Format::Junit, &outcomes, Duration::from_secs(1), &[]);
        let mut reader = quick_xml::Reader::from_str(&xml);
        let (mut testcases, mut failures, mut suites) = (0, 0, 0);
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                    b"testcase" => testcases += 1,
                    b"failure" => failures += 1,
                    b"testsuite" => suites += 1,
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!((testcases, failures, suites), (4, 2, 2));
        assert!(xml.contains(r#"<testsuites name="vproto conform" tests="4" failures="2" skipped="1""#), "{xml}");
    }

    #[test]
    fn text_and_json_name_the_failures() {
        let outcomes = [outcome("a/1", "t", Status::Pass), outcome("a/2", "t", Status::Fail)];
        let text = render(Format::Text, &outcomes, Duration::from_secs(1), &[]);
        assert!(text.contains("FAIL [t] a/2: broke"), "{text}");
        assert!(text.contains("FAIL: 2 cases, 1 passed, 1 failed"), "{text}");
        let json: Value = serde_json::from_str(&render(Format::Json, &outcomes, Duration::ZERO, &[])).unwrap();
        assert_eq!(json["summary"]["failed"], 1);
        assert_eq!(json["cases"][1]["status"], "fail");
    }
}
