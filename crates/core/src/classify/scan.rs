//! A single-pass lexical scanner over SQL text: the normalizer behind the
//! classification cache and the statement splitter behind the keyword
//! fallback. It knows quoting (`'…'` with `''`, `E'…'`, `$tag$…$tag$`,
//! `"…"`, MySQL backticks and backslash escapes) and comments, and nothing
//! else, so it is fast and total: any input, however broken, scans.

use super::Dialect;

/// What starts at a byte offset when it is not plain SQL text.
enum Span {
    /// A comment ending at the offset.
    Comment(usize),
    /// A string literal ending at the offset.
    Literal(usize),
    /// A quoted identifier ending at the offset.
    QuotedIdent(usize),
}

/// The comment, literal or quoted identifier starting at `i`, if any: the
/// one place that knows the quoting rules of both dialects.
fn opaque_span(b: &[u8], i: usize, dialect: Dialect) -> Option<Span> {
    let c = b[i];
    let next = b.get(i + 1).copied();
    let prev_word = i > 0 && is_word(b[i - 1]);
    let mysql = dialect == Dialect::MySql;
    Some(match c {
        b'-' if next == Some(b'-') => Span::Comment(skip_line_comment(b, i)),
        b'#' if mysql => Span::Comment(skip_line_comment(b, i)),
        b'/' if next == Some(b'*') => Span::Comment(skip_block_comment(b, i)),
        b'\'' => Span::Literal(skip_string(b, i, mysql)),
        b'"' if mysql => Span::Literal(skip_string(b, i, true)),
        b'e' | b'E' if !prev_word && next == Some(b'\'') => {
            Span::Literal(skip_string(b, i + 1, true))
        }
        b'$' if !mysql && !prev_word => Span::Literal(skip_dollar(b, i, dollar_tag(b, i)?)),
        b'"' | b'`' => Span::QuotedIdent(skip_string(b, i, false)),
        _ => return None,
    })
}

/// The normalized form of a command: literals replaced by `?`, comments
/// dropped, whitespace collapsed, unquoted words lower-cased. Commands that
/// differ only in literal values share it; the classification does not
/// depend on literal values, so it can be cached under this key.
pub fn normalize(sql: &str, dialect: Dialect) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, s: &str, pending: &mut bool| {
        if *pending && !out.is_empty() {
            out.push(' ');
        }
        *pending = false;
        out.push_str(s);
    };
    while i < b.len() {
        match opaque_span(b, i, dialect) {
            Some(Span::Comment(end)) => {
                pending_space = true;
                i = end;
                continue;
            }
            Some(Span::Literal(end)) => {
                push(&mut out, "?", &mut pending_space);
                i = end;
                continue;
            }
            Some(Span::QuotedIdent(end)) => {
                push(&mut out, &sql[i..end], &mut pending_space);
                i = end;
                continue;
            }
            None => {}
        }
        let c = b[i];
        let prev_word = i > 0 && is_word(b[i - 1]);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                pending_space = true;
                i += 1;
            }
            b'$' => {
                // `$1` parameter: kept as written.
                let end = scan_while(b, i + 1, |c| c.is_ascii_digit());
                push(&mut out, &sql[i..end], &mut pending_space);
                i = end;
            }
            b'0'..=b'9' if !prev_word => {
                i = skip_number(b, i);
                push(&mut out, "?", &mut pending_space);
            }
            b'.' if !prev_word && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(b, i + 1);
                push(&mut out, "?", &mut pending_space);
            }
            _ if is_word(c) => {
                let end = scan_while(b, i, is_word);
                let word = sql[i..end].to_ascii_lowercase();
                push(&mut out, &word, &mut pending_space);
                i = end;
            }
            _ => {
                let end = (i + utf8_len(c)).min(b.len());
                push(&mut out, sql.get(i..end).unwrap_or("?"), &mut pending_space);
                i = end;
            }
        }
    }
    out
}

/// Split a command into statements on `;` outside quotes and comments.
/// Empty statements are dropped; each piece keeps its own text.
pub fn split_statements(sql: &str, dialect: Dialect) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match opaque_span(b, i, dialect) {
            Some(Span::Comment(end) | Span::Literal(end) | Span::QuotedIdent(end)) => i = end,
            None => {
                if b[i] == b';' {
                    pieces.push(&sql[start..i]);
                    start = i + 1;
                }
                i += 1;
            }
        }
    }
    pieces.push(&sql[start.min(sql.len())..]);
    pieces
        .into_iter()
        .filter(|p| !strip_comments(p, dialect).trim().is_empty())
        .collect()
}

/// The statement with comments removed (for reading leading keywords).
pub fn strip_comments(sql: &str, dialect: Dialect) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < b.len() {
        let end = match opaque_span(b, i, dialect) {
            Some(Span::Comment(end)) => {
                out.push(' ');
                i = end;
                continue;
            }
            Some(Span::Literal(end) | Span::QuotedIdent(end)) => end,
            None => i + utf8_len(b[i]),
        };
        let end = end.min(b.len());
        out.push_str(sql.get(i..end).unwrap_or(""));
        i = end;
    }
    out
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

fn scan_while(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

fn skip_line_comment(b: &[u8], i: usize) -> usize {
    scan_while(b, i, |c| c != b'\n')
}

/// `/* … */`, nested as in PostgreSQL; an unterminated comment runs to the end.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// A quoted string starting at the quote `b[i]`; doubled quotes escape, and
/// with `backslash` so does `\`. Unterminated strings run to the end.
fn skip_string(b: &[u8], i: usize, backslash: bool) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
        } else if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// Length of a `$tag$` opener at `i` (`$$` or `$name$`), if it is one.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        if j == i + 1 && b[j].is_ascii_digit() {
            return None;
        }
        j += 1;
    }
    (j < b.len() && b[j] == b'$').then_some(j + 1 - i)
}

fn skip_dollar(b: &[u8], i: usize, tag_len: usize) -> usize {
    let tag = &b[i..i + tag_len];
    let mut j = i + tag_len;
    while j + tag_len <= b.len() {
        if &b[j..j + tag_len] == tag {
            return j + tag_len;
        }
        j += 1;
    }
    b.len()
}

fn skip_number(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() {
        let c = b[j];
        let exponent_sign = (c == b'+' || c == b'-') && j > i && matches!(b[j - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
            j += 1;
        } else {
            break;
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    const PG: Dialect = Dialect::Postgres;

    #[test]
    fn literals_collapse_and_structure_stays() {
        let a = normalize(
            "SELECT * FROM t WHERE id = 42 AND name = 'x''y' -- hi\n LIMIT 10",
            PG,
        );
        let b = normalize(
            "select *   from T where ID = 7 and NAME = E'z\\'' /* c */ limit 1",
            PG,
        );
        assert_eq!(a, b);
        assert_eq!(a, "select * from t where id = ? and name = ? limit ?");
        assert_ne!(
            normalize("select a from t", PG),
            normalize("select b from t", PG)
        );
        assert_ne!(
            normalize("select \"A\" from t", PG),
            normalize("select a from t", PG)
        );
        assert_eq!(normalize("do $f$ begin; end $f$", PG), "do ?");
        assert_eq!(
            normalize("select $1, t1.c2 from t1", PG),
            "select $1, t1.c2 from t1"
        );
    }

    #[test]
    fn splitting_respects_quotes_and_comments() {
        let parts = split_statements("select ';'; /* ; */ select $$;$$; -- ;\n select 3;", PG);
        assert_eq!(parts.len(), 3, "{parts:?}");
        let mysql = split_statements("select 'a\\';b'; select `x;y` from t", Dialect::MySql);
        assert_eq!(mysql.len(), 2, "{mysql:?}");
    }

    proptest! {
        #[test]
        fn scanning_is_total(s in ".{0,200}") {
            let _ = normalize(&s, PG);
            let _ = normalize(&s, Dialect::MySql);
            let _ = split_statements(&s, PG);
            let _ = strip_comments(&s, Dialect::MySql);
        }

        #[test]
        fn literal_values_do_not_change_the_key(n in 0u64..1_000_000, s in "[a-z ]{0,20}") {
            let a = normalize(&format!("select * from t where id = {n} and x = '{s}'"), PG);
            let b = normalize("select * from t where id = 1 and x = 'q'", PG);
            prop_assert_eq!(a, b);
        }
    }
}
