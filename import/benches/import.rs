//! Benchmarks of issue #17 (see docs/benchmarks.md): `import + check + generate` for the whole
//! vdsm and QAPI schemas (goal under 1 s each), and `vproto diff` of two revisions of a
//! 2,000-object schema (goal under 0.5 s): both revisions loaded and checked, then diffed, as
//! the command does; and the diff alone.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{hint::black_box, path::Path, time::Duration};

use criterion::Criterion;
use serde_json::{json, Map};
use vproto_codegen::{diff::diff, parse_schema, Generator};
use vproto_import::{qapi, vdsm, Imported};

/// What `vproto import X > x.json && vproto check x.json` and generating from it do: the import,
/// its text, the loader with every check, and the generator (IR, Rust, published documents).
fn pipeline(import: impl Fn() -> Imported, scratch: &Path) -> usize {
    let imported = import();
    let text = imported.to_text();
    std::fs::write(scratch, &text).expect("write the schema");
    let schema = parse_schema(&text, "imported").expect("passes the checks");
    let generated = Generator::new(scratch).generate().expect("generates");
    schema.objects.len() + generated.rust.joined().len()
}

/// Revision `revision` (0 or 1) of a schema of 2,000 plain objects of 10 fields and 400 methods,
/// each method taking one object and answering another. Revision 1: every 10th object gains a
/// field, every 20th method is gone, the enum gains a value.
fn revision(revision: usize) -> String {
    let mut objects = Map::new();
    for index in 0..2000 {
        let mut fields = Map::new();
        for number in 0..10 {
            let schema = match number % 4 {
                0 => json!({"type": "string", "maxLength": 64}),
                1 => json!({"type": "integer", "minimum": 0}),
                2 => json!({"$ref": "#/types/State"}),
                _ => json!({"type": "array", "items": {"type": "string"}}),
            };
            fields.insert(
                format!("field_{number}"),
                json!({"description": "A field.", "schema": schema, "since": "1.0"}),
            );
        }
        if revision == 1 && index % 10 == 0 {
            fields.insert(
                "added".into(),
                json!({"description": "New.", "schema": {"type": "boolean"}, "since": "1.0", "required": false}),
            );
        }
        objects.insert(
            format!("Object{index:04}"),
            json!({"description": "An object.", "wire": "plain", "version": "1.0",
                   "history": [{"version": "1.0", "note": "First"}], "fields": fields}),
        );
    }
    let mut methods = Map::new();
    for index in 0..400 {
        if revision == 1 && index % 20 == 0 {
            continue;
        }
        methods.insert(
            format!("method_{index:03}"),
            json!({"description": "A method.", "since": "1.0",
                   "params": {"value": {"description": "In.", "schema": {"object": format!("Object{:04}", index * 5)}}},
                   "result": {"object": format!("Object{:04}", index * 5 + 1)}}),
        );
    }
    let states = if revision == 1 { json!(["on", "off", "unknown"]) } else { json!(["on", "off"]) };
    json!({
        "protocol": {"name": "big", "description": "A big protocol.", "version": "1.0", "history": [{"version": "1.0", "note": "First"}]},
        "types": {"State": {"description": "A state.", "since": "1.0", "schema": {"type": "string", "enum": states}}},
        "objects": objects,
        "services": {"big": {"description": "Everything.", "since": "1.0", "methods": methods}}
    })
    .to_string()
}

fn main() {
    let mut criterion =
        Criterion::default().configure_from_args().sample_size(10).measurement_time(Duration::from_secs(10));
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let vdsm_folder = support::vdsm_corpus();
    let qapi_folder = support::qapi_schema_dir();
    let import_vdsm = || {
        vdsm::import(&vdsm_folder.join("vdsm-api.yml"), Some(&vdsm_folder.join("vdsm-events.yml"))).expect("imports")
    };
    let import_qapi = || qapi::import(&qapi_folder.join("qapi-schema.json")).expect("imports");
    let vdsm_out = scratch.path().join("vdsm.json");
    let qapi_out = scratch.path().join("qmp.json");
    criterion.bench_function("import_check_generate/vdsm", |b| b.iter(|| black_box(pipeline(import_vdsm, &vdsm_out))));
    criterion.bench_function("import_check_generate/qapi", |b| b.iter(|| black_box(pipeline(import_qapi, &qapi_out))));
    let (old, new) = (revision(0), revision(1));
    criterion.bench_function("diff/2000_objects_load_check_diff", |b| {
        b.iter(|| {
            let old = parse_schema(&old, "old").expect("checks");
            let new = parse_schema(&new, "new").expect("checks");
            black_box(diff(&old, &new).findings.len())
        })
    });
    let (old_schema, new_schema) =
        (parse_schema(&old, "old").expect("checks"), parse_schema(&new, "new").expect("checks"));
    let report = diff(&old_schema, &new_schema);
    assert!(report.breaks_wire(), "20 methods were removed");
    criterion.bench_function("diff/2000_objects_diff_only", |b| {
        b.iter(|| black_box(diff(&old_schema, &new_schema).findings.len()))
    });
    criterion.final_summary();
}
