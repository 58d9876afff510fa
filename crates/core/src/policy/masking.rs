//! Column rules and their application to a statement's result columns.
//!
//! A column rule names base-table columns (`customers.ssn`, `*.card_number`).
//! The classifier traces every result column back to the base columns it is
//! computed from, so an alias, function, cast, concatenation, subquery or CTE
//! over a masked column is masked too. Where the trace is incomplete the plan
//! errs towards masking.

use super::glob::Glob;
use crate::classify::{OutputColumn, StatementFacts};
use crate::identity::Identity;
use crate::mask::{EntityType, Strategy};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// The `[masking]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Content detectors run on every text value (`ssn`, `card_number`,
    /// `iban`, `aba_routing`, `email`, `phone`).
    #[serde(default = "default_detectors")]
    pub detectors: Vec<EntityType>,
    /// Strategy per detected entity type.
    #[serde(default)]
    pub strategies: HashMap<EntityType, Strategy>,
    /// Strategy for entity types without one.
    #[serde(default = "default_strategy")]
    pub default_strategy: Strategy,
    /// Environment variable holding the tokenization key.
    pub tokenize_key_env: Option<String>,
    /// File holding the tokenization key (created with a random key if missing).
    pub tokenize_key_file: Option<PathBuf>,
    /// Groups whose members see detector findings unmasked.
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// Column rules.
    #[serde(default)]
    pub columns: Vec<ColumnRuleConfig>,
    /// JSON field rules for HTTP responses.
    #[serde(default)]
    pub fields: Vec<FieldRuleConfig>,
}

/// One `[[masking.fields]]` entry: JSON response fields of HTTP connections
/// masked whole, found by pointer (`/customers/*/ssn`), the way column
/// rules mask SQL result columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRuleConfig {
    /// Name recorded with each masked value's count.
    pub name: String,
    /// JSON pointers, with `*` for every array element or object member.
    pub paths: Vec<String>,
    /// How matching values are masked: `redact`, `partial` or `tokenize`.
    pub strategy: StrategyName,
    /// For `partial`: how many trailing characters stay visible (default 4).
    pub keep_last: Option<usize>,
    /// Entity type to count the masked values under (default `column`).
    pub entity: Option<EntityType>,
    /// Only on these connections (default: all HTTP connections).
    #[serde(default)]
    pub connections: Vec<String>,
    /// Members of these groups see the field unmasked.
    #[serde(default)]
    pub except_groups: Vec<String>,
}

/// A JSON field to mask in one HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMask {
    /// JSON pointer, `*` for every element.
    pub path: String,
    /// How, and under which rule.
    pub mask: ColumnMask,
}

impl FieldRuleConfig {
    /// The field masks this rule asks for `identity` on `connection`.
    pub fn masks_for(&self, identity: &Identity, connection: &str) -> Vec<FieldMask> {
        let applies = (self.connections.is_empty()
            || self.connections.iter().any(|c| c == connection))
            && !self.except_groups.iter().any(|g| identity.in_group(g));
        if !applies {
            return Vec::new();
        }
        let strategy = self.strategy.with(self.keep_last);
        self.paths
            .iter()
            .map(|p| FieldMask {
                path: p.clone(),
                mask: ColumnMask {
                    rule: self.name.clone(),
                    strategy: strategy.clone(),
                    entity: self.entity.unwrap_or(EntityType::Column),
                },
            })
            .collect()
    }
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            detectors: default_detectors(),
            strategies: HashMap::new(),
            default_strategy: default_strategy(),
            tokenize_key_env: None,
            tokenize_key_file: None,
            exempt_groups: Vec::new(),
            columns: Vec::new(),
            fields: Vec::new(),
        }
    }
}

fn default_detectors() -> Vec<EntityType> {
    crate::mask::DETECTABLE.to_vec()
}

fn default_strategy() -> Strategy {
    Strategy::Redact
}

/// One `[[masking.columns]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRuleConfig {
    /// Name recorded with each masked value's count.
    pub name: String,
    /// Column patterns: `table.column`, `*.column`, or `column` (any table).
    pub columns: Vec<String>,
    /// How matching values are masked: `redact`, `partial` or `tokenize`.
    pub strategy: StrategyName,
    /// For `partial`: how many trailing characters stay visible (default 4).
    pub keep_last: Option<usize>,
    /// Entity type to count the masked values under (default `column`).
    pub entity: Option<EntityType>,
    /// Only on these connections (default: all).
    #[serde(default)]
    pub connections: Vec<String>,
    /// Members of these groups see the column unmasked.
    #[serde(default)]
    pub except_groups: Vec<String>,
}

/// A strategy's name as written in a column rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// See [`Strategy::Redact`].
    Redact,
    /// See [`Strategy::Partial`].
    Partial,
    /// See [`Strategy::Tokenize`].
    Tokenize,
}

impl ColumnRuleConfig {
    /// The strategy with its parameters.
    pub fn strategy(&self) -> Strategy {
        self.strategy.with(self.keep_last)
    }
}

impl StrategyName {
    /// The strategy with its parameter (`partial` keeps 4 by default).
    pub fn with(self, keep_last: Option<usize>) -> Strategy {
        match self {
            StrategyName::Redact => Strategy::Redact,
            StrategyName::Partial => Strategy::Partial {
                keep_last: keep_last.unwrap_or(4),
            },
            StrategyName::Tokenize => Strategy::Tokenize,
        }
    }
}

/// A compiled column rule.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub(crate) name: String,
    pub(crate) patterns: Vec<(Option<Glob>, Glob)>,
    pub(crate) strategy: Strategy,
    pub(crate) entity: EntityType,
    pub(crate) connections: Vec<String>,
    pub(crate) except_groups: Vec<String>,
}

/// What to do with one result column: mask every value with this strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMask {
    /// The rule that asked for it.
    pub rule: String,
    /// How values are masked.
    pub strategy: Strategy,
    /// Entity type the masked values are counted under.
    pub entity: EntityType,
}

impl ColumnMask {
    /// A mask that redacts whole values, for plans that must fail closed
    /// (columns that cannot be traced).
    pub fn redact_all(rule: &str) -> ColumnMask {
        ColumnMask {
            rule: rule.to_string(),
            strategy: Strategy::Redact,
            entity: EntityType::Column,
        }
    }
}

impl ColumnRule {
    pub(crate) fn compile(cfg: &ColumnRuleConfig) -> ColumnRule {
        let patterns = cfg
            .columns
            .iter()
            .map(|p| match p.rsplit_once('.') {
                Some((table, column)) => (Some(Glob::new(table)), Glob::new(column)),
                None => (None, Glob::new(p)),
            })
            .collect();
        ColumnRule {
            name: cfg.name.clone(),
            patterns,
            strategy: cfg.strategy(),
            entity: cfg.entity.unwrap_or(EntityType::Column),
            connections: cfg.connections.clone(),
            except_groups: cfg.except_groups.clone(),
        }
    }

    pub(crate) fn applies_to(&self, identity: &Identity, connection: &str) -> bool {
        (self.connections.is_empty() || self.connections.iter().any(|c| c == connection))
            && !self.except_groups.iter().any(|g| identity.in_group(g))
    }

    /// Whether column `column` of one of `tables` is covered. An empty
    /// `tables` (table unknown) matches on the column name alone; the column
    /// `*` (a whole row) is covered when any covered column may be in it.
    fn covers(&self, tables: &[String], column: &str) -> bool {
        self.patterns.iter().any(|(table_glob, column_glob)| {
            (column == "*" || column_glob.matches(column))
                && match table_glob {
                    None => true,
                    Some(g) => {
                        tables.is_empty()
                            || g.as_str() == "*"
                            || tables.iter().any(|t| g.matches_table(t))
                    }
                }
        })
    }

    fn mask(&self) -> ColumnMask {
        ColumnMask {
            rule: self.name.clone(),
            strategy: self.strategy.clone(),
            entity: self.entity,
        }
    }
}

/// Whether an active rule covers a column of this name in any table.
pub(crate) fn covers_name(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    name: &str,
) -> bool {
    rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .any(|r| r.covers(&[], name))
}

/// Whether an active rule could cover some column of `tables`.
pub(crate) fn touches(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    tables: &[String],
) -> bool {
    rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .any(|r| {
            r.patterns.iter().any(|(table_glob, column)| {
                tables.iter().any(|t| pattern_covers(table_glob, column, t))
            })
        })
}

/// Whether a rule's pattern may cover a column of `table`. Catalog
/// metadata holds no column values, so only a pattern that names the
/// catalog covers it; a table whose columns are known is covered only by a
/// pattern matching one of them. One answer for every check (what a
/// statement touches, whether two tables are masked alike), so a table
/// cannot shed its masking by being renamed like a catalog.
fn pattern_covers(table_glob: &Option<Glob>, column: &Glob, table: &str) -> bool {
    let by_table = match table_glob {
        None => !metadata_catalog(table),
        Some(g) if g.as_str() == "*" => !metadata_catalog(table),
        Some(g) => g.matches_table(table),
    };
    by_table && known_columns(table).is_none_or(|cs| cs.iter().any(|c| column.matches(c)))
}

/// Whether `table` is one of PostgreSQL's catalogs (or the information
/// schema, or a built-in function listing catalog metadata, which a FROM
/// clause names like a table) that describe objects and hold no values of
/// user columns, so a
/// rule for `*.card_number` or a bare `ssn` does not cover it: client tools
/// (`pg_dump`, psql's `\d`) read them with functions of every kind. The
/// catalogs that do hold values (statistics, other sessions' statements,
/// large objects) are not listed; policy refuses or follows them apart.
fn metadata_catalog(table: &str) -> bool {
    const CATALOGS: &[&str] = &[
        "aclexplode",
        "pg_aggregate",
        "pg_am",
        "pg_amop",
        "pg_amproc",
        "pg_attrdef",
        "pg_attribute",
        "pg_auth_members",
        "pg_authid",
        "pg_available_extension_versions",
        "pg_available_extensions",
        "pg_cast",
        "pg_class",
        "pg_collation",
        "pg_config",
        "pg_constraint",
        "pg_conversion",
        "pg_database",
        "pg_db_role_setting",
        "pg_default_acl",
        "pg_depend",
        "pg_description",
        "pg_enum",
        "pg_event_trigger",
        "pg_event_trigger_ddl_commands",
        "pg_event_trigger_dropped_objects",
        "pg_extension",
        "pg_file_settings",
        "pg_foreign_data_wrapper",
        "pg_foreign_server",
        "pg_foreign_table",
        "pg_get_catalog_foreign_keys",
        "pg_get_keywords",
        "pg_get_publication_tables",
        "pg_group",
        "pg_hba_file_rules",
        "pg_ident_file_mappings",
        "pg_index",
        "pg_indexes",
        "pg_inherits",
        "pg_init_privs",
        "pg_language",
        "pg_largeobject_metadata",
        "pg_locks",
        "pg_matviews",
        "pg_namespace",
        "pg_opclass",
        "pg_operator",
        "pg_opfamily",
        "pg_options_to_table",
        "pg_parameter_acl",
        "pg_partitioned_table",
        "pg_policies",
        "pg_policy",
        "pg_proc",
        "pg_publication",
        "pg_publication_namespace",
        "pg_publication_rel",
        "pg_publication_tables",
        "pg_range",
        "pg_replication_origin",
        "pg_rewrite",
        "pg_roles",
        "pg_rules",
        "pg_seclabel",
        "pg_seclabels",
        "pg_sequence",
        "pg_sequences",
        "pg_settings",
        "pg_shdepend",
        "pg_shdescription",
        "pg_show_all_settings",
        "pg_shseclabel",
        "pg_statistic_ext",
        "pg_subscription",
        "pg_subscription_rel",
        "pg_tables",
        "pg_tablespace",
        "pg_timezone_abbrevs",
        "pg_timezone_names",
        "pg_transform",
        "pg_trigger",
        "pg_ts_config",
        "pg_ts_config_map",
        "pg_ts_dict",
        "pg_ts_parser",
        "pg_ts_template",
        "pg_type",
        "pg_user",
        "pg_user_mapping",
        "pg_user_mappings",
        "pg_views",
    ];
    debug_assert!(
        CATALOGS.windows(2).all(|w| w[0] < w[1]),
        "CATALOGS is sorted"
    );
    /// In pg_catalog but holding values of user columns or statements.
    const HOLD_VALUES: &[&str] = &[
        "pg_cursors",
        "pg_largeobject",
        "pg_prepared_statements",
        "pg_stat_activity",
        "pg_statistic",
        "pg_statistic_ext_data",
        "pg_stats",
        "pg_stats_ext",
        "pg_stats_ext_exprs",
    ];
    if table.starts_with("information_schema.") {
        return true;
    }
    // Named with its schema, anything in pg_catalog is the system's own (a
    // catalog, or a built-in set-returning function in FROM); only a
    // superuser could add to it.
    if let Some(bare) = table.strip_prefix("pg_catalog.") {
        return !HOLD_VALUES.contains(&bare);
    }
    CATALOGS.binary_search(&table).is_ok()
}

/// The columns of a table whose columns are fixed and known without the
/// target's catalog: the large-object store, which statements reach
/// through functions (see [`crate::classify::large_objects`]), and the
/// settings view every client tool reads (`pg_dump` calls `set_config`
/// over it). A rule for `*.card_number` does not cover them; one for
/// `pg_largeobject.data` does.
fn known_columns(table: &str) -> Option<&'static [&'static str]> {
    const SETTINGS: &[&str] = &[
        "name",
        "setting",
        "unit",
        "category",
        "short_desc",
        "extra_desc",
        "context",
        "vartype",
        "source",
        "min_val",
        "max_val",
        "enumvals",
        "boot_val",
        "reset_val",
        "sourcefile",
        "sourceline",
        "pending_restart",
    ];
    match table.strip_prefix("pg_catalog.").unwrap_or(table) {
        crate::classify::large_objects::TABLE => Some(&["loid", "pageno", "data"]),
        "pg_settings" => Some(SETTINGS),
        _ => None,
    }
}

/// The rule that masks a column named `column` for `identity` on
/// `connection`, whatever its table (statement text seldom says which
/// table a name belongs to, so this errs towards masking); `*` finds any
/// rule active for the caller.
pub(crate) fn by_column_name(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    column: &str,
) -> Option<ColumnMask> {
    rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .find(|r| r.covers(&[], column))
        .map(ColumnRule::mask)
}

/// Decide per result field whether a column rule masks it.
///
/// With a full trace and no `*`, fields map to projection items by position.
/// Items before the first `*` map from the start and items after the last
/// from the end; the fields a `*` covers are matched by the name the target
/// reported against the star's tables. Without a trace (a cursor FETCH, a
/// statement the classifier could not trace), fields are matched by name
/// against every rule regardless of table: more masking, never less.
/// The mask the first active column rule covering `column` of one of
/// `tables` gives (`column` `*`: any column of them).
pub(crate) fn mask_of(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    tables: &[String],
    column: &str,
) -> Option<ColumnMask> {
    rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .find(|r| r.covers(tables, column))
        .map(|r| r.mask())
}

/// Every (rule, column pattern) that covers a column of `table` for the
/// caller: two tables with the same set are masked the same way, column
/// for column, so whole rows may move between them (a table renamed
/// under a `*.card_number` rule stays masked by it).
pub(crate) fn table_masking(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    table: &str,
) -> std::collections::BTreeSet<(String, String)> {
    rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .flat_map(|r| {
            r.patterns
                .iter()
                .filter(|(table_glob, column)| pattern_covers(table_glob, column, table))
                .map(|(_, column)| (r.name.clone(), column.as_str().to_string()))
        })
        .collect()
}

pub(crate) fn plan(
    rules: &[ColumnRule],
    identity: &Identity,
    connection: &str,
    facts: Option<&StatementFacts>,
    field_names: &[&str],
) -> Vec<Option<ColumnMask>> {
    let active: Vec<&ColumnRule> = rules
        .iter()
        .filter(|r| r.applies_to(identity, connection))
        .collect();
    if active.is_empty() {
        return vec![None; field_names.len()];
    }
    let by_name = |tables: &[String], name: &str| -> Option<ColumnMask> {
        active
            .iter()
            .find(|r| r.covers(tables, name))
            .map(|r| r.mask())
    };
    let by_sources = |item: &OutputColumn, field: &str| -> Option<ColumnMask> {
        match item {
            OutputColumn::Expr { sources, .. } => {
                let mask = sources.iter().find_map(|s| by_name(&s.tables, &s.column))?;
                // A partial mask keeps the end of the value it is given; of
                // a computed value (`reverse(ssn)`, `left(card, 12)`) that
                // end is another part of the original. Redact those.
                let computed = sources
                    .iter()
                    .any(|s| s.transformed && by_name(&s.tables, &s.column).is_some());
                Some(match (&mask.strategy, computed) {
                    (Strategy::Partial { .. }, true) => ColumnMask {
                        strategy: Strategy::Redact,
                        ..mask
                    },
                    _ => mask,
                })
            }
            OutputColumn::Wildcard { tables } => by_name(tables, field),
        }
    };
    // Without a trace to follow, columns are matched by name, except that
    // a statement reading a table these rules cover has all its columns
    // redacted: a renamed column (an alias list, a function the classifier
    // cannot see through) would otherwise pass under a name no rule names.
    let untraced = || -> Vec<Option<ColumnMask>> {
        let covered = facts.is_some_and(|f| {
            let tables: Vec<String> = f.tables_read.iter().cloned().collect();
            touches(rules, identity, connection, &tables)
        });
        field_names
            .iter()
            .map(|n| {
                by_name(&[], n)
                    .or_else(|| covered.then(|| ColumnMask::redact_all("untraceable-columns")))
            })
            .collect()
    };
    let output = facts.and_then(|f| f.output.as_deref());
    let Some(items) = output else {
        return untraced();
    };
    let first_star = items
        .iter()
        .position(|i| matches!(i, OutputColumn::Wildcard { .. }));
    let Some(first_star) = first_star else {
        if items.len() == field_names.len() {
            return items
                .iter()
                .zip(field_names)
                .map(|(item, name)| by_sources(item, name))
                .collect();
        }
        return untraced();
    };
    let last_star = items
        .iter()
        .rposition(|i| matches!(i, OutputColumn::Wildcard { .. }))
        .unwrap_or(first_star);
    let tail = items.len() - last_star - 1;
    if first_star + tail > field_names.len() {
        return untraced();
    }
    let star_tables: Vec<String> = items[first_star..=last_star]
        .iter()
        .flat_map(|i| match i {
            OutputColumn::Wildcard { tables } => tables.clone(),
            OutputColumn::Expr { sources, .. } => {
                sources.iter().flat_map(|s| s.tables.clone()).collect()
            }
        })
        .collect();
    let tail_start = field_names.len() - tail;
    field_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if i < first_star {
                by_sources(&items[i], name)
            } else if i >= tail_start {
                by_sources(&items[last_star + 1 + (i - tail_start)], name)
            } else {
                by_name(&star_tables, name)
            }
        })
        .collect()
}
