//! `vproto`: the command line over the vproto crates.

mod agent;
mod call;
mod conform;
mod convert;
mod guest_info;
mod serve;
mod xenstored;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the conformance suite against a server (--target, --reference) or a client (--serve).
    Conform(conform::ConformArgs),
    /// Read a Xen guest's data tree from Xenstore, validate it against the schema and print it as JSON.
    GuestInfo(guest_info::GuestInfoArgs),
    /// Xen guest agent: publish OS and NIC state in this guest's Xenstore data tree (Cyborg's is `serve agent`).
    Agent(agent::AgentArgs),
    /// Run an in-memory Xenstore server (development and tests) until SIGINT/SIGTERM.
    Xenstored(xenstored::XenstoredArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => convert::run(&args),
        Command::GuestInfo(args) => guest_info::run(&args),
        Command::Serve(args) => return serve::run(args),
        Command::Call(args) => return call::run(args),
        Command::Conform(args) => return conform::run(args),
        Command::Agent(args) => return agent::run(args),
        Command::Xenstored(args) => return xenstored::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vproto: {message}");
            ExitCode::from(2)
        }
    }
}
