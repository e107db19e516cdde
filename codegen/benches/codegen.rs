//! Benchmark: code generation for a large synthetic schema (see docs/benchmarks.md).
//!
//! The schema has [`OBJECTS`] versioned objects of [`FIELDS`] fields each:
//! strings, integers, booleans, UUIDs through a named type, string arrays,
//! a nullable object field to another object with `child_versions`, and
//! fields added in later versions with defaults; each object has two or
//! three versions. `generate` measures what `cargo xtask codegen` does with
//! it, `Generator::new(path).generate()` (load, shape and meaning checks, IR,
//! Rust emission). Before it, one run of each stage is timed and printed, to
//! show where the time goes.

use std::{hint::black_box, io::Write};

use criterion::Criterion;
use serde_json::{json, Map, Value};
use vproto_codegen::{emit_rust, ir::SchemaIr, load_schema, Generator, PublishedDocuments};

/// Objects in the synthetic schema.
const OBJECTS: usize = 2000;
/// Fields of each object.
const FIELDS: usize = 20;
/// Objects `0..ROOTS` have no object field; every later object points at one of them.
const ROOTS: usize = 50;

fn name(index: usize) -> String {
    format!("Object{index:04}")
}

/// How many versions object `index` has: 1.0, 1.1 and, for every third, 1.2.
fn versions(index: usize) -> u32 {
    if index % 3 == 0 {
        3
    } else {
        2
    }
}

fn field(index: usize, number: usize) -> Value {
    let description = format!("Field {number} of object {index}.");
    let mut field = match number % 5 {
        0 => json!({"schema": {"type": "string", "maxLength": 255}}),
        1 => json!({"schema": {"type": "integer", "minimum": 0, "maximum": 65535}}),
        2 => json!({"schema": {"type": "boolean"}}),
        3 => json!({"schema": {"$ref": "#/types/Uuid"}}),
        _ if number == 4 && index >= ROOTS => {
            let child = index % ROOTS;
            let mut pins = Map::new();
            for minor in 0..versions(index) {
                // The child's newest version that exists, from 1.1 of the parent on.
                let pinned = minor.min(versions(child) - 1);
                pins.insert(format!("1.{minor}"), json!(format!("1.{pinned}")));
            }
            json!({"schema": {"object": name(child)}, "nullable": true, "child_versions": pins})
        }
        _ => json!({"schema": {"type": "array", "items": {"type": "string"}}, "required": false}),
    };
    let since = match number {
        n if n + 2 >= FIELDS && versions(index) == 3 => 2,
        n if n + 4 >= FIELDS => 1,
        _ => 0,
    };
    let object = field.as_object_mut().expect("an object");
    object.insert("description".into(), json!(description));
    object.insert("since".into(), json!(format!("1.{since}")));
    if since > 0 {
        // Older data lacks the field: readers fill in the default.
        let default = match number % 5 {
            0 => json!(""),
            1 => json!(0),
            2 => json!(false),
            _ => Value::Null,
        };
        object.insert("default".into(), default);
        if object["default"].is_null() {
            object.remove("default");
            object.insert("required".into(), json!(false));
        }
    }
    field
}

fn object(index: usize) -> Value {
    let history: Vec<Value> = (0..versions(index))
        .map(|minor| json!({"version": format!("1.{minor}"), "note": format!("Version 1.{minor}.")}))
        .collect();
    let fields: Map<String, Value> =
        (0..FIELDS).map(|number| (format!("field_{number:02}"), field(index, number))).collect();
    json!({
        "description": format!("Synthetic object {index}."),
        "namespace": "bench",
        "version": format!("1.{}", versions(index) - 1),
        "history": history,
        "fields": fields,
    })
}

fn schema() -> Value {
    let objects: Map<String, Value> = (0..OBJECTS).map(|index| (name(index), object(index))).collect();
    json!({
        "protocol": {
            "name": "bench",
            "description": "A synthetic schema for the code generation benchmark.",
            "version": "1.0",
            "history": [{"version": "1.0", "note": "Initial version."}]
        },
        "types": {
            "Uuid": {
                "description": "A UUID.",
                "since": "1.0",
                "schema": {"type": "string", "format": "uuid"}
            }
        },
        "objects": objects
    })
}

/// Runs `work` once and returns its result with the time it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let start = std::time::Instant::now();
    let result = work();
    (result, start.elapsed())
}

fn main() {
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().expect("a temporary file");
    file.write_all(serde_json::to_string_pretty(&schema()).expect("JSON").as_bytes()).expect("written");
    let path = file.path().to_path_buf();
    // As `cargo xtask codegen` runs it: the published documents are files, not literals.
    let generator = Generator::new(&path).include_documents("schema.json", "openrpc.json", "openrpc");
    let options = emit_rust::RustOptions {
        documents: emit_rust::DocumentEmbedding::Include {
            json_schema: "schema.json".into(),
            openrpc: "openrpc.json".into(),
            service_openrpc_dir: "openrpc".into(),
        },
        ..emit_rust::RustOptions::default()
    };

    // One run of each stage, to show where the time goes.
    let (schema, load) = timed(|| load_schema(&path).unwrap_or_else(|d| panic!("the synthetic schema:\n{d}")));
    let (ir, ir_time) = timed(|| SchemaIr::new(&schema));
    let (documents, documents_time) = timed(|| PublishedDocuments::new(&ir));
    let (rust, emit) = timed(|| emit_rust::emit_rust(&ir, &options, &documents).joined());
    println!(
        "synthetic schema: {OBJECTS} objects x {FIELDS} fields, {} KiB of JSON -> {} KiB ({} lines) of Rust; \
         one run: load+check {load:.2?}, IR {ir_time:.2?}, JSON Schema + OpenRPC {documents_time:.2?}, \
         emit Rust {emit:.2?}",
        std::fs::metadata(&path).expect("written").len() / 1024,
        rust.len() / 1024,
        rust.lines().count()
    );
    drop((rust, ir));

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("codegen");
    group.sample_size(10);
    group.bench_function("generate", |b| b.iter(|| black_box(generator.generate().expect("valid"))));
    group.finish();
    criterion.final_summary();
}
