//! Generates this crate's protocol with vproto-codegen, as any project using
//! the generator from its own build.rs would. The schema is vproto's with
//! HostInfo one version ahead (1.1 adds `hostname`), so the tests can play a
//! newer service host against today's network host and the reverse.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let source = manifest_dir.join("../../schema/vproto.json");
    println!("cargo:rerun-if-changed={}", source.display());

    let text = std::fs::read_to_string(&source).expect("schema/vproto.json is readable");
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("schema/vproto.json is JSON");
    let host_info = &mut schema["objects"]["HostInfo"];
    host_info["version"] = "1.1".into();
    host_info["history"]
        .as_array_mut()
        .expect("HostInfo has a history")
        .push(serde_json::json!({"version": "1.1", "note": "Added hostname"}));
    host_info["fields"]["hostname"] = serde_json::json!({
        "description": "The service host's name.",
        "schema": {"type": "string"},
        "since": "1.1",
        "nullable": true,
        "default": null
    });
    let future = out_dir.join("future.json");
    std::fs::write(&future, serde_json::to_string_pretty(&schema).expect("JSON")).expect("OUT_DIR is writable");

    vproto_codegen::Generator::new(&future)
        .write_rust(&out_dir.join("protocol.rs"))
        .unwrap_or_else(|error| panic!("{error}"));
}
