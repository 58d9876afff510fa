//! The SQL classifier on any text a client can send, in both dialects.
//!
//! Input: any bytes, read as UTF-8 (lossy), as the adapters see a query.
//! Entry points: `gatehouse_core::classify::{classify, normalize,
//! without_comments, split_statements, tokens, classify_by_keywords}`,
//! `ClassifierCache::classify`, and the lexing-safety helpers in
//! `classify::syntax`. `classify` reaches sqlparser and, for PostgreSQL
//! text sqlparser rejects, PostgreSQL's own grammar (pg_query, C code).
//! Invariants: every split piece is a slice of the input, comments
//! become one space each (never longer), and MySQL executable comments are
//! resolved without moving offsets (as documented).
#![no_main]

use gatehouse_core::classify::syntax::{self, MySqlServer};
use gatehouse_core::classify::{self, ClassifierCache, Dialect};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SERVERS: [MySqlServer; 3] = [
    MySqlServer {
        version: 80036,
        mariadb: false,
    },
    MySqlServer {
        version: 50744,
        mariadb: false,
    },
    MySqlServer {
        version: 101106,
        mariadb: true,
    },
];

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let sql = sql.as_ref();
    static CACHE: OnceLock<ClassifierCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| ClassifierCache::new(64));

    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let c = classify::classify(sql, dialect);
        let _ = serde_json::to_string(&c);
        let _ = syntax::may_change_lexing(&c);
        let cached = cache.classify(sql, dialect);
        let _ = serde_json::to_string(&*cached);

        let _ = classify::normalize(sql, dialect);
        let stripped = classify::without_comments(sql, dialect);
        assert!(
            stripped.len() <= sql.len(),
            "without_comments grew the text"
        );
        let range = sql.as_ptr() as usize..sql.as_ptr() as usize + sql.len() + 1;
        for piece in classify::split_statements(sql, dialect) {
            assert!(
                range.contains(&(piece.as_ptr() as usize)),
                "piece outside the input"
            );
            let _ = classify::classify_by_keywords(piece, dialect);
        }
        for (offset, _token) in classify::tokens(sql, dialect) {
            assert!(offset <= sql.len());
        }
    }

    // PostgreSQL lexing settings.
    let _ = syntax::pg_backslash_ambiguous(sql);
    let _ = syntax::pg_standard_strings(sql);
    let _ = syntax::pg_encoding_change_refusal(sql);
    let _ = syntax::pg_client_encoding_is_safe(sql);

    // MySQL executable comments: offsets never move.
    for server in &SERVERS {
        let resolved = syntax::mysql_executable_comments(sql, server);
        assert_eq!(
            resolved.len(),
            sql.len(),
            "executable comments moved offsets"
        );
    }
});
