//! A real third-party xDS client: Python `grpcio` with an xDS bootstrap
//! file dials `xds:///echo.default.svc.cluster.local:50051` through the
//! mesh-control binary, to two gRPC servers (versions v1 and v2, Python as
//! well), and a VirtualService splits its calls 80/20 between the subsets,
//! sends calls with `x-version: v2` to v2 and aborts those with
//! `x-fault: abort`.
//!
//! Needs `python3` with `grpcio` (requirements-dev.txt); without it the
//! test fails, saying so.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PYTHON: &str = "python3";
const HOST: &str = "echo.default.svc.cluster.local";
const SERVICE_PORT: u16 = 50051;
const CALLS: u32 = 400;
/// How long a process may take to start and say it is ready.
const STARTUP: Duration = Duration::from_secs(20);
/// How long the client may take for all its calls.
const CLIENT_RUN: Duration = Duration::from_secs(90);

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grpc")
        .join(name)
}

/// Fails the test, clearly, when Python or grpcio is missing.
fn require_grpcio() {
    let output = Command::new(PYTHON)
        .args(["-c", "import grpc; print(grpc.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!("{PYTHON} does not run ({e}); the test needs Python 3 with grpcio")
        });
    assert!(
        output.status.success(),
        "Python's grpcio is not installed, and this test needs it: \
         python3 -m pip install -r requirements-dev.txt\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A gRPC server answering with `version`, and the port it listens on.
fn start_server(version: &str) -> (Running, u16) {
    let mut child = Command::new(PYTHON)
        .arg(script("server.py"))
        .arg(version)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(STARTUP)
        .unwrap_or_else(|_| panic!("the {version} server did not start within {STARTUP:?}"));
    let port = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the {version} server said {line:?}, not its port"));
    (running, port)
}

fn mesh_config(v1_port: u16, v2_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {SERVICE_PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v1, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {v1_port}}}
  labels: {{app: echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v2, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {v2_port}}}
  labels: {{app: echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo]
  http:
  - match: [{{headers: {{x-fault: {{exact: abort}}}}}}]
    fault: {{abort: {{grpcStatus: PERMISSION_DENIED, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: echo, subset: v1}}}}]
  - match: [{{headers: {{x-version: {{exact: v2}}}}}}]
    route: [{{destination: {{host: echo, subset: v2}}}}]
  - route:
    - {{destination: {{host: echo, subset: v1}}, weight: 80}}
    - {{destination: {{host: echo, subset: v2}}, weight: 20}}
    timeout: 10s
    retries: {{attempts: 2, retryOn: unavailable}}
"#
    )
}

/// Starts mesh-control on ephemeral ports; returns it and its xDS address.
fn start_control_plane(dir: &Path, log: &Path) -> (Running, String) {
    let address_file = dir.join("addresses.json");
    let process = Running(
        Command::new(env!("CARGO_BIN_EXE_mesh-control"))
            .arg("--config-dir")
            .arg(dir.join("config"))
            .args(["--xds-port", "0", "--monitoring-port", "0", "--log", "info"])
            .arg("--address-file")
            .arg(&address_file)
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut process = process;
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(text) = fs::read_to_string(&address_file)
            && let Ok(addresses) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let xds = addresses["xds"]
                .as_str()
                .expect("an xds address")
                .to_owned();
            return (process, xds);
        }
        assert!(
            Instant::now() < deadline,
            "mesh-control wrote no address file"
        );
        assert!(
            process.0.try_wait().unwrap().is_none(),
            "mesh-control exited: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bootstrap(xds: &str) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": xds,
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
            "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"},
        },
    })
    .to_string()
}

/// Runs the client to its end (bounded); returns its JSON line.
fn run_client(dir: &Path, control_log: &Path) -> serde_json::Value {
    let (out, err) = (dir.join("client.out"), dir.join("client.err"));
    let mut client = Running(
        Command::new(PYTHON)
            .arg(script("client.py"))
            .arg(format!("xds:///{HOST}:{SERVICE_PORT}"))
            .arg(CALLS.to_string())
            .args(["x-version=v2", "x-fault=abort"])
            .env("GRPC_XDS_BOOTSTRAP", dir.join("bootstrap.json"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + CLIENT_RUN;
    let status = loop {
        if let Some(status) = client.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the gRPC client did not finish within {CLIENT_RUN:?}\nclient: {}\nmesh-control: {}",
            fs::read_to_string(&err).unwrap_or_default(),
            fs::read_to_string(control_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_ne!(
        status.code(),
        Some(3),
        "Python's grpcio is not installed: {stderr}"
    );
    assert!(
        status.success(),
        "the gRPC client failed ({status})\nclient: {stderr}\nmesh-control: {}",
        fs::read_to_string(control_log).unwrap_or_default()
    );
    let stdout = fs::read_to_string(&out).unwrap();
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the client printed {stdout:?}: {e}"))
}

fn calls(result: &serde_json::Value, case: &str, version: &str) -> u64 {
    result[case][version].as_u64().unwrap_or(0)
}

#[test]
fn grpcio_xds_client_is_routed_and_split_by_mesh_control() {
    require_grpcio();
    let dir = tempfile::tempdir().unwrap();
    let (_v1, v1_port) = start_server("v1");
    let (_v2, v2_port) = start_server("v2");
    fs::create_dir(dir.path().join("config")).unwrap();
    fs::write(
        dir.path().join("config/echo.yaml"),
        mesh_config(v1_port, v2_port),
    )
    .unwrap();
    let log = dir.path().join("mesh-control.log");
    let (_control, xds) = start_control_plane(dir.path(), &log);
    fs::write(dir.path().join("bootstrap.json"), bootstrap(&xds)).unwrap();

    let result = run_client(dir.path(), &log);
    eprintln!("calls answered, by version: {result}");
    let control_log = fs::read_to_string(&log).unwrap();
    assert!(
        !control_log.contains("NACK"),
        "the gRPC client rejected config: {control_log}"
    );

    let (v1, v2) = (calls(&result, "plain", "v1"), calls(&result, "plain", "v2"));
    assert_eq!(v1 + v2, u64::from(CALLS), "{result}");
    let share = v1 as f64 / f64::from(CALLS);
    // 80% of 400 calls: the standard deviation is 2%, this allows 5 of them.
    assert!(
        (0.7..=0.9).contains(&share),
        "v1 answered {v1} of {CALLS} calls, not about 80%: {result}"
    );
    assert_eq!(
        calls(&result, "x-version=v2", "v2"),
        u64::from(CALLS),
        "calls with x-version: v2 all go to v2: {result}"
    );
    assert_eq!(
        calls(&result, "x-fault=abort", "error:PERMISSION_DENIED"),
        u64::from(CALLS),
        "calls with x-fault: abort are all aborted by fault injection: {result}"
    );
}
