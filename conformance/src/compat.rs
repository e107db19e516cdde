//! Compat mode (`vproto conform --target ADDR --compat POLICY`): checks that a target applies a
//! compatibility policy at run time (`vproto serve --compat`, QEMU's `-compat`), from what the
//! description marks deprecated ([`Deprecated::from_openrpc`]). It runs these cases instead of
//! the normal suite (whose valid calls of deprecated parts a rejecting target rightly refuses):
//!
//! | ID | policy | does | expects |
//! |---|---|---|---|
//! | `compat/<m>/deprecated-method` | `deprecated-input=reject` | calls the deprecated method `m` with valid params | `-32601` |
//! | `compat/<m>/deprecated-method` | `deprecated-input=accept` | the same | anything but `-32601` |
//! | `compat/<m>/deprecated-param/<p>` | `deprecated-input=reject` | calls `m` with valid params and the deprecated param `p` | `-32602` naming `p` |
//! | `compat/<m>/deprecated-param/<p>` | `deprecated-input=accept` | the same | anything but `-32601`/`-32602` |
//! | `compat/<m>/result` | `deprecated-output=hide` | calls `m` (whose result may carry deprecated members) with valid params | a result without deprecated members |
//! | `compat/<s>/events` | `deprecated-output=hide` | (line transports) subscribes to every event of `s`, calls every example of `s` | no deprecated event, no deprecated member in any event |
//!
//! A call answered with an error where a result was to be checked, or events that never
//! arrived, are reported as not exercised, not failed. A description that marks nothing
//! deprecated in the services tested gives no case ([`RunError::NothingDeprecated`]).

use std::{io::Write, time::Instant};

use serde_json::{json, Value};
use vproto_jsonrpc::{ConnectAddr, ListenAddr};
use vproto_support::rpc::{
    codes,
    compat::{CompatPolicy, Deprecated, DeprecatedInput, DeprecatedOutput},
};

use crate::{
    cases::{frame, CaseError, Plan},
    conn::Conn,
    events::Wire,
    generate::Generator,
    run::{detect_services, Outcome, RunError, Selection, Status, SuiteRun, Target},
};

/// What one compat case expects of the answer.
enum Want {
    /// An error with this code, whose text names this (when given).
    Refused(i64, Option<String>),
    /// Not an error with any of these codes.
    NotRefused(&'static [i64]),
    /// A result without deprecated members (of this method's result).
    Hidden(String),
}

/// One planned call.
struct Call {
    id: String,
    what: String,
    method: String,
    params: Value,
    want: Want,
}

/// Runs the compat cases of `policy` against `target`.
pub async fn run_compat(
    selection: &Selection<'_>,
    target: &Target,
    policy: CompatPolicy,
) -> Result<SuiteRun, RunError> {
    let description = selection.description;
    let services = if selection.services.is_empty() {
        detect_services(description, target).await?
    } else {
        selection.services.clone()
    };
    let deprecated = Deprecated::from_openrpc(&description.document);
    let plan = Plan {
        description,
        services: services.clone(),
        seed: selection.seed,
        generated: selection.generated,
        rest: false,
        fixtures: selection.fixtures,
    };
    if deprecated_in(&deprecated, &plan).is_empty() {
        return Err(RunError::NothingDeprecated { services: services.join(", "), policy: policy.to_string() });
    }
    let selected = |id: &str| selection.only.is_empty() || selection.only.matches(id);
    let mut generator = Generator::new(description, selection.seed);
    let mut calls = Vec::new();
    for method in plan.methods() {
        let name = &method.name;
        let sample = plan.sample(method, &mut generator)?;
        if deprecated.methods.contains(name) {
            let want = match policy.deprecated_input {
                DeprecatedInput::Reject => Want::Refused(codes::METHOD_NOT_FOUND, None),
                DeprecatedInput::Accept => Want::NotRefused(&[codes::METHOD_NOT_FOUND]),
            };
            calls.push(Call {
                id: format!("compat/{name}/deprecated-method"),
                what: format!("the deprecated method `{name}` under {policy}"),
                method: name.clone(),
                params: sample.clone(),
                want,
            });
            if policy.deprecated_input == DeprecatedInput::Reject {
                continue;
            }
        }
        for param in deprecated.deprecated_params(name) {
            let Some(schema) = method.params.iter().find(|p| p.name == param).map(|p| &p.schema) else { continue };
            let value = generator
                .valid(schema)
                .map_err(|why| RunError::Cases(CaseError::Generate { method: name.clone(), why }))?;
            let mut params = sample.clone();
            if let Some(members) = params.as_object_mut() {
                members.insert(param.to_string(), value);
            }
            let want = match policy.deprecated_input {
                DeprecatedInput::Reject => Want::Refused(codes::INVALID_PARAMS, Some(param.to_string())),
                DeprecatedInput::Accept => Want::NotRefused(&[codes::METHOD_NOT_FOUND, codes::INVALID_PARAMS]),
            };
            calls.push(Call {
                id: format!("compat/{name}/deprecated-param/{param}"),
                what: format!("the deprecated param `{param}` of `{name}` under {policy}"),
                method: name.clone(),
                params,
                want,
            });
        }
        if policy.deprecated_output == DeprecatedOutput::Hide && deprecated.result_may_carry(name) {
            calls.push(Call {
                id: format!("compat/{name}/result"),
                what: format!("the result of `{name}` carries no deprecated member under {policy}"),
                method: name.clone(),
                params: sample,
                want: Want::Hidden(name.clone()),
            });
        }
    }
    calls.retain(|call| selected(&call.id));
    let mut run = SuiteRun { outcomes: Vec::new(), coverage: Vec::new(), not_exercised: Vec::new() };
    let mut stderr = std::io::stderr();
    let _ = writeln!(
        stderr,
        "conform: {} ({}): compat mode, {policy}, for {}",
        target.label,
        target.addr,
        services.join(", ")
    );
    let mut conn: Option<Conn> = None;
    for (index, call) in calls.iter().enumerate() {
        let started = Instant::now();
        let text = frame(&call.method, Some(&call.params), Some(&format!("\"compat-{index}\"")));
        if conn.is_none() {
            conn = Some(Conn::open(&target.addr, target.token.as_ref(), target.tls.as_ref(), target.wait).await?);
        }
        let open = conn.as_mut().expect("opened above");
        let answer = match open.is_http() {
            true => open.post(&text).await.map(|answer| answer.body),
            false => match open.send_line(&text).await {
                Ok(()) => open.read_line().await,
                Err(why) => Err(why),
            },
        };
        let (response, verdict) = match answer {
            Err(why) => {
                conn = None;
                (String::new(), Err(why.to_string()))
            }
            Ok(answer) => {
                let verdict = judge(&deprecated, &call.want, &answer, &mut run.not_exercised, &target.label, &call.id);
                (answer, verdict)
            }
        };
        if verdict.is_err() {
            let _ = writeln!(stderr, "conform: {}: FAIL {}", target.label, call.id);
        }
        run.outcomes.push(Outcome {
            id: call.id.clone(),
            target: target.label.clone(),
            what: call.what.clone(),
            status: if verdict.is_ok() { Status::Pass } else { Status::Fail },
            request: text,
            response,
            expected: expected(&call.want),
            why: verdict.err().unwrap_or_default(),
            duration: started.elapsed(),
        });
    }
    if policy.deprecated_output == DeprecatedOutput::Hide {
        events(&plan, &deprecated, target, &selected, &mut run).await;
    }
    Ok(run)
}

/// What the description marks deprecated in the services of `plan`, in words.
fn deprecated_in(deprecated: &Deprecated, plan: &Plan<'_>) -> Vec<String> {
    let mut found: Vec<String> = plan
        .methods()
        .iter()
        .filter(|m| {
            deprecated.methods.contains(&m.name)
                || !deprecated.deprecated_params(&m.name).is_empty()
                || deprecated.result_may_carry(&m.name)
        })
        .map(|m| m.name.clone())
        .collect();
    for service in &plan.services {
        let events = plan.description.events_of(service);
        found.extend(
            events
                .iter()
                .filter(|e| deprecated.events.contains(&e.name) || deprecated.event_may_carry(&e.name))
                .map(|e| e.name.clone()),
        );
    }
    found
}

fn expected(want: &Want) -> String {
    match want {
        Want::Refused(code, None) => format!("error {code}"),
        Want::Refused(code, Some(name)) => format!("error {code} naming `{name}`"),
        Want::NotRefused(codes) => format!("a result or an error other than {codes:?}"),
        Want::Hidden(_) => "a result without deprecated members".into(),
    }
}

/// Judges `answer` (one JSON-RPC response) against `want`.
fn judge(
    deprecated: &Deprecated,
    want: &Want,
    answer: &str,
    not_exercised: &mut Vec<String>,
    label: &str,
    id: &str,
) -> Result<(), String> {
    let value: Value = serde_json::from_str(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let code = value.pointer("/error/code").and_then(Value::as_i64);
    match want {
        Want::Refused(wanted, name) => match code {
            Some(code) if code == *wanted => match name {
                Some(name) if !value["error"].to_string().contains(name.as_str()) => {
                    Err(format!("the error does not name `{name}`"))
                }
                _ => Ok(()),
            },
            Some(code) => Err(format!("error {code}, where the policy refuses with {wanted}")),
            None => Err("a result: the target accepted what the policy refuses".into()),
        },
        Want::NotRefused(refusals) => match code {
            Some(code) if refusals.contains(&code) => {
                Err(format!("error {code}: the target refused what the policy accepts"))
            }
            _ => Ok(()),
        },
        Want::Hidden(method) => match value.get("result") {
            None => {
                not_exercised.push(format!("{label}: {id}: the call was answered an error, no result to check"));
                Ok(())
            }
            Some(result) => {
                let parts = deprecated.output_parts(method, result);
                match parts.is_empty() {
                    true => Ok(()),
                    false => Err(format!("the result carries deprecated members: {}", parts.join(", "))),
                }
            }
        },
    }
}

/// `compat/<s>/events`: on a line connection subscribed to every event of the service, the
/// service's examples publish no deprecated event and no deprecated member.
async fn events(
    plan: &Plan<'_>,
    deprecated: &Deprecated,
    target: &Target,
    selected: &dyn Fn(&str) -> bool,
    run: &mut SuiteRun,
) {
    let description = plan.description;
    for service in &plan.services {
        let events = description.events_of(service);
        let concerned =
            events.iter().any(|e| deprecated.events.contains(&e.name) || deprecated.event_may_carry(&e.name));
        let id = format!("compat/{service}/events");
        if !concerned || !selected(&id) {
            continue;
        }
        if matches!(target.addr, ConnectAddr::Listen(ListenAddr::Http { .. })) {
            run.not_exercised.push(format!("{}: {id}: event cases run on line transports only", target.label));
            continue;
        }
        let started = Instant::now();
        let triggers = plan.example_calls(service);
        let mut transcript = Vec::new();
        let verdict = async {
            let mut wire = Wire::open(target).await?;
            let outcome = async {
                wire.call("rpc.subscribe", &json!({})).await?;
                wire.trigger(&triggers).await?;
                let mut relevant = 0;
                for notification in &wire.notifications {
                    let name = notification["method"].as_str().unwrap_or_default();
                    if deprecated.events.contains(name) {
                        return Err(format!("the deprecated event `{name}` was sent: {notification}"));
                    }
                    if deprecated.event_may_carry(name) {
                        relevant += 1;
                        let params = notification["params"].as_object().cloned().unwrap_or_default();
                        let parts = deprecated.event_parts(name, &params);
                        if !parts.is_empty() {
                            return Err(format!("`{name}` carries deprecated members: {}", parts.join(", ")));
                        }
                    }
                }
                Ok(relevant)
            }
            .await;
            transcript = std::mem::take(&mut wire.transcript);
            outcome
        }
        .await;
        if verdict == Ok(0) {
            run.not_exercised.push(format!(
                "{}: {id}: the examples published no event that could carry deprecated members",
                target.label
            ));
        }
        run.outcomes.push(Outcome {
            id,
            target: target.label.clone(),
            what: format!("the events of `{service}` carry no deprecated event or member"),
            status: if verdict.is_ok() { Status::Pass } else { Status::Fail },
            request: transcript.iter().filter(|l| l.starts_with('→')).cloned().collect::<Vec<_>>().join("\n"),
            response: transcript.iter().filter(|l| l.starts_with('←')).cloned().collect::<Vec<_>>().join("\n"),
            expected: "no deprecated event, no deprecated member".into(),
            why: verdict.err().unwrap_or_default(),
            duration: started.elapsed(),
        });
    }
}
