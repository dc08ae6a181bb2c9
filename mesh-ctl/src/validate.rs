//! `meshctl validate -f <file|dir|->`: every problem, one per line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use mesh_api::load::{self, Report};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file, a directory (read recursively) or `-` for standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Print nothing when all is valid.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Writes one line per problem and a summary; exit code 1 when anything is wrong.
pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    for file in &args.files {
        let part = if file.as_os_str() == "-" {
            load::load_reader("<stdin>", std::io::stdin().lock())
        } else {
            load::load_path(file)
        };
        report.extend(part);
    }
    report.validate();
    if print_problems(&report, out)? {
        return Ok(ExitCode::FAILURE);
    }
    if !args.quiet {
        write!(out, "{} Istio resource(s) valid", report.resources.len())?;
        if !report.skipped.is_empty() {
            write!(
                out,
                "; {} document(s) of other kinds passed over",
                report.skipped.len()
            )?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one line per problem and a count; true when there were any.
pub fn print_problems(report: &Report, out: &mut impl Write) -> std::io::Result<bool> {
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    let (resources, problems) = (report.resources.len(), report.problems.len());
    if problems > 0 {
        writeln!(
            out,
            "{problems} problem(s) found in {resources} Istio resource(s)"
        )?;
    }
    Ok(problems > 0)
}
