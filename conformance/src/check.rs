//! Judging an answer against a case's expectation: the JSON-RPC response envelope, the id
//! echoed byte for byte, error codes, and results and declared errors' data against the
//! description's schemas.

use std::collections::BTreeMap;

use serde_json::{value::RawValue, Value};

use crate::{
    cases::{Accept, Expect, IdRule},
    description::Description,
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

/// Checks the answer of a REST route bound to `method`.
pub fn check_rest(description: &Description, method: &str, status: u16, body: &str) -> Result<(), String> {
    let method = description.method_named(method).ok_or_else(|| format!("{method} is not in the description"))?;
    let value: Value = serde_json::from_str(body).map_err(|_| format!("HTTP {status} with a body that is not JSON"))?;
    if (200..300).contains(&status) {
        let violations = description.violations(&method.result, &value);
        if !violations.is_empty() {
            return Err(format!("the result does not fit {}'s result schema: {}", method.name, violations.join("; ")));
        }
        return Ok(());
    }
    let code = value
        .get("code")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("HTTP {status}, and the body is not an error object with an integer `code`"))?;
    if !value.get("message").is_some_and(Value::is_string) {
        return Err(format!("HTTP {status}: the error has no string `message`"));
    }
    let declared = method
        .declared(code)
        .ok_or_else(|| format!("HTTP {status} with error {code}, which {} does not declare", method.name))?;
    if let Some(schema) = &declared.data {
        let violations = value.get("data").map(|data| description.violations(schema, data));
        match violations {
            None => return Err(format!("error {code} ({}) has no `data`", declared.name)),
            Some(v) if !v.is_empty() => {
                return Err(format!("the data of error {code} ({}) is invalid: {}", declared.name, v.join("; ")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks one answer text (a line, or an HTTP body) against `expect` (not `Nothing`).
pub fn check(description: &Description, expect: &Expect, text: &str) -> Result<(), String> {
    match expect {
        Expect::Nothing => Err("expected no answer, got one".into()),
        Expect::Rest { method } => check_rest(description, method, 200, text),
        Expect::Batch(items) => {
            let answers: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(|_| {
                if text.trim_start().starts_with('{') {
                    "expected an array of answers, got a single answer".to_string()
                } else {
                    "the answer is not a JSON array".to_string()
                }
            })?;
            if answers.len() != items.len() {
                return Err(format!("expected {} answers in the array, got {}", items.len(), answers.len()));
            }
            let mut used = vec![false; answers.len()];
            for item in items {
                let found = answers
                    .iter()
                    .enumerate()
                    .find(|(index, answer)| !used[*index] && single(description, item, answer.get()).is_ok());
                match found {
                    Some((index, _)) => used[index] = true,
                    None => return Err(format!("no answer in the array is {}", describe(item))),
                }
            }
            Ok(())
        }
        _ => single(description, expect, text),
    }
}

/// Checks one response object.
fn single(description: &Description, expect: &Expect, text: &str) -> Result<(), String> {
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).map_err(|_| {
        if text.trim_start().starts_with('[') {
            "expected a single answer, got an array".to_string()
        } else {
            "the answer is not a JSON object".to_string()
        }
    })?;
    let value = |key: &str| members.get(key).and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
    if value("jsonrpc") != Some(Value::String("2.0".into())) {
        return Err("the answer's `jsonrpc` member is not \"2.0\"".into());
    }
    for key in members.keys() {
        if !["jsonrpc", "id", "result", "error"].contains(&key.as_str()) {
            return Err(format!("the answer has an unknown member `{key}`"));
        }
    }
    let Some(raw_id) = members.get("id").map(|raw| raw.get().trim()) else {
        return Err("the answer has no `id` member".into());
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
        return Err(format!("the answer's id is {raw_id}, expected {wanted}"));
    }
    let (result, error) = (value("result"), members.get("error").map(|_| value("error")));
    let error = match (result, error) {
        (Some(_), Some(_)) => return Err("the answer has both `result` and `error`".into()),
        (None, None) => return Err("the answer has neither `result` nor `error`".into()),
        (Some(result), None) => return result_ok(description, expect, &result),
        (None, Some(error)) => error.unwrap_or(Value::Null),
    };
    let code = error.get("code").and_then(Value::as_i64).ok_or("the error has no integer `code`")?;
    if !error.get("message").is_some_and(Value::is_string) {
        return Err("the error has no string `message`".into());
    }
    match expect {
        Expect::Error { code: wanted, .. } if code == *wanted => Ok(()),
        Expect::Error { code: wanted, .. } => Err(format!("expected error {wanted}, got {code}")),
        Expect::Answer { method, accept, .. } => {
            let method =
                description.method_named(method).ok_or_else(|| format!("{method} is not in the description"))?;
            let declared = method.declared(code).ok_or_else(|| {
                let codes: Vec<String> = method.errors.iter().map(|e| format!("{} {}", e.code, e.name)).collect();
                format!(
                    "error {code} is not one {} declares ({})",
                    method.name,
                    if codes.is_empty() { "it declares none".into() } else { codes.join(", ") }
                )
            })?;
            match accept {
                Accept::ResultOrDeclared { forbid: Some(forbidden) } if *forbidden == code => {
                    return Err(format!("error {code} ({}) is wrong here", declared.name))
                }
                Accept::UnsupportedVersion { code: wanted, .. } if *wanted != code => {
                    return Err(format!("expected error {wanted} (UnsupportedVersion), got {code} ({})", declared.name))
                }
                _ => {}
            }
            if let Some(schema) = &declared.data {
                let data =
                    error.get("data").ok_or_else(|| format!("error {code} ({}) has no `data`", declared.name))?;
                let violations = description.violations(schema, data);
                if !violations.is_empty() {
                    return Err(format!(
                        "the data of error {code} ({}) is invalid: {}",
                        declared.name,
                        violations.join("; ")
                    ));
                }
                if let Accept::UnsupportedVersion { object, max_version, .. } = accept {
                    let strings: Vec<&str> =
                        data.as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str()).collect();
                    if !strings.contains(&object.as_str()) {
                        return Err(format!("the UnsupportedVersion data {data} does not name the object {object}"));
                    }
                    if !strings.contains(&max_version.as_str()) {
                        return Err(format!(
                            "the UnsupportedVersion data {data} does not name {max_version}, the newest version of {object}"
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => unreachable!("only errors and answers are checked here"),
    }
}

fn result_ok(description: &Description, expect: &Expect, result: &Value) -> Result<(), String> {
    match expect {
        Expect::Error { code, .. } => Err(format!("expected error {code}, got a result")),
        Expect::Answer { accept: Accept::UnsupportedVersion { code, .. }, .. } => {
            Err(format!("expected error {code} (UnsupportedVersion), got a result"))
        }
        Expect::Answer { method, .. } => {
            let method =
                description.method_named(method).ok_or_else(|| format!("{method} is not in the description"))?;
            let violations = description.violations(&method.result, result);
            if violations.is_empty() {
                Ok(())
            } else {
                Err(format!("the result does not fit {}'s result schema: {}", method.name, violations.join("; ")))
            }
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
            .is_ok());
        let wrong = check(&description, &expect, r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":-32601,"message":"m"}}"#);
        assert!(wrong.unwrap_err().contains("id is 1.5"));
    }

    #[test]
    fn results_and_declared_errors_are_validated() {
        let description = Description::published().unwrap();
        let any = Accept::ResultOrDeclared { forbid: None };
        let expect = answer("driver.start_discovery", "3", any.clone());
        assert!(check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":{"status":"DONE"}}"#).is_ok());
        assert!(check(&description, &expect, r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).is_err());
        let declared =
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":1100,"message":"m","data":{"endpoint":"a:1","reason":"r"}}}"#;
        assert!(check(&description, &expect, declared).is_ok());
        let undeclared = r#"{"jsonrpc":"2.0","id":3,"error":{"code":1003,"message":"m"}}"#;
        assert!(check(&description, &expect, undeclared).unwrap_err().contains("not one"));
        let version = Accept::UnsupportedVersion { code: 1000, object: "HostInfo".into(), max_version: "1.0".into() };
        let expect = answer("network.create_port", "4", version);
        let good = r#"{"jsonrpc":"2.0","id":4,"error":{"code":1000,"message":"m","data":{"object":"HostInfo","max_version":"1.0"}}}"#;
        assert!(check(&description, &expect, good).is_ok());
        let bad = r#"{"jsonrpc":"2.0","id":4,"error":{"code":1000,"message":"m","data":{"object":"HostInfo","max_version":"1.1"}}}"#;
        assert!(check(&description, &expect, bad).is_err());
    }

    #[test]
    fn batches_match_in_any_order() {
        let description = Description::published().unwrap();
        let expect = Expect::Batch(vec![
            Expect::Error { code: -32600, id: IdRule::Null },
            Expect::Error { code: -32601, id: IdRule::Echo("\"b\"".into()) },
        ]);
        let text = r#"[{"jsonrpc":"2.0","id":"b","error":{"code":-32601,"message":"m"}},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"m"}}]"#;
        assert!(check(&description, &expect, text).is_ok());
        let short = r#"[{"jsonrpc":"2.0","id":"b","error":{"code":-32601,"message":"m"}}]"#;
        assert!(check(&description, &expect, short).is_err());
    }
}
