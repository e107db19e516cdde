//! Project automation, run as `cargo xtask <command>`.
//!
//! - `codegen [--check]`: regenerate the checked-in files from the schema, or
//!   list the stale ones and fail.
//! - `lock`: publish new object versions into `schema/vproto.lock`.
//! - `test`: everything CI runs (format, lints, codegen freshness, Rust tests,
//!   os-vif interop).
//! - `bench`: the criterion benchmarks, side by side with their peers.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use clap::{Parser, Subcommand};
use vproto_codegen::{lock::Lock, Generator};

#[derive(Parser)]
#[command(about = "vproto project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Regenerate generated/ and schema/meta.schema.json from schema/vproto.json.
    Codegen {
        /// Do not write; list stale files and fail if any.
        #[arg(long)]
        check: bool,
    },
    /// Publish the schema's new object versions into schema/vproto.lock.
    Lock,
    /// Run every check CI runs.
    Test,
    /// Run the benchmarks (criterion) and their peers.
    Bench {
        /// Arguments passed to `cargo bench` after `--`.
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Codegen { check } => codegen(check),
        Task::Lock => lock(),
        Task::Test => test(),
        Task::Bench { args } => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn generator() -> Generator {
    let root = root();
    // generated/src/objects.rs reads the published documents that codegen writes to schema/.
    Generator::new(root.join("schema/vproto.json"))
        .lock_file(root.join("schema/vproto.lock"))
        .include_documents("../../schema/vproto.schema.json", "../../schema/vproto.openrpc.json")
}

/// Writes `contents` to `path` unless it already holds them; in check mode
/// only reports. Returns whether the file was stale.
fn ensure_file_contents(path: &Path, contents: &str, check: bool) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    let shown = path.strip_prefix(root()).unwrap_or(path).display();
    if check {
        eprintln!("stale: {shown}");
    } else {
        std::fs::write(path, contents).map_err(|e| format!("cannot write {shown}: {e}"))?;
        eprintln!("updated: {shown}");
    }
    Ok(true)
}

/// The files `cargo xtask codegen` writes, relative to the workspace root.
const GENERATED_FILES: [&str; 5] = [
    "generated/src/objects.rs",
    "generated/src/tree/layouts.rs",
    "schema/meta.schema.json",
    "schema/vproto.schema.json",
    "schema/vproto.openrpc.json",
];

fn codegen(check: bool) -> Result<(), String> {
    let root = root();
    let stamp = root.join("target/xtask-codegen.fingerprint");
    // Nothing changed since the last run (inputs, outputs, the generator itself): the same
    // bytes would be written, so skip. `--check` always generates and compares.
    if !check && codegen_fingerprint(&root).is_some_and(|f| std::fs::read_to_string(&stamp).is_ok_and(|s| s == f)) {
        return Ok(());
    }
    let generated = generator().generate().map_err(|d| d.to_string())?;
    let contents = [
        generated.rust_objects,
        generated.rust_data_trees,
        generated.meta_schema,
        generated.json_schema,
        generated.openrpc,
    ];
    let mut stale = 0;
    for (path, contents) in GENERATED_FILES.iter().zip(&contents) {
        stale += usize::from(ensure_file_contents(&root.join(path), contents, check)?);
    }
    if !check && generated.unpublished.is_empty() {
        if let Some(fingerprint) = codegen_fingerprint(&root) {
            // Only a cache: failing to write it costs the next run its shortcut, nothing else.
            let _ = std::fs::create_dir_all(root.join("target")).and_then(|()| std::fs::write(&stamp, fingerprint));
        }
    }
    if !generated.unpublished.is_empty() {
        eprintln!(
            "not yet published (run `cargo xtask lock` once the shape is final): {}",
            generated.unpublished.join(", ")
        );
    }
    if check {
        let mut problems = Vec::new();
        if stale > 0 {
            problems.push(format!("{stale} generated file(s) are stale: run `cargo xtask codegen`"));
        }
        if !generated.unpublished.is_empty() {
            problems.push("the lock is missing object versions: run `cargo xtask lock`".to_string());
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
    }
    Ok(())
}

/// A hash of everything a codegen run depends on and writes: the schema, the lock, the
/// generated files, and the generator (this binary, by size and modification time: changing
/// the generator rebuilds it). `None` when something cannot be read.
fn codegen_fingerprint(root: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let exe = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    hasher.update(format!("{:?} {}", exe.modified().ok()?, exe.len()));
    for path in ["schema/vproto.json", "schema/vproto.lock"].iter().chain(&GENERATED_FILES) {
        let bytes = std::fs::read(root.join(path)).ok()?;
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Some(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

fn lock() -> Result<(), String> {
    let root = root();
    let schema = vproto_codegen::load_schema(&root.join("schema/vproto.json")).map_err(|d| d.to_string())?;
    let lock_path = root.join("schema/vproto.lock");
    if let Ok(text) = std::fs::read_to_string(&lock_path) {
        let existing = Lock::parse(&text)?;
        let mut diagnostics = vproto_codegen::Diagnostics::new("schema/vproto.lock");
        existing.verify(&schema, &mut diagnostics);
        if !diagnostics.is_empty() {
            return Err(format!("published versions changed; the lock cannot bless that:\n{diagnostics}"));
        }
    }
    let lock = Lock::of(&schema);
    ensure_file_contents(&lock_path, &lock.to_text(), false)?;
    Ok(())
}

fn run(description: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("==> {description}");
    let status = command.current_dir(root()).status().map_err(|e| format!("{description}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{description} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test() -> Result<(), String> {
    run("cargo fmt --check", cargo().args(["fmt", "--all", "--check"]))?;
    codegen(true)?;
    eprintln!("==> codegen is fresh");
    run("cargo clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run("cargo test", cargo().args(["test", "--workspace"]))?;
    run("cargo build (vproto binary)", cargo().args(["build", "-p", "vproto-cli"]))?;
    let python = python_venv()?;
    run(
        "os-vif interop (pytest)",
        Command::new(&python)
            .args(["-m", "pytest", "tests/osvif", "-q"])
            .env("VPROTO_BIN", root().join("target/debug/vproto")),
    )
}

/// The Python of the test venv (`$VPROTO_VENV`, else `.venv`), created
/// with tests/requirements.txt installed when it does not exist yet.
fn python_venv() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let requirements = root().join("tests/requirements.txt");
    let stamp = venv.join(".requirements-installed");
    let installed = std::fs::read_to_string(&stamp).ok();
    let wanted =
        std::fs::read_to_string(&requirements).map_err(|e| format!("cannot read tests/requirements.txt: {e}"))?;
    if !python.exists() {
        run("create the Python venv", Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    if installed.as_deref() != Some(wanted.as_str()) {
        run(
            "pip install -r tests/requirements.txt",
            Command::new(&python).args(["-m", "pip", "install", "-q", "-r"]).arg(&requirements),
        )?;
        std::fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    }
    Ok(python)
}

fn venv_dir() -> PathBuf {
    std::env::var("VPROTO_VENV").map(PathBuf::from).unwrap_or_else(|_| root().join(".venv"))
}

fn bench(args: &[String]) -> Result<(), String> {
    let venv = venv_dir();
    python_venv()?;
    run("cargo bench", cargo().args(["bench", "--workspace"]).arg("--").args(args).env("VPROTO_VENV", venv))
}
