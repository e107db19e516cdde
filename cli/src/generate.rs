//! `vproto generate --templates DIR --out DIR [--schema FILE]`: renders a directory of
//! handlebars templates (another language's client, a documentation site) over a schema's IR,
//! as `cargo xtask codegen` renders the repository's own `templates/`.

use std::path::PathBuf;

use crate::CliError;

/// vproto's own schema, used when `--schema` is not given.
const VPROTO_SCHEMA: &str = include_str!("../../schema/vproto.json");

/// Arguments of `vproto generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The template directory (`NAME.hbs` renders to `NAME`, `[objects]` in a path renders
    /// once per object, `_NAME.hbs` is a partial, other files are copied; see docs/clients.md).
    #[arg(long, value_name = "DIR")]
    templates: PathBuf,
    /// Where to write the rendered files (created when missing; files are overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The schema file (default: vproto's own schema, as this binary was built with).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
}

/// Renders the templates: exit 0 with one line per file written, 1 when the schema or a
/// template has a problem (printed), 2 when a path cannot be read.
pub fn run(args: &GenerateArgs) -> Result<(), CliError> {
    if !args.templates.is_dir() {
        return Err(CliError::usage(format!("--templates {}: not a directory", args.templates.display())));
    }
    // Kept alive until the generator has read it.
    let builtin;
    let schema = match &args.schema {
        Some(path) => {
            std::fs::metadata(path).map_err(|e| CliError::usage(format!("--schema {}: {e}", path.display())))?;
            path.clone()
        }
        None => {
            builtin = tempfile::Builder::new()
                .suffix(".json")
                .tempfile()
                .and_then(|mut file| std::io::Write::write_all(&mut file, VPROTO_SCHEMA.as_bytes()).map(|()| file))
                .map_err(|e| CliError::failed(format!("cannot write the built-in schema to a temporary file: {e}")))?;
            builtin.path().to_path_buf()
        }
    };
    let written = vproto_codegen::Generator::new(&schema)
        .write_templates(&args.templates, &args.out)
        .map_err(|error| CliError::failed(error.to_string()))?;
    for path in &written {
        println!("{}", args.out.join(path).display());
    }
    eprintln!("vproto generate: {} file(s) written under {}", written.len(), args.out.display());
    Ok(())
}
