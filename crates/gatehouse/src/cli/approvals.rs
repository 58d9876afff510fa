//! `gatehouse approvals` and `gatehouse access`: held commands, access
//! requests and grants, through the gateway's API.

use crate::client::{ApiArgs, ApiClient};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum ApprovalsCommand {
    /// Requests you can see: pending ones by default.
    List {
        /// pending, approved, executed, denied, expired, withdrawn or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One request in full.
    Show {
        /// Request number.
        id: u64,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request.
    Approve {
        /// Request number.
        id: u64,
        /// Your justification (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Deny a request.
    Deny {
        /// Request number.
        id: u64,
        /// Your justification (shown to the requester).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub(super) enum AccessCommand {
    /// Ask for access to CONNECTION for a while.
    Request {
        /// The connection.
        connection: String,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for")]
        duration: String,
        /// Why (shown to approvers, recorded in the audit trail).
        #[arg(long)]
        reason: String,
        /// The group whose rules the grant gives you (one of the
        /// connection's `access_as`; default: its first).
        #[arg(long = "as")]
        as_group: Option<String>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Grants you hold or may revoke (all of them for auditors).
    List {
        /// Only grants in force now.
        #[arg(long)]
        active: bool,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant; the holder's live sessions on it end.
    Revoke {
        /// Grant number.
        id: u64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

pub(super) async fn run(api: ApiArgs, command: ApprovalsCommand) -> Result<ExitCode> {
    let client = ApiClient::new(&api)?;
    match command {
        ApprovalsCommand::List { status, json } => {
            let v = client
                .get(&format!("/api/v1/approvals?status={status}"))
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v["requests"])?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let list = v["requests"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                outln!("no {status} requests you can see")?;
            }
            for r in list {
                outln!(
                    "#{:<5} {:<9} {:<8} {:<14} {}{}",
                    r["id"],
                    r["status"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or(""),
                    r["connection"].as_str().unwrap_or(""),
                    r["title"].as_str().unwrap_or(""),
                    if r["can_decide"] == true {
                        "  [you can decide]"
                    } else {
                        ""
                    }
                )?;
            }
        }
        ApprovalsCommand::Show { id, json } => {
            let r = client.get(&format!("/api/v1/approvals/{id}")).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                print_request(&r)?;
            }
        }
        ApprovalsCommand::Approve { id, reason } => decide(&client, id, "approve", reason).await?,
        ApprovalsCommand::Deny { id, reason } => decide(&client, id, "deny", reason).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(client: &ApiClient, id: u64, verb: &str, reason: String) -> Result<()> {
    let r = client
        .post(
            &format!("/api/v1/approvals/{id}/{verb}"),
            &serde_json::json!({ "reason": reason }),
        )
        .await?;
    outln!(
        "request #{id} is now {}{}",
        r["status"].as_str().unwrap_or("?"),
        match r["status"].as_str() {
            Some("pending") => " (more approvals are needed)",
            _ => "",
        }
    )?;
    Ok(())
}

fn print_request(r: &serde_json::Value) -> Result<()> {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    outln!("request #{}  {}  ({})", r["id"], s("status"), s("kind"))?;
    outln!("  {}", s("title"))?;
    outln!(
        "  requester:  {}",
        r["requester"]["email"]
            .as_str()
            .or(r["requester"]["subject"].as_str())
            .unwrap_or("")
    )?;
    outln!("  connection: {}", s("connection"))?;
    if let Some(c) = r["command"].as_str() {
        outln!("  rule:       {}", s("rule"))?;
        // Control characters could redraw the approver's terminal and show
        // a different command than the one that runs: print them escaped.
        let shown: String = c
            .chars()
            .map(|ch| match ch {
                '\n' => "\n    ".to_string(),
                ch if ch.is_control() => ch.escape_default().to_string(),
                ch => ch.to_string(),
            })
            .collect();
        outln!("  command:\n    {shown}")?;
    }
    if s("kind") == "access" {
        let groups: Vec<&str> = r["access_as"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str())
            .collect();
        outln!(
            "  acts as:    {}",
            if groups.is_empty() {
                "no group (the policy's defaults only)".to_string()
            } else {
                groups.join(", ")
            }
        )?;
    }
    outln!("  message:    {}", s("message"))?;
    outln!("  needs:      {}", s("requirement_text"))?;
    outln!("  link:       {}", s("link"))?;
    for d in r["decisions"].as_array().into_iter().flatten() {
        outln!(
            "  {} by {} at {}: {}",
            if d["approve"] == true {
                "approved"
            } else {
                "denied"
            },
            d["approver"]["email"]
                .as_str()
                .or(d["approver"]["subject"].as_str())
                .unwrap_or(""),
            d["at"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

pub(super) async fn access(api: ApiArgs, command: AccessCommand) -> Result<ExitCode> {
    let client = ApiClient::new(&api)?;
    match command {
        AccessCommand::Request {
            connection,
            duration,
            reason,
            as_group,
            json,
        } => {
            let r = client
                .post(
                    "/api/v1/access",
                    &serde_json::json!({"connection": connection, "duration": duration, "reason": reason, "as": as_group}),
                )
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                outln!(
                    "access request #{} is waiting for {}: {}",
                    r["id"],
                    r["requirement_text"].as_str().unwrap_or("approval"),
                    r["link"].as_str().unwrap_or("")
                )?;
            }
        }
        AccessCommand::List { active, json } => {
            let v = client
                .get(&format!("/api/v1/grants?active={active}"))
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v["grants"])?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let now = chrono::Utc::now().timestamp();
            for g in v["grants"].as_array().into_iter().flatten() {
                let state = if !g["revoked_at"].is_null() {
                    "revoked"
                } else if g["expires_at"].as_i64().unwrap_or(0) <= now {
                    "expired"
                } else {
                    "active"
                };
                outln!(
                    "grant #{:<5} {:<8} {:<14} {} until {}",
                    g["id"],
                    state,
                    g["connection"].as_str().unwrap_or(""),
                    g["holder"]["email"]
                        .as_str()
                        .or(g["holder"]["subject"].as_str())
                        .unwrap_or(""),
                    chrono::DateTime::from_timestamp(g["expires_at"].as_i64().unwrap_or(0), 0)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                )?;
            }
        }
        AccessCommand::Revoke { id, reason } => {
            client
                .post(
                    &format!("/api/v1/grants/{id}/revoke"),
                    &serde_json::json!({ "reason": reason }),
                )
                .await?;
            outln!("grant #{id} is revoked; its live sessions were ended")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
