//! `meshctl manifest generate`: the install manifests as YAML.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the manifests of one component.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Which part of the install to print.
    #[arg(long, value_enum)]
    pub component: Component,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Component {
    /// The CustomResourceDefinitions of every Istio kind the mesh reads.
    Crds,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Generate(args) = command;
    let text = match args.component {
        Component::Crds => crds_yaml()?,
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn crds_yaml() -> anyhow::Result<String> {
    let values = mesh_api::crd::crds()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(mesh_api::emit::to_yaml_stream(&values))
}
