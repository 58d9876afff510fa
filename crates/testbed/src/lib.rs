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
