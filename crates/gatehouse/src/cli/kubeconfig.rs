//! `gatehouse kubeconfig`: a kubeconfig that sends kubectl through the
//! gateway.

use crate::config::GatewayConfig;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub(super) struct KubeconfigArgs {
    /// The Kubernetes connection's name.
    connection: String,
    /// The gateway's HTTPS address for HTTP connections (default: `[http]
    /// listen` from the configuration).
    #[arg(long, env = "GATEHOUSE_HTTP_URL")]
    server: Option<String>,
    /// Your OIDC access token (kubectl sends it; the gateway checks it).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM certificate kubectl should trust for the gateway (default: the
    /// gateway's own certificate when the configuration is readable).
    #[arg(long, env = "GATEHOUSE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Write it here (private to you) instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// `gatehouse kubeconfig CONNECTION`.
pub(super) fn run(config: Option<&Path>, args: KubeconfigArgs) -> Result<ExitCode> {
    let cfg = GatewayConfig::resolve(config).ok();
    let conn = cfg
        .as_ref()
        .and_then(|c| c.connections.iter().find(|k| k.name == args.connection));
    if let Some(conn) = conn {
        anyhow::ensure!(
            conn.kind == gatehouse_core::policy::ConnectionKind::Kubernetes,
            "connection \"{}\" is not a Kubernetes connection",
            args.connection
        );
    }
    let prefix = conn
        .and_then(|c| c.path_prefix.clone())
        .unwrap_or_else(|| format!("/{}", args.connection));
    let server = match &args.server {
        Some(s) => format!("{}{prefix}", s.trim_end_matches('/')),
        None => {
            let listen = cfg
                .as_ref()
                .map(|c| c.http.clone().unwrap_or_default().listen)
                .context("pass --server (or GATEHOUSE_HTTP_URL): no gateway configuration was found to read [http] listen from")?;
            format!("https://{listen}{prefix}")
        }
    };
    anyhow::ensure!(
        server.starts_with("https://"),
        "the server must be https: kubectl sends the token only over TLS"
    );
    let ca_path = args.ca_file.clone().or_else(|| {
        cfg.as_ref()
            .map(|c| c.state_dir().join("tls-cert.pem"))
            .filter(|p| p.exists())
    });
    let ca_pem = match &ca_path {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let text = crate::kubeconfig::render(
        &format!("gatehouse-{}", args.connection),
        &server,
        ca_pem.as_deref(),
        "gatehouse",
        args.token.trim(),
    );
    match &args.out {
        Some(path) => {
            crate::files::write_private(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}; use it with: KUBECONFIG={} kubectl get pods",
                path.display(),
                path.display()
            );
        }
        None => out!("{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}
