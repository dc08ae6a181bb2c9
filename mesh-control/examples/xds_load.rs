//! Load generator of the control-plane benchmark (`bench/control-plane.sh`).
//!
//! `xds_load generate DIR` writes a mesh of 1000 services (ServiceEntry
//! MESH_INTERNAL, two WorkloadEntries labelled v1 and v2, a DestinationRule
//! with both subsets, and a VirtualService with a weighted split or a header
//! route) into DIR, one file per resource group, so that one VirtualService
//! is one file.
//!
//! `xds_load run --xds ADDR --config-dir DIR --pid PID` connects N simulated
//! sidecars to mesh-control, each over its own HTTP/2 connection, doing what
//! Envoy does: CDS and LDS wildcard, EDS for the EDS clusters it is sent, RDS
//! for the route names in its listeners, and an ACK for every response. It
//! measures the time until every sidecar has its full config, then rewrites
//! one VirtualService file and measures until every sidecar has received and
//! ACKed the changed route configuration, and prints a table with
//! mesh-control's CPU seconds (utime + stime) and peak RSS (VmHWM) from /proc.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const NAMESPACE: &str = "ns";
const SERVICES: usize = 1000;
const PORT: u16 = 8080;
/// The VirtualService the change phase rewrites: a weighted split, 90/10
/// before and 50/50 after.
const CHANGED: usize = 0;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn main() -> std::process::ExitCode {
    match run_command() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xds_load: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") => {
            let dir = args.get(1).ok_or_else(|| anyhow::anyhow!("generate DIR"))?;
            generate(Path::new(dir))
        }
        Some("run") => {
            let options = Options::parse(&args[1..])?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(options))
        }
        _ => anyhow::bail!(
            "usage: xds_load generate DIR | xds_load run --xds ADDR --config-dir DIR --pid PID \
             [--clients N] [--connect-timeout SECS] [--change-timeout SECS] [--max-rss-mib MIB]"
        ),
    }
}

// --- the mesh ---------------------------------------------------------------

fn host(i: usize) -> String {
    format!("svc-{i:04}.{NAMESPACE}.svc.cluster.local")
}

/// The address of workload `k` (service `k / 2`, version `k % 2 + 1`).
fn workload_ip(k: usize) -> String {
    format!("10.{}.{}.{}", k / 62500, k / 250 % 250, k % 250 + 1)
}

fn generate(dir: &Path) -> anyhow::Result<()> {
    for sub in ["services", "destination-rules", "virtual-services"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for i in 0..SERVICES {
        std::fs::write(
            dir.join(format!("services/svc-{i:04}.yaml")),
            service_yaml(i),
        )?;
        std::fs::write(
            dir.join(format!("destination-rules/svc-{i:04}.yaml")),
            destination_rule_yaml(i),
        )?;
        std::fs::write(virtual_service_path(dir, i), virtual_service_yaml(i, 90))?;
    }
    Ok(())
}

fn service_yaml(i: usize) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{name: svc-{i:04}, namespace: {NAMESPACE}}}\n\
         spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  \
         ports: [{{number: {PORT}, name: http, protocol: HTTP}}]\n  \
         workloadSelector: {{labels: {{app: svc-{i:04}}}}}\n",
        host = host(i)
    );
    for version in 1..=2 {
        let k = 2 * i + version - 1;
        write!(
            yaml,
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: svc-{i:04}-v{version}, namespace: {NAMESPACE}}}\n\
             spec:\n  address: {ip}\n  \
             labels: {{app: svc-{i:04}, version: v{version}, security.istio.io/tlsMode: istio}}\n  \
             serviceAccount: svc-{i:04}\n",
            ip = workload_ip(k)
        )
        .expect("writing to a String");
    }
    yaml
}

fn destination_rule_yaml(i: usize) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: svc-{i:04}, namespace: {NAMESPACE}}}\n\
         spec:\n  host: {host}\n  subsets:\n  \
         - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n",
        host = host(i)
    )
}

fn virtual_service_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("virtual-services/svc-{i:04}.yaml"))
}

/// Even services split by weight (`v1_weight` to v1, the rest to v2); odd
/// ones send `end-user: jason` to v2 and the rest to v1.
fn virtual_service_yaml(i: usize, v1_weight: u32) -> String {
    let host = host(i);
    let head = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: svc-{i:04}, namespace: {NAMESPACE}}}\n\
         spec:\n  hosts: [{host}]\n  http:\n"
    );
    let rules = if i.is_multiple_of(2) {
        format!(
            "  - route:\n    - destination: {{host: {host}, subset: v1}}\n      weight: {v1_weight}\n    \
             - destination: {{host: {host}, subset: v2}}\n      weight: {}\n",
            100 - v1_weight
        )
    } else {
        format!(
            "  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    \
             route: [{{destination: {{host: {host}, subset: v2}}}}]\n  \
             - route: [{{destination: {{host: {host}, subset: v1}}}}]\n"
        )
    };
    head + &rules
}

/// Rewrites one VirtualService through a hidden temporary file and a rename,
/// so that the directory's poller never reads half a file.
fn change_virtual_service(dir: &Path) -> anyhow::Result<()> {
    let path = virtual_service_path(dir, CHANGED);
    let partial = path.with_file_name(".svc-change.partial");
    std::fs::write(&partial, virtual_service_yaml(CHANGED, 50))?;
    std::fs::rename(&partial, &path)?;
    Ok(())
}

// --- options ----------------------------------------------------------------

#[derive(Debug)]
struct Options {
    xds: String,
    config_dir: PathBuf,
    pid: u32,
    clients: usize,
    connect_timeout: Duration,
    change_timeout: Duration,
    max_rss_mib: f64,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options {
            xds: String::new(),
            config_dir: PathBuf::new(),
            pid: 0,
            clients: 2000,
            connect_timeout: Duration::from_secs(120),
            change_timeout: Duration::from_secs(30),
            max_rss_mib: 8192.0,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            match flag.as_str() {
                "--xds" => options.xds = value.clone(),
                "--config-dir" => options.config_dir = value.into(),
                "--pid" => options.pid = value.parse()?,
                "--clients" => options.clients = value.parse()?,
                "--connect-timeout" => {
                    options.connect_timeout = Duration::from_secs(value.parse()?);
                }
                "--change-timeout" => {
                    options.change_timeout = Duration::from_secs(value.parse()?);
                }
                "--max-rss-mib" => options.max_rss_mib = value.parse()?,
                other => anyhow::bail!("unknown flag {other}"),
            }
        }
        anyhow::ensure!(
            !options.xds.is_empty() && options.pid != 0,
            "--xds and --pid are required"
        );
        Ok(options)
    }
}

// --- one simulated sidecar ---------------------------------------------------

/// What a sidecar reports to the benchmark.
#[derive(Debug)]
enum Event {
    /// Every type received and ACKed, with every EDS and RDS name it needs.
    /// With the bytes of its config: CDS, EDS, LDS, RDS.
    Full(usize, Instant, [usize; 4]),
    /// The route configuration changed after the change was made, and was ACKed.
    Changed(Instant),
    Failed(usize, String),
}

/// The name and type of a cluster, without decoding the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct ClusterHead {
    #[prost(string, tag = "1")]
    name: String,
    /// `type` of the `cluster_discovery_type` oneof; 3 is EDS.
    #[prost(int32, tag = "2")]
    discovery_type: i32,
    #[prost(message, optional, tag = "3")]
    eds_cluster_config: Option<EdsClusterConfigHead>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EdsClusterConfigHead {
    #[prost(string, tag = "2")]
    service_name: String,
}

const EDS_DISCOVERY_TYPE: i32 = 3;

fn eds_names(response: &Response) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for any in &response.resources {
        let cluster = ClusterHead::decode(any.value.clone())?;
        if cluster.discovery_type == EDS_DISCOVERY_TYPE {
            let service_name = cluster
                .eds_cluster_config
                .map(|eds| eds.service_name)
                .filter(|s| !s.is_empty());
            names.insert(service_name.unwrap_or(cluster.name));
        }
    }
    Ok(names)
}

fn route_names(response: &Response) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for any in &response.resources {
        let listener = Listener::decode(any.value.clone())?;
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.as_ref());
        for filter in chains.flat_map(|chain| &chain.filters) {
            use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
            let Some(ConfigType::TypedConfig(config)) = &filter.config_type else {
                continue;
            };
            if config.type_url != HCM {
                continue;
            }
            let hcm = HttpConnectionManager::decode(config.value.as_slice())?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.insert(rds.route_config_name);
            }
        }
    }
    Ok(names)
}

fn node(n: usize) -> Node {
    let k = n % (2 * SERVICES);
    let (service, version) = (k / 2, k % 2 + 1);
    let text = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let labels = Struct {
        fields: [
            ("app".to_owned(), text(&format!("svc-{service:04}"))),
            ("version".to_owned(), text(&format!("v{version}"))),
        ]
        .into(),
    };
    let metadata = Struct {
        fields: [
            ("NAMESPACE".to_owned(), text(NAMESPACE)),
            (
                "SERVICE_ACCOUNT".to_owned(),
                text(&format!("svc-{service:04}")),
            ),
            (
                "WORKLOAD_NAME".to_owned(),
                text(&format!("svc-{service:04}-v{version}")),
            ),
            ("CLUSTER_ID".to_owned(), text("Kubernetes")),
            (
                "LABELS".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(labels)),
                },
            ),
        ]
        .into(),
    };
    Node {
        id: format!(
            "sidecar~{}~app-{n}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local",
            workload_ip(k)
        ),
        cluster: format!("svc-{service:04}.{NAMESPACE}"),
        metadata: Some(metadata),
        ..Node::default()
    }
}

fn request(type_url: &str, names: &BTreeSet<String>, last: Option<&Last>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().cloned().collect(),
        version_info: last.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: last.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..DiscoveryRequest::default()
    }
}

const ADS_STREAM: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// A `DiscoveryResponse` read without copying its resources: an Envoy
/// keeps what it needs of them, this sidecar only counts them and reads
/// the few it must, so that the benchmark's own work stays small beside
/// the control plane's.
#[derive(Clone, PartialEq, prost::Message)]
struct Response {
    #[prost(string, tag = "1")]
    version_info: String,
    #[prost(message, repeated, tag = "2")]
    resources: Vec<AnyValue>,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    nonce: String,
}

/// The value of a `google.protobuf.Any`, its type URL passed over.
#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(bytes = "bytes", tag = "2")]
    value: bytes::Bytes,
}

/// What a sidecar keeps of its last response of a type.
struct Last {
    version_info: String,
    nonce: String,
    count: usize,
    bytes: usize,
}

impl Last {
    fn of(response: &Response) -> Last {
        Last {
            version_info: response.version_info.clone(),
            nonce: response.nonce.clone(),
            count: response.resources.len(),
            bytes: response.encoded_len(),
        }
    }
}

/// The state of one sidecar's stream, per type: the last response, and the
/// names subscribed (EDS, RDS) with whether the last response covered them.
#[derive(Default)]
struct Sidecar {
    cds: Option<Last>,
    lds: Option<Last>,
    eds: Option<Last>,
    rds: Option<Last>,
    eds_names: BTreeSet<String>,
    rds_names: BTreeSet<String>,
    full: bool,
}

impl Sidecar {
    fn covers(response: &Option<Last>, names: &BTreeSet<String>) -> bool {
        response.as_ref().is_some_and(|r| r.count == names.len())
    }

    fn bytes(&self) -> [usize; 4] {
        [&self.cds, &self.eds, &self.lds, &self.rds]
            .map(|last| last.as_ref().map_or(0, |l| l.bytes))
    }

    fn is_full(&self) -> bool {
        self.cds.is_some()
            && self.lds.is_some()
            && Self::covers(&self.eds, &self.eds_names)
            && Self::covers(&self.rds, &self.rds_names)
    }
}

async fn sidecar(
    n: usize,
    address: String,
    mut change: watch::Receiver<Option<Instant>>,
    events: mpsc::UnboundedSender<Event>,
) {
    if let Err(err) = sidecar_stream(n, address, &mut change, &events).await {
        let _ = events.send(Event::Failed(n, format!("{err:#}")));
    }
}

async fn sidecar_stream(
    n: usize,
    address: String,
    change: &mut watch::Receiver<Option<Instant>>,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    let (requests, rx) = mpsc::channel(16);
    let mut first = request(CDS, &BTreeSet::new(), None);
    first.node = Some(node(n));
    requests.send(first).await?;
    requests.send(request(LDS, &BTreeSet::new(), None)).await?;
    client.ready().await?;
    let codec = tonic_prost::ProstCodec::<DiscoveryRequest, Response>::default();
    let mut responses = client
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            tonic::codegen::http::uri::PathAndQuery::from_static(ADS_STREAM),
            codec,
        )
        .await?
        .into_inner();
    let mut state = Sidecar::default();
    // The RDS version before the change, once the change is made.
    let mut before_change: Option<(Instant, String)> = None;
    loop {
        let response = tokio::select! {
            message = responses.message() => match message? {
                Some(response) => response,
                None => anyhow::bail!("the stream ended"),
            },
            changed = change.changed(), if before_change.is_none() => {
                changed?;
                let at = change.borrow_and_update().expect("a change has a time");
                let version = state.rds.as_ref().map(|r| r.version_info.clone()).unwrap_or_default();
                before_change = Some((at, version));
                continue;
            }
        };
        match response.type_url.as_str() {
            CDS => {
                let names = eds_names(&response)?;
                requests
                    .send(request(CDS, &BTreeSet::new(), Some(&Last::of(&response))))
                    .await?;
                if names != state.eds_names {
                    state.eds_names = names;
                    requests
                        .send(request(EDS, &state.eds_names, state.eds.as_ref()))
                        .await?;
                }
                state.cds = Some(Last::of(&response));
            }
            LDS => {
                let names = route_names(&response)?;
                requests
                    .send(request(LDS, &BTreeSet::new(), Some(&Last::of(&response))))
                    .await?;
                if names != state.rds_names {
                    state.rds_names = names;
                    requests
                        .send(request(RDS, &state.rds_names, state.rds.as_ref()))
                        .await?;
                }
                state.lds = Some(Last::of(&response));
            }
            EDS => {
                requests
                    .send(request(EDS, &state.eds_names, Some(&Last::of(&response))))
                    .await?;
                state.eds = Some(Last::of(&response));
            }
            RDS => {
                requests
                    .send(request(RDS, &state.rds_names, Some(&Last::of(&response))))
                    .await?;
                let changed = before_change
                    .as_ref()
                    .is_some_and(|(_, version)| *version != response.version_info);
                state.rds = Some(Last::of(&response));
                if changed {
                    let _ = events.send(Event::Changed(Instant::now()));
                    // The change is measured once; the stream stays open
                    // until the benchmark ends.
                    before_change = None;
                    std::future::pending::<()>().await;
                }
            }
            other => anyhow::bail!("unexpected type {other}"),
        }
        if !state.full && state.is_full() {
            state.full = true;
            let _ = events.send(Event::Full(n, Instant::now(), state.bytes()));
        }
    }
}

// --- measurements --------------------------------------------------------------

/// CPU seconds (utime + stime) of a process.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow::anyhow!("odd stat"))? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// `CLK_TCK`, from the environment (the script passes `getconf CLK_TCK`);
/// 100 on every Linux this runs on.
fn clock_ticks() -> f64 {
    std::env::var("CLK_TCK")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` field of /proc/PID/status, in MiB.
fn status_mib(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field}"))?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("odd {field}"))?
        .parse()?;
    Ok(kb / 1024.0)
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: f64,
    hwm: f64,
    rss: f64,
}

fn usage(pid: &str) -> anyhow::Result<Usage> {
    Ok(Usage {
        cpu: cpu_seconds(pid)?,
        hwm: status_mib(pid, "VmHWM:")?,
        rss: status_mib(pid, "VmRSS:")?,
    })
}

/// p50, p99 and max of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e3
    };
    Some((at(0.50), at(0.99), at(1.0)))
}

/// Where a phase stops.
struct Limits<'a> {
    deadline: Instant,
    /// mesh-control's pid, and the RSS (MiB) past which the phase is
    /// abandoned, so that a run never takes a shared machine's memory.
    pid: &'a str,
    max_rss: f64,
}

/// Collects events until `want` sidecars reported `pick`, or a limit.
async fn collect(
    events: &mut mpsc::UnboundedReceiver<Event>,
    want: usize,
    limits: &Limits<'_>,
    mut pick: impl FnMut(&Event) -> Option<Instant>,
) -> (Vec<Instant>, Vec<String>) {
    let mut times = Vec::with_capacity(want);
    let mut failures = Vec::new();
    let mut sample = tokio::time::interval(Duration::from_millis(200));
    while times.len() + failures.len() < want {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = sample.tick() => {
                let rss = status_mib(limits.pid, "VmRSS:").unwrap_or(0.0);
                if rss > limits.max_rss {
                    failures.push(format!(
                        "mesh-control RSS {rss:.0} MiB is over the limit of {:.0} MiB: phase abandoned",
                        limits.max_rss
                    ));
                    break;
                }
                continue;
            }
            () = tokio::time::sleep_until(limits.deadline.into()) => break,
        };
        let Some(event) = event else { break };
        if let Event::Failed(n, reason) = &event {
            failures.push(format!("sidecar {n}: {reason}"));
        } else if let Some(at) = pick(&event) {
            times.push(at);
        }
    }
    (times, failures)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let pid = options.pid.to_string();
    let n = options.clients;
    let (change_tx, change_rx) = watch::channel(None);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let load_before = load_average();

    // Connect phase.
    let start_usage = usage(&pid)?;
    let own_start = cpu_seconds("self")?;
    let start = Instant::now();
    let mut starts = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        starts.push(Instant::now());
        tasks.spawn(sidecar(
            i,
            options.xds.clone(),
            change_rx.clone(),
            events_tx.clone(),
        ));
    }
    let mut full_at = vec![None; n];
    let mut config_bytes = None;
    let limits = |deadline| Limits {
        deadline,
        pid: &pid,
        max_rss: options.max_rss_mib,
    };
    let (_, connect_failures) = collect(
        &mut events,
        n,
        &limits(start + options.connect_timeout),
        |e| match e {
            Event::Full(i, at, bytes) => {
                full_at[*i] = Some(*at);
                config_bytes = Some(*bytes);
                Some(*at)
            }
            _ => None,
        },
    )
    .await;
    let connect_elapsed = start.elapsed();
    let connected_usage = usage(&pid)?;
    let own_connected = cpu_seconds("self")?;
    let full: Vec<Duration> = full_at
        .iter()
        .zip(&starts)
        .filter_map(|(at, started)| Some(at.as_ref()?.duration_since(*started)))
        .collect();
    let full_count = full.len();
    let last_full = full_at
        .iter()
        .flatten()
        .max()
        .map(|at| at.duration_since(start));

    // Change phase, once every sidecar that came up is quiet.
    let mut changed = Vec::new();
    let mut change_failures = Vec::new();
    let mut change_usage = connected_usage;
    let mut own_changed = own_connected;
    if full_count > 0 && connect_failures.is_empty() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = usage(&pid)?;
        let own_before = cpu_seconds("self")?;
        let changed_at = Instant::now();
        change_virtual_service(&options.config_dir)?;
        change_tx.send(Some(changed_at))?;
        let (times, failures) = collect(
            &mut events,
            full_count,
            &limits(changed_at + options.change_timeout),
            |e| match e {
                Event::Changed(at) => Some(*at),
                _ => None,
            },
        )
        .await;
        changed = times
            .iter()
            .map(|at| at.duration_since(changed_at))
            .collect();
        change_failures = failures;
        let after = usage(&pid)?;
        change_usage = Usage {
            cpu: after.cpu - before.cpu,
            ..after
        };
        own_changed = cpu_seconds("self")? - own_before;
    }
    tasks.abort_all();

    let connect_cpu = connected_usage.cpu - start_usage.cpu;
    let own_connect_cpu = own_connected - own_start;
    print_table(&Report {
        config_bytes,
        clients: n,
        full_count,
        full,
        last_full,
        connect_elapsed,
        connect_cpu,
        connected: connected_usage,
        own_connect_cpu,
        changed,
        change_usage,
        own_changed,
        load_before,
    });
    for failure in connect_failures.iter().chain(&change_failures).take(5) {
        eprintln!("failure: {failure}");
    }
    anyhow::ensure!(
        full_count == n,
        "{} of {n} sidecars got their full config in time",
        full_count
    );
    Ok(())
}

struct Report {
    clients: usize,
    /// One sidecar's config: CDS, EDS, LDS, RDS bytes.
    config_bytes: Option<[usize; 4]>,
    full_count: usize,
    full: Vec<Duration>,
    last_full: Option<Duration>,
    connect_elapsed: Duration,
    connect_cpu: f64,
    connected: Usage,
    own_connect_cpu: f64,
    changed: Vec<Duration>,
    change_usage: Usage,
    own_changed: f64,
    load_before: String,
}

fn config_size(bytes: Option<[usize; 4]>) -> String {
    let Some(bytes) = bytes else {
        return "n/a".into();
    };
    let kib = |b: usize| format!("{:.0} KiB", b as f64 / 1024.0);
    let total: usize = bytes.iter().sum();
    format!("{} ({})", kib(total), bytes.map(kib).join(" / "))
}

fn print_table(r: &Report) {
    let ms = |d: Option<(f64, f64, f64)>| match d {
        Some((p50, p99, max)) => format!("p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"),
        None => "n/a".into(),
    };
    let total = match r.last_full {
        Some(last) if r.full_count == r.clients => format!("{:.2} s", last.as_secs_f64()),
        _ => format!("incomplete after {:.1} s", r.connect_elapsed.as_secs_f64()),
    };
    let changed_count = r.changed.len();
    let rows = [
        (
            format!("sidecars with full config ({} clients)", r.clients),
            format!("{} of {}", r.full_count, r.clients),
            String::new(),
        ),
        (
            "config per sidecar: CDS / EDS / LDS / RDS".into(),
            config_size(r.config_bytes),
            String::new(),
        ),
        (
            "time to full config, per sidecar".into(),
            ms(percentiles(r.full.clone())),
            String::new(),
        ),
        (
            "time until all have full config".into(),
            total,
            "<= 10 s for 2000".into(),
        ),
        (
            "VirtualService change: push latency (file written -> RDS ACKed)".into(),
            ms(percentiles(r.changed.clone())),
            "p99 <= 1 s".into(),
        ),
        (
            "sidecars that got the change".into(),
            format!("{changed_count} of {}", r.full_count),
            String::new(),
        ),
        (
            "mesh-control CPU, connect phase".into(),
            format!("{:.2} s", r.connect_cpu),
            String::new(),
        ),
        (
            "mesh-control CPU, change phase".into(),
            format!("{:.2} s", r.change_usage.cpu),
            String::new(),
        ),
        (
            "mesh-control peak RSS (VmHWM) after connect".into(),
            format!(
                "{:.0} MiB (RSS now {:.0} MiB)",
                r.connected.hwm, r.connected.rss
            ),
            "<= 300 MiB".into(),
        ),
        (
            "mesh-control peak RSS (VmHWM) after change".into(),
            format!(
                "{:.0} MiB (RSS now {:.0} MiB)",
                r.change_usage.hwm, r.change_usage.rss
            ),
            "<= 300 MiB".into(),
        ),
        (
            "load generator CPU, connect / change phase".into(),
            format!("{:.2} s / {:.2} s", r.own_connect_cpu, r.own_changed),
            "(same machine)".into(),
        ),
        (
            "machine".into(),
            format!(
                "{} cores, load average before {}, after {}",
                cores(),
                r.load_before,
                load_average()
            ),
            String::new(),
        ),
    ];
    let width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0);
    println!();
    println!(
        "control plane: 1000 services x 2 endpoints, 1000 VirtualServices, 1000 DestinationRules"
    );
    println!("{:width$}  {:value_width$}  target", "", "");
    for (key, value, target) in rows {
        println!("{key:width$}  {value:value_width$}  {target}");
    }
}
