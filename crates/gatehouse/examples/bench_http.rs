//! Benchmark (not a test): the HTTP adapter against a direct connection to
//! the same OpenAI-compatible upstream, in the same run.
//!
//!     cargo build --release -p gatehouse
//!     cargo run --release -p gatehouse --example bench_http -- [SECONDS] [CLIENTS] [full|normal]
//!
//! 1. Non-streamed chat completions for SECONDS with CLIENTS concurrent
//!    clients: directly (plain HTTP to the upstream, its key) and through
//!    the gateway (HTTPS, token check, decide, audit with fsync, answer
//!    masked whole); prints requests/s and p50/p99 latency. The third
//!    argument is the audit store's durability (`full` fsyncs each event).
//! 2. Streamed completions, one at a time: time to the first content byte
//!    and to the end of the stream, direct and through the gateway (masked
//!    as it streams).
//!
//! The upstream is `gatehouse_testbed::llmdemo` in this process; the gateway runs as
//! its own process (`gatehouse serve`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{bench_token, free_port, gateway_exe, spawn_gateway, wait_port};

const KEY: &str = "bench-upstream-key";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let durability = args.get(3).cloned().unwrap_or_else(|| "full".into());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_port = listener.local_addr()?.port();
    gatehouse_testbed::llmdemo::start(listener, KEY.into()).await;

    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("llm.key");
    std::fs::write(&key_file, KEY)?;
    let http_port = free_port();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        format!(
            r#"state_dir = "state"
[postgres]
listen = "127.0.0.1:{pg}"
[api]
listen = "127.0.0.1:{api}"
[http]
listen = "127.0.0.1:{http_port}"
[audit]
durability = "{durability}"
[[connections]]
name = "llm"
type = "openai"
host = "127.0.0.1"
port = {upstream_port}
password_file = "{key}"
allow_groups = ["bench"]
"#,
            pg = free_port(),
            api = free_port(),
            key = key_file.display()
        ),
    )?;
    let exe = gateway_exe()?;
    let _gw = spawn_gateway(&exe, dir.path())?;
    wait_port(http_port)?;
    let token = bench_token(&exe, dir.path())?;
    let ca = std::fs::read(dir.path().join("state/tls-cert.pem"))?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .pool_max_idle_per_host(clients * 2)
        .build()?;

    let direct = Target {
        url: format!("http://127.0.0.1:{upstream_port}/v1/chat/completions"),
        auth: KEY.into(),
    };
    let gateway = Target {
        url: format!("https://127.0.0.1:{http_port}/llm/v1/chat/completions"),
        auth: token,
    };
    println!("non-streamed chat completions, {clients} clients, {seconds} s each:");
    let d = load(&client, &direct, clients, seconds).await?;
    let g = load(&client, &gateway, clients, seconds).await?;
    println!(
        "  direct   {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        d.rate, d.p50, d.p99
    );
    println!(
        "  gateway  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        g.rate, g.p50, g.p99
    );
    println!("  gateway/direct throughput: {:.2}", g.rate / d.rate);

    println!("streamed answers, one at a time (50 each):");
    let ds = streams(&client, &direct, 50).await?;
    let gs = streams(&client, &gateway, 50).await?;
    println!(
        "  direct   first content byte p50 {:>6.2} ms   whole stream p50 {:>6.2} ms",
        ds.0, ds.1
    );
    println!(
        "  gateway  first content byte p50 {:>6.2} ms   whole stream p50 {:>6.2} ms",
        gs.0, gs.1
    );
    Ok(())
}

struct Target {
    url: String,
    auth: String,
}

struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
}

async fn load(
    client: &reqwest::Client,
    target: &Target,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Load> {
    let body = serde_json::json!({"model": "bench", "messages": [{"role": "user", "content": "summarise the file"}]});
    // Warm the pool.
    one(client, target, &body).await?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = client.clone();
        let url = target.url.clone();
        let auth = target.auth.clone();
        let body = body.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let target = Target { url, auth };
            while Instant::now() < until {
                let t = Instant::now();
                if one(&client, &target, &body).await.is_ok() {
                    latencies
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut l = latencies.lock().unwrap().clone();
    anyhow::ensure!(!l.is_empty(), "no request succeeded against {}", target.url);
    l.sort_by(|a, b| a.total_cmp(b));
    Ok(Load {
        rate: l.len() as f64 / seconds as f64,
        p50: l[l.len() / 2],
        p99: l[(l.len() * 99 / 100).min(l.len() - 1)],
    })
}

async fn one(
    client: &reqwest::Client,
    target: &Target,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let r = client
        .post(&target.url)
        .bearer_auth(&target.auth)
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "status {}", r.status());
    r.bytes().await?;
    Ok(())
}

/// Median time to the first content byte and to the end, in ms.
async fn streams(
    client: &reqwest::Client,
    target: &Target,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let body = serde_json::json!({"model": "bench", "stream": true, "messages": [{"role": "user", "content": "summarise the file"}]});
    let mut first = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut r = client
            .post(&target.url)
            .bearer_auth(&target.auth)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "status {}", r.status());
        let mut got_first = false;
        let mut pending = String::new();
        while let Some(chunk) = r.chunk().await? {
            if got_first {
                continue;
            }
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let has_content = line
                    .strip_prefix("data: ")
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
                    .and_then(|v| {
                        v.pointer("/choices/0/delta/content")
                            .and_then(|c| c.as_str())
                            .map(|c| !c.is_empty())
                    })
                    .unwrap_or(false);
                if has_content && !got_first {
                    first.push(t.elapsed().as_secs_f64() * 1000.0);
                    got_first = true;
                }
            }
        }
        whole.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    first.sort_by(|a, b| a.total_cmp(b));
    whole.sort_by(|a, b| a.total_cmp(b));
    Ok((
        first.get(first.len() / 2).copied().unwrap_or(f64::NAN),
        whole[whole.len() / 2],
    ))
}
