//! Facts from the SQL parser's AST (sqlparser), with column lineage.

use super::fallback::classify_by_keywords;
use super::lineage::{query_output, returning_output, Env};
use super::{CopyDirection, Dialect, OutputColumn, StatementFacts, StatementKind};
use sqlparser::ast::{
    CopySource, FromTable, ObjectName, ObjectType, Query, SetExpr, Statement, Visit, Visitor,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// Facts for one parsed statement, followed by facts for the statements
/// nested in it (marked `nested`).
pub fn facts_for(stmt: &Statement, dialect: Dialect) -> Vec<StatementFacts> {
    let mut nested = Vec::new();
    let text = stmt.to_string();
    let keyword = classify_by_keywords(&text, dialect).keyword;
    let mut f = StatementFacts {
        kind: StatementKind::Unknown,
        keyword,
        tables_read: BTreeSet::new(),
        tables_written: BTreeSet::new(),
        has_where: false,
        has_limit: false,
        copy_direction: None,
        prepared_name: None,
        output: None,
        parsed: true,
        nested: false,
    };
    let mut relations = Relations::default();
    let _ = stmt.visit(&mut relations);
    for cte_stmt in &relations.modifying_ctes {
        let mut inner = facts_for(cte_stmt, dialect);
        for i in inner.iter_mut() {
            i.nested = true;
        }
        nested.extend(inner);
    }
    let all: BTreeSet<String> = relations
        .names
        .difference(&relations.ctes)
        .cloned()
        .collect();
    let mut written: BTreeSet<String> = BTreeSet::new();
    f.kind = match stmt {
        Statement::Query(q) => {
            f.has_limit = q.limit_clause.is_some() || q.fetch.is_some();
            f.output = Some(query_output(q, &Env::default()));
            match select_into(q) {
                Some(target) => {
                    written.insert(target);
                    StatementKind::Ddl
                }
                None => StatementKind::Select,
            }
        }
        Statement::Insert(ins) => {
            written.insert(lower_name(&ins.table.to_string()));
            f.output = ins
                .returning
                .as_ref()
                .map(|r| returning_output(r, &[lower_name(&ins.table.to_string())]));
            StatementKind::Insert
        }
        Statement::Update(upd) => {
            f.has_where = upd.selection.as_ref().is_some_and(|w| !trivially_true(w));
            let target = lower_name(&upd.table.relation.to_string());
            let target = target.split_whitespace().next().unwrap_or("").to_string();
            f.output = upd
                .returning
                .as_ref()
                .map(|r| returning_output(r, std::slice::from_ref(&target)));
            written.insert(target);
            StatementKind::Update
        }
        Statement::Delete(del) => {
            f.has_where = del.selection.as_ref().is_some_and(|w| !trivially_true(w));
            let from = match &del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let mut targets: Vec<String> = del
                .tables
                .iter()
                .map(|n| lower_name(&n.to_string()))
                .collect();
            if targets.is_empty() {
                targets = from
                    .iter()
                    .map(|t| {
                        lower_name(&t.relation.to_string())
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect();
            }
            f.output = del
                .returning
                .as_ref()
                .map(|r| returning_output(r, &targets));
            written.extend(targets);
            StatementKind::Delete
        }
        Statement::Merge(m) => {
            written.insert(
                lower_name(&m.table.to_string())
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
            StatementKind::Merge
        }
        Statement::Truncate(t) => {
            for n in &t.table_names {
                written.insert(lower_name(&n.name.to_string()));
            }
            StatementKind::Truncate
        }
        Statement::Copy { source, to, .. } => {
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
                    let t = lower_name(&table_name.to_string());
                    if *to {
                        f.output = Some(if columns.is_empty() {
                            vec![OutputColumn::Wildcard {
                                tables: vec![t.clone()],
                            }]
                        } else {
                            columns
                                .iter()
                                .map(|c| OutputColumn::Expr {
                                    name: Some(c.value.to_lowercase()),
                                    sources: vec![super::ColumnSource {
                                        tables: vec![t.clone()],
                                        column: c.value.to_lowercase(),
                                    }],
                                })
                                .collect()
                        });
                    } else {
                        written.insert(t);
                    }
                }
                CopySource::Query(q) => f.output = Some(query_output(q, &Env::default())),
            }
            StatementKind::Copy
        }
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => StatementKind::Transaction,
        Statement::Call(_) => StatementKind::Call,
        Statement::Prepare {
            name, statement, ..
        } => {
            f.prepared_name = Some(ident_name(name));
            let mut inner = facts_for(statement, dialect);
            for i in inner.iter_mut() {
                i.nested = true;
            }
            nested.splice(0..0, inner);
            StatementKind::Prepare
        }
        Statement::Execute { name, .. } => {
            f.prepared_name = name
                .as_ref()
                .and_then(|n| n.0.last())
                .and_then(|p| p.as_ident())
                .map(ident_name);
            StatementKind::Execute
        }
        Statement::Deallocate { name, .. } => {
            f.prepared_name = Some(ident_name(name));
            StatementKind::Deallocate
        }
        Statement::Explain { statement, .. } => {
            // `EXPLAIN ANALYZE` runs the statement, and `EXPLAIN (ANALYZE)`
            // hides the flag in its options: always judge what is inside.
            for mut i in facts_for(statement, dialect) {
                i.nested = true;
                nested.push(i);
            }
            StatementKind::Explain
        }
        Statement::Set(_) | Statement::Reset(_) => StatementKind::Set,
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => StatementKind::Show,
        Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Deny(_)
        | Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_) => StatementKind::Dcl,
        Statement::Drop {
            object_type, names, ..
        } => {
            for n in names {
                written.insert(lower_name(&n.to_string()));
            }
            match object_type {
                ObjectType::Role | ObjectType::User => StatementKind::Dcl,
                _ => StatementKind::Ddl,
            }
        }
        Statement::CreateTable(ct) => {
            written.insert(lower_name(&ct.name.to_string()));
            StatementKind::Ddl
        }
        Statement::CreateView(cv) => {
            written.insert(lower_name(&cv.name.to_string()));
            StatementKind::Ddl
        }
        Statement::AlterTable(at) => {
            written.insert(lower_name(&at.name.to_string()));
            StatementKind::Ddl
        }
        Statement::CreateIndex(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateTrigger(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::CreateExtension(_)
        | Statement::CreateDomain(_)
        | Statement::CreatePolicy(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. }
        | Statement::AlterSchema(_)
        | Statement::AlterType(_)
        | Statement::AlterFunction(_)
        | Statement::AlterPolicy(_)
        | Statement::DropFunction(_)
        | Statement::DropDomain(_)
        | Statement::DropProcedure { .. }
        | Statement::DropPolicy(_)
        | Statement::DropTrigger(_)
        | Statement::DropExtension(_)
        | Statement::Comment { .. }
        | Statement::RenameTable(_) => StatementKind::Ddl,
        Statement::Declare { stmts } => {
            // A cursor: its rows come later through FETCH, which carries no
            // column trace, so the trace is kept under the cursor's name.
            if let Some(d) = stmts.first() {
                f.prepared_name = d.names.first().map(ident_name);
                f.output = d
                    .for_query
                    .as_ref()
                    .map(|q| query_output(q, &Env::default()));
                if let Some(q) = &d.for_query {
                    f.has_limit = q.limit_clause.is_some() || q.fetch.is_some();
                }
            }
            StatementKind::Select
        }
        Statement::Fetch { name, .. } => {
            f.prepared_name = Some(ident_name(name));
            StatementKind::Select
        }
        Statement::Close { .. } => StatementKind::Utility,
        Statement::LoadData { .. } => {
            f.copy_direction = Some(CopyDirection::In);
            StatementKind::Copy
        }
        Statement::Lock(_)
        | Statement::LockTables { .. }
        | Statement::UnlockTables
        | Statement::Vacuum(_)
        | Statement::Analyze(_)
        | Statement::Discard { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Kill { .. }
        | Statement::Flush { .. }
        | Statement::Use(_) => StatementKind::Utility,
        _ => StatementKind::Unknown,
    };
    f.tables_read = all.difference(&written).cloned().collect();
    if matches!(f.kind, StatementKind::Copy) && f.copy_direction == Some(CopyDirection::Out) {
        if let Statement::Copy {
            source: CopySource::Table { table_name, .. },
            ..
        } = stmt
        {
            f.tables_read.insert(lower_name(&table_name.to_string()));
        }
    }
    f.tables_written = written.into_iter().filter(|t| !t.is_empty()).collect();
    let mut out = vec![f];
    out.extend(nested);
    out
}

/// A prepared-statement or cursor name as PostgreSQL compares it: quoted
/// names exactly, unquoted ones folded to lower case.
fn ident_name(id: &sqlparser::ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// A WHERE clause that filters nothing (`WHERE true`, `WHERE 1 = 1`,
/// `WHERE 'a' = 'a'`), so UPDATE/DELETE rules about a missing WHERE still apply.
fn trivially_true(e: &sqlparser::ast::Expr) -> bool {
    use sqlparser::ast::{BinaryOperator, Expr, Value};
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
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq | BinaryOperator::GtEq | BinaryOperator::LtEq,
            right,
        } => {
            matches!((left.as_ref(), right.as_ref()), (Expr::Value(a), Expr::Value(b)) if a.value == b.value)
        }
        Expr::IsNotNull(inner) => {
            matches!(inner.as_ref(), Expr::Value(_))
                && !matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, Value::Null))
        }
        _ => false,
    }
}

/// `SELECT … INTO newtable` creates a table (PostgreSQL).
fn select_into(q: &Query) -> Option<String> {
    match q.body.as_ref() {
        SetExpr::Select(s) => s.into.as_ref().map(|i| {
            i.targets
                .iter()
                .map(|t| lower_name(&t.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        }),
        _ => None,
    }
}

/// A name as policy sees it: lower-case, quotes removed.
pub fn lower_name(name: &str) -> String {
    name.replace(['"', '`'], "").to_lowercase()
}

/// Every relation named anywhere, every CTE name, and every
/// data-modifying CTE body.
#[derive(Default)]
struct Relations {
    names: BTreeSet<String>,
    ctes: BTreeSet<String>,
    modifying_ctes: Vec<Statement>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.names.insert(lower_name(&relation.to_string()));
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
                match cte.query.body.as_ref() {
                    SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => {
                        self.modifying_ctes.push(s.clone())
                    }
                    _ => {}
                }
            }
        }
        ControlFlow::Continue(())
    }
}
