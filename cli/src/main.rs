//! `vproto`: the command line over the vproto crates.

mod convert;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => convert::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vproto: {message}");
            ExitCode::from(2)
        }
    }
}
