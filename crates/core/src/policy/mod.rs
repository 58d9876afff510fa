//! The authorize and decide stages: who may use a connection, and what
//! happens to each statement.
//!
//! Policy is written in the gateway's TOML file ([`PolicyConfig`]) and
//! compiled once at start-up into a [`Policy`]; every rule is checked then,
//! so a typo stops the gateway with the line it is on instead of silently
//! letting a statement through at run time.

mod compile;
mod connection;
mod functions;
mod glob;
mod masking;
mod rules;

pub use compile::{compile, PolicyError};
pub use connection::{ConnectionConfig, ConnectionKind, Credential, TargetTls};
pub use functions::{keeps_values_in_statement, reads_tables_by_name};
pub use glob::Glob;
pub use masking::{
    ColumnMask, ColumnRule, ColumnRuleConfig, FieldMask, FieldRuleConfig, MaskingConfig,
    StrategyName,
};
pub use rules::{CommandRule, DefaultEffect, Effect, RuleConfig, Unparseable};

use crate::classify::{Classification, StatementFacts};
use crate::identity::Identity;
use crate::verdict::Verdict;
use serde::Deserialize;

/// The policy part of the gateway's configuration file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Named targets the gateway can reach.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    /// Command rules, evaluated in file order; the first match decides.
    #[serde(default)]
    pub rules: Vec<toml::Spanned<RuleConfig>>,
    /// Column rules and content detectors.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// What to do with statements the SQL parser cannot read.
    #[serde(default)]
    pub unparseable: Unparseable,
    /// What happens to a statement that reads (SELECT, SHOW, EXPLAIN, SET,
    /// transaction control) when no rule matches it.
    #[serde(default)]
    pub default_read_effect: DefaultEffect,
    /// What happens to a statement that writes (anything else: INSERT,
    /// UPDATE, DELETE, DDL, COPY FROM, CALL, DO, …) when no rule matches.
    #[serde(default)]
    pub default_write_effect: DefaultEffect,
}

/// Compiled policy: connections, rules and column rules ready to match.
#[derive(Debug)]
pub struct Policy {
    pub(crate) connections: Vec<ConnectionConfig>,
    pub(crate) rules: Vec<CommandRule>,
    pub(crate) column_rules: Vec<ColumnRule>,
    pub(crate) unparseable: Unparseable,
    pub(crate) default_read_effect: DefaultEffect,
    pub(crate) default_write_effect: DefaultEffect,
    /// The masking section as configured (detectors, strategies, key source).
    pub masking: MaskingConfig,
}

/// Why a caller may not open a session on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDenied {
    /// No connection has that name.
    UnknownConnection(String),
    /// The caller is in none of the connection's allowed groups.
    NotInAllowedGroups {
        /// The connection asked for.
        connection: String,
        /// The groups that may use it.
        allowed: Vec<String>,
    },
}

impl std::fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessDenied::UnknownConnection(name) => write!(
                f,
                "no connection named \"{name}\" is configured on this gateway; use the connection name as the database name"
            ),
            AccessDenied::NotInAllowedGroups {
                connection,
                allowed,
            } => write!(
                f,
                "you are not in a group allowed to use connection \"{connection}\" (allowed: {}); ask for time-bound access with `gatehouse access request {connection} --for 1h --reason \"…\"`",
                allowed.join(", ")
            ),
        }
    }
}

impl Policy {
    /// The named connection, if configured.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// All configured connections, in file order.
    pub fn connections(&self) -> &[ConnectionConfig] {
        &self.connections
    }

    /// Authorize stage: may `identity` open a session on `connection`?
    pub fn authorize(
        &self,
        identity: &Identity,
        connection: &str,
    ) -> Result<&ConnectionConfig, AccessDenied> {
        let conn = self
            .connection(connection)
            .ok_or_else(|| AccessDenied::UnknownConnection(connection.to_string()))?;
        if conn.allow_groups.iter().any(|g| identity.in_group(g)) {
            Ok(conn)
        } else {
            Err(AccessDenied::NotInAllowedGroups {
                connection: conn.name.clone(),
                allowed: conn.allow_groups.clone(),
            })
        }
    }

    /// Decide stage for one whole command: the strictest verdict of its statements.
    pub fn decide(
        &self,
        identity: &Identity,
        connection: &str,
        sql: &str,
        classification: &Classification,
    ) -> Verdict {
        let mut verdict = Verdict::Allow { rule: None };
        for facts in &classification.statements {
            let one = self.decide_statement(identity, connection, sql, facts, classification);
            verdict = verdict.stricter(one);
        }
        verdict
    }

    /// Decide stage for one statement: first matching rule, then the
    /// unparseable policy; the stricter of the two wins.
    pub fn decide_statement(
        &self,
        identity: &Identity,
        connection: &str,
        sql: &str,
        facts: &StatementFacts,
        classification: &Classification,
    ) -> Verdict {
        let mut by_rule = self
            .rules
            .iter()
            .find(|r| r.matches(identity, connection, sql, facts))
            .map(CommandRule::verdict)
            .unwrap_or_else(|| self.default_verdict(facts));
        if let Some(block) = self.copies_masked_columns(identity, connection, facts) {
            by_rule = by_rule.stricter(block);
        }
        if let Some(block) = self.reads_value_catalogs(identity, connection, facts) {
            by_rule = by_rule.stricter(block);
        }
        if let Some(block) = self.reads_large_objects(identity, connection, facts) {
            by_rule = by_rule.stricter(block);
        }
        if let Some(column) = facts
            .computed_comparisons
            .iter()
            .find(|c| masking::covers_name(&self.column_rules, identity, connection, c))
        {
            by_rule = by_rule.stricter(Verdict::Block {
                rule: "masked-columns-stay-masked".into(),
                message: format!(
                    "{column} is masked for you, and comparing it with a computed value (a function of it, another expression, a generated series) can spell it out row by row; compare it only with a literal or another column"
                ),
            });
        }
        if facts.parsed || self.unparseable == Unparseable::Rules {
            return by_rule;
        }
        let reason = classification
            .parse_error
            .as_deref()
            .unwrap_or("the SQL parser could not read it");
        by_rule.stricter(Verdict::Block {
            rule: "unparseable-statement".to_string(),
            message: format!(
                "gatehouse could not parse this {} statement ({reason}), so it is blocked; rewrite it or ask an administrator for a rule that allows it",
                facts.keyword
            ),
        })
    }

    /// The verdict for a statement no rule matches: the policy's default
    /// for reads or for writes. Anything that is not plainly a read counts
    /// as a write (fail closed).
    fn default_verdict(&self, facts: &StatementFacts) -> Verdict {
        use crate::classify::{CopyDirection, StatementKind as K};
        let read = match facts.kind {
            K::Select | K::Show | K::Set | K::Transaction | K::Deallocate | K::Prepare => true,
            // What EXPLAIN and EXECUTE run is judged as its own statement.
            K::Explain | K::Execute => true,
            K::Copy => facts.copy_direction == Some(CopyDirection::Out),
            _ => false,
        } && facts.tables_written.is_empty();
        let (effect, what, key) = if read {
            (self.default_read_effect, "reads", "default_read_effect")
        } else {
            (self.default_write_effect, "writes", "default_write_effect")
        };
        match effect {
            DefaultEffect::Allow => Verdict::Allow { rule: None },
            DefaultEffect::Block => Verdict::Block {
                rule: format!("default-{what}"),
                message: format!(
                    "no rule allows this {} for you, and this gateway refuses {what} no rule allows ({key} = \"block\")",
                    facts.keyword
                ),
            },
        }
    }

    /// The server's own catalogs that hold sample values of every column
    /// (planner statistics: most common values, histogram bounds, MariaDB's
    /// min/max per column) bypass column rules: refused to a caller with
    /// column rules on the connection.
    fn reads_value_catalogs(
        &self,
        identity: &Identity,
        connection: &str,
        facts: &StatementFacts,
    ) -> Option<Verdict> {
        const VALUE_CATALOGS: &[&str] = &[
            "pg_stats",
            "pg_statistic",
            "pg_stats_ext",
            "pg_stats_ext_exprs",
            "pg_statistic_ext_data",
            "column_stats",
            "column_statistics",
            // Other sessions' statements, literals and all.
            "pg_stat_activity",
            "pg_stat_statements",
            "processlist",
            "events_statements_current",
            "events_statements_history",
            "events_statements_history_long",
        ];
        let source = if facts.keyword.starts_with("SHOW PROCESSLIST")
            || facts.keyword.starts_with("SHOW FULL PROCESSLIST")
        {
            "the process list (other sessions' statements)"
        } else {
            facts
                .tables_read
                .iter()
                .find(|t| {
                    let name = t.rsplit('.').next().unwrap_or(t).trim_matches(['"', '`']);
                    VALUE_CATALOGS.iter().any(|c| c.eq_ignore_ascii_case(name))
                })
                .or_else(|| facts.functions.iter().find(|f| reads_tables_by_name(f)))?
        };
        if !self.masks_columns_for(identity, connection) {
            return None;
        }
        Some(Verdict::Block {
            rule: "masked-columns-stay-masked".into(),
            message: format!(
                "{source} reads values of columns no column rule can follow (planner statistics, other sessions' statements, or SQL given as text), and column rules apply to you here"
            ),
        })
    }

    /// Large-object data (`loread`, `lo_get`, and libpq's `lo_read` and
    /// `lo_export`, which call `loread`) comes back in chunks of bytes no
    /// column rule can follow and no detector can read whole: refused to a
    /// caller column rules apply to on this connection (a policy lets a
    /// group read it whole by exempting it from the column rules).
    fn reads_large_objects(
        &self,
        identity: &Identity,
        connection: &str,
        facts: &StatementFacts,
    ) -> Option<Verdict> {
        let function = facts
            .functions
            .iter()
            .find(|f| crate::classify::large_objects::reads_data(f))?;
        if !self.masks_columns_for(identity, connection) {
            return None;
        }
        Some(Verdict::Block {
            rule: "masked-columns-stay-masked".into(),
            message: format!(
                "{function}() returns large-object data, which gatehouse cannot mask, and column rules apply to you here"
            ),
        })
    }

    /// Masking applies to what comes back to the client: a masked value may
    /// not be moved into anything that outlives the statement (another
    /// table, a view, a session setting or variable, a notification, a
    /// lock, another column of the same table) where masking could not
    /// follow it. Only a column rule that does not apply to the caller
    /// lets it through. Refused with rule `masked-columns-stay-masked`:
    ///
    /// - a write (or SET) that reads a masked table and writes elsewhere;
    /// - a statement touching a masked table that calls a function not
    ///   known to keep its values within the statement
    ///   ([`keeps_values_in_statement`]), or assigns a variable;
    /// - a column write whose value derives from a masked column, unless
    ///   the target column is masked the same way.
    fn copies_masked_columns(
        &self,
        identity: &Identity,
        connection: &str,
        facts: &StatementFacts,
    ) -> Option<Verdict> {
        use crate::classify::{CopyDirection, StatementKind as K};
        let block = |message: String| {
            Some(Verdict::Block {
                rule: "masked-columns-stay-masked".into(),
                message,
            })
        };
        let writes = matches!(
            facts.kind,
            K::Insert | K::Update | K::Delete | K::Merge | K::Ddl | K::Set
        ) || (facts.kind == K::Copy
            && facts.copy_direction == Some(CopyDirection::In));
        let elsewhere: Vec<&String> = facts
            .tables_read
            .iter()
            .filter(|t| !facts.tables_written.contains(*t))
            .collect();
        if writes
            && !elsewhere.is_empty()
            && self.column_rules_touch(identity, connection, elsewhere.iter().copied())
        {
            return block(format!(
                "this {} reads {}, whose columns are masked for you, and writes the result elsewhere, where masking could not follow it; read the rows instead",
                facts.keyword,
                elsewhere.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if facts.kind == K::Execute
            && self.column_rules_touch(identity, connection, facts.tables_read.iter())
        {
            // `EXECUTE p((SELECT ssn FROM customers …))`: the prepared body
            // may store its parameters anywhere.
            return block(format!(
                "this EXECUTE passes values read from {}, whose columns are masked for you, to a prepared statement that could keep them; pass literal values instead",
                facts.tables_read.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
            ));
        }
        let outside: Vec<&String> = facts
            .functions
            .iter()
            .filter(|f| !keeps_values_in_statement(f))
            .collect();
        if !outside.is_empty() || facts.assigns_variable {
            let touched: Vec<&String> = facts
                .tables_read
                .iter()
                .chain(facts.tables_written.iter())
                .filter(|t| self.column_rules_touch(identity, connection, std::iter::once(*t)))
                .collect();
            if let Some(first) = touched.first() {
                let what = if outside.is_empty() {
                    "assigns a variable, which would keep their values after the statement"
                        .to_string()
                } else {
                    format!(
                        "calls {}, which gatehouse does not know to keep their values within the statement",
                        outside.iter().map(|f| format!("{f}()")).collect::<Vec<_>>().join(", ")
                    )
                };
                return block(format!(
                    "this {} reads {first}, whose columns are masked for you, and {what}; select the columns without it, or ask for the function to be reviewed",
                    facts.keyword
                ));
            }
        }
        let rules = &self.column_rules;
        for w in &facts.column_writes {
            for s in &w.sources {
                let Some(mask) =
                    masking::mask_of(rules, identity, connection, &s.tables, &s.column)
                else {
                    continue;
                };
                let same = !w.tables.is_empty()
                    && if w.column == "*" {
                        // Whole rows of a renamed table keep their columns:
                        // the two names must be masked alike, column for
                        // column. (An INSERT without a column list maps by
                        // position, which the gateway cannot check.)
                        facts.kind == crate::classify::StatementKind::Ddl
                            && s.tables.first().is_some_and(|first| {
                                let source =
                                    masking::table_masking(rules, identity, connection, first);
                                s.tables.iter().chain(&w.tables).all(|t| {
                                    masking::table_masking(rules, identity, connection, t) == source
                                })
                            })
                    } else {
                        w.tables.iter().all(|t| {
                            masking::mask_of(
                                rules,
                                identity,
                                connection,
                                std::slice::from_ref(t),
                                &w.column,
                            )
                            .as_ref()
                                == Some(&mask)
                        })
                    };
                if !same {
                    let target = match (w.tables.first(), w.column.as_str()) {
                        (Some(t), "*") => format!("{t} (renamed or whole rows)"),
                        (Some(t), c) => format!("{t}.{c}"),
                        (None, c) => c.to_string(),
                    };
                    let source = match s.tables.first() {
                        Some(t) => format!("{t}.{}", s.column),
                        None => s.column.clone(),
                    };
                    return block(format!(
                        "this {} writes a value derived from {source}, which is masked for you (rule {}), into {target}, which is not masked the same way; masking could not follow it there",
                        facts.keyword, mask.rule
                    ));
                }
            }
        }
        None
    }

    /// Decide stage for a shell command (SSH): the first rule that matches
    /// it (see [`CommandRule::matches_shell`]) decides; no match allows.
    pub fn decide_shell(
        &self,
        identity: &Identity,
        connection: &str,
        text: &str,
        facts: &crate::classify::shell::ShellFacts,
    ) -> Verdict {
        self.rules
            .iter()
            .find(|r| r.matches_shell(identity, connection, text, facts))
            .map(CommandRule::verdict)
            .unwrap_or(Verdict::Allow { rule: None })
    }

    /// Decide stage for an HTTP request: the first rule that matches it
    /// (see [`CommandRule::matches_http`]) decides; no match allows.
    pub fn decide_http(
        &self,
        identity: &Identity,
        connection: &str,
        facts: &crate::classify::http::HttpFacts,
    ) -> Verdict {
        per_tool(facts, |f| {
            self.rules
                .iter()
                .find(|r| r.matches_http(identity, connection, f))
                .map(CommandRule::verdict)
                .unwrap_or(Verdict::Allow { rule: None })
        })
    }

    /// Decide stage for the tool calls a model makes in its answer: only
    /// rules that name `tools` apply (a rule about the request itself
    /// already had its say), first match decides, no match allows.
    pub fn decide_tool_calls(
        &self,
        identity: &Identity,
        connection: &str,
        facts: &crate::classify::http::HttpFacts,
    ) -> Verdict {
        per_tool(facts, |f| {
            self.rules
                .iter()
                .filter(|r| r.names_tools())
                .find(|r| r.matches_http(identity, connection, f))
                .map(CommandRule::verdict)
                .unwrap_or(Verdict::Allow { rule: None })
        })
    }

    /// Whether any rule about tools could apply on `connection`; answers
    /// there must be readable enough to find their tool calls.
    pub fn tool_rules_apply(&self, connection: &str) -> bool {
        self.rules.iter().any(|r| {
            r.names_tools()
                && (r.connections.is_empty() || r.connections.iter().any(|c| c == connection))
        })
    }

    /// Mask stage plan for an HTTP response: the JSON fields masked whole
    /// for `identity` on `connection`.
    pub fn field_masks(&self, identity: &Identity, connection: &str) -> Vec<FieldMask> {
        self.masking
            .fields
            .iter()
            .flat_map(|f| f.masks_for(identity, connection))
            .collect()
    }

    /// Mask stage plan: which result columns of `facts` are masked, and how,
    /// given the column names the target reported.
    pub fn column_masks(
        &self,
        identity: &Identity,
        connection: &str,
        facts: Option<&StatementFacts>,
        field_names: &[&str],
    ) -> Vec<Option<ColumnMask>> {
        masking::plan(&self.column_rules, identity, connection, facts, field_names)
    }

    /// How a column rule masks values of a column named `column` (any
    /// table; `*` for any column) for `identity` on `connection`: what the
    /// audit trail does to a literal compared with that column.
    pub fn trail_column_mask(
        &self,
        identity: &Identity,
        connection: &str,
        column: &str,
    ) -> Option<ColumnMask> {
        masking::by_column_name(&self.column_rules, identity, connection, column)
    }

    /// Whether any column rule active for this caller could cover a column
    /// of these tables; used to fail closed when result columns cannot be
    /// traced.
    pub fn column_rules_touch<'a>(
        &self,
        identity: &Identity,
        connection: &str,
        mut tables: impl Iterator<Item = &'a String>,
    ) -> bool {
        let tables: Vec<String> = tables.by_ref().cloned().collect();
        masking::touches(&self.column_rules, identity, connection, &tables)
    }

    /// Whether any column rule masks something for this caller on this
    /// connection: text the server sends that no statement's columns
    /// describe (a notification's payload) is then withheld.
    pub fn masks_columns_for(&self, identity: &Identity, connection: &str) -> bool {
        self.column_rules
            .iter()
            .any(|r| r.applies_to(identity, connection))
    }

    /// Whether content detectors apply to this caller's results.
    pub fn detectors_apply(&self, identity: &Identity) -> bool {
        !self
            .masking
            .exempt_groups
            .iter()
            .any(|g| identity.in_group(g))
    }

    /// Which values of this caller's SQL results the detectors read on
    /// `connection`.
    pub fn detection(&self, identity: &Identity, connection: &str) -> crate::mask::Detection {
        use crate::mask::Detection;
        if !self.detectors_apply(identity) {
            Detection::Off
        } else if self
            .connection(connection)
            .is_some_and(|c| c.detect_typed_values)
        {
            Detection::TextAndTyped
        } else {
            Detection::Text
        }
    }
}

/// Decide a request that names several tools one tool at a time and keep
/// the strictest verdict, so an allow rule for one tool cannot carry
/// another past the rule that blocks it.
fn per_tool(
    facts: &crate::classify::http::HttpFacts,
    decide: impl Fn(&crate::classify::http::HttpFacts) -> Verdict,
) -> Verdict {
    if facts.tools.len() <= 1 {
        return decide(facts);
    }
    let mut verdict = Verdict::Allow { rule: None };
    for tool in &facts.tools {
        let mut one = facts.clone();
        one.tools = vec![tool.clone()];
        verdict = verdict.stricter(decide(&one));
    }
    verdict
}

#[cfg(test)]
mod tests;
