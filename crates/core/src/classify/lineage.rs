//! Column lineage: which base columns each result column is computed from.
//!
//! Resolution goes through table aliases, derived tables, CTEs (recursive
//! ones too), scalar, EXISTS, IN and ARRAY subqueries (correlated ones see
//! the outer query's tables), functions in FROM, casts and operators.
//! Where the trace is ambiguous it over-approximates (an unqualified column
//! may come from any table in scope), because a missed source lets a value
//! out unmasked.
//!
//! A `*` over a base table is `Wildcard { tables }`. A `*` over a CTE or
//! derived table expands to that table's traced columns (positionally), so
//! masking keeps the precise sources; a `*` inside it stays a `Wildcard`.
//! Where columns are renamed by an alias list (`AS q(a, b)`) over a `*`,
//! the renamed columns cannot be matched up, so each gets every source,
//! with a whole-row source (`column: "*"`) for each starred table. Whole
//! rows (`to_json(c)`, `row(c.*)`, `select c`) are `column: "*"` sources.

use super::sql::{last_segment, lower_name, lower_object, table_of};
use super::{ColumnSource, OutputColumn};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableAlias, TableFactor, TableWithJoins, Visit,
    Visitor,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// What a query can see from outside itself: CTEs by name, and the FROM
/// entries of enclosing queries (for correlated subqueries).
#[derive(Debug, Clone, Default)]
pub struct Env {
    ctes: HashMap<String, Vec<OutputColumn>>,
    outer: Vec<ScopeItem>,
}

/// One entry of a FROM clause.
#[derive(Debug, Clone)]
enum Source {
    /// A base table.
    Table(String),
    /// A derived table, CTE or function with traced columns.
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
            let name = cte.alias.name.value.to_lowercase();
            let aliases = alias_columns(Some(&cte.alias));
            if with.recursive {
                // Until traced, the self-reference contributes nothing.
                env.ctes.insert(name.clone(), Vec::new());
            }
            let mut out = rename(query_output(&cte.query, &env), &aliases);
            if with.recursive {
                // The recursive branch refers to the CTE itself: trace once
                // more with the first pass's columns for the self-reference.
                env.ctes.insert(name.clone(), out);
                out = rename(query_output(&cte.query, &env), &aliases);
            }
            env.ctes.insert(name, out);
        }
    }
    set_output(&q.body, &env)
}

/// Apply an alias column list (`t(a, b)`).
fn rename(mut cols: Vec<OutputColumn>, aliases: &[String]) -> Vec<OutputColumn> {
    if aliases.is_empty() {
        return cols;
    }
    if cols
        .iter()
        .any(|c| matches!(c, OutputColumn::Wildcard { .. }))
    {
        let all = all_sources(&cols);
        return aliases
            .iter()
            .map(|a| OutputColumn::Expr {
                name: Some(a.clone()),
                sources: all.clone(),
            })
            .collect();
    }
    for (col, alias) in cols.iter_mut().zip(aliases) {
        if let OutputColumn::Expr { name, .. } = col {
            *name = Some(alias.clone());
        }
    }
    cols
}

/// Every source of every column, a `*` standing for whole rows.
pub(super) fn all_sources(cols: &[OutputColumn]) -> Vec<ColumnSource> {
    let mut all: Vec<ColumnSource> = Vec::new();
    for c in cols {
        match c {
            OutputColumn::Expr { sources, .. } => all.extend(sources.iter().cloned()),
            OutputColumn::Wildcard { tables } => all.push(ColumnSource {
                tables: tables.clone(),
                column: "*".into(),
                transformed: false,
            }),
        }
    }
    all.sort();
    all.dedup();
    all
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
            merge_positions(set_output(left, env), set_output(right, env))
        }
        SetExpr::Values(v) => {
            let width = v.rows.iter().map(|r| r.content.len()).max().unwrap_or(0);
            (0..width)
                .map(|i| OutputColumn::Expr {
                    name: Some(format!("column{}", i + 1)),
                    sources: v
                        .rows
                        .iter()
                        .filter_map(|row| row.content.get(i))
                        .flat_map(|e| expr_sources(e, &[], env))
                        .collect(),
                })
                .collect()
        }
        SetExpr::Table(t) => {
            let name = match (&t.schema_name, &t.table_name) {
                (Some(s), Some(n)) => format!("{s}.{n}"),
                (None, Some(n)) => n.clone(),
                _ => return Vec::new(),
            };
            let name = lower_name(&name);
            match env.ctes.get(&name) {
                Some(cols) => cols.clone(),
                None => vec![OutputColumn::Wildcard { tables: vec![name] }],
            }
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            super::sql::returning_of(s).unwrap_or_default()
        }
    }
}

/// Every CTE defined anywhere in `node`, traced (outer ones first), for
/// tracing a part of a statement apart from the query that defines its
/// CTEs (`WITH s AS (…) UPDATE t SET c = (SELECT x FROM s)`, a
/// data-modifying CTE that reads a sibling CTE). Names from different
/// scopes share one map: a collision can only add sources.
pub fn ctes_in<V: Visit>(node: &V) -> Env {
    let mut withs = Vec::new();
    let mut collect = CollectWiths(&mut withs);
    let _ = node.visit(&mut collect);
    let mut env = Env::default();
    for with in withs {
        for cte in &with.cte_tables {
            let name = cte.alias.name.value.to_lowercase();
            let aliases = alias_columns(Some(&cte.alias));
            if with.recursive {
                env.ctes.entry(name.clone()).or_default();
                let first = rename(query_output(&cte.query, &env), &aliases);
                env.ctes.insert(name.clone(), first);
            }
            let out = rename(query_output(&cte.query, &env), &aliases);
            env.ctes
                .entry(name)
                .and_modify(|cols| {
                    if cols.len() == out.len() {
                        *cols = merge_positions(std::mem::take(cols), out.clone());
                    } else {
                        *cols = out.clone();
                    }
                })
                .or_insert(out);
        }
    }
    env
}

struct CollectWiths<'a>(&'a mut Vec<sqlparser::ast::With>);

impl Visitor for CollectWiths<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(w) = &query.with {
            self.0.push(w.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Columns of a RETURNING clause: over the written `targets` (alias,
/// table) and the FROM/USING entries in `from`.
pub fn returning_output(
    items: &[SelectItem],
    from: &[&TableWithJoins],
    targets: &[(String, String)],
) -> Vec<OutputColumn> {
    returning_output_in(items, from, targets, &Env::default())
}

/// [`returning_output`] with CTEs visible (see [`ctes_in`]).
pub fn returning_output_in(
    items: &[SelectItem],
    from: &[&TableWithJoins],
    targets: &[(String, String)],
    env: &Env,
) -> Vec<OutputColumn> {
    let env = env.clone();
    let mut scope: Vec<ScopeItem> = targets
        .iter()
        .map(|(alias, table)| ScopeItem {
            alias: alias.clone(),
            source: Source::Table(table.clone()),
        })
        .collect();
    scope.extend(scope_of(from.iter().copied(), &env));
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
        // Positions cannot be aligned: every column may hold anything
        // either side produces, whole rows of starred tables included.
        let mut all = all_sources(&l);
        all.extend(all_sources(&r));
        all.sort();
        all.dedup();
        let star_tables: Vec<String> = all
            .iter()
            .filter(|s| s.column == "*")
            .flat_map(|s| s.tables.iter().cloned())
            .collect();
        return l
            .into_iter()
            .map(|c| match c {
                OutputColumn::Expr { name, .. } => OutputColumn::Expr {
                    name,
                    sources: all.clone(),
                },
                OutputColumn::Wildcard { .. } => OutputColumn::Wildcard {
                    tables: star_tables.clone(),
                },
            })
            .collect();
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

fn scope_of<'a>(from: impl IntoIterator<Item = &'a TableWithJoins>, env: &Env) -> Vec<ScopeItem> {
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
            let full = table_of(name, alias.as_ref());
            let alias_name = alias
                .as_ref()
                .map(|a| a.name.value.to_lowercase())
                .unwrap_or_else(|| last_segment(&full));
            let cte = if full.contains('.') {
                None
            } else {
                env.ctes.get(&full)
            };
            let aliases = alias_columns(alias.as_ref());
            let source = match cte {
                Some(cols) => Source::Derived(rename(cols.clone(), &aliases)),
                // `customers AS c(a, b)` renames the table's first columns,
                // in an order the gateway does not know: each new name may
                // be any column (a whole-row source), and the rest keep
                // their names.
                None if !aliases.is_empty() => {
                    let whole = vec![ColumnSource {
                        tables: vec![full.clone()],
                        column: "*".into(),
                        transformed: false,
                    }];
                    let mut cols: Vec<OutputColumn> = aliases
                        .iter()
                        .map(|a| OutputColumn::Expr {
                            name: Some(a.clone()),
                            sources: whole.clone(),
                        })
                        .collect();
                    cols.push(OutputColumn::Wildcard { tables: vec![full] });
                    Source::Derived(cols)
                }
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
            // A LATERAL subquery sees the entries before it.
            let mut inner = env.clone();
            inner.outer.extend(scope.iter().cloned());
            let cols = rename(
                query_output(subquery, &inner),
                &alias_columns(alias.as_ref()),
            );
            scope.push(ScopeItem {
                alias: alias
                    .as_ref()
                    .map(|a| a.name.value.to_lowercase())
                    .unwrap_or_default(),
                source: Source::Derived(cols),
            });
        }
        TableFactor::NestedJoin {
            table_with_joins,
            alias,
            ..
        } => {
            let inner = scope_of(std::iter::once(table_with_joins.as_ref()), env);
            match alias {
                Some(a) => {
                    let cols = inner.iter().flat_map(expand_star).collect();
                    scope.push(ScopeItem {
                        alias: a.name.value.to_lowercase(),
                        source: Source::Derived(rename(cols, &alias_columns(Some(a)))),
                    });
                }
                None => scope.extend(inner),
            }
        }
        other => function_factor(other, env, scope),
    }
}

/// A function in FROM (`unnest(…)`, `json_each_text(…)`, `generate_series`):
/// its columns are computed from its arguments, which may read the tables
/// before it (implicitly LATERAL) and whole rows (`json_each(row_to_json(c))`),
/// and from any relation named inside it.
fn function_factor(factor: &TableFactor, env: &Env, scope: &mut Vec<ScopeItem>) {
    let mut sources = Vec::new();
    let _ = sqlparser::ast::visit_expressions(factor, |x: &Expr| {
        sources.extend(expr_sources(x, scope, env));
        ControlFlow::<()>::Continue(())
    });
    // What the function returns is computed from its arguments, never the
    // column as stored (`lateral reverse(c.ssn)`).
    for s in &mut sources {
        s.transformed = true;
    }
    sources.sort();
    sources.dedup();
    let mut cols = vec![OutputColumn::Expr {
        name: None,
        sources,
    }];
    let own_name = match factor {
        TableFactor::Table { name, .. } => Some(lower_object(name)),
        _ => None,
    };
    let _ = sqlparser::ast::visit_relations(factor, |r| {
        let t = lower_object(r);
        if Some(&t) != own_name.as_ref() {
            cols.push(OutputColumn::Wildcard { tables: vec![t] });
        }
        ControlFlow::<()>::Continue(())
    });
    scope.push(ScopeItem {
        alias: factor_alias(factor),
        source: Source::Derived(cols),
    });
}

fn alias_columns(alias: Option<&TableAlias>) -> Vec<String> {
    alias
        .map(|a| {
            a.columns
                .iter()
                .map(|c| c.name.value.to_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

/// The name a FROM function is referred to by: its alias, else its name.
fn factor_alias(f: &TableFactor) -> String {
    let alias = match f {
        TableFactor::Table { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::JsonTable { alias, .. }
        | TableFactor::OpenJsonTable { alias, .. }
        | TableFactor::XmlTable { alias, .. } => alias.as_ref(),
        _ => None,
    };
    if let Some(a) = alias {
        return a.name.value.to_lowercase();
    }
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

fn select_item(item: &SelectItem, scope: &[ScopeItem], env: &Env) -> Vec<OutputColumn> {
    match item {
        SelectItem::UnnamedExpr(e) => vec![OutputColumn::Expr {
            name: Some(expr_name(e, env)),
            sources: expr_sources(e, scope, env),
        }],
        SelectItem::ExprWithAlias { expr, alias } => vec![OutputColumn::Expr {
            name: Some(alias.value.to_lowercase()),
            sources: expr_sources(expr, scope, env),
        }],
        SelectItem::ExprWithAliases { expr, aliases } => {
            let sources = expr_sources(expr, scope, env);
            aliases
                .iter()
                .map(|a| OutputColumn::Expr {
                    name: Some(a.value.to_lowercase()),
                    sources: sources.clone(),
                })
                .collect()
        }
        SelectItem::Wildcard(_) => scope.iter().flat_map(expand_star).collect(),
        SelectItem::QualifiedWildcard(kind, _) => {
            let q = match kind {
                SelectItemQualifiedWildcardKind::ObjectName(n) => lower_object(n),
                SelectItemQualifiedWildcardKind::Expr(e) => lower_name(&e.to_string()),
            };
            let matched: Vec<&ScopeItem> = scope.iter().filter(|s| is_alias(s, &q)).collect();
            if matched.is_empty() {
                vec![OutputColumn::Wildcard { tables: vec![q] }]
            } else {
                matched.into_iter().flat_map(expand_star).collect()
            }
        }
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
fn expr_name(e: &Expr, env: &Env) -> String {
    match e {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|i| i.value.to_lowercase())
            .unwrap_or_default(),
        Expr::Function(f) => last_segment(&lower_object(&f.name)),
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::Collate { expr, .. } => {
            expr_name(expr, env)
        }
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Subquery(q) => match query_output(q, env).first() {
            Some(OutputColumn::Expr { name: Some(n), .. }) => n.clone(),
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

/// Every base column an expression reads: identifiers resolved against
/// `scope`, and the outputs of subqueries inside it (traced with this
/// scope as their outer scope).
fn expr_sources(e: &Expr, scope: &[ScopeItem], env: &Env) -> Vec<ColumnSource> {
    let mut walk = ExprWalk::default();
    let _ = e.visit(&mut walk);
    let mut out: Vec<ColumnSource> = Vec::new();
    for (qualifier, column) in &walk.columns {
        out.extend(resolve(qualifier.as_deref(), column, scope, env));
    }
    if !walk.subqueries.is_empty() {
        let mut inner = env.clone();
        inner.outer.extend(scope.iter().cloned());
        for q in &walk.subqueries {
            out.extend(all_sources(&query_output(q, &inner)));
            out.extend(referenced_sources(q, &inner));
        }
    }
    // Anything but the column itself is a value computed from it.
    let bare = matches!(
        strip_nesting(e),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_)
    );
    if !bare {
        for s in &mut out {
            s.transformed = true;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `(x)` is `x`.
pub(super) fn strip_nesting(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nesting(inner),
        other => other,
    }
}

/// Every column a subquery refers to anywhere (its WHERE, joins, GROUP BY,
/// nested subqueries), not only what it returns: a count of rows whose
/// `g <= c.date_of_birth - …` is the date of birth by another name. Names
/// resolve against the subquery's own FROM entries, then the enclosing
/// ones; what cannot be placed counts against every table in scope.
fn referenced_sources(q: &Query, env: &Env) -> Vec<ColumnSource> {
    let own = match q.body.as_ref() {
        SetExpr::Select(s) => scope_of(&s.from, env),
        _ => Vec::new(),
    };
    let mut refs = AllColumns::default();
    let _ = q.visit(&mut refs);
    let mut out = Vec::new();
    for (qualifier, column) in &refs.columns {
        out.extend(resolve(qualifier.as_deref(), column, &own, env));
    }
    for s in &mut out {
        s.transformed = true;
    }
    out
}

/// A column reference, lower-case: `col` as (None, col), `….q.col` as
/// (Some(q), col).
fn column_ref(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(id) => Some((None, id.value.to_lowercase())),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let col = parts[parts.len() - 1].value.to_lowercase();
            let q = parts[parts.len() - 2].value.to_lowercase();
            Some((Some(q), col))
        }
        _ => None,
    }
}

/// Every column reference in a query, at any depth.
#[derive(Default)]
struct AllColumns {
    columns: Vec<(Option<String>, String)>,
}

impl Visitor for AllColumns {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.columns.extend(column_ref(expr));
        ControlFlow::Continue(())
    }
}

/// Column references of an expression outside its subqueries (a column
/// `*` is a whole row), and the subqueries themselves (each traced in its
/// own scope).
#[derive(Default)]
struct ExprWalk {
    depth: usize,
    columns: Vec<(Option<String>, String)>,
    subqueries: Vec<Query>,
}

impl Visitor for ExprWalk {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.subqueries.push(query.clone());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if let Some(c) = column_ref(expr) {
            self.columns.push(c);
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::CompoundIdentifier(parts) => {
                if let Some(p) = parts.first() {
                    self.columns.push((None, p.value.to_lowercase()));
                }
            }
            Expr::QualifiedWildcard(name, _) => {
                self.columns.push((Some(lower_object(name)), "*".into()));
            }
            Expr::Wildcard(_) => self.columns.push((None, "*".into())),
            Expr::Function(f) => {
                // `to_json(c.*)`, `row(c.*)`, `jsonb_agg(*)`: every column of
                // the row is an argument. `count(*)` reads no column value.
                let is_count = last_segment(&lower_object(&f.name)) == "count";
                if let FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        let (FunctionArg::Unnamed(arg)
                        | FunctionArg::Named { arg, .. }
                        | FunctionArg::ExprNamed { arg, .. }) = arg;
                        match arg {
                            FunctionArgExpr::QualifiedWildcard(name) => {
                                self.columns.push((Some(lower_object(name)), "*".into()))
                            }
                            FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_)
                                if !is_count =>
                            {
                                self.columns.push((None, "*".into()))
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Whether a FROM entry answers to `name` (`c`, or `public.c` for `c`).
fn is_alias(item: &ScopeItem, name: &str) -> bool {
    item.alias == name || item.alias == last_segment(name)
}

/// Where `qualifier.column` (or a bare `column`) comes from: the local
/// scope first, then enclosing queries' scopes. A column `*` is a whole
/// row (`c.*`, `*` as a function argument), and so is a bare name that is
/// a FROM entry's alias (`select c from customers c`, `to_json(c)`).
fn resolve(
    qualifier: Option<&str>,
    column: &str,
    scope: &[ScopeItem],
    env: &Env,
) -> Vec<ColumnSource> {
    let whole_row_of = match (qualifier, column) {
        (q, "*") => Some(q),
        (None, c) if scope.iter().chain(&env.outer).any(|s| s.alias == c) => Some(Some(c)),
        _ => None,
    };
    if let Some(alias) = whole_row_of {
        let hit = |s: &&ScopeItem| alias.is_none_or(|a| is_alias(s, a));
        let mut items: Vec<&ScopeItem> = scope.iter().filter(hit).collect();
        if items.is_empty() {
            items = env.outer.iter().filter(hit).collect();
        }
        if items.is_empty() {
            return vec![ColumnSource {
                tables: alias.map(|a| vec![a.to_string()]).unwrap_or_default(),
                column: "*".into(),
                transformed: false,
            }];
        }
        return items.into_iter().flat_map(whole_row).collect();
    }
    let hit = |s: &&ScopeItem| qualifier.is_none_or(|q| is_alias(s, q));
    let mut items: Vec<&ScopeItem> = scope.iter().filter(hit).collect();
    if qualifier.is_none() || items.is_empty() {
        // An unqualified name may also be an outer column (PostgreSQL
        // looks outward when no local table has it): over-approximate.
        items.extend(env.outer.iter().filter(hit));
    }
    if items.is_empty() {
        // Nothing in scope (a typo, a function of nothing): the column
        // name alone decides, which matches rules for any table.
        return vec![ColumnSource {
            tables: Vec::new(),
            column: column.to_string(),
            transformed: false,
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
            transformed: false,
        });
    }
    for s in items {
        if let Source::Derived(cols) = &s.source {
            out.extend(derived_column(cols, column));
        }
    }
    out
}

/// Every column of one FROM entry's row: `*` of a base table, or all
/// sources of a derived table.
fn whole_row(item: &ScopeItem) -> Vec<ColumnSource> {
    match &item.source {
        Source::Table(t) => vec![ColumnSource {
            tables: vec![t.clone()],
            column: "*".into(),
            transformed: false,
        }],
        Source::Derived(cols) => all_sources(cols),
    }
}

/// The sources of column `name` of a derived table; when the name cannot
/// be found, every source it has (over-approximation), with the name
/// looked up in its starred tables.
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
                transformed: false,
            }],
            OutputColumn::Expr { sources, .. } => sources.clone(),
        })
        .collect()
}
