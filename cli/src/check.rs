//! `vproto check FILE`: validates any schema file (shape, meaning, examples, and the lock when
//! given) and prints what it holds and every diagnostic, for schemas written outside this
//! repository.

use std::path::{Path, PathBuf};

use vproto_codegen::{lock::Lock, model::Schema, Diagnostics};

use crate::CliError;

/// Arguments of `vproto check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The schema file (the vproto schema language, JSON).
    file: PathBuf,
    /// Also check the schema against this lock of published object versions and events.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// List every type, object, error, method, event and data tree by name.
    #[arg(long)]
    list: bool,
    /// Also write the schema's OpenRPC description (every service) here, for `vproto conform
    /// --schema`.
    #[arg(long, value_name = "FILE")]
    openrpc: Option<PathBuf>,
}

/// Checks the file: exit 0 when it passes, 1 when it has diagnostics (all printed), 2 when it
/// cannot be read.
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    if let Err(error) = std::fs::metadata(&args.file) {
        return Err(CliError::usage(format!("cannot read {}: {error}", args.file.display())));
    }
    let mut generator = vproto_codegen::Generator::new(&args.file);
    if let Some(lock) = &args.lock {
        let text = std::fs::read_to_string(lock)
            .map_err(|error| CliError::usage(format!("cannot read the lock {}: {error}", lock.display())))?;
        Lock::parse(&text)
            .map_err(|error| CliError::usage(format!("the lock {} is not valid: {error}", lock.display())))?;
        generator = generator.lock_file(lock);
    }
    let schema = match vproto_codegen::load_schema(&args.file) {
        Ok(schema) => schema,
        Err(diagnostics) => return report(&diagnostics),
    };
    println!("{}: {}", args.file.display(), counts(&schema));
    if args.list {
        for line in listing(&schema) {
            println!("  {line}");
        }
    }
    if args.lock.is_some() || args.openrpc.is_some() {
        let generated = match generator.generate() {
            Ok(generated) => generated,
            Err(diagnostics) => return report(&diagnostics),
        };
        if let Some(path) = &args.openrpc {
            write(path, &generated.openrpc)?;
        }
        for unpublished in &generated.unpublished {
            println!("note: {unpublished} is not in the lock yet");
        }
    }
    println!("ok");
    Ok(())
}

fn report(diagnostics: &Diagnostics) -> Result<(), CliError> {
    print!("{diagnostics}");
    Err(CliError::Reported)
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|error| CliError::failed(format!("cannot write {}: {error}", path.display())))
}

/// `N types, N objects, ...` of a schema.
pub fn counts(schema: &Schema) -> String {
    let methods: usize = schema.services.values().map(|service| service.methods.len()).sum();
    let events: usize = schema.services.values().map(|service| service.events.len()).sum();
    format!(
        "protocol {} {}: {} types, {} objects, {} errors, {} services, {methods} methods, {events} events, {} data trees",
        schema.protocol.name,
        schema.protocol.version,
        schema.types.len(),
        schema.objects.len(),
        schema.errors.len(),
        schema.services.len(),
        schema.data_trees.len()
    )
}

/// One line per element: `type NAME`, `object NAME`, `error NAME`, `method service.name`,
/// `event service.name` (followed by `(wire NAME)` when the schema gives it a wire name of its
/// own), `tree NAME`.
fn listing(schema: &Schema) -> Vec<String> {
    let mut lines = Vec::new();
    lines.extend(schema.types.keys().map(|name| format!("type {name}")));
    lines.extend(schema.objects.keys().map(|name| format!("object {name}")));
    lines.extend(schema.errors.keys().map(|name| format!("error {name}")));
    for (service, body) in &schema.services {
        let wire =
            |wire_name: &Option<String>| wire_name.as_ref().map(|name| format!(" (wire {name})")).unwrap_or_default();
        lines.extend(
            body.methods.iter().map(|(name, method)| format!("method {service}.{name}{}", wire(&method.wire_name))),
        );
        lines.extend(
            body.events.iter().map(|(name, event)| format!("event {service}.{name}{}", wire(&event.wire_name))),
        );
    }
    lines.extend(schema.data_trees.keys().map(|name| format!("tree {name}")));
    lines
}
