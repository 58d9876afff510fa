//! Masking the audit trail's own text: statements, shell lines, request
//! lines, prompts and error messages, before they are stored.
//!
//! The trail is read by people who were not necessarily allowed to see what
//! the caller typed (auditors, approvers, a SIEM), and PCI DSS wants a card
//! number unreadable wherever it is stored, logs included. So every text
//! the trail keeps goes through two passes here:
//!
//! 1. **Column rules, on SQL only.** A literal compared with, assigned to,
//!    or listed `IN` for a column that a column rule masks for this caller
//!    is masked with that rule's strategy, inside its quotes:
//!    `where account_number = '12345678'` → `where account_number = '****5678'`.
//!    The shapes recognised: `col op operand` and `operand op col` (op one of
//!    `= <> != < > <= >= <=>`, `LIKE`, `ILIKE`, `IN (…)`, `BETWEEN … AND …`,
//!    with `NOT`), which also covers `SET col = …` and `ON … UPDATE`, and
//!    `INSERT … (cols) VALUES (…), (…)` by position. Every literal in the
//!    operand expression is masked (`col = lower('X')` too). Columns are
//!    matched by name whatever the table (`c.ssn` has an alias, not a table),
//!    so this errs towards masking. An `INSERT … VALUES` without a column list
//!    masks every literal when any column rule applies to the caller: when
//!    unsure, mask. So are the arguments of `EXECUTE name (…)`, whose
//!    prepared body is not in the text, and values assigned to MySQL user
//!    variables (`SET @v = …`, bound later by `EXECUTE … USING @v`). A bound
//!    parameter compared with a masked column (`col = $1`, `col = ?`) masks
//!    that parameter's value in the `-- parameters:` line adapters append
//!    for approvers.
//! 2. **Content detectors, on every text.** The same detectors and
//!    strategies as the result path, so `ssn = '536-22-1457'` is stored as
//!    `ssn = '***-**-1457'` under `partial`. A text with `%`-escapes (a
//!    query string) is also checked decoded; if the decoded text holds a
//!    finding the raw one hides (`4111%201111%20…`), the decoded text is
//!    stored, masked.
//!
//! Digits inside a machine identifier (a run of 16+ hex digits with a
//! letter, such as a SHA-256 or a session id, or a `tok_` token) are not
//! findings here: the trail guard scans data the gateway wrote itself.
//!
//! Both passes are pure functions of the text, the masker and the column
//! lookup, and never panic on any input (property tests hold us to it).

use super::engine::{MaskCounts, Masker};
use super::{EntityType, Strategy};
use crate::classify::{tokens, Dialect, Token};
use std::borrow::Cow;
use std::collections::HashMap;

/// The line adapters append to a held statement with its bound values.
pub const PARAMETERS: &str = "\n-- parameters: ";

/// What kind of text is being stored, which decides the passes it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailKind {
    /// SQL in a dialect: column rules on literals, then detectors.
    Sql(Dialect),
    /// Anything else (shell lines, paths, request lines, prompts, errors):
    /// detectors only.
    Text,
}

impl TrailKind {
    /// The kind of a held command's text, from its protocol's name.
    pub fn for_protocol(protocol: &str) -> TrailKind {
        match protocol {
            "postgres" | "postgresql" => TrailKind::Sql(Dialect::Postgres),
            "mysql" | "mariadb" => TrailKind::Sql(Dialect::MySql),
            _ => TrailKind::Text,
        }
    }
}

/// How a column rule masks one column: the strategy and the entity the
/// masked value is counted under. `None` from a lookup: not masked.
pub type ColumnStrategy = (Strategy, EntityType);

/// A text as the trail may keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailText<'a> {
    /// The masked text (borrowed when nothing was masked).
    pub text: Cow<'a, str>,
    /// What was masked, by entity type.
    pub counts: MaskCounts,
}

impl TrailText<'_> {
    /// Whether anything was masked (so the original differs).
    pub fn changed(&self) -> bool {
        matches!(self.text, Cow::Owned(_))
    }
}

/// One replacement of the original text: byte range and new text.
struct Splice {
    start: usize,
    end: usize,
    with: String,
}

impl Masker {
    /// Mask `text` before the audit trail stores it (see the module doc).
    /// `columns` says how a column rule masks a column for this caller,
    /// given its unquoted lower-case name, or `*` for "some column we could
    /// not name" (an `INSERT` without a column list).
    pub fn mask_for_trail<'a>(
        &self,
        text: &'a str,
        kind: TrailKind,
        columns: &dyn Fn(&str) -> Option<ColumnStrategy>,
    ) -> TrailText<'a> {
        let mut counts = MaskCounts::default();
        let mut splices = match kind {
            TrailKind::Sql(dialect) => self.column_splices(text, dialect, columns, &mut counts),
            TrailKind::Text => Vec::new(),
        };
        let findings: Vec<_> = self
            .findings(text)
            .into_iter()
            .filter(|f| !inside_hex_identifier(text, f.start, f.end))
            .collect();
        // A value hidden by `%`-escapes (a query string): when the decoded
        // text holds more findings, keep the decoded text, masked.
        if let Some(decoded) = percent_decoded(text) {
            let hidden = self
                .findings(&decoded)
                .iter()
                .filter(|f| !inside_hex_identifier(&decoded, f.start, f.end))
                .count();
            if hidden > findings.len() {
                let masked = self.mask_for_trail(&decoded, kind, columns);
                return TrailText {
                    text: Cow::Owned(masked.text.into_owned()),
                    counts: masked.counts,
                };
            }
        }
        for f in findings {
            if splices.iter().any(|s| s.start < f.end && f.start < s.end) {
                continue;
            }
            let mut one = MaskCounts::default();
            let with = self.mask_findings(&text[f.start..f.end], &[whole(f)], &mut one);
            counts.merge(&one);
            splices.push(Splice {
                start: f.start,
                end: f.end,
                with,
            });
        }
        if splices.is_empty() {
            return TrailText {
                text: Cow::Borrowed(text),
                counts,
            };
        }
        splices.sort_by_key(|s| s.start);
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for s in splices {
            out.push_str(&text[at..s.start]);
            out.push_str(&s.with);
            at = s.end;
        }
        out.push_str(&text[at..]);
        TrailText {
            text: Cow::Owned(out),
            counts,
        }
    }

    /// Mask every string inside a JSON value for the trail (detectors
    /// only); each changed string's original is pushed with its JSON
    /// pointer, for sealing. Keys in `skip` (at any depth) are left alone.
    pub fn mask_json_for_trail(
        &self,
        value: &mut serde_json::Value,
        skip: &[&str],
        counts: &mut MaskCounts,
        originals: &mut Vec<(String, String)>,
    ) {
        let mut pointer = String::new();
        self.mask_json_at(value, skip, counts, originals, &mut pointer);
    }

    fn mask_json_at(
        &self,
        value: &mut serde_json::Value,
        skip: &[&str],
        counts: &mut MaskCounts,
        originals: &mut Vec<(String, String)>,
        pointer: &mut String,
    ) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                let masked = self.mask_for_trail(s, TrailKind::Text, &|_| None);
                if masked.changed() {
                    counts.merge(&masked.counts);
                    let masked = masked.text.into_owned();
                    originals.push((pointer.clone(), std::mem::replace(s, masked)));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.mask_json_at(item, skip, counts, originals, pointer);
                    pointer.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if skip.contains(&k.as_str()) {
                        continue;
                    }
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    self.mask_json_at(v, skip, counts, originals, pointer);
                    pointer.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The column-rule pass over a SQL text: which literals to mask, how.
    fn column_splices(
        &self,
        sql: &str,
        dialect: Dialect,
        columns: &dyn Fn(&str) -> Option<ColumnStrategy>,
        counts: &mut MaskCounts,
    ) -> Vec<Splice> {
        // Cheap exits: no column rule applies to this caller (`*` finds
        // any), or the statement has no literal or number to mask.
        if columns("*").is_none() {
            return Vec::new();
        }
        if !sql
            .bytes()
            .any(|b| b == b'\'' || b == b'"' || b == b'$' || b.is_ascii_digit())
        {
            return Vec::new();
        }
        // Adapters show approvers the bound values after the statement, on
        // a comment line the scanner would skip: read that line on its own.
        let (stmt, shown) = match sql.rfind(PARAMETERS) {
            Some(p) => (&sql[..p], Some(p + PARAMETERS.len())),
            None => (sql, None),
        };
        let toks = tokens(stmt, dialect);
        let mut masked: HashMap<usize, ColumnStrategy> = HashMap::new();
        let mut params: HashMap<String, ColumnStrategy> = HashMap::new();
        let mut question_index: HashMap<usize, usize> = HashMap::new();
        for (i, (_, t)) in toks.iter().enumerate() {
            if matches!(t, Token::Punct('?')) {
                let n = question_index.len() + 1;
                question_index.insert(i, n);
            }
        }
        let mark = |range: std::ops::Range<usize>,
                    how: &ColumnStrategy,
                    masked: &mut HashMap<usize, ColumnStrategy>,
                    params: &mut HashMap<String, ColumnStrategy>| {
            for j in range {
                match &toks[j].1 {
                    Token::Literal(_) | Token::Number if !is_placeholder(stmt, &toks, j) => {
                        masked.entry(j).or_insert_with(|| how.clone());
                    }
                    Token::Number => {
                        let name = token_text(stmt, &toks, j).to_string();
                        params.entry(name).or_insert_with(|| how.clone());
                    }
                    Token::Punct('?') => {
                        if let Some(n) = question_index.get(&j) {
                            params.entry(format!("?{n}")).or_insert_with(|| how.clone());
                        }
                    }
                    _ => {}
                }
            }
        };
        let mut i = 0;
        while i < toks.len() {
            // `col op operand`
            if let Some(col) = column_name(&toks[i].1) {
                if let Some(how) = columns(&col) {
                    if let Some(range) = operand_after(&toks, i + 1) {
                        mark(range, &how, &mut masked, &mut params);
                    }
                }
            }
            // `operand op col`: a literal right before a comparison with a column.
            if matches!(toks[i].1, Token::Literal(_) | Token::Number) {
                let after = comparison_len(&toks, i + 1);
                if after > 0 {
                    if let Some(col) = toks.get(i + 1 + after).and_then(|t| column_name(&t.1)) {
                        if let Some(how) = columns(&col) {
                            mark(i..i + 1, &how, &mut masked, &mut params);
                        }
                    }
                }
            }
            // `f(col)::text op operand`, `extract(year from col) op operand`
            // and the reverse: a comparison whose one side computes from a
            // masked column has the other side's literals masked by it.
            if comparison_len(&toks, i) > 0 && i > 0 {
                let before = operand_before(&toks, i);
                let masked_in = |range: std::ops::Range<usize>| {
                    range
                        .filter_map(|j| column_name(&toks[j].1))
                        .find_map(|c| columns(&c))
                };
                if let Some(how) = masked_in(before.clone()) {
                    if let Some(range) = operand_after(&toks, i) {
                        mark(range, &how, &mut masked, &mut params);
                    }
                } else if let Some(after) = operand_after(&toks, i) {
                    if let Some(how) = masked_in(after) {
                        mark(before, &how, &mut masked, &mut params);
                    }
                }
            }
            // MySQL `SET @v = …` / `@v := …`: a user variable, bound later
            // (`EXECUTE s USING @v`) to a column this text does not name.
            if matches!(toks[i].1, Token::Punct('@'))
                && matches!(toks.get(i + 1), Some((_, Token::Word(_))))
            {
                let mut op = i + 2;
                if matches!(toks.get(op), Some((_, Token::Punct(':')))) {
                    op += 1;
                }
                if matches!(toks.get(op), Some((_, Token::Punct('=')))) {
                    if let (Some(how), Some(range)) = (columns("*"), operand_after(&toks, op)) {
                        mark(range, &how, &mut masked, &mut params);
                    }
                }
            }
            // `EXECUTE name (args)`: the arguments are bound to a prepared
            // body this text does not show, so which column each meets is
            // unknown: mask them all when any column rule applies.
            if matches!(toks[i].1, Token::Word(w) if w.eq_ignore_ascii_case("execute"))
                && toks.get(i + 1).is_some_and(|t| column_name(&t.1).is_some())
                && matches!(toks.get(i + 2), Some((_, Token::Punct('('))))
            {
                if let Some(how) = columns("*") {
                    let mut depth = 0usize;
                    let mut end = i + 2;
                    while end < toks.len() {
                        match toks[end].1 {
                            Token::Punct('(') => depth += 1,
                            Token::Punct(')') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        end += 1;
                    }
                    mark(i + 3..end.min(toks.len()), &how, &mut masked, &mut params);
                }
            }
            // `… (cols) VALUES (…), (…)`
            if matches!(toks[i].1, Token::Word(w) if w.eq_ignore_ascii_case("values")) {
                for (range, col) in values_items(&toks, i) {
                    let how = match col {
                        Some(c) => columns(&c),
                        None => columns("*"),
                    };
                    if let Some(how) = how {
                        mark(range, &how, &mut masked, &mut params);
                    }
                }
            }
            i += 1;
        }
        let mut splices = Vec::with_capacity(masked.len());
        for (j, how) in masked {
            splices.push(self.mask_token(stmt, &toks, j, 0, &how, counts));
        }
        // Bound values shown after the statement (`$1 = '…', $2 = NULL`,
        // `?1 = '…'`): mask those a masked column is compared with.
        if let Some(base) = shown.filter(|_| !params.is_empty()) {
            let line = &sql[base..];
            let ptoks = tokens(line, Dialect::Postgres);
            for j in 0..ptoks.len() {
                let (name, skip) = match &ptoks[j].1 {
                    Token::Number if is_placeholder(line, &ptoks, j) => {
                        (token_text(line, &ptoks, j).to_string(), 1)
                    }
                    Token::Punct('?') if matches!(ptoks.get(j + 1), Some((_, Token::Number))) => {
                        (format!("?{}", token_text(line, &ptoks, j + 1)), 2)
                    }
                    _ => continue,
                };
                let Some(how) = params.get(&name) else {
                    continue;
                };
                if matches!(ptoks.get(j + skip), Some((_, Token::Punct('=')))) {
                    if let Some((_, Token::Literal(_))) = ptoks.get(j + skip + 1) {
                        splices.push(self.mask_token(
                            line,
                            &ptoks,
                            j + skip + 1,
                            base,
                            how,
                            counts,
                        ));
                    }
                }
            }
        }
        splices
    }

    /// Mask literal or number token `j` of `text` (which starts at byte
    /// `base` of the whole text) with a column rule's strategy, keeping
    /// the quotes.
    fn mask_token(
        &self,
        text: &str,
        toks: &[(usize, Token<'_>)],
        j: usize,
        base: usize,
        (strategy, entity): &ColumnStrategy,
        counts: &mut MaskCounts,
    ) -> Splice {
        let start = toks[j].0;
        let whole = token_text(text, toks, j);
        let (open, close) = match toks[j].1 {
            Token::Literal(_) => literal_quotes(whole),
            _ => (0, 0),
        };
        let close = close.min(whole.len() - open);
        let body = &whole[open..whole.len() - close];
        let with = format!(
            "{}{}{}",
            &whole[..open],
            self.mask_value(body, strategy, *entity, counts),
            &whole[whole.len() - close..]
        );
        Splice {
            start: base + start,
            end: base + start + whole.len(),
            with,
        }
    }
}

/// `text` cut to at most `max` bytes for the trail: on a char boundary, and
/// never inside a number, so a cap cannot leave the first twelve digits of
/// a card that the detectors no longer recognise as one. A cut that falls
/// in a run of digits and single spaces or dashes backs off to the run's
/// start (by at most 32 bytes).
pub fn cut_for_trail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let b = text.as_bytes();
    let in_number = |c: u8| c.is_ascii_digit() || c == b' ' || c == b'-';
    let splits = end > 0
        && b[end - 1].is_ascii_digit()
        && (b[end].is_ascii_digit()
            || (in_number(b[end]) && b.get(end + 1).is_some_and(u8::is_ascii_digit)));
    if splits {
        let floor = end.saturating_sub(32);
        while end > floor && in_number(b[end - 1]) {
            end -= 1;
        }
    }
    &text[..end]
}

/// Whether the digits `start..end` of `text` are part of a machine
/// identifier rather than a value a person typed: a run of 16 or more hex
/// digits holding a letter (a SHA-256, a session id, a recording's file
/// name), or the 16 hex digits of a `tok_` token. The trail scans event
/// data the gateway wrote itself, and must not corrupt a digest that a
/// replay verifies because nine of its digits pass the ABA checksum.
fn inside_hex_identifier(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    if !b[start..end].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut l = start;
    while l > 0 && b[l - 1].is_ascii_hexdigit() {
        l -= 1;
    }
    let mut r = end;
    while r < b.len() && b[r].is_ascii_hexdigit() {
        r += 1;
    }
    let run = &b[l..r];
    let token = run.len() == 16 && text[..l].ends_with("tok_");
    token || (run.len() >= 16 && run.iter().any(u8::is_ascii_alphabetic))
}

/// A finding relative to its own text (for masking it alone).
fn whole(f: super::Finding) -> super::Finding {
    super::Finding {
        start: 0,
        end: f.end - f.start,
        entity: f.entity,
    }
}

/// The text of token `j` of `sql`.
fn token_text<'s>(sql: &'s str, toks: &[(usize, Token<'s>)], j: usize) -> &'s str {
    let start = toks[j].0;
    match &toks[j].1 {
        Token::Word(s) | Token::Quoted(s) | Token::Literal(s) => s,
        Token::Punct(c) => &sql[start..start + c.len_utf8()],
        Token::Number => {
            let b = sql.as_bytes();
            let mut end = start + 1;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric()
                    || b[end] == b'_'
                    || b[end] == b'.'
                    || b[end] >= 0x80)
            {
                end += 1;
            }
            // Stay on a char boundary whatever the bytes.
            while !sql.is_char_boundary(end) {
                end += 1;
            }
            &sql[start..end]
        }
    }
}

/// Whether number token `j` is a `$n` placeholder.
fn is_placeholder(sql: &str, toks: &[(usize, Token<'_>)], j: usize) -> bool {
    matches!(toks[j].1, Token::Number) && sql.as_bytes().get(toks[j].0) == Some(&b'$')
}

/// How many bytes of quoting open and close a literal token
/// (`'…'`, `E'…'`, `"…"`, `$tag$…$tag$`); an unterminated literal has no
/// closing quote.
fn literal_quotes(lit: &str) -> (usize, usize) {
    let b = lit.as_bytes();
    match b.first() {
        Some(b'$') => {
            let open = lit[1..].find('$').map_or(lit.len(), |p| p + 2);
            let tag = &lit[..open];
            if lit.len() >= 2 * open && lit.ends_with(tag) {
                (open, open)
            } else {
                (open.min(lit.len()), 0)
            }
        }
        Some(b'e' | b'E') if b.get(1) == Some(&b'\'') => {
            (2, usize::from(lit.len() > 2 && lit.ends_with('\'')))
        }
        Some(&q @ (b'\'' | b'"')) => (1, usize::from(lit.len() > 1 && b[b.len() - 1] == q)),
        _ => (0, 0),
    }
}

/// The column a token names: an unquoted word that is not a keyword, or a
/// quoted identifier without its quotes; lower-cased.
fn column_name(t: &Token<'_>) -> Option<String> {
    match t {
        Token::Word(w) if !is_keyword(w) => Some(w.to_ascii_lowercase()),
        Token::Quoted(q) => {
            let mut chars = q.chars();
            let open = chars.next()?;
            let inner = chars.as_str();
            let inner = inner.strip_suffix(open).unwrap_or(inner);
            let doubled = format!("{open}{open}");
            Some(inner.replace(&doubled, &open.to_string()).to_lowercase())
        }
        _ => None,
    }
}

/// Words that end an operand expression.
const ENDS_OPERAND: &[&str] = &[
    "and",
    "or",
    "where",
    "from",
    "group",
    "order",
    "limit",
    "having",
    "union",
    "returning",
    "set",
    "on",
    "then",
    "when",
    "else",
    "end",
    "offset",
    "fetch",
    "for",
    "into",
    "values",
    "window",
    "except",
    "intersect",
    "join",
    "using",
    "select",
    "escape",
];

/// Keywords that do not end an operand but cannot be a column either.
const NOT_A_COLUMN: &[&str] = &[
    "not",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "update",
    "delete",
    "insert",
    "as",
    "is",
    "null",
    "in",
    "like",
    "ilike",
    "between",
    "case",
    "by",
    "asc",
    "desc",
    "with",
    "do",
    "nothing",
    "conflict",
    "duplicate",
    "key",
    "lock",
    "share",
    "nowait",
    "skip",
    "all",
    "any",
    "some",
    "exists",
    "distinct",
    "true",
    "false",
    "rlike",
    "regexp",
    "similar",
    "to",
];

/// Words that end an operand or cannot be a column here.
fn is_keyword(w: &str) -> bool {
    ends_operand(w) || NOT_A_COLUMN.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// Words that end an operand expression.
fn ends_operand(w: &str) -> bool {
    ENDS_OPERAND.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// The length in tokens of a comparison operator starting at `i`
/// (`=`, `<>`, `!=`, `<=>`, `LIKE`, `NOT ILIKE`, …); 0 when none starts there.
fn comparison_len(toks: &[(usize, Token<'_>)], i: usize) -> usize {
    let mut n = 0;
    while let Some((_, Token::Punct('=' | '<' | '>' | '!'))) = toks.get(i + n) {
        n += 1;
        if n == 3 {
            break;
        }
    }
    if n > 0 {
        return n;
    }
    let word = |k: usize| match toks.get(k) {
        Some((_, Token::Word(w))) => Some(w.to_ascii_lowercase()),
        _ => None,
    };
    let mut k = i;
    if word(k).as_deref() == Some("not") {
        k += 1;
    }
    match word(k).as_deref() {
        Some("like" | "ilike" | "rlike" | "regexp" | "in" | "between") => k + 1 - i,
        Some("similar") if word(k + 1).as_deref() == Some("to") => k + 2 - i,
        Some("is") => {
            // `IS [NOT] DISTINCT FROM`
            let mut m = k + 1;
            if word(m).as_deref() == Some("not") {
                m += 1;
            }
            if word(m).as_deref() == Some("distinct") && word(m + 1).as_deref() == Some("from") {
                m + 2 - i
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// The token range of the operand after a column at `i - 1`, when a
/// comparison follows it: up to the end of the expression (a clause word,
/// `,` `)` or `;` at the operand's own depth). `BETWEEN a AND b` takes both
/// bounds. `None` when no comparison follows.
/// The operand that ends right before the comparison operator at `i`:
/// back to an unmatched `(`, a `,`, or a word that ends an operand.
fn operand_before(toks: &[(usize, Token<'_>)], i: usize) -> std::ops::Range<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j > 0 {
        match &toks[j - 1].1 {
            Token::Punct(')') => depth += 1,
            Token::Punct('(') if depth == 0 => break,
            Token::Punct('(') => depth -= 1,
            Token::Punct(',' | ';') if depth == 0 => break,
            Token::Word(w) if depth == 0 && ends_operand(w) => break,
            _ => {}
        }
        j -= 1;
    }
    j..i
}

fn operand_after(toks: &[(usize, Token<'_>)], i: usize) -> Option<std::ops::Range<usize>> {
    let op = comparison_len(toks, i);
    if op == 0 {
        return None;
    }
    let between =
        matches!(&toks[i + op - 1].1, Token::Word(w) if w.eq_ignore_ascii_case("between"));
    let start = i + op;
    let mut depth = 0usize;
    let mut ands = 0;
    let mut j = start;
    while j < toks.len() {
        match &toks[j].1 {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => break,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',' | ';') if depth == 0 => break,
            Token::Word(w) if depth == 0 && ends_operand(w) => {
                if between && ands == 0 && w.eq_ignore_ascii_case("and") {
                    ands += 1;
                } else {
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    Some(start..j)
}

/// For a `VALUES` at `v`: each item's token range with the column it goes
/// to, by position in the column list right before (`INSERT INTO t (a, b)
/// VALUES …`); `None` as the column when there is no list or the counts
/// differ.
fn values_items(
    toks: &[(usize, Token<'_>)],
    v: usize,
) -> Vec<(std::ops::Range<usize>, Option<String>)> {
    let cols = column_list_before(toks, v);
    let mut out = Vec::new();
    let mut j = v + 1;
    // Tuples: `(…)` separated by `,`, until something else.
    while let Some((_, Token::Punct('('))) = toks.get(j) {
        let mut depth = 0usize;
        let mut item_start = j + 1;
        let mut items = Vec::new();
        let mut k = j;
        while k < toks.len() {
            match &toks[k].1 {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        items.push(item_start..k);
                        break;
                    }
                }
                Token::Punct(',') if depth == 1 => {
                    items.push(item_start..k);
                    item_start = k + 1;
                }
                _ => {}
            }
            k += 1;
        }
        if k >= toks.len() {
            items.push(item_start..toks.len());
        }
        let known = cols.as_ref().filter(|c| c.len() == items.len());
        for (n, range) in items.into_iter().enumerate() {
            out.push((range, known.and_then(|c| c[n].clone())));
        }
        j = k + 1;
        if matches!(toks.get(j), Some((_, Token::Punct(',')))) {
            j += 1;
        } else {
            break;
        }
    }
    out
}

/// The parenthesized column list ending right before token `v`, if any;
/// an entry is `None` when it is not a plain column name.
fn column_list_before(toks: &[(usize, Token<'_>)], v: usize) -> Option<Vec<Option<String>>> {
    let close = v.checked_sub(1)?;
    if !matches!(toks[close].1, Token::Punct(')')) {
        return None;
    }
    let mut open = close;
    loop {
        open = open.checked_sub(1)?;
        match toks[open].1 {
            Token::Punct('(') => break,
            Token::Punct(')') => return None,
            _ => {}
        }
    }
    let mut cols = Vec::new();
    let mut current: Vec<&Token<'_>> = Vec::new();
    for (_, t) in &toks[open + 1..close] {
        if matches!(t, Token::Punct(',')) {
            cols.push(last_name(&current));
            current.clear();
        } else {
            current.push(t);
        }
    }
    cols.push(last_name(&current));
    Some(cols)
}

/// A column list entry's name (`a`, `"A"`, `t.a`): its last identifier.
fn last_name(parts: &[&Token<'_>]) -> Option<String> {
    parts.last().and_then(|t| match t {
        Token::Word(w) => Some(w.to_ascii_lowercase()),
        t => column_name(t),
    })
}

/// `text` with `%XX` escapes and `+` decoded, when it has any and decodes
/// to UTF-8; `None` otherwise.
fn percent_decoded(text: &str) -> Option<String> {
    if !text.contains('%') && !text.contains('+') {
        return None;
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        changed = true;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
                changed = true;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !changed {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskerConfig, TokenizeKey, DETECTABLE};
    use proptest::prelude::{prop_assert, proptest};

    /// SSNs, cards and emails partially, everything else redacted: the
    /// demo policy's strategies.
    fn masker() -> Masker {
        let mut strategies = std::collections::HashMap::new();
        strategies.insert(EntityType::Ssn, Strategy::Partial { keep_last: 4 });
        strategies.insert(EntityType::CardNumber, Strategy::Partial { keep_last: 4 });
        strategies.insert(EntityType::Email, Strategy::Partial { keep_last: 4 });
        Masker::new(MaskerConfig {
            detectors: DETECTABLE.to_vec(),
            strategies,
            default_strategy: Strategy::Redact,
            tokenize_key: TokenizeKey::new(b"test-key".to_vec()),
        })
    }

    /// Column rules: `account_number` partial, `date_of_birth` redacted,
    /// `email` tokenized.
    fn rules(column: &str) -> Option<ColumnStrategy> {
        match column {
            "account_number" | "*" => {
                Some((Strategy::Partial { keep_last: 4 }, EntityType::Column))
            }
            "date_of_birth" => Some((Strategy::Redact, EntityType::Column)),
            "email" => Some((Strategy::Tokenize, EntityType::Email)),
            _ => None,
        }
    }

    fn pg(sql: &str) -> String {
        masker()
            .mask_for_trail(sql, TrailKind::Sql(Dialect::Postgres), &rules)
            .text
            .into_owned()
    }

    fn my(sql: &str) -> String {
        masker()
            .mask_for_trail(sql, TrailKind::Sql(Dialect::MySql), &rules)
            .text
            .into_owned()
    }

    fn text(t: &str) -> String {
        masker()
            .mask_for_trail(t, TrailKind::Text, &|_| None)
            .text
            .into_owned()
    }

    #[test]
    fn detectors_mask_literals_inside_their_quotes() {
        assert_eq!(
            pg("select name from customers where ssn = '536-22-1457' or card_number = '4111111111111111'"),
            "select name from customers where ssn = '***-**-1457' or card_number = '************1111'"
        );
        assert_eq!(
            text("echo 4111 1111 1111 1111 > /tmp/x"),
            "echo **** **** **** 1111 > /tmp/x"
        );
    }

    #[test]
    fn column_rules_mask_compared_assigned_and_listed_literals() {
        assert_eq!(
            pg("select * from accounts a where a.account_number = '12345678'"),
            "select * from accounts a where a.account_number = '****5678'"
        );
        assert_eq!(
            pg("SELECT 1 FROM t WHERE \"ACCOUNT_NUMBER\" IN ('11112222', '33334444') AND id = 7"),
            "SELECT 1 FROM t WHERE \"ACCOUNT_NUMBER\" IN ('****2222', '****4444') AND id = 7"
        );
        assert_eq!(
            pg("update accounts set account_number = '99998888', note = 'x' where id = 3"),
            "update accounts set account_number = '****8888', note = 'x' where id = 3"
        );
        assert_eq!(
            pg("select 1 from t where '12345678' = account_number"),
            "select 1 from t where '****5678' = account_number"
        );
        assert_eq!(
            pg("select 1 from t where account_number = 12345678 and x = 1"),
            "select 1 from t where account_number = ****5678 and x = 1"
        );
        assert_eq!(
            pg("select 1 from t where date_of_birth between '1980-01-01' and '1990-12-31' and id > 5"),
            "select 1 from t where date_of_birth between '[REDACTED:column]' and '[REDACTED:column]' and id > 5"
        );
        assert_eq!(
            pg("select 1 from t where account_number not like E'1234%'"),
            "select 1 from t where account_number not like E'**34%'"
        );
        assert_eq!(
            pg("select 1 from t where account_number = lower('abcd1234') or id = 2"),
            "select 1 from t where account_number = lower('****1234') or id = 2"
        );
        assert_eq!(
            pg("select 1 from t where account_number = $$12345678$$"),
            "select 1 from t where account_number = $$****5678$$"
        );
        // Unrelated literals and columns stay readable.
        assert_eq!(
            pg("select 'account_number' from t where name = 'Jo'"),
            "select 'account_number' from t where name = 'Jo'"
        );
    }

    #[test]
    fn literals_compared_through_functions_and_casts_are_masked() {
        for (sql, clear) in [
            ("select id from customers where date_of_birth::text = '1942-08-10'", "1942-08-10"),
            ("select id from customers where to_char(date_of_birth, 'YYYY-MM-DD') = '1942-08-10'", "1942-08-10"),
            ("select id from customers where '1942-08-10' = date_of_birth::text", "1942-08-10"),
            ("select id from customers where account_number::bigint = 501809143957", "501809143957"),
        ] {
            let shown = pg(sql);
            assert!(!shown.contains(clear), "{sql} -> {shown}");
        }
        assert!(pg("select id from customers where id::text = '7'").contains("'7'"));
    }

    #[test]
    fn insert_values_follow_the_column_list() {
        assert_eq!(
            pg("insert into accounts (id, account_number, name) values (1, '12345678', 'Jo'), (2, '87654321', 'Al')"),
            "insert into accounts (id, account_number, name) values (1, '****5678', 'Jo'), (2, '****4321', 'Al')"
        );
        // No column list: every literal is masked (unsure, so mask).
        assert_eq!(
            pg("insert into accounts values (1, '12345678')"),
            "insert into accounts values (*, '****5678')"
        );
        assert_eq!(
            my("INSERT INTO accounts SET account_number = \"12345678\", name = 'Jo'"),
            "INSERT INTO accounts SET account_number = \"****5678\", name = 'Jo'"
        );
    }

    #[test]
    fn execute_arguments_are_masked_when_column_rules_apply() {
        assert_eq!(
            pg("EXECUTE find_account('12345678', 7)"),
            "EXECUTE find_account('****5678', *)"
        );
        assert_eq!(
            my("SET @acct = '12345678', @n := 5; EXECUTE s USING @acct"),
            "SET @acct = '****5678', @n := *; EXECUTE s USING @acct"
        );
        let none = masker().mask_for_trail(
            "EXECUTE find_account('12345678', 7)",
            TrailKind::Sql(Dialect::Postgres),
            &|_| None,
        );
        assert!(!none.changed(), "no column rule, nothing to hide");
    }

    #[test]
    fn bound_values_shown_to_approvers_are_masked_by_their_column() {
        assert_eq!(
            pg("update accounts set account_number = $1 where id = $2\n-- parameters: $1 = '12345678', $2 = '7'"),
            "update accounts set account_number = $1 where id = $2\n-- parameters: $1 = '****5678', $2 = '7'"
        );
        assert_eq!(
            my("update accounts set note = ?, account_number = ? where id = ?\n-- parameters: ?1 = 'x', ?2 = '12345678', ?3 = '7'"),
            "update accounts set note = ?, account_number = ? where id = ?\n-- parameters: ?1 = 'x', ?2 = '****5678', ?3 = '7'"
        );
        // Detectors reach the parameters line whatever the column.
        assert!(
            pg("select 1 where x = $1\n-- parameters: $1 = '536-22-1457'")
                .contains("'***-**-1457'")
        );
    }

    #[test]
    fn percent_encoded_values_are_found_decoded() {
        assert_eq!(
            text("GET /v1/cards?pan=4111%201111%201111%201111&x=1"),
            "GET /v1/cards?pan=**** **** **** 1111&x=1"
        );
        assert_eq!(text("GET /a?b=c%20d"), "GET /a?b=c%20d");
        // One value in clear sight does not hide another behind escapes.
        assert_eq!(
            text("ssn=536-22-1457&pan=4111%201111%201111%201111"),
            "ssn=***-**-1457&pan=**** **** **** 1111"
        );
    }

    #[test]
    fn json_strings_are_masked_with_their_pointers_and_identities_kept() {
        let mut v = serde_json::json!({
            "command": "cat /srv/ssn-536-22-1457.txt",
            "identity": {"email": "jo@example.com"},
            "request": {"messages": [{"content": "card 4111111111111111"}]},
            "n": 4111111111111111u64,
        });
        let mut counts = MaskCounts::default();
        let mut originals = Vec::new();
        masker().mask_json_for_trail(&mut v, &["identity"], &mut counts, &mut originals);
        assert_eq!(v["command"], "cat /srv/ssn-***-**-1457.txt");
        assert_eq!(v["identity"]["email"], "jo@example.com");
        assert_eq!(
            v["request"]["messages"][0]["content"],
            "card ************1111"
        );
        assert_eq!(counts.total(), 2);
        assert_eq!(
            originals,
            vec![
                (
                    "/command".to_string(),
                    "cat /srv/ssn-536-22-1457.txt".to_string()
                ),
                (
                    "/request/messages/0/content".to_string(),
                    "card 4111111111111111".to_string()
                ),
            ]
        );
    }

    #[test]
    fn digests_ids_and_tokens_are_left_alone() {
        // 021000021 passes the ABA checksum wherever it appears.
        assert_eq!(text("routing 021000021"), "routing [REDACTED:aba_routing]");
        for id in [
            "ab021000021cdef0123456789abcdef0123456789abcdef0123456789abcdef0",
            "e6fef0ee021000021e6d6f6a-1.cast",
            "tok_0210000214111111",
            "see tok_1021000021ffff00 here",
        ] {
            assert_eq!(text(id), id);
        }
        // A card number is not hidden by a letter or two around it.
        assert_ne!(text("x4111111111111111"), "x4111111111111111");
    }

    #[test]
    fn a_cap_never_cuts_inside_a_number() {
        let t = "card 4111 1111 1111 1111 ok";
        assert_eq!(cut_for_trail(t, 17), "card");
        assert_eq!(cut_for_trail(t, 24), "card 4111 1111 1111 1111");
        assert_eq!(cut_for_trail(t, 100), t);
        assert_eq!(cut_for_trail("abc", 2), "ab");
        assert_eq!(cut_for_trail("é4111", 1), "");
    }

    /// Fake SSNs and cards (valid shapes, test ranges).
    const SECRETS: [&str; 4] = [
        "536-22-1457",
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
    ];

    proptest! {
        /// A cut text is a prefix, never longer than asked, and never ends
        /// in the middle of a number.
        #[test]
        fn cuts_are_prefixes_off_numbers(t in "[0-9 a-z-]{0,60}", max in 0usize..70) {
            let cut = cut_for_trail(&t, max);
            prop_assert!(t.starts_with(cut) && cut.len() <= max.min(t.len()));
            // Unless the back-off hit its 32-byte floor:
            if cut.len() < t.len() && cut.len() > max.saturating_sub(32) {
                let b = t.as_bytes();
                let n = cut.len();
                prop_assert!(!(n > 0 && b[n - 1].is_ascii_digit() && b[n].is_ascii_digit()));
            }
        }

        /// Whatever SQL or text surrounds it, a detectable value never
        /// survives, and the masker never panics.
        #[test]
        fn no_clear_value_survives_any_surroundings(
            before in "[ -~]{0,40}",
            after in "[ -~]{0,40}",
            which in 0usize..4,
            quote in proptest::sample::select(vec!["", "'", "\"", "$$", "E'", "`"]),
        ) {
            let secret = SECRETS[which];
            let close = if quote == "E'" { "'" } else { quote };
            let sep = |s: &str| s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
            let lead = if sep(&before) { " " } else { "" };
            let trail = if after.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) { " " } else { "" };
            let input = format!("{before}{lead}{quote}{secret}{close}{trail}{after}");
            for kind in [TrailKind::Sql(Dialect::Postgres), TrailKind::Sql(Dialect::MySql), TrailKind::Text] {
                let out = masker().mask_for_trail(&input, kind, &rules);
                prop_assert!(!out.text.contains(secret), "{:?} kept {secret}: {}", kind, out.text);
            }
        }

        /// Any input, even broken SQL, masks without panicking, and a text
        /// with nothing to mask is returned as it was (borrowed).
        #[test]
        fn any_input_is_total(input in "\\PC{0,80}") {
            for kind in [TrailKind::Sql(Dialect::Postgres), TrailKind::Sql(Dialect::MySql), TrailKind::Text] {
                let out = masker().mask_for_trail(&input, kind, &rules);
                if !out.changed() {
                    prop_assert!(out.text == input);
                }
            }
        }

        /// A literal compared with a masked column never stays readable,
        /// whatever the value and the operator.
        #[test]
        fn compared_literals_of_masked_columns_are_masked(
            value in "[a-zA-Z0-9]{2,20}",
            op in proptest::sample::select(vec!["=", "<>", "!=", ">=", " like ", " NOT ILIKE ", " in ("]),
        ) {
            let close = if op.contains('(') { ")" } else { "" };
            let sql = format!("select x from t where account_number{op}'{value}'{close} and id = 1");
            let out = pg(&sql);
            let quoted = format!("'{value}'");
            prop_assert!(!out.contains(&quoted), "{out}");
        }
    }
}
