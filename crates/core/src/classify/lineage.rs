//! Column lineage: which base columns each result column is computed from.
//!
//! Resolution goes through table aliases, derived tables, CTEs, scalar and
//! EXISTS/IN subqueries, functions, casts and operators. Where the trace is
//! ambiguous it over-approximates (an unqualified column may come from any
//! table in scope), because a missed source would let a value out unmasked.

use super::sql::lower_name;
use super::{ColumnSource, OutputColumn};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, TableWithJoins,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// CTEs visible at a point, by name, with their output columns.
#[derive(Debug, Clone, Default)]
pub struct Env {
    ctes: HashMap<String, Vec<OutputColumn>>,
}

/// One entry of a FROM clause.
#[derive(Debug, Clone)]
enum Source {
    /// A base table.
    Table(String),
    /// A derived table or CTE with traced columns.
    Derived(Vec<OutputColumn>),
}

#[derive(Debug, Clone)]
struct ScopeItem {
    alias: String,
    source: Source,
}

/// Result columns of a query.
pub fn query_output(q: &Query, env: &Env) -> Vec<OutputColumn> {
    let mut env = env.clone();
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            let mut out = match cte.query.body.as_ref() {
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) => {
                    set_output(&cte.query.body, &env)
                }
                _ => query_output(&cte.query, &env),
            };
            // `WITH t(a, b) AS (…)` renames the columns.
            for (col, alias) in out.iter_mut().zip(&cte.alias.columns) {
                if let OutputColumn::Expr { name, .. } = col {
                    *name = Some(alias.name.value.to_lowercase());
                }
            }
            env.ctes.insert(cte.alias.name.value.to_lowercase(), out);
        }
    }
    set_output(&q.body, &env)
}

fn set_output(body: &SetExpr, env: &Env) -> Vec<OutputColumn> {
    match body {
        SetExpr::Select(s) => {
            let scope = scope_of(&s.from, env);
            s.projection
                .iter()
                .flat_map(|item| select_item(item, &scope, env))
                .collect()
        }
        SetExpr::Query(q) => query_output(q, env),
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_output(left, env);
            let r = set_output(right, env);
            merge_positions(l, r)
        }
        SetExpr::Values(v) => v
            .rows
            .first()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, e)| OutputColumn::Expr {
                        name: Some(format!("column{}", i + 1)),
                        sources: expr_sources(e, &[], env),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => {
            let facts = super::sql::facts_for(s, super::Dialect::Postgres);
            facts
                .into_iter()
                .next()
                .and_then(|f| f.output)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Columns of a RETURNING clause over the written tables.
pub fn returning_output(items: &[SelectItem], targets: &[String]) -> Vec<OutputColumn> {
    let scope: Vec<ScopeItem> = targets
        .iter()
        .map(|t| ScopeItem {
            alias: last_segment(t),
            source: Source::Table(t.clone()),
        })
        .collect();
    let env = Env::default();
    items
        .iter()
        .flat_map(|i| select_item(i, &scope, &env))
        .collect()
}

/// UNION/INTERSECT/EXCEPT: column i draws from column i of every branch.
fn merge_positions(l: Vec<OutputColumn>, r: Vec<OutputColumn>) -> Vec<OutputColumn> {
    let has_star =
        |v: &[OutputColumn]| v.iter().any(|c| matches!(c, OutputColumn::Wildcard { .. }));
    if has_star(&l) || has_star(&r) || l.len() != r.len() {
        // Positions cannot be aligned: keep every source of both sides in each.
        let mut all: Vec<ColumnSource> = Vec::new();
        let mut tables: Vec<String> = Vec::new();
        for c in l.iter().chain(r.iter()) {
            match c {
                OutputColumn::Expr { sources, .. } => all.extend(sources.iter().cloned()),
                OutputColumn::Wildcard { tables: t } => tables.extend(t.iter().cloned()),
            }
        }
        let mut out = l;
        for c in out.iter_mut() {
            if let OutputColumn::Expr { sources, .. } = c {
                *sources = all.clone();
            }
        }
        if !tables.is_empty() {
            out.push(OutputColumn::Wildcard { tables });
        }
        return out;
    }
    l.into_iter()
        .zip(r)
        .map(|(a, b)| match (a, b) {
            (
                OutputColumn::Expr { name, mut sources },
                OutputColumn::Expr { sources: more, .. },
            ) => {
                sources.extend(more);
                sources.sort();
                sources.dedup();
                OutputColumn::Expr { name, sources }
            }
            (a, _) => a,
        })
        .collect()
}

fn scope_of(from: &[TableWithJoins], env: &Env) -> Vec<ScopeItem> {
    let mut scope = Vec::new();
    for twj in from {
        add_factor(&twj.relation, env, &mut scope);
        for j in &twj.joins {
            add_factor(&j.relation, env, &mut scope);
        }
    }
    scope
}

fn add_factor(factor: &TableFactor, env: &Env, scope: &mut Vec<ScopeItem>) {
    match factor {
        TableFactor::Table {
            name, alias, args, ..
        } if args.is_none() => {
            let full = lower_name(&name.to_string());
            let alias_name = alias
                .as_ref()
                .map(|a| a.name.value.to_lowercase())
                .unwrap_or_else(|| last_segment(&full));
            let source = match env.ctes.get(&full) {
                Some(cols) => Source::Derived(cols.clone()),
                None => Source::Table(full),
            };
            scope.push(ScopeItem {
                alias: alias_name,
                source,
            });
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let mut cols = query_output(subquery, env);
            if let Some(a) = alias {
                for (col, c) in cols.iter_mut().zip(&a.columns) {
                    if let OutputColumn::Expr { name, .. } = col {
                        *name = Some(c.name.value.to_lowercase());
                    }
                }
            }
            let alias_name = alias
                .as_ref()
                .map(|a| a.name.value.to_lowercase())
                .unwrap_or_default();
            scope.push(ScopeItem {
                alias: alias_name,
                source: Source::Derived(cols),
            });
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            scope.extend(scope_of(std::slice::from_ref(table_with_joins), env));
        }
        other => function_factor(other, env, scope),
    }
}

/// A function in FROM (`unnest(…)`, `json_each_text(…)`, `generate_series`):
/// its columns are computed from its arguments, which may read the tables
/// before it (implicitly LATERAL) and whole rows (`json_each(row_to_json(c))`).
fn function_factor(factor: &TableFactor, env: &Env, scope: &mut Vec<ScopeItem>) {
    let mut sources = Vec::new();
    let _ = sqlparser::ast::visit_expressions(factor, |x: &Expr| {
        sources.extend(expr_sources(x, scope, env));
        ControlFlow::<()>::Continue(())
    });
    let mut cols = vec![OutputColumn::Expr {
        name: None,
        sources,
    }];
    let own_name = match factor {
        TableFactor::Table { name, .. } => Some(lower_name(&name.to_string())),
        _ => None,
    };
    let _ = sqlparser::ast::visit_relations(factor, |r| {
        let t = lower_name(&r.to_string());
        if Some(&t) != own_name.as_ref() {
            cols.push(OutputColumn::Wildcard { tables: vec![t] });
        }
        ControlFlow::<()>::Continue(())
    });
    let alias = factor_alias(factor);
    scope.push(ScopeItem {
        alias,
        source: Source::Derived(cols),
    });
}

fn factor_alias(f: &TableFactor) -> String {
    let text = f.to_string().to_lowercase();
    let name = match text.rsplit_once(" as ") {
        Some((_, alias)) => alias,
        None => text.as_str(),
    };
    name.split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_string()
}

fn last_segment(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_string()
}

fn select_item(item: &SelectItem, scope: &[ScopeItem], env: &Env) -> Vec<OutputColumn> {
    match item {
        SelectItem::UnnamedExpr(e) => vec![OutputColumn::Expr {
            name: Some(expr_name(e)),
            sources: expr_sources(e, scope, env),
        }],
        SelectItem::ExprWithAlias { expr, alias } => {
            vec![OutputColumn::Expr {
                name: Some(alias.value.to_lowercase()),
                sources: expr_sources(expr, scope, env),
            }]
        }
        SelectItem::Wildcard(_) => scope.iter().flat_map(expand_star).collect(),
        SelectItem::QualifiedWildcard(kind, _) => {
            let q = match kind {
                SelectItemQualifiedWildcardKind::ObjectName(n) => lower_name(&n.to_string()),
                SelectItemQualifiedWildcardKind::Expr(e) => lower_name(&e.to_string()),
            };
            let matched: Vec<&ScopeItem> = scope
                .iter()
                .filter(|s| s.alias == q || s.alias == last_segment(&q))
                .collect();
            if matched.is_empty() {
                vec![OutputColumn::Wildcard { tables: vec![q] }]
            } else {
                matched.into_iter().flat_map(expand_star).collect()
            }
        }
        other => vec![OutputColumn::Expr {
            name: None,
            sources: expr_sources_from_text(&other.to_string(), scope),
        }],
    }
}

fn expand_star(item: &ScopeItem) -> Vec<OutputColumn> {
    match &item.source {
        Source::Table(t) => vec![OutputColumn::Wildcard {
            tables: vec![t.clone()],
        }],
        Source::Derived(cols) => cols.clone(),
    }
}

/// The column name PostgreSQL gives an unaliased expression.
fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|i| i.value.to_lowercase())
            .unwrap_or_default(),
        Expr::Function(f) => last_segment(&lower_name(&f.name.to_string())),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        _ => "?column?".to_string(),
    }
}

/// Every base column an expression reads.
fn expr_sources(e: &Expr, scope: &[ScopeItem], env: &Env) -> Vec<ColumnSource> {
    let mut out: Vec<ColumnSource> = Vec::new();
    let mut subqueries: Vec<Query> = Vec::new();
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
        match x {
            Expr::Identifier(id) => out.extend(resolve(None, &id.value.to_lowercase(), scope)),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let col = parts[parts.len() - 1].value.to_lowercase();
                let q = parts[parts.len() - 2].value.to_lowercase();
                out.extend(resolve(Some(&q), &col, scope));
            }
            Expr::Subquery(q)
            | Expr::Exists { subquery: q, .. }
            | Expr::InSubquery { subquery: q, .. } => subqueries.push((**q).clone()),
            Expr::QualifiedWildcard(name, _) => {
                out.extend(whole_row(&lower_name(&name.to_string()), scope))
            }
            Expr::Wildcard(_) => out.extend(scope.iter().flat_map(|s| whole_row(&s.alias, scope))),
            Expr::Function(f) => {
                // `to_json(c.*)`, `row(c.*)`, `jsonb_agg(*)`: every column of
                // the row is an argument. `count(*)` reads no column value.
                let is_count = last_segment(&lower_name(&f.name.to_string())) == "count";
                if let FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        let arg = match arg {
                            FunctionArg::Unnamed(a) => a,
                            FunctionArg::Named { arg, .. } | FunctionArg::ExprNamed { arg, .. } => {
                                arg
                            }
                        };
                        match arg {
                            FunctionArgExpr::QualifiedWildcard(name) => {
                                out.extend(whole_row(&lower_name(&name.to_string()), scope))
                            }
                            FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_)
                                if !is_count =>
                            {
                                out.extend(scope.iter().flat_map(|s| whole_row(&s.alias, scope)))
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    for q in &subqueries {
        for col in query_output(q, env) {
            match col {
                OutputColumn::Expr { sources, .. } => out.extend(sources),
                OutputColumn::Wildcard { tables } => out.push(ColumnSource {
                    tables,
                    column: "*".into(),
                }),
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Fallback for projection forms without a structured expression.
fn expr_sources_from_text(text: &str, scope: &[ScopeItem]) -> Vec<ColumnSource> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .flat_map(|w| resolve(None, &w.to_lowercase(), scope))
        .collect()
}

/// Every column of the row `alias` names: `*` of a base table, or all
/// sources of a derived table.
fn whole_row(alias: &str, scope: &[ScopeItem]) -> Vec<ColumnSource> {
    let items: Vec<&ScopeItem> = scope
        .iter()
        .filter(|s| s.alias == alias || s.alias == last_segment(alias))
        .collect();
    if items.is_empty() {
        return vec![ColumnSource {
            tables: vec![alias.to_string()],
            column: "*".into(),
        }];
    }
    items
        .into_iter()
        .flat_map(|s| match &s.source {
            Source::Table(t) => vec![ColumnSource {
                tables: vec![t.clone()],
                column: "*".into(),
            }],
            Source::Derived(cols) => cols
                .iter()
                .flat_map(|c| match c {
                    OutputColumn::Expr { sources, .. } => sources.clone(),
                    OutputColumn::Wildcard { tables } => vec![ColumnSource {
                        tables: tables.clone(),
                        column: "*".into(),
                    }],
                })
                .collect(),
        })
        .collect()
}

/// Where `qualifier.column` (or a bare `column`) comes from.
fn resolve(qualifier: Option<&str>, column: &str, scope: &[ScopeItem]) -> Vec<ColumnSource> {
    // A bare name that is a table alias is a whole-row reference
    // (`select c from customers c`, `to_json(c)`): every column.
    if qualifier.is_none() && scope.iter().any(|s| s.alias == column) {
        return whole_row(column, scope);
    }
    let items: Vec<&ScopeItem> = match qualifier {
        Some(q) => scope.iter().filter(|s| s.alias == q).collect(),
        None => scope.iter().collect(),
    };
    if items.is_empty() {
        // Nothing in scope (or an outer reference): the name alone decides.
        return vec![ColumnSource {
            tables: Vec::new(),
            column: column.to_string(),
        }];
    }
    let base: Vec<String> = items
        .iter()
        .filter_map(|s| match &s.source {
            Source::Table(t) => Some(t.clone()),
            Source::Derived(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    if !base.is_empty() {
        out.push(ColumnSource {
            tables: base,
            column: column.to_string(),
        });
    }
    for s in items {
        if let Source::Derived(cols) = &s.source {
            out.extend(derived_column(cols, column));
        }
    }
    out
}

/// The sources of column `name` of a derived table; when the name cannot
/// be found, every source it has (over-approximation).
fn derived_column(cols: &[OutputColumn], name: &str) -> Vec<ColumnSource> {
    for c in cols {
        if let OutputColumn::Expr {
            name: Some(n),
            sources,
        } = c
        {
            if n == name {
                return sources.clone();
            }
        }
    }
    cols.iter()
        .flat_map(|c| match c {
            OutputColumn::Wildcard { tables } => vec![ColumnSource {
                tables: tables.clone(),
                column: name.to_string(),
            }],
            OutputColumn::Expr { sources, .. } => sources.clone(),
        })
        .collect()
}
