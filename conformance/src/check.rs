//! Judging an answer against a case's expectation: the JSON-RPC response envelope, the id
//! echoed byte for byte, error codes, and results and declared errors' data against the
//! description's schemas.

use std::collections::BTreeMap;

use serde_json::{value::RawValue, Value};

use crate::{
    cases::{Accept, Expect, IdRule},
    description::{DeclaredError, Description, Method},
    run::RunError,
};

/// What an expectation asks for, in words (for reports).
pub fn describe(expect: &Expect) -> String {
    let id = |rule: &IdRule| match rule {
        IdRule::Echo(id) => format!("id {id}"),
        IdRule::Null => "id null".into(),
        IdRule::EchoOrNull(id) => format!("id {id} or null"),
    };
    match expect {
        Expect::Error { code, id: rule } => format!("an error {code} with {}", id(rule)),
        Expect::Answer { method, id: rule, accept } => match accept {
            Accept::ResultOrDeclared { forbid: None } => {
                format!("a result valid for {method}, or an error {method} declares with valid data, with {}", id(rule))
            }
            Accept::ResultOrDeclared { forbid: Some(code) } => format!(
                "a result valid for {method}, or an error {method} declares (other than {code}) with valid data, with {}",
                id(rule)
            ),
            Accept::UnsupportedVersion { code, object, max_version } => format!(
                "the declared error {code} (UnsupportedVersion) whose data names {object} and {max_version}, with {}",
                id(rule)
            ),
        },
        Expect::Nothing => "no answer at all".into(),
        Expect::Rest { method } => format!(
            "a 2xx status with a result valid for {method}, or another status with an error object {method} declares"
        ),
        Expect::Batch(items) => {
            let inner: Vec<String> = items.iter().map(describe).collect();
            format!("an array of {} answers, in any order: {}", items.len(), inner.join("; "))
        }
    }
}

/// What an answer showed of the method called, beyond the verdict; the suite's coverage
/// ([`crate::coverage`]) is tallied from these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A successful result, checked against the method's result schema.
    Result {
        /// `service.method`.
        method: String,
        /// Whether it fits the result schema.
        valid: bool,
    },
    /// An error the method declares, answered to a call that could have succeeded.
    Declared {
        /// `service.method`.
        method: String,
        /// The error's name, such as `NetworkNotFound`.
        error: String,
    },
}

/// Why an answer is not what its case expects, or why there was none to judge.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// The exchange failed (connection, timeout, closed).
    #[error(transparent)]
    Exchange(#[from] RunError),
    /// A REST check was asked of a case that is not a REST case.
    #[error("not a REST case")]
    NotRest,
    /// A frame that must get no answer got one.
    #[error("expected no answer, but one came back")]
    NotSilent,
    /// An answer was checked against an expectation of none.
    #[error("expected no answer, got one")]
    Unexpected,
    /// Nothing came back where an answer was expected.
    #[error("no answer came back")]
    NoAnswer,
    /// A method the case calls is not in the description.
    #[error("{0} is not in the description")]
    UnknownMethod(String),
    /// An HTTP body that is not JSON (the status).
    #[error("HTTP {0} with a body that is not JSON")]
    HttpNotJson(u16),
    /// An HTTP error body without an integer `code` (the status).
    #[error("HTTP {0}, and the body is not an error object with an integer `code`")]
    HttpNoCode(u16),
    /// An HTTP error body without a string `message` (the status).
    #[error("HTTP {0}: the error has no string `message`")]
    HttpNoMessage(u16),
    /// An HTTP error the method does not declare.
    #[error("HTTP {status} with error {code}, which {method} does not declare")]
    HttpUndeclared {
        /// The HTTP status.
        status: u16,
        /// The error code.
        code: i64,
        /// The method.
        method: String,
    },
    /// A result that does not fit the method's result schema.
    #[error("the result does not fit {method}'s result schema: {violations}")]
    InvalidResult {
        /// The method.
        method: String,
        /// The violations, `; `-separated.
        violations: String,
    },
    /// A declared error without the `data` it declares.
    #[error("error {code} ({name}) has no `data`")]
    NoData {
        /// The error code.
        code: i64,
        /// The declared error's name.
        name: String,
    },
    /// A declared error whose `data` does not fit its schema.
    #[error("the data of error {code} ({name}) is invalid: {violations}")]
    InvalidData {
        /// The error code.
        code: i64,
        /// The declared error's name.
        name: String,
        /// The violations, `; `-separated.
        violations: String,
    },
    /// A single answer where a batch's array was expected.
    #[error("expected an array of answers, got a single answer")]
    SingleNotBatch,
    /// A batch answer that is not a JSON array.
    #[error("the answer is not a JSON array")]
    NotArray,
    /// A batch answer with the wrong number of answers.
    #[error("expected {expected} answers in the array, got {got}")]
    BatchLength {
        /// The answers expected.
        expected: usize,
        /// The answers that came back.
        got: usize,
    },
    /// No answer of a batch fits one of its expectations (described).
    #[error("no answer in the array is {0}")]
    BatchUnmatched(String),
    /// An array where a single answer was expected.
    #[error("expected a single answer, got an array")]
    BatchNotSingle,
    /// An answer that is not a JSON object.
    #[error("the answer is not a JSON object")]
    NotObject,
    /// An answer whose `jsonrpc` is not `"2.0"`.
    #[error("the answer's `jsonrpc` member is not \"2.0\"")]
    BadVersion,
    /// An answer with a member JSON-RPC does not define.
    #[error("the answer has an unknown member `{0}`")]
    UnknownMember(String),
    /// An answer without `id`.
    #[error("the answer has no `id` member")]
    NoId,
    /// An answer whose id is not the one expected.
    #[error("the answer's id is {got}, expected {wanted}")]
    WrongId {
        /// The id as it came back.
        got: String,
        /// The id (or ids) expected.
        wanted: String,
    },
    /// An answer with both `result` and `error`.
    #[error("the answer has both `result` and `error`")]
    ResultAndError,
    /// An answer with neither `result` nor `error`.
    #[error("the answer has neither `result` nor `error`")]
    NeitherResultNorError,
    /// An error without an integer `code`.
    #[error("the error has no integer `code`")]
    NoCode,
    /// An error without a string `message`.
    #[error("the error has no string `message`")]
    NoMessage,
    /// Another error code than the one expected.
    #[error("expected error {wanted}, got {got}")]
    WrongCode {
        /// The code expected.
        wanted: i64,
        /// The code that came back.
        got: i64,
    },
    /// An error the method does not declare.
    #[error("error {code} is not one {method} declares ({declared})")]
    Undeclared {
        /// The error code.
        code: i64,
        /// The method.
        method: String,
        /// The errors it declares (`code Name`, comma-separated), or `it declares none`.
        declared: String,
    },
    /// A declared error that the case rules out.
    #[error("error {code} ({name}) is wrong here")]
    Forbidden {
        /// The error code.
        code: i64,
        /// The declared error's name.
        name: String,
    },
    /// Another declared error where UnsupportedVersion was expected.
    #[error("expected error {wanted} (UnsupportedVersion), got {code} ({name})")]
    NotUnsupportedVersion {
        /// UnsupportedVersion's code.
        wanted: i64,
        /// The code that came back.
        code: i64,
        /// Its declared name.
        name: String,
    },
    /// UnsupportedVersion data that does not name the object.
    #[error("the UnsupportedVersion data {data} does not name the object {object}")]
    VersionDataObject {
        /// The data.
        data: Value,
        /// The object expected.
        object: String,
    },
    /// UnsupportedVersion data that does not name the newest version.
    #[error("the UnsupportedVersion data {data} does not name {max_version}, the newest version of {object}")]
    VersionDataVersion {
        /// The data.
        data: Value,
        /// The version expected.
        max_version: String,
        /// The object.
        object: String,
    },
    /// A result where an error was expected.
    #[error("expected error {0}, got a result")]
    ResultNotError(i64),
    /// A result where UnsupportedVersion was expected.
    #[error("expected error {0} (UnsupportedVersion), got a result")]
    ResultNotUnsupportedVersion(i64),
}

/// The verdict on one answer, and what it showed.
#[derive(Debug)]
pub struct Judgement {
    /// `Ok` when the answer is what the case expects; else why not.
    pub verdict: Result<(), Mismatch>,
    /// What the answer showed of the methods called (of a batch: each matched answer's).
    pub observed: Vec<Observed>,
}

impl Judgement {
    /// A verdict that observed nothing (no answer, or none to judge).
    pub fn only(verdict: Result<(), Mismatch>) -> Self {
        Judgement { verdict, observed: Vec::new() }
    }

    /// Runs `judge`, which pushes what it observes, into a judgement.
    fn collect(judge: impl FnOnce(&mut Vec<Observed>) -> Result<(), Mismatch>) -> Self {
        let mut observed = Vec::new();
        let verdict = judge(&mut observed);
        Judgement { verdict, observed }
    }
}

/// Checks the answer of a REST route bound to `method`.
pub fn check_rest(description: &Description, method: &str, status: u16, body: &str) -> Judgement {
    Judgement::collect(|seen| rest(description, method, status, body, seen))
}

fn rest(
    description: &Description,
    method: &str,
    status: u16,
    body: &str,
    seen: &mut Vec<Observed>,
) -> Result<(), Mismatch> {
    let method = description.method_named(method).ok_or_else(|| Mismatch::UnknownMethod(method.to_string()))?;
    let value: Value = serde_json::from_str(body).map_err(|_| Mismatch::HttpNotJson(status))?;
    if (200..300).contains(&status) {
        return result_fits(description, method, &value, seen);
    }
    let code = value.get("code").and_then(Value::as_i64).ok_or(Mismatch::HttpNoCode(status))?;
    if !value.get("message").is_some_and(Value::is_string) {
        return Err(Mismatch::HttpNoMessage(status));
    }
    let declared =
        method.declared(code).ok_or_else(|| Mismatch::HttpUndeclared { status, code, method: method.name.clone() })?;
    seen.push(Observed::Declared { method: method.name.clone(), error: declared.name.clone() });
    data_fits(description, declared, &value).map(drop)
}

/// Checks `result` against `method`'s result schema, noting that a result was checked.
fn result_fits(
    description: &Description,
    method: &Method,
    result: &Value,
    seen: &mut Vec<Observed>,
) -> Result<(), Mismatch> {
    let violations = description.violations(&method.result, result);
    seen.push(Observed::Result { method: method.name.clone(), valid: violations.is_empty() });
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Mismatch::InvalidResult { method: method.name.clone(), violations: violations.join("; ") })
    }
}

/// Checks the `data` of `error`, an error object of the declared error `declared`; returns the
/// data when the declared error has some.
fn data_fits<'e>(
    description: &Description,
    declared: &DeclaredError,
    error: &'e Value,
) -> Result<Option<&'e Value>, Mismatch> {
    let Some(schema) = &declared.data else { return Ok(None) };
    let code = declared.code;
    let data = error.get("data").ok_or_else(|| Mismatch::NoData { code, name: declared.name.clone() })?;
    let violations = description.violations(schema, data);
    if !violations.is_empty() {
        return Err(Mismatch::InvalidData { code, name: declared.name.clone(), violations: violations.join("; ") });
    }
    Ok(Some(data))
}

/// Checks one answer text (a line, or an HTTP body) against `expect` (not `Nothing`).
pub fn check(description: &Description, expect: &Expect, text: &str) -> Judgement {
    Judgement::collect(|seen| answer(description, expect, text, seen))
}

fn answer(description: &Description, expect: &Expect, text: &str, seen: &mut Vec<Observed>) -> Result<(), Mismatch> {
    match expect {
        Expect::Nothing => Err(Mismatch::Unexpected),
        Expect::Rest { method } => rest(description, method, 200, text, seen),
        Expect::Batch(items) => {
            let answers: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(|_| {
                if text.trim_start().starts_with('{') {
                    Mismatch::SingleNotBatch
                } else {
                    Mismatch::NotArray
                }
            })?;
            if answers.len() != items.len() {
                return Err(Mismatch::BatchLength { expected: items.len(), got: answers.len() });
            }
            let mut used = vec![false; answers.len()];
            for item in items {
                let found =
                    answers.iter().enumerate().filter(|(index, _)| !used[*index]).find_map(|(index, answer)| {
                        let mut matched = Vec::new();
                        single(description, item, answer.get(), &mut matched).is_ok().then_some((index, matched))
                    });
                match found {
                    Some((index, matched)) => {
                        used[index] = true;
                        seen.extend(matched);
                    }
                    None => return Err(Mismatch::BatchUnmatched(describe(item))),
                }
            }
            Ok(())
        }
        _ => single(description, expect, text, seen),
    }
}

/// Checks one response object.
fn single(description: &Description, expect: &Expect, text: &str, seen: &mut Vec<Observed>) -> Result<(), Mismatch> {
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).map_err(|_| {
        if text.trim_start().starts_with('[') {
            Mismatch::BatchNotSingle
        } else {
            Mismatch::NotObject
        }
    })?;
    let value = |key: &str| members.get(key).and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
    if value("jsonrpc") != Some(Value::String("2.0".into())) {
        return Err(Mismatch::BadVersion);
    }
    for key in members.keys() {
        if !["jsonrpc", "id", "result", "error"].contains(&key.as_str()) {
            return Err(Mismatch::UnknownMember(key.clone()));
        }
    }
    let Some(raw_id) = members.get("id").map(|raw| raw.get().trim()) else {
        return Err(Mismatch::NoId);
    };
    let rule = match expect {
        Expect::Error { id, .. } | Expect::Answer { id, .. } => id,
        _ => unreachable!("only errors and answers are checked here"),
    };
    let id_ok = match rule {
        IdRule::Echo(sent) => raw_id == sent,
        IdRule::Null => raw_id == "null",
        IdRule::EchoOrNull(sent) => raw_id == sent || raw_id == "null",
    };
    if !id_ok {
        let wanted = match rule {
            IdRule::Echo(sent) => sent.clone(),
            IdRule::Null => "null".into(),
            IdRule::EchoOrNull(sent) => format!("{sent} or null"),
        };
        return Err(Mismatch::WrongId { got: raw_id.to_string(), wanted });
    }
    let (result, error) = (value("result"), members.get("error").map(|_| value("error")));
    let error = match (result, error) {
        (Some(_), Some(_)) => return Err(Mismatch::ResultAndError),
        (None, None) => return Err(Mismatch::NeitherResultNorError),
        (Some(result), None) => return result_ok(description, expect, &result, seen),
        (None, Some(error)) => error.unwrap_or(Value::Null),
    };
    let code = error.get("code").and_then(Value::as_i64).ok_or(Mismatch::NoCode)?;
    if !error.get("message").is_some_and(Value::is_string) {
        return Err(Mismatch::NoMessage);
    }
    match expect {
        Expect::Error { code: wanted, .. } if code == *wanted => Ok(()),
        Expect::Error { code: wanted, .. } => Err(Mismatch::WrongCode { wanted: *wanted, got: code }),
        Expect::Answer { method, accept, .. } => {
            let method = description.method_named(method).ok_or_else(|| Mismatch::UnknownMethod(method.to_string()))?;
            let declared = method.declared(code).ok_or_else(|| {
                let codes: Vec<String> = method.errors.iter().map(|e| format!("{} {}", e.code, e.name)).collect();
                Mismatch::Undeclared {
                    code,
                    method: method.name.clone(),
                    declared: if codes.is_empty() { "it declares none".into() } else { codes.join(", ") },
                }
            })?;
            match accept {
                Accept::ResultOrDeclared { forbid: Some(forbidden) } if *forbidden == code => {
                    return Err(Mismatch::Forbidden { code, name: declared.name.clone() })
                }
                Accept::ResultOrDeclared { .. } => {
                    seen.push(Observed::Declared { method: method.name.clone(), error: declared.name.clone() });
                }
                Accept::UnsupportedVersion { code: wanted, .. } if *wanted != code => {
                    return Err(Mismatch::NotUnsupportedVersion { wanted: *wanted, code, name: declared.name.clone() })
                }
                Accept::UnsupportedVersion { .. } => {}
            }
            let data = data_fits(description, declared, &error)?;
            if let (Accept::UnsupportedVersion { object, max_version, .. }, Some(data)) = (accept, data) {
                let strings: Vec<&str> =
                    data.as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str()).collect();
                if !strings.contains(&object.as_str()) {
                    return Err(Mismatch::VersionDataObject { data: data.clone(), object: object.clone() });
                }
                if !strings.contains(&max_version.as_str()) {
                    return Err(Mismatch::VersionDataVersion {
                        data: data.clone(),
                        max_version: max_version.clone(),
                        object: object.clone(),
                    });
                }
            }
            Ok(())
        }
        _ => unreachable!("only errors and answers are checked here"),
    }
}

fn result_ok(
    description: &Description,
    expect: &Expect,
    result: &Value,
    seen: &mut Vec<Observed>,
) -> Result<(), Mismatch> {
    match expect {
        Expect::Error { code, .. } => Err(Mismatch::ResultNotError(*code)),
        Expect::Answer { accept: Accept::UnsupportedVersion { code, .. }, .. } => {
            Err(Mismatch::ResultNotUnsupportedVersion(*code))
        }
        Expect::Answer { method, .. } => {
            let method = description.method_named(method).ok_or_else(|| Mismatch::UnknownMethod(method.to_string()))?;
            result_fits(description, method, result, seen)
        }
        _ => unreachable!("only errors and answers are checked here"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(method: &str, id: &str, accept: Accept) -> Expect {
        Expect::Answer { method: method.into(), id: IdRule::Echo(id.into()), accept }
    }

    #[test]
    fn ids_are_compared_byte_for_byte() {
        let description = Description::published().unwrap();
        let expect = Expect::Error { code: -32601, id: IdRule::Echo("1.50".into()) };
        assert!(check(&description, &expect, r#"{"jsonrpc":"2.0","id":1.50,"error":{"code":-32601,"message":"m"}}"#)
            .verdict
            .is_ok());
        let wrong = check(&description, &expect, r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":-32601,"message":"m"}}"#);
        assert!(wrong.verdict.unwrap_err().to_string().contains("id is 1.5"));
    }

    #[test]
    fn results_and_declared_errors_are_validated() {
        let description = Description::published().unwrap();
        let any = Accept::ResultOrDeclared { forbid: None };
        let expect = answer("driver.start_discovery", "3", any.clone());
        assert!(check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":{"status":"DONE"}}"#).verdict.is_ok());
        assert!(check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).verdict.is_err());
        let declared =
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":1100,"message":"m","data":{"endpoint":"a:1","reason":"r"}}}"#;
        assert!(check(&description, &expect, declared).verdict.is_ok());
        let undeclared = r#"{"jsonrpc":"2.0","id":3,"error":{"code":1003,"message":"m"}}"#;
        assert!(check(&description, &expect, undeclared).verdict.unwrap_err().to_string().contains("not one"));
        let version = Accept::UnsupportedVersion { code: 1000, object: "HostInfo".into(), max_version: "1.0".into() };
        let expect = answer("network.create_port", "4", version);
        let good = r#"{"jsonrpc":"2.0","id":4,"error":{"code":1000,"message":"m","data":{"object":"HostInfo","max_version":"1.0"}}}"#;
        assert!(check(&description, &expect, good).verdict.is_ok());
        let bad = r#"{"jsonrpc":"2.0","id":4,"error":{"code":1000,"message":"m","data":{"object":"HostInfo","max_version":"1.1"}}}"#;
        assert!(check(&description, &expect, bad).verdict.is_err());
    }

    #[test]
    fn batches_match_in_any_order() {
        let description = Description::published().unwrap();
        let expect = Expect::Batch(vec![
            Expect::Error { code: -32600, id: IdRule::Null },
            Expect::Error { code: -32601, id: IdRule::Echo("\"b\"".into()) },
        ]);
        let text = r#"[{"jsonrpc":"2.0","id":"b","error":{"code":-32601,"message":"m"}},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"m"}}]"#;
        assert!(check(&description, &expect, text).verdict.is_ok());
        let short = r#"[{"jsonrpc":"2.0","id":"b","error":{"code":-32601,"message":"m"}}]"#;
        assert!(check(&description, &expect, short).verdict.is_err());
    }

    #[test]
    fn results_and_declared_errors_are_observed_for_coverage() {
        let description = Description::published().unwrap();
        let method = "driver.start_discovery";
        let expect = answer(method, "3", Accept::ResultOrDeclared { forbid: None });
        let valid = check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":{"status":"DONE"}}"#);
        assert_eq!(valid.observed, [Observed::Result { method: method.into(), valid: true }]);
        let listed = check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":[{"status":"DONE"}]}"#);
        assert!(listed.verdict.is_err());
        assert_eq!(listed.observed, [Observed::Result { method: method.into(), valid: false }]);
        let declared =
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":1100,"message":"m","data":{"endpoint":"a:1","reason":"r"}}}"#;
        let name = description.method_named(method).unwrap().declared(1100).unwrap().name.clone();
        assert_eq!(
            check(&description, &expect, declared).observed,
            [Observed::Declared { method: method.into(), error: name }]
        );
        // A result whose envelope is wrong is not checked, so it covers nothing.
        let wrong_id = check(&description, &expect, r#"{"jsonrpc":"2.0","id":4,"result":{"status":"DONE"}}"#);
        assert!(wrong_id.observed.is_empty());
        // Nor does a result where an error was expected.
        let error = Expect::Error { code: -32602, id: IdRule::Echo("3".into()) };
        assert!(check(&description, &error, r#"{"jsonrpc":"2.0","id":3,"result":{"status":"DONE"}}"#)
            .observed
            .is_empty());
        let rest = check_rest(&description, method, 200, r#"{"status":"DONE"}"#);
        assert_eq!(rest.observed, [Observed::Result { method: method.into(), valid: true }]);
    }
}
