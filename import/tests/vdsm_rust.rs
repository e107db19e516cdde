//! The Rust generated from the imported vdsm schema compiles: written with the generator's
//! `joined()` module into a scratch crate that depends on vproto-support (as any project using
//! the generator does, see examples/future-protocol), then `cargo check`ed.

mod support;

use std::process::Command;

use vproto_import::vdsm;

#[test]
fn the_rust_generated_for_vdsm_compiles() {
    let folder = support::vdsm_corpus();
    let imported = vdsm::import(&folder.join("vdsm-api.yml"), Some(&folder.join("vdsm-events.yml"))).expect("imports");
    let scratch = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vdsm-rust");
    std::fs::create_dir_all(scratch.join("src")).expect("the scratch crate");
    let schema = scratch.join("vdsm.json");
    std::fs::write(&schema, imported.to_text()).expect("write the schema");
    let generated =
        vproto_codegen::Generator::new(&schema).generate().unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    std::fs::write(scratch.join("src/vdsm.rs"), generated.rust.joined()).expect("write the Rust");
    std::fs::write(
        scratch.join("src/lib.rs"),
        "//! vdsm's API as vproto generates it.\n#![allow(clippy::all)]\ninclude!(\"vdsm.rs\");\n",
    )
    .expect("write lib.rs");
    let support = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../support");
    std::fs::write(
        scratch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"vdsm-generated\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nvproto-support = {{ path = {:?} }}\nserde_json = \"1\"\ntracing = \"0.1\"\n\n[workspace]\n",
            support.canonicalize().expect("the support crate")
        ),
    )
    .expect("write the manifest");
    // The workspace's lock, so the scratch crate builds with the versions vproto is tested with.
    std::fs::copy(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"), scratch.join("Cargo.lock"))
        .expect("copy Cargo.lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--quiet", "--manifest-path"])
        .arg(scratch.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the generated Rust does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
