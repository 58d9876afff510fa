//! `gatehouse serve`: run the gateway until Ctrl-C or SIGTERM.

use crate::config::GatewayConfig;
use crate::gateway;
use anyhow::Result;

pub(super) async fn serve(cfg: GatewayConfig) -> Result<()> {
    let gw = gateway::RunningGateway::start(&cfg).await?;
    eprintln!(
        "gatehouse: PostgreSQL on {} (TLS), API on https://{}",
        gw.postgres_addr, gw.api_addr
    );
    wait_for_signal().await;
    eprintln!("gatehouse: shutting down; signing the final audit checkpoint");
    gw.shutdown().await;
    Ok(())
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
