//! How much of a SQL workload the classifier reads with a parser, and
//! what it leaves to the keyword fallback (refused by default under
//! `unparseable = "block"`).
//!
//! `cargo run --release -p gatehouse-core --example sql_coverage -- postgres|mysql FILE`
//! where FILE holds statements separated by NUL bytes (see
//! scripts/sql-coverage.sh, which extracts PostgreSQL's regression SQL and
//! MariaDB's test suite). Prints the totals and the unread statements'
//! leading keywords, most frequent first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // example code

use gatehouse_core::classify::{classify, Dialect};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dialect), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: sql_coverage postgres|mysql FILE");
        std::process::exit(2);
    };
    let dialect = match dialect.as_str() {
        "postgres" => Dialect::Postgres,
        "mysql" => Dialect::MySql,
        other => {
            eprintln!("unknown dialect {other}");
            std::process::exit(2);
        }
    };
    let data = std::fs::read(path).expect("read the statements file");
    let (mut total, mut unread) = (0usize, 0usize);
    let mut by_keyword: BTreeMap<String, usize> = BTreeMap::new();
    for raw in data.split(|b| *b == 0) {
        let Ok(sql) = std::str::from_utf8(raw) else {
            continue;
        };
        if sql.trim().is_empty() {
            continue;
        }
        total += 1;
        let c = classify(sql, dialect);
        if let Some(f) = c.statements.iter().find(|f| !f.nested && !f.parsed) {
            unread += 1;
            *by_keyword.entry(f.keyword.clone()).or_default() += 1;
        }
    }
    let mut top: Vec<(String, usize)> = by_keyword.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "{total} statements, {} read by a parser, {unread} left to the keyword fallback ({:.2}%)",
        total - unread,
        100.0 * unread as f64 / total.max(1) as f64
    );
    for (keyword, n) in top.iter().take(40) {
        println!("{n:>7}  {keyword}");
    }
}
