//! `meshctl local up`: starts mesh-control, every workload with its
//! sidecar and the ingress gateway, says how far it got as it goes, then
//! watches them until Ctrl-C (or `meshctl local down`) and stops them all.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::{Method, StatusCode};
use mesh_api::load::Loaded;
use mesh_api::names::SpiffeId;
use mesh_control::ca::CaFiles;
use mesh_control::ca::token::TokenKey;
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};

use super::gateway::Gateway;
use super::observe::{self, Collector};
use super::plan::{self, Placed};
use super::process::{Children, Program};
use super::proxy::{ProxyNode, admin_address};
use super::state::{AddressFile, ControlPlane, State, StateDir, WorkloadState};
use crate::control_plane::{self, Address};

/// The trust domain of the local mesh's identities.
const TRUST_DOMAIN: &str = "cluster.local";
/// How often start-up checks what became ready.
const POLL: Duration = Duration::from_millis(50);

/// How the local mesh runs: its directory and its ports.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    #[command(flatten)]
    pub dir: super::state::DirArg,
    /// Port of the ingress gateway's HTTP listener (Gateway ports 80 and 8080).
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// Port of the ingress gateway's HTTPS listener (Gateway port 443).
    #[arg(long, default_value_t = 8443)]
    pub gateway_https_port: u16,
    /// Address of the ingress gateway.
    #[arg(long, default_value = "127.0.0.1")]
    pub gateway_address: IpAddr,
    /// mesh-control's plaintext xDS port (0: any free port).
    #[arg(long, default_value_t = 15010)]
    pub xds_port: u16,
    /// mesh-control's CA and mTLS xDS port (0: any free port).
    #[arg(long, default_value_t = 15012)]
    pub secure_port: u16,
    /// mesh-control's monitoring and config API port (0: any free port).
    #[arg(long, default_value_t = 15014)]
    pub monitoring_port: u16,
    /// Port of the dashboard (0: any free port).
    #[arg(long, default_value_t = 20001)]
    pub dashboard_port: u16,
    /// How long each part may take to become ready.
    #[arg(long, default_value = "60s", value_parser = mesh_api::Duration::parse_flag)]
    pub timeout: Duration,
}

/// What to start.
#[derive(Debug)]
pub struct Plan {
    pub istio: Vec<Loaded>,
    pub workloads: Vec<Placed>,
    /// The page whose first good answer ends start-up (the demo's).
    pub first_page: Option<FirstPage>,
}

/// A page to load through the gateway, and how to tell it is good.
#[derive(Debug, Clone)]
pub struct FirstPage {
    pub path: &'static str,
    /// Text every good answer holds.
    pub holds: &'static [&'static str],
    /// What a good answer shows, for the progress line.
    pub shows: &'static str,
}

/// Starts the mesh and runs it until a signal; the exit says whether it
/// started.
pub fn run(plan: Plan, options: &Options) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Children are started from this thread, which lives as long as the
    // supervisor: the kernel ends them when the thread that started them
    // ends (`PR_SET_PDEATHSIG`).
    runtime.block_on(supervise(plan, options))
}

async fn supervise(plan: Plan, options: &Options) -> anyhow::Result<std::process::ExitCode> {
    let dir = StateDir::new(options.dir.path());
    dir.prepare()?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut mesh = Mesh {
        dir,
        children: Children::default(),
        state: State {
            supervisor: std::process::id(),
            supervisor_started: super::state::start_time(std::process::id()).unwrap_or_default(),
            ..State::default()
        },
        started: Instant::now(),
        timeout: options.timeout,
    };
    mesh.say(format_args!(
        "Starting the local mesh in {}",
        mesh.dir.root.display()
    ));
    let outcome = tokio::select! {
        started = mesh.start(&plan, options) => started.map(Some),
        _ = interrupt.recv() => Ok(None),
        _ = terminate.recv() => Ok(None),
    };
    let code = match outcome {
        Ok(Some(())) => {
            mesh.state.ready = true;
            mesh.save()?;
            mesh.print_urls();
            tokio::select! {
                () = mesh.watch() => {}
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => {
            mesh.say(format_args!("Interrupted while starting."));
            std::process::ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    };
    mesh.stop().await;
    Ok(code)
}

struct Mesh {
    dir: StateDir,
    children: Children,
    state: State,
    started: Instant,
    timeout: Duration,
}

/// One part being waited for.
struct Pending {
    /// Printed when ready.
    label: String,
    detail: String,
    /// Processes whose death ends the wait.
    processes: Vec<String>,
    /// Ready when every probe answers.
    probes: Vec<Probe>,
}

enum Probe {
    /// The proxy's `/ready`, once its admin address is written.
    Proxy { admin_file: PathBuf, index: usize },
    /// Something accepts connections here.
    Listening(SocketAddr),
}

impl Mesh {
    fn say(&self, line: std::fmt::Arguments) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// A step done, with the time since start-up began.
    fn done(&self, what: &str, detail: &str) {
        self.say(format_args!(
            "{:>7.2}s  {what:<24} {detail}",
            self.started.elapsed().as_secs_f64()
        ));
    }

    fn save(&self) -> anyhow::Result<()> {
        self.dir.write(&self.state)
    }

    async fn start(&mut self, plan: &Plan, options: &Options) -> anyhow::Result<()> {
        let gateway = Gateway {
            address: options.gateway_address,
            http_port: pick_port(options.gateway_address, options.gateway_port)?,
            https_port: pick_port(options.gateway_address, options.gateway_https_port)?,
        };
        self.certify(plan, &gateway)?;
        let collector = self.start_trace_collector().await?;
        let control_plane = self.start_control_plane(options).await?;
        let api = Address {
            url: Some(format!("http://{}", control_plane.monitoring)),
        };
        let applied = apply(&api, plan, &gateway, &collector).await?;
        self.done("config applied", &applied);
        let mut pending = Vec::new();
        for placed in &plan.workloads {
            pending.push(self.start_workload(placed, &control_plane)?);
        }
        pending.push(self.start_gateway(&gateway, &control_plane)?);
        self.save()?;
        self.wait_ready(pending).await?;
        self.start_dashboard(&control_plane, options.dashboard_port)
            .await?;
        if let Some(page) = &plan.first_page {
            self.first_page(&gateway, page).await?;
        }
        Ok(())
    }

    /// Makes the CA (mesh-control loads it) and a bootstrap token for
    /// every proxy, written where only this user reads them.
    fn certify(&self, plan: &Plan, gateway: &Gateway) -> anyhow::Result<()> {
        CaFiles::load_or_create(&self.dir.ca(), TRUST_DOMAIN)?;
        let key = TokenKey::load_or_create(&self.dir.ca())?;
        let nodes = plan
            .workloads
            .iter()
            .map(sidecar_node)
            .chain([gateway.node()]);
        for node in nodes {
            let identity = SpiffeId::new(TRUST_DOMAIN, &node.namespace, &node.service_account);
            let path = token_file(&self.dir, &node);
            write_private(&path, key.issue(&identity).as_bytes())?;
        }
        Ok(())
    }

    async fn start_control_plane(&mut self, options: &Options) -> anyhow::Result<ControlPlane> {
        let address_file = self.dir.root.join("control-plane.json");
        let mesh_config = self.dir.root.join("mesh-config.yaml");
        std::fs::write(&mesh_config, observe::mesh_config())
            .with_context(|| format!("cannot write {}", mesh_config.display()))?;
        let path = |p: PathBuf| p.display().to_string();
        let args = vec![
            "mesh-control".to_owned(),
            "--address".into(),
            "127.0.0.1".into(),
            "--xds-port".into(),
            options.xds_port.to_string(),
            "--secure-port".into(),
            options.secure_port.to_string(),
            "--monitoring-port".into(),
            options.monitoring_port.to_string(),
            "--ca-dir".into(),
            path(self.dir.ca()),
            "--address-file".into(),
            path(address_file.clone()),
            "--mesh-config".into(),
            path(mesh_config),
        ];
        let log = self.dir.logs().join("mesh-control.log");
        let process = self
            .children
            .spawn("mesh-control", &Program::Meshctl, &args, &[], &log)?;
        self.state.processes.push(process);
        self.save()?;
        let control_plane = self
            .wait_for("mesh-control", async || read_addresses(&address_file))
            .await?;
        let ready = format!("http://{}/ready", control_plane.monitoring);
        self.wait_for("mesh-control", async || {
            (get(&ready).await.ok()?.0 == StatusCode::OK).then_some(())
        })
        .await?;
        self.state.control_plane = Some(control_plane);
        self.save()?;
        self.done(
            "control plane",
            &format!(
                "xDS {} · CA {} · API http://{}",
                control_plane.xds, control_plane.secure, control_plane.monitoring
            ),
        );
        Ok(control_plane)
    }

    /// Starts the trace collector on free ports.
    async fn start_trace_collector(&mut self) -> anyhow::Result<Collector> {
        let address_file = self.dir.root.join("trace-collector.json");
        let args = [
            "trace-collector",
            "--otlp-port",
            "0",
            "--http-port",
            "0",
            "--address-file",
        ]
        .map(String::from)
        .into_iter()
        .chain([address_file.display().to_string()])
        .collect::<Vec<_>>();
        let log = self.dir.logs().join("trace-collector.log");
        let process =
            self.children
                .spawn("trace-collector", &Program::Meshctl, &args, &[], &log)?;
        self.state.processes.push(process);
        self.save()?;
        let collector = self
            .wait_for("trace-collector", async || Collector::read(&address_file))
            .await?;
        self.state.traces = Some(collector.http);
        self.save()?;
        self.done(
            "trace collector",
            &format!(
                "OTLP {} · traces http://{}/api/traces",
                collector.otlp, collector.http
            ),
        );
        Ok(collector)
    }

    /// Starts the dashboard, reading the proxies of `targets.json`.
    async fn start_dashboard(
        &mut self,
        control_plane: &ControlPlane,
        port: u16,
    ) -> anyhow::Result<()> {
        let address_file = self.dir.root.join("dashboard.address");
        let args = vec![
            "dashboard".to_owned(),
            "--port".into(),
            port.to_string(),
            "--address-file".into(),
            address_file.display().to_string(),
            "--targets".into(),
            self.dir.targets_file().display().to_string(),
            "--control-plane".into(),
            format!("http://{}", control_plane.monitoring),
        ];
        let log = self.dir.logs().join("dashboard.log");
        let process = self
            .children
            .spawn("dashboard", &Program::Meshctl, &args, &[], &log)?;
        self.state.processes.push(process);
        self.save()?;
        let address = self
            .wait_for("dashboard", async || {
                std::fs::read_to_string(&address_file)
                    .ok()?
                    .trim()
                    .parse::<SocketAddr>()
                    .ok()
            })
            .await?;
        self.state.dashboard = Some(address);
        self.save()?;
        self.done("dashboard", &format!("http://{address}/"));
        Ok(())
    }

    /// Polls `check` until it gives a value, while `process` runs.
    async fn wait_for<T>(
        &mut self,
        process: &str,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = check().await {
                return Ok(value);
            }
            self.children.check(process)?;
            if Instant::now() > deadline {
                anyhow::bail!("{process} was not ready within {:?}", self.timeout);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn start_workload(
        &mut self,
        placed: &Placed,
        control_plane: &ControlPlane,
    ) -> anyhow::Result<Pending> {
        let workload = &placed.workload;
        let (command, env) = placed.command();
        let (first, args) = command.split_first().context("an empty command")?;
        let name = workload.name().to_owned();
        let log = self.dir.logs().join(format!("{name}.log"));
        let process = self
            .children
            .spawn(&name, &Program::from_word(first), args, &env, &log)?;
        self.state.processes.push(process);
        let node = sidecar_node(placed);
        let sidecar = format!("{name}-sidecar");
        let args = node.arguments(&self.dir, control_plane, token_file(&self.dir, &node))?;
        let log = self.dir.logs().join(format!("{sidecar}.log"));
        let process = self
            .children
            .spawn(&sidecar, &Program::Meshctl, &args, &[], &log)?;
        self.state.processes.push(process);
        self.state.workloads.push(WorkloadState {
            workload: name.clone(),
            namespace: workload.namespace().to_owned(),
            app: workload.label("app").to_owned(),
            version: workload.label("version").to_owned(),
            kind: "sidecar".into(),
            admin: None,
            address: workload.address.to_string(),
        });
        let ports: Vec<String> = workload
            .ports
            .iter()
            .map(|p| format!("{}:{}", workload.address, p.number))
            .collect();
        Ok(Pending {
            label: name.clone(),
            detail: if ports.is_empty() {
                format!("calls out through {}", placed.egress)
            } else {
                format!("serves {}", ports.join(", "))
            },
            processes: vec![name, sidecar],
            probes: placed
                .app_ports
                .iter()
                .map(|(_, app)| Probe::Listening(SocketAddr::from((Ipv4Addr::LOCALHOST, *app))))
                .chain([Probe::Proxy {
                    admin_file: node.admin_file(&self.dir),
                    index: self.state.workloads.len() - 1,
                }])
                .collect(),
        })
    }

    fn start_gateway(
        &mut self,
        gateway: &Gateway,
        control_plane: &ControlPlane,
    ) -> anyhow::Result<Pending> {
        let node = gateway.node();
        let args = node.arguments(&self.dir, control_plane, token_file(&self.dir, &node))?;
        let log = self.dir.logs().join("istio-ingressgateway.log");
        let process =
            self.children
                .spawn("istio-ingressgateway", &Program::Meshctl, &args, &[], &log)?;
        self.state.processes.push(process);
        let address = SocketAddr::new(gateway.address, gateway.http_port);
        self.state.gateway = Some(address);
        self.state.workloads.push(WorkloadState {
            workload: node.name.clone(),
            namespace: node.namespace.clone(),
            app: node.name.clone(),
            version: String::new(),
            kind: "gateway".into(),
            admin: None,
            address: address.to_string(),
        });
        Ok(Pending {
            label: "ingress gateway".into(),
            detail: format!("http://{address}"),
            processes: vec!["istio-ingressgateway".into()],
            probes: vec![Probe::Proxy {
                admin_file: node.admin_file(&self.dir),
                index: self.state.workloads.len() - 1,
            }],
        })
    }

    /// Waits for every part, printing each as it becomes ready.
    async fn wait_ready(&mut self, mut pending: Vec<Pending>) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for part in pending {
                for process in &part.processes {
                    self.children.check(process)?;
                }
                if self.all_answer(&part.probes).await {
                    self.done(&part.label, &part.detail);
                } else {
                    still.push(part);
                }
            }
            pending = still;
            self.save()?;
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending.iter().map(|p| p.label.as_str()).collect();
                anyhow::bail!(
                    "not ready within {:?}: {} (their logs are in {})",
                    self.timeout,
                    names.join(", "),
                    self.dir.logs().display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    async fn all_answer(&mut self, probes: &[Probe]) -> bool {
        for probe in probes {
            if !self.probe(probe).await {
                return false;
            }
        }
        true
    }

    async fn probe(&mut self, probe: &Probe) -> bool {
        match probe {
            Probe::Proxy { admin_file, index } => {
                let Some(admin) = admin_address(admin_file) else {
                    return false;
                };
                self.state.workloads[*index].admin = Some(admin);
                matches!(
                    get(&format!("http://{admin}/ready")).await,
                    Ok((StatusCode::OK, _))
                )
            }
            Probe::Listening(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
        }
    }

    /// Loads the page through the gateway until it is good.
    async fn first_page(&mut self, gateway: &Gateway, page: &FirstPage) -> anyhow::Result<()> {
        let url = format!(
            "http://{}{}",
            SocketAddr::new(gateway.address, gateway.http_port),
            page.path
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = match get(&url).await {
                Ok((StatusCode::OK, body)) if page.holds.iter().all(|t| body.contains(t)) => break,
                Ok((status, _)) => format!("answered {status}"),
                Err(err) => format!("{err:#}"),
            };
            if let Some(err) = self.children.newly_exited() {
                return Err(err);
            }
            if Instant::now() > deadline {
                anyhow::bail!("{url} was not good within {:?}: {last}", self.timeout);
            }
            tokio::time::sleep(POLL).await;
        }
        let took = self.started.elapsed();
        self.done(
            "first page",
            &format!(
                "{url} {}, {:.2}s after start",
                page.shows,
                took.as_secs_f64()
            ),
        );
        Ok(())
    }

    fn print_urls(&self) {
        let mut lines = String::from("\nThe local mesh is up.\n");
        if let Some(gateway) = self.state.gateway {
            lines += &format!("  Ingress gateway   http://{gateway}/\n");
        }
        if let Some(dashboard) = self.state.dashboard {
            lines += &format!("  Dashboard         http://{dashboard}/\n");
        }
        if self.state.traces.is_some() {
            lines += "  Traces            meshctl traces\n";
        }
        if let Some(control_plane) = self.state.control_plane {
            lines += &format!(
                "  Control plane     http://{}   (meshctl get vs, meshctl proxy-status)\n",
                control_plane.monitoring
            );
        }
        lines += &format!(
            "  Logs              {}\nPress Ctrl-C to stop (or run `meshctl local down`).",
            self.dir.logs().display()
        );
        self.say(format_args!("{lines}"));
    }

    /// Reports children that exit on their own until the mesh is stopped.
    async fn watch(&mut self) {
        loop {
            if let Some(err) = self.children.newly_exited() {
                eprintln!("warning: {err:#}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn stop(&mut self) {
        self.say(format_args!("Stopping the local mesh..."));
        self.children.stop_all(Duration::from_secs(5)).await;
        self.state.processes.clear();
        self.state.ready = false;
        self.state.supervisor = 0;
        self.state.supervisor_started = 0;
        if let Err(err) = self.save() {
            eprintln!("warning: {err:#}");
        }
        self.say(format_args!("Stopped."));
    }
}

fn sidecar_node(placed: &Placed) -> ProxyNode {
    let workload = &placed.workload;
    let mut labels = workload.labels.clone();
    labels.insert(plan::TLS_MODE_LABEL.into(), "istio".into());
    ProxyNode {
        kind: "sidecar",
        name: workload.name().to_owned(),
        namespace: workload.namespace().to_owned(),
        ip: workload.address,
        labels,
        service_account: workload.service_account.clone(),
    }
}

fn token_file(dir: &StateDir, node: &ProxyNode) -> PathBuf {
    dir.tokens()
        .join(format!("{}.{}", node.name, node.namespace))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// `port` if nothing listens there yet, or a free one when it is 0.
fn pick_port(ip: IpAddr, port: u16) -> anyhow::Result<u16> {
    if port == 0 {
        return plan::free_port(ip).with_context(|| format!("no free port on {ip}"));
    }
    std::net::TcpListener::bind((ip, port)).with_context(|| {
        format!("the gateway cannot listen on {ip}:{port} (pass another --gateway-port or --gateway-https-port)")
    })?;
    Ok(port)
}

fn read_addresses(file: &std::path::Path) -> Option<ControlPlane> {
    let addresses = AddressFile::read(file)?;
    Some(ControlPlane {
        xds: addresses.get("xds")?,
        secure: addresses.get("secure")?,
        monitoring: addresses.get("monitoring")?,
    })
}

/// Sends the inputs' Istio config, then the local mesh's own (the Sidecars
/// and the gateway's entries), each as one atomic apply.
async fn apply(
    api: &Address,
    plan: &Plan,
    gateway: &Gateway,
    collector: &Collector,
) -> anyhow::Result<String> {
    let mut batches = plan::istio_config(&plan.istio, &plan.workloads);
    let mut own: Vec<Value> = plan.workloads.iter().map(Placed::sidecar).collect();
    own.extend(gateway.config());
    own.push(collector.service_entry());
    batches.push(("meshctl-local".into(), own));
    let mut count = 0;
    for (source, values) in &batches {
        let documents: Vec<String> = values.iter().map(Value::to_string).collect();
        count += documents.len();
        let path = format!("/api/v1/config?source={}", control_plane::escape(source));
        let reply = api
            .send_async(Method::POST, &path, documents.join("\n---\n"))
            .await?;
        if !reply.status.is_success() {
            anyhow::bail!(
                "the control plane refused {source}:\n{}",
                reply.body.trim_end()
            );
        }
    }
    Ok(format!(
        "{count} resources from {} inputs",
        batches.len() - 1
    ))
}

/// One GET, bounded in time.
async fn get(url: &str) -> anyhow::Result<(StatusCode, String)> {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        control_plane::request(Method::GET, url, String::new()),
    )
    .await
    .context("no answer within 2s")??;
    Ok((reply.status, reply.body))
}
