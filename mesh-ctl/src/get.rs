//! `meshctl get <kind> [name]`: the config the control plane's store holds,
//! as a kubectl-like table or as YAML or JSON.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use hyper::Method;
use serde_json::Value;

use crate::control_plane::{Address, escape};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind, by any name kubectl takes: VirtualService, virtualservices, vs, ...
    pub kind: String,
    /// One resource, by name.
    pub name: Option<String>,
    /// The namespace (default: `default`).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["namespace", "name"])]
    pub all_namespaces: bool,
    /// Print the objects instead of a table.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub control_plane: Address,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let namespace = args.namespace.as_deref().unwrap_or("default");
    let kind = escape(&args.kind);
    let mut path = match &args.name {
        Some(name) => format!(
            "/api/v1/config/{kind}/{}/{}?",
            escape(namespace),
            escape(name)
        ),
        None if args.all_namespaces => format!("/api/v1/config/{kind}?"),
        None => format!("/api/v1/config/{kind}?namespace={}&", escape(namespace)),
    };
    path.push_str(match args.output {
        Some(Output::Yaml) => "output=yaml",
        Some(Output::Json) | None => "output=json",
    });
    let reply = args.control_plane.send(Method::GET, &path, String::new())?;
    if !reply.status.is_success() {
        write!(
            std::io::stderr(),
            "Error from the control plane: {}",
            reply.body
        )?;
        return Ok(ExitCode::FAILURE);
    }
    if args.output.is_some() {
        out.write_all(reply.body.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let value: Value =
        serde_json::from_str(&reply.body).context("the control plane answered with bad JSON")?;
    let items = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![value],
    };
    if items.is_empty() {
        let scope = if args.all_namespaces {
            String::new()
        } else {
            format!(" in {namespace} namespace")
        };
        writeln!(std::io::stderr(), "No resources found{scope}.")?;
        return Ok(ExitCode::SUCCESS);
    }
    write_table(&items, args.all_namespaces, out)?;
    Ok(ExitCode::SUCCESS)
}

/// `NAMESPACE` (across namespaces only) and `NAME`, as kubectl lays them out.
fn write_table(items: &[Value], namespaces: bool, out: &mut impl Write) -> std::io::Result<()> {
    let field = |item: &Value, key: &str| {
        item["metadata"][key]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let mut rows = vec![vec!["NAMESPACE".to_owned(), "NAME".to_owned()]];
    rows.extend(
        items
            .iter()
            .map(|item| vec![field(item, "namespace"), field(item, "name")]),
    );
    if !namespaces {
        rows.iter_mut().for_each(|row| {
            row.remove(0);
        });
    }
    let width = rows.iter().map(|row| row[0].len()).max().unwrap_or(0) + 3;
    for row in rows {
        let line = match row.as_slice() {
            [first, second] => format!("{first:width$}{second}"),
            [only] => only.clone(),
            _ => unreachable!("rows have one or two columns"),
        };
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
