//! The classify stage: what does a SQL command do?
//!
//! A command (one simple-query string, or one extended-protocol Parse) may
//! hold several statements; each becomes one [`StatementFacts`]. Statements
//! nested where they change data (a data-modifying CTE, the body of
//! `PREPARE … AS`) get facts of their own, so policy sees them. A
//! PostgreSQL statement sqlparser cannot read is read by PostgreSQL's own
//! grammar (`pg_grammar`), with facts that err on the side of more; a
//! statement neither can read is classified by its leading keywords and
//! marked `parsed: false`; policy treats it fail-closed.

use serde::Serialize;
use std::collections::BTreeSet;

mod agree;
mod cache;
mod effects;
mod fallback;
pub mod http;
mod keyword;
pub mod large_objects;
mod lineage;
mod pg_grammar;
mod scan;
pub mod shell;
mod sql;
pub mod syntax;

pub use cache::ClassifierCache;
pub use fallback::classify_by_keywords;
pub use scan::{tokens, Token};

/// The cache key of a command: literals replaced, comments and spacing folded.
///
/// Takes the dialect because quoting differs (MySQL `"…"` strings,
/// backslash escapes, `#` comments, `/*! … */` code); the audit trail may
/// store it as the literal-free form of a command.
pub fn normalize(sql: &str, dialect: Dialect) -> String {
    scan::normalize(sql, dialect)
}

/// The command with its comments replaced by spaces (literals kept).
pub fn without_comments(sql: &str, dialect: Dialect) -> String {
    scan::without_comments(sql, dialect)
}

/// Split a command into its statements (quote- and comment-aware).
pub fn split_statements(sql: &str, dialect: Dialect) -> Vec<&str> {
    scan::split_statements(sql, dialect)
}

fn parser_dialect(dialect: Dialect) -> Box<dyn sqlparser::dialect::Dialect> {
    match dialect {
        Dialect::Postgres => Box::new(sqlparser::dialect::PostgreSqlDialect {}),
        Dialect::MySql => Box::new(sqlparser::dialect::MySqlDialect {}),
    }
}

/// Classify a command: every statement, nested ones included.
///
/// The whole text is parsed first; if that fails, each statement is parsed
/// on its own, a PostgreSQL statement sqlparser cannot read is read by
/// PostgreSQL's grammar, and only those left fall back to keywords.
/// The result never depends on literal values (see [`ClassifierCache`]).
pub fn classify(sql: &str, dialect: Dialect) -> Classification {
    classify_at(sql, dialect, 0)
}

/// [`classify`] for a statement nested `depth` levels inside unparseable
/// ones (the keyword fallback follows `PREPARE … AS` bodies through here).
fn classify_at(sql: &str, dialect: Dialect, depth: usize) -> Classification {
    let mut c = parse_at(sql, dialect, depth);
    if dialect == Dialect::Postgres {
        c.statements.iter_mut().for_each(large_objects::note_calls);
    }
    c
}

/// Facts from the parser, or from the keyword fallback where it fails.
fn parse_at(sql: &str, dialect: Dialect, depth: usize) -> Classification {
    let d = parser_dialect(dialect);
    if agree::lexers_agree(sql, dialect) {
        if let Ok(stmts) = sqlparser::parser::Parser::parse_sql(d.as_ref(), sql) {
            return Classification {
                statements: stmts
                    .iter()
                    .flat_map(|s| sql::facts_for(s, dialect))
                    .collect(),
                parse_error: None,
            };
        }
    }
    let mut statements = Vec::new();
    let mut parse_error = None;
    for piece in split_statements(sql, dialect) {
        // Each piece is split where the server splits; the parser's reading
        // of it counts only where its tokens agree with the server's.
        let parsed = if agree::lexers_agree(piece, dialect) {
            sqlparser::parser::Parser::parse_sql(d.as_ref(), piece)
                .map_err(|e| scrub_parse_error(&e.to_string()))
        } else {
            Err(LEXER_DIFFERS.to_string())
        };
        match parsed {
            Ok(stmts) => statements.extend(stmts.iter().flat_map(|s| sql::facts_for(s, dialect))),
            Err(e) => {
                // PostgreSQL's own grammar reads what sqlparser cannot; only
                // what it rejects too is left to the keywords.
                let grammar = match dialect {
                    Dialect::Postgres => pg_grammar::facts(piece),
                    Dialect::MySql => None,
                };
                match grammar {
                    Some(facts) => statements.extend(facts),
                    None => {
                        parse_error.get_or_insert(e);
                        statements.extend(fallback::fallback_facts(piece, dialect, depth));
                    }
                }
            }
        }
    }
    if statements.is_empty() {
        // Nothing but whitespace or comments: an empty query, harmless.
        parse_error = None;
    }
    Classification {
        statements,
        parse_error,
    }
}

/// Why a statement whose quotes the parser reads differently from the
/// server is classified by keywords.
const LEXER_DIFFERS: &str =
    "the SQL parser would end a string, quoted name or comment in it where the server does not";

/// The parser's message without what depends on literal values: the
/// position (literal lengths move it) and any literal it quotes (a
/// password could be echoed). A cached classification is shown for every
/// statement with the same normalized form, so a message must not carry
/// one caller's values to another.
fn scrub_parse_error(message: &str) -> String {
    let head = message.split(" at Line:").next().unwrap_or(message);
    let mut out = scan::normalize(head, Dialect::Postgres);
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Which SQL grammar a command is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
}

/// What kind of statement this is; command rules match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// SELECT, VALUES, TABLE, and queries that only read.
    Select,
    /// INSERT (including INSERT … SELECT, ON CONFLICT).
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// TRUNCATE.
    Truncate,
    /// CREATE/ALTER/DROP/COMMENT and other schema changes.
    Ddl,
    /// GRANT/REVOKE, CREATE/ALTER/DROP ROLE or USER.
    Dcl,
    /// COPY (either direction), LOAD DATA, SELECT … INTO OUTFILE.
    Copy,
    /// BEGIN/COMMIT/ROLLBACK/SAVEPOINT/…
    Transaction,
    /// CALL procedure.
    Call,
    /// DO anonymous code block.
    Do,
    /// PREPARE name AS … (the prepared body gets its own facts too).
    Prepare,
    /// EXECUTE name (the pipeline substitutes the prepared body's facts).
    Execute,
    /// DEALLOCATE.
    Deallocate,
    /// SET / RESET / SET GLOBAL.
    Set,
    /// SHOW.
    Show,
    /// EXPLAIN (the explained statement gets its own facts too).
    Explain,
    /// Session and server utilities: VACUUM, ANALYZE, LISTEN, NOTIFY, CHECKPOINT,
    /// DISCARD, LOCK, ALTER SYSTEM, KILL, HANDLER, …
    Utility,
    /// Nothing recognisable; always fails closed unless a rule allows it.
    Unknown,
}

impl StatementKind {
    /// Lower-case name as written in policy files (`kinds = ["delete"]`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Merge => "merge",
            StatementKind::Truncate => "truncate",
            StatementKind::Ddl => "ddl",
            StatementKind::Dcl => "dcl",
            StatementKind::Copy => "copy",
            StatementKind::Transaction => "transaction",
            StatementKind::Call => "call",
            StatementKind::Do => "do",
            StatementKind::Prepare => "prepare",
            StatementKind::Execute => "execute",
            StatementKind::Deallocate => "deallocate",
            StatementKind::Set => "set",
            StatementKind::Show => "show",
            StatementKind::Explain => "explain",
            StatementKind::Utility => "utility",
            StatementKind::Unknown => "unknown",
        }
    }

    /// Parse a policy-file name; `None` for a name that is not a kind.
    pub fn from_name(name: &str) -> Option<StatementKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == name)
    }
}

/// Every kind, for validating policy files and listing them in errors.
pub const ALL_KINDS: &[StatementKind] = &[
    StatementKind::Select,
    StatementKind::Insert,
    StatementKind::Update,
    StatementKind::Delete,
    StatementKind::Merge,
    StatementKind::Truncate,
    StatementKind::Ddl,
    StatementKind::Dcl,
    StatementKind::Copy,
    StatementKind::Transaction,
    StatementKind::Call,
    StatementKind::Do,
    StatementKind::Prepare,
    StatementKind::Execute,
    StatementKind::Deallocate,
    StatementKind::Set,
    StatementKind::Show,
    StatementKind::Explain,
    StatementKind::Utility,
    StatementKind::Unknown,
];

/// Direction of a bulk copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyDirection {
    /// Data leaves the database (COPY … TO, INTO OUTFILE).
    Out,
    /// Data enters the database (COPY … FROM, LOAD DATA).
    In,
}

/// A base-table column an output column may derive from.
///
/// `tables` holds the candidate base tables (lower-case, unqualified by
/// schema unless the query qualified them): one when the reference was
/// resolved, several when an unqualified column could come from any table in
/// scope, empty when no table is in scope (a literal, a function of nothing).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ColumnSource {
    /// Candidate base tables the column belongs to.
    pub tables: Vec<String>,
    /// The column name, lower-case.
    pub column: String,
    /// The value went through a function, operator, subquery or condition
    /// on its way out: not the column as stored. A partial mask of such a
    /// value (`reverse(ssn)` keeping its "last four") would show other
    /// characters of the original, so it is redacted instead.
    #[serde(default)]
    pub transformed: bool,
}

/// Where one column of a statement's result comes from; drives column masking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputColumn {
    /// An expression (a column, alias, function, cast, concatenation, subquery…).
    Expr {
        /// The name the client will see (alias, or the column name), lower-case.
        name: Option<String>,
        /// Every base column the value is computed from, through aliases,
        /// functions, casts, subqueries and CTEs.
        sources: Vec<ColumnSource>,
    },
    /// `*` or `t.*`: expands to all columns of these base tables, in order.
    Wildcard {
        /// The base tables the star covers (resolved through aliases and CTEs).
        tables: Vec<String>,
    },
}

/// The facts policy needs about one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementFacts {
    /// What kind of statement.
    pub kind: StatementKind,
    /// The leading keywords, upper-case (`"ALTER SYSTEM"`, `"DROP DATABASE"`,
    /// `"CREATE TABLE"`, `"SELECT"`), for rules that name a form exactly.
    pub keyword: String,
    /// Base tables read, lower-case (CTE names resolved away).
    pub tables_read: BTreeSet<String>,
    /// Base tables written or altered, lower-case.
    pub tables_written: BTreeSet<String>,
    /// For UPDATE/DELETE: whether a WHERE clause is present.
    pub has_where: bool,
    /// For SELECT: whether a LIMIT (or FETCH FIRST) is present at the top level.
    pub has_limit: bool,
    /// For COPY-like statements: which way data moves.
    pub copy_direction: Option<CopyDirection>,
    /// For PREPARE/EXECUTE/DEALLOCATE: the prepared statement's name, lower-case.
    pub prepared_name: Option<String>,
    /// The result columns, when the statement returns rows and they could be
    /// traced; `None` when it returns no rows or tracing failed (masking then
    /// falls back to column names and content detectors).
    pub output: Option<Vec<OutputColumn>>,
    /// `false` when the parser could not read the statement and these facts
    /// come from the keyword fallback.
    pub parsed: bool,
    /// `true` for facts of a statement nested inside the previous top-level
    /// one (a data-modifying CTE, the body of `PREPARE … AS`, the statement
    /// under `EXPLAIN`). Top-level statements are `false`; adapters align
    /// result sets (one per top-level statement) by skipping nested facts.
    pub nested: bool,
    /// Every function the statement calls, anywhere in it (select list,
    /// WHERE, table functions in FROM, `USING` and generated-column
    /// expressions), and every user-defined operator as `operator(…)`.
    /// Unquoted names are lower-case, quoted PostgreSQL names exact; a
    /// schema qualification is kept (`pg_catalog.upper`). Policy uses it to
    /// keep masked values from being moved into state that outlives the
    /// statement (`set_config`, `pg_notify`, `get_lock`, …).
    pub functions: BTreeSet<String>,
    /// Whether the statement assigns a user or session variable: MySQL
    /// `@v := …`, `SELECT … INTO @v` or `SELECT … INTO var`.
    pub assigns_variable: bool,
    /// Columns (lower-case names) the statement compares with something
    /// other than a constant or another bare column, or compares through a
    /// function: `substr(c.ssn, p, 1) = chr(g)` joined with a generated
    /// series spells a value out row by row, whatever is masked in the
    /// result. Policy refuses such comparisons of masked columns.
    pub computed_comparisons: BTreeSet<String>,
    /// The column values the statement writes and the base columns each is
    /// computed from: UPDATE/ON CONFLICT/ON DUPLICATE KEY `SET`, INSERT's
    /// column list against its source, `ALTER … TYPE … USING`, generated
    /// columns, column and table renames. Policy refuses a write whose
    /// sources are masked unless the target is masked the same way.
    pub column_writes: Vec<ColumnWrite>,
}

/// One column value a statement writes, with its lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnWrite {
    /// Candidate target tables, lower-case (several for MySQL's multi-table
    /// UPDATE when the column is not qualified).
    pub tables: Vec<String>,
    /// The target column, lower-case; `*` when it cannot be named (an
    /// INSERT without a column list, a renamed table, a MERGE).
    pub column: String,
    /// Every base column the written value is computed from.
    pub sources: Vec<ColumnSource>,
}

/// The classification of one command: all its statements, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// One entry per statement, plus entries for nested data-changing
    /// statements (placed right after the statement that contains them).
    pub statements: Vec<StatementFacts>,
    /// The parser's message when any statement needed the keyword fallback.
    pub parse_error: Option<String>,
}

impl Classification {
    /// The statements' facts as recorded in a `command` audit event (the
    /// same shape for every SQL adapter).
    pub fn statement_records(&self) -> Vec<crate::events::StatementRecord> {
        self.statements
            .iter()
            .map(|f| crate::events::StatementRecord {
                kind: f.kind.as_str().to_string(),
                keyword: f.keyword.clone(),
                tables_read: f.tables_read.iter().cloned().collect(),
                tables_written: f.tables_written.iter().cloned().collect(),
                has_where: f.has_where,
                has_limit: f.has_limit,
                parsed: f.parsed,
                nested: f.nested,
            })
            .collect()
    }
}

#[cfg(test)]
mod grammar_tests;
#[cfg(test)]
mod tests;
