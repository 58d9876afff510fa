//! Leading keywords: the `keyword` of a statement's facts and the kind a
//! bare keyword implies. Shared by the parser path (over the statement as
//! sqlparser renders it) and the keyword fallback, so both name a form the
//! same way and policy rules such as `keywords = ["DROP DATABASE"]` match
//! either.

use super::StatementKind;

/// Words skipped between CREATE/ALTER/DROP and the object type, so
/// `CREATE OR REPLACE TEMP VIEW` is named `CREATE VIEW`.
const MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "TRUSTED",
    "PROCEDURAL",
    "RECURSIVE",
    "ONLINE",
    "OFFLINE",
    "EXTERNAL",
];

/// Object types written as two words (`MATERIALIZED VIEW`).
const TWO_WORD_OBJECTS: &[(&str, &str)] = &[
    ("MATERIALIZED", "VIEW"),
    ("FOREIGN", "TABLE"),
    ("FOREIGN", "DATA"),
    ("EVENT", "TRIGGER"),
    ("DEFAULT", "PRIVILEGES"),
    ("ACCESS", "METHOD"),
    ("TEXT", "SEARCH"),
    ("CONSTRAINT", "TRIGGER"),
    ("USER", "MAPPING"),
    ("OPERATOR", "CLASS"),
    ("OPERATOR", "FAMILY"),
    ("LOGFILE", "GROUP"),
];

/// `SET` forms worth naming apart (`SET ROLE` changes privileges).
const SET_FORMS: &[&str] = &[
    "ROLE",
    "TRANSACTION",
    "GLOBAL",
    "PERSIST",
    "PERSIST_ONLY",
    "CONSTRAINTS",
    "PASSWORD",
    "NAMES",
];

/// The leading keywords of a statement from its tokens: the unquoted words
/// up to the first other token (the parser path and the fallback both call this).
pub fn leading_keyword_of_tokens(toks: &[(usize, super::scan::Token<'_>)]) -> String {
    let words: Vec<&str> = toks
        .iter()
        .map_while(|(_, t)| match t {
            super::scan::Token::Word(w) => Some(*w),
            _ => None,
        })
        .take(6)
        .collect();
    leading_keyword(&words)
}

/// The leading keywords of a statement, upper-case, from its first words
/// (unquoted words up to the first other token).
pub fn leading_keyword(words: &[&str]) -> String {
    let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let w = |i: usize| up.get(i).map(String::as_str).unwrap_or("");
    let mut out: Vec<&str> = vec![w(0)];
    match w(0) {
        "CREATE" | "ALTER" | "DROP" => {
            let mut i = 1;
            while MODIFIERS.contains(&w(i)) {
                i += 1;
            }
            out.push(w(i));
            if TWO_WORD_OBJECTS.contains(&(w(i), w(i + 1))) {
                out.push(w(i + 1));
            }
        }
        "REFRESH" if w(1) == "MATERIALIZED" => out.extend([w(1), w(2)]),
        "LOAD" if matches!(w(1), "DATA" | "XML") => out.push(w(1)),
        "START" | "COMMENT" | "SECURITY" | "IMPORT" => out.push(w(1)),
        "SET" if w(1) == "SESSION" && w(2) == "AUTHORIZATION" => out.extend([w(1), w(2)]),
        "SET" if SET_FORMS.contains(&w(1)) => out.push(w(1)),
        "EXPLAIN" if w(1) == "ANALYZE" => out.push(w(1)),
        _ => {}
    }
    out.retain(|s| !s.is_empty());
    out.join(" ")
}

/// The kind a statement's leading keyword implies, for statements the
/// parser path does not inspect further and for the keyword fallback.
/// Anything not listed is `Unknown`, which policy treats fail-closed.
pub fn kind_of_keyword(keyword: &str) -> StatementKind {
    let mut words = keyword.split(' ');
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    match first {
        "SELECT" | "VALUES" | "TABLE" | "WITH" => StatementKind::Select,
        "INSERT" | "REPLACE" => StatementKind::Insert,
        "UPDATE" => StatementKind::Update,
        "DELETE" => StatementKind::Delete,
        "MERGE" => StatementKind::Merge,
        "TRUNCATE" => StatementKind::Truncate,
        "ALTER" if second == "SYSTEM" => StatementKind::Utility,
        "CREATE" | "ALTER" | "DROP" if matches!(second, "ROLE" | "USER" | "GROUP") => {
            StatementKind::Dcl
        }
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "REFRESH" | "RENAME" | "SECURITY" | "IMPORT" => {
            StatementKind::Ddl
        }
        "GRANT" | "REVOKE" | "REASSIGN" | "DENY" => StatementKind::Dcl,
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "END" | "ABORT"
        | "XA" => StatementKind::Transaction,
        "COPY" => StatementKind::Copy,
        "LOAD" if matches!(second, "DATA" | "XML") => StatementKind::Copy,
        "DO" => StatementKind::Do,
        "CALL" => StatementKind::Call,
        "PREPARE" => StatementKind::Prepare,
        "EXECUTE" => StatementKind::Execute,
        "DEALLOCATE" => StatementKind::Deallocate,
        // Who the session is, or an account's password: access control.
        "SET" if matches!(second, "ROLE" | "SESSION" | "PASSWORD" | "DEFAULT") => {
            StatementKind::Dcl
        }
        "SET" | "RESET" => StatementKind::Set,
        "SHOW" | "DESCRIBE" | "DESC" => StatementKind::Show,
        "EXPLAIN" => StatementKind::Explain,
        "VACUUM" | "ANALYZE" | "CLUSTER" | "REINDEX" | "CHECKPOINT" | "LISTEN" | "UNLISTEN"
        | "NOTIFY" | "DISCARD" | "LOCK" | "UNLOCK" | "KILL" | "HANDLER" | "FLUSH" | "LOAD"
        | "OPTIMIZE" | "REPAIR" | "INSTALL" | "UNINSTALL" | "SHUTDOWN" | "USE" | "CLOSE"
        | "MOVE" | "CHECK" | "CHECKSUM" | "PURGE" | "RESTART" => StatementKind::Utility,
        // A cursor's rows come back through FETCH: a read.
        "DECLARE" | "FETCH" => StatementKind::Select,
        _ => StatementKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(s: &str) -> String {
        leading_keyword(&s.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn forms_are_named_without_modifiers() {
        assert_eq!(kw("create or replace function f"), "CREATE FUNCTION");
        assert_eq!(kw("CREATE UNIQUE INDEX i"), "CREATE INDEX");
        assert_eq!(kw("create temporary table x"), "CREATE TABLE");
        assert_eq!(
            kw("create materialized view mv"),
            "CREATE MATERIALIZED VIEW"
        );
        assert_eq!(kw("drop database bank"), "DROP DATABASE");
        assert_eq!(kw("alter system set"), "ALTER SYSTEM");
        assert_eq!(
            kw("refresh materialized view mv"),
            "REFRESH MATERIALIZED VIEW"
        );
        assert_eq!(kw("set role admin"), "SET ROLE");
        assert_eq!(
            kw("set session authorization bob"),
            "SET SESSION AUTHORIZATION"
        );
        assert_eq!(kw("set work_mem"), "SET");
        assert_eq!(kw("load data local"), "LOAD DATA");
        assert_eq!(kw("select"), "SELECT");
        assert_eq!(kw(""), "");
    }

    #[test]
    fn kinds_follow_keywords() {
        assert_eq!(kind_of_keyword("ALTER SYSTEM"), StatementKind::Utility);
        assert_eq!(kind_of_keyword("CREATE ROLE"), StatementKind::Dcl);
        assert_eq!(kind_of_keyword("DROP USER"), StatementKind::Dcl);
        assert_eq!(kind_of_keyword("DROP TABLE"), StatementKind::Ddl);
        assert_eq!(kind_of_keyword("LOAD DATA"), StatementKind::Copy);
        assert_eq!(kind_of_keyword("FROBNICATE"), StatementKind::Unknown);
    }
}
