use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match mesh_proxy::run(mesh_proxy::Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
