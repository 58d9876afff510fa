//! The CLI's client for the gateway's JSON API (`approvals`, `access`).
//!
//! Like any other client of the gateway, it takes the address and the
//! caller's own token from `--url`/`--token` or `GATEHOUSE_URL`/
//! `GATEHOUSE_TOKEN`, and trusts the gateway's certificate through the
//! system roots or `--ca-file`/`GATEHOUSE_CA_FILE` (the demo's self-signed
//! one). It never turns certificate checks off.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

/// Where and as whom to call the API.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// The gateway's API address, e.g. https://127.0.0.1:15443.
    #[arg(long, env = "GATEHOUSE_URL")]
    pub url: String,
    /// Your OIDC access token.
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// PEM certificate to trust for the gateway (its self-signed dev certificate).
    #[arg(long, env = "GATEHOUSE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// An authenticated API client.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Build a client from the CLI arguments.
    pub fn new(args: &ApiArgs) -> Result<ApiClient> {
        let url = reqwest::Url::parse(&args.url)
            .with_context(|| format!("--url {} is not a URL", args.url))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        anyhow::ensure!(
            url.scheme() == "https" || loopback,
            "--url must be https: your token would otherwise cross the network in the clear"
        );
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &args.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(ApiClient {
            base: args.url.trim_end_matches('/').to_string(),
            token: args.token.trim().to_string(),
            http: builder.build().context("building the HTTP client")?,
        })
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// POST `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("the gateway answered {status} without JSON"))?;
        if status.is_success() {
            Ok(body)
        } else {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            anyhow::bail!("{msg} (HTTP {})", status.as_u16())
        }
    }
}
