//! Proof that `vproto conform` catches real mistakes (issue #4, item 5).
//!
//! This test binary is also the broken server: run as `conform_proof serve-broken KIND
//! --driver-config FILE --network-config FILE`, it serves the reference driver and network
//! services on stdin/stdout with one deliberate mistake (see `conform_proof/broken.rs`), so the
//! suite drives it as `exec:`. Run without `serve-broken`, it is a test harness
//! (libtest-mimic, so `cargo test` filters and flags work) with one trial per mistake:
//!
//! - `reference_passes`: the unbroken build (`none`) passes every case;
//! - `<kind>_is_caught`: with that mistake, `vproto conform` exits 1 and the JSON report lists
//!   the case(s) meant for it among the failures.

#[path = "conform_proof/broken.rs"]
mod broken;
mod conform_support;

use std::{collections::BTreeSet, process::ExitCode, time::Duration};

use broken::Break;
use conform_support::{conform, driver_config, shell_quote, shorten, write_network_config, Run};
use libtest_mimic::{Arguments, Failed, Trial};

/// The cases each mistake is meant to be caught by: every one must fail.
fn meant_for(kind: Break) -> &'static [&'static str] {
    match kind {
        Break::None => &[],
        Break::WrongErrorCode => &["negotiation/network.create_port/host_info/newer"],
        Break::MissingResultField => &["method/driver.start_discovery/valid/example-1"],
        Break::WrongResultType => &["method/network.create_port/valid/example-1"],
        Break::NoParamValidation => &[
            "method/network.create_port/invalid/type/network_id",
            "method/network.create_port/invalid/missing/network_id",
        ],
        Break::IgnoresVersions => &[
            "negotiation/network.create_port/host_info/newer",
            "negotiation/network.create_port/host_info/nested/HostVIFInfo/newer",
        ],
        Break::RejectsOlderVersions => &["negotiation/network.create_port/host_info/nested/HostVIFInfo/older/1.0"],
        Break::WrongMaxVersion => &["negotiation/network.create_port/host_info/newer"],
        Break::AnswersNotifications => &["protocol/notification-no-reply"],
        Break::EmptyBatchAnswered => &["protocol/batch/empty"],
        Break::DropsBatchEntry => &["protocol/batch/mixed", "protocol/batch/invalid-items"],
        Break::AnswersNotificationBatch => &["protocol/batch/all-notifications"],
        Break::StringifiedIds => &["protocol/id/integer"],
        Break::NoJsonrpcMember => &["protocol/method-not-found"],
        Break::ParseErrorWithId => &["protocol/parse-error"],
        Break::MethodNotFoundCode => &["protocol/method-not-found"],
        Break::InvalidRequestCode => &["protocol/invalid-request/missing-method"],
        Break::NoPositionalParams => &["method/network.create_port/valid/example-1/by-position"],
        Break::InvalidParamsAsInternal => {
            &["method/network.create_port/invalid/missing/port_id", "protocol/params/too-many-positions"]
        }
    }
}

/// Runs `vproto conform` against the broken server `kind`, in its own temporary directory.
fn run_against(kind: Break) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let network = write_network_config(dir.path());
    let me = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let command = [
        shell_quote(&me.display().to_string()),
        "serve-broken".into(),
        kind.name().into(),
        "--driver-config".into(),
        shell_quote(&driver_config().display().to_string()),
        "--network-config".into(),
        shell_quote(&network.display().to_string()),
    ]
    .join(" ");
    conform(dir.path(), &["--target", &format!("exec:{command}"), "--services", "driver,network"])
}

/// The unbroken build passes every case.
fn reference_passes() -> Result<(), Failed> {
    let run = run_against(Break::None)?;
    let failed = run.failed();
    if run.exit != Some(0) || !failed.is_empty() {
        return Err(format!(
            "the unbroken services should pass: exit {:?}, failed {failed:?}\n{}",
            run.exit,
            shorten(&run.stderr)
        )
        .into());
    }
    if run.cases.len() < 50 {
        return Err(format!("only {} cases ran; expected the whole suite", run.cases.len()).into());
    }
    Ok(())
}

/// The suite fails on `kind`, and the cases meant for it are among the failures.
fn is_caught(kind: Break) -> Result<(), Failed> {
    let run = run_against(kind)?;
    let failed = run.failed();
    if run.exit != Some(1) {
        return Err(format!(
            "`{}`: vproto conform should exit 1, exited {:?}; failed {failed:?}\n{}",
            kind.name(),
            run.exit,
            shorten(&run.stderr)
        )
        .into());
    }
    let missed: Vec<&str> = meant_for(kind).iter().copied().filter(|id| !failed.contains(id)).collect();
    if !missed.is_empty() {
        let ran: BTreeSet<&str> = run.cases.iter().map(|(id, _)| id.as_str()).collect();
        let not_run: Vec<&&str> = missed.iter().filter(|id| !ran.contains(**id)).collect();
        return Err(format!(
            "`{}`: the cases meant for it did not fail: {missed:?} (of which not run at all: {not_run:?}); \
             failed: {failed:?}",
            kind.name()
        )
        .into());
    }
    Ok(())
}

/// `serve-broken ...`: serve until stdin closes.
fn serve_broken(args: &[String]) -> ExitCode {
    let options = match broken::Options::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("serve-broken: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("serve-broken: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(broken::serve(options));
    // Tokio reads stdin on a blocking thread; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("serve-broken: {message}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-broken") {
        return serve_broken(&args[2..]);
    }
    let arguments = Arguments::from_args();
    let mut trials = vec![Trial::test("reference_passes", reference_passes)];
    for kind in Break::ALL.into_iter().filter(|kind| *kind != Break::None) {
        let name = format!("{}_is_caught", kind.name().replace('-', "_"));
        trials.push(Trial::test(name, move || is_caught(kind)));
    }
    libtest_mimic::run(&arguments, trials).exit_code()
}
