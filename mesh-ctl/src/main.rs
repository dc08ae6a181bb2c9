use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mesh_ctl::Cli::parse();
    match mesh_ctl::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
