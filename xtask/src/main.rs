//! Project automation, run as `cargo xtask <command>`.
//!
//! - `codegen [--check]`: regenerate the checked-in files from the schema, or
//!   list the stale ones and fail.
//! - `lock`: publish new object versions into `schema/vproto.lock`.
//! - `test`: everything CI runs (format, lints, codegen freshness, Rust tests, each fuzz
//!   target for 10 s, os-vif interop), after setting up what the tests need: Debian's packages (apt, as
//!   root, only when dpkg lacks one), rustfmt and clippy, the Python venv.
//! - `bench`: the criterion benchmarks, side by side with their peers.
//! - `guest-agent`: build the guest agent binary shipped to guests.
//! - `vchan-sim`: build the vchan simulation's libxengnttab.so.1 and libxenevtchn.so.1.
//! - `fuzz [--time SECONDS] [TARGET...]`: the libFuzzer targets of fuzz/ (see `fuzz.rs`).
//! - `stress [SCENARIO...] [--duration SECONDS]`: load, fault and soak scenarios against real
//!   servers (see `stress.rs`).
//! - `hostile [--regenerate]`: the hostile corpus of tests/hostile (see `hostile.rs`).

mod fuzz;
mod hostile;
mod stress;
mod vchan_sim;

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
    /// Build the guest agent shipped to guests: target/guest-agent/vproto-guest-agent.
    GuestAgent,
    /// Build the vchan simulation's drop-in libraries into target/vchan-sim/.
    VchanSim,
    /// Run the fuzz targets (cargo-fuzz, libFuzzer), each for --time seconds.
    Fuzz {
        /// Seconds each target runs.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// The targets to run [default: all].
        targets: Vec<String>,
    },
    /// Load, fault and soak scenarios against real servers: idle, slowloris, flood, xenstored,
    /// soak [default: all but soak].
    Stress {
        /// The soak's length in seconds.
        #[arg(long, default_value_t = 600)]
        duration: u64,
        /// Idle connections held in the idle scenario.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The vproto binary [default: built with --release].
        #[arg(long)]
        vproto: Option<PathBuf>,
        /// The scenarios to run.
        scenarios: Vec<String>,
    },
    /// Feed every input of the hostile corpus (tests/hostile) to its parser.
    Hostile {
        /// Rewrite the generated inputs with the outcomes they have now.
        #[arg(long)]
        regenerate: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Codegen { check } => codegen(check),
        Task::Lock => lock(),
        Task::Test => test(),
        Task::Bench { args } => bench(&args),
        Task::GuestAgent => guest_agent().map(|path| println!("{}", path.display())),
        Task::VchanSim => vchan_sim::build().map(|dir| println!("{}", dir.display())),
        Task::Fuzz { time, targets } => fuzz::fuzz(time, &targets),
        Task::Stress { duration, connections, vproto, scenarios } => {
            stress::stress(stress::Options { scenarios, duration, connections, vproto })
        }
        Task::Hostile { regenerate } => hostile::hostile(regenerate),
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
        .with_view()
        .include_documents(
            "../../schema/vproto.schema.json",
            "../../schema/vproto.openrpc.json",
            "../../schema/openrpc",
        )
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

/// The folder of the generated crate's Rust, one file per kind of item
/// (`RustModules::file_names`), relative to the workspace root.
const GENERATED_RUST: &str = "generated/src";

/// The other files `cargo xtask codegen` always writes, relative to the workspace root.
const GENERATED_FILES: [&str; 4] =
    ["generated/src/layouts.rs", "schema/meta.schema.json", "schema/vproto.schema.json", "schema/vproto.openrpc.json"];

/// The folders of per-service documents (`<folder>/<service>.json`), which codegen owns
/// whole: a file there that no service of the schema produces is stale.
const GENERATED_FOLDERS: [&str; 2] = ["schema/openrpc", "schema/openapi"];

/// The template directories codegen renders (`vproto_codegen::emit_templates`) and the folder
/// each renders into, relative to the workspace root. Codegen owns those folders whole, except
/// for what installing and testing the clients leaves there ([`TEMPLATE_OUTPUT_IGNORED`]).
const TEMPLATE_OUTPUTS: [(&str, &str); 3] = [
    ("templates/python", "clients/python"),
    ("templates/typescript", "clients/typescript"),
    ("templates/reference", "docs/reference"),
];

/// Names under the template outputs that are not generated: package managers' and test
/// runners' leftovers, never stale.
const TEMPLATE_OUTPUT_IGNORED: [&str; 7] =
    ["node_modules", "package-lock.json", "__pycache__", ".pytest_cache", "build", "dist", "vproto_client.egg-info"];

/// Every file the templates render, relative to the workspace root.
fn rendered_files(generated: &vproto_codegen::Generated) -> Result<Vec<(PathBuf, String)>, String> {
    let root = root();
    let mut files = Vec::new();
    for (templates, out) in TEMPLATE_OUTPUTS {
        for (path, contents) in generated.render_templates(&root.join(templates)).map_err(|e| e.to_string())? {
            let text = String::from_utf8(contents)
                .map_err(|_| format!("{templates}/{}: renders to bytes that are not UTF-8", path.display()))?;
            files.push((Path::new(out).join(path), text));
        }
    }
    Ok(files)
}

/// The files under the template outputs (recursively, without [`TEMPLATE_OUTPUT_IGNORED`]),
/// relative to the workspace root, sorted.
fn files_in_template_outputs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = TEMPLATE_OUTPUTS
        .iter()
        .flat_map(|(_, out)| files_under(root, Path::new(out), &TEMPLATE_OUTPUT_IGNORED))
        .collect();
    found.sort();
    found
}

/// Every file codegen writes, with its contents, relative to the workspace root.
fn generated_files(generated: vproto_codegen::Generated) -> Vec<(PathBuf, String)> {
    let rust = generated.rust.files().into_iter().map(|(file, text)| (Path::new(GENERATED_RUST).join(file), text));
    let fixed = [generated.rust_data_trees, generated.meta_schema, generated.json_schema, generated.openrpc];
    let mut files: Vec<(PathBuf, String)> = rust.collect();
    files.extend(GENERATED_FILES.iter().map(PathBuf::from).zip(fixed));
    for (folder, documents) in GENERATED_FOLDERS.iter().zip([generated.service_openrpc, generated.service_openapi]) {
        files.extend(
            documents.into_iter().map(|(service, text)| (Path::new(folder).join(format!("{service}.json")), text)),
        );
    }
    files
}

/// The files in the per-service folders, relative to the workspace root, sorted.
fn files_in_generated_folders(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = GENERATED_FOLDERS
        .iter()
        .filter_map(|folder| std::fs::read_dir(root.join(folder)).ok().map(|entries| (folder, entries)))
        .flat_map(|(folder, entries)| {
            entries.filter_map(Result::ok).map(move |entry| Path::new(folder).join(entry.file_name()))
        })
        .collect();
    found.sort();
    found
}

fn codegen(check: bool) -> Result<(), String> {
    let root = root();
    let stamp = root.join("target/xtask-codegen.fingerprint");
    // Nothing changed since the last run (inputs, outputs, the generator itself): the same
    // bytes would be written, so skip. `--check` always generates and compares.
    if !check && codegen_fingerprint(&root).is_some_and(|f| std::fs::read_to_string(&stamp).is_ok_and(|s| s == f)) {
        return Ok(());
    }
    let generated = generator().generate().map_err(|d| d.to_string())?;
    let unpublished = generated.unpublished.clone();
    let rendered = rendered_files(&generated)?;
    let mut files = generated_files(generated);
    files.extend(rendered);
    if !check {
        for folder in GENERATED_FOLDERS {
            std::fs::create_dir_all(root.join(folder)).map_err(|e| format!("cannot create {folder}: {e}"))?;
        }
        for (path, _) in &files {
            if let Some(parent) = root.join(path).parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
    }
    let mut stale = 0;
    for (path, contents) in &files {
        stale += usize::from(ensure_file_contents(&root.join(path), contents, check)?);
    }
    let mut found = files_in_generated_folders(&root);
    found.extend(files_in_template_outputs(&root));
    for leftover in found.into_iter().filter(|found| !files.iter().any(|(path, _)| path == found)) {
        stale += 1;
        if check {
            eprintln!("stale: {} (codegen no longer produces it)", leftover.display());
        } else {
            std::fs::remove_file(root.join(&leftover))
                .map_err(|e| format!("cannot remove {}: {e}", leftover.display()))?;
            eprintln!("removed: {}", leftover.display());
        }
    }
    if !check && unpublished.is_empty() {
        if let Some(fingerprint) = codegen_fingerprint(&root) {
            // Only a cache: failing to write it costs the next run its shortcut, nothing else.
            let _ = std::fs::create_dir_all(root.join("target")).and_then(|()| std::fs::write(&stamp, fingerprint));
        }
    }
    if !unpublished.is_empty() {
        eprintln!("not yet published (run `cargo xtask lock` once the shape is final): {}", unpublished.join(", "));
    }
    if check {
        let mut problems = Vec::new();
        if stale > 0 {
            problems.push(format!("{stale} generated file(s) are stale: run `cargo xtask codegen`"));
        }
        if !unpublished.is_empty() {
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
    let rust = vproto_codegen::emit_rust::RustModules::file_names().map(|file| Path::new(GENERATED_RUST).join(file));
    let fixed =
        ["schema/vproto.json", "schema/vproto.lock"].iter().chain(&GENERATED_FILES).map(PathBuf::from).chain(rust);
    let templates = TEMPLATE_OUTPUTS.iter().flat_map(|(templates, _)| files_under(root, Path::new(templates), &[]));
    for path in fixed.chain(files_in_generated_folders(root)).chain(files_in_template_outputs(root)).chain(templates) {
        let bytes = std::fs::read(root.join(&path)).ok()?;
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Some(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Every file under `dir` (relative to `root`), recursively, relative to `root`, sorted;
/// entries named in `ignored` are skipped.
fn files_under(root: &Path, dir: &Path, ignored: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else { continue };
        for entry in entries.filter_map(Result::ok) {
            if ignored.iter().any(|name| entry.file_name() == *name) {
                continue;
            }
            let path = dir.join(entry.file_name());
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn lock() -> Result<(), String> {
    let root = root();
    let schema = vproto_codegen::load_schema(&root.join("schema/vproto.json")).map_err(|d| d.to_string())?;
    let lock_path = root.join("schema/vproto.lock");
    if let Ok(text) = std::fs::read_to_string(&lock_path) {
        let existing = Lock::parse(&text).map_err(|e| e.to_string())?;
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

/// Seconds each fuzz target runs in `cargo xtask test`.
const CI_FUZZ_SECONDS: u64 = 10;

fn test() -> Result<(), String> {
    // Everything the tests meet as real peers is set up first, so that a fresh machine runs
    // every test; under `CI` a test whose peer is still missing fails rather than skips.
    ensure_system_packages()?;
    ensure_rust_components()?;
    let python = python_venv()?;
    run("cargo fmt --check", cargo().args(["fmt", "--all", "--check"]))?;
    codegen(true)?;
    eprintln!("==> codegen is fresh");
    run("cargo clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The vchan tests run C programs on the simulation's libraries: built once, here.
    let sim_libs = vchan_sim::build()?;
    run(
        "cargo test",
        cargo().args(["test", "--workspace"]).env("VPROTO_VENV", venv_dir()).env("VPROTO_VCHAN_SIM_LIBS", sim_libs),
    )?;
    run("cargo build (vproto binary)", cargo().args(["build", "-p", "vproto-cli"]))?;
    // The guest agent's tests again, against the binary as shipped (LTO, panic = abort, static).
    let shipped = guest_agent()?;
    run(
        "guest agent tests (shipped binary)",
        cargo().args(["test", "-p", "vproto-guest-agent", "--test", "agent"]).env("VPROTO_GUEST_AGENT_BIN", &shipped),
    )?;
    // Each decoder's fuzz target for a short while: a crash the corpus holds is caught here too.
    fuzz::fuzz(CI_FUZZ_SECONDS, &[])?;
    run(
        "os-vif interop, published documents, generated clients and reference site (pytest)",
        Command::new(&python)
            .args(["-m", "pytest", "tests/osvif", "tests/documents", "tests/clients", "-q"])
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
    // A venv whose Python or pip does not run (half made, or its Python upgraded away) is
    // made again.
    let works = Command::new(&python).args(["-m", "pip", "--version"]).output().is_ok_and(|out| out.status.success());
    if !works {
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("cannot remove the broken venv {}: {e}", venv.display()))?;
        }
        run("create the Python venv", Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    if !works || installed.as_deref() != Some(wanted.as_str()) {
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
    ensure_system_packages()?;
    // Measured by cli/benches/guest_agent.rs beside `vproto agent`.
    guest_agent()?;
    // C libxenvchan runs on them in vchan/benches/vchan.rs.
    let sim_libs = vchan_sim::build()?;
    let venv = venv_dir();
    python_venv()?;
    run(
        "cargo bench",
        cargo()
            .args(["bench", "--workspace"])
            .arg("--")
            .args(args)
            .env("VPROTO_VENV", venv)
            .env("VPROTO_VCHAN_SIM_LIBS", sim_libs),
    )
}

/// The Debian packages the tests and benchmarks use as real peers: `ip` (network namespaces and
/// veth pairs) for the netlink and guest agent tests, Xen's own xenstore-utils and python3-pyxs
/// as foreign Xenstore clients, python3-venv (ensurepip) for the test venv, and gcc with Xen's
/// libxenvchan (libxen-dev: headers; libxenmisc4.17: the library) for the vchan tests' C peer,
/// chromium (headless) for the generated reference site's browser test, rabbitmq-server for the
/// amqp:// transport's private brokers, postgresql for the conductor state's private clusters.
const SYSTEM_PACKAGES: [&str; 10] = [
    "iproute2",
    "xenstore-utils",
    "python3-pyxs",
    "python3-venv",
    "gcc",
    "libxen-dev",
    "libxenmisc4.17",
    "chromium",
    "rabbitmq-server",
    "postgresql",
];

/// Installs the missing [`SYSTEM_PACKAGES`] with apt when running as root; otherwise says which
/// are missing and how to install them (an error under `CI`, where the tests needing them would
/// fail). Asks dpkg first and runs nothing more when all are installed.
fn ensure_system_packages() -> Result<(), String> {
    let missing = match missing_packages(&SYSTEM_PACKAGES) {
        Ok(missing) if missing.is_empty() => return Ok(()),
        Ok(missing) => missing,
        Err(why) => {
            let message = format!(
                "cannot check the Debian packages the tests need ({why}): install the equivalents of {} yourself",
                SYSTEM_PACKAGES.join(" ")
            );
            return if vproto_test_support::in_ci() { Err(message) } else { warn(&message) };
        }
    };
    let list = missing.join(" ");
    if !vproto_test_support::is_root() {
        let message = format!(
            "the tests need Debian packages that are missing: {list}; install them with `sudo apt-get install {list}` (`cargo xtask test` as root does it itself)"
        );
        return if vproto_test_support::in_ci() {
            Err(message)
        } else {
            warn(&format!("{message}; the tests that need them skip"))
        };
    }
    eprintln!("==> installing the missing Debian packages through apt: {list}");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        // -qq: nothing but errors and warnings; dpkg's progress goes to stdout, dropped.
        command.arg("-qq").args(args).env("DEBIAN_FRONTEND", "noninteractive").stdout(std::process::Stdio::null());
        command
    };
    run("apt-get update", &mut apt(&["update"]))?;
    // debconf's notice that apt-utils is missing (on every minimal image) is not worth a line;
    // everything else apt says on stderr is shown.
    let output = apt(&["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("apt-get install: cannot start: {e}"))?;
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        if !line.starts_with("debconf: delaying package configuration") {
            eprintln!("{line}");
        }
    }
    if !output.status.success() {
        return Err(format!("apt-get install {list} failed ({})", output.status));
    }
    let still = missing_packages(&SYSTEM_PACKAGES)?;
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("apt-get did not install {}", still.join(" ")))
    }
}

/// The `packages` dpkg does not have installed.
fn missing_packages<'a>(packages: &[&'a str]) -> Result<Vec<&'a str>, String> {
    // Unknown packages are reported on stderr and make dpkg-query exit 1; stdout still lists the rest.
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Package} ${db:Status-Status}\\n"])
        .args(packages)
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.strip_suffix(" installed"))
        .map(|name| name.split(':').next().unwrap_or(name))
        .collect();
    Ok(packages.iter().copied().filter(|package| !installed.contains(package)).collect())
}

/// rustfmt and clippy, which a minimal rustup profile lacks, added through rustup.
fn ensure_rust_components() -> Result<(), String> {
    for (component, subcommand) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        if cargo().args([subcommand, "--version"]).output().is_ok_and(|out| out.status.success()) {
            continue;
        }
        run(&format!("rustup component add {component}"), Command::new("rustup").args(["component", "add", component]))
            .map_err(|e| format!("{e}: `cargo {subcommand}` is needed (install the {component} component)"))?;
    }
    Ok(())
}

fn warn(message: &str) -> Result<(), String> {
    eprintln!("warning: {message}");
    Ok(())
}

/// Builds the guest agent as shipped to guests and returns its path: the `guest-agent` profile
/// (fat LTO, `panic = "abort"`, stripped; workspace Cargo.toml), linked statically (`crt-static`,
/// a static PIE: no shared libc pages to count in its memory, and it runs on any distribution's
/// C library). The flag goes to the binary's own crate only, where rustc links; the dependencies
/// and the output directory are the profile's own.
fn guest_agent() -> Result<PathBuf, String> {
    run(
        "cargo rustc --profile guest-agent -p vproto-guest-agent (static)",
        cargo()
            .args(["rustc", "--profile", "guest-agent", "-p", "vproto-guest-agent", "--bin", "vproto-guest-agent"])
            .args(["--", "-C", "target-feature=+crt-static"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir));
    let path = target.join("guest-agent/vproto-guest-agent");
    let size = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    eprintln!("==> {} ({:.1} MB)", path.display(), size as f64 / 1e6);
    Ok(path)
}
