//! Keyword classification for statements the SQL parser cannot read.
//!
//! Fails closed: it never claims a WHERE or a LIMIT, anything unrecognised
//! is `Unknown`, `parsed` is always `false` (so policy blocks it by
//! default), and statements that run other statements (`PREPARE … AS`,
//! `EXPLAIN`, data-modifying CTEs) get nested facts for what they run. It
//! reads tokens, never the contents of string literals or comments, so its
//! facts do not depend on literal values and can be cached under the
//! normalized statement.

use super::keyword::{kind_of_keyword, leading_keyword_of_tokens};
use super::scan::{tokens, Token};
use super::{CopyDirection, Dialect, StatementFacts, StatementKind};
use std::collections::BTreeSet;

/// How deep statements nested in unparseable statements are followed
/// (`PREPARE a AS PREPARE b AS …`); deeper bodies are `Unknown`.
const MAX_DEPTH: usize = 8;

/// Words that start a statement EXPLAIN can run.
const EXPLAINABLE: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE", "EXECUTE",
    "CREATE", "DECLARE",
];

/// Facts for one unparseable statement, from its leading keywords (the
/// statement itself; the classifier adds facts for what it runs).
pub fn classify_by_keywords(sql: &str, dialect: Dialect) -> StatementFacts {
    let toks = tokens(sql, dialect);
    head_facts(&Statement::new(&toks))
}

/// The leading keywords of a statement's text (after any opening
/// parentheses), named as the fallback and the parser path name them.
pub(crate) fn leading_keyword_of(sql: &str, dialect: Dialect) -> String {
    let toks = tokens(sql, dialect);
    Statement::new(&toks).keyword()
}

/// Facts for one unparseable statement followed by facts for the
/// statements it runs, marked `nested`.
pub(crate) fn fallback_facts(sql: &str, dialect: Dialect, depth: usize) -> Vec<StatementFacts> {
    let toks = tokens(sql, dialect);
    let st = Statement::new(&toks);
    let head = head_facts(&st);
    let mut nested = match head.kind {
        StatementKind::Prepare => prepare_body(sql, &st, dialect, depth),
        // EXPLAIN (ANALYZE) runs its statement; judge it whatever the options.
        StatementKind::Explain => {
            let body = st.find_top(st.first_word() + 1, EXPLAINABLE);
            body_after(sql, &st, body, dialect, depth)
        }
        _ => {
            let mut nested = modifying_subclauses(&st);
            nested.extend(nested_execute(sql, &st, dialect, depth));
            nested.extend(ddl_effects_by_keyword(&head, &st));
            nested
        }
    };
    for n in &mut nested {
        n.nested = true;
    }
    let mut out = vec![head];
    out.extend(nested);
    out
}

/// Facts that say only "something unknown runs here": the fail-closed
/// answer when a nested statement cannot be found or read.
pub(crate) fn unknown_facts(keyword: &str) -> StatementFacts {
    StatementFacts {
        kind: StatementKind::Unknown,
        keyword: keyword.to_string(),
        tables_read: BTreeSet::new(),
        tables_written: BTreeSet::new(),
        has_where: false,
        has_limit: false,
        copy_direction: None,
        prepared_name: None,
        output: None,
        parsed: false,
        nested: false,
        functions: BTreeSet::new(),
        assigns_variable: false,
        computed_comparisons: Default::default(),
        column_writes: Vec::new(),
    }
}

/// A statement's tokens with their parenthesis depth.
struct Statement<'a, 't> {
    toks: &'t [(usize, Token<'a>)],
    depth: Vec<u32>,
}

impl<'a, 't> Statement<'a, 't> {
    fn new(toks: &'t [(usize, Token<'a>)]) -> Self {
        let mut d = 0u32;
        let depth = toks
            .iter()
            .map(|(_, t)| match t {
                Token::Punct('(') => {
                    d += 1;
                    d - 1
                }
                Token::Punct(')') => {
                    d = d.saturating_sub(1);
                    d
                }
                _ => d,
            })
            .collect();
        Statement { toks, depth }
    }

    /// The upper-case word at `i`, or `""` for any other token.
    fn word(&self, i: usize) -> String {
        match self.toks.get(i) {
            Some((_, Token::Word(w))) => w.to_ascii_uppercase(),
            _ => String::new(),
        }
    }

    fn is_word(&self, i: usize, w: &str) -> bool {
        matches!(self.toks.get(i), Some((_, Token::Word(x))) if x.eq_ignore_ascii_case(w))
    }

    /// Index of the first word (after any opening parentheses).
    fn first_word(&self) -> usize {
        self.toks
            .iter()
            .position(|(_, t)| !matches!(t, Token::Punct('(')))
            .unwrap_or(self.toks.len())
    }

    fn keyword(&self) -> String {
        leading_keyword_of_tokens(&self.toks[self.first_word()..])
    }

    /// Index of the first depth-0 word from `from` on that is in `set`.
    fn find_top(&self, from: usize, set: &[&str]) -> Option<usize> {
        (from..self.toks.len())
            .find(|&i| self.depth[i] == 0 && set.iter().any(|w| self.is_word(i, w)))
    }

    fn has_word_after_into(&self, w: &str) -> bool {
        (1..self.toks.len()).any(|i| self.is_word(i, w) && self.is_word(i - 1, "INTO"))
    }

    /// The name starting at token `i` (`a`, `s.a`, `"A"`), lower-case.
    fn name_at(&self, mut i: usize) -> Option<String> {
        let mut parts = Vec::new();
        loop {
            match self.toks.get(i).map(|(_, t)| t) {
                Some(Token::Word(w)) => parts.push(w.to_lowercase()),
                Some(Token::Quoted(q)) => parts.push(unquote(q).to_lowercase()),
                _ => break,
            }
            if !matches!(self.toks.get(i + 1), Some((_, Token::Punct('.')))) {
                break;
            }
            i += 2;
        }
        (!parts.is_empty()).then(|| parts.join("."))
    }

    /// A prepared-statement or cursor name as PostgreSQL compares it:
    /// quoted names exactly, unquoted ones folded to lower case.
    fn object_name_at(&self, i: usize) -> Option<String> {
        match self.toks.get(i).map(|(_, t)| t) {
            Some(Token::Word(w)) => Some(w.to_lowercase()),
            Some(Token::Quoted(q)) => Some(unquote(q)),
            _ => None,
        }
    }
}

fn head_facts(st: &Statement) -> StatementFacts {
    let keyword = st.keyword();
    let mut kind = kind_of_keyword(&keyword);
    let first = st.first_word();
    let mut copy_direction = None;
    let mut prepared_name = None;
    if st.is_word(first, "WITH") {
        let main = st.find_top(
            first + 1,
            &[
                "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE",
            ],
        );
        kind = main.map_or(StatementKind::Unknown, |i| kind_of_keyword(&st.word(i)));
    }
    if st.has_word_after_into("OUTFILE") || st.has_word_after_into("DUMPFILE") {
        kind = StatementKind::Copy;
        copy_direction = Some(CopyDirection::Out);
    } else if kind == StatementKind::Copy {
        let to = st.find_top(first + 1, &["TO"]);
        let from = st.find_top(first + 1, &["FROM"]);
        let loads = st.is_word(first, "LOAD");
        // No direction found: assume data leaves, the stricter reading.
        copy_direction = Some(if loads || (to.is_none() && from.is_some()) {
            CopyDirection::In
        } else {
            CopyDirection::Out
        });
    }
    if matches!(
        kind,
        StatementKind::Prepare | StatementKind::Execute | StatementKind::Deallocate
    ) {
        let mut i = first + 1;
        if st.is_word(i, "PREPARE") {
            i += 1;
        }
        prepared_name = st.object_name_at(i);
    }
    let (tables_read, tables_written) = tables(st, kind, copy_direction);
    StatementFacts {
        kind,
        keyword,
        tables_read,
        tables_written,
        has_where: false,
        has_limit: false,
        copy_direction,
        prepared_name,
        output: None,
        parsed: false,
        nested: false,
        functions: called_words(st),
        assigns_variable: assigns_variable(st),
        computed_comparisons: Default::default(),
        column_writes: Vec::new(),
    }
}

/// Words that open a parenthesis without being a function call.
const NOT_FUNCTIONS: &[&str] = &[
    "ALL",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "BY",
    "CAST",
    "CHAR",
    "CHARACTER",
    "CHECK",
    "CONFLICT",
    "CONSTRAINT",
    "CONVERT",
    "CUBE",
    "DECIMAL",
    "DISTINCT",
    "DO",
    "EXISTS",
    "EXTRACT",
    "FILTER",
    "FOR",
    "FROM",
    "FULLTEXT",
    "GROUPING",
    "IN",
    "INDEX",
    "INT",
    "INTEGER",
    "INTERVAL",
    "INTO",
    "JOIN",
    "KEY",
    "LATERAL",
    "NOT",
    "NUMERIC",
    "ON",
    "OR",
    "OVER",
    "PARTITION",
    "POSITION",
    "PRIMARY",
    "REFERENCES",
    "ROLLUP",
    "ROW",
    "SELECT",
    "SET",
    "SETS",
    "SOME",
    "SUBSTRING",
    "TABLE",
    "TIME",
    "TIMESTAMP",
    "TRIM",
    "TYPE",
    "UNIQUE",
    "USING",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "WHERE",
    "WITH",
    "WITHIN",
];

/// Best-effort function calls of an unreadable statement: every word
/// (not a keyword that takes parentheses) followed by `(`. Over-reports
/// (a table's column list reads as a call), which only makes policy
/// stricter.
fn called_words(st: &Statement) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in 0..st.toks.len() {
        if !matches!(st.toks.get(i + 1), Some((_, Token::Punct('(')))) {
            continue;
        }
        let w = st.word(i);
        if w.is_empty() || NOT_FUNCTIONS.contains(&w.as_str()) {
            continue;
        }
        // The whole dotted name ends at `i`: start from its first part.
        let mut start = i;
        while start >= 2
            && matches!(st.toks[start - 1], (_, Token::Punct('.')))
            && matches!(st.toks[start - 2], (_, Token::Word(_) | Token::Quoted(_)))
        {
            start -= 2;
        }
        out.insert(st.name_at(start).unwrap_or_else(|| w.to_lowercase()));
    }
    out
}

/// `:=` anywhere, or `INTO @v` / MySQL's trailing `… INTO @v`.
fn assigns_variable(st: &Statement) -> bool {
    (1..st.toks.len()).any(|i| {
        let (prev, this) = (&st.toks[i - 1].1, &st.toks[i].1);
        matches!((prev, this), (Token::Punct(':'), Token::Punct('=')))
            || (st.is_word(i - 1, "INTO") && matches!(this, Token::Punct('@')))
    })
}

/// Best-effort table names: after FROM/JOIN/USING (read), INTO/UPDATE/
/// TABLE/TRUNCATE (written), and the COPY target.
fn tables(
    st: &Statement,
    kind: StatementKind,
    copy: Option<CopyDirection>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    const SKIP: &[&str] = &[
        "ONLY",
        "TABLE",
        "IF",
        "NOT",
        "EXISTS",
        "LOCAL",
        "LOW_PRIORITY",
        "CONCURRENT",
        "IGNORE",
        "LATERAL",
    ];
    const NOT_TABLES: &[&str] = &["STDIN", "STDOUT", "PROGRAM", "OUTFILE", "DUMPFILE"];
    let mut read = BTreeSet::new();
    let mut written = BTreeSet::new();
    let first = st.first_word();
    for i in 0..st.toks.len() {
        let w = st.word(i);
        let prev = if i > 0 { st.word(i - 1) } else { String::new() };
        let writes = match w.as_str() {
            "FROM" => kind == StatementKind::Delete && st.depth[i] == 0,
            "JOIN" | "USING" => false,
            "INTO" | "TRUNCATE" => true,
            "UPDATE" if !matches!(prev.as_str(), "FOR" | "ON" | "KEY") => true,
            "TABLE" if i == first => false,
            "TABLE" if kind != StatementKind::Dcl => true,
            "COPY" if i == first => copy == Some(CopyDirection::In),
            _ => continue,
        };
        let mut j = i + 1;
        while SKIP.contains(&st.word(j).as_str()) {
            j += 1;
        }
        let Some(name) = st.name_at(j) else { continue };
        if NOT_TABLES.contains(&name.to_ascii_uppercase().as_str()) {
            continue;
        }
        if writes {
            written.insert(name);
        } else {
            read.insert(name);
        }
    }
    (read, written)
}

/// `PREPARE name AS body` (PostgreSQL) or `PREPARE name FROM 'body'`
/// (MySQL): the body's facts, or `Unknown` when it cannot be found (a
/// MySQL body in a user variable).
fn prepare_body(sql: &str, st: &Statement, dialect: Dialect, depth: usize) -> Vec<StatementFacts> {
    let first = st.first_word();
    if let Some(as_kw) = st.find_top(first + 2, &["AS"]) {
        return body_after(sql, st, Some(as_kw + 1), dialect, depth);
    }
    if st.is_word(first + 2, "FROM") {
        if let Some((_, Token::Literal(lit))) = st.toks.get(first + 3) {
            let body = unquote_literal(lit, dialect);
            return nested_classification(&body, dialect, depth);
        }
    }
    vec![unknown_facts("PREPARE")]
}

/// Facts for the statement text from token `start` on.
fn body_after(
    sql: &str,
    st: &Statement,
    start: Option<usize>,
    dialect: Dialect,
    depth: usize,
) -> Vec<StatementFacts> {
    match start.and_then(|i| st.toks.get(i)) {
        Some((offset, _)) => nested_classification(&sql[*offset..], dialect, depth),
        None => vec![unknown_facts("")],
    }
}

fn nested_classification(body: &str, dialect: Dialect, depth: usize) -> Vec<StatementFacts> {
    if depth >= MAX_DEPTH {
        return vec![unknown_facts("")];
    }
    let c = super::classify_at(body, dialect, depth + 1);
    if c.statements.is_empty() {
        vec![unknown_facts("")]
    } else {
        c.statements
    }
}

/// `CREATE TABLE t AS EXECUTE p`, or any other `EXECUTE` inside a
/// statement: the nested statement, so the prepared body it runs is judged.
fn nested_execute(
    sql: &str,
    st: &Statement,
    dialect: Dialect,
    depth: usize,
) -> Vec<StatementFacts> {
    let mut from = st.first_word() + 1;
    while let Some(at) = st.find_top(from, &["EXECUTE"]) {
        // Not a prepared statement's EXECUTE: a trigger's `EXECUTE
        // FUNCTION f()`/`EXECUTE PROCEDURE`, or a privilege (`GRANT
        // EXECUTE ON FUNCTION`, `GRANT SELECT, EXECUTE ON …`).
        let privilege_or_trigger = st.is_word(at + 1, "FUNCTION")
            || st.is_word(at + 1, "PROCEDURE")
            || st.is_word(at + 1, "ON")
            || matches!(st.toks.get(at + 1), Some((_, Token::Punct(','))));
        if !privilege_or_trigger {
            return body_after(sql, st, Some(at), dialect, depth);
        }
        from = at + 1;
    }
    Vec::new()
}

/// What an unreadable statement that changes a table's rows in bulk
/// (ALTER/RENAME/TRUNCATE/CLUSTER/VACUUM FULL) does, for rules about
/// updates and deletes, on every table it names: an unreadable ALTER TABLE
/// counts as both (fail closed), TRUNCATE as a delete, the others as an
/// update.
fn ddl_effects_by_keyword(head: &StatementFacts, st: &Statement) -> Vec<StatementFacts> {
    let k = head.keyword.as_str();
    let first = st.first_word();
    let rewrites =
        k == "CLUSTER" || (k == "VACUUM" && (first..st.toks.len()).any(|i| st.is_word(i, "FULL")));
    let changes = k.starts_with("ALTER TABLE")
        || k.starts_with("RENAME")
        || k.starts_with("TRUNCATE")
        || rewrites;
    if !changes {
        return Vec::new();
    }
    let mut tables: BTreeSet<String> = head
        .tables_written
        .iter()
        .chain(head.tables_read.iter())
        .cloned()
        .collect();
    if rewrites {
        // `CLUSTER [VERBOSE] t`, `VACUUM (FULL) t`, `VACUUM FULL VERBOSE t`:
        // the first name after the options.
        const OPTIONS: &[&str] = &["VERBOSE", "FULL", "FREEZE", "ANALYZE"];
        let mut i = first + 1;
        while st.depth.get(i).is_some_and(|d| *d > 0)
            || matches!(st.toks.get(i), Some((_, Token::Punct(_))))
            || OPTIONS.contains(&st.word(i).as_str())
        {
            i += 1;
        }
        tables.extend(st.name_at(i));
    }
    let kinds: &[StatementKind] = if k.starts_with("ALTER TABLE") {
        &[StatementKind::Update, StatementKind::Delete]
    } else if k.starts_with("TRUNCATE") {
        &[StatementKind::Delete]
    } else {
        &[StatementKind::Update]
    };
    kinds
        .iter()
        .copied()
        .map(|kind| {
            let mut f = unknown_facts(&kind.as_str().to_ascii_uppercase());
            f.kind = kind;
            f.tables_written = tables.clone();
            f
        })
        .collect()
}

/// Data-modifying statements opening a parenthesis (`WITH d AS (DELETE …)`):
/// one facts entry each, with the table after it, never with a WHERE.
fn modifying_subclauses(st: &Statement) -> Vec<StatementFacts> {
    let mut out = Vec::new();
    for i in 1..st.toks.len() {
        if !matches!(st.toks[i - 1], (_, Token::Punct('('))) {
            continue;
        }
        let kind = match st.word(i).as_str() {
            "INSERT" => StatementKind::Insert,
            "UPDATE" => StatementKind::Update,
            "DELETE" => StatementKind::Delete,
            "MERGE" => StatementKind::Merge,
            _ => continue,
        };
        let mut f = unknown_facts(&st.word(i));
        f.kind = kind;
        let mut j = i + 1;
        while matches!(st.word(j).as_str(), "FROM" | "INTO" | "ONLY") {
            j += 1;
        }
        if let Some(name) = st.name_at(j) {
            f.tables_written.insert(name);
        }
        out.push(f);
    }
    out
}

/// A quoted identifier's name: quotes removed, doubled quotes undone.
fn unquote(q: &str) -> String {
    let Some(quote) = q.chars().next() else {
        return String::new();
    };
    let inner = q.strip_prefix(quote).unwrap_or(q);
    let inner = inner.strip_suffix(quote).unwrap_or(inner);
    inner.replace(&format!("{quote}{quote}"), &quote.to_string())
}

/// A string literal's text: quotes removed, `''` and (MySQL) backslash
/// escapes undone.
fn unquote_literal(lit: &str, dialect: Dialect) -> String {
    let quote = lit.chars().next().unwrap_or('\'');
    let inner = lit.strip_prefix(quote).unwrap_or(lit);
    let inner = inner.strip_suffix(quote).unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if dialect == Dialect::MySql && c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => {}
            }
        } else if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(quote);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    const PG: Dialect = Dialect::Postgres;
    const MY: Dialect = Dialect::MySql;

    #[test]
    fn unreadable_forms_fail_closed() {
        let f = classify_by_keywords("/* x */ DO $$ begin delete from t; end $$", PG);
        assert_eq!(
            (f.kind, f.parsed, f.has_where),
            (StatementKind::Do, false, false)
        );
        assert!(
            f.tables_read.is_empty() && f.tables_written.is_empty(),
            "literal bodies are not read: {f:?}"
        );
        let f = classify_by_keywords("ALTER SYSTEM SET work_mem = '1GB'", PG);
        assert_eq!(
            (f.kind, f.keyword.as_str()),
            (StatementKind::Utility, "ALTER SYSTEM")
        );
        let f = classify_by_keywords("SELECT * FROM t INTO OUTFILE '/tmp/x'", MY);
        assert_eq!(
            (f.kind, f.copy_direction),
            (StatementKind::Copy, Some(CopyDirection::Out))
        );
        assert!(
            f.tables_read.contains("t") && f.tables_written.is_empty(),
            "{f:?}"
        );
        let f = classify_by_keywords("LOAD DATA LOCAL INFILE 'x' INTO TABLE t", MY);
        assert_eq!(
            (f.kind, f.copy_direction, f.keyword.as_str()),
            (StatementKind::Copy, Some(CopyDirection::In), "LOAD DATA")
        );
        assert!(f.tables_written.contains("t"));
        let f = classify_by_keywords("delete from accounts where id in (select 1)", PG);
        assert_eq!(f.kind, StatementKind::Delete);
        assert!(!f.has_where, "the fallback never claims a WHERE");
        assert!(f.tables_written.contains("accounts"));
        assert_eq!(
            classify_by_keywords("frobnicate", PG).kind,
            StatementKind::Unknown
        );
        assert_eq!(classify_by_keywords("", PG).kind, StatementKind::Unknown);
        let f = classify_by_keywords("REINDEX TABLE public.\"Big\"", PG);
        assert_eq!(f.kind, StatementKind::Utility);
        assert!(f.tables_written.contains("public.big"), "{f:?}");
        let f = classify_by_keywords("table customers", PG);
        assert_eq!(f.kind, StatementKind::Select);
        assert!(f.tables_read.contains("customers") && f.tables_written.is_empty());
        let f = classify_by_keywords("copy t from stdin with frobnicate", PG);
        assert_eq!(f.copy_direction, Some(CopyDirection::In));
        assert!(f.tables_written.contains("t"), "{f:?}");
        let f = classify_by_keywords("copy (select 1 from t) to stdout frobnicate", PG);
        assert_eq!(f.copy_direction, Some(CopyDirection::Out));
    }

    #[test]
    fn statements_that_run_statements_get_nested_facts() {
        let f = fallback_facts("explain (analyze, buffers) delete from t frobnicate", PG, 0);
        assert_eq!(f[0].kind, StatementKind::Explain);
        assert!(f.len() >= 2 && f[1].nested, "{f:?}");
        assert_eq!(f[1].kind, StatementKind::Delete);
        let f = fallback_facts("PREPARE s FROM 'DELETE FROM t'", MY, 0);
        assert_eq!(f[0].prepared_name.as_deref(), Some("s"));
        assert_eq!(
            (f[1].kind, f[1].nested, f[1].parsed),
            (StatementKind::Delete, true, true)
        );
        let f = fallback_facts("PREPARE s FROM @sql", MY, 0);
        assert_eq!((f[1].kind, f[1].nested), (StatementKind::Unknown, true));
        let f = fallback_facts("prepare p as do $$ begin end $$", PG, 0);
        assert_eq!((f[1].kind, f[1].nested), (StatementKind::Do, true));
        let f = fallback_facts(
            "with d as (delete from t returning *) select frobnicate(",
            PG,
            0,
        );
        assert_eq!(f[0].kind, StatementKind::Select);
        assert_eq!(f[1].kind, StatementKind::Delete);
        assert!(f[1].tables_written.contains("t"));
        let f = fallback_facts("with d as (select 1) delete from t frobnicate", PG, 0);
        assert_eq!(f[0].kind, StatementKind::Delete);
        assert!(f[0].tables_written.contains("t"));
    }

    #[test]
    fn deep_nesting_stops_at_unknown() {
        let sql = "prepare a as ".repeat(40) + "do $$ $$";
        let f = fallback_facts(&sql, PG, 0);
        assert!(f.iter().all(|x| !x.has_where));
        assert!(f.len() <= MAX_DEPTH + 2, "{}", f.len());
    }

    #[test]
    fn literals_are_unquoted() {
        assert_eq!(unquote("\"a\"\"b\""), "a\"b");
        assert_eq!(unquote_literal("'it''s'", PG), "it's");
        assert_eq!(unquote_literal("'a\\'b'", MY), "a'b");
    }
}
