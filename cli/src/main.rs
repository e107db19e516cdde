//! `vproto`: the command line over the vproto crates.

mod agent;
mod call;
mod check;
mod conform;
mod convert;
mod diff;
mod duration;
mod error;
mod generate;
mod guest_info;
mod import;
mod security;
mod serve;
mod vchan;
mod watch;
mod xenstored;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{block_on, CliError};

#[derive(Parser)]
#[command(name = "vproto", version, about = "Schema-first protocol toolkit: os-vif objects, Cyborg, Xen guest data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert one os-vif primitive (JSON on stdin) to another version (JSON on stdout).
    Convert(convert::ConvertArgs),
    /// Run a reference service (driver, agent, conductor, network) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Call a method of a running service, checking the params against the schema first.
    Call(call::CallArgs),
    /// Print a running service's events as NDJSON lines until SIGINT/SIGTERM.
    Watch(watch::WatchArgs),
    /// Run the conformance suite against a server (--target, --reference) or a client (--serve).
    Conform(conform::ConformArgs),
    /// Read a Xen guest's data tree from Xenstore, validate it against the schema and print it as JSON.
    GuestInfo(guest_info::GuestInfoArgs),
    /// Xen guest agent: publish OS and NIC state in this guest's Xenstore data tree (Cyborg's is `serve agent`).
    Agent(agent::AgentArgs),
    /// Run an in-memory Xenstore server (development and tests) until SIGINT/SIGTERM.
    Xenstored(xenstored::XenstoredArgs),
    /// Carry stdin and stdout over a Xen vchan to another domain (listen or connect).
    Vchan(vchan::VchanArgs),
    /// Validate a schema file and print what it holds and every diagnostic.
    Check(check::CheckArgs),
    /// Render a directory of handlebars templates (another language's client, a site) over a schema.
    Generate(generate::GenerateArgs),
    /// Classify every change between two schema revisions (exit 1 on a wire-breaking one).
    Diff(diff::DiffArgs),
    /// Write a vproto schema from vdsm's vdsm-api.yml or QEMU's QAPI schema.
    Import(import::ImportArgs),
}

impl Command {
    /// The command's name, as it prefixes its error messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Convert(_) => "convert",
            Command::Serve(_) => "serve",
            Command::Call(_) => "call",
            Command::Watch(_) => "watch",
            Command::Conform(_) => "conform",
            Command::GuestInfo(_) => "guest-info",
            Command::Agent(_) => "agent",
            Command::Xenstored(_) => "xenstored",
            Command::Vchan(_) => "vchan",
            Command::Check(_) => "check",
            Command::Generate(_) => "generate",
            Command::Diff(_) => "diff",
            Command::Import(_) => "import",
        }
    }

    fn run(self) -> Result<(), CliError> {
        match self {
            Command::Convert(args) => convert::run(&args),
            Command::GuestInfo(args) => block_on(guest_info::run(&args)),
            Command::Serve(args) => serve::run(args),
            Command::Call(args) => block_on(call::run(args)),
            Command::Watch(args) => block_on(watch::run(args)),
            Command::Conform(args) => block_on(conform::run(args)),
            Command::Agent(args) => agent::run(args),
            Command::Xenstored(args) => xenstored::run(args),
            Command::Vchan(args) => vchan::run(args),
            Command::Check(args) => check::run(&args),
            Command::Generate(args) => generate::run(&args),
            Command::Diff(args) => diff::run(&args),
            Command::Import(args) => import::run(&args),
        }
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let name = command.name();
    match command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::from(1),
        Err(error) => {
            eprintln!("vproto {name}: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
