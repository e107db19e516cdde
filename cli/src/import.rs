//! `vproto import vdsm|qapi`: writes a vproto schema from a schema people already have
//! (vproto-import), checked as `vproto check` checks it; every construct that was mapped
//! approximately or left out is a note on stderr naming where and why.

use std::path::PathBuf;

use vproto_import::{ImportError, Imported};

use crate::CliError;

/// Arguments of `vproto import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: Source,
    /// Where to write the schema [default: stdout].
    #[arg(short = 'o', long = "out", value_name = "FILE", global = true)]
    out: Option<PathBuf>,
    /// Print only the count of notes, not each.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(clap::Subcommand)]
enum Source {
    /// oVirt vdsm's vdsm-api.yml.
    Vdsm {
        /// vdsm-api.yml.
        file: PathBuf,
        /// vdsm-events.yml, whose events join the services of their namespace.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
    },
    /// QEMU's QAPI schema: the top-level qapi-schema.json (its includes are followed) or a folder
    /// of QAPI files.
    Qapi {
        /// qapi-schema.json or a folder holding it (or other .json QAPI files).
        path: PathBuf,
    },
}

/// Imports, checks and writes; exit 2 when the source cannot be read, 1 when the result does not
/// pass the checks.
pub fn run(args: &ImportArgs) -> Result<(), CliError> {
    let imported = match &args.source {
        Source::Vdsm { file, events } => vproto_import::vdsm::import(file, events.as_deref()),
        Source::Qapi { path } => vproto_import::qapi::import(path),
    }
    .map_err(|error: ImportError| CliError::usage(error.to_string()))?;
    report_notes(&imported, args.quiet);
    if let Err(diagnostics) = imported.check() {
        eprint!("{diagnostics}");
        return Err(CliError::failed("the imported schema does not pass the checks (see above)"));
    }
    let text = imported.to_text();
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|error| CliError::failed(format!("cannot write {}: {error}", path.display())))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn report_notes(imported: &Imported, quiet: bool) {
    if !quiet {
        for note in &imported.notes {
            eprintln!("vproto import: note: {note}");
        }
    }
    let schema = &imported.schema;
    let methods: usize = schema.services.values().map(|service| service.methods.len()).sum();
    let events: usize = schema.services.values().map(|service| service.events.len()).sum();
    eprintln!(
        "vproto import: {} types, {} objects, {} services, {methods} methods, {events} events; {} notes",
        schema.types.len(),
        schema.objects.len(),
        schema.services.len(),
        imported.notes.len()
    );
}
