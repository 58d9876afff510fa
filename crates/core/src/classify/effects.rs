//! What a statement does beyond its kind and tables: the functions it
//! calls, the variables it assigns, the column values it writes (with
//! their lineage), and the bulk row changes hidden in DDL.
//!
//! Policy needs these to keep masked values inside the statement that
//! read them: a function call (`set_config`, `pg_notify`, `get_lock`) or a
//! variable assignment (`@v := ssn`) can carry a value past the end of the
//! statement, and a write can copy it into a column no rule masks
//! (`UPDATE customers SET notes = ssn`, `ALTER … TYPE … USING (ssn)`,
//! `RENAME COLUMN ssn TO x`). And rules about updates and deletes must see
//! DDL that rewrites, renames or empties a table (`ALTER … USING`,
//! `TRUNCATE`, `DROP COLUMN`) as what it is.

use super::lineage::{all_sources, query_output, returning_output_in, strip_nesting, Env};
use super::sql::{last_segment, lower_object, named_factor};
use super::{ColumnSource, ColumnWrite, Dialect, OutputColumn, StatementFacts, StatementKind};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ArrayElemTypeDef, Assignment, AssignmentTarget,
    BinaryOperator, DataType, Expr, MergeAction, MergeInsertKind, MergeUpdateKind, ObjectName,
    OnConflictAction, OnInsert, Query, RenameTableNameKind, SelectItem, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, Visit, Visitor,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The functions a statement calls and whether it assigns a variable.
pub fn calls(stmt: &Statement, dialect: Dialect) -> (BTreeSet<String>, bool) {
    let mut v = Calls {
        dialect,
        names: BTreeSet::new(),
        assigns: false,
    };
    let _ = stmt.visit(&mut v);
    (v.names, v.assigns)
}

struct Calls {
    dialect: Dialect,
    names: BTreeSet<String>,
    assigns: bool,
}

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(f) => {
                self.names.insert(function_name(&f.name, self.dialect));
            }
            // A cast to a type the parser does not know may run a
            // user-defined cast function or a domain's CHECK: a call.
            // (MySQL has no user-defined types.)
            Expr::Cast { data_type, .. } if self.dialect == Dialect::Postgres => {
                if let Some(t) = custom_type(data_type, self.dialect) {
                    self.names.insert(format!("cast({t})"));
                }
            }
            Expr::BinaryOp { op, .. } => match op {
                BinaryOperator::Assignment => self.assigns = true,
                BinaryOperator::Custom(o) => {
                    self.names.insert(format!("operator({o})"));
                }
                BinaryOperator::PGCustomBinaryOperator(parts) => {
                    self.names.insert(format!("operator({})", parts.join(".")));
                }
                _ => {}
            },
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => {
                self.names.insert(function_name(name, self.dialect));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<()> {
        // `CALL p(…)` holds its procedure as a bare Function, not an Expr.
        if let Statement::Call(f) = stmt {
            self.names.insert(function_name(&f.name, self.dialect));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let SetExpr::Select(s) = query.body.as_ref() {
            if let Some(into) = &s.into {
                // MySQL's `SELECT … INTO` only ever sets variables (or writes
                // a file); PostgreSQL's creates a table, which is a write.
                self.assigns |= self.dialect == Dialect::MySql
                    || into.targets.iter().any(|t| t.to_string().starts_with('@'));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The name of a type the parser does not know (user-defined, a domain,
/// or a built-in it has no variant for), through array brackets.
fn custom_type(t: &DataType, dialect: Dialect) -> Option<String> {
    match t {
        DataType::Custom(name, _) => Some(function_name(name, dialect)),
        DataType::Array(
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner)
            | ArrayElemTypeDef::Qualified(inner, _),
        ) => custom_type(inner, dialect),
        _ => None,
    }
}

/// A function's name as policy compares it: PostgreSQL folds unquoted
/// names to lower case and keeps quoted ones exact; MySQL's function names
/// are case-insensitive. A schema qualification is kept.
pub fn function_name(name: &ObjectName, dialect: Dialect) -> String {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) if i.quote_style.is_some() && dialect == Dialect::Postgres => i.value.clone(),
            Some(i) => i.value.to_lowercase(),
            None => p.to_string().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The column values a statement writes, each with its lineage; `env`
/// holds the CTEs it may read (see [`super::lineage::ctes_in`]).
pub fn column_writes(stmt: &Statement, env: &Env) -> Vec<ColumnWrite> {
    match stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Merge(s) => column_writes(s, env),
            _ => Vec::new(),
        },
        Statement::Update(upd) => {
            let mut scope: Vec<&TableWithJoins> = vec![&upd.table];
            if let Some(
                sqlparser::ast::UpdateTableFromKind::BeforeSet(v)
                | sqlparser::ast::UpdateTableFromKind::AfterSet(v),
            ) = &upd.from
            {
                scope.extend(v.iter());
            }
            let targets: Vec<(String, String)> = std::iter::once(&upd.table.relation)
                .chain(upd.table.joins.iter().map(|j| &j.relation))
                .filter_map(named_factor)
                .collect();
            assignments(&upd.assignments, &scope, &[], &targets, env)
        }
        Statement::Insert(ins) => insert_writes(ins, env),
        Statement::Merge(m) => {
            let Some((alias, table)) = named_factor(&m.table) else {
                return Vec::new();
            };
            let from = [
                TableWithJoins {
                    relation: m.table.clone(),
                    joins: Vec::new(),
                },
                TableWithJoins {
                    relation: m.source.clone(),
                    joins: Vec::new(),
                },
            ];
            let scope: Vec<&TableWithJoins> = from.iter().collect();
            let targets = [(alias, table)];
            let mut out = Vec::new();
            for clause in &m.clauses {
                match &clause.action {
                    MergeAction::Update(u) => match &u.kind {
                        MergeUpdateKind::Set(a) => {
                            out.extend(assignments(a, &scope, &[], &targets, env))
                        }
                        _ => out.push(whole_table(
                            &targets[0].1,
                            all_in(&clause.action, &scope, env),
                        )),
                    },
                    MergeAction::Insert(i) => {
                        let values = match &i.kind {
                            MergeInsertKind::Values(v) => Some(v),
                            _ => None,
                        };
                        let columns: Vec<String> = i.columns.iter().map(column_of).collect();
                        match values {
                            Some(v) if !columns.is_empty() => {
                                for row in &v.rows {
                                    if row.content.len() != columns.len() {
                                        out.push(whole_table(
                                            &targets[0].1,
                                            all_in(&clause.action, &scope, env),
                                        ));
                                        continue;
                                    }
                                    for (c, e) in columns.iter().zip(row.content.iter()) {
                                        out.push(ColumnWrite {
                                            tables: vec![targets[0].1.clone()],
                                            column: c.clone(),
                                            sources: expr_sources(e, &scope, &[], env),
                                        });
                                    }
                                }
                            }
                            _ => out.push(whole_table(
                                &targets[0].1,
                                all_in(&clause.action, &scope, env),
                            )),
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        Statement::AlterTable(at) => {
            let table = lower_object(&at.name);
            let me = [(last_segment(&table), table.clone())];
            let on = |column: &str, sources: Vec<ColumnSource>| ColumnWrite {
                tables: vec![table.clone()],
                column: column.to_lowercase(),
                sources,
            };
            let itself = |column: &str| ColumnSource {
                tables: vec![table.clone()],
                column: column.to_lowercase(),
                transformed: false,
            };
            let mut out = Vec::new();
            for op in &at.operations {
                match op {
                    AlterTableOperation::AlterColumn {
                        column_name,
                        op: AlterColumnOperation::SetDataType { using, .. },
                    } => {
                        let sources = match using {
                            Some(e) => expr_sources(e, &[], &me, env),
                            None => vec![itself(&column_name.value)],
                        };
                        out.push(on(&column_name.value, sources));
                    }
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        let sources = exprs_sources(&column_def.options, &me, env);
                        if !sources.is_empty() {
                            out.push(on(&column_def.name.value, sources));
                        }
                    }
                    AlterTableOperation::ChangeColumn {
                        old_name,
                        new_name,
                        options,
                        ..
                    } => {
                        let mut sources = exprs_sources(options, &me, env);
                        sources.push(itself(&old_name.value));
                        out.push(on(&new_name.value, sources));
                    }
                    AlterTableOperation::ModifyColumn {
                        col_name, options, ..
                    } => {
                        let mut sources = exprs_sources(options, &me, env);
                        sources.push(itself(&col_name.value));
                        out.push(on(&col_name.value, sources));
                    }
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => out.push(on(
                        &new_column_name.value,
                        vec![itself(&old_column_name.value)],
                    )),
                    AlterTableOperation::RenameTable { table_name } => {
                        let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
                        out.push(renamed(&table, n));
                    }
                    _ => {}
                }
            }
            out
        }
        Statement::RenameTable(renames) => renames
            .iter()
            .map(|r| renamed(&lower_object(&r.old_name), &r.new_name))
            .collect(),
        _ => Vec::new(),
    }
}

/// A renamed table: every value of the old one now lives under a name
/// column rules may not cover.
fn renamed(old: &str, new: &ObjectName) -> ColumnWrite {
    ColumnWrite {
        tables: vec![lower_object(new)],
        column: "*".into(),
        sources: vec![ColumnSource {
            tables: vec![old.to_string()],
            column: "*".into(),
            transformed: false,
        }],
    }
}

/// A write to columns that cannot be told apart.
fn whole_table(table: &str, sources: Vec<ColumnSource>) -> ColumnWrite {
    ColumnWrite {
        tables: vec![table.to_string()],
        column: "*".into(),
        sources,
    }
}

/// Every column any expression of `node` reads.
fn all_in<V: Visit>(node: &V, scope: &[&TableWithJoins], env: &Env) -> Vec<ColumnSource> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_expressions(node, |e: &Expr| {
        out.extend(expr_sources(e, scope, &[], env));
        ControlFlow::<()>::Continue(())
    });
    out.sort();
    out.dedup();
    out
}

/// Every column the expressions in `node` read, in a table's own scope
/// (generated columns, defaults).
fn exprs_sources<V: Visit>(node: &V, me: &[(String, String)], env: &Env) -> Vec<ColumnSource> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_expressions(node, |e: &Expr| {
        out.extend(expr_sources(e, &[], me, env));
        ControlFlow::<()>::Continue(())
    });
    out.sort();
    out.dedup();
    out
}

/// The base columns one expression reads, over FROM entries `from` and
/// the written `targets` (alias, table).
fn expr_sources(
    e: &Expr,
    from: &[&TableWithJoins],
    targets: &[(String, String)],
    env: &Env,
) -> Vec<ColumnSource> {
    returning_output_in(&[SelectItem::UnnamedExpr(e.clone())], from, targets, env)
        .into_iter()
        .flat_map(|c| match c {
            OutputColumn::Expr { sources, .. } => sources,
            OutputColumn::Wildcard { tables } => vec![ColumnSource {
                tables,
                column: "*".into(),
                transformed: false,
            }],
        })
        .collect()
}

/// A column named in a SET target or INSERT column list, lower-case.
fn column_of(n: &ObjectName) -> String {
    last_segment(&lower_object(n))
}

/// `SET a = …, (b, c) = …`: each target column with the value's sources
/// (read over FROM entries `from` and the named tables `scope`). A
/// qualified target (`c.notes`) is written in the table that alias names;
/// an unqualified one in any of the `targets` (alias, table).
fn assignments(
    list: &[Assignment],
    from: &[&TableWithJoins],
    scope: &[(String, String)],
    targets: &[(String, String)],
    env: &Env,
) -> Vec<ColumnWrite> {
    let mut out = Vec::new();
    for a in list {
        let sources = expr_sources(&a.value, from, scope, env);
        let names: Vec<&ObjectName> = match &a.target {
            AssignmentTarget::ColumnName(n) => vec![n],
            AssignmentTarget::Tuple(v) => v.iter().collect(),
        };
        for n in names {
            let full = lower_object(n);
            let column = last_segment(&full);
            let qualifier = full.rsplit_once('.').map(|(q, _)| last_segment(q));
            let tables: Vec<String> = targets
                .iter()
                .filter(|(alias, table)| {
                    qualifier
                        .as_ref()
                        .is_none_or(|q| q == alias || *q == last_segment(table))
                })
                .map(|(_, t)| t.clone())
                .collect();
            let tables = if tables.is_empty() {
                targets.iter().map(|(_, t)| t.clone()).collect()
            } else {
                tables
            };
            out.push(ColumnWrite {
                tables,
                column,
                sources: sources.clone(),
            });
        }
    }
    out
}

/// INSERT: its column list against its source's columns (positionally),
/// MySQL's `INSERT … SET`, and the upsert clauses' assignments.
fn insert_writes(ins: &sqlparser::ast::Insert, env: &Env) -> Vec<ColumnWrite> {
    let table = match (&ins.table, &ins.table_alias) {
        (TableObject::TableName(n), Some(a)) if n.to_string().eq_ignore_ascii_case("only") => {
            a.alias.value.to_lowercase()
        }
        (TableObject::TableName(n), _) => lower_object(n),
        (other, _) => super::sql::lower_name(&other.to_string()),
    };
    let alias = ins
        .table_alias
        .as_ref()
        .map(|a| a.alias.value.to_lowercase())
        .unwrap_or_else(|| last_segment(&table));
    let targets = [(alias, table.clone())];
    let mut out = Vec::new();
    if let Some(q) = &ins.source {
        let cols = query_output(q, env);
        let columns: Vec<String> = ins.columns.iter().map(column_of).collect();
        let aligned = !columns.is_empty()
            && cols.len() == columns.len()
            && cols.iter().all(|c| matches!(c, OutputColumn::Expr { .. }));
        if aligned {
            for (c, col) in columns.iter().zip(cols) {
                if let OutputColumn::Expr { sources, .. } = col {
                    out.push(ColumnWrite {
                        tables: vec![table.clone()],
                        column: c.clone(),
                        sources,
                    });
                }
            }
        } else {
            out.push(whole_table(&table, all_sources(&cols)));
        }
    }
    out.extend(assignments(&ins.assignments, &[], &targets, &targets, env));
    match &ins.on {
        Some(OnInsert::DuplicateKeyUpdate(a)) => {
            out.extend(assignments(a, &[], &targets, &targets, env));
        }
        Some(OnInsert::OnConflict(c)) => {
            if let OnConflictAction::DoUpdate(d) = &c.action {
                let mut scope = targets.to_vec();
                scope.push(("excluded".to_string(), table.clone()));
                out.extend(assignments(&d.assignments, &[], &scope, &targets, env));
            }
        }
        _ => {}
    }
    out
}

/// What DDL does to a table's rows, as nested facts rules about updates
/// and deletes match: rewriting or renaming a table or its columns is an
/// UPDATE of every row (no WHERE); dropping a column, `TRUNCATE` and
/// detaching or dropping partitions are a DELETE of every row. An
/// `ALTER TABLE` operation not known to leave rows alone counts as an
/// UPDATE (fail closed).
///
/// The effects keep the DDL's `keyword`: they are what the statement does
/// to rows, for rules on kinds and tables (an approval for changes to
/// `customers`), not an UPDATE written without a WHERE, which is what a
/// `without_where` rule guards against.
pub fn ddl_effects(stmt: &Statement, keyword: &str) -> Vec<StatementFacts> {
    let mut updated: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    // A `USING` expression sets every row's value: written like an UPDATE
    // without a WHERE, and judged as one (`without_where` rules too).
    let mut rewrites_values = false;
    match stmt {
        Statement::AlterTable(at) => {
            let table = lower_object(&at.name);
            for op in &at.operations {
                use AlterTableOperation as O;
                match op {
                    // A new column whose REFERENCES has a cascading action:
                    // as the table-level foreign key below.
                    O::AddColumn { column_def, .. }
                        if column_def.options.iter().any(|o| {
                            matches!(&o.option, sqlparser::ast::ColumnOption::ForeignKey(fk)
                                if cascades(fk.on_update) || cascades(fk.on_delete))
                        }) =>
                    {
                        updated.insert(table.clone());
                        deleted.insert(table.clone());
                    }
                    O::DropColumn { .. } | O::DropPartitions { .. } | O::DetachPartition { .. } => {
                        deleted.insert(table.clone());
                    }
                    O::RenameTable { table_name } => {
                        let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
                        updated.insert(table.clone());
                        updated.insert(lower_object(n));
                    }
                    O::AlterColumn { op, .. } => {
                        if let AlterColumnOperation::SetDataType { using, .. } = op {
                            updated.insert(table.clone());
                            // `USING expr` computes every row's new value.
                            rewrites_values |= using.is_some();
                        }
                    }
                    // A foreign key on this table whose referential action
                    // changes its rows (`ON UPDATE CASCADE`, `ON DELETE SET
                    // NULL`) lets a write to another table change these rows
                    // later, unseen: as an UPDATE and a DELETE of them now.
                    O::AddConstraint {
                        constraint: sqlparser::ast::TableConstraint::ForeignKey(fk),
                        ..
                    } if cascades(fk.on_update) || cascades(fk.on_delete) => {
                        updated.insert(table.clone());
                        deleted.insert(table.clone());
                    }
                    // Constraints, defaults, triggers, ownership, row security,
                    // storage options and new columns leave existing values as
                    // they are.
                    O::AddConstraint { .. }
                    | O::DropConstraint { .. }
                    | O::AddColumn { .. }
                    | O::RenameConstraint { .. }
                    | O::ValidateConstraint { .. }
                    | O::OwnerTo { .. }
                    | O::EnableRowLevelSecurity
                    | O::DisableRowLevelSecurity
                    | O::ForceRowLevelSecurity
                    | O::NoForceRowLevelSecurity
                    | O::EnableTrigger { .. }
                    | O::DisableTrigger { .. }
                    | O::EnableAlwaysTrigger { .. }
                    | O::EnableReplicaTrigger { .. }
                    | O::EnableRule { .. }
                    | O::DisableRule { .. }
                    | O::EnableAlwaysRule { .. }
                    | O::EnableReplicaRule { .. }
                    | O::ReplicaIdentity { .. }
                    | O::SetOptionsParens { .. }
                    | O::DropIndex { .. }
                    | O::DropPrimaryKey { .. }
                    | O::DropForeignKey { .. }
                    | O::Algorithm { .. }
                    | O::Lock { .. }
                    | O::AutoIncrement { .. } => {}
                    _ => {
                        updated.insert(table.clone());
                    }
                }
            }
        }
        Statement::RenameTable(renames) => {
            for r in renames {
                updated.insert(lower_object(&r.old_name));
                updated.insert(lower_object(&r.new_name));
            }
        }
        Statement::Truncate(t) => {
            deleted.extend(t.table_names.iter().map(|n| lower_object(&n.name)));
        }
        Statement::Vacuum(v) if v.full => {
            updated.extend(v.table_name.iter().map(lower_object));
        }
        _ => {}
    }
    row_effects(
        keyword,
        rewrites_values,
        (!updated.is_empty()).then_some(updated),
        (!deleted.is_empty()).then_some(deleted),
    )
}

/// The nested facts of what DDL does to rows: an UPDATE of `updated` and
/// a DELETE of `deleted`, each when `Some`. They keep the
/// DDL's `keyword`, except that a rewrite computing every row's value
/// (`rewrites_values`, a `USING` expression) is written as an UPDATE.
/// Shared by both readers (this parser's AST and PostgreSQL's grammar).
pub(crate) fn row_effects(
    keyword: &str,
    rewrites_values: bool,
    updated: Option<BTreeSet<String>>,
    deleted: Option<BTreeSet<String>>,
) -> Vec<StatementFacts> {
    let effect = |kind: StatementKind, tables: BTreeSet<String>| {
        let written_as = if rewrites_values && kind == StatementKind::Update {
            "UPDATE"
        } else {
            keyword
        };
        let mut f = super::fallback::unknown_facts(written_as);
        f.kind = kind;
        f.parsed = true;
        f.nested = true;
        f.tables_written = tables;
        f
    };
    let mut out = Vec::new();
    if let Some(updated) = updated {
        out.push(effect(StatementKind::Update, updated));
    }
    if let Some(deleted) = deleted {
        out.push(effect(StatementKind::Delete, deleted));
    }
    out
}

/// Whether a referential action changes the referencing rows.
fn cascades(action: Option<sqlparser::ast::ReferentialAction>) -> bool {
    action.is_some_and(|a| {
        !matches!(
            a,
            sqlparser::ast::ReferentialAction::NoAction
                | sqlparser::ast::ReferentialAction::Restrict
        )
    })
}

/// The columns a statement compares with anything but a constant or a
/// bare column, or through a function or operator (see
/// [`StatementFacts::computed_comparisons`]): every comparison anywhere in
/// it (WHERE, JOIN ON, HAVING, subqueries, LATERAL). `col = 'lit'`,
/// `col IN (…)`, `col LIKE '…'`, `col BETWEEN 1 AND 2`, `a.col = b.col` and
/// `col IS NULL` are plain and not listed.
///
/// [`StatementFacts::computed_comparisons`]: super::StatementFacts::computed_comparisons
pub fn computed_comparisons(stmt: &Statement) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(stmt, |e: &Expr| {
        let sides: Vec<&Expr> = match e {
            Expr::BinaryOp { left, op, right } if is_comparison(op) => vec![left, right],
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. }
            | Expr::RLike { expr, pattern, .. } => vec![expr, pattern],
            Expr::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            Expr::InList { expr, list, .. } => {
                let mut v: Vec<&Expr> = vec![expr];
                v.extend(list.iter());
                v
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => vec![a, b],
            Expr::InSubquery { expr, .. } => {
                // The subquery's values are computed: any column on the left
                // is compared with them.
                let names = column_names(expr);
                out.extend(names);
                return ControlFlow::<()>::Continue(());
            }
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                vec![left, right]
            }
            _ => return ControlFlow::<()>::Continue(()),
        };
        let bare = |x: &Expr| {
            matches!(
                strip_nesting(x),
                Expr::Identifier(_) | Expr::CompoundIdentifier(_)
            )
        };
        let constant = |x: &Expr| column_names(x).is_empty() && !has_subquery(x);
        let plain = sides.iter().all(|s| bare(s) || constant(s));
        if !plain {
            for s in sides {
                out.extend(column_names(s));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

fn is_comparison(op: &BinaryOperator) -> bool {
    use BinaryOperator as B;
    matches!(
        op,
        B::Eq
            | B::NotEq
            | B::Lt
            | B::LtEq
            | B::Gt
            | B::GtEq
            | B::Spaceship
            | B::PGRegexMatch
            | B::PGRegexIMatch
            | B::PGRegexNotMatch
            | B::PGRegexNotIMatch
            | B::PGLikeMatch
            | B::PGILikeMatch
            | B::PGNotLikeMatch
            | B::PGNotILikeMatch
    )
}

/// The column names an expression refers to (subqueries included).
fn column_names(e: &Expr) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
        match x {
            Expr::Identifier(id) => {
                out.insert(id.value.to_lowercase());
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    out.insert(last.value.to_lowercase());
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

fn has_subquery(e: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
        if matches!(
            x,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        ) {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    });
    found
}
