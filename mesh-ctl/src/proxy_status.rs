//! `meshctl proxy-status` (`ps`): for every proxy connected to the control
//! plane, whether each xDS type is in sync, read from `/debug/syncz`.
//!
//! A type is `SYNCED` when the proxy ACKed the last response, `STALE` while
//! it has not answered it yet, `NACK` when it rejected it (the reason is in
//! `-o json`, as `lastError`), and `NOT SENT` when it never asked for it.

use std::io::Write;
use std::process::ExitCode;

use mesh_api::names::NodeId;
use mesh_control::xds::{SyncStatus, XdsType};

use crate::control_plane::{Address, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub remote: Address,
    /// `short` (a table) or `json` (the control plane's status, as is).
    #[arg(short, long, default_value = "short", value_parser = ["short", "json"])]
    pub output: String,
}

pub fn run(args: &Args, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let json = args.remote.get_json("/debug/syncz")?;
    if args.output == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let statuses: Vec<SyncStatus> = serde_json::from_value(json)?;
    let rows: Vec<Vec<String>> = statuses.iter().map(row).collect();
    table(
        out,
        &["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "SDS"],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn row(status: &SyncStatus) -> Vec<String> {
    let mut row = vec![short_name(&status.proxy), status.cluster_id.clone()];
    for xds_type in [
        XdsType::Cluster,
        XdsType::Listener,
        XdsType::Endpoint,
        XdsType::Route,
        XdsType::Secret,
    ] {
        row.push(sync_state(status, xds_type).into());
    }
    row
}

/// `<pod>.<namespace>` of a node id, as istioctl names proxies.
pub fn short_name(node_id: &str) -> String {
    node_id
        .parse::<NodeId>()
        .map(|id| format!("{}.{}", id.pod, id.namespace))
        .unwrap_or_else(|_| node_id.to_owned())
}

fn sync_state(status: &SyncStatus, xds_type: XdsType) -> &'static str {
    match status.resources.get(xds_type.type_url()) {
        None => "NOT SENT",
        Some(r) if !r.last_error.is_empty() => "NACK",
        Some(r) if r.sent.is_empty() => "NOT SENT",
        Some(r) if r.sent == r.acked => "SYNCED",
        Some(_) => "STALE",
    }
}

#[cfg(test)]
mod tests {
    use mesh_control::xds::ResourceStatus;

    use super::*;

    #[test]
    fn states_and_names() {
        let mut status = SyncStatus {
            proxy: "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local".into(),
            cluster_id: "Kubernetes".into(),
            ..SyncStatus::default()
        };
        let with = |sent: &str, acked: &str, error: &str| ResourceStatus {
            sent: sent.into(),
            acked: acked.into(),
            last_error: error.into(),
            ..ResourceStatus::default()
        };
        let resources = &mut status.resources;
        resources.insert(XdsType::Cluster.type_url().into(), with("n1", "n1", ""));
        resources.insert(XdsType::Listener.type_url().into(), with("n2", "", ""));
        resources.insert(XdsType::Endpoint.type_url().into(), with("n3", "n0", "bad"));
        assert_eq!(
            row(&status),
            vec![
                "reviews-v1-abc.default",
                "Kubernetes",
                "SYNCED",
                "STALE",
                "NACK",
                "NOT SENT",
                "NOT SENT"
            ]
        );
        assert_eq!(short_name("not-a-node"), "not-a-node");
    }
}
