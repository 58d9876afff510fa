//! Does the SQL parser read a text the way the server does?
//!
//! The classifier parses with sqlparser, whose tokenizer is not the server's
//! lexer. Where the two disagree on where a string, a quoted name or a
//! comment ends, the parser can take code the server runs for the inside of
//! a literal (PostgreSQL's `E'a'` newline `'x\' …` continuation is one
//! escaped string to the server and two literals and an alias to
//! sqlparser). The scanner (`scan.rs`) follows the server's rules; this
//! module checks, span by span, that sqlparser's tokens put every literal,
//! quoted name and comment where the scanner does. When they do not, the
//! parse is not trusted: the statement is split by the scanner and what the
//! parser cannot read alike falls back to the keyword classification,
//! which fails closed.

use super::scan::{opaque_spans, Opaque};
use super::Dialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

/// Whether sqlparser's tokenizer and the server's lexing rules put every
/// comment, literal and quoted identifier of `sql` at the same place.
pub fn lexers_agree(sql: &str, dialect: Dialect) -> bool {
    let ours = opaque_spans(sql, dialect);
    if dialect == Dialect::Postgres && ours.iter().any(|s| unicode_escaped(sql, s.0)) {
        // `U&"\0073sn"` is the name `ssn` to the server and `U & "…"` to
        // the parser.
        return false;
    }
    let parser_dialect = super::parser_dialect(dialect);
    let Ok(tokens) = Tokenizer::new(parser_dialect.as_ref(), sql).tokenize_with_location() else {
        return false;
    };
    let offsets = Offsets::new(sql);
    let mut theirs = Vec::new();
    for t in &tokens {
        let kind = match &t.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => Opaque::Comment,
            Token::Word(w) if w.quote_style.is_some() => Opaque::QuotedIdent,
            Token::Word(_)
            | Token::Number(..)
            | Token::Whitespace(_)
            | Token::Placeholder(_)
            | Token::EOF => continue,
            // String-like tokens: every literal kind the tokenizer knows.
            t if is_literal(t) => Opaque::Literal,
            // Operators and punctuation.
            _ => continue,
        };
        let (Some(start), Some(end)) = (offsets.at(t.span.start), offsets.at(t.span.end)) else {
            return false;
        };
        // MySQL's `0x1F` and `0b101` are hex and bit literals to the
        // tokenizer and numbers to the scanner: no quote, nothing hidden.
        if kind == Opaque::Literal && !sql.get(start..end).is_some_and(quoted) {
            continue;
        }
        theirs.push((start, end, kind));
    }
    ours.len() == theirs.len()
        && ours
            .iter()
            .zip(&theirs)
            .all(|(o, t)| same_span(sql, *o, *t))
}

/// Whether the quote at `at` opens PostgreSQL's Unicode-escaped form
/// (`U&"…"`, `U&'…'`), which the parser does not read as the server does.
fn unicode_escaped(sql: &str, at: usize) -> bool {
    let b = sql.as_bytes();
    at >= 2
        && b[at - 1] == b'&'
        && matches!(b[at - 2], b'u' | b'U')
        && !(at >= 3
            && (b[at - 3].is_ascii_alphanumeric() || b[at - 3] == b'_' || b[at - 3] >= 0x80))
}

/// String-like tokens: whatever carries text the tokenizer read as quoted.
fn is_literal(t: &Token) -> bool {
    let shown = t.to_string();
    shown.contains('\'') || shown.contains('"') || shown.contains('$') || shown.contains('`')
}

/// Whether a literal's text has a quote after its prefix (`N'…'`, `E'…'`,
/// `_utf8mb4'…'`, `$$…$$`), unlike `0x1F`.
fn quoted(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '&')
        .starts_with(['\'', '"', '`', '$'])
}

/// Same kind (a MySQL `"…"` is a literal to both) and the same end; the
/// parser may start a literal earlier by a prefix the scanner reads as a
/// word (`N'…'`, `X'…'`, `U&'…'`, `_utf8mb4'…'`).
fn same_span(sql: &str, ours: (usize, usize, Opaque), theirs: (usize, usize, Opaque)) -> bool {
    let kinds = ours.2 == theirs.2
        || matches!(
            (ours.2, theirs.2),
            (Opaque::Literal, Opaque::QuotedIdent) | (Opaque::QuotedIdent, Opaque::Literal)
        ) && sql.as_bytes().get(ours.0) == Some(&b'"');
    let prefix_ok = theirs.0 == ours.0
        || (theirs.0 < ours.0
            && sql.get(theirs.0..ours.0).is_some_and(|p| {
                p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '&')
            }));
    // A line comment's end: the scanner stops before the newline, the
    // tokenizer takes it.
    let end_ok = ours.1 == theirs.1
        || (ours.2 == Opaque::Comment
            && theirs.1 == ours.1 + 1
            && matches!(sql.as_bytes().get(ours.1), Some(b'\n')));
    kinds && prefix_ok && end_ok
}

/// Byte offsets of the tokenizer's (line, column) locations: lines end at
/// `\n`, columns count characters from 1.
struct Offsets<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Offsets<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(
            sql.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Offsets { sql, line_starts }
    }

    fn at(&self, loc: Location) -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(line)?;
        let rest = self.sql.get(start..)?;
        match rest.char_indices().nth(col) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == col => Some(self.sql.len()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn everyday_statements_agree() {
        for sql in [
            "select 1",
            "select 'a', E'b\\'c', $$d$$, $q$e$q$, \"F\" from t -- note\n where x = 'y' /* c */",
            "select n'x', x'1f', b'101'",
            "/* a /* nested */ comment */ select 1",
            "insert into t (a) values ('it''s'); update t set a = 'b' where id = 1;",
            "select 'é', 'naïve' -- ünïcode\n",
        ] {
            assert!(lexers_agree(sql, Dialect::Postgres), "{sql}");
        }
        for sql in [
            "select 'a\\'b', \"c\\\"d\", `e``f` from t # c\n where x = 1",
            "select 1 -- c\n, 2 /* c */",
            "select concat(0x7e, x'41', b'01', 0b01, _utf8mb4'a', n'b')",
        ] {
            assert!(lexers_agree(sql, Dialect::MySql), "{sql}");
        }
    }

    #[test]
    fn a_continued_escape_string_is_caught() {
        let sql = "select E'a'\n' x\\' , ' ; update t set a = 1; --'";
        assert!(!lexers_agree(sql, Dialect::Postgres));
        // Even a harmless continuation is read as two literals by the
        // parser: such text is classified by keywords.
        assert!(!lexers_agree("select 'a'\n'b'", Dialect::Postgres));
        // A Unicode-escaped name is `ssn` to the server.
        assert!(!lexers_agree(
            "select U&\"\\0073sn\" from customers",
            Dialect::Postgres
        ));
        assert!(!lexers_agree("select u&'\\0041'", Dialect::Postgres));
    }

    fn pg_literal() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..u64::MAX).prop_map(|n| n.to_string()),
            "[a-zA-Z0-9 ;$\"`\\-]{0,12}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            "[a-z ;'\\\\]{0,12}"
                .prop_map(|s| format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))),
            "[a-z ;']{0,12}".prop_map(|s| format!("$q${s}$q$")),
            "[a-z ;'é]{0,12}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
            "[a-z ;'*]{0,12}".prop_map(|s| format!("/* {s} */ 1")),
        ]
    }

    proptest! {
        #[test]
        fn everyday_literals_agree(a in pg_literal(), b in pg_literal(), c in pg_literal()) {
            let sql = format!("select {a}, {b} from t where x = {c} -- done");
            prop_assert!(lexers_agree(&sql, Dialect::Postgres), "{}", sql);
        }

        #[test]
        fn agreement_is_total(parts in proptest::collection::vec(prop::sample::select(vec![
            "'", "\"", "`", "$$", "$a$", "E'", "N'", "\\", "--", "/*", "*/", "#", ";", "\n", " ", "x", "é", "1",
        ]), 0..30)) {
            let s: String = parts.concat();
            let _ = lexers_agree(&s, Dialect::Postgres);
            let _ = lexers_agree(&s, Dialect::MySql);
        }
    }
}
