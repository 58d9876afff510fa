//! PostgreSQL's grammar as the second reader: the forms sqlparser cannot
//! read, and the cover the grammar's facts give over the parser's where
//! both read a statement.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const PG: Dialect = Dialect::Postgres;

/// The grammar's facts for `sql`, which sqlparser must not read (so the
/// test is about the grammar path) and the classifier must take.
fn grammar(sql: &str) -> Vec<StatementFacts> {
    let d = parser_dialect(PG);
    assert!(
        sqlparser::parser::Parser::parse_sql(d.as_ref(), sql).is_err(),
        "sqlparser reads {sql}: pick a form it cannot read"
    );
    let facts = pg_grammar::facts(sql).unwrap_or_else(|| panic!("the grammar rejects {sql}"));
    let c = classify(sql, PG);
    assert_eq!(
        c.statements, facts,
        "{sql}: the classifier takes the grammar's facts"
    );
    assert!(c.parse_error.is_none(), "{sql}: {:?}", c.parse_error);
    assert!(facts.iter().all(|f| f.parsed), "{sql}: {facts:?}");
    facts
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn array_subscripts_in_targets() {
    let f = grammar("UPDATE t SET arr[1] = 2, b = c WHERE id = 1");
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].keyword.as_str()),
        (StatementKind::Update, "UPDATE")
    );
    assert_eq!(f[0].tables_written, set(&["t"]));
    assert!(f[0].has_where);
    let written: Vec<&str> = f[0]
        .column_writes
        .iter()
        .map(|w| w.column.as_str())
        .collect();
    assert_eq!(written, vec!["arr", "b"]);
    let f = grammar("INSERT INTO public.t (f2[1], f3) VALUES (1, 2)");
    assert_eq!(
        (f[0].kind, f[0].keyword.as_str()),
        (StatementKind::Insert, "INSERT")
    );
    assert_eq!(f[0].tables_written, set(&["public.t"]));
    let written: Vec<&str> = f[0]
        .column_writes
        .iter()
        .map(|w| w.column.as_str())
        .collect();
    assert_eq!(written, vec!["f2", "f3"]);
    assert!(!grammar("UPDATE t SET arr[1] = 2")[0].has_where);
}

#[test]
fn variadic_calls_and_window_exclusion() {
    let f = grammar("SELECT my_concat(VARIADIC ARRAY[a, b]) FROM s.t WHERE id = 1");
    assert_eq!(
        (f[0].kind, f[0].keyword.as_str()),
        (StatementKind::Select, "SELECT")
    );
    assert_eq!(f[0].tables_read, set(&["s.t"]));
    assert_eq!(f[0].functions, set(&["my_concat"]));
    assert_eq!(f[0].output, None, "the grammar path traces no column");
    let f = grammar(
        "SELECT sum(x) OVER (ORDER BY y ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW), \
         rank() OVER w FROM orders WINDOW w AS (ORDER BY y GROUPS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE TIES)",
    );
    assert_eq!(f[0].tables_read, set(&["orders"]));
    assert_eq!(f[0].functions, set(&["rank", "sum"]));
}

#[test]
fn where_current_of_is_a_where() {
    for sql in [
        "UPDATE accounts SET balance = 0 WHERE CURRENT OF c",
        "DELETE FROM accounts WHERE CURRENT OF \"C\"",
    ] {
        let f = grammar(sql);
        assert!(f[0].has_where, "{sql}: one row is touched");
        assert_eq!(f[0].tables_written, set(&["accounts"]), "{sql}");
        assert!(matches!(
            f[0].kind,
            StatementKind::Update | StatementKind::Delete
        ));
    }
}

#[test]
fn inheritance_stars_name_the_table() {
    let f = grammar("SELECT * FROM customers* c JOIN public.accounts* a ON a.cid = c.id");
    assert_eq!(f[0].tables_read, set(&["customers", "public.accounts"]));
    let f = grammar("DELETE FROM t* USING u* WHERE t.id = u.id");
    assert_eq!(f[0].tables_written, set(&["t"]));
    assert_eq!(f[0].tables_read, set(&["u"]));
    assert!(f[0].has_where);
    let f = grammar("UPDATE t* SET a = u.b FROM u* WHERE t.id = u.id");
    assert_eq!(
        (f[0].tables_read.clone(), f[0].tables_written.clone()),
        (set(&["u"]), set(&["t"]))
    );
}

#[test]
fn alter_table_forms() {
    let nested = |f: &[StatementFacts]| -> Vec<(StatementKind, BTreeSet<String>)> {
        f.iter()
            .filter(|x| x.nested)
            .map(|x| (x.kind, x.tables_written.clone()))
            .collect()
    };
    use StatementKind::{Delete, Update};
    for (sql, effects) in [
        ("ALTER TABLE t ALTER COLUMN a SET STATISTICS 100", vec![]),
        ("ALTER TABLE t ALTER a SET (n_distinct = 1)", vec![]),
        ("ALTER TABLE IF EXISTS t RESET (fillfactor)", vec![]),
        ("ALTER TABLE t CLUSTER ON t_pkey", vec![]),
        ("ALTER TABLE t INHERIT p", vec![(Update, set(&["t"]))]),
        ("ALTER TABLE t NO INHERIT p", vec![(Update, set(&["t"]))]),
        ("ALTER TABLE t ALTER COLUMN a SET STORAGE PLAIN", vec![]),
        (
            "ALTER TABLE t SET ACCESS METHOD heap2",
            vec![(Update, set(&["t"]))],
        ),
        ("ALTER TABLE t OF some_type", vec![(Update, set(&["t"]))]),
        (
            "ALTER TABLE t ALTER COLUMN a SET EXPRESSION AS (b * 2)",
            vec![(Update, set(&["t"]))],
        ),
        (
            "ALTER TABLE t DETACH PARTITION p",
            vec![(Delete, set(&["t"]))],
        ),
        (
            "ALTER TABLE t ATTACH PARTITION p FOR VALUES FROM (1) TO (10)",
            vec![(Update, set(&["t"]))],
        ),
        (
            "ALTER TABLE t SET SCHEMA s2",
            vec![(Update, set(&["s2.t", "t"]))],
        ),
    ] {
        let f = grammar(sql);
        assert_eq!(
            (f[0].kind, f[0].keyword.as_str()),
            (StatementKind::Ddl, "ALTER TABLE"),
            "{sql}"
        );
        assert!(f[0].tables_written.contains("t"), "{sql}: {f:?}");
        assert_eq!(nested(&f), effects, "{sql}");
    }
    let f = grammar("ALTER TABLE t DETACH PARTITION p");
    assert_eq!(f[0].tables_written, set(&["p", "t"]));
    let f = grammar("ALTER TABLE t SET SCHEMA s2");
    assert_eq!(f[0].column_writes[0].tables, vec!["s2.t"]);
    assert_eq!(f[0].column_writes[0].column, "*");
}

#[test]
fn fetch_and_move_forms_name_their_cursor() {
    for sql in [
        "FETCH c",
        "FETCH FROM c",
        "FETCH NEXT c",
        "FETCH FIRST c",
        "FETCH LAST c",
        "FETCH PRIOR c",
        "FETCH BACKWARD FROM c",
        "FETCH ABSOLUTE -1 FROM c",
        "FETCH ALL c",
    ] {
        let f = grammar(sql);
        assert_eq!(f.len(), 1, "{sql}");
        assert_eq!(
            (
                f[0].kind,
                f[0].keyword.as_str(),
                f[0].prepared_name.as_deref()
            ),
            (StatementKind::Select, "FETCH", Some("c")),
            "{sql}"
        );
    }
    for sql in ["MOVE c", "MOVE NEXT FROM c", "MOVE BACKWARD ALL IN c"] {
        let f = grammar(sql);
        assert_eq!(
            (
                f[0].kind,
                f[0].keyword.as_str(),
                f[0].prepared_name.as_deref()
            ),
            (StatementKind::Utility, "MOVE", Some("c")),
            "{sql}"
        );
    }
    assert_eq!(
        grammar("FETCH \"Cur\"")[0].prepared_name.as_deref(),
        Some("Cur"),
        "a quoted name is exact"
    );
}

#[test]
fn declare_reads_what_its_query_reads() {
    let f = grammar("DECLARE c CURSOR FOR SELECT * FROM t WHERE a <> ALL (VALUES (1), (2))");
    assert_eq!(f.len(), 1);
    assert_eq!(
        (
            f[0].kind,
            f[0].keyword.as_str(),
            f[0].prepared_name.as_deref()
        ),
        (StatementKind::Select, "DECLARE", Some("c"))
    );
    assert_eq!(f[0].tables_read, set(&["t"]));
    let f = grammar(
        "DECLARE c2 SCROLL CURSOR WITH HOLD FOR SELECT * FROM ROWS FROM (generate_series(1, 3), my_srf(x.a)) AS g, t* x LIMIT 5",
    );
    assert_eq!(f[0].prepared_name.as_deref(), Some("c2"));
    assert!(f[0].tables_read.contains("t"), "{f:?}");
    assert!(f[0]
        .functions
        .is_superset(&set(&["generate_series", "my_srf"])));
    assert!(f[0].has_limit);
}

#[test]
fn nested_statements_follow_their_statement() {
    let kinds = |f: &[StatementFacts]| -> Vec<(StatementKind, bool)> {
        f.iter().map(|x| (x.kind, x.nested)).collect()
    };
    use StatementKind::*;
    let f = grammar("EXPLAIN (ANALYZE, COSTS OFF) UPDATE t SET a[1] = 1 WHERE id = 2");
    assert_eq!(kinds(&f), vec![(Explain, false), (Update, true)]);
    assert_eq!(f[0].keyword, "EXPLAIN ANALYZE");
    assert!(f[0].tables_read.contains("t"));
    assert!(f[1].has_where);
    let f = grammar("PREPARE p (int) AS DELETE FROM t* WHERE id = $1");
    assert_eq!(kinds(&f), vec![(Prepare, false), (Delete, true)]);
    assert_eq!(f[0].prepared_name.as_deref(), Some("p"));
    assert_eq!(f[1].tables_written, set(&["t"]));
    let f = grammar(
        "WITH d AS (DELETE FROM old_rows RETURNING *), i AS (INSERT INTO t (a[1]) SELECT x FROM d RETURNING *) SELECT * FROM i",
    );
    assert_eq!(
        kinds(&f),
        vec![(Select, false), (Delete, true), (Insert, true)]
    );
    assert_eq!(
        f[0].tables_read,
        set(&["old_rows", "t"]),
        "CTE names are not tables"
    );
    assert_eq!(f[1].tables_written, set(&["old_rows"]));
    assert!(!f[1].has_where);
    assert_eq!(f[2].tables_written, set(&["t"]));
    assert!(
        !f[2].tables_read.contains("d"),
        "the outer CTE is seen: {:?}",
        f[2]
    );
    let f = grammar("CREATE TABLE n AS SELECT * FROM t* WHERE id = 1");
    assert_eq!((f[0].kind, f[0].keyword.as_str()), (Ddl, "CREATE TABLE"));
    assert_eq!(
        (f[0].tables_read.clone(), f[0].tables_written.clone()),
        (set(&["t"]), set(&["n"]))
    );
    let f = grammar("SELECT a[1] INTO n FROM t*");
    assert_eq!((f[0].kind, f[0].keyword.as_str()), (Ddl, "SELECT INTO"));
    assert_eq!(
        (f[0].tables_read.clone(), f[0].tables_written.clone()),
        (set(&["t"]), set(&["n"]))
    );
    assert!(f[0].assigns_variable);
    let f = grammar("DECLARE c CURSOR FOR WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d*");
    assert_eq!(kinds(&f), vec![(Select, false), (Delete, true)]);
    let f =
        grammar("INSERT INTO t (a[1]) VALUES (1) ON CONFLICT (id) DO UPDATE SET b = excluded.b");
    assert_eq!(kinds(&f), vec![(Insert, false), (Update, true)]);
    assert!(f[1].has_where && f[1].tables_written.contains("t"));
}

#[test]
fn tables_in_every_position() {
    let f = grammar(
        "SELECT (SELECT max(x) FROM s1), y FROM a* JOIN (SELECT * FROM s2) q USING (id) \
         WHERE EXISTS (SELECT 1 FROM s3 WHERE s3.id = q.id) AND y IN (SELECT y FROM s4)",
    );
    assert_eq!(f[0].tables_read, set(&["a", "s1", "s2", "s3", "s4"]));
    let f = grammar("INSERT INTO t (a[1]) SELECT x FROM src* JOIN other USING (id)");
    assert_eq!(f[0].tables_read, set(&["other", "src"]));
    let f = grammar(
        "MERGE INTO t* USING src s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a[1] = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
    );
    assert_eq!(
        (
            f[0].kind,
            f[0].tables_read.clone(),
            f[0].tables_written.clone()
        ),
        (StatementKind::Merge, set(&["src"]), set(&["t"]))
    );
    let f = grammar("CREATE VIEW v AS SELECT * FROM customers* WHERE id = 1");
    assert_eq!(
        (f[0].tables_read.clone(), f[0].tables_written.clone()),
        (set(&["customers"]), set(&["v"]))
    );
    let f = grammar("COPY (SELECT * FROM t* WHERE a[1] = 1) TO STDOUT");
    assert_eq!(
        (f[0].kind, f[0].copy_direction, f[0].tables_read.clone()),
        (StatementKind::Copy, Some(CopyDirection::Out), set(&["t"]))
    );
    // (sqlparser reads LOCK too; the grammar's facts are the same.)
    let f = pg_grammar::facts("LOCK TABLE t*, ONLY u IN SHARE MODE NOWAIT").unwrap();
    assert_eq!(
        (f[0].kind, f[0].tables_read.clone()),
        (StatementKind::Utility, set(&["t", "u"]))
    );
    let f = pg_grammar::facts("TRUNCATE t*, ONLY public.u RESTART IDENTITY").unwrap();
    assert_eq!(f[0].kind, StatementKind::Truncate);
    assert_eq!(f[0].tables_written, set(&["public.u", "t"]));
    assert_eq!((f[1].kind, f[1].nested), (StatementKind::Delete, true));
    // A CTE hides the table of its name only where it is visible.
    let f = grammar("WITH customers AS (SELECT * FROM customers*) SELECT * FROM customers");
    assert_eq!(
        f[0].tables_read,
        set(&["customers"]),
        "the body reads the table"
    );
    let f = grammar("WITH x AS (SELECT 1) SELECT * FROM x, public.x*");
    assert_eq!(f[0].tables_read, set(&["public.x"]));
}

#[test]
fn functions_and_operators_anywhere() {
    let f = grammar(
        "SELECT public.f(a), \"MixedCase\"(b), a ### b, a OPERATOR(public.###) b, c::my_domain, \
         count(*) FILTER (WHERE g(d) > 0) OVER (PARTITION BY h(e)), current_user \
         FROM t*, LATERAL srf(t.x) s WHERE k(a) = 1 GROUP BY 1 HAVING max(z(a)) > 0 ORDER BY o(a)",
    );
    assert_eq!(
        f[0].functions,
        set(&[
            "MixedCase",
            "cast(my_domain)",
            "count",
            "current_user",
            "g",
            "h",
            "k",
            "max",
            "o",
            "operator(###)",
            "operator(public.###)",
            "public.f",
            "srf",
            "z",
        ])
    );
    let f = grammar(
        "ALTER TABLE t ADD COLUMN n int DEFAULT nextval('s'), ALTER COLUMN m SET STATISTICS 5",
    );
    assert!(f[0].functions.contains("nextval"), "{:?}", f[0].functions);
    let f = grammar("CALL p(VARIADIC ARRAY[1])");
    assert_eq!(
        (f[0].kind, f[0].functions.clone()),
        (StatementKind::Call, set(&["p"]))
    );
}

#[test]
fn computed_comparisons_list_both_sides() {
    let f = grammar(
        "SELECT g FROM customers* c, generate_series(0, 9) g WHERE substr(c.ssn, 1, 1) = chr(g) AND c.id = 1",
    );
    // `g` also names the FROM function's whole row: `*` too.
    assert!(f[0].computed_comparisons.is_superset(&set(&["g", "ssn"])));
    let f =
        grammar("SELECT 1 FROM customers* WHERE name = 'x' AND id IN (1, 2) AND a BETWEEN 1 AND 2");
    assert!(
        f[0].computed_comparisons.is_empty(),
        "{:?}",
        f[0].computed_comparisons
    );
    let f = grammar("SELECT 1 FROM t* WHERE CASE substr(ssn, 1, 1) WHEN chr(x) THEN true END");
    assert!(f[0].computed_comparisons.contains("ssn"));
    let f = grammar(
        "SELECT g FROM generate_series(1, 9) g WHERE g IN (SELECT ssn::int FROM customers*)",
    );
    assert!(
        f[0].computed_comparisons.is_superset(&set(&["g", "ssn"])),
        "the subquery's values are compared: {:?}",
        f[0].computed_comparisons
    );
    let f = grammar("SELECT 1 FROM customers* c WHERE c::text LIKE '%1%'");
    assert!(
        f[0].computed_comparisons.contains("*"),
        "a whole row compared: {:?}",
        f[0].computed_comparisons
    );
}

#[test]
fn column_writes_take_every_named_column() {
    let f = grammar(
        "UPDATE t SET a[1] = s.x FROM (SELECT ssn AS x FROM customers) s WHERE t.id = s.id",
    );
    let w = &f[0].column_writes;
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].tables.clone(), w[0].column.as_str()),
        (vec!["t".to_string()], "a")
    );
    let sources: BTreeSet<&str> = w[0].sources.iter().map(|s| s.column.as_str()).collect();
    assert!(sources.contains("ssn"), "{sources:?}");
    assert!(w[0]
        .sources
        .iter()
        .all(|s| s.tables.contains(&"customers".to_string())));
    let f = grammar("INSERT INTO t SELECT c FROM customers* c");
    let w = &f[0].column_writes;
    assert_eq!(w[0].column, "*");
    assert!(
        w[0].sources.iter().any(|s| s.column == "*"),
        "a whole row: {w:?}"
    );
    let f = grammar(
        "ALTER TABLE t ALTER COLUMN a TYPE text USING a[1] || b, ALTER COLUMN c SET STATISTICS 1",
    );
    assert_eq!(f[0].column_writes.len(), 1);
    assert_eq!(f[0].column_writes[0].column, "a");
    let sources: BTreeSet<&str> = f[0].column_writes[0]
        .sources
        .iter()
        .map(|s| s.column.as_str())
        .collect();
    assert_eq!(sources, BTreeSet::from(["a", "b"]));
}

#[test]
fn facts_do_not_depend_on_literals() {
    for (a, b) in [
        (
            "UPDATE t SET a[1] = 2 WHERE id = 3",
            "UPDATE t SET a[7] = 'x' WHERE id = 99",
        ),
        ("SELECT * FROM t* LIMIT 5", "SELECT * FROM t* LIMIT 0"),
        ("DELETE FROM t* WHERE 1 = 1", "DELETE FROM t* WHERE 2 = 3"),
        ("FETCH ABSOLUTE -1 FROM c", "FETCH ABSOLUTE -7 FROM c"),
        (
            "EXPLAIN (ANALYZE 'off') SELECT * FROM t*",
            "EXPLAIN (ANALYZE 'on') SELECT * FROM t*",
        ),
    ] {
        assert_eq!(normalize(a, PG), normalize(b, PG), "{a} / {b}");
        assert_eq!(pg_grammar::facts(a), pg_grammar::facts(b), "{a} / {b}");
    }
    let f = grammar("DELETE FROM t* WHERE 1 = 1 OR id = 2");
    assert!(!f[0].has_where, "a WHERE that filters nothing is none");
}

#[test]
fn what_the_grammar_cannot_see_still_falls_back() {
    // A DO block's body is a string: no parse tree shows what it does.
    assert!(pg_grammar::facts("DO $$ BEGIN DELETE FROM t; END $$").is_none());
    let c = classify("DO $$ BEGIN DELETE FROM t; END $$", PG);
    assert!(!c.statements[0].parsed && c.parse_error.is_some());
    // A statement of no kind policy knows (RETURN, outside a function body).
    assert!(pg_grammar::facts("RETURN false").is_none());
    // What the server's grammar rejects too.
    for sql in ["SELEC 1", "UPDATE t SET (f1[2])[1] = 1", "select 10 !=-"] {
        assert!(pg_grammar::facts(sql).is_none(), "{sql}");
        assert!(!classify(sql, PG).statements[0].parsed, "{sql}");
    }
}

/// For a statement both read alike: sqlparser's facts and the grammar's.
fn both(sql: &str) -> Option<(Vec<StatementFacts>, Vec<StatementFacts>)> {
    if !agree::lexers_agree(sql, PG) {
        return None;
    }
    let d = parser_dialect(PG);
    let stmts = sqlparser::parser::Parser::parse_sql(d.as_ref(), sql).ok()?;
    let parser: Vec<StatementFacts> = stmts.iter().flat_map(|s| sql::facts_for(s, PG)).collect();
    let grammar = pg_grammar::facts(sql)?;
    Some((parser, grammar))
}

/// The grammar's facts cover the parser's: every table and function the
/// parser sees (a `pg_catalog.` qualification aside), every column it
/// says is compared, its kind and keyword, no WHERE or LIMIT it does not
/// see, and every nested kind.
fn cover(sql: &str, parser: &[StatementFacts], grammar: &[StatementFacts]) -> Result<(), String> {
    let fail = |what: &str, p: &dyn std::fmt::Debug, g: &dyn std::fmt::Debug| {
        Err(format!("{sql}\n  {what}: parser {p:?}, grammar {g:?}"))
    };
    let (Some(p), Some(g)) = (parser.first(), grammar.first()) else {
        return fail("statements", &parser.len(), &grammar.len());
    };
    // Syntax sqlparser reads as a call though none is made: `ARRAY(SELECT
    // …)`, `ROW(…)`, `(VALUES (1))`, `x LIKE ALL (…)`, `PARTITION BY LIST|RANGE|HASH (…)`;
    // and `<>-1`, one operator to sqlparser, `<>` and `-1` to the server.
    const NOT_CALLS: &[&str] = &[
        "array", "row", "all", "any", "some", "values", "rollup", "cube", "list", "range", "hash",
    ];
    let misread = |n: &str| {
        NOT_CALLS.contains(&n)
            || n.strip_prefix("operator(")
                .and_then(|o| o.strip_suffix(')'))
                .is_some_and(|o| {
                    o.len() > 1
                        && o.ends_with(['+', '-'])
                        && !o.contains(['~', '!', '@', '#', '%', '^', '&', '|', '`', '?'])
                })
    };
    let functions = |f: &[StatementFacts]| -> BTreeSet<String> {
        f.iter()
            .flat_map(|x| x.functions.iter())
            .map(|n| n.strip_prefix("pg_catalog.").unwrap_or(n).to_string())
            .filter(|n| !misread(n))
            .collect()
    };
    if !g.tables_read.is_superset(&p.tables_read) {
        return fail("tables_read", &p.tables_read, &g.tables_read);
    }
    if !g.tables_written.is_superset(&p.tables_written) {
        return fail("tables_written", &p.tables_written, &g.tables_written);
    }
    // (Tables read by nested statements are not compared: sqlparser reads
    // a nested statement without the CTEs around it, so it counts their
    // names as tables.)
    let written = |f: &[StatementFacts]| -> BTreeSet<String> {
        f.iter()
            .flat_map(|x| x.tables_written.iter().cloned())
            .collect()
    };
    if !written(grammar).is_superset(&written(parser)) {
        return fail("tables written", &written(parser), &written(grammar));
    }
    if !functions(grammar).is_superset(&functions(parser)) {
        return fail("functions", &functions(parser), &functions(grammar));
    }
    // sqlparser reads a named argument (`f(a := 1)`) as a comparison.
    let named_arguments = sql.contains(":=") || sql.contains("=>");
    if !g.computed_comparisons.is_superset(&p.computed_comparisons) && !named_arguments {
        return fail("computed", &p.computed_comparisons, &g.computed_comparisons);
    }
    // `SELECT INTO t FROM …` (no columns) creates a table sqlparser misses;
    // sqlparser renders ALTER USER as ALTER ROLE (the fallback keeps it).
    // `SET LOCAL ROLE` changes who the session is: access control, not the
    // setting sqlparser's keyword makes it.
    let named_apart = (g.keyword == "SELECT INTO" && p.keyword == "SELECT")
        || (g.keyword == "ALTER USER" && p.keyword == "ALTER ROLE")
        || (g.kind == StatementKind::Dcl && p.kind == StatementKind::Set && p.keyword == "SET");
    if (g.kind, &g.keyword) != (p.kind, &p.keyword) && !named_apart {
        return fail("kind", &(p.kind, &p.keyword), &(g.kind, &g.keyword));
    }
    if (g.has_where && !p.has_where) || (g.has_limit && !p.has_limit) {
        return fail(
            "where/limit",
            &(p.has_where, p.has_limit),
            &(g.has_where, g.has_limit),
        );
    }
    if p.copy_direction.is_some() && g.copy_direction != p.copy_direction {
        return fail("copy", &p.copy_direction, &g.copy_direction);
    }
    if p.prepared_name.is_some() && g.prepared_name != p.prepared_name {
        return fail("name", &p.prepared_name, &g.prepared_name);
    }
    let nested = |f: &[StatementFacts]| -> BTreeSet<StatementKind> {
        f.iter().filter(|x| x.nested).map(|x| x.kind).collect()
    };
    if !nested(grammar).is_superset(&nested(parser)) {
        return fail("nested", &nested(parser), &nested(grammar));
    }
    Ok(())
}

/// Pieces of statements: every combination is one both readers take.
const PROJECTIONS: &[&str] = &[
    "*",
    "a, b",
    "t.a + 1 AS x",
    "upper(b), count(*)",
    "coalesce(a, 0), nullif(b, ''), greatest(a, 1), least(a, 2)",
    "public.f(a) AS y",
    "(SELECT max(z) FROM sub WHERE sub.id = t.id)",
    "CASE WHEN a > 1 THEN lower(b) ELSE 'x' END",
    "a::text, b::my_domain, cast(a AS numeric(10, 2))",
    "current_timestamp, current_user, session_user, current_date",
    "row_number() OVER (PARTITION BY a ORDER BY b)",
    "a ### b",
    "substring(b from 1 for 2), trim(b), position('x' in b)",
    "extract(year from d), d at time zone 'utc'",
    "array_agg(DISTINCT a ORDER BY a)",
    "exists (select 1 from other where other.k = t.a)",
];

const FROMS: &[&str] = &[
    "t",
    "public.t",
    "t JOIN u ON u.id = t.id",
    "t LEFT JOIN s.u u2 USING (id)",
    "t, LATERAL (SELECT * FROM u WHERE u.id = t.id) l",
    "t, generate_series(1, 3) g",
    "(SELECT * FROM base) t",
    "ONLY t",
    "t CROSS JOIN \"Quoted\"",
];

const WHERES: &[&str] = &[
    "",
    " WHERE a = 1",
    " WHERE a IN (SELECT a FROM other)",
    " WHERE lower(b) = 'x' AND a > 2",
    " WHERE substr(b, 1, 1) = chr(a)",
    " WHERE a = ANY (SELECT k FROM keys)",
    " WHERE b LIKE 'x%' OR a BETWEEN 1 AND 5",
    " WHERE t.a IS NOT NULL",
];

const TAILS: &[&str] = &[
    "",
    " LIMIT 5",
    " ORDER BY 1",
    " GROUP BY 1 HAVING count(*) > 1",
    " FETCH FIRST 3 ROWS ONLY",
    " LIMIT ALL",
];

const STATEMENTS: &[&str] = &[
    "SELECT {p} FROM {f}{w}{t}",
    "WITH c AS (SELECT {p} FROM {f}{w}) SELECT * FROM c JOIN t ON true",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r, {f}{w}",
    "SELECT {p} FROM {f}{w} UNION SELECT {p} FROM other{t}",
    "INSERT INTO dst SELECT {p} FROM {f}{w}",
    "INSERT INTO dst (a, b) VALUES (1, lower('x')) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
    "UPDATE t SET a = a + 1, b = upper(b){w}",
    "UPDATE t SET a = u.a FROM u{w}",
    "DELETE FROM t{w}",
    "DELETE FROM t USING u{w} RETURNING t.*",
    "WITH d AS (DELETE FROM old{w} RETURNING *) INSERT INTO arch SELECT * FROM d",
    "CREATE TABLE n AS SELECT {p} FROM {f}{w}",
    "CREATE VIEW v AS SELECT {p} FROM {f}{w}",
    "SELECT {p} INTO n FROM {f}{w}",
    "EXPLAIN ANALYZE SELECT {p} FROM {f}{w}",
    "EXPLAIN UPDATE t SET a = 1{w}",
    "PREPARE p AS SELECT {p} FROM {f}{w}{t}",
    "DECLARE c CURSOR FOR SELECT {p} FROM {f}{w}{t}",
    "COPY (SELECT {p} FROM {f}{w}) TO STDOUT",
    "COPY t (a, b) FROM STDIN",
    "COPY t TO STDOUT",
    "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT (a) VALUES (u.a)",
    "TRUNCATE t, public.u",
    "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
    "ALTER TABLE t ADD COLUMN z int DEFAULT nextval('s')",
    "ALTER TABLE t RENAME COLUMN a TO b",
    "ALTER TABLE t RENAME TO t2",
    "ALTER TABLE t ALTER COLUMN a TYPE text USING a::text",
    "ALTER TABLE t DROP COLUMN a",
    "CREATE INDEX i ON t (a)",
    "DROP TABLE t, s.u",
    "FETCH NEXT FROM c",
    "FETCH 5 FROM c",
    "EXECUTE p(1)",
    "DEALLOCATE p",
    "CALL proc(1, 'x')",
    "VACUUM FULL t",
    "BEGIN",
    "SET search_path = public",
    "SHOW work_mem",
    "GRANT SELECT ON t TO bob",
];

fn statement(s: usize, p: usize, f: usize, w: usize, t: usize) -> String {
    STATEMENTS[s]
        .replace("{p}", PROJECTIONS[p])
        .replace("{f}", FROMS[f])
        .replace("{w}", WHERES[w])
        .replace("{t}", TAILS[t])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Where both readers take a statement, the grammar's facts cover the
    /// parser's: reading with it never loses a table, a function, a
    /// compared column, a WHERE or LIMIT it does not have, or a nested
    /// statement.
    #[test]
    fn the_grammar_covers_the_parser(
        s in 0..STATEMENTS.len(),
        p in 0..PROJECTIONS.len(),
        f in 0..FROMS.len(),
        w in 0..WHERES.len(),
        t in 0..TAILS.len(),
    ) {
        let sql = statement(s, p, f, w, t);
        if let Some((parser, grammar)) = both(&sql) {
            if let Err(e) = cover(&sql, &parser, &grammar) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

/// Every template combination that both readers take is covered, and
/// most combinations are ones both take (so the property is not vacuous).
#[test]
fn the_corpus_is_read_by_both() {
    let mut read = 0;
    let mut total = 0;
    for s in 0..STATEMENTS.len() {
        for p in 0..PROJECTIONS.len() {
            total += 1;
            let sql = statement(s, p, p % FROMS.len(), p % WHERES.len(), p % TAILS.len());
            if let Some((parser, grammar)) = both(&sql) {
                read += 1;
                if let Err(e) = cover(&sql, &parser, &grammar) {
                    panic!("{e}");
                }
            }
        }
    }
    assert!(
        read * 10 >= total * 8,
        "only {read} of {total} read by both"
    );
}

/// The same cover over a directory of `.sql` files (psql scripts such as
/// PostgreSQL's regression suite): `GATEHOUSE_SQL_CORPUS=dir cargo test
/// -p gatehouse-core grammar_covers_a_corpus -- --ignored --nocapture`.
/// Reports how many statements each reader takes and how many the
/// classifier still refuses.
#[test]
#[ignore]
fn grammar_covers_a_corpus() {
    let Ok(dir) = std::env::var("GATEHOUSE_SQL_CORPUS") else {
        eprintln!("set GATEHOUSE_SQL_CORPUS to a directory of .sql files");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let (mut total, mut grammatical, mut parser_fails, mut refused, mut covered) = (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for s in split_statements(&psql_script_sql(&text), PG) {
            let s = s.trim();
            if s.is_empty() || s == ";" {
                continue;
            }
            total += 1;
            if pg_query::parse(s, pg_query::ParserOptions::DEFAULT).is_err() {
                continue; // the server would refuse it too
            }
            grammatical += 1;
            let d = parser_dialect(PG);
            if sqlparser::parser::Parser::parse_sql(d.as_ref(), s).is_err() {
                parser_fails += 1;
            }
            if classify(s, PG).statements.iter().any(|f| !f.parsed) {
                refused += 1;
            }
            if let Some((parser, grammar)) = both(s) {
                covered += 1;
                if let Err(e) = cover(s, &parser, &grammar) {
                    failures.push(e);
                }
            }
        }
    }
    eprintln!(
        "{total} statements, {grammatical} grammatical; sqlparser cannot read {parser_fails} ({:.2}%); \
         refused by default {refused} ({:.3}%); both read {covered}, cover fails {}",
        100.0 * parser_fails as f64 / grammatical.max(1) as f64,
        100.0 * refused as f64 / grammatical.max(1) as f64,
        failures.len()
    );
    for f in failures.iter().take(40) {
        eprintln!("{f}");
    }
    assert!(failures.is_empty());
}

/// A psql script's SQL: meta-command lines and `COPY … FROM stdin` data
/// dropped.
fn psql_script_sql(text: &str) -> String {
    let mut out = String::new();
    let mut in_copy = false;
    for line in text.lines() {
        if in_copy {
            in_copy = !line.starts_with("\\.");
            continue;
        }
        if line.trim_start().starts_with('\\') {
            continue;
        }
        let l = line.to_ascii_lowercase();
        in_copy = l.starts_with("copy") && l.contains("from stdin");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Classifier cost per statement on a cache miss, by reader: `cargo test
/// --release -p gatehouse-core classifier_cost -- --ignored --nocapture`.
/// A report, not an assertion (the machine's load decides the figures).
#[test]
#[ignore]
fn classifier_cost_per_statement() {
    use std::time::Instant;
    // Read by sqlparser (the hot path's reader on a miss).
    let parser = [
        "select name, ssn from customers where id = 1",
        "select c.name, count(*) from customers c join accounts a on a.customer_id = c.id where a.balance > 100 group by c.name order by 2 desc limit 10",
        "update accounts set balance = balance - 10 where id = 7 returning balance",
        "insert into audit_log (who, what, at) values ('x', 'y', now())",
        "with recent as (select * from transactions where created_at > now() - interval '1 day') select account_id, sum(amount) from recent group by 1",
        "delete from sessions where expires_at < now()",
    ];
    // Read only by PostgreSQL's grammar (sqlparser fails first).
    let grammar = [
        "select name, ssn from customers* where id = 1",
        "select c.name, count(*) from customers* c join accounts a on a.customer_id = c.id where a.balance > 100 group by c.name order by 2 desc limit 10",
        "update accounts set tags[1] = 'x' where id = 7 returning balance",
        "insert into audit_log (who, what[1], at) values ('x', 'y', now())",
        "select sum(amount) over (order by id rows between 1 preceding and 1 following exclude current row) from transactions",
        "fetch next c",
    ];
    let d = parser_dialect(PG);
    for sql in parser {
        assert!(
            sqlparser::parser::Parser::parse_sql(d.as_ref(), sql).is_ok(),
            "{sql}"
        );
    }
    for sql in grammar {
        assert!(
            sqlparser::parser::Parser::parse_sql(d.as_ref(), sql).is_err(),
            "{sql}"
        );
        assert!(
            classify(sql, PG).statements.iter().all(|f| f.parsed),
            "{sql}"
        );
    }
    let rounds = 2000;
    let time = |what: &str, f: &dyn Fn(&str), set: &[&str]| {
        for sql in set {
            f(sql); // warm up
        }
        let start = Instant::now();
        for _ in 0..rounds {
            for sql in set {
                f(sql);
            }
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / (rounds * set.len()) as f64;
        eprintln!("{what:<52} {per:8.1} µs/statement");
    };
    time(
        "(a) classify, sqlparser path (cache miss)",
        &|s| drop(classify(s, PG)),
        &parser,
    );
    time(
        "(b) classify, pg_query path (cache miss)",
        &|s| drop(classify(s, PG)),
        &grammar,
    );
    time(
        "    of which: pg_query parse + tree walk",
        &|s| drop(pg_grammar::facts(s)),
        &grammar,
    );
    time(
        "    of which: pg_query parse alone",
        &|s| drop(pg_query::parse(s, pg_query::ParserOptions::DEFAULT)),
        &grammar,
    );
    let cache = ClassifierCache::new(1024);
    time(
        "    cache hit (normalize + lookup), either path",
        &|s| drop(cache.classify(s, PG)),
        &grammar,
    );
}

/// Nesting too deep for either reader falls back (fail closed) without
/// exhausting the stack: libpg_query checks its own stack depth, and the
/// parse tree it hands over is bounded in depth.
#[test]
fn deep_statements_fall_back_without_crashing() {
    for depth in [50, 200, 2000] {
        let parens = format!(
            "select {}a[1]{} from t*",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let sums = format!("select a[1]{} from t*", " + a[1]".repeat(depth * 5));
        let subqueries = format!(
            "select * from {}t*{}",
            "(select * from ".repeat(depth),
            ") s".repeat(depth)
        );
        for sql in [parens, sums, subqueries] {
            let c = classify(&sql, PG);
            assert!(!c.statements.is_empty());
            if c.statements.iter().any(|f| !f.parsed) {
                assert!(c.statements.iter().all(|f| !f.has_where && !f.has_limit));
            } else {
                assert!(c.statements[0].tables_read.contains("t"), "{depth}");
            }
        }
    }
}

#[test]
fn role_changes_are_access_control() {
    for (sql, kind) in [
        ("SET LOCAL ROLE admin", StatementKind::Dcl),
        ("SET SESSION ROLE admin", StatementKind::Dcl),
        ("SET SESSION AUTHORIZATION bob", StatementKind::Dcl),
        ("RESET ROLE", StatementKind::Set),
        ("SET LOCAL work_mem = '1MB'", StatementKind::Set),
    ] {
        let f = pg_grammar::facts(sql).unwrap();
        assert_eq!(f[0].kind, kind, "{sql}");
    }
}

#[test]
fn an_access_share_lock_is_a_read() {
    let c = classify(
        "LOCK TABLE public.customers IN ACCESS SHARE MODE",
        Dialect::Postgres,
    );
    assert_eq!(
        c.statements[0].kind,
        StatementKind::Select,
        "{:?}",
        c.statements[0]
    );
    assert!(c.statements[0].parsed);
    assert!(
        c.statements[0].tables_read.contains("public.customers"),
        "{:?}",
        c.statements[0]
    );
    for stronger in [
        "LOCK TABLE customers",
        "LOCK customers IN ROW EXCLUSIVE MODE",
        "LOCK customers IN SHARE MODE",
    ] {
        let c = classify(stronger, Dialect::Postgres);
        assert_eq!(c.statements[0].kind, StatementKind::Utility, "{stronger}");
    }
}
