//! `vproto`: the command line over the vproto crates.

mod call;
mod convert;
mod serve;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => convert::run(&args),
        Command::Serve(args) => return serve::run(args),
        Command::Call(args) => return call::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vproto: {message}");
            ExitCode::from(2)
        }
    }
}
