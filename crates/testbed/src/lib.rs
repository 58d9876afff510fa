//! Throwaway servers on 127.0.0.1 that the product's demo, the integration
//! tests and the benchmarks start and stop: a PostgreSQL cluster, a MariaDB
//! server, an OpenSSH sshd and an OpenAI-compatible upstream.
//!
//! None of this is on the gateway's data path; it lives apart from the
//! `gatehouse` library so the library holds only what a deployment runs.
//! Each server uses the system's own binaries (what a user would run), not a
//! stand-in, and lives in a private temporary folder removed when it stops.

pub mod llmdemo;
pub mod mariadbcluster;
pub mod pgcluster;
pub mod sshtarget;
mod watcher;

use anyhow::{Context, Result};
use std::net::{Ipv4Addr, TcpListener};

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Whether we run as root (servers then run as their own system users,
/// and sshd can start at all).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
