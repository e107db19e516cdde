//! `cargo xtask fuzz [--time SECONDS] [TARGET...]`: builds the libFuzzer targets of fuzz/ with
//! cargo-fuzz (installed from crates.io when missing) on the stable toolchain
//! (`RUSTC_BOOTSTRAP=1` lets it pass the sanitizer flags), then runs each for SECONDS on its
//! corpus (fuzz/corpus/TARGET, kept between runs, not checked in) seeded from fuzz/seeds/TARGET,
//! and prints the executions and coverage each reached (docs/reliability.md). A crash fails
//! the run, its input left in fuzz/artifacts/TARGET for a regression test.

use std::process::{Command, Stdio};

use super::{cargo, root, run};

/// Every target, as fuzz/Cargo.toml names them.
pub const TARGETS: &[&str] =
    &["jsonrpc_lines", "osvif_envelope", "xenstore_client", "xenstore_server", "data_tree", "vchan_ring", "config"];

/// What one target's run reached, from libFuzzer's last status line.
struct Reached {
    target: String,
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
}

/// The numbers of libFuzzer's `#N DONE cov: C ft: F corp: K/...` line (or the last status line).
fn reached(target: &str, stderr: &str) -> Option<Reached> {
    let line = stderr.lines().rev().find(|line| line.starts_with('#') && line.contains(" cov: "))?;
    let number = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let executions = line[1..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some(Reached {
        target: target.to_string(),
        executions,
        coverage: number("cov:")?,
        features: number("ft:")?,
        corpus: number("corp:")?,
    })
}

fn cargo_fuzz() -> Command {
    let mut command = cargo();
    command.arg("fuzz").env("RUSTC_BOOTSTRAP", "1").current_dir(root().join("fuzz"));
    command
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = cargo().args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if present.is_ok_and(|status| status.success()) {
        return Ok(());
    }
    run("cargo install cargo-fuzz", cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// Builds and runs `targets` (every target when empty) for `seconds` each.
pub fn fuzz(seconds: u64, targets: &[String]) -> Result<(), String> {
    for target in targets {
        if !TARGETS.contains(&target.as_str()) {
            return Err(format!("no fuzz target `{target}` (targets: {})", TARGETS.join(", ")));
        }
    }
    let targets: Vec<&str> =
        if targets.is_empty() { TARGETS.to_vec() } else { targets.iter().map(String::as_str).collect() };
    ensure_cargo_fuzz()?;
    run("cargo fuzz build", cargo_fuzz().args(["build", "-O"]))?;
    let mut table = Vec::new();
    for target in targets {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        eprintln!("==> fuzz {target} for {seconds} s");
        let output = cargo_fuzz()
            .args(["run", "-O", target])
            .arg(&corpus)
            .arg(root().join("fuzz/seeds").join(target))
            .args(["--", &format!("-max_total_time={seconds}"), "-rss_limit_mb=2048", "-timeout=10"])
            .stdout(Stdio::inherit())
            .output()
            .map_err(|e| format!("cargo fuzz run {target}: cannot start: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} failed ({}); its input is in fuzz/artifacts/{target}/\n{}",
                output.status,
                tail.join("\n")
            ));
        }
        table.push(reached(target, &stderr).ok_or_else(|| format!("{target}: no libFuzzer status line"))?);
    }
    println!("| target | seconds | executions | exec/s | coverage (edges) | features | corpus |");
    println!("|---|---|---|---|---|---|---|");
    for row in table {
        println!(
            "| {} | {seconds} | {} | {} | {} | {} | {} |",
            row.target,
            row.executions,
            row.executions / seconds.max(1),
            row.coverage,
            row.features,
            row.corpus
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_status_line_is_read() {
        let stderr = "#2\tINITED cov: 10 ft: 11 corp: 2/40b exec/s: 0 rss: 30Mb\n\
                      #131072\tpulse  cov: 900 ft: 2000 corp: 300/9Kb exec/s: 6000 rss: 60Mb\n\
                      #183201\tDONE   cov: 912 ft: 2047 corp: 310/10Kb lim: 4096 exec/s: 6106 rss: 61Mb\n\
                      Done 183201 runs in 31 second(s)\n";
        let row = super::reached("t", stderr).unwrap();
        assert_eq!((row.executions, row.coverage, row.features, row.corpus), (183201, 912, 2047, 310));
    }
}
