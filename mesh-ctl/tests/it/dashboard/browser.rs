//! Headless Chromium (Debian's `chromium` package), run with bounded time.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take; it starts slowly on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);

/// Chromium, checked to be installed: this test must not pass without it.
fn chromium(profile: &Path) -> Command {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "chromium is not installed, and the dashboard's browser test needs it: \
         run `apt-get install -y --no-install-recommends chromium` (.ci/run does)"
    );
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        // Long enough for the page's first polls to be answered and drawn.
        "--virtual-time-budget=8000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The page's DOM once its script has run.
pub fn dump_dom(url: &str, profile: &Path) -> String {
    let mut command = chromium(profile);
    command.arg("--dump-dom").arg(url);
    let output = run(command);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Saves a screenshot of the page, `width` x `height` pixels, at `path`.
pub fn screenshot(url: &str, profile: &Path, path: &Path, (width, height): (u32, u32)) {
    let mut command = chromium(profile);
    command
        .arg(format!("--screenshot={}", path.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url);
    run(command);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no real screenshot at {}", path.display());
}

/// Runs `command` to the end, killing it past [`LIMIT`]; fails unless it
/// succeeded.
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.read_to_end(&mut buffer);
        buffer
    });
    let err = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
