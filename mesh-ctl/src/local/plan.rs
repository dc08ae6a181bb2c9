//! From the inputs to what runs: each LocalWorkload joined to its
//! WorkloadEntry and the ServiceEntry ports that select it, then placed on
//! this host (an egress address, a port for each inbound port of the app)
//! and described to the control plane as Istio would see a VM with a
//! sidecar and no traffic capture.
//!
//! Each workload's sidecar
//! - listens for the mesh on the WorkloadEntry's address and ports (mTLS,
//!   or plain text as PeerAuthentication says) and forwards to the app on
//!   `127.0.0.1:<app port>` (a Sidecar `ingress` with `defaultEndpoint`);
//! - takes the app's outbound calls on its own egress address, one
//!   listener per service port (a Sidecar `egress` with `bind`); the app
//!   is told with `HTTP_PROXY=http://<egress>:<httpProxyPort>`.
//!
//! The app gets these variables (also usable as `$(NAME)` in its command):
//! `PORT` (its first inbound port's app port), `PORT_<n>` for the app port
//! of inbound port `n`, `MESH_EGRESS_ADDRESS`, `HTTP_PROXY` when
//! `httpProxyPort` is set, and `HOSTNAME` (the workload's name, as a pod's).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, TcpListener};

use mesh_api::load::{Loaded, Problem, Resource};
use mesh_api::networking::service_entry::ServiceEntry;
use mesh_api::networking::workload_entry::WorkloadEntry;
use mesh_api::validate::Path;
use serde_json::{Value, json};

use super::spec::{Inputs, LocalWorkload};

/// The label that tells clients a workload has a sidecar speaking mTLS;
/// Istio's injector puts it on every pod it injects.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// One port the workload serves the mesh on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPort {
    pub number: u16,
    pub name: String,
    pub protocol: String,
}

/// A LocalWorkload with what its WorkloadEntry and ServiceEntries say.
#[derive(Debug, Clone)]
pub struct Workload {
    pub local: LocalWorkload,
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ports: Vec<InboundPort>,
}

impl Workload {
    pub fn name(&self) -> &str {
        &self.local.name
    }

    pub fn namespace(&self) -> &str {
        &self.local.namespace
    }

    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// A workload placed on this host.
#[derive(Debug, Clone)]
pub struct Placed {
    pub workload: Workload,
    /// Where the sidecar takes the app's outbound calls.
    pub egress: IpAddr,
    /// Each inbound port with the port the app listens on for it.
    pub app_ports: Vec<(u16, u16)>,
    /// The services the sidecar imports (`namespace/host`): those of the
    /// inputs' namespaces, and the trace collector. Not the gateway's: its
    /// ports (80, 443) would be bound on the egress address, which takes
    /// privileges.
    pub egress_hosts: BTreeSet<String>,
}

/// Joins every LocalWorkload to its WorkloadEntry; problems name the
/// LocalWorkload and say what is missing or cannot run here.
pub fn resolve(inputs: &Inputs) -> Result<Vec<Workload>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut workloads: Vec<Workload> = Vec::new();
    for local in &inputs.workloads {
        match resolve_one(inputs, local) {
            Ok(workload) => workloads.push(workload),
            Err(problem) => problems.push(problem),
        }
    }
    problems.extend(conflicts(&workloads));
    if problems.is_empty() {
        Ok(workloads)
    } else {
        Err(problems)
    }
}

fn resolve_one(inputs: &Inputs, local: &LocalWorkload) -> Result<Workload, Problem> {
    let at = Path::spec().field("workloadEntry");
    let entry =
        workload_entry(inputs, &local.namespace, &local.spec.workload_entry).ok_or_else(|| {
            local.problem(
                at.clone(),
                format!(
                    "no WorkloadEntry {}/{} in the inputs",
                    local.namespace, local.spec.workload_entry
                ),
            )
        })?;
    let address: IpAddr = entry.spec.address.parse().map_err(|_| {
        local.problem(
            at.clone(),
            format!(
                "WorkloadEntry {}/{} has address {:?}: the local mesh runs workloads on loopback IP addresses",
                local.namespace, local.spec.workload_entry, entry.spec.address
            ),
        )
    })?;
    if !address.is_loopback() {
        return Err(local.problem(
            at,
            format!(
                "WorkloadEntry {}/{} has address {address}, which is not a loopback address (127.0.0.0/8 or ::1)",
                local.namespace, local.spec.workload_entry
            ),
        ));
    }
    Ok(Workload {
        local: local.clone(),
        address,
        labels: entry.spec.labels.clone(),
        service_account: if entry.spec.service_account.is_empty() {
            "default".to_owned()
        } else {
            entry.spec.service_account.clone()
        },
        ports: inbound_ports(inputs, &local.namespace, entry),
    })
}

fn workload_entry<'a>(
    inputs: &'a Inputs,
    namespace: &str,
    name: &str,
) -> Option<&'a WorkloadEntry> {
    inputs.resources().find_map(|resource| match resource {
        Resource::WorkloadEntry(entry)
            if entry.metadata.name.as_deref() == Some(name)
                && entry.metadata.namespace.as_deref().unwrap_or("default") == namespace =>
        {
            Some(entry.as_ref())
        }
        _ => None,
    })
}

/// The ports of the ServiceEntries in the workload's namespace that select
/// it, as the workload listens on them (the entry's own port for the
/// port's name, else the target port, else the service port).
fn inbound_ports(inputs: &Inputs, namespace: &str, entry: &WorkloadEntry) -> Vec<InboundPort> {
    let mut ports: BTreeMap<u16, InboundPort> = BTreeMap::new();
    for resource in inputs.resources() {
        let Resource::ServiceEntry(service) = resource else {
            continue;
        };
        if !selects(service, namespace, &entry.spec.labels) {
            continue;
        }
        for port in &service.spec.ports {
            let number = entry
                .spec
                .ports
                .get(&port.name)
                .copied()
                .or(port.target_port)
                .unwrap_or(port.number);
            let Ok(number) = u16::try_from(number) else {
                continue;
            };
            ports.entry(number).or_insert_with(|| InboundPort {
                number,
                name: port.name.clone(),
                protocol: port.protocol.clone(),
            });
        }
    }
    ports.into_values().collect()
}

fn selects(service: &ServiceEntry, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
    service.metadata.namespace.as_deref().unwrap_or("default") == namespace
        && service.spec.workload_selector.as_ref().is_some_and(|s| {
            !s.labels.is_empty() && s.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
}

/// Workloads that cannot run side by side: one address each, and labels
/// that tell each apart (its Sidecar selects it by them).
fn conflicts(workloads: &[Workload]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, workload) in workloads.iter().enumerate() {
        for other in &workloads[..i] {
            if other.address == workload.address {
                problems.push(workload.local.problem(
                    Path::spec().field("workloadEntry"),
                    format!(
                        "address {} is also LocalWorkload {}/{}'s: each workload needs its own",
                        workload.address,
                        other.namespace(),
                        other.name()
                    ),
                ));
            } else if other.namespace() == workload.namespace()
                && (contains(&other.labels, &workload.labels)
                    || contains(&workload.labels, &other.labels))
            {
                problems.push(workload.local.problem(
                    Path::spec().field("workloadEntry"),
                    format!(
                        "its WorkloadEntry's labels and LocalWorkload {}'s are one within the other, so the Sidecar of one would select both: give each a label the other lacks",
                        other.name()
                    ),
                ));
            }
        }
    }
    problems
}

/// Whether `labels` carry every one of `selector` (the Sidecar that selects
/// a workload by `selector` would also select them).
fn contains(labels: &BTreeMap<String, String>, selector: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Places every workload: a free egress address outside `taken`, and a
/// free port on 127.0.0.1 for each inbound port.
pub fn place(inputs: &Inputs, workloads: Vec<Workload>) -> std::io::Result<Vec<Placed>> {
    let mut egress_hosts: BTreeSet<String> = inputs
        .resources()
        .filter(|r| matches!(r, Resource::ServiceEntry(_)))
        .map(|r| {
            let namespace = r.metadata().namespace.as_deref().unwrap_or("default");
            format!("{namespace}/*")
        })
        .collect();
    // The proxies' spans go to the trace collector through its cluster.
    egress_hosts.insert(format!("istio-system/{}", super::observe::COLLECTOR_HOST));
    let mut taken: BTreeSet<IpAddr> = workloads.iter().map(|w| w.address).collect();
    workloads
        .into_iter()
        .map(|workload| {
            let egress = free_address(&mut taken);
            let app_ports = workload
                .ports
                .iter()
                .map(|p| Ok((p.number, free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))?)))
                .collect::<std::io::Result<_>>()?;
            Ok(Placed {
                workload,
                egress,
                app_ports,
                egress_hosts: egress_hosts.clone(),
            })
        })
        .collect()
}

/// A random loopback address outside 127.0.0.0/16 and outside `taken`.
fn free_address(taken: &mut BTreeSet<IpAddr>) -> IpAddr {
    loop {
        let candidate = IpAddr::V4(Ipv4Addr::new(
            127,
            fastrand::u8(1..=254),
            fastrand::u8(0..=255),
            fastrand::u8(2..=254),
        ));
        if taken.insert(candidate) {
            return candidate;
        }
    }
}

/// Ports handed out for apps and the gateway: below Linux's ephemeral
/// range (32768 and up by default), where the kernel picks the ports of
/// outgoing connections and of binds to port 0, so that none of those can
/// take a port between its choice here and the process binding it.
const PORTS: std::ops::Range<u16> = 20000..32768;

/// A port nothing listens on now, picked at random in [`PORTS`]. Another
/// program choosing the same port in the moment before the app binds it
/// is possible but rare, and the app's start-up then fails with a clear
/// error.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    let mut last = None;
    for _ in 0..100 {
        let port = fastrand::u16(PORTS);
        match TcpListener::bind((ip, port)) {
            Ok(_) => return Ok(port),
            Err(err) => last = Some(err),
        }
    }
    Err(last.expect("a bind was tried"))
}

impl Placed {
    /// The variables the app gets, in order.
    pub fn variables(&self) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        if let Some((_, port)) = self.app_ports.first() {
            vars.push(("PORT".to_owned(), port.to_string()));
        }
        for (inbound, app) in &self.app_ports {
            vars.push((format!("PORT_{inbound}"), app.to_string()));
        }
        vars.push(("MESH_EGRESS_ADDRESS".to_owned(), self.egress.to_string()));
        if let Some(port) = self.workload.local.spec.http_proxy_port {
            vars.push((
                "HTTP_PROXY".to_owned(),
                format!("http://{}:{port}", self.egress),
            ));
        }
        vars.push(("HOSTNAME".to_owned(), self.workload.name().to_owned()));
        vars
    }

    /// The app's command and environment, with `$(NAME)` expanded.
    pub fn command(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut env = self.variables();
        for var in &self.workload.local.spec.env {
            let value = expand(&var.value, &env);
            env.push((var.name.clone(), value));
        }
        let command = self
            .workload
            .local
            .spec
            .command
            .iter()
            .map(|word| expand(word, &env))
            .collect();
        (command, env)
    }

    /// The Sidecar that makes the workload's sidecar bind instead of
    /// capture: inbound on the workload's address, outbound on its egress
    /// address.
    pub fn sidecar(&self) -> Value {
        let ingress: Vec<Value> = self
            .workload
            .ports
            .iter()
            .zip(&self.app_ports)
            .map(|(port, (_, app))| {
                json!({
                    "port": {"number": port.number, "protocol": port.protocol, "name": port.name},
                    "captureMode": "NONE",
                    "defaultEndpoint": format!("127.0.0.1:{app}"),
                })
            })
            .collect();
        let mut spec = json!({
            "workloadSelector": {"labels": self.workload.labels},
            "egress": [{
                "bind": self.egress.to_string(),
                "captureMode": "NONE",
                "hosts": self.egress_hosts,
            }],
        });
        if !ingress.is_empty() {
            spec["ingress"] = Value::Array(ingress);
        }
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": self.workload.name(), "namespace": self.workload.namespace()},
            "spec": spec,
        })
    }
}

/// Kubernetes' expansion: `$(NAME)` becomes the value of a variable defined
/// so far (left as written when there is none), `$$` a single `$`.
pub fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(name) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
            .and_then(|(name, _)| {
                vars.iter()
                    .rev()
                    .find(|(var, _)| var == name)
                    .map(|(_, v)| (name, v))
            })
        {
            out.push_str(name.1);
            rest = &after[name.0.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The Istio config to apply: each input's resources, with the workloads'
/// WorkloadEntries marked as having a sidecar.
pub fn istio_config(istio: &[Loaded], workloads: &[Placed]) -> Vec<(String, Vec<Value>)> {
    let mut by_file: Vec<(String, Vec<Value>)> = Vec::new();
    for loaded in istio {
        let mut value = loaded.resource.to_value();
        if let Resource::WorkloadEntry(entry) = &loaded.resource
            && workloads.iter().any(|p| runs(p, entry))
        {
            value["spec"]["labels"][TLS_MODE_LABEL] = json!("istio");
        }
        match by_file.last_mut() {
            Some((file, values)) if *file == loaded.source.file => values.push(value),
            _ => by_file.push((loaded.source.file.clone(), vec![value])),
        }
    }
    by_file
}

fn runs(placed: &Placed, entry: &WorkloadEntry) -> bool {
    let local = &placed.workload.local;
    entry.metadata.name.as_deref() == Some(local.spec.workload_entry.as_str())
        && entry.metadata.namespace.as_deref().unwrap_or("default") == local.namespace
}

#[cfg(test)]
mod tests;
