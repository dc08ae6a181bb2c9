//! The `bookinfo` binary as a process: flags, environment and logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::{Dead, get};

/// How long a process may take to start listening on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `bookinfo` process, killed when dropped, and its log lines.
struct Process {
    child: Child,
    lines: Receiver<String>,
}

impl Process {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bookinfo"))
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bookinfo starts");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `needle`, failing with what was logged.
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}; logged: {seen:#?}");
    }

    /// The address from the "listening" log line.
    fn listening_addr(&self) -> String {
        let line = self.wait_for_line("listening");
        let start = line.find("address=").expect("address field") + "address=".len();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serves_on_the_port_it_logs() {
    let process = Process::spawn(&["ratings", "--port", "0", "--address", "127.0.0.1"], &[]);
    let addr = process.listening_addr();
    let reply = get(&format!("http://{addr}/ratings/0"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["ratings"]["Reviewer1"], 5);
}

#[tokio::test]
async fn reviews_version_comes_from_the_environment_and_failures_are_logged() {
    let ratings = Dead::new();
    let port = ratings.addr.port().to_string();
    let process = Process::spawn(
        &["reviews", "--port", "0"],
        &[
            ("SERVICE_VERSION", "v3"),
            ("RATINGS_HOSTNAME", "127.0.0.1"),
            ("RATINGS_SERVICE_PORT", &port),
        ],
    );
    let addr = process.listening_addr();
    let reply = get(&format!("http://{addr}/reviews/0"), &[]).await.json();
    assert_eq!(
        reply["reviews"][0]["rating"]["error"],
        "Ratings service is currently unavailable"
    );
    let logged = process.wait_for_line("upstream call failed");
    assert!(
        logged.contains(&format!("http://127.0.0.1:{port}/ratings/0")),
        "{logged}"
    );
}

#[test]
fn a_bad_version_is_refused_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_bookinfo"))
        .args(["reviews", "--port", "0", "--version", "v9"])
        .output()
        .expect("bookinfo runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"v9\" is not one of v1, v2, v3"),
        "{stderr}"
    );
}
