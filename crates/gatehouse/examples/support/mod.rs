//! What the benchmarks share: the release binary run as its own gateway
//! process, its dev-issuer tokens, and loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `gatehouse` binary beside this example (build it first).
pub fn gateway_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("gatehouse"))
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?;
    anyhow::ensure!(
        exe.exists(),
        "build the binary first: cargo build --release -p gatehouse"
    );
    Ok(exe)
}

/// `gatehouse serve` with `dir/gatehouse.toml`, stopped when dropped.
pub fn spawn_gateway(exe: &Path, dir: &Path) -> anyhow::Result<KillOnDrop> {
    let child = Command::new(exe)
        .arg("--config")
        .arg(dir.join("gatehouse.toml"))
        .arg("serve")
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    Ok(KillOnDrop(child))
}

/// A gateway process that is stopped however the benchmark ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A two-hour dev-issuer token for subject and group `bench`.
pub fn bench_token(exe: &Path, dir: &Path) -> anyhow::Result<String> {
    let o = Command::new(exe)
        .arg("--config")
        .arg(dir.join("gatehouse.toml"))
        .args([
            "token",
            "issue",
            "--subject",
            "bench",
            "--groups",
            "bench",
            "--ttl",
            "2h",
        ])
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "token issue failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8(o.stdout)?.trim().to_string())
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Wait (bounded) until something listens on `port`.
pub fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("gateway did not listen on {port}")
}
