//! Proof that `vproto conform` catches real mistakes (issue #4, item 5).
//!
//! This test binary is also the broken server: run as `conform_proof serve-broken KIND
//! --driver-config FILE --network-config FILE`, it serves the reference driver and network
//! services on stdin/stdout with one deliberate mistake (see `conform_proof/broken.rs`), so the
//! suite drives it as `exec:`. Run without `serve-broken`, it is a test harness
//! (libtest-mimic, so `cargo test` filters and flags work) with one trial per mistake:
//!
//! - `reference_passes`: the unbroken build (`none`) passes every case and covers every method;
//! - `<kind>_is_caught`: with that mistake, `vproto conform` exits 1 and the JSON report lists
//!   the case(s) meant for it among the failures. A mistake served with the host's own data
//!   ([`Data::Own`]) is first run without fixtures, where no case can see it and the run must
//!   fail on coverage alone, then with fixtures naming that data, where its cases must fail.

#[path = "conform_proof/broken.rs"]
mod broken;
mod conform_support;

use std::{collections::BTreeSet, process::ExitCode, time::Duration};

use broken::Break;
use conform_support::{
    conform, driver_config, shell_quote, shorten, write_network_config, write_own_network_config,
    write_own_network_fixtures, Run,
};
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
        Break::WrapsResultsInList => {
            &["method/network.create_port/valid/example-1", "method/network.create_port/valid/example-1/by-position"]
        }
        Break::EventsBeforeSubscribe => &["events/network/silent-before-subscribe", "events/network/after-unsubscribe"],
        Break::InvalidEventPayload => &["events/network/delivery"],
    }
}

/// The data a broken server is configured with, and so what the suite can call on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Data {
    /// The network the schema's `network.create_port` example names, and the example driver:
    /// the suite's own calls succeed. Tested: `driver,network`.
    Examples,
    /// A network of its own ([`conform_support::OWN_NETWORK`]), which no example or generated
    /// call names: every call the suite can make on its own gets NetworkNotFound, and only
    /// fixtures make a successful call possible. Tested: `network`.
    Own,
}

/// The data `kind` is served with.
fn data_of(kind: Break) -> Data {
    match kind {
        Break::WrapsResultsInList => Data::Own,
        _ => Data::Examples,
    }
}

/// The only method the [`Data::Own`] host cannot get a result of without fixtures.
const OWN_DATA_UNCOVERED: &str = "network.create_port";

/// Runs `vproto conform` against the broken server `kind`, in its own temporary directory;
/// with `fixtures`, naming the data of a [`Data::Own`] host.
fn run_against(kind: Break, fixtures: bool) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let data = data_of(kind);
    let network = match data {
        Data::Examples => write_network_config(dir.path()),
        Data::Own => write_own_network_config(dir.path()),
    };
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
    let target = format!("exec:{command}");
    let services = if data == Data::Own { "network" } else { "driver,network" };
    let mut args = vec!["--target", &target, "--services", services];
    let fixtures = fixtures.then(|| write_own_network_fixtures(dir.path()).display().to_string());
    if let Some(path) = &fixtures {
        args.extend(["--fixtures", path]);
    }
    conform(dir.path(), &args)
}

/// The unbroken build passes every case.
fn reference_passes() -> Result<(), Failed> {
    let run = run_against(Break::None, false)?;
    let failed = run.failed();
    if run.exit != Some(0) || !failed.is_empty() || !run.uncovered.is_empty() {
        return Err(format!(
            "the unbroken services should pass: exit {:?}, failed {failed:?}, uncovered {:?}\n{}",
            run.exit,
            run.uncovered,
            shorten(&run.stderr)
        )
        .into());
    }
    if run.cases.len() < 50 {
        return Err(format!("only {} cases ran; expected the whole suite", run.cases.len()).into());
    }
    Ok(())
}

/// The suite fails on `kind`, and the cases meant for it are among the failures (for a host
/// with its own data: only once fixtures name it; before, on coverage alone).
fn is_caught(kind: Break) -> Result<(), Failed> {
    if data_of(kind) == Data::Own {
        let run = run_against(kind, false)?;
        let failed = run.failed();
        if run.exit != Some(1) || !failed.is_empty() || run.uncovered != [OWN_DATA_UNCOVERED] {
            return Err(format!(
                "`{}` without fixtures: every case should pass and the run fail only because {OWN_DATA_UNCOVERED} \
                 is uncovered; exit {:?}, failed {failed:?}, uncovered {:?}\n{}",
                kind.name(),
                run.exit,
                run.uncovered,
                shorten(&run.stderr)
            )
            .into());
        }
    }
    let run = run_against(kind, data_of(kind) == Data::Own)?;
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
