//! Benchmark: backport and serialize a fully populated `VIFOpenVSwitch`,
//! vproto against os-vif in the same run (see docs/benchmarks.md).
//!
//! Both sides build the object from `examples/vif-openvswitch.json` and time
//! the same call on it: vproto's `to_primitive(target, manifest)` +
//! `serde_json::to_string`, os-vif's `obj_to_primitive(target_version=...,
//! version_manifest=...)` + `json.dumps` (`tests/osvif/bench_osvif.py`, run
//! with `$VPROTO_VENV/bin/python`, default `.venv`). Before timing anything
//! the benchmark checks that both produce the same JSON (the order of
//! `versioned_object.changes` aside); a case where they differ is reported
//! and not compared. Criterion measures vproto; the ratio is computed from
//! medians that both sides measure the same way (`timeit`'s autorange, then
//! 5 repeats), os-vif then vproto in 3 rounds, and printed as
//! `ratio: os-vif/vproto = N x` (the median of the rounds' ratios).

use std::{
    collections::BTreeSet,
    hint::black_box,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use criterion::Criterion;
use serde_json::{json, Value};
use vproto_api::VIFOpenVSwitch;
use vproto_support::wire::{Manifest, Version, VersionedObject};

/// Repeats of the autoranged batch on both sides; the median counts.
const REPEATS: usize = 5;
/// Rounds of os-vif then vproto timing; the median ratio counts.
const ROUNDS: usize = 3;

/// One measured call, the same on both sides.
struct Case {
    name: &'static str,
    target: Option<Version>,
    manifest: Option<Manifest>,
}

fn cases() -> Vec<Case> {
    // os-vif 5.3.0's obj_tree_get_versions("VIFOpenVSwitch"), with Network
    // (1.1) and VIFPortProfileBase (1.1) at 1.0, so the network and the port
    // profile are backported although the VIF itself stays at 1.0.
    let manifest: Manifest = [
        ("VIFOpenVSwitch", "1.0"),
        ("Network", "1.0"),
        ("SubnetList", "1.0"),
        ("Subnet", "1.0"),
        ("FixedIPList", "1.0"),
        ("FixedIP", "1.0"),
        ("RouteList", "1.0"),
        ("Route", "1.0"),
        ("VIFPortProfileBase", "1.0"),
        ("DatapathOffloadBase", "1.0"),
    ]
    .into_iter()
    .map(|(name, version)| (name.to_string(), version.parse().expect("a version")))
    .collect();
    // The same without the port profile's base: the network is backported,
    // the port profile left as it is (oslo skips objects a manifest omits).
    let network_only: Manifest = manifest
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "VIFPortProfileBase" | "DatapathOffloadBase"))
        .map(|(name, version)| (name.clone(), *version))
        .collect();
    vec![
        // The whole VIF at its current version, children at theirs.
        Case { name: "current", target: None, manifest: None },
        // To 1.0 with Network at 1.0: a real backport both sides agree on.
        Case { name: "backport", target: Some(Version::new(1, 0)), manifest: Some(network_only) },
        // To 1.0 with the manifest: Network and port profile backported.
        Case { name: "manifest", target: Some(Version::new(1, 0)), manifest: Some(manifest) },
    ]
}

fn serialize(vif: &VIFOpenVSwitch, case: &Case) -> String {
    vproto_support::wire::to_json_string(vif, case.target, case.manifest.as_ref()).expect("vproto converts the example")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("generated/ lives in the workspace").to_path_buf()
}

/// The spec `bench_osvif.py` reads on stdin.
fn spec(example: &Path, cases: &[&Case]) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|case| {
            let manifest = case.manifest.as_ref().map(|manifest| {
                manifest.iter().map(|(name, version)| (name.clone(), json!(version.to_string()))).collect::<Value>()
            });
            json!({"name": case.name, "target": case.target.map(|v| v.to_string()), "manifest": manifest})
        })
        .collect();
    json!({"example": example, "cases": cases})
}

/// Runs `bench_osvif.py MODE ARGS...` and returns its JSON answer.
fn osvif(python: &Path, mode: &str, args: &[&str], spec: &Value) -> Result<Value, String> {
    let script = root().join("tests/osvif/bench_osvif.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(mode)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    child.stdin.take().expect("piped").write_all(spec.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("bench_osvif.py {mode} failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("bench_osvif.py {mode} printed no JSON: {e}"))
}

/// Sorts every `versioned_object.changes` (os-vif builds it from a set) and
/// keeps only the names its data holds: os-vif leaves fields a backport
/// removed in nested objects' changes (docs/osvif-interop.md,
/// `nested-changes-not-filtered`), which no reader uses.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let data_keys: Vec<String> = map
                .get(vproto_support::wire::keys::DATA)
                .and_then(Value::as_object)
                .map(|data| data.keys().cloned().collect())
                .unwrap_or_default();
            for (key, item) in map.iter_mut() {
                if let (vproto_support::wire::keys::CHANGES, Value::Array(changes)) = (key.as_str(), &mut *item) {
                    changes.retain(|name| name.as_str().is_some_and(|name| data_keys.iter().any(|k| k == name)));
                    changes.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                } else {
                    normalize(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn shown(value: Option<&Value>) -> String {
    let text = value.map_or_else(|| "absent".to_string(), Value::to_string);
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Where two JSON values differ, as `pointer: os-vif X, vproto Y`.
fn differences(osvif: Option<&Value>, vproto: Option<&Value>, pointer: &str, found: &mut Vec<String>) {
    match (osvif, vproto) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                differences(a.get(key), b.get(key), &child, found);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(Some(x), Some(y), &format!("{pointer}/{index}"), found);
            }
        }
        (a, b) if a != b => found.push(format!("{pointer}: os-vif {}, vproto {}", shown(a), shown(b))),
        _ => {}
    }
}

/// The median time of one call, measured as Python's timeit does: the
/// smallest batch of 1, 2, 5, 10, 20, ... calls that takes at least 0.2 s,
/// then [`REPEATS`] such batches.
fn median_ns(mut call: impl FnMut()) -> f64 {
    let mut batch = |calls: u64| {
        let start = Instant::now();
        for _ in 0..calls {
            call();
        }
        start.elapsed()
    };
    let mut calls = 1;
    'autorange: for power in 0.. {
        for step in [1, 2, 5] {
            calls = step * 10u64.pow(power);
            if batch(calls) >= Duration::from_millis(200) {
                break 'autorange;
            }
        }
    }
    let mut per_call: Vec<f64> = (0..REPEATS).map(|_| batch(calls).as_nanos() as f64 / calls as f64).collect();
    per_call.sort_by(f64::total_cmp);
    per_call[REPEATS / 2]
}

fn micros(ns: f64) -> String {
    format!("{:.2} µs", ns / 1000.0)
}

/// Criterion's arguments that are filters (positional), skipping option values.
fn filters(args: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "-c",
        "--color",
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--format",
        "--profile-time",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
    ];
    let mut found = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            found.push(arg.clone());
        }
    }
    found
}

/// Whether criterion runs the benchmark `id` with these arguments.
fn selected(args: &[String], id: &str) -> bool {
    let filters = filters(args);
    let exact = args.iter().any(|arg| arg == "--exact");
    filters.is_empty()
        || filters.iter().any(|filter| match (exact, regex::Regex::new(filter)) {
            (true, _) => filter == id,
            (false, Ok(regex)) => regex.is_match(id),
            (false, Err(_)) => id.contains(filter.as_str()),
        })
}

/// The cases where os-vif and vproto write the same JSON; prints where the others differ.
fn same_output<'a>(python: &Path, example: &Path, vif: &VIFOpenVSwitch, cases: &[&'a Case]) -> Vec<&'a Case> {
    let answer = match osvif(python, "emit", &[], &spec(example, cases)) {
        Ok(answer) => answer,
        Err(error) => {
            println!("note: os-vif side unavailable, benchmarking vproto alone: {error}");
            return Vec::new();
        }
    };
    let mut same = Vec::new();
    for case in cases {
        let mut theirs: Value = answer["outputs"][case.name]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .expect("bench_osvif.py emits every case");
        let mut ours: Value = serde_json::from_str(&serialize(vif, case)).expect("JSON");
        normalize(&mut theirs);
        normalize(&mut ours);
        if theirs == ours {
            same.push(*case);
            continue;
        }
        let mut found = Vec::new();
        differences(Some(&theirs), Some(&ours), "", &mut found);
        println!(
            "backport/{}: os-vif {} and vproto write different JSON, so the case is not compared ({} difference(s)):",
            case.name,
            answer["osvif"].as_str().unwrap_or("?"),
            found.len()
        );
        for difference in found {
            println!("  {difference}");
        }
    }
    same
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    // Criterion's modes: `cargo bench` passes --bench; without it (cargo
    // test --benches) every benchmark runs once as a test.
    let timing = flag("--bench") && !flag("--test") && !flag("--list") && !args.iter().any(|a| a == "--profile-time");

    let example_path = root().join("examples/vif-openvswitch.json");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(&example_path).expect("the example"))
        .expect("the example is JSON");
    let vif = VIFOpenVSwitch::from_primitive(&example).expect("vproto reads the example");
    let cases = cases();
    let chosen: Vec<&Case> = cases.iter().filter(|case| selected(&args, &format!("backport/{}", case.name))).collect();

    // 1. Same output on both sides, or the case is not compared.
    let venv = std::env::var_os("VPROTO_VENV").map_or_else(|| root().join(".venv"), PathBuf::from);
    let python = venv.join("bin/python");
    let compared = if chosen.is_empty() || flag("--list") {
        Vec::new()
    } else if !python.exists() {
        println!(
            "note: no os-vif venv at {} (set VPROTO_VENV, or run `cargo xtask bench`, which creates it): \
             benchmarking vproto alone, no ratio",
            venv.display()
        );
        Vec::new()
    } else {
        same_output(&python, &example_path, &vif, &chosen)
    };

    // 2. vproto with criterion.
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("backport");
    for case in &cases {
        group.bench_function(case.name, |b| b.iter(|| serialize(black_box(&vif), case)));
    }
    group.finish();
    criterion.final_summary();

    // 3. Both sides timed the same way, one after the other, in a few
    // rounds; the ratio is the median of the rounds' ratios.
    if !timing || compared.is_empty() {
        return;
    }
    let spec = spec(&example_path, &compared);
    let mut versions = String::new();
    let mut rounds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); compared.len()];
    for _ in 0..ROUNDS {
        let answer = match osvif(&python, "time", &["--repeat", &REPEATS.to_string()], &spec) {
            Ok(answer) => answer,
            Err(error) => {
                println!("note: os-vif timing failed, no ratio: {error}");
                return;
            }
        };
        versions = format!(
            "os-vif {} (Python {})",
            answer["osvif"].as_str().unwrap_or("?"),
            answer["python"].as_str().unwrap_or("?")
        );
        for (case, times) in compared.iter().zip(&mut rounds) {
            let theirs = answer["cases"][case.name]["median_ns"].as_f64().expect("bench_osvif.py times every case");
            let ours = median_ns(|| {
                black_box(serialize(black_box(&vif), case));
            });
            times.push((theirs, ours));
        }
    }
    for (case, times) in compared.iter().zip(rounds) {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let ratios: Vec<f64> = times.iter().map(|(theirs, ours)| theirs / ours).collect();
        println!(
            "backport/{}: {versions} {} per call, vproto {} per call (medians of {ROUNDS} rounds); \
             ratio: os-vif/vproto = {:.0} x (rounds: {})",
            case.name,
            micros(median(times.iter().map(|t| t.0).collect())),
            micros(median(times.iter().map(|t| t.1).collect())),
            median(ratios.clone()),
            ratios.iter().map(|ratio| format!("{ratio:.0}")).collect::<Vec<_>>().join(", ")
        );
    }
}
