//! Command rules: groups × connection × statement kind × tables × pattern → effect.

use super::glob::Glob;
use crate::approval::Requirement;
use crate::classify::http::{json_pointer_all, json_text, HttpFacts};
use crate::classify::shell::{ShellFacts, ShellKind};
use crate::classify::{CopyDirection, StatementFacts, StatementKind};
use crate::identity::Identity;
use crate::mask::EntityType;
use crate::verdict::Verdict;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Forward the statement.
    Allow,
    /// Refuse it with the rule's message.
    Block,
    /// Hold it for a person's approval.
    Approve,
}

/// What to do with statements the SQL parser cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unparseable {
    /// Block them (the default: fail closed).
    #[default]
    Block,
    /// Decide by the rules alone, using the keyword fallback's facts.
    Rules,
}

/// What happens to a SQL statement no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultEffect {
    /// It runs.
    #[default]
    Allow,
    /// It is refused, naming the default.
    Block,
}

/// One command rule as written in the configuration file.
///
/// Every condition that is present must hold; absent conditions match
/// anything. Rules are tried in file order and the first match decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name, shown to the client and recorded in the audit trail.
    pub name: String,
    /// What happens when the rule matches.
    pub effect: Effect,
    /// Message for the client when blocked or held.
    pub message: Option<String>,
    /// The caller must be in one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The caller must be in none of these groups.
    #[serde(default)]
    pub except_groups: Vec<String>,
    /// The session's connection must be one of these.
    #[serde(default)]
    pub connections: Vec<String>,
    /// The statement's kind must be one of these.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The statement's kind must be none of these ("everything but reads").
    #[serde(default)]
    pub not_kinds: Vec<String>,
    /// The statement's leading keywords must start with one of these
    /// (`"DROP DATABASE"`, `"ALTER SYSTEM"`).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A table read or written must match one of these patterns.
    #[serde(default)]
    pub tables: Vec<String>,
    /// A regular expression the command text must match.
    pub pattern: Option<String>,
    /// Only UPDATE/DELETE/MERGE statements without a WHERE clause.
    #[serde(default)]
    pub without_where: bool,
    /// Only SELECT statements without a LIMIT.
    #[serde(default)]
    pub without_limit: bool,
    /// Only copies in this direction (`"in"` or `"out"`).
    pub copy: Option<String>,
    /// With `effect = "approve"`: an approver must be in one of these groups.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// With `effect = "approve"`: how many distinct approvers (default 1).
    pub approvals: Option<u32>,
    /// With `effect = "approve"`: also one approver from each of these groups.
    #[serde(default)]
    pub approvers_each: Vec<String>,
    /// With `effect = "approve"`: how long a request waits (`"15m"`).
    pub approval_timeout: Option<String>,
    /// HTTP: the request method must be one of these.
    #[serde(default)]
    pub methods: Vec<String>,
    /// HTTP: the path below the connection's prefix must match one of
    /// these patterns (`/v1/*`, `/transfers/*`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// HTTP: JSON body fields, by pointer (`*` for every element), and a
    /// regular expression one of their values must match.
    #[serde(default)]
    pub json: BTreeMap<String, String>,
    /// HTTP: the request's text (an LLM prompt) must hold one of these
    /// entity types (`ssn`, `card_number`, …).
    #[serde(default)]
    pub detects: Vec<EntityType>,
    /// HTTP: a tool or function the request offers, forces or has called
    /// must be named like one of these.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Kubernetes: the request's verb must be one of these (`delete`).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Kubernetes: the resource, with its subresource, must match one of
    /// these (`namespaces`, `pods/exec`), as in RBAC.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Kubernetes: the namespace must match one of these patterns.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// A rule compiled for matching.
#[derive(Debug)]
pub struct CommandRule {
    pub(crate) name: String,
    pub(crate) effect: Effect,
    pub(crate) message: String,
    pub(crate) groups: Vec<String>,
    pub(crate) except_groups: Vec<String>,
    pub(crate) connections: Vec<String>,
    pub(crate) kinds: Vec<StatementKind>,
    pub(crate) shell_kinds: Vec<ShellKind>,
    pub(crate) not_kinds: Vec<StatementKind>,
    pub(crate) keywords: Vec<String>,
    pub(crate) tables: Vec<Glob>,
    pub(crate) pattern: Option<Regex>,
    pub(crate) without_where: bool,
    pub(crate) without_limit: bool,
    pub(crate) copy: Option<CopyDirection>,
    pub(crate) requirement: Option<Requirement>,
    pub(crate) http: HttpConditions,
}

/// A rule's HTTP-only conditions, compiled.
#[derive(Debug, Default)]
pub(crate) struct HttpConditions {
    pub(crate) methods: Vec<String>,
    pub(crate) paths: Vec<Glob>,
    pub(crate) json: Vec<(String, Regex)>,
    pub(crate) detects: Vec<EntityType>,
    pub(crate) tools: Vec<Glob>,
    pub(crate) verbs: Vec<String>,
    pub(crate) resources: Vec<Glob>,
    pub(crate) namespaces: Vec<Glob>,
}

impl HttpConditions {
    /// Whether any HTTP condition is set; such a rule never matches SQL or
    /// shell commands, which have none of these facts.
    fn any(&self) -> bool {
        !(self.methods.is_empty()
            && self.paths.is_empty()
            && self.json.is_empty()
            && self.detects.is_empty()
            && self.tools.is_empty()
            && self.verbs.is_empty()
            && self.resources.is_empty()
            && self.namespaces.is_empty())
    }

    /// Whether the request meets every HTTP condition. `fail_closed` (a
    /// block or approve rule) makes field conditions match a body that
    /// could not be read as JSON.
    fn hold(&self, facts: &HttpFacts, fail_closed: bool) -> bool {
        let any_glob = |globs: &[Glob], value: Option<&str>| {
            globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
        };
        (self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&facts.method)))
            && any_glob(&self.paths, Some(&facts.path))
            && self
                .json
                .iter()
                .all(|(pointer, re)| match facts.json.as_ref() {
                    Some(body) => json_pointer_all(body, pointer)
                        .into_iter()
                        .any(|v| re.is_match(&json_text(v))),
                    None => fail_closed && facts.opaque_body,
                })
            && (self.detects.is_empty() || self.detects.iter().any(|e| facts.detected.contains(e)))
            && (self.tools.is_empty()
                || facts
                    .tools
                    .iter()
                    .any(|t| self.tools.iter().any(|g| g.matches(t))))
            && (self.verbs.is_empty()
                || facts
                    .verb
                    .as_deref()
                    .is_some_and(|v| self.verbs.iter().any(|w| w.eq_ignore_ascii_case(v))))
            && any_glob(&self.resources, facts.resource.as_deref())
            && any_glob(&self.namespaces, facts.namespace.as_deref())
    }
}

impl CommandRule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this rule applies to one statement of `identity`'s command.
    pub fn matches(
        &self,
        identity: &Identity,
        connection: &str,
        sql: &str,
        facts: &StatementFacts,
    ) -> bool {
        !self.http.any()
            && (self.groups.is_empty() || self.groups.iter().any(|g| identity.in_group(g)))
            && !self.except_groups.iter().any(|g| identity.in_group(g))
            && (self.connections.is_empty() || self.connections.iter().any(|c| c == connection))
            && (self.kinds.is_empty() || self.kinds.contains(&facts.kind))
            && (self.shell_kinds.is_empty() || !self.kinds.is_empty())
            && !self.not_kinds.contains(&facts.kind)
            && (self.keywords.is_empty()
                || self
                    .keywords
                    .iter()
                    .any(|k| keyword_prefix(&facts.keyword, k)))
            && (self.tables.is_empty() || self.touches_tables(facts))
            && self.pattern.as_ref().is_none_or(|p| p.is_match(sql))
            && (!self.without_where || written_without_where(facts))
            && (!self.without_limit || (facts.kind == StatementKind::Select && !facts.has_limit))
            && self.copy.is_none_or(|d| facts.copy_direction == Some(d))
    }

    /// Whether this rule applies to a shell command (SSH exec, interactive
    /// line, file transfer). Rules with SQL-only conditions (SQL kinds,
    /// `not_kinds`, `tables`, `without_where`, `without_limit`, `copy`)
    /// never match shell commands; `keywords` match the leading words.
    pub fn matches_shell(
        &self,
        identity: &Identity,
        connection: &str,
        text: &str,
        facts: &ShellFacts,
    ) -> bool {
        let sql_only = !self.kinds.is_empty()
            || !self.not_kinds.is_empty()
            || !self.tables.is_empty()
            || self.without_where
            || self.without_limit
            || self.copy.is_some();
        !sql_only
            && !self.http.any()
            && (self.groups.is_empty() || self.groups.iter().any(|g| identity.in_group(g)))
            && !self.except_groups.iter().any(|g| identity.in_group(g))
            && (self.connections.is_empty() || self.connections.iter().any(|c| c == connection))
            // A binary download is passed only by a rule that names the
            // kind: a rule about downloads in general says nothing about
            // content the gateway cannot mask.
            && (if facts.kind == crate::classify::shell::ShellKind::Binary {
                self.shell_kinds.contains(&facts.kind)
            } else {
                self.shell_kinds.is_empty() || self.shell_kinds.contains(&facts.kind)
            })
            && (self.keywords.is_empty()
                || self.keywords.iter().any(|k| {
                    facts.commands.iter().any(|c| keyword_prefix(c, k))
                        || keyword_prefix(&facts.words.join(" "), k)
                })
                // An exec the gateway cannot read off its face is treated as
                // matching block and approve rules: fail closed. (Typed
                // lines are a guard rail only; see the README.)
                || (facts.opaque
                    && facts.kind == crate::classify::shell::ShellKind::Exec
                    && self.effect != Effect::Allow))
            // Patterns see the line as typed and each simple command with its
            // quotes and path removed (`'rm' -rf`, `/bin/rm -rf`).
            && self.pattern.as_ref().is_none_or(|p| {
                p.is_match(text) || facts.commands.iter().any(|c| p.is_match(c))
            })
    }

    /// Whether this rule applies to an HTTP request. Rules with SQL or
    /// shell conditions (`kinds`, `not_kinds`, `keywords`, `tables`,
    /// `without_where`, `without_limit`, `copy`) never match requests;
    /// `pattern` sees the request line and the request's text.
    pub fn matches_http(&self, identity: &Identity, connection: &str, facts: &HttpFacts) -> bool {
        let other_protocol = !self.kinds.is_empty()
            || !self.shell_kinds.is_empty()
            || !self.not_kinds.is_empty()
            || !self.keywords.is_empty()
            || !self.tables.is_empty()
            || self.without_where
            || self.without_limit
            || self.copy.is_some();
        !other_protocol
            && (self.groups.is_empty() || self.groups.iter().any(|g| identity.in_group(g)))
            && !self.except_groups.iter().any(|g| identity.in_group(g))
            && (self.connections.is_empty() || self.connections.iter().any(|c| c == connection))
            && self.http.hold(facts, self.effect != Effect::Allow)
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&facts.request_line()) || p.is_match(&facts.text))
    }

    /// Whether the rule names tools (and so also judges a model's own
    /// tool calls, not only requests).
    pub fn names_tools(&self) -> bool {
        !self.http.tools.is_empty()
    }

    fn touches_tables(&self, facts: &StatementFacts) -> bool {
        facts
            .tables_read
            .iter()
            .chain(facts.tables_written.iter())
            .any(|t| self.tables.iter().any(|g| g.matches_table(t)))
    }

    /// The verdict this rule gives when it matches.
    pub fn verdict(&self) -> Verdict {
        match self.effect {
            Effect::Allow => Verdict::Allow {
                rule: Some(self.name.clone()),
            },
            Effect::Block => Verdict::Block {
                rule: self.name.clone(),
                message: self.message.clone(),
            },
            Effect::Approve => Verdict::Hold {
                rule: self.name.clone(),
                message: self.message.clone(),
                requirement: self.requirement.clone().unwrap_or_else(|| Requirement {
                    any_of: Vec::new(),
                    count: 1,
                    each_of: Vec::new(),
                    timeout_secs: crate::approval::DEFAULT_APPROVAL_TIMEOUT.as_secs(),
                }),
            },
        }
    }
}

/// `"DROP DATABASE IF EXISTS"` starts with `"DROP DATABASE"`, word-wise.
fn keyword_prefix(keyword: &str, prefix: &str) -> bool {
    let mut words = keyword.split_whitespace();
    prefix
        .split_whitespace()
        .all(|p| words.next().is_some_and(|w| w.eq_ignore_ascii_case(p)))
}

/// An UPDATE, DELETE or MERGE written without a WHERE clause: what a
/// `without_where` rule guards against (a forgotten condition). What DDL
/// does to every row (`ALTER … TYPE`, `DROP COLUMN`, `TRUNCATE`) is
/// deliberate; it meets rules on kinds and tables instead.
fn written_without_where(facts: &StatementFacts) -> bool {
    matches!(
        facts.kind,
        StatementKind::Update | StatementKind::Delete | StatementKind::Merge
    ) && !facts.has_where
        && ["UPDATE", "DELETE", "MERGE", "WITH"]
            .iter()
            .any(|k| facts.keyword.starts_with(k))
}

#[cfg(test)]
mod tests {
    use super::keyword_prefix;

    #[test]
    fn keyword_prefix_is_word_wise() {
        assert!(keyword_prefix("DROP DATABASE", "drop database"));
        assert!(keyword_prefix("ALTER SYSTEM", "ALTER  SYSTEM"));
        assert!(!keyword_prefix("DROP DATABASES", "DROP DATABASE"));
        assert!(!keyword_prefix("DROP", "DROP DATABASE"));
    }
}
