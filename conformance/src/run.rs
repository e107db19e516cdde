//! Running cases against a target: service detection, one raw connection reopened when it dies,
//! `--only` filters, fixtures, coverage, known failures, progress on stderr.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde_json::{json, value::RawValue, Value};
use vproto_jsonrpc::{ClientTls, ConnectAddr, Token};
use vproto_support::rpc::codes;

use crate::{
    cases::{frame, Case, CaseError, Expect, Plan},
    check::{check, check_rest, describe, Judgement, Mismatch},
    conn::{Conn, ConnError},
    coverage::{MethodCoverage, Tally},
    description::Description,
    events::run_events,
    fixtures::Fixtures,
};

/// How a case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It failed and is listed in the known failures.
    ExpectedFailure,
    /// It passed but is listed in the known failures: remove it from the list.
    NowPassing,
}

impl Status {
    /// The status as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::ExpectedFailure => "expected-failure",
            Status::NowPassing => "now-passing",
        }
    }

    /// Whether this status fails the run.
    pub fn fails_run(self) -> bool {
        matches!(self, Status::Fail | Status::NowPassing)
    }
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The case ID.
    pub id: String,
    /// The target it ran against (a label such as `driver`, or the address).
    pub target: String,
    /// What it checks.
    pub what: String,
    /// How it ended.
    pub status: Status,
    /// The exact text sent.
    pub request: String,
    /// What came back (lines joined by newlines; HTTP: `HTTP <status>` and the body).
    pub response: String,
    /// What was expected.
    pub expected: String,
    /// Why it failed (empty when it passed).
    pub why: String,
    /// How long it took.
    pub duration: Duration,
}

/// Why an ID pattern, or a known-failures file, is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// A blank pattern.
    #[error("an empty pattern")]
    Empty,
    /// A pattern that looks like a glob but does not parse as one.
    #[error("`{pattern}` is not a valid glob: {why}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// Why it does not parse.
        why: globset::Error,
    },
    /// A known-failures line holding more than one word.
    #[error("`{0}`: one case ID or glob per line, without spaces")]
    Spaces(String),
    /// The known-failures file could not be read.
    #[error("cannot read {}: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        why: std::io::Error,
    },
    /// A line of the known-failures file (1-based) is not a usable pattern.
    #[error("{}:{line}: {why}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        why: Box<PatternError>,
    },
}

/// Why a suite could not run against a target (a failing case is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The connection failed while waiting for the probe sent after a frame that must get no answer.
    #[error("{0} (waiting for the answer to a request sent after)")]
    AfterProbe(ConnError),
    /// Detecting the services served failed, at `addr`; `token_hint` when no token was given
    /// to a target that may need one.
    #[error("{addr}: {why}{}", if *token_hint { " (if the server requires a token, give --token-file)" } else { "" })]
    Detect {
        /// The target.
        addr: ConnectAddr,
        /// What failed.
        why: Box<RunError>,
        /// Whether to suggest giving a token.
        token_hint: bool,
    },
    /// A detection call was refused for want of a token.
    #[error("the call was refused as unauthorized: {0}")]
    Unauthorized(String),
    /// A detection call's answer is not JSON.
    #[error("{addr}: the answer to a {method} call is not JSON: {answer}")]
    NotJson {
        /// The target.
        addr: ConnectAddr,
        /// The method called.
        method: String,
        /// What came back.
        answer: String,
    },
    /// Every detection call got -32601.
    #[error("{0} serves no service of the description (every probe got -32601)")]
    NoService(ConnectAddr),
    /// `--services` named a service the description does not have.
    #[error("--services: `{service}` is not a service of the description ({known})")]
    UnknownService {
        /// The service named.
        service: String,
        /// The description's services, comma-separated.
        known: String,
    },
    /// The cases could not be built.
    #[error(transparent)]
    Cases(#[from] CaseError),
    /// Compat mode found nothing deprecated to check in the services tested.
    #[error(
        "--compat {policy}: the description marks nothing deprecated in {services} (no method, param, \
         result member or event): there is nothing to check"
    )]
    NothingDeprecated {
        /// The services tested, comma-separated.
        services: String,
        /// The policy checked.
        policy: String,
    },
}

/// A set of ID patterns: globs (`*` within a segment, `**` across) and plain prefixes.
#[derive(Clone, Debug, Default)]
pub struct Patterns {
    entries: Vec<(String, Option<GlobMatcher>)>,
}

impl Patterns {
    /// Adds a pattern; an error says what is wrong with it.
    pub fn add(&mut self, pattern: &str) -> Result<(), PatternError> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        let glob = if pattern.contains(['*', '?', '[', '{']) {
            let glob: Glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|why| PatternError::Glob { pattern: pattern.to_string(), why })?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        self.entries.push((pattern.to_string(), glob));
        Ok(())
    }

    /// Whether no pattern was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` matches a pattern (a plain pattern matches itself and every ID under it).
    pub fn matches(&self, id: &str) -> bool {
        self.entries.iter().any(|(pattern, glob)| match glob {
            Some(glob) => glob.is_match(id),
            None => id == pattern || id.strip_prefix(pattern.as_str()).is_some_and(|rest| rest.starts_with('/')),
        })
    }

    /// The patterns that match none of `ids`.
    pub fn unused<'a>(&'a self, ids: &[&str]) -> Vec<&'a str> {
        self.entries
            .iter()
            .filter(|(pattern, _)| {
                let mut single = Patterns::default();
                let _ = single.add(pattern);
                !ids.iter().any(|id| single.matches(id))
            })
            .map(|(pattern, _)| pattern.as_str())
            .collect()
    }
}

/// Reads a known-failures file: one case ID or glob per line, `#` starts a comment.
pub fn load_known_failures(path: &Path) -> Result<Patterns, PatternError> {
    let text = std::fs::read_to_string(path).map_err(|why| PatternError::Read { path: path.to_path_buf(), why })?;
    parse_known_failures(&text).map_err(|(line, why)| PatternError::Line {
        path: path.to_path_buf(),
        line,
        why: Box::new(why),
    })
}

/// Parses the text of a known-failures file; an error carries the 1-based line number.
pub fn parse_known_failures(text: &str) -> Result<Patterns, (usize, PatternError)> {
    let mut patterns = Patterns::default();
    for (index, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        if entry.contains(char::is_whitespace) {
            return Err((index + 1, PatternError::Spaces(entry.to_string())));
        }
        patterns.add(entry).map_err(|why| (index + 1, why))?;
    }
    Ok(patterns)
}

/// Where and how to run.
pub struct Target {
    /// The address.
    pub addr: ConnectAddr,
    /// The label used in reports.
    pub label: String,
    /// The token for `tcp:`/`http://`.
    pub token: Option<Token>,
    /// TLS for `tcp:`/`http://` (`None`: plain).
    pub tls: Option<ClientTls>,
    /// Longest wait for one answer.
    pub wait: Duration,
}

/// What to run.
pub struct Selection<'a> {
    /// The description.
    pub description: &'a Description,
    /// Services to test; empty: those the target answers.
    pub services: Vec<String>,
    /// Only the cases matching these (all when empty).
    pub only: &'a Patterns,
    /// Seed of generated values.
    pub seed: u64,
    /// Generated valid calls per method.
    pub generated: usize,
    /// Param values to use in valid calls (`--fixtures`).
    pub fixtures: &'a Fixtures,
}

/// What a suite run against one target gave.
#[derive(Clone, Debug)]
pub struct SuiteRun {
    /// The outcome of each case, in the order they ran.
    pub outcomes: Vec<Outcome>,
    /// The coverage of each method: every method of the services tested, or with `--only`
    /// every method a selected case called in a way that could succeed.
    pub coverage: Vec<MethodCoverage>,
    /// What the event cases could not exercise, in words (see [`crate::events`]).
    pub not_exercised: Vec<String>,
}

/// A connection that is reopened when it breaks.
struct Session<'t> {
    target: &'t Target,
    conn: Option<Conn>,
    /// A method the target serves, called after a frame that must get no answer.
    probe: String,
}

/// How long to listen, after the probe's answer, for a late answer to a frame that must get none.
const NOTIFICATION_GRACE: Duration = Duration::from_millis(20);

/// The ID of the request sent after a frame that must get no answer.
const PROBE_ID: &str = "\"conformance-probe\"";

impl Session<'_> {
    async fn conn(&mut self) -> Result<&mut Conn, ConnError> {
        if self.conn.is_none() {
            self.conn = Some(
                Conn::open(&self.target.addr, self.target.token.as_ref(), self.target.tls.as_ref(), self.target.wait)
                    .await?,
            );
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    /// Sends `text`; returns what came back for the report and the answer to judge (`None`:
    /// nothing came back, which line transports prove with a request sent right after).
    async fn exchange(&mut self, text: &str, expect_nothing: bool) -> (Vec<String>, Result<Option<String>, RunError>) {
        let probe = frame(&self.probe, Some(&json!({})), Some(PROBE_ID));
        let mut seen = Vec::new();
        let result = match self.conn().await {
            Err(why) => Err(why.into()),
            Ok(conn) if conn.is_http() => conn.post(text).await.map_err(RunError::from).map(|answer| {
                seen.push(format!("HTTP {}\n{}", answer.status, answer.body));
                (!answer.body.trim().is_empty()).then_some(answer.body)
            }),
            Ok(conn) => match conn.send_line(text).await {
                Err(why) => Err(why.into()),
                Ok(()) if !expect_nothing => conn.read_line().await.map_err(RunError::from).map(|line| {
                    seen.push(line.clone());
                    Some(line)
                }),
                Ok(()) => match conn.send_line(&probe).await {
                    Err(why) => Err(why.into()),
                    Ok(()) => loop {
                        match conn.read_line().await {
                            Err(why) => break Err(RunError::AfterProbe(why)),
                            Ok(line) => {
                                if answers_probe(&line) {
                                    // A server that answers out of order may answer the frame
                                    // after the probe: give it a moment, so the mistake is
                                    // blamed on this case and not on the next one.
                                    match conn.line_within(NOTIFICATION_GRACE).await {
                                        Ok(Some(late)) => seen.push(late),
                                        Ok(None) => {}
                                        Err(why) => break Err(why.into()),
                                    }
                                    break Ok(seen.first().cloned());
                                }
                                seen.push(line);
                            }
                        }
                    },
                },
            },
        };
        if result.is_err() {
            // Whatever broke, the next case starts on a fresh connection.
            self.conn = None;
        }
        (seen, result)
    }
}

impl Session<'_> {
    /// Sends a REST case to its route and judges the answer.
    async fn rest(
        &mut self,
        description: &Description,
        case: &Case,
        verb: &str,
        path: &str,
    ) -> (Vec<String>, Judgement) {
        let Expect::Rest { method } = &case.expect else {
            return (Vec::new(), Judgement::only(Err(Mismatch::NotRest)));
        };
        let answer = match self.conn().await {
            Ok(conn) => conn.http(verb, path, &case.frame).await,
            Err(why) => Err(why),
        };
        match answer {
            Ok(answer) => {
                let verdict = check_rest(description, method, answer.status, &answer.body);
                (vec![format!("HTTP {}\n{}", answer.status, answer.body)], verdict)
            }
            Err(why) => {
                self.conn = None;
                (Vec::new(), Judgement::only(Err(RunError::from(why).into())))
            }
        }
    }
}

/// Whether `line` is the answer to the request sent after a frame that must get none.
fn answers_probe(line: &str) -> bool {
    serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(line)
        .ok()
        .and_then(|members| members.get("id").map(|id| id.get().trim() == PROBE_ID))
        .unwrap_or(false)
}

/// Judges what came back for `case`.
fn judge(description: &Description, case: &Case, got: Result<Option<String>, RunError>) -> Judgement {
    match (&case.expect, got) {
        (_, Err(why)) => Judgement::only(Err(why.into())),
        (Expect::Nothing, Ok(None)) => Judgement::only(Ok(())),
        (Expect::Nothing, Ok(Some(_))) => Judgement::only(Err(Mismatch::NotSilent)),
        (_, Ok(None)) => Judgement::only(Err(Mismatch::NoAnswer)),
        (expect, Ok(Some(text))) => check(description, expect, &text),
    }
}

/// The services of `description` that `target` serves: a service is served unless a call of
/// its first method gets -32601 (Method not found).
pub async fn detect_services(description: &Description, target: &Target) -> Result<Vec<String>, RunError> {
    let mut conn = Conn::open(&target.addr, target.token.as_ref(), target.tls.as_ref(), target.wait).await?;
    let token_hint = target.token.is_none()
        && matches!(
            &target.addr,
            ConnectAddr::Listen(vproto_jsonrpc::ListenAddr::Tcp { .. } | vproto_jsonrpc::ListenAddr::Http { .. })
        );
    let hint = |why: RunError| RunError::Detect { addr: target.addr.clone(), why: Box::new(why), token_hint };
    let hint_conn = |why: ConnError| hint(why.into());
    let mut served = Vec::new();
    for service in description.services() {
        // A deprecated method is a poor probe: a target under a compatibility policy refuses it.
        let of_service = || description.methods.iter().filter(|m| m.service == service);
        let Some(method) = of_service().find(|m| !m.deprecated).or_else(|| of_service().next()) else { continue };
        let text = frame(&method.name, Some(&json!({})), Some("\"conformance-detect\""));
        let answer = if conn.is_http() {
            conn.post(&text).await.map_err(hint_conn)?.body
        } else {
            conn.send_line(&text).await.map_err(hint_conn)?;
            conn.read_line().await.map_err(hint_conn)?
        };
        let value: Value = serde_json::from_str(&answer).map_err(|_| RunError::NotJson {
            addr: target.addr.clone(),
            method: method.name.clone(),
            answer: answer.clone(),
        })?;
        match value.pointer("/error/code").and_then(Value::as_i64) {
            Some(codes::METHOD_NOT_FOUND) => {}
            Some(codes::UNAUTHORIZED) => return Err(hint(RunError::Unauthorized(answer))),
            _ => served.push(service),
        }
    }
    if served.is_empty() {
        return Err(RunError::NoService(target.addr.clone()));
    }
    Ok(served)
}

/// Runs the selected cases against `target`, printing progress on stderr, and tallies the
/// coverage of the methods tested.
pub async fn run_suite(selection: &Selection<'_>, target: &Target) -> Result<SuiteRun, RunError> {
    let services = if selection.services.is_empty() {
        detect_services(selection.description, target).await?
    } else {
        for service in &selection.services {
            if !selection.description.services().contains(service) {
                return Err(RunError::UnknownService {
                    service: service.clone(),
                    known: selection.description.services().join(", "),
                });
            }
        }
        selection.services.clone()
    };
    let plan = Plan {
        description: selection.description,
        services: services.clone(),
        seed: selection.seed,
        generated: selection.generated,
        rest: matches!(target.addr, ConnectAddr::Listen(vproto_jsonrpc::ListenAddr::Http { .. })),
        fixtures: selection.fixtures,
    };
    let cases: Vec<Case> = plan
        .cases()?
        .into_iter()
        .filter(|case| selection.only.is_empty() || selection.only.matches(&case.id))
        .collect();
    let probe = plan
        .methods()
        .iter()
        .find(|m| m.params.iter().all(|p| !p.required))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| "rpc.discover".into());
    let mut session = Session { target, conn: None, probe };
    // Without --only every method tested must be covered; with it, those the cases selected call.
    let required = if selection.only.is_empty() { plan.methods() } else { Vec::new() };
    let mut tally = Tally::new(&target.label, required.iter().map(|m| m.name.as_str()));
    let mut stderr = std::io::stderr();
    let _ = writeln!(
        stderr,
        "conform: {} ({}): {} cases for {}",
        target.label,
        target.addr,
        cases.len(),
        services.join(", ")
    );
    let mut outcomes = Vec::with_capacity(cases.len());
    let mut failed = 0;
    for (index, case) in cases.iter().enumerate() {
        let started = Instant::now();
        let (seen, judgement) = match &case.route {
            Some((verb, path)) => session.rest(selection.description, case, verb, path).await,
            None => {
                let (seen, got) = session.exchange(&case.frame, case.expect == Expect::Nothing).await;
                (seen, judge(selection.description, case, got))
            }
        };
        tally.record(&case.expect, &judgement.observed);
        let verdict = judgement.verdict;
        if verdict.is_err() {
            failed += 1;
            let _ = writeln!(stderr, "conform: {}: FAIL {}", target.label, case.id);
        }
        if (index + 1) % 100 == 0 {
            let _ =
                writeln!(stderr, "conform: {}: {}/{} cases run, {failed} failed", target.label, index + 1, cases.len());
        }
        outcomes.push(Outcome {
            id: case.id.clone(),
            target: target.label.clone(),
            what: case.what.clone(),
            status: if verdict.is_ok() { Status::Pass } else { Status::Fail },
            request: match &case.route {
                Some((verb, path)) => format!("{verb} {path}\n{}", case.frame),
                None => case.frame.clone(),
            },
            response: seen.join("\n"),
            expected: describe(&case.expect),
            why: verdict.err().map(|why| why.to_string()).unwrap_or_default(),
            duration: started.elapsed(),
        });
    }
    let events = run_events(&plan, target, selection.only).await;
    for outcome in events.outcomes.iter().filter(|o| o.status.fails_run()) {
        failed += 1;
        let _ = writeln!(stderr, "conform: {}: FAIL {}", target.label, outcome.id);
    }
    let ran = cases.len() + events.outcomes.len();
    outcomes.extend(events.outcomes);
    let _ = writeln!(stderr, "conform: {}: {ran} cases run, {failed} failed", target.label);
    for note in &events.not_exercised {
        let _ = writeln!(stderr, "conform: not exercised: {note}");
    }
    let coverage = tally.finish();
    let uncovered: Vec<&str> = coverage.iter().filter(|c| !c.covered()).map(|c| c.method.as_str()).collect();
    if !uncovered.is_empty() {
        let _ = writeln!(
            stderr,
            "conform: {}: uncovered (no successful result checked): {}",
            target.label,
            uncovered.join(", ")
        );
    }
    Ok(SuiteRun { outcomes, coverage, not_exercised: events.not_exercised })
}

/// Applies the known failures: listed failures become expected, listed passes "now passing".
pub fn apply_known_failures(outcomes: &mut [Outcome], known: &Patterns) {
    for outcome in outcomes.iter_mut().filter(|o| known.matches(&o.id)) {
        outcome.status = match outcome.status {
            Status::Fail => Status::ExpectedFailure,
            Status::Pass => {
                outcome.why = "listed as a known failure but passes now: remove it from the known-failures file".into();
                Status::NowPassing
            }
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let mut patterns = Patterns::default();
        patterns.add("protocol/batch").unwrap();
        patterns.add("method/*/invalid/type/**").unwrap();
        assert!(patterns.matches("protocol/batch/mixed"));
        assert!(patterns.matches("protocol/batch"));
        assert!(!patterns.matches("protocol/batches"));
        assert!(patterns.matches("method/agent.hello/invalid/type/registration/endpoint"));
        assert!(!patterns.matches("method/agent.hello/invalid/missing/registration"));
        assert!(Patterns::default().add("[").is_err());
    }

    #[test]
    fn known_failures_files() {
        let patterns =
            parse_known_failures("# a comment\n\nprotocol/id/large  # too big for us\nmethod/*/valid/**\n").unwrap();
        assert!(patterns.matches("protocol/id/large"));
        assert!(patterns.matches("method/driver.list_hardware/valid/example-1"));
        assert!(!patterns.matches("protocol/id/null"));
        assert_eq!(parse_known_failures("ok\nnot ok\n").err().unwrap().0, 2);
        let mut outcomes = vec![outcome("a", Status::Fail), outcome("b", Status::Pass), outcome("c", Status::Fail)];
        apply_known_failures(&mut outcomes, &parse_known_failures("a\nb\n").unwrap());
        let statuses: Vec<Status> = outcomes.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [Status::ExpectedFailure, Status::NowPassing, Status::Fail]);
    }

    fn outcome(id: &str, status: Status) -> Outcome {
        Outcome {
            id: id.into(),
            target: "t".into(),
            what: String::new(),
            status,
            request: String::new(),
            response: String::new(),
            expected: String::new(),
            why: String::new(),
            duration: Duration::ZERO,
        }
    }
}
