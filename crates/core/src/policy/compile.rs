//! Start-up compilation and validation of policy.

use super::masking::ColumnRule;
use super::rules::{CommandRule, Effect, HttpConditions, RuleConfig};
use super::{Policy, PolicyConfig};
use crate::approval::{Requirement, DEFAULT_APPROVAL_TIMEOUT};
use crate::classify::shell::{ShellKind, SHELL_KINDS};
use crate::classify::{CopyDirection, StatementKind, ALL_KINDS};
use regex::Regex;
use std::collections::HashSet;

/// A policy mistake found at start-up, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A rule is invalid; `line` is 1-based within the configuration file.
    #[error("rule \"{name}\" at line {line}: {problem}")]
    Rule {
        /// The rule's name.
        name: String,
        /// Line of the rule's table in the file.
        line: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A connection or masking entry is invalid.
    #[error("{0}")]
    Other(String),
}

/// Check and compile the policy section. `source` is the configuration
/// file's text, used to turn spans into line numbers.
pub fn compile(config: &PolicyConfig, source: &str) -> Result<Policy, PolicyError> {
    let mut names = HashSet::new();
    for conn in &config.connections {
        if !names.insert(conn.name.as_str()) {
            return Err(PolicyError::Other(format!(
                "connection \"{}\" is defined twice",
                conn.name
            )));
        }
        if conn.password_env.is_some() && conn.password_file.is_some() {
            return Err(PolicyError::Other(format!(
                "connection \"{}\": set password_env or password_file, not both",
                conn.name
            )));
        }
        if conn.tls == super::TargetTls::Require
            && !matches!(
                conn.kind,
                super::ConnectionKind::Postgres | super::ConnectionKind::Mysql
            )
            && !conn.kind.is_http()
        {
            // Refuse rather than silently connecting in plaintext.
            return Err(PolicyError::Other(format!(
                "connection \"{}\": tls = \"require\" applies to PostgreSQL, MySQL and HTTP targets (SSH is its own encrypted transport)",
                conn.name
            )));
        }
        if conn.allow_groups.is_empty() {
            return Err(PolicyError::Other(format!(
                "connection \"{}\" has no allow_groups, so nobody could use it; list the groups that may",
                conn.name
            )));
        }
        conn.access_policy().map_err(PolicyError::Other)?;
        check_ssh_fields(conn).map_err(PolicyError::Other)?;
        check_http_fields(conn).map_err(PolicyError::Other)?;
    }
    let mut rule_names = HashSet::new();
    let mut rules = Vec::with_capacity(config.rules.len());
    for spanned in &config.rules {
        let line = line_of(source, spanned.span().start);
        let rule = spanned.get_ref();
        let fail = |problem: String| PolicyError::Rule {
            name: rule.name.clone(),
            line,
            problem,
        };
        if !rule_names.insert(rule.name.clone()) {
            return Err(fail("another rule has the same name".into()));
        }
        rules.push(compile_rule(rule, &names).map_err(fail)?);
    }
    let column_rules = config
        .masking
        .columns
        .iter()
        .map(ColumnRule::compile)
        .collect();
    if config.masking.tokenize_key_env.is_some() && config.masking.tokenize_key_file.is_some() {
        return Err(PolicyError::Other(
            "[masking]: set tokenize_key_env or tokenize_key_file, not both".into(),
        ));
    }
    Ok(Policy {
        connections: config.connections.clone(),
        rules,
        column_rules,
        unparseable: config.unparseable,
        default_read_effect: config.default_read_effect,
        default_write_effect: config.default_write_effect,
        masking: config.masking.clone(),
    })
}

fn compile_rule(rule: &RuleConfig, connections: &HashSet<&str>) -> Result<CommandRule, String> {
    let (sql_kinds, shell_kinds): (Vec<String>, Vec<String>) = rule
        .kinds
        .iter()
        .cloned()
        .partition(|k| ShellKind::from_name(&k.to_ascii_lowercase()).is_none());
    let kinds = parse_kinds(&sql_kinds, "kinds")?;
    let shell_kinds: Vec<ShellKind> = shell_kinds
        .iter()
        .filter_map(|k| ShellKind::from_name(&k.to_ascii_lowercase()))
        .collect();
    let not_kinds = parse_kinds(&rule.not_kinds, "not_kinds")?;
    for c in &rule.connections {
        if !connections.contains(c.as_str()) {
            return Err(format!("names connection \"{c}\", which is not defined"));
        }
    }
    let pattern = match &rule.pattern {
        Some(p) => Some(Regex::new(p).map_err(|e| format!("pattern is not a valid regex: {e}"))?),
        None => None,
    };
    let copy = match rule.copy.as_deref() {
        None => None,
        Some("in") => Some(CopyDirection::In),
        Some("out") => Some(CopyDirection::Out),
        Some(other) => return Err(format!("copy = \"{other}\": use \"in\" or \"out\"")),
    };
    if rule.effect != Effect::Allow && rule.message.is_none() {
        return Err("a block or approve rule needs a message telling the user why".into());
    }
    let requirement = approval_requirement(rule)?;
    let message = rule
        .message
        .clone()
        .unwrap_or_else(|| format!("allowed by rule {}", rule.name));
    Ok(CommandRule {
        name: rule.name.clone(),
        effect: rule.effect,
        message,
        groups: rule.groups.clone(),
        except_groups: rule.except_groups.clone(),
        connections: rule.connections.clone(),
        kinds,
        shell_kinds,
        not_kinds,
        keywords: rule.keywords.clone(),
        tables: rule.tables.iter().map(|t| super::Glob::new(t)).collect(),
        pattern,
        without_where: rule.without_where,
        without_limit: rule.without_limit,
        copy,
        requirement,
        http: compile_http_conditions(rule)?,
    })
}

fn compile_http_conditions(rule: &RuleConfig) -> Result<HttpConditions, String> {
    let globs = |v: &[String]| v.iter().map(|p| super::Glob::new(p)).collect::<Vec<_>>();
    let mut json = Vec::with_capacity(rule.json.len());
    for (pointer, re) in &rule.json {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(format!(
                "json key \"{pointer}\" is not a JSON pointer; write it like \"/model\" or \"/messages/*/content\""
            ));
        }
        let re =
            Regex::new(re).map_err(|e| format!("json \"{pointer}\": not a valid regex: {e}"))?;
        json.push((pointer.clone(), re));
    }
    Ok(HttpConditions {
        methods: rule.methods.clone(),
        paths: globs(&rule.paths),
        json,
        detects: rule.detects.clone(),
        tools: globs(&rule.tools),
        verbs: rule.verbs.clone(),
        resources: globs(&rule.resources),
        namespaces: globs(&rule.namespaces),
    })
}

/// The approval requirement of an `approve` rule; approval settings on any
/// other rule are a mistake worth stopping for.
fn approval_requirement(rule: &RuleConfig) -> Result<Option<Requirement>, String> {
    let has_settings = !rule.approvers.is_empty()
        || rule.approvals.is_some()
        || !rule.approvers_each.is_empty()
        || rule.approval_timeout.is_some();
    if rule.effect != Effect::Approve {
        if has_settings {
            return Err(
                "approvers/approvals/approval_timeout only apply to effect = \"approve\"".into(),
            );
        }
        return Ok(None);
    }
    if rule.approvers.is_empty() && rule.approvers_each.is_empty() {
        return Err("an approve rule needs `approvers` (groups whose members may approve)".into());
    }
    let count = rule.approvals.unwrap_or(1);
    if count == 0 {
        return Err(
            "approvals = 0 would run the statement unreviewed; use effect = \"allow\" instead"
                .into(),
        );
    }
    let timeout = match &rule.approval_timeout {
        Some(t) => crate::duration::parse(t).map_err(|e| format!("approval_timeout: {e}"))?,
        None => DEFAULT_APPROVAL_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err("approval_timeout must be longer than zero".into());
    }
    Ok(Some(Requirement {
        any_of: rule.approvers.clone(),
        count,
        each_of: rule.approvers_each.clone(),
        timeout_secs: timeout.as_secs(),
    }))
}

fn parse_kinds(names: &[String], field: &str) -> Result<Vec<StatementKind>, String> {
    names
        .iter()
        .map(|n| {
            StatementKind::from_name(&n.to_ascii_lowercase()).ok_or_else(|| {
                let known: Vec<&str> = ALL_KINDS
                    .iter()
                    .map(|k| k.as_str())
                    .chain(SHELL_KINDS.iter().map(|k| k.as_str()))
                    .collect();
                format!(
                    "{field} has unknown statement kind \"{n}\"; known kinds: {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// 1-based line number of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    source
        .get(..offset.min(source.len()))
        .map(|s| s.bytes().filter(|&b| b == b'\n').count() + 1)
        .unwrap_or(1)
}

/// A client certificate needs its key (and, for PostgreSQL, TLS).
fn client_cert_pair(conn: &super::ConnectionConfig) -> Result<(), String> {
    let name = &conn.name;
    if conn.client_cert.is_some() != conn.client_key.is_some() {
        return Err(format!(
            "connection \"{name}\": set both client_cert and client_key, or neither"
        ));
    }
    if conn.client_cert.is_some()
        && conn.kind == super::ConnectionKind::Postgres
        && conn.tls != super::TargetTls::Require
    {
        return Err(format!(
            "connection \"{name}\": client_cert is presented over TLS; set tls = \"require\""
        ));
    }
    Ok(())
}

/// HTTP settings only make sense on HTTP connections, and an upstream
/// credential scheme must be one the adapter knows.
fn check_http_fields(conn: &super::ConnectionConfig) -> Result<(), String> {
    let name = &conn.name;
    if !conn.kind.is_http() {
        if !conn.hostnames.is_empty()
            || conn.path_prefix.is_some()
            || conn.base_path.is_some()
            || conn.upstream_auth.is_some()
            || (conn.client_cert.is_some() && conn.kind != super::ConnectionKind::Postgres)
            || (conn.client_key.is_some() && conn.kind != super::ConnectionKind::Postgres)
            || conn.mask_prompts
            || conn.impersonate
        {
            return Err(format!(
                "connection \"{name}\": hostnames, path_prefix, base_path, upstream_auth, client_cert, client_key, mask_prompts and impersonate apply to HTTP connections (type = \"http\", \"openai\" or \"kubernetes\") only (client_cert and client_key also to PostgreSQL)"
            ));
        }
        return client_cert_pair(conn);
    }
    if let Some(prefix) = &conn.path_prefix {
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
            return Err(format!(
                "connection \"{name}\": path_prefix \"{prefix}\" must start with / and not end with one (\"/llm\")"
            ));
        }
    }
    match conn.upstream_auth.as_deref() {
        None | Some("bearer") | Some("none") => {}
        Some(h) if h.strip_prefix("header:").is_some_and(|n| !n.trim().is_empty()) => {}
        Some(other) => {
            return Err(format!(
                "connection \"{name}\": upstream_auth = \"{other}\": use \"bearer\", \"header:NAME\" or \"none\""
            ))
        }
    }
    client_cert_pair(conn)?;
    if conn.impersonate && conn.kind != super::ConnectionKind::Kubernetes {
        return Err(format!(
            "connection \"{name}\": impersonate applies to type = \"kubernetes\" only"
        ));
    }
    if conn.mask_prompts && conn.kind != super::ConnectionKind::Openai {
        return Err(format!(
            "connection \"{name}\": mask_prompts applies to type = \"openai\" only"
        ));
    }
    Ok(())
}

/// SSH connections must pin the target's host key and say how to log in;
/// the SSH-only settings make no sense elsewhere.
fn check_ssh_fields(conn: &super::ConnectionConfig) -> Result<(), String> {
    let name = &conn.name;
    if conn.detect_typed_values
        && !matches!(
            conn.kind,
            super::ConnectionKind::Postgres | super::ConnectionKind::Mysql
        )
    {
        return Err(format!(
            "connection \"{name}\": detect_typed_values applies to type = \"postgres\" and \"mysql\" only"
        ));
    }
    if conn.kind != super::ConnectionKind::Ssh {
        if conn.host_key.is_some()
            || conn.known_hosts.is_some()
            || conn.key_file.is_some()
            || conn.allow_port_forwarding
            || (conn.mask_terminal && conn.kind != super::ConnectionKind::Kubernetes)
        {
            return Err(format!(
                "connection \"{name}\": host_key, known_hosts, key_file and allow_port_forwarding apply to type = \"ssh\" connections only, mask_terminal to \"ssh\" and \"kubernetes\""
            ));
        }
        return Ok(());
    }
    match (&conn.host_key, &conn.known_hosts) {
        (None, None) => return Err(format!(
            "connection \"{name}\": an SSH connection needs the target's host key (host_key = \"ssh-ed25519 AAAA…\" or known_hosts = \"/path\"); gatehouse never trusts a host key on first use"
        )),
        (Some(_), Some(_)) => return Err(format!(
            "connection \"{name}\": set host_key or known_hosts, not both"
        )),
        _ => {}
    }
    if conn.key_file.is_some() && (conn.password_env.is_some() || conn.password_file.is_some()) {
        return Err(format!(
            "connection \"{name}\": set key_file or a password, not both"
        ));
    }
    if conn.key_file.is_none() && conn.password_env.is_none() && conn.password_file.is_none() {
        return Err(format!(
            "connection \"{name}\": an SSH connection needs key_file, password_env or password_file for the gateway's own login"
        ));
    }
    Ok(())
}
