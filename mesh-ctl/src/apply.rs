//! `meshctl apply -f` and `meshctl delete -f`: Istio config sent to the
//! control plane's store, checked here first with `meshctl validate`'s rules
//! and messages so that bad input never reaches it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use hyper::Method;
use mesh_api::load::Report;

use crate::control_plane::{self, Address};
use crate::inputs::{self, Input};
use crate::validate::print_problems;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file, a directory (read recursively) or `-` for standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub control_plane: Address,
}

/// Which way the config goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Apply,
    Delete,
}

/// Checks every input, then sends them one file at a time; prints what the
/// control plane did with each resource, as kubectl does.
pub fn run(action: Action, args: &Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (inputs, unreadable) = inputs::read(&args.files);
    let mut report = Report {
        problems: unreadable,
        ..Report::default()
    };
    // Files with no object at all (empty, comments) are not sent.
    let mut to_send: Vec<&Input> = Vec::new();
    for input in &inputs {
        let part = input.load();
        if !part.resources.is_empty() || !part.skipped.is_empty() {
            to_send.push(input);
        }
        report.extend(part);
    }
    // Deleting needs only names, but the documents must read.
    if action == Action::Apply {
        report.validate();
    }
    if print_problems(&report, out)? {
        return Ok(ExitCode::FAILURE);
    }
    if report.resources.is_empty() {
        writeln!(out, "error: no Istio objects passed to {}", action.verb())?;
        return Ok(ExitCode::FAILURE);
    }
    let mut code = ExitCode::SUCCESS;
    for input in to_send {
        let method = match action {
            Action::Apply => Method::POST,
            Action::Delete => Method::DELETE,
        };
        let path = format!(
            "/api/v1/config?source={}",
            control_plane::escape(&input.name)
        );
        let reply = args.control_plane.send(method, &path, input.text.clone())?;
        out.write_all(reply.body.as_bytes())?;
        if !reply.status.is_success() {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Apply => "apply",
            Action::Delete => "delete",
        }
    }
}
