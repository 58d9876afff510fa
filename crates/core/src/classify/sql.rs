//! Facts from the SQL parser's AST (sqlparser), with column lineage.
//!
//! Nothing here reads a literal's value: every fact comes from keywords,
//! identifiers and the statement's shape, so a classification can be
//! cached under the normalized statement.

use super::fallback::unknown_facts;
use super::keyword::{kind_of_keyword, leading_keyword_of_tokens};
use super::lineage::{query_output, returning_output, Env};
use super::scan::tokens;
use super::{ColumnSource, CopyDirection, Dialect, OutputColumn, StatementFacts, StatementKind};
use sqlparser::ast::{
    BinaryOperator, CopySource, Expr, FromTable, Ident, LimitClause, ObjectName, ObjectType, Query,
    SetExpr, Statement, TableAlias, TableFactor, TableObject, TableWithJoins, UpdateTableFromKind,
    UtilityOption, Value, Visit, Visitor,
};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Facts for one parsed statement, followed by facts for the statements
/// nested in it (marked `nested`): data-modifying CTEs, the body of
/// `PREPARE … AS`, the statement under `EXPLAIN`.
pub fn facts_for(stmt: &Statement, dialect: Dialect) -> Vec<StatementFacts> {
    match stmt {
        Statement::Explain {
            statement,
            analyze,
            options,
            ..
        } => {
            let analyze = *analyze || options_say_analyze(options.as_deref());
            let inner = facts_for(statement, dialect);
            let mut head = blank(if analyze {
                "EXPLAIN ANALYZE"
            } else {
                "EXPLAIN"
            });
            head.kind = StatementKind::Explain;
            for f in &inner {
                head.tables_read.extend(f.tables_read.iter().cloned());
                head.tables_read.extend(f.tables_written.iter().cloned());
            }
            // `EXPLAIN ANALYZE` runs the statement, and `EXPLAIN (ANALYZE)`
            // can hide the flag in its options: always judge what is inside.
            let mut out = vec![head];
            out.extend(inner.into_iter().map(into_nested));
            out
        }
        Statement::Prepare {
            name, statement, ..
        } => {
            let mut head = blank("PREPARE");
            head.kind = StatementKind::Prepare;
            head.prepared_name = Some(ident_name(name));
            let mut out = vec![head];
            out.extend(facts_for(statement, dialect).into_iter().map(into_nested));
            out
        }
        _ => {
            let (head, nested) = analyse(stmt, dialect);
            let upsert = upsert_effects(stmt, &head);
            let ddl = super::effects::ddl_effects(stmt, &head.keyword);
            let mut out = vec![head];
            // The outer walk already found statements nested at any depth,
            // so each one's own nested list would only repeat them.
            // A nested statement may read CTEs of the statement around it.
            let ctes = super::lineage::ctes_in(stmt);
            out.extend(nested.iter().map(|s| {
                let mut f = analyse(s, dialect).0;
                f.column_writes = super::effects::column_writes(s, &ctes);
                into_nested(f)
            }));
            out.extend(upsert);
            out.extend(ddl);
            out
        }
    }
}

/// What an INSERT also does besides inserting: `ON DUPLICATE KEY UPDATE`
/// and `ON CONFLICT … DO UPDATE` update existing rows, `REPLACE` deletes
/// them; rules about updates and deletes must see that.
fn upsert_effects(stmt: &Statement, head: &StatementFacts) -> Vec<StatementFacts> {
    let Statement::Insert(ins) = stmt else {
        return Vec::new();
    };
    let also = |kind: StatementKind, keyword: &str| {
        let mut f = blank(keyword);
        f.kind = kind;
        f.tables_written = head.tables_written.clone();
        // Only the rows that collide are touched: not an unbounded write.
        f.has_where = true;
        into_nested(f)
    };
    let mut out = Vec::new();
    match &ins.on {
        Some(sqlparser::ast::OnInsert::DuplicateKeyUpdate(_)) => {
            out.push(also(StatementKind::Update, "UPDATE"));
        }
        Some(sqlparser::ast::OnInsert::OnConflict(c))
            if matches!(c.action, sqlparser::ast::OnConflictAction::DoUpdate(_)) =>
        {
            out.push(also(StatementKind::Update, "UPDATE"));
        }
        _ => {}
    }
    if ins.replace_into {
        out.push(also(StatementKind::Delete, "DELETE"));
    }
    out
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

/// `EXPLAIN (ANALYZE)`, `(ANALYZE true)`, `(ANALYZE on)`: anything but an
/// explicit false counts.
fn options_say_analyze(options: Option<&[UtilityOption]>) -> bool {
    options.unwrap_or_default().iter().any(|o| {
        o.name.value.eq_ignore_ascii_case("analyze")
            && !o.arg.as_ref().is_some_and(|a| {
                let t = a.to_string().to_ascii_lowercase();
                matches!(t.as_str(), "false" | "off" | "0")
            })
    })
}

/// The leading keywords of a parsed statement, from its rendered text.
fn keyword_of(stmt: &Statement, dialect: Dialect) -> String {
    let text = stmt.to_string();
    let keyword = leading_keyword_of_tokens(&tokens(&text, dialect));
    if keyword == "SET" {
        // MySQL's `SET @@GLOBAL.x = …` is `SET GLOBAL x = …` by another
        // spelling; name it the same so one rule covers both.
        let upper = text.to_ascii_uppercase();
        for (marker, named) in [
            ("@@PERSIST_ONLY.", "SET PERSIST_ONLY"),
            ("@@PERSIST.", "SET PERSIST"),
            ("@@GLOBAL.", "SET GLOBAL"),
        ] {
            if upper.contains(marker) {
                return named.to_string();
            }
        }
        // `SET x = 1, GLOBAL y = 2`: a later assignment's scope counts too.
        let words: Vec<&str> = upper
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .collect();
        for scope in ["PERSIST_ONLY", "PERSIST", "GLOBAL"] {
            if words.contains(&scope) {
                return format!("SET {scope}");
            }
        }
    }
    keyword
}

/// What a data-changing statement does to its target.
struct Dml {
    kind: StatementKind,
    targets: Vec<String>,
    has_where: bool,
    output: Option<Vec<OutputColumn>>,
}

/// Facts of one statement (not of what it nests) and the data-modifying
/// statements nested anywhere inside it.
fn analyse(stmt: &Statement, dialect: Dialect) -> (StatementFacts, Vec<Statement>) {
    let root = match stmt {
        Statement::Query(q) => address(q),
        _ => 0,
    };
    let mut rel = Relations {
        root,
        ..Relations::default()
    };
    let _ = stmt.visit(&mut rel);
    let mut f = blank(&keyword_of(stmt, dialect));
    let mut targets: Vec<String> = Vec::new();
    let mut apply = |f: &mut StatementFacts, d: Dml| {
        f.kind = d.kind;
        f.has_where = d.has_where;
        f.output = d.output;
        targets.extend(d.targets);
    };
    match stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                match dml(s) {
                    Some(d) => {
                        f.keyword = d.kind.as_str().to_ascii_uppercase();
                        apply(&mut f, d);
                    }
                    None => f.kind = StatementKind::Unknown,
                }
            }
            _ => {
                f.keyword = "SELECT".into();
                f.has_limit = has_limit(q);
                f.output = Some(query_output(q, &Env::default()));
                // MySQL's `SELECT … INTO` sets variables (see `assigns_variable`).
                let creates = select_into(q).filter(|_| dialect == Dialect::Postgres);
                f.kind = match creates {
                    Some(t) => {
                        f.keyword = "SELECT INTO".into();
                        targets.push(t);
                        StatementKind::Ddl
                    }
                    None => StatementKind::Select,
                };
            }
        },
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => match dml(stmt) {
            Some(d) => apply(&mut f, d),
            None => f.kind = StatementKind::Unknown,
        },
        // `LOCK … IN ACCESS SHARE MODE` takes the lock a SELECT takes and
        // changes nothing (pg_dump sends it for every table it reads): a
        // read of those tables. Stronger modes stay utility (by keyword),
        // for they block other sessions' writes or reads.
        Statement::Lock(l) if l.lock_mode == Some(sqlparser::ast::LockTableMode::AccessShare) => {
            f.kind = StatementKind::Select;
            for t in &l.tables {
                *rel.counts.entry(lower_object(&t.name)).or_default() += 1;
            }
        }
        Statement::Truncate(t) => {
            f.kind = StatementKind::Truncate;
            targets.extend(t.table_names.iter().map(|n| lower_object(&n.name)));
        }
        Statement::Copy { source, to, .. } => {
            f.kind = StatementKind::Copy;
            f.copy_direction = Some(if *to {
                CopyDirection::Out
            } else {
                CopyDirection::In
            });
            match source {
                CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let t = lower_object(table_name);
                    if *to {
                        *rel.counts.entry(t.clone()).or_default() += 1;
                        f.output = Some(copy_table_output(&t, columns));
                    } else {
                        targets.push(t);
                    }
                }
                CopySource::Query(q) => f.output = Some(query_output(q, &Env::default())),
            }
        }
        Statement::Execute { name, .. } => {
            f.kind = StatementKind::Execute;
            f.prepared_name = name
                .as_ref()
                .and_then(|n| n.0.last())
                .and_then(|p| p.as_ident())
                .map(ident_name);
        }
        Statement::Deallocate { name, .. } => {
            f.kind = StatementKind::Deallocate;
            f.prepared_name = Some(ident_name(name));
        }
        Statement::Declare { stmts } => {
            // A cursor: its rows come later through FETCH, which carries no
            // column trace, so the trace is kept under the cursor's name.
            f.kind = StatementKind::Select;
            if let Some(d) = stmts.first() {
                f.prepared_name = d.names.first().map(ident_name);
                if let Some(q) = &d.for_query {
                    f.output = Some(query_output(q, &Env::default()));
                    f.has_limit = has_limit(q);
                }
            }
        }
        Statement::Fetch { name, .. } => {
            f.kind = StatementKind::Select;
            f.prepared_name = Some(ident_name(name));
        }
        Statement::Close { .. } => f.kind = StatementKind::Utility,
        Statement::Drop {
            object_type, names, ..
        } => {
            f.kind = match object_type {
                ObjectType::Role | ObjectType::User => StatementKind::Dcl,
                _ => {
                    targets.extend(names.iter().map(lower_object));
                    StatementKind::Ddl
                }
            };
        }
        Statement::CreateTable(ct) => {
            f.kind = StatementKind::Ddl;
            targets.push(lower_object(&ct.name));
        }
        Statement::CreateView(cv) => {
            f.kind = StatementKind::Ddl;
            targets.push(lower_object(&cv.name));
        }
        Statement::AlterTable(at) => {
            f.kind = StatementKind::Ddl;
            targets.push(lower_object(&at.name));
        }
        Statement::CreateIndex(ci) => {
            f.kind = StatementKind::Ddl;
            targets.push(lower_object(&ci.table_name));
        }
        Statement::LoadData { table_name, .. } => {
            f.kind = StatementKind::Copy;
            f.copy_direction = Some(CopyDirection::In);
            targets.push(lower_object(table_name));
        }
        Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Deny(_)
        | Statement::CreateRole(_)
        | Statement::CreateUser(_)
        | Statement::AlterUser(_)
        | Statement::AlterRole { .. } => f.kind = StatementKind::Dcl,
        Statement::ExplainTable { .. } => f.kind = StatementKind::Show,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => f.kind = StatementKind::Transaction,
        // Everything else is named by its leading keywords; a form the
        // keyword table does not know stays Unknown (fail-closed).
        _ => f.kind = kind_of_keyword(&f.keyword),
    }
    let mut counts = rel.counts;
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
    f.tables_written = targets.into_iter().filter(|t| !t.is_empty()).collect();
    let (functions, assigns) = super::effects::calls(stmt, dialect);
    f.functions = functions;
    f.assigns_variable = assigns;
    f.computed_comparisons = super::effects::computed_comparisons(stmt);
    if matches!(
        f.kind,
        StatementKind::Insert | StatementKind::Update | StatementKind::Merge | StatementKind::Ddl
    ) {
        f.column_writes = super::effects::column_writes(stmt, &super::lineage::ctes_in(stmt));
    }
    (f, rel.modifying)
}

/// `COPY t [(cols)] TO`: the table's columns, or all of them.
fn copy_table_output(table: &str, columns: &[Ident]) -> Vec<OutputColumn> {
    if columns.is_empty() {
        return vec![OutputColumn::Wildcard {
            tables: vec![table.to_string()],
        }];
    }
    columns
        .iter()
        .map(|c| OutputColumn::Expr {
            name: Some(c.value.to_lowercase()),
            sources: vec![ColumnSource {
                tables: vec![table.to_string()],
                column: c.value.to_lowercase(),
                transformed: false,
            }],
        })
        .collect()
}

/// A top-level LIMIT with a count (not `LIMIT ALL`/`LIMIT NULL`, not a
/// bare OFFSET), or FETCH FIRST. A `$n` parameter counts as a limit.
fn has_limit(q: &Query) -> bool {
    let real = |e: &Expr| !matches!(e, Expr::Value(v) if matches!(v.value, Value::Null));
    let limit = match &q.limit_clause {
        Some(LimitClause::LimitOffset { limit, .. }) => limit.as_ref().is_some_and(real),
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => real(limit),
        None => false,
    };
    limit || q.fetch.is_some()
}

/// A WHERE clause that filters no row by any column (`WHERE true`,
/// `WHERE 1 = 1`, `WHERE 'a' = 'a'`), so rules about a missing WHERE still
/// apply. A comparison of two literals counts whatever their values, so
/// the answer does not depend on literals (`WHERE 1 = 2` and `WHERE 1 = 1`
/// share a cache entry).
fn trivially_true(e: &Expr) -> bool {
    let literal = |e: &Expr| matches!(e, Expr::Value(v) if !matches!(v.value, Value::Null));
    match e {
        Expr::Nested(inner) => trivially_true(inner),
        Expr::Value(v) => matches!(v.value, Value::Boolean(true)),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => trivially_true(left) || trivially_true(right),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => trivially_true(left) && trivially_true(right),
        Expr::BinaryOp { left, right, .. } => literal(left) && literal(right),
        Expr::IsNotNull(inner) => literal(inner),
        _ => false,
    }
}

/// The shape of INSERT/UPDATE/DELETE/MERGE: kind, target tables, WHERE,
/// RETURNING lineage.
fn dml(stmt: &Statement) -> Option<Dml> {
    let filters = |w: &Option<Expr>| w.as_ref().is_some_and(|w| !trivially_true(w));
    Some(match stmt {
        Statement::Insert(ins) => {
            let table = match (&ins.table, &ins.table_alias) {
                (TableObject::TableName(n), Some(a)) if is_only_keyword(n) => {
                    a.alias.value.to_lowercase()
                }
                (TableObject::TableName(n), _) => lower_object(n),
                (other, _) => lower_name(&other.to_string()),
            };
            let alias = ins
                .table_alias
                .as_ref()
                .map(|a| a.alias.value.to_lowercase())
                .unwrap_or_else(|| last_segment(&table));
            let output = ins
                .returning
                .as_ref()
                .map(|r| returning_output(r, &[], &[(alias, table.clone())]));
            Dml {
                kind: StatementKind::Insert,
                targets: vec![table],
                has_where: false,
                output,
            }
        }
        Statement::Update(upd) => {
            // MySQL's multi-table UPDATE may write any joined table.
            let mut targets = vec![factor_name(&upd.table.relation)];
            targets.extend(upd.table.joins.iter().map(|j| factor_name(&j.relation)));
            let mut scope = vec![&upd.table];
            if let Some(UpdateTableFromKind::BeforeSet(v) | UpdateTableFromKind::AfterSet(v)) =
                &upd.from
            {
                scope.extend(v.iter());
            }
            let output = upd
                .returning
                .as_ref()
                .map(|r| returning_output(r, &scope, &[]));
            Dml {
                kind: StatementKind::Update,
                targets: targets.into_iter().flatten().collect(),
                has_where: filters(&upd.selection),
                output,
            }
        }
        Statement::Delete(del) => {
            let from = match &del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let scope: Vec<&TableWithJoins> =
                from.iter().chain(del.using.iter().flatten()).collect();
            let targets: Vec<String> = if del.tables.is_empty() {
                from.iter()
                    .flat_map(factors)
                    .filter_map(factor_name)
                    .collect()
            } else {
                // `DELETE a FROM customers a JOIN …` names aliases.
                let aliases: BTreeMap<String, String> = scope
                    .iter()
                    .flat_map(|t| factors(t))
                    .filter_map(named_factor)
                    .collect();
                del.tables
                    .iter()
                    .map(|n| {
                        let n = lower_object(n);
                        aliases.get(&n).cloned().unwrap_or(n)
                    })
                    .collect()
            };
            let output = del
                .returning
                .as_ref()
                .map(|r| returning_output(r, &scope, &[]));
            Dml {
                kind: StatementKind::Delete,
                targets,
                has_where: filters(&del.selection),
                output,
            }
        }
        Statement::Merge(m) => Dml {
            kind: StatementKind::Merge,
            targets: factor_name(&m.table).into_iter().collect(),
            has_where: false,
            output: None,
        },
        _ => return None,
    })
}

/// A FROM entry that names a base table: (alias, table).
pub(super) fn named_factor(f: &TableFactor) -> Option<(String, String)> {
    match f {
        TableFactor::Table { name, alias, .. } => {
            let table = table_of(name, alias.as_ref());
            let a = alias
                .as_ref()
                .map(|a| a.name.value.to_lowercase())
                .unwrap_or_else(|| last_segment(&table));
            Some((a, table))
        }
        _ => None,
    }
}

/// A FROM entry's relation and the relations joined to it.
fn factors(t: &TableWithJoins) -> impl Iterator<Item = &TableFactor> {
    std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
}

/// RETURNING lineage of a data-modifying statement used as a query body.
pub(super) fn returning_of(stmt: &Statement) -> Option<Vec<OutputColumn>> {
    dml(stmt).and_then(|d| d.output)
}

/// The base table a FROM entry names, if it names one.
fn factor_name(f: &TableFactor) -> Option<String> {
    match f {
        TableFactor::Table { name, alias, .. } => Some(table_of(name, alias.as_ref())),
        _ => None,
    }
}

/// `SELECT … INTO newtable` creates a table (PostgreSQL); MySQL's
/// `INTO @var` only sets session variables.
fn select_into(q: &Query) -> Option<String> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let targets: Vec<String> = s
        .into
        .as_ref()?
        .targets
        .iter()
        .map(|t| lower_name(&t.to_string()))
        .filter(|t| !t.starts_with('@'))
        .collect();
    (!targets.is_empty()).then(|| targets.join(","))
}

/// Whether `name` is the bare word `ONLY`: sqlparser 0.63 reads
/// `DELETE FROM ONLY t` as table `only` with alias `t`.
fn is_only_keyword(name: &ObjectName) -> bool {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("only")),
        _ => false,
    }
}

/// The base table a FROM entry names, undoing the `ONLY t` misreading.
pub fn table_of(name: &ObjectName, alias: Option<&TableAlias>) -> String {
    match alias {
        Some(a) if is_only_keyword(name) => a.name.value.to_lowercase(),
        _ => lower_object(name),
    }
}

/// A prepared-statement or cursor name as PostgreSQL compares it: quoted
/// names exactly, unquoted ones folded to lower case.
fn ident_name(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// A name as policy sees it: lower-case, quotes removed.
pub fn lower_name(name: &str) -> String {
    name.replace(['"', '`'], "").to_lowercase()
}

/// An object name as policy sees it: its parts lower-case, joined by `.`.
pub fn lower_object(name: &ObjectName) -> String {
    lower_name(&name.to_string())
}

/// The last part of a qualified name (`public.t` → `t`).
pub fn last_segment(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_string()
}

fn address(q: &Query) -> usize {
    q as *const Query as usize
}

/// Every relation read (CTE names resolved away, with their occurrence
/// count) and every data-modifying statement nested below the root.
#[derive(Default)]
struct Relations {
    /// Address of the statement's own top query, whose body is the
    /// statement itself rather than a nested one.
    root: usize,
    /// CTE names visible in each enclosing query.
    scopes: Vec<Vec<String>>,
    counts: BTreeMap<String, usize>,
    modifying: Vec<Statement>,
    /// `ONLY t` factors seen whose `only` relation is still to be visited.
    skip_only: usize,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if address(query) != self.root {
            if let SetExpr::Insert(s)
            | SetExpr::Update(s)
            | SetExpr::Delete(s)
            | SetExpr::Merge(s) = query.body.as_ref()
            {
                self.modifying.push(s.clone());
            }
        }
        let mut names = Vec::new();
        if let Some(with) = &query.with {
            for (i, cte) in with.cte_tables.iter().enumerate() {
                let name = cte.alias.name.value.to_lowercase();
                if !with.recursive {
                    // In a plain WITH a CTE is not visible in its own body or
                    // in earlier ones: a same-named reference there is the
                    // real table, which scope resolution would hide.
                    for earlier in &with.cte_tables[..=i] {
                        let _ = sqlparser::ast::visit_relations(&earlier.query, |r| {
                            if lower_object(r) == name {
                                *self.counts.entry(name.clone()).or_default() += 1;
                            }
                            ControlFlow::<()>::Continue(())
                        });
                    }
                }
                names.push(name);
            }
        }
        self.scopes.push(names);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias: Some(a),
            ..
        } = factor
        {
            if is_only_keyword(name) {
                // Count the real table; the `only` relation visited next is not one.
                *self.counts.entry(a.name.value.to_lowercase()).or_default() += 1;
                self.skip_only += 1;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if self.skip_only > 0 && is_only_keyword(relation) {
            self.skip_only -= 1;
            return ControlFlow::Continue(());
        }
        let name = lower_object(relation);
        let is_cte = !name.contains('.') && self.scopes.iter().any(|s| s.contains(&name));
        if !is_cte {
            *self.counts.entry(name).or_default() += 1;
        }
        ControlFlow::Continue(())
    }
}
