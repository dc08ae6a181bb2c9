use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match mesh_control::cli::run(mesh_control::cli::Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
