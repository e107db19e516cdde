//! `vproto diff OLD NEW` and `vproto diff --against REV [NEW]`: classifies every change between
//! two revisions of a schema (vproto-codegen's `diff`). Exit 1 on a wire-breaking change no
//! `--allow` rule acknowledges, 0 otherwise, 2 when a revision cannot be read or does not pass
//! the checks.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use vproto_codegen::{
    diff::{diff, AllowRule, Report, Severity},
    model::Schema,
    parse_schema,
};

use crate::CliError;

/// Arguments of `vproto diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The old and the new revision; with --against, only the new one [default:
    /// schema/vproto.json].
    #[arg(value_name = "FILE", num_args = 0..=2)]
    files: Vec<PathBuf>,
    /// Compare the new revision with the same file at this git revision (a commit, tag or branch).
    #[arg(long, value_name = "REV")]
    against: Option<String>,
    /// Acknowledge a deliberate break: RULE (such as method-removed), /POINTER, or RULE=/POINTER
    /// (repeatable).
    #[arg(long, value_name = "RULE")]
    allow: Vec<String>,
    /// Print the compatible findings too.
    #[arg(long)]
    all: bool,
    /// Print the findings as one JSON array.
    #[arg(long)]
    json: bool,
}

/// Runs the diff and prints the findings.
pub fn run(args: &DiffArgs) -> Result<(), CliError> {
    let rules =
        args.allow.iter().map(|text| AllowRule::parse(text).map_err(CliError::usage)).collect::<Result<Vec<_>, _>>()?;
    let (old, new) = match (&args.against, args.files.as_slice()) {
        (Some(rev), []) => revisions_against(rev, Path::new("schema/vproto.json"))?,
        (Some(rev), [new]) => revisions_against(rev, new)?,
        (Some(_), _) => return Err(CliError::usage("with --against give at most the new revision's file")),
        (None, [old, new]) => (read(old)?, read(new)?),
        (None, _) => return Err(CliError::usage("give OLD and NEW, or --against REV [NEW]")),
    };
    let mut report = diff(&old, &new);
    for stale in report.allow(&rules) {
        eprintln!("vproto diff: note: --allow {stale} matched nothing");
    }
    print(&report, args)?;
    if report.breaks_wire() {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

fn print(report: &Report, args: &DiffArgs) -> Result<(), CliError> {
    let shown = |severity: Severity| args.all || severity != Severity::Compatible;
    if args.json {
        let findings: Vec<serde_json::Value> = report
            .findings
            .iter()
            .filter(|finding| shown(finding.severity))
            .map(|finding| {
                serde_json::json!({
                    "severity": finding.severity.as_str(),
                    "rule": finding.rule,
                    "old": finding.old,
                    "new": finding.new,
                    "why": finding.why,
                    "allowed": finding.allowed,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(findings));
        return Ok(());
    }
    for severity in [Severity::WireBreaking, Severity::SourceBreaking, Severity::Compatible] {
        for finding in report.of(severity).filter(|_| shown(severity)) {
            println!("{finding}");
        }
    }
    println!("{}", report.summary());
    Ok(())
}

fn read(path: &Path) -> Result<Schema, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::usage(format!("cannot read {}: {error}", path.display())))?;
    checked(&text, &path.display().to_string())
}

fn checked(text: &str, source: &str) -> Result<Schema, CliError> {
    parse_schema(text, source)
        .map_err(|diagnostics| CliError::usage(format!("{source} does not pass the checks:\n{diagnostics}")))
}

/// The file at `rev` (read with `git show REV:./FILE` in the file's folder) and the file now.
fn revisions_against(rev: &str, new: &Path) -> Result<(Schema, Schema), CliError> {
    let folder = match new.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = new.file_name().ok_or_else(|| CliError::usage(format!("{} names no file", new.display())))?;
    let spec = format!("{rev}:./{}", name.to_string_lossy());
    let output = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(["show", &spec])
        .output()
        .map_err(|error| CliError::usage(format!("cannot run git: {error}")))?;
    if !output.status.success() {
        return Err(CliError::usage(format!(
            "git show {spec} in {}: {}",
            folder.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let old_text =
        String::from_utf8(output.stdout).map_err(|_| CliError::usage(format!("{spec} is not UTF-8 text")))?;
    Ok((checked(&old_text, &format!("{} at {rev}", new.display()))?, read(new)?))
}
