//! Facts from PostgreSQL's own grammar, for statements sqlparser cannot read.
//!
//! sqlparser reads most statements and traces their result columns, so it
//! stays the first reader. Where it gives up (an array subscript in `SET`
//! or an INSERT column list, `VARIADIC`, a window's `EXCLUDE`, `WHERE
//! CURRENT OF`, `FROM t*`, many `ALTER TABLE` forms, a bare `FETCH c`, …)
//! the server's own grammar (libpg_query, through the `pg_query` crate)
//! parses the statement, and this module turns its parse tree into the
//! same [`StatementFacts`]. Only what the server's grammar rejects too is
//! left to the keyword fallback.
//!
//! The facts are complete or larger than the truth, never smaller:
//!
//! - The parse tree is walked whole, every field of every node, through
//!   its serde form (the crate derives `Serialize` for every node), so no
//!   node type or position can be forgotten: every relation named anywhere
//!   counts as read (less one occurrence per written target, as on the
//!   parser path), every function called anywhere is listed.
//! - No result column is traced (`output` is `None`): masking then redacts
//!   every column of a result that reads a table with column rules.
//! - A column write takes every column the statement names anywhere as its
//!   sources, in any of the tables it names.
//!
//! As elsewhere, no fact depends on a literal's value, so the facts can be
//! cached under the normalized statement. A `DO` block still falls back:
//! its body is a string the grammar does not read, so nothing would be
//! known of what it does; so does a statement of no kind policy knows.
//!
//! The text is parsed as given: callers pass the session-canonical text
//! (see `syntax::pg_standard_strings`), which the grammar reads with
//! `standard_conforming_strings` on, as the server will. libpg_query keeps
//! its state per thread (memory contexts and the stack-depth check are
//! thread-local), so calls need no lock; a parse and walk take tens of
//! microseconds, once per normalized statement (the classifier cache), and
//! run inline.

use super::fallback::{leading_keyword_of, unknown_facts};
use super::keyword::kind_of_keyword;
use super::{ColumnSource, ColumnWrite, CopyDirection, Dialect, StatementFacts, StatementKind};
use pg_query::protobuf::{
    AExprKind, AlterTableType, BoolExprType, CmdType, ConstrType, MinMaxOp, ObjectType,
    OnConflictAction, SqlValueFunctionOp, SubLinkType,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

type Obj = Map<String, Value>;

/// Data-modifying (or prepared-statement-running) statements found below
/// the statement being analysed, with the CTE names visible where each was.
type Found<'a> = Vec<(&'a str, &'a Obj, Vec<String>)>;

static NULL: Value = Value::Null;

/// Binary operators the SQL parser knows as built-ins (see
/// `effects::calls`); any other is reported as `operator(…)`, as there.
const KNOWN_BINARY: &[&str] = &[
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "||", "~", "~*", "!~",
    "!~*", "~~", "~~*", "!~~", "!~~*", "@>", "<@", "&&", "->", "->>", "#>", "#>>", "?", "?|", "?&",
    "@?", "@@", "#-", "&", "|", "#", "<<", ">>", "<->", "<<|", "|>>", "&<", "&>", "@@@", "<=>",
    "^@", "<^", ">^", "?-", "~=", "@", "##",
];

/// Prefix operators the SQL parser knows as built-ins.
const KNOWN_PREFIX: &[&str] = &["+", "-", "~", "|/", "||/", "@", "!!"];

/// Type names the grammar turns into `pg_catalog.` types.
const TYPE_KEYWORDS: &[&str] = &[
    "bigint",
    "bit",
    "boolean",
    "char",
    "character",
    "dec",
    "decimal",
    "double",
    "float",
    "int",
    "integer",
    "interval",
    "json",
    "national",
    "nchar",
    "numeric",
    "real",
    "smallint",
    "time",
    "timestamp",
    "varchar",
];

/// Binary operators that compute a value rather than compare two: their
/// operands are not a comparison (see [`StatementFacts::computed_comparisons`]).
const NOT_COMPARISONS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "||", "->", "->>", "#>", "#>>", "#-", "&", "|", "#", "|/", "||/",
    "@", "!!",
];

/// Facts for `sql` (one statement, or several) from PostgreSQL's grammar,
/// or `None` when the grammar rejects it, it holds a `DO` block (whose
/// effects no parse tree shows), or a statement of no kind policy knows
/// (left to the keyword fallback, which fails closed).
pub(super) fn facts(sql: &str) -> Option<Vec<StatementFacts>> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    let tree = serde_json::to_value(&parsed.protobuf).ok()?;
    let mut out = Vec::new();
    for raw in tree.get("stmts")?.as_array()? {
        let raw = raw.as_object()?;
        let (name, stmt) = tagged(field(raw, "stmt"))?;
        if name == "DoStmt" {
            return None;
        }
        let facts = statement_facts(sql, name, stmt, Some(text_of(sql, raw)), &[]);
        if facts
            .first()
            .is_none_or(|f| f.kind == StatementKind::Unknown)
        {
            return None;
        }
        out.extend(facts);
    }
    Some(out)
}

/// The text of one raw statement (`stmt_len` 0 means "to the end").
fn text_of<'s>(sql: &'s str, raw: &Obj) -> &'s str {
    let at = field(raw, "stmt_location").as_u64().unwrap_or(0) as usize;
    let len = field(raw, "stmt_len").as_u64().unwrap_or(0) as usize;
    let end = if len == 0 {
        sql.len()
    } else {
        at.saturating_add(len).min(sql.len())
    };
    sql.get(at..end).unwrap_or(sql)
}

/// Facts for one statement node followed by the facts of what it nests
/// (marked `nested`), in the parser path's order: the statement, the
/// statements under it, what an upsert also does, what DDL does to rows.
fn statement_facts(
    sql: &str,
    name: &str,
    stmt: &Obj,
    text: Option<&str>,
    scope: &[String],
) -> Vec<StatementFacts> {
    let inner = |key: &str| match tagged(field(stmt, key)) {
        Some((n, s)) => statement_facts(sql, n, s, None, scope),
        None => vec![unknown_facts("")],
    };
    match name {
        "ExplainStmt" => {
            let inner = inner("query");
            let mut head = blank(if explains_analyze(stmt) {
                "EXPLAIN ANALYZE"
            } else {
                "EXPLAIN"
            });
            head.kind = StatementKind::Explain;
            for f in &inner {
                head.tables_read.extend(f.tables_read.iter().cloned());
                head.tables_read.extend(f.tables_written.iter().cloned());
            }
            // EXPLAIN ANALYZE runs the statement, and the option can hide
            // in a list: always judge what is inside.
            let mut out = vec![head];
            out.extend(inner.into_iter().map(into_nested));
            out
        }
        "PrepareStmt" => {
            let mut head = blank("PREPARE");
            head.kind = StatementKind::Prepare;
            head.prepared_name = non_empty(field(stmt, "name"));
            let mut out = vec![head];
            out.extend(inner("query").into_iter().map(into_nested));
            out
        }
        _ => {
            let (head, found) = analyse(sql, name, stmt, text, scope);
            let upsert = upsert_effects(name, stmt, &head);
            let mut out = vec![head];
            // The outer walk found statements nested at any depth, so each
            // one is analysed alone (its own nested list would repeat them).
            for (n, s, visible) in found {
                let f = analyse(sql, n, s, None, &visible).0;
                let also = upsert_effects(n, s, &f);
                out.push(into_nested(f));
                out.extend(also);
            }
            out.extend(upsert);
            let keyword = out[0].keyword.clone();
            out.extend(ddl_effects(name, stmt, &keyword));
            out
        }
    }
}

/// `EXPLAIN ANALYZE …` or an `analyze` option in the list, whatever its
/// value (a value may be a string literal, which the facts never read).
fn explains_analyze(stmt: &Obj) -> bool {
    items(field(stmt, "options")).any(|o| {
        matches!(tagged(o), Some(("DefElem", d)) if str_of(field(d, "defname")).eq_ignore_ascii_case("analyze"))
    })
}

fn into_nested(mut f: StatementFacts) -> StatementFacts {
    f.nested = true;
    f
}

fn blank(keyword: &str) -> StatementFacts {
    let mut f = unknown_facts(keyword);
    f.parsed = true;
    f
}

/// The facts of one statement (not of what it nests) and the statements
/// nested anywhere in it that change data or run a prepared statement.
/// `sql` is the whole text parsed (node locations point into it), `text`
/// the statement's own, when it has one.
fn analyse<'a>(
    sql: &'a str,
    name: &str,
    stmt: &'a Obj,
    text: Option<&str>,
    scope: &[String],
) -> (StatementFacts, Found<'a>) {
    let mut names = BTreeSet::new();
    names_in_obj(stmt, &mut names);
    let mut walk = Walk {
        sql,
        scopes: vec![scope.to_vec()],
        names,
        ..Walk::default()
    };
    walk.object(stmt);
    let keyword = keyword_of(name, stmt, text);
    let mut f = blank(&keyword);
    f.kind = kind_of(name, stmt, &keyword);
    let mut targets: Vec<String> = Vec::new();
    let mut reads: Vec<String> = Vec::new();
    let mut returns = false;
    match name {
        "SelectStmt" => {
            f.has_limit = has_limit(stmt);
            if let Some(into) = field(stmt, "into_clause").as_object() {
                // `SELECT … INTO t` creates a table from the rows.
                targets.extend(range_var(field(into, "rel")));
                f.assigns_variable = true;
            }
        }
        "InsertStmt" | "MergeStmt" | "UpdateStmt" | "DeleteStmt" => {
            targets.extend(range_var(field(stmt, "relation")));
            returns = !field(stmt, "returning_clause").is_null();
            if matches!(name, "UpdateStmt" | "DeleteStmt") {
                f.has_where = filters(field(stmt, "where_clause"));
            }
        }
        "CopyStmt" => {
            let from = bool_of(field(stmt, "is_from"));
            f.copy_direction = Some(if from {
                CopyDirection::In
            } else {
                CopyDirection::Out
            });
            if from {
                targets.extend(range_var(field(stmt, "relation")));
            }
        }
        "TruncateStmt" => targets.extend(items(field(stmt, "relations")).filter_map(range_var)),
        "DeclareCursorStmt" => {
            f.prepared_name = non_empty(field(stmt, "portalname"));
            if let Some(("SelectStmt", q)) = tagged(field(stmt, "query")) {
                f.has_limit = has_limit(q);
            }
        }
        "FetchStmt" | "ClosePortalStmt" => f.prepared_name = non_empty(field(stmt, "portalname")),
        "ExecuteStmt" => f.prepared_name = non_empty(field(stmt, "name")),
        "DeallocateStmt" => {
            f.prepared_name = if bool_of(field(stmt, "isall")) {
                Some("all".to_string())
            } else {
                non_empty(field(stmt, "name"))
            };
        }
        "CreateTableAsStmt" => {
            if let Some(into) = field(stmt, "into").as_object() {
                targets.extend(range_var(field(into, "rel")));
            }
        }
        "DropStmt" => match dropped_from(stmt) {
            // DROP POLICY/RULE/TRIGGER name ON table: the table is read.
            Some(tables) => reads.extend(tables),
            None => targets.extend(dropped(stmt)),
        },
        "DropdbStmt" => targets.extend(non_empty(field(stmt, "dbname")).map(|d| d.to_lowercase())),
        // Read, as on the parser path; what CLUSTER and VACUUM FULL do to
        // the rows is in their nested facts.
        "LockStmt" | "VacuumStmt" | "ClusterStmt" => {}
        "RenameStmt" => {
            // Renaming a relation, a column or a constraint alters the
            // relation; renaming a policy, rule or trigger on it reads it.
            use ObjectType as O;
            let alters = !matches!(
                ObjectType::try_from(int_of(field(stmt, "rename_type"))),
                Ok(O::ObjectPolicy | O::ObjectRule | O::ObjectTrigger)
            );
            if alters {
                targets.extend(range_var(field(stmt, "relation")));
            }
        }
        _ => {
            // DDL on a relation: ALTER TABLE (and the partitions it attaches
            // or detaches), CREATE TABLE/VIEW/INDEX/SEQUENCE/TRIGGER/RULE,
            // SET SCHEMA, REINDEX, REFRESH, … (CREATE/ALTER POLICY name a
            // table they only read, as on the parser path: the walk counts
            // it.)
            for key in ["relation", "view", "sequence"] {
                if let Some(v) = stmt.get(key) {
                    targets.extend(range_var(v));
                }
            }
            if let Some(base) = stmt.get("base_stmt").and_then(Value::as_object) {
                targets.extend(range_var(field(base, "relation")));
            }
            if name == "AlterTableStmt" {
                for cmd in items(field(stmt, "cmds")) {
                    if let Some(("AlterTableCmd", c)) = tagged(cmd) {
                        if let Some(("PartitionCmd", p)) = tagged(field(c, "def")) {
                            targets.extend(range_var(field(p, "name")));
                        }
                    }
                }
            }
        }
    }
    let mut counts = std::mem::take(&mut walk.relations);
    for t in &targets {
        if let Some(n) = counts.get_mut(t) {
            *n = n.saturating_sub(1);
        }
    }
    f.tables_read = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, _)| t)
        .collect();
    f.tables_read.extend(reads);
    if returns {
        // RETURNING reads the rows written: masking must see the table.
        f.tables_read.extend(targets.iter().cloned());
    }
    f.tables_written = targets.into_iter().filter(|t| !t.is_empty()).collect();
    f.column_writes = column_writes(name, stmt, &walk, &f);
    f.functions = std::mem::take(&mut walk.functions);
    f.computed_comparisons = std::mem::take(&mut walk.computed);
    (f, walk.nested)
}

/// The leading keywords: named by node for the statements EXPLAIN and
/// PREPARE wrap (as the parser path names them, `WITH …` included), from
/// the text for the rest.
fn keyword_of(name: &str, stmt: &Obj, text: Option<&str>) -> String {
    let named = match name {
        "SelectStmt" if field(stmt, "into_clause").is_object() => "SELECT INTO",
        "SelectStmt" => "SELECT",
        "InsertStmt" => "INSERT",
        "UpdateStmt" => "UPDATE",
        "DeleteStmt" => "DELETE",
        "MergeStmt" => "MERGE",
        "ExecuteStmt" => "EXECUTE",
        "DeclareCursorStmt" => "DECLARE",
        "CreateTableAsStmt" if text.is_none() => {
            if ObjectType::try_from(int_of(field(stmt, "objtype"))) == Ok(ObjectType::ObjectMatview)
            {
                "CREATE MATERIALIZED VIEW"
            } else {
                "CREATE TABLE"
            }
        }
        _ => {
            let keyword = text
                .map(|t| leading_keyword_of(t, Dialect::Postgres))
                .unwrap_or_default();
            // Named as the parser path names them.
            return match keyword.as_str() {
                "ABORT" => "ROLLBACK".to_string(),
                _ => keyword,
            };
        }
    };
    named.to_string()
}

/// The statement's kind: by node where the keyword could mislead (`WITH`,
/// `PREPARE TRANSACTION`, `MOVE`), by keyword as elsewhere for the rest.
///
/// (`AccessShareLock`, PostgreSQL's weakest table lock, is mode 1.)
const ACCESS_SHARE_LOCK: i64 = 1;

fn kind_of(name: &str, stmt: &Obj, keyword: &str) -> StatementKind {
    use StatementKind as K;
    match name {
        "SelectStmt" if field(stmt, "into_clause").is_object() => K::Ddl,
        "SelectStmt" | "DeclareCursorStmt" => K::Select,
        "InsertStmt" => K::Insert,
        "UpdateStmt" => K::Update,
        "DeleteStmt" => K::Delete,
        "MergeStmt" => K::Merge,
        "CopyStmt" => K::Copy,
        "TruncateStmt" => K::Truncate,
        "ExecuteStmt" => K::Execute,
        "DeallocateStmt" => K::Deallocate,
        // A cursor's rows come back through FETCH: a read. MOVE returns none.
        "FetchStmt" if bool_of(field(stmt, "ismove")) => K::Utility,
        "FetchStmt" => K::Select,
        // `LOCK … IN ACCESS SHARE MODE` takes the lock a SELECT takes and
        // changes nothing (pg_dump sends it for every table it reads);
        // stronger modes block writers or readers: utility.
        "LockStmt" if field_or_null(stmt, "mode").as_i64() == Some(ACCESS_SHARE_LOCK) => K::Select,
        "ClosePortalStmt" => K::Utility,
        "TransactionStmt" => K::Transaction,
        "CallStmt" => K::Call,
        "VariableShowStmt" => K::Show,
        // `SET [LOCAL|SESSION] ROLE`, `… SESSION AUTHORIZATION`: who the
        // session is, whatever words come between. (RESET goes back to
        // who logged in: a setting, as on the parser path.)
        "VariableSetStmt"
            if keyword.starts_with("SET")
                && matches!(
                    str_of(field(stmt, "name")),
                    "role" | "session_authorization"
                ) =>
        {
            K::Dcl
        }
        "VacuumStmt" | "ClusterStmt" | "ReindexStmt" | "LockStmt" | "CheckPointStmt"
        | "ListenStmt" | "UnlistenStmt" | "NotifyStmt" | "DiscardStmt" | "LoadStmt"
        | "AlterSystemStmt" => K::Utility,
        "GrantStmt" | "GrantRoleStmt" | "CreateRoleStmt" | "AlterRoleStmt" | "AlterRoleSetStmt"
        | "DropRoleStmt" | "ReassignOwnedStmt" => K::Dcl,
        _ => match kind_of_keyword(keyword) {
            K::Unknown
                if ["Create", "Alter", "Drop", "Rename", "Comment"]
                    .iter()
                    .any(|p| name.starts_with(p)) =>
            {
                K::Ddl
            }
            k => k,
        },
    }
}

/// A top-level LIMIT with a count (not `LIMIT ALL`/`LIMIT NULL`), or FETCH
/// FIRST. A `$n` parameter counts as a limit.
fn has_limit(select: &Obj) -> bool {
    match tagged(field(select, "limit_count")) {
        None => false,
        Some(("AConst", c)) => !bool_of(field(c, "isnull")),
        Some(_) => true,
    }
}

/// A WHERE clause that filters rows by something (see the parser path's
/// `trivially_true`); `WHERE CURRENT OF c` touches one row.
fn filters(where_clause: &Value) -> bool {
    !where_clause.is_null() && !trivially_true(where_clause)
}

/// A condition that filters no row by any column: one that names no
/// column, subquery or cursor (`true`, `1 = 1`, `$1`, `now() > '…'`,
/// whatever the literals), or an OR with such a branch, or an AND of such.
fn trivially_true(v: &Value) -> bool {
    if !contains_any(v, &["ColumnRef", "SubLink", "CurrentOfExpr"]) {
        return true;
    }
    let Some(("BoolExpr", b)) = tagged(v) else {
        return false;
    };
    let mut args = items(field(b, "args"));
    match BoolExprType::try_from(int_of(field(b, "boolop"))) {
        Ok(BoolExprType::OrExpr) => args.any(trivially_true),
        Ok(BoolExprType::AndExpr) => args.all(trivially_true),
        _ => false,
    }
}

/// `DROP TABLE|VIEW|INDEX|SCHEMA|TYPE|COLLATION … name, …`: the names
/// dropped, as the parser path lists them (a function's or operator's
/// signature is not a name it lists).
fn dropped(stmt: &Obj) -> Vec<String> {
    items(field(stmt, "objects"))
        .filter_map(|o| match tagged(o) {
            Some(("List", l)) => Some(strings(field(l, "items")).join(".")),
            Some(("String", s)) => Some(str_of(field(s, "sval")).to_string()),
            Some(("TypeName", t)) => Some(strings(field(t, "names")).join(".")),
            _ => None,
        })
        .map(|n| n.to_lowercase())
        .collect()
}

/// `DROP POLICY|RULE|TRIGGER name ON table`: the tables named, or `None`
/// for a DROP of something else.
fn dropped_from(stmt: &Obj) -> Option<Vec<String>> {
    use ObjectType as O;
    let on_table = matches!(
        ObjectType::try_from(int_of(field(stmt, "remove_type"))),
        Ok(O::ObjectPolicy | O::ObjectRule | O::ObjectTrigger)
    );
    on_table.then(|| {
        items(field(stmt, "objects"))
            .filter_map(|o| match tagged(o) {
                Some(("List", l)) => {
                    let mut parts = strings(field(l, "items"));
                    parts.pop();
                    Some(parts.join(".").to_lowercase())
                }
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect()
    })
}

/// `INSERT … ON CONFLICT … DO UPDATE` also updates the rows that collide.
fn upsert_effects(name: &str, stmt: &Obj, head: &StatementFacts) -> Vec<StatementFacts> {
    if name != "InsertStmt" {
        return Vec::new();
    }
    let Some(c) = field(stmt, "on_conflict_clause").as_object() else {
        return Vec::new();
    };
    if OnConflictAction::try_from(int_of(field(c, "action")))
        != Ok(OnConflictAction::OnconflictUpdate)
    {
        return Vec::new();
    }
    let mut f = blank("UPDATE");
    f.kind = StatementKind::Update;
    f.tables_written = head.tables_written.clone();
    // Only the rows that collide are touched: not an unbounded write.
    f.has_where = true;
    vec![into_nested(f)]
}

/// What DDL does to a table's rows, for rules about updates and deletes
/// (as `effects::ddl_effects`): rewriting or renaming is an UPDATE of every
/// row, dropping a column, detaching a partition or TRUNCATE a DELETE; an
/// ALTER TABLE operation not known to leave rows alone is an UPDATE. The
/// effects keep the DDL's `keyword` (they are not an UPDATE written
/// without a WHERE; see `effects::ddl_effects`).
fn ddl_effects(name: &str, stmt: &Obj, keyword: &str) -> Vec<StatementFacts> {
    let mut updated: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    // CLUSTER and VACUUM FULL without a table rewrite tables not named:
    // an UPDATE all the same (fail closed), as the keyword fallback says.
    let mut always_update = false;
    // A `USING` expression sets every row's value: written like an UPDATE
    // without a WHERE, and judged as one (`without_where` rules too).
    let mut rewrites_values = false;
    let relation = range_var(field_or_null(stmt, "relation"));
    match name {
        "AlterTableStmt" => {
            let table = relation.clone().unwrap_or_default();
            for cmd in items(field(stmt, "cmds")) {
                let Some(("AlterTableCmd", c)) = tagged(cmd) else {
                    updated.insert(table.clone());
                    continue;
                };
                use AlterTableType as A;
                match AlterTableType::try_from(int_of(field(c, "subtype"))) {
                    Ok(A::AtAddColumn | A::AtAddConstraint) => {
                        // A foreign key whose action changes this table's
                        // rows lets a write elsewhere change them later.
                        if cascading_foreign_key(field(c, "def")) {
                            updated.insert(table.clone());
                            deleted.insert(table.clone());
                        }
                    }
                    Ok(A::AtDropColumn | A::AtDetachPartition | A::AtDetachPartitionFinalize) => {
                        deleted.insert(table.clone());
                    }
                    // `TYPE … USING expr` computes every row's new value:
                    // an UPDATE of the whole table as written.
                    Ok(A::AtAlterColumnType) => {
                        updated.insert(table.clone());
                        // No ColumnDef to read: assume a USING (fail closed).
                        let using = match tagged(field_or_null(c, "def")) {
                            Some(("ColumnDef", d)) => !field_or_null(d, "raw_default").is_null(),
                            _ => true,
                        };
                        rewrites_values |= using;
                    }
                    // Constraints, defaults, NOT NULL, statistics, storage,
                    // identity, triggers, rules, ownership, row security and
                    // storage options leave existing values as they are.
                    Ok(
                        A::AtDropConstraint
                        | A::AtValidateConstraint
                        | A::AtAlterConstraint
                        | A::AtAddIndex
                        | A::AtAddIndexConstraint
                        | A::AtColumnDefault
                        | A::AtCookedColumnDefault
                        | A::AtDropNotNull
                        | A::AtSetNotNull
                        | A::AtSetStatistics
                        | A::AtSetOptions
                        | A::AtResetOptions
                        | A::AtSetStorage
                        | A::AtSetCompression
                        | A::AtAddIdentity
                        | A::AtSetIdentity
                        | A::AtDropIdentity
                        | A::AtClusterOn
                        | A::AtDropCluster
                        | A::AtChangeOwner
                        | A::AtSetRelOptions
                        | A::AtResetRelOptions
                        | A::AtReplaceRelOptions
                        | A::AtEnableTrig
                        | A::AtEnableAlwaysTrig
                        | A::AtEnableReplicaTrig
                        | A::AtDisableTrig
                        | A::AtEnableTrigAll
                        | A::AtDisableTrigAll
                        | A::AtEnableTrigUser
                        | A::AtDisableTrigUser
                        | A::AtEnableRule
                        | A::AtEnableAlwaysRule
                        | A::AtEnableReplicaRule
                        | A::AtDisableRule
                        | A::AtReplicaIdentity
                        | A::AtEnableRowSecurity
                        | A::AtDisableRowSecurity
                        | A::AtForceRowSecurity
                        | A::AtNoForceRowSecurity,
                    ) => {}
                    _ => {
                        updated.insert(table.clone());
                    }
                }
            }
        }
        "RenameStmt" => {
            use ObjectType as O;
            if let Some(table) = relation {
                match ObjectType::try_from(int_of(field(stmt, "rename_type"))) {
                    Ok(
                        O::ObjectTable | O::ObjectView | O::ObjectMatview | O::ObjectForeignTable,
                    ) => {
                        updated.insert(table);
                        updated.insert(str_of(field(stmt, "newname")).to_lowercase());
                    }
                    Ok(O::ObjectColumn | O::ObjectAttribute) => {
                        updated.insert(table);
                    }
                    _ => {}
                }
            }
        }
        "AlterObjectSchemaStmt" => {
            if let Some(table) = relation {
                updated.insert(moved(&table, field(stmt, "newschema")));
                updated.insert(table);
            }
        }
        "TruncateStmt" => deleted.extend(items(field(stmt, "relations")).filter_map(range_var)),
        "VacuumStmt" => {
            let full = items(field(stmt, "options")).any(|o| {
                matches!(tagged(o), Some(("DefElem", d)) if str_of(field(d, "defname")).eq_ignore_ascii_case("full"))
            });
            if full {
                always_update = true;
                for r in items(field(stmt, "rels")) {
                    if let Some(("VacuumRelation", v)) = tagged(r) {
                        updated.extend(range_var(field(v, "relation")));
                    }
                }
            }
        }
        "ClusterStmt" => {
            always_update = true;
            updated.extend(relation);
        }
        _ => {}
    }
    let named = |tables: BTreeSet<String>| -> BTreeSet<String> {
        tables.into_iter().filter(|t| !t.is_empty()).collect()
    };
    super::effects::row_effects(
        keyword,
        rewrites_values,
        (!updated.is_empty() || always_update).then(|| named(updated)),
        (!deleted.is_empty()).then(|| named(deleted)),
    )
}

/// A table's name once `SET SCHEMA s` moved it.
fn moved(table: &str, schema: &Value) -> String {
    let bare = table.rsplit('.').next().unwrap_or(table);
    format!("{}.{bare}", str_of(schema).to_lowercase())
}

/// Whether a constraint (or a column definition's constraints) is a
/// foreign key whose ON UPDATE/ON DELETE action changes the referencing
/// rows (anything but NO ACTION and RESTRICT).
fn cascading_foreign_key(def: &Value) -> bool {
    match def {
        Value::Array(a) => a.iter().any(cascading_foreign_key),
        Value::Object(o) => {
            let here = o.contains_key("fk_upd_action")
                && ConstrType::try_from(int_of(field(o, "contype")))
                    == Ok(ConstrType::ConstrForeign)
                && ["fk_upd_action", "fk_del_action"]
                    .iter()
                    .any(|k| !matches!(str_of(field(o, k)), "" | "a" | "r"));
            here || o.values().any(cascading_foreign_key)
        }
        _ => false,
    }
}

/// The column values a statement writes. Without lineage, each written
/// column's sources are every column the statement names, in every table
/// it names (so a masked column anywhere in it counts); `*` when the
/// columns cannot be named.
fn column_writes(name: &str, stmt: &Obj, walk: &Walk, f: &StatementFacts) -> Vec<ColumnWrite> {
    let tables: Vec<String> = f
        .tables_read
        .iter()
        .chain(f.tables_written.iter())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let sources: Vec<ColumnSource> = walk
        .columns
        .iter()
        .map(|c| ColumnSource {
            tables: tables.clone(),
            column: c.clone(),
            transformed: true,
        })
        .collect();
    let target = range_var(field_or_null(stmt, "relation")).unwrap_or_default();
    let write = |column: String, sources: Vec<ColumnSource>| ColumnWrite {
        tables: vec![target.clone()],
        column,
        sources,
    };
    let own = |columns: BTreeSet<String>| -> Vec<ColumnSource> {
        columns
            .into_iter()
            .map(|c| ColumnSource {
                tables: vec![target.clone()],
                column: c,
                transformed: true,
            })
            .collect()
    };
    let mut written: Vec<String> = Vec::new();
    match name {
        "InsertStmt" => {
            let cols = res_target_names(field(stmt, "cols"));
            if cols.is_empty() {
                written.push("*".into());
            }
            written.extend(cols);
            if let Some(c) = field(stmt, "on_conflict_clause").as_object() {
                written.extend(res_target_names(field(c, "target_list")));
            }
        }
        "UpdateStmt" => written.extend(res_target_names(field(stmt, "target_list"))),
        "MergeStmt" => {
            for clause in items(field(stmt, "merge_when_clauses")) {
                let Some(("MergeWhenClause", c)) = tagged(clause) else {
                    written.push("*".into());
                    continue;
                };
                let cols = res_target_names(field(c, "target_list"));
                match CmdType::try_from(int_of(field(c, "command_type"))) {
                    Ok(CmdType::CmdDelete | CmdType::CmdNothing) => {}
                    Ok(CmdType::CmdUpdate) if !cols.is_empty() => written.extend(cols),
                    Ok(CmdType::CmdInsert) if !cols.is_empty() => written.extend(cols),
                    _ => written.push("*".into()),
                }
            }
        }
        "AlterTableStmt" => {
            let mut out = Vec::new();
            for cmd in items(field(stmt, "cmds")) {
                let Some(("AlterTableCmd", c)) = tagged(cmd) else {
                    continue;
                };
                let def = field(c, "def");
                let mut columns = columns_in(def, &walk.names);
                match AlterTableType::try_from(int_of(field(c, "subtype"))) {
                    Ok(AlterTableType::AtAlterColumnType | AlterTableType::AtSetExpression) => {
                        let column = str_of(field(c, "name")).to_lowercase();
                        columns.insert(column.clone());
                        out.push(write(column, own(columns)));
                    }
                    Ok(AlterTableType::AtAddColumn) if !columns.is_empty() => {
                        if let Some(("ColumnDef", d)) = tagged(def) {
                            let column = str_of(field(d, "colname")).to_lowercase();
                            out.push(write(column, own(columns)));
                        }
                    }
                    _ => {}
                }
            }
            return out;
        }
        "RenameStmt" => {
            use ObjectType as O;
            return match ObjectType::try_from(int_of(field(stmt, "rename_type"))) {
                Ok(O::ObjectColumn | O::ObjectAttribute) if !target.is_empty() => {
                    let old = str_of(field(stmt, "subname")).to_lowercase();
                    vec![write(
                        str_of(field(stmt, "newname")).to_lowercase(),
                        own(BTreeSet::from([old])),
                    )]
                }
                Ok(O::ObjectTable | O::ObjectView | O::ObjectMatview | O::ObjectForeignTable)
                    if !target.is_empty() =>
                {
                    vec![renamed(
                        &target,
                        str_of(field(stmt, "newname")).to_lowercase(),
                    )]
                }
                _ => Vec::new(),
            };
        }
        "AlterObjectSchemaStmt" if !target.is_empty() => {
            return vec![renamed(&target, moved(&target, field(stmt, "newschema")))];
        }
        _ => return Vec::new(),
    }
    written
        .into_iter()
        .map(|c| write(c, sources.clone()))
        .collect()
}

/// A renamed or moved table: every value of the old one now lives under a
/// name column rules may not cover.
fn renamed(old: &str, new: String) -> ColumnWrite {
    ColumnWrite {
        tables: vec![new],
        column: "*".into(),
        sources: vec![ColumnSource {
            tables: vec![old.to_string()],
            column: "*".into(),
            transformed: false,
        }],
    }
}

/// The column names of a list of `ResTarget`s (`SET a[1] = …` writes `a`).
fn res_target_names(list: &Value) -> Vec<String> {
    items(list)
        .filter_map(|n| match tagged(n) {
            Some(("ResTarget", r)) => non_empty(field(r, "name")).map(|s| s.to_lowercase()),
            _ => None,
        })
        .collect()
}

/// What one walk over a statement's whole parse tree finds.
#[derive(Default)]
struct Walk<'a> {
    /// The text parsed, which node locations point into.
    sql: &'a str,
    /// CTE names visible at the node being walked, per enclosing WITH.
    scopes: Vec<Vec<String>>,
    /// Every relation, alias and CTE name in the statement: a one-part
    /// column reference with such a name may be a whole row.
    names: BTreeSet<String>,
    /// Relations named (CTE references resolved away), with their count.
    relations: BTreeMap<String, usize>,
    functions: BTreeSet<String>,
    /// Every column named anywhere, lower-case; `*` for a star or a row.
    columns: BTreeSet<String>,
    computed: BTreeSet<String>,
    nested: Found<'a>,
}

impl<'a> Walk<'a> {
    fn value(&mut self, v: &'a Value) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| self.value(x)),
            Value::Object(o) => self.object(o),
            _ => {}
        }
    }

    /// One message of the tree: a relation or a call wherever it sits
    /// (a field of its own type or a tagged node), then its fields.
    fn object(&mut self, o: &'a Obj) {
        if is_range_var(o) {
            let hidden = str_of(field(o, "schemaname")).is_empty()
                && str_of(field(o, "catalogname")).is_empty()
                && {
                    let rel = str_of(field(o, "relname")).to_lowercase();
                    self.scopes.iter().any(|s| s.contains(&rel))
                };
            if !hidden {
                *self.relations.entry(relation_name(o)).or_default() += 1;
            }
        }
        if o.contains_key("func_variadic") && o.contains_key("funcname") {
            self.functions
                .insert(strings(field(o, "funcname")).join("."));
        }
        match o.get("with_clause").and_then(Value::as_object) {
            Some(with) => self.with(o, with),
            None => self.fields(o, None),
        }
    }

    /// A statement with a WITH clause: a CTE's name hides a table of that
    /// name in the statement, in later CTEs, and (WITH RECURSIVE) in its
    /// own body and earlier ones.
    fn with(&mut self, o: &'a Obj, with: &'a Obj) {
        let ctes: Vec<&'a Value> = items(field(with, "ctes")).collect();
        let names: Vec<String> = ctes
            .iter()
            .filter_map(|c| match tagged(c) {
                Some(("CommonTableExpr", c)) => Some(str_of(field(c, "ctename")).to_lowercase()),
                _ => None,
            })
            .collect();
        let recursive = bool_of(field(with, "recursive"));
        for (i, cte) in ctes.iter().enumerate() {
            let visible = if recursive {
                names.clone()
            } else {
                names[..i.min(names.len())].to_vec()
            };
            self.scopes.push(visible);
            self.value(cte);
            self.scopes.pop();
        }
        self.scopes.push(names);
        self.fields(o, Some("with_clause"));
        self.scopes.pop();
    }

    fn fields(&mut self, o: &'a Obj, skip: Option<&str>) {
        for (k, v) in o {
            if Some(k.as_str()) == skip {
                continue;
            }
            if let Some(n) = v.as_object() {
                self.node(k, n);
            }
            self.value(v);
        }
    }

    /// A tagged node (`{"ColumnRef": {…}}`): what it adds besides its fields.
    fn node(&mut self, tag: &'a str, n: &'a Obj) {
        match tag {
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" | "ExecuteStmt" => {
                let visible = self.scopes.concat();
                self.nested.push((tag, n, visible));
            }
            "ColumnRef" => {
                let names = column_ref_names(n, &self.names);
                self.columns.extend(names);
            }
            "AIndirection" => {
                // `(row).field`: the field is a column too.
                let fields: Vec<String> = items(field(n, "indirection"))
                    .filter_map(|i| match tagged(i) {
                        Some(("String", s)) => Some(str_of(field(s, "sval")).to_lowercase()),
                        _ => None,
                    })
                    .collect();
                self.columns.extend(fields);
            }
            "TypeCast" => self.cast(n),
            "AExpr" => self.a_expr(n),
            "SubLink" => self.sub_link(n),
            "CaseExpr" if !field(n, "arg").is_null() => {
                // `CASE x WHEN y …` compares x with each y.
                let mut sides = vec![field(n, "arg")];
                for w in items(field(n, "args")) {
                    if let Some(("CaseWhen", cw)) = tagged(w) {
                        sides.push(field(cw, "expr"));
                    }
                }
                self.compare(&sides);
            }
            "RangeFunction" => {
                // As on the parser path, a function in FROM is named among
                // the relations read too.
                for f in items(field(n, "functions")) {
                    if let Some(("List", l)) = tagged(f) {
                        let first = items(field(l, "items")).next().and_then(tagged);
                        if let Some(name) = first.and_then(|(tag, c)| call_name(tag, c)) {
                            *self.relations.entry(name.to_lowercase()).or_default() += 1;
                        }
                    }
                }
            }
            // `TABLESAMPLE method (…)` calls the method's handler function.
            "RangeTableSample" => {
                self.functions.insert(strings(field(n, "method")).join("."));
            }
            // Calls written as syntax: named as the parser path names them.
            // (A `FuncCall` is found by its fields, wherever it sits.)
            _ if tag != "FuncCall" => {
                if let Some(name) = call_name(tag, n) {
                    self.functions.insert(name);
                }
            }
            _ => {}
        }
    }

    /// A cast to a type the SQL parser does not know may run a
    /// user-defined cast function or a domain's CHECK: a call, named
    /// `cast(type)` as on the parser path.
    fn cast(&mut self, n: &Obj) {
        let Some(t) = field(n, "type_name").as_object() else {
            return;
        };
        let parts = strings(field(t, "names"));
        // `pg_catalog.x` as written is a qualified name, custom to the
        // parser path; the grammar's own (`int` is `pg_catalog.int4`) is not.
        let at = usize::try_from(int_of(field(t, "location"))).unwrap_or(0);
        let written = self.sql.get(at..).is_some_and(|rest| {
            rest.trim_start_matches('"')
                .get(..10)
                .is_some_and(|w| w.eq_ignore_ascii_case("pg_catalog"))
        });
        let bare = match parts.as_slice() {
            [schema, name] if schema == "pg_catalog" && !written => name.as_str(),
            // The grammar qualifies the types it spells with keywords
            // (`int`, `char(3)`, `double precision`): unqualified, such a
            // name was quoted (`"char"`), another type than the keyword's.
            [name] if TYPE_KEYWORDS.contains(&name.as_str()) => "",
            [name] => name.as_str(),
            _ => "",
        };
        if !parser_knows_type(bare) {
            self.functions.insert(format!("cast({})", parts.join(".")));
        }
    }

    fn a_expr(&mut self, n: &Obj) {
        let kind = AExprKind::try_from(int_of(field(n, "kind"))).unwrap_or(AExprKind::Undefined);
        let op = strings(field(n, "name"));
        let binary = !field(n, "lexpr").is_null();
        match kind {
            AExprKind::AexprOp | AExprKind::AexprOpAny | AExprKind::AexprOpAll => {
                self.operator(&op, binary)
            }
            AExprKind::AexprNullif => {
                self.functions.insert("nullif".into());
            }
            _ => {}
        }
        // Every kind but a plain operator compares (IN, LIKE, BETWEEN, IS
        // DISTINCT FROM, NULLIF, op ANY/ALL); an operator does unless it
        // computes a value.
        let comparison = kind != AExprKind::AexprOp
            || (binary
                && !op
                    .last()
                    .is_some_and(|o| NOT_COMPARISONS.contains(&o.as_str())));
        if comparison {
            let mut sides = vec![field(n, "lexpr")];
            let right = field(n, "rexpr");
            match tagged(right) {
                Some(("List", l)) => sides.extend(items(field(l, "items"))),
                _ => sides.push(right),
            }
            sides.retain(|s| !s.is_null());
            self.compare(&sides);
        }
    }

    /// `x IN (SELECT …)`, `x op ANY/ALL (SELECT …)`: the left side is
    /// compared with the values the subquery computes, and those values
    /// with it.
    fn sub_link(&mut self, n: &Obj) {
        let op = strings(field(n, "oper_name"));
        if !op.is_empty() {
            self.operator(&op, true);
        }
        let compares = matches!(
            SubLinkType::try_from(int_of(field(n, "sub_link_type"))),
            Ok(SubLinkType::AnySublink | SubLinkType::AllSublink | SubLinkType::RowcompareSublink)
        ) || !field(n, "testexpr").is_null();
        if compares {
            let left = columns_in(field(n, "testexpr"), &self.names);
            self.computed.extend(left);
            // `x IN (SELECT …)` (no operator named) compares the values the
            // subquery returns; `x op ANY (SELECT …)` lists all its columns,
            // as the parser path does.
            let subselect = field(n, "subselect");
            let right = match tagged(subselect) {
                Some(("SelectStmt", s)) if op.is_empty() => {
                    columns_in(field(s, "target_list"), &self.names)
                }
                _ => columns_in(subselect, &self.names),
            };
            self.computed.extend(right);
        }
    }

    /// A comparison of `sides`: plain when each is a bare column or a
    /// constant; otherwise every column on any side is listed.
    fn compare(&mut self, sides: &[&Value]) {
        let plain = sides.iter().all(|s| {
            bare_column(s, &self.names)
                || (columns_in(s, &self.names).is_empty() && !contains_any(s, &["SubLink"]))
        });
        if !plain {
            for s in sides {
                let names = columns_in(s, &self.names);
                self.computed.extend(names);
            }
        }
    }

    fn operator(&mut self, op: &[String], binary: bool) {
        let known = match op {
            [o] if binary => KNOWN_BINARY.contains(&o.as_str()),
            [o] => KNOWN_PREFIX.contains(&o.as_str()),
            _ => false,
        };
        if !known && !op.is_empty() {
            self.functions.insert(format!("operator({})", op.join(".")));
        }
    }
}

/// The function a call-like node calls, named as the parser path names
/// it: a `FuncCall`'s name, and the calls written as syntax (`COALESCE`,
/// `GREATEST`, `CURRENT_USER`, `XMLCONCAT`, `JSON_OBJECT`, …).
fn call_name(tag: &str, n: &Obj) -> Option<String> {
    use pg_query::protobuf::{JsonExprOp, XmlExprOp};
    let name = match tag {
        "FuncCall" => return Some(strings(field(n, "funcname")).join(".")),
        "SqlvalueFunction" => sql_value_function(int_of(field(n, "op"))),
        "CoalesceExpr" => "coalesce",
        "MinMaxExpr" => match MinMaxOp::try_from(int_of(field(n, "op"))) {
            Ok(MinMaxOp::IsLeast) => "least",
            _ => "greatest",
        },
        "GroupingFunc" => "grouping",
        "XmlExpr" => match XmlExprOp::try_from(int_of(field(n, "op"))) {
            Ok(XmlExprOp::IsXmlconcat) => "xmlconcat",
            Ok(XmlExprOp::IsXmlelement) => "xmlelement",
            Ok(XmlExprOp::IsXmlforest) => "xmlforest",
            Ok(XmlExprOp::IsXmlparse) => "xmlparse",
            Ok(XmlExprOp::IsXmlpi) => "xmlpi",
            Ok(XmlExprOp::IsXmlroot) => "xmlroot",
            Ok(XmlExprOp::IsXmlserialize) => "xmlserialize",
            _ => return None,
        },
        "XmlSerialize" => "xmlserialize",
        "JsonObjectConstructor" => "json_object",
        "JsonArrayConstructor" | "JsonArrayQueryConstructor" => "json_array",
        "JsonObjectAgg" => "json_objectagg",
        "JsonArrayAgg" => "json_arrayagg",
        "JsonFuncExpr" => match JsonExprOp::try_from(int_of(field(n, "op"))) {
            Ok(JsonExprOp::JsonExistsOp) => "json_exists",
            Ok(JsonExprOp::JsonQueryOp) => "json_query",
            Ok(JsonExprOp::JsonValueOp) => "json_value",
            _ => "json_table",
        },
        "JsonParseExpr" => "json",
        "JsonScalarExpr" => "json_scalar",
        "JsonSerializeExpr" => "json_serialize",
        _ => return None,
    };
    Some(name.to_string())
}

/// The name the parser path gives `CURRENT_DATE`, `CURRENT_USER`, ….
fn sql_value_function(op: i32) -> &'static str {
    use SqlValueFunctionOp as S;
    match S::try_from(op) {
        Ok(S::SvfopCurrentDate) => "current_date",
        Ok(S::SvfopCurrentTime | S::SvfopCurrentTimeN) => "current_time",
        Ok(S::SvfopCurrentTimestamp | S::SvfopCurrentTimestampN) => "current_timestamp",
        Ok(S::SvfopLocaltime | S::SvfopLocaltimeN) => "localtime",
        Ok(S::SvfopLocaltimestamp | S::SvfopLocaltimestampN) => "localtimestamp",
        Ok(S::SvfopCurrentRole) => "current_role",
        Ok(S::SvfopCurrentUser) => "current_user",
        Ok(S::SvfopUser) => "user",
        Ok(S::SvfopSessionUser) => "session_user",
        Ok(S::SvfopCurrentCatalog) => "current_catalog",
        Ok(S::SvfopCurrentSchema) => "current_schema",
        // Not a name any allow-list holds: fail closed.
        _ => "sql_value_function",
    }
}

/// Whether the SQL parser reads `name` as a built-in type (not a custom
/// one), as the parser path decides which casts to report.
fn parser_knows_type(name: &str) -> bool {
    use sqlparser::ast::DataType;
    use sqlparser::tokenizer::Token;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let Ok(mut p) = sqlparser::parser::Parser::new(&dialect).try_with_sql(name) else {
        return false;
    };
    let known = matches!(p.parse_data_type(), Ok(t) if !matches!(t, DataType::Custom(..)));
    known && p.peek_token().token == Token::EOF
}

/// The column names a `ColumnRef` names: every part (`a.b` is column `b`
/// of table `a`, or field `b` of column `a`), `*` for `t.*`, and `*` for a
/// one-part name that may be a whole row (a relation, alias or CTE of
/// that name is in the statement).
fn column_ref_names(n: &Obj, names: &BTreeSet<String>) -> Vec<String> {
    let fields: Vec<&Value> = items(field(n, "fields")).collect();
    let mut out = Vec::new();
    for f in &fields {
        match tagged(f) {
            Some(("AStar", _)) => out.push("*".to_string()),
            Some(("String", s)) => out.push(str_of(field(s, "sval")).to_lowercase()),
            _ => {}
        }
    }
    if let [only] = out.as_slice() {
        if names.contains(only) {
            out.push("*".to_string());
        }
    }
    out
}

/// A column named by itself: not computed, not a star, not a whole row.
fn bare_column(v: &Value, names: &BTreeSet<String>) -> bool {
    match tagged(v) {
        Some(("ColumnRef", c)) => !column_ref_names(c, names).iter().any(|n| n == "*"),
        _ => false,
    }
}

/// Every column a subtree names (subqueries included).
fn columns_in(v: &Value, names: &BTreeSet<String>) -> BTreeSet<String> {
    fn go(v: &Value, names: &BTreeSet<String>, out: &mut BTreeSet<String>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| go(x, names, out)),
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x.as_object()) {
                        ("ColumnRef", Some(c)) => out.extend(column_ref_names(c, names)),
                        ("AIndirection", Some(i)) => out.extend(
                            items(field(i, "indirection")).filter_map(|i| match tagged(i) {
                                Some(("String", s)) => {
                                    Some(str_of(field(s, "sval")).to_lowercase())
                                }
                                _ => None,
                            }),
                        ),
                        _ => {}
                    }
                    go(x, names, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    go(v, names, &mut out);
    out
}

/// Whether a subtree holds a node with any of these tags.
fn contains_any(v: &Value, tags: &[&str]) -> bool {
    match v {
        Value::Array(a) => a.iter().any(|x| contains_any(x, tags)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| tags.contains(&k.as_str()) || contains_any(x, tags)),
        _ => false,
    }
}

/// Relation, alias and CTE names anywhere in a statement, lower-case.
fn names_in_obj(o: &Obj, out: &mut BTreeSet<String>) {
    if is_range_var(o) {
        out.insert(str_of(field(o, "relname")).to_lowercase());
    }
    for key in ["aliasname", "ctename"] {
        if let Some(Value::String(s)) = o.get(key) {
            out.insert(s.to_lowercase());
        }
    }
    for v in o.values() {
        names_in(v, out);
    }
}

fn names_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| names_in(x, out)),
        Value::Object(o) => names_in_obj(o, out),
        _ => {}
    }
}

/// A `RangeVar`, wherever it sits (only it has these fields).
fn is_range_var(o: &Obj) -> bool {
    o.contains_key("relname") && o.contains_key("relpersistence")
}

/// A relation's name as policy sees it: its parts lower-case, joined by `.`.
fn relation_name(o: &Obj) -> String {
    ["catalogname", "schemaname", "relname"]
        .iter()
        .map(|k| str_of(field(o, k)))
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// The relation a `RangeVar` field or node names, if it is one.
fn range_var(v: &Value) -> Option<String> {
    let o = match tagged(v) {
        Some(("RangeVar", o)) => o,
        _ => v.as_object()?,
    };
    is_range_var(o).then(|| relation_name(o))
}

/// A tagged node: `{"node": {"SelectStmt": {…}}}` is `("SelectStmt", {…})`.
fn tagged(v: &Value) -> Option<(&str, &Obj)> {
    let inner = v.get("node")?.as_object()?;
    let (tag, body) = inner.iter().next()?;
    Some((tag.as_str(), body.as_object()?))
}

/// A message's field. Every field is serialized, so a missing one is a
/// misspelt name: caught in debug builds.
fn field<'v>(o: &'v Obj, key: &str) -> &'v Value {
    debug_assert!(o.contains_key(key), "parse tree node has no field {key}");
    o.get(key).unwrap_or(&NULL)
}

/// A field only some of the messages handled by one caller have.
fn field_or_null<'v>(o: &'v Obj, key: &str) -> &'v Value {
    o.get(key).unwrap_or(&NULL)
}

/// The nodes of a repeated field.
fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The strings of a list of `String` nodes (a qualified name).
fn strings(v: &Value) -> Vec<String> {
    items(v)
        .filter_map(|n| match tagged(n) {
            Some(("String", s)) => Some(str_of(field(s, "sval")).to_string()),
            _ => None,
        })
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn non_empty(v: &Value) -> Option<String> {
    Some(str_of(v).to_string()).filter(|s| !s.is_empty())
}

fn bool_of(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

fn int_of(v: &Value) -> i32 {
    v.as_i64().and_then(|i| i32::try_from(i).ok()).unwrap_or(0)
}
