//! PostgreSQL large objects, as the tables they live in.
//!
//! A large object is read and written through functions (`loread`,
//! `lo_get`, `lowrite`, `lo_unlink`, …), in SQL or through libpq's
//! fast-path calls, never by naming a table. Policy judges tables, so a
//! call is recorded as reading or writing `pg_largeobject`, where the data
//! lives: a rule that names that table applies, a function that writes one
//! is a write under `default_write_effect`, and policy can refuse reads of
//! data no column rule can follow.

use super::{StatementFacts, StatementKind};

/// The catalog table holding every large object's data.
pub const TABLE: &str = "pg_largeobject";

/// Functions that return large-object data to the caller.
const READERS: &[&str] = &["lo_get", "loread"];

/// Functions that create, change or remove large objects, or move their
/// data to or from server files.
const WRITERS: &[&str] = &[
    "lo_creat",
    "lo_create",
    "lo_export",
    "lo_from_bytea",
    "lo_import",
    "lo_put",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
    "lowrite",
];

/// The bare, lower-case name of a function as the classifier lists it
/// (`pg_catalog.loread` → `loread`).
fn bare(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Whether `function` returns large-object data.
pub fn reads_data(function: &str) -> bool {
    READERS.contains(&bare(function))
}

/// Add `pg_largeobject` to the tables a statement reads or writes when it
/// calls large-object functions; a `SELECT` that changes large objects is
/// a utility call, not a read. Names are matched without their schema:
/// a user function shadowing one is judged as the built-in (stricter).
pub fn note_calls(f: &mut StatementFacts) {
    if f.functions.iter().any(|n| reads_data(n)) {
        f.tables_read.insert(TABLE.to_string());
    }
    if f.functions.iter().any(|n| WRITERS.contains(&bare(n))) {
        f.tables_written.insert(TABLE.to_string());
        // Not a read: rules for reads (`kinds = ["select"]`, an analyst's
        // `not_kinds`) must not let it through as one.
        if f.kind == StatementKind::Select {
            f.kind = StatementKind::Utility;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::{classify, Dialect};

    #[test]
    fn large_object_calls_read_and_write_their_table() {
        let c = classify(
            "select loread(lo_open(16403, 262144), 8192)",
            Dialect::Postgres,
        );
        assert!(c.statements[0].tables_read.contains("pg_largeobject"));
        assert!(c.statements[0].tables_written.is_empty());
        for w in [
            "select lo_unlink(16403)",
            "select pg_catalog.lowrite(0, $1)",
            "select lo_import('/etc/hosts')",
            "select lo_from_bytea(0, 'x')",
        ] {
            let c = classify(w, Dialect::Postgres);
            assert!(
                c.statements[0].tables_written.contains("pg_largeobject"),
                "{w}"
            );
            assert_eq!(
                c.statements[0].kind,
                crate::classify::StatementKind::Utility,
                "{w}"
            );
        }
        let c = classify("select upper('lo_get')", Dialect::Postgres);
        assert!(c.statements[0].tables_read.is_empty());
    }
}
