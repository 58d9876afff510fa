//! How the server will read a session's text, as far as it decides where a
//! literal, a quoted name, a comment or a statement ends.
//!
//! The classifier reads one fixed grammar per dialect. Servers let a session
//! change how they lex: PostgreSQL's `standard_conforming_strings = off`
//! makes `\` an escape inside plain `'…'` strings; MySQL and MariaDB run the
//! code inside `/*!…*/` (and MariaDB `/*M!…*/`) when the server is at least
//! the version written after the `!`. If the gateway and the server end a
//! string at different quotes, the server runs statements the gateway never
//! judged. So before classifying, an adapter turns the text into the form
//! that means the same to the classifier's fixed grammar as the original
//! means to the server under the session's real settings (a *canonical*
//! text); the original is what is forwarded and recorded.
//!
//! What cannot be followed is refused by the adapters instead: client
//! character sets whose multi-byte characters can end in a byte that reads
//! as `\` or `'` ([`pg_client_encoding_is_safe`]), MySQL `ANSI_QUOTES` and
//! `NO_BACKSLASH_ESCAPES`.

use super::scan::{
    dollar_tag, executable_comment, is_word, scan_while, skip_block_comment, skip_dollar,
    skip_line_comment, skip_string, tokens, Token,
};
use super::{normalize, Dialect};
use std::borrow::Cow;

/// PostgreSQL client encodings in which the second byte of a character can
/// be `0x5c` (`\`) or another ASCII byte: the server reads such a byte as
/// part of the character, a byte-wise lexer as an escape. PostgreSQL accepts
/// them only as client encodings, never for a database.
const PG_UNSAFE_CLIENT_ENCODINGS: &[&str] = &[
    "sjis",
    "shiftjis",
    "mskanji",
    "win932",
    "windows932",
    "shiftjis2004",
    "big5",
    "win950",
    "windows950",
    "gbk",
    "win936",
    "windows936",
    "cp936",
    "gb18030",
    "uhc",
    "win949",
    "windows949",
    "johab",
];

/// Whether the gateway reads text in this PostgreSQL client encoding the
/// way the server does. Names compare as PostgreSQL compares them: case,
/// `-` and `_` do not matter (`Shift_JIS-2004` is `SHIFT_JIS_2004`).
pub fn pg_client_encoding_is_safe(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    !PG_UNSAFE_CLIENT_ENCODINGS.contains(&folded.as_str())
}

/// Why a PostgreSQL statement that switches the client encoding to one the
/// gateway cannot read must not run: `SET client_encoding`, `SET NAMES`,
/// `set_config('client_encoding', …)`, `ALTER ROLE … SET client_encoding`
/// with an unsafe encoding named as a literal or a word. Computed values
/// are caught when the server reports the change (the session then ends).
pub fn pg_encoding_change_refusal(sql: &str) -> Option<String> {
    let tokens = tokens(sql, Dialect::Postgres);
    let text = |t: &Token<'_>| -> Option<String> {
        match t {
            Token::Word(w) => Some(w.to_string()),
            Token::Literal(l) | Token::Quoted(l) => Some(
                l.trim_start_matches(['e', 'E'])
                    .trim_matches(['\'', '"'])
                    .to_string(),
            ),
            _ => None,
        }
    };
    let words: Vec<String> = tokens.iter().filter_map(|(_, t)| text(t)).collect();
    let names_encoding = words.iter().enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case("client_encoding")
            || (w.eq_ignore_ascii_case("names")
                && i > 0
                && ["set", "session", "local"]
                    .iter()
                    .any(|k| words[i - 1].eq_ignore_ascii_case(k)))
    });
    if !names_encoding {
        return None;
    }
    words
        .iter()
        .find(|w| !w.is_empty() && !pg_client_encoding_is_safe(w))
        .map(|w| {
            format!(
                "client_encoding {w} is not supported through gatehouse: in it a character can end in a byte that reads as a backslash or quote, so the gateway could read statements differently from the server; use UTF8"
            )
        })
}

/// Whether running this classified statement could change how the server
/// lexes the session's next statements (a SET, a function call that could
/// be `set_config`, a DO block, a procedure, a trigger on TRUNCATE, and a
/// ROLLBACK or COMMIT, which undo `SET` and `SET LOCAL`). Only statements
/// that surely cannot let later text in the same extended-protocol batch
/// be read without waiting for the server's report.
pub fn may_change_lexing(c: &super::Classification) -> bool {
    use super::StatementKind as K;
    c.statements
        .iter()
        .any(|f| !matches!(f.kind, K::Deallocate | K::Show | K::Prepare))
}

/// Whether `sql` reads differently with `standard_conforming_strings` on
/// and off: some plain `'…'` string holds a backslash that would end or
/// extend it under one setting and not the other. Literal values do not
/// count, only where statements, literals and comments begin and end.
pub fn pg_backslash_ambiguous(sql: &str) -> bool {
    if !sql.contains('\\') {
        return false;
    }
    match pg_standard_strings(sql) {
        Cow::Borrowed(_) => false,
        Cow::Owned(canonical) => {
            normalize(sql, Dialect::Postgres) != normalize(&canonical, Dialect::Postgres)
        }
    }
}

/// `sql` as a session with `standard_conforming_strings = off` means it,
/// rewritten for a standard-conforming reader: every plain string literal
/// that holds a backslash (an escape there) becomes a standard literal of
/// the same value, quotes doubled, so the classifier's grammar ends it
/// where the server does. Bit strings (`B'…'`, `X'…'`), dollar quotes,
/// quoted names and comments are read alike under both settings.
pub fn pg_standard_strings(sql: &str) -> Cow<'_, str> {
    let b = sql.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let prev_word = i > 0 && is_word(b[i - 1]);
        i = match c {
            b'-' if next == Some(b'-') => skip_line_comment(b, i),
            b'/' if next == Some(b'*') => skip_block_comment(b, i, true),
            b'$' if !prev_word => match dollar_tag(b, i) {
                Some(tag) => skip_dollar(b, i, tag),
                None => i + 1,
            },
            b'"' => skip_string(b, i, false),
            b'e' | b'E' if !prev_word && next == Some(b'\'') => {
                super::scan::skip_pg_string(b, i + 1, true)
            }
            b'\'' => {
                let bit_string = i >= 1
                    && matches!(b[i - 1], b'b' | b'B' | b'x' | b'X')
                    && !(i >= 2 && is_word(b[i - 2]));
                let end = super::scan::skip_pg_string(b, i, !bit_string);
                if !bit_string && sql[i..end].contains('\\') {
                    out.push_str(&sql[copied..i]);
                    requote_escaped(&sql[i..end], &mut out);
                    copied = end;
                }
                end
            }
            _ if is_word(c) => scan_while(b, i, is_word),
            _ => i + 1,
        };
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// Write the escaped literal `lit` (quotes included, continuations allowed)
/// as one standard literal: `\x` becomes `x`, quotes are doubled. Values
/// only approximate the original (`\n` becomes `n`); the classification
/// never depends on them.
fn requote_escaped(lit: &str, out: &mut String) {
    out.push('\'');
    let mut chars = lit.chars().peekable();
    // Skip the opening quote; track whether we are inside a piece.
    chars.next();
    let mut inside = true;
    while let Some(ch) = chars.next() {
        if inside {
            match ch {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        if escaped == '\'' {
                            out.push_str("''");
                        } else {
                            out.push(escaped);
                        }
                    }
                }
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push_str("''");
                }
                '\'' => inside = false,
                other => out.push(other),
            }
        } else if ch == '\'' {
            // A continuation's opening quote: the value goes on.
            inside = true;
        }
    }
    out.push('\'');
}

/// The MySQL or MariaDB server a session talks to, as far as lexing needs:
/// which versioned executable comments it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MySqlServer {
    /// `major * 10000 + minor * 100 + patch` (10.11.6 is 101106).
    pub version: u32,
    /// MariaDB runs `/*M!…*/` and skips MySQL 5.7+ versioned comments.
    pub mariadb: bool,
}

impl MySqlServer {
    /// From the version string of the server's greeting
    /// (`8.0.36`, `5.5.5-10.11.6-MariaDB-0+deb12u1`).
    pub fn from_greeting(version: &str) -> MySqlServer {
        let mariadb = version.contains("MariaDB");
        let text = if mariadb {
            version.strip_prefix("5.5.5-").unwrap_or(version)
        } else {
            version
        };
        // A number too large for u32 is taken as the largest: a server
        // that claims an absurd version is assumed to run every versioned
        // comment, so their text is judged as code (the safe side).
        let mut parts = text.split(|c: char| !c.is_ascii_digit()).map(|p| {
            p.parse::<u32>()
                .unwrap_or(if p.is_empty() { 0 } else { u32::MAX })
        });
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        let patch = parts.next().unwrap_or(0);
        MySqlServer {
            version: major
                .saturating_mul(10000)
                .saturating_add(minor.min(99) * 100 + patch.min(99)),
            mariadb,
        }
    }

    /// Whether this server runs a versioned comment for `version`, as its
    /// lexer decides (MariaDB ignores MySQL 5.7+ versions unless marked `M`).
    fn runs(&self, version: u32, maria_marker: bool) -> bool {
        if maria_marker && !self.mariadb {
            return false;
        }
        version <= self.version
            && (!self.mariadb || maria_marker || !(50700..=99999).contains(&version))
    }
}

/// `sql` with MySQL/MariaDB executable comments resolved for `server`: the
/// markers of a comment the server runs (`/*!`, `/*M!`, the version digits
/// and the closing `*/`) become spaces, so its code is plain code; one the
/// server skips becomes an ordinary comment. Offsets do not move.
pub fn mysql_executable_comments<'a>(sql: &'a str, server: &MySqlServer) -> Cow<'a, str> {
    let b = sql.as_bytes();
    if !sql.contains("/*") {
        return Cow::Borrowed(sql);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') && executable_comment(b, i) {
            let maria = b[i + 2] == b'M';
            let marker_end = i + if maria { 4 } else { 3 };
            let digits = scan_while(b, marker_end, |c| c.is_ascii_digit()) - marker_end;
            let (version, body) = if digits >= 5 {
                let n = digits.min(6);
                let v = sql[marker_end..marker_end + n]
                    .parse::<u32>()
                    .unwrap_or(u32::MAX);
                (Some(v), marker_end + n)
            } else {
                (None, marker_end)
            };
            let runs = version.is_none_or(|v| server.runs(v, maria)) && (!maria || server.mariadb);
            let buf = out.get_or_insert_with(|| b.to_vec());
            if runs {
                let close = executable_body_end(b, body);
                buf[i..body].fill(b' ');
                if close + 2 <= b.len() && &b[close..close + 2] == b"*/" {
                    buf[close..close + 2].fill(b' ');
                }
                i = (close + 2).min(b.len());
            } else {
                // Skipped: the server reads to its end as a comment that
                // may hold one nested `/* … */` and knows no quotes; the
                // classifier sees only spaces there.
                let end = skipped_comment_end(b, body, 1);
                buf[i..end].fill(b' ');
                i = end;
            }
            continue;
        }
        i = match mysql_opaque_end(b, i) {
            Some(end) => end,
            None => i + 1,
        };
    }
    match out {
        // Only ASCII bytes were replaced by ASCII spaces, on boundaries
        // the scanner found, so the text stays valid UTF-8.
        Some(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        None => Cow::Borrowed(sql),
    }
}

/// The end (after `*/`) of a comment whose body starts at `i`, read as
/// MySQL and MariaDB read a skipped versioned comment (`consume_comment`):
/// quotes mean nothing, and `/*` opens a nested comment while `nesting`
/// allows. An unterminated comment runs to the end.
fn skipped_comment_end(b: &[u8], mut i: usize, nesting: u32) -> usize {
    while i < b.len() {
        if nesting > 0 && b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skipped_comment_end(b, i + 2, nesting - 1);
            continue;
        }
        if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            return i + 2;
        }
        i += 1;
    }
    b.len()
}

/// Where the code of an executable comment whose body starts at `i` ends:
/// the first `*/` outside literals and quoted names (or the end).
fn executable_body_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            return i;
        }
        i = match mysql_opaque_end(b, i) {
            Some(end) => end,
            None => i + 1,
        };
    }
    b.len()
}

/// The end of a MySQL literal, quoted name or ordinary comment at `i`.
fn mysql_opaque_end(b: &[u8], i: usize) -> Option<usize> {
    match b[i] {
        b'\'' | b'"' => Some(skip_string(b, i, true)),
        b'`' => Some(skip_string(b, i, false)),
        b'/' if b.get(i + 1) == Some(&b'*') && !executable_comment(b, i) => {
            Some(skip_block_comment(b, i, false))
        }
        b'#' => Some(skip_line_comment(b, i)),
        b'-' if b.get(i + 1) == Some(&b'-')
            && b.get(i + 2)
                .is_none_or(|a| a.is_ascii_whitespace() || a.is_ascii_control()) =>
        {
            Some(skip_line_comment(b, i))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{classify, split_statements, StatementKind};
    use proptest::prelude::*;

    const MARIADB: MySqlServer = MySqlServer {
        version: 101106,
        mariadb: true,
    };
    const MYSQL8: MySqlServer = MySqlServer {
        version: 80036,
        mariadb: false,
    };

    #[test]
    fn encoding_changes_are_refused_by_statement() {
        for sql in [
            "set client_encoding to 'SJIS'",
            "SET client_encoding = sjis",
            "set names 'big5'",
            "select set_config('client_encoding', 'GBK', false)",
            "alter role bob set client_encoding = 'UHC'",
        ] {
            assert!(pg_encoding_change_refusal(sql).is_some(), "{sql}");
        }
        for sql in [
            "set client_encoding to 'UTF8'",
            "select 'sjis' as name",
            "set names 'latin1'",
            "select * from names where x = 'big5'",
        ] {
            assert!(pg_encoding_change_refusal(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn greeting_versions() {
        assert_eq!(
            MySqlServer::from_greeting("5.5.5-10.11.6-MariaDB-0+deb12u1"),
            MARIADB
        );
        assert_eq!(MySqlServer::from_greeting("8.0.36"), MYSQL8);
        assert_eq!(MySqlServer::from_greeting("").version, 0);
        // Found by fuzzing (fuzz/artifacts/mysql_packets): a greeting's
        // version past u32 overflowed; it now reads as the largest.
        assert_eq!(MySqlServer::from_greeting("3333333").version, u32::MAX);
        assert_eq!(
            MySqlServer::from_greeting("99999999999999.1.1").version,
            u32::MAX
        );
    }

    #[test]
    fn unsafe_client_encodings() {
        for bad in [
            "SJIS",
            "sjis",
            "Shift_JIS_2004",
            "BIG5",
            "gbk",
            "GB18030",
            "UHC",
            "JOHAB",
            "win932",
        ] {
            assert!(!pg_client_encoding_is_safe(bad), "{bad}");
        }
        for good in ["UTF8", "utf-8", "LATIN1", "SQL_ASCII", "EUC_JP", "WIN1252"] {
            assert!(pg_client_encoding_is_safe(good), "{good}");
        }
    }

    #[test]
    fn nonstandard_strings_end_where_the_server_ends_them() {
        // The attack: with standard_conforming_strings off, `\'` escapes,
        // so the UPDATE is code, not the inside of a dollar quote.
        let sql = "select 'x\\', $$ ' ; update customers set phone='555-0004' where id=14; -- $$";
        assert!(pg_backslash_ambiguous(sql));
        let canonical = pg_standard_strings(sql);
        let c = classify(&canonical, Dialect::Postgres);
        assert!(
            c.statements.iter().any(|f| f.kind == StatementKind::Update),
            "{canonical}: {c:?}"
        );
        // Standard reading: one SELECT of a string and a dollar quote.
        let plain = classify(sql, Dialect::Postgres);
        assert!(plain
            .statements
            .iter()
            .all(|f| f.kind == StatementKind::Select));
    }

    #[test]
    fn texts_without_backslashes_in_plain_strings_are_not_ambiguous() {
        for sql in [
            "select 1",
            "select E'a\\'b', 'c'",
            "select $$a\\'$$",
            "select \"a\\\" from t",
            "select b'101', x'1f'",
            "select 'a\\b'",
            "-- a\\' comment\nselect 1",
        ] {
            assert!(!pg_backslash_ambiguous(sql), "{sql}");
        }
        assert!(pg_backslash_ambiguous("select 'a\\'; delete from t; --'"));
    }

    #[test]
    fn escaped_continuations_stay_escaped() {
        // `E'a'` newline `'b\'…'` is one escaped string in PostgreSQL.
        let sql = "select E'a'\n' x\\' , ' ; update t set a = 1; --'";
        let pieces = split_statements(sql, Dialect::Postgres);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        let c = classify(sql, Dialect::Postgres);
        assert!(
            c.statements.iter().any(|f| f.kind == StatementKind::Update),
            "{c:?}"
        );
    }

    #[test]
    fn requoted_values_keep_their_quotes() {
        assert_eq!(pg_standard_strings("select 'it\\'s'"), "select 'it''s'");
        assert_eq!(pg_standard_strings("select 'a\\\\'"), "select 'a\\'");
        assert_eq!(pg_standard_strings("select 'plain'"), "select 'plain'");
        assert_eq!(pg_standard_strings("select b'1\\'"), "select b'1\\'");
    }

    #[test]
    fn mariadb_runs_its_own_executable_comments() {
        let sql = "/*M! update customers set phone='555-0001' where id=5 */";
        let canonical = mysql_executable_comments(sql, &MARIADB);
        let c = classify(&canonical, Dialect::MySql);
        assert_eq!(c.statements[0].kind, StatementKind::Update, "{canonical}");
        // MySQL does not know `/*M!`: a comment there.
        let mysql = mysql_executable_comments(sql, &MYSQL8);
        assert!(
            classify(&mysql, Dialect::MySql).statements.is_empty(),
            "{mysql}"
        );
        let read = mysql_executable_comments(
            "select 1 /*M!100000 , reverse(ssn) */ from customers",
            &MARIADB,
        );
        let c = classify(&read, Dialect::MySql);
        let out = c.statements[0].output.clone().unwrap_or_default();
        assert_eq!(out.len(), 2, "{read}");
    }

    #[test]
    fn versioned_comments_follow_the_server_version() {
        let s = "delete from t /*!99999 where id = 1 */";
        let c = mysql_executable_comments(s, &MARIADB);
        let f = &classify(&c, Dialect::MySql).statements[0];
        assert!(!f.has_where, "a comment the server skips is no WHERE: {c}");
        let s = "delete from t /*!40101 where id = 1 */";
        let c = mysql_executable_comments(s, &MARIADB);
        assert!(classify(&c, Dialect::MySql).statements[0].has_where, "{c}");
        // MariaDB skips MySQL 5.7+ versions; MySQL 8 runs them.
        let s = "select 1 /*!80000 , ssn */ from customers";
        let maria = mysql_executable_comments(s, &MARIADB);
        let mysql = mysql_executable_comments(s, &MYSQL8);
        let cols = |t: &str| {
            classify(t, Dialect::MySql).statements[0]
                .output
                .clone()
                .unwrap_or_default()
                .len()
        };
        assert_eq!(cols(&maria), 1, "{maria}");
        assert_eq!(cols(&mysql), 2, "{mysql}");
        // A `*/` inside a literal does not close the comment.
        let s = "select 1 /*! , '*/' , ssn */ from customers";
        assert_eq!(cols(&mysql_executable_comments(s, &MARIADB)), 3);
        // A skipped comment may nest one comment, and knows no quotes: the
        // UPDATE after it is code to the server.
        let s =
            "select 1, /*!99999 /* */ ' */ 2; update customers set phone = 'x' where id = 19; -- '";
        let c = mysql_executable_comments(s, &MARIADB);
        let kinds: Vec<StatementKind> = classify(&c, Dialect::MySql)
            .statements
            .iter()
            .map(|f| f.kind)
            .collect();
        assert!(kinds.contains(&StatementKind::Update), "{c}: {kinds:?}");
    }

    proptest! {
        #[test]
        fn canonical_texts_are_total(parts in proptest::collection::vec(prop::sample::select(vec![
            "'", "\"", "`", "$$", "E'", "\\", "--", "/*", "*/", "/*!", "/*M!", "50700", "#", ";", "\n", " ", "x", "b'",
        ]), 0..40)) {
            let s: String = parts.concat();
            let _ = pg_backslash_ambiguous(&s);
            let pg = pg_standard_strings(&s);
            let _ = normalize(&pg, Dialect::Postgres);
            for server in [MARIADB, MYSQL8] {
                let my = mysql_executable_comments(&s, &server);
                prop_assert_eq!(my.len(), s.len());
                let _ = normalize(&my, Dialect::MySql);
            }
        }

        #[test]
        fn standard_texts_are_left_alone(s in "[a-z0-9 ,;'()=*]{0,60}") {
            prop_assert_eq!(pg_standard_strings(&s), Cow::Borrowed(s.as_str()));
            prop_assert!(!pg_backslash_ambiguous(&s));
        }
    }
}
