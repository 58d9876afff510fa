//! Keyword classification for statements the SQL parser cannot read.
//!
//! Fails closed: it never claims a WHERE or a LIMIT it has not proven,
//! anything unrecognised is `Unknown`, and `parsed` is always `false` so
//! policy blocks it by default.

use super::scan::strip_comments;
use super::{CopyDirection, Dialect, StatementFacts, StatementKind};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Facts for one unparseable statement, from its leading keywords.
pub fn classify_by_keywords(sql: &str, dialect: Dialect) -> StatementFacts {
    let text = strip_comments(sql, dialect);
    let words: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(4)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let upper = text.to_ascii_uppercase();
    let mut copy_direction = None;
    let mut prepared_name = None;
    let (kind, keyword_words) = match w(0) {
        "SELECT" | "VALUES" | "TABLE"
            if has_word(&upper, "OUTFILE") || has_word(&upper, "DUMPFILE") =>
        {
            copy_direction = Some(CopyDirection::Out);
            (StatementKind::Copy, 1)
        }
        "SELECT" | "VALUES" | "TABLE" => (StatementKind::Select, 1),
        "INSERT" | "REPLACE" => (StatementKind::Insert, 1),
        "UPDATE" => (StatementKind::Update, 1),
        "DELETE" => (StatementKind::Delete, 1),
        "MERGE" => (StatementKind::Merge, 1),
        "TRUNCATE" => (StatementKind::Truncate, 1),
        "ALTER" if w(1) == "SYSTEM" => (StatementKind::Utility, 2),
        "CREATE" | "ALTER" | "DROP" if matches!(w(1), "ROLE" | "USER" | "GROUP") => {
            (StatementKind::Dcl, 2)
        }
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "REFRESH" | "RENAME" | "SECURITY" | "IMPORT" => {
            (StatementKind::Ddl, 2)
        }
        "GRANT" | "REVOKE" | "REASSIGN" => (StatementKind::Dcl, 1),
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "END" | "ABORT"
        | "XA" => (StatementKind::Transaction, 1),
        "COPY" => {
            copy_direction = Some(if has_word(&upper, "TO") {
                CopyDirection::Out
            } else {
                CopyDirection::In
            });
            (StatementKind::Copy, 1)
        }
        "LOAD" if w(1) == "DATA" || w(1) == "XML" => {
            copy_direction = Some(CopyDirection::In);
            (StatementKind::Copy, 2)
        }
        "DO" => (StatementKind::Do, 1),
        "CALL" => (StatementKind::Call, 1),
        "PREPARE" => {
            prepared_name = Some(w(1).to_ascii_lowercase());
            (StatementKind::Prepare, 1)
        }
        "EXECUTE" => {
            prepared_name = Some(w(1).to_ascii_lowercase());
            (StatementKind::Execute, 1)
        }
        "DEALLOCATE" => (StatementKind::Deallocate, 1),
        "SET" | "RESET" => (StatementKind::Set, 1),
        "SHOW" | "DESCRIBE" | "DESC" => (StatementKind::Show, 1),
        "EXPLAIN" => (StatementKind::Explain, 1),
        "VACUUM" | "ANALYZE" | "CLUSTER" | "REINDEX" | "CHECKPOINT" | "LISTEN" | "UNLISTEN"
        | "NOTIFY" | "DISCARD" | "LOCK" | "UNLOCK" | "KILL" | "HANDLER" | "FLUSH" | "LOAD"
        | "OPTIMIZE" | "REPAIR" | "INSTALL" | "UNINSTALL" | "SHUTDOWN" | "USE" | "DECLARE"
        | "FETCH" | "MOVE" | "CLOSE" => (StatementKind::Utility, 1),
        _ => (StatementKind::Unknown, 1),
    };
    let keyword = words
        .iter()
        .take(keyword_words.max(1))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let (read, written) = tables_by_keywords(&text, kind);
    StatementFacts {
        kind,
        keyword,
        tables_read: read,
        tables_written: written,
        has_where: false,
        has_limit: false,
        copy_direction,
        prepared_name,
        output: None,
        parsed: false,
        nested: false,
    }
}

fn has_word(upper: &str, word: &str) -> bool {
    upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

/// Best-effort table names after FROM/JOIN (read) and INTO/UPDATE/TABLE (written).
fn tables_by_keywords(text: &str, kind: StatementKind) -> (BTreeSet<String>, BTreeSet<String>) {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"(?i)\b(from|join|into|update|table|truncate)\s+(?:only\s+|table\s+|if\s+(?:not\s+)?exists\s+)?([A-Za-z_"`][A-Za-z0-9_$."`]*)"#).expect("static regex")
    });
    let mut read = BTreeSet::new();
    let mut written = BTreeSet::new();
    for c in re.captures_iter(text) {
        let name = c[2].replace(['"', '`'], "").to_ascii_lowercase();
        match c[1].to_ascii_lowercase().as_str() {
            "from" if kind == StatementKind::Delete => written.insert(name),
            "from" | "join" => read.insert(name),
            _ => written.insert(name),
        };
    }
    (read, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_forms_fail_closed() {
        let f = classify_by_keywords(
            "/* x */ DO $$ begin delete from t; end $$",
            Dialect::Postgres,
        );
        assert_eq!(
            (f.kind, f.parsed, f.has_where),
            (StatementKind::Do, false, false)
        );
        let f = classify_by_keywords("ALTER SYSTEM SET work_mem = '1GB'", Dialect::Postgres);
        assert_eq!(
            (f.kind, f.keyword.as_str()),
            (StatementKind::Utility, "ALTER SYSTEM")
        );
        let f = classify_by_keywords("SELECT * FROM t INTO OUTFILE '/tmp/x'", Dialect::MySql);
        assert_eq!(
            (f.kind, f.copy_direction),
            (StatementKind::Copy, Some(CopyDirection::Out))
        );
        let f = classify_by_keywords("LOAD DATA LOCAL INFILE 'x' INTO TABLE t", Dialect::MySql);
        assert_eq!(
            (f.kind, f.copy_direction),
            (StatementKind::Copy, Some(CopyDirection::In))
        );
        assert!(f.tables_written.contains("t"));
        let f = classify_by_keywords(
            "delete from accounts where id in (select 1)",
            Dialect::Postgres,
        );
        assert_eq!(f.kind, StatementKind::Delete);
        assert!(!f.has_where, "the fallback never claims a WHERE");
        assert!(f.tables_written.contains("accounts"));
        assert_eq!(
            classify_by_keywords("frobnicate", Dialect::Postgres).kind,
            StatementKind::Unknown
        );
    }
}
