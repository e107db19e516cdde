//! Where the tests and benches find their corpora: vdsm's beside the checkout, QEMU's QAPI schema
//! inside the crates.io crate `qapi-qmp` (which ships QEMU's `schema/qapi/*.json`), fetched with
//! cargo into a scratch project of its own, so nothing of it is built.

#![allow(dead_code)] // each test binary uses its own corpus

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The version of `qapi-qmp` whose QAPI files the tests read (QEMU's schema as that release
/// ships it).
pub const QAPI_QMP: &str = "0.15.0";

/// `../shared/corpora/vdsm` relative to the workspace.
pub fn vdsm_corpus() -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/vdsm");
    assert!(folder.join("vdsm-api.yml").is_file(), "the vdsm corpus is missing at {}", folder.display());
    folder
}

/// The folder of QEMU's QAPI files (holding `qapi-schema.json`), from the registry crate
/// `qapi-qmp`: `cargo fetch` of a scratch project depending on it, then `cargo metadata` for
/// where cargo unpacked it. Panics with what failed (a test without its peer fails).
pub fn qapi_schema_dir() -> PathBuf {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qapi-qmp-fetch");
    std::fs::create_dir_all(scratch.join("src")).expect("create the scratch project");
    std::fs::write(
        scratch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"qapi-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nqapi-qmp = \"={QAPI_QMP}\"\n\n[workspace]\n"
        ),
    )
    .expect("write the scratch manifest");
    std::fs::write(scratch.join("src/lib.rs"), "").expect("write the scratch crate");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = scratch.join("Cargo.toml");
    run(Command::new(&cargo).arg("fetch").arg("--manifest-path").arg(&manifest));
    let metadata =
        run(Command::new(&cargo).args(["metadata", "--format-version", "1", "--manifest-path"]).arg(&manifest));
    let metadata: serde_json::Value = serde_json::from_slice(&metadata).expect("cargo metadata prints JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| packages.iter().find(|p| p["name"] == "qapi-qmp"))
        .expect("cargo metadata lists qapi-qmp");
    let manifest_path = Path::new(package["manifest_path"].as_str().expect("a manifest path"));
    let folder = manifest_path.parent().expect("the crate's folder").join("schema/qapi");
    assert!(
        folder.join("qapi-schema.json").is_file(),
        "qapi-qmp {QAPI_QMP} no longer ships schema/qapi/qapi-schema.json at {}",
        folder.display()
    );
    folder
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}
