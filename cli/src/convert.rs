//! `vproto convert`: backport or upgrade one `versioned_object` primitive.

use std::{
    io::{Read, Write},
    path::PathBuf,
};

use vproto_support::wire::{Manifest, Version};

use crate::CliError;

/// Arguments of `vproto convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The version to write the object at, MAJOR.MINOR.
    #[arg(long = "to", value_name = "VERSION")]
    to: String,
    /// A version manifest: a JSON object {"ObjectName": "MAJOR.MINOR", ...}
    /// giving the version each child object is sent at.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
}

/// Reads stdin, converts, writes stdout; every failure is exit 2 (the input or the options).
pub fn run(args: &ConvertArgs) -> Result<(), CliError> {
    convert(args).map_err(CliError::Usage)
}

fn convert(args: &ConvertArgs) -> Result<(), String> {
    let target: Version = args.to.parse().map_err(|e| format!("--to: {e}"))?;
    let manifest = args.manifest.as_ref().map(|path| read_manifest(path.as_path())).transpose()?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&input).map_err(|e| format!("stdin is not valid JSON: {e}"))?;
    let converted =
        vproto_api::convert_primitive(&value, Some(target), manifest.as_ref()).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &converted).map_err(|e| e.to_string())?;
    writeln!(stdout).map_err(|e| e.to_string())
}

fn read_manifest(path: &std::path::Path) -> Result<Manifest, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--manifest {shown}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--manifest {shown}: not valid JSON: {e}"))?;
    let entries = value
        .as_object()
        .ok_or_else(|| format!("--manifest {shown}: expected a JSON object of object names to versions"))?;
    let mut manifest = Manifest::new();
    for (name, version) in entries {
        let Some(info) = vproto_api::REGISTRY.get(name) else {
            // oslo ignores entries for classes it does not know: a newer peer may name them.
            eprintln!("vproto: note: --manifest {shown}: ignoring `{name}`, which is not an object of the schema");
            continue;
        };
        let version = version
            .as_str()
            .ok_or_else(|| format!("--manifest {shown}: the version of {name} must be a string"))?
            .parse::<Version>()
            .map_err(|e| format!("--manifest {shown}: {name}: {e}"))?;
        if !info.versions.contains(&version) {
            let known: Vec<String> = info.versions.iter().map(Version::to_string).collect();
            return Err(format!(
                "--manifest {shown}: {name} has no version {version} (its versions: {})",
                known.join(", ")
            ));
        }
        manifest.insert(name.clone(), version);
    }
    Ok(manifest)
}
