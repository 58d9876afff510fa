use super::*;
use crate::classify::{ColumnSource, OutputColumn, StatementFacts, StatementKind};
use std::collections::BTreeSet;

const POLICY: &str = r#"
[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = 5432
user = "app"
password_env = "BANK_PW"
allow_groups = ["analysts", "dba"]

[[rules]]
name = "dba-deny-list"
effect = "block"
message = "not even a DBA may do this through the gateway"
groups = ["dba"]
keywords = ["DROP DATABASE", "ALTER SYSTEM"]

[[rules]]
name = "no-unbounded-writes"
effect = "block"
message = "UPDATE and DELETE need a WHERE clause"
kinds = ["update", "delete"]
without_where = true

[[rules]]
name = "analysts-read-only"
effect = "block"
message = "analysts may only read"
groups = ["analysts"]
not_kinds = ["select", "show", "set", "transaction", "explain"]

[masking]
[[masking.columns]]
name = "pii"
columns = ["customers.ssn", "*.card_number"]
strategy = "partial"
keep_last = 4
"#;

fn policy() -> Policy {
    let cfg: PolicyConfig = toml::from_str(POLICY).unwrap();
    compile(&cfg, POLICY).unwrap()
}

fn who(groups: &[&str]) -> Identity {
    Identity {
        subject: "alice".into(),
        email: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        issuer: "test".into(),
        token_id: None,
        expires_at: 0,
    }
}

fn facts(kind: StatementKind, keyword: &str, has_where: bool) -> StatementFacts {
    StatementFacts {
        kind,
        keyword: keyword.into(),
        tables_read: BTreeSet::new(),
        tables_written: BTreeSet::from(["customers".to_string()]),
        has_where,
        has_limit: false,
        copy_direction: None,
        prepared_name: None,
        output: None,
        parsed: true,
        nested: false,
    }
}

fn one(f: StatementFacts) -> Classification {
    Classification {
        statements: vec![f],
        parse_error: None,
    }
}

#[test]
fn authorize_by_group() {
    let p = policy();
    assert!(p.authorize(&who(&["analysts"]), "bank").is_ok());
    assert!(matches!(
        p.authorize(&who(&["other"]), "bank"),
        Err(AccessDenied::NotInAllowedGroups { .. })
    ));
    assert!(matches!(
        p.authorize(&who(&["dba"]), "nope"),
        Err(AccessDenied::UnknownConnection(_))
    ));
}

#[test]
fn first_matching_rule_decides() {
    let p = policy();
    let dba = who(&["dba"]);
    let drop = one(facts(StatementKind::Ddl, "DROP DATABASE", false));
    assert_eq!(
        p.decide(&dba, "bank", "drop database x", &drop).rule(),
        Some("dba-deny-list")
    );
    let delete_all = one(facts(StatementKind::Delete, "DELETE", false));
    assert_eq!(
        p.decide(&dba, "bank", "delete from customers", &delete_all)
            .rule(),
        Some("no-unbounded-writes")
    );
    let delete_one = one(facts(StatementKind::Delete, "DELETE", true));
    assert_eq!(
        p.decide(&dba, "bank", "delete … where", &delete_one)
            .effect(),
        "allow"
    );
    let analyst = who(&["analysts"]);
    assert_eq!(
        p.decide(&analyst, "bank", "delete … where", &delete_one)
            .rule(),
        Some("analysts-read-only")
    );
    let select = one(facts(StatementKind::Select, "SELECT", false));
    assert_eq!(
        p.decide(&analyst, "bank", "select 1", &select).effect(),
        "allow"
    );
}

#[test]
fn strictest_statement_wins_and_unparseable_blocks() {
    let p = policy();
    let dba = who(&["dba"]);
    let mut unreadable = facts(StatementKind::Do, "DO", false);
    unreadable.parsed = false;
    let c = Classification {
        statements: vec![facts(StatementKind::Select, "SELECT", false), unreadable],
        parse_error: Some("syntax error".into()),
    };
    let v = p.decide(&dba, "bank", "select 1; do $$ $$", &c);
    assert_eq!(v.rule(), Some("unparseable-statement"));
}

#[test]
fn invalid_rule_names_its_line() {
    let bad = format!("{POLICY}\n[[rules]]\nname = \"oops\"\neffect = \"block\"\nmessage = \"m\"\nkinds = [\"selekt\"]\n");
    let cfg: PolicyConfig = toml::from_str(&bad).unwrap();
    let err = compile(&cfg, &bad).unwrap_err().to_string();
    let line = bad
        .lines()
        .position(|l| l.contains("name = \"oops\""))
        .unwrap();
    assert!(err.contains("oops"), "{err}");
    assert!(
        err.contains(&format!("line {line}")) || err.contains(&format!("line {}", line + 1)),
        "{err}"
    );
    assert!(err.contains("selekt"), "{err}");
}

#[test]
fn column_masks_follow_lineage_and_stars() {
    let p = policy();
    let alice = who(&["analysts"]);
    let mut f = facts(StatementKind::Select, "SELECT", false);
    f.output = Some(vec![
        OutputColumn::Expr {
            name: Some("name".into()),
            sources: vec![ColumnSource {
                tables: vec!["customers".into()],
                column: "name".into(),
            }],
        },
        OutputColumn::Expr {
            name: Some("x".into()),
            sources: vec![ColumnSource {
                tables: vec!["customers".into()],
                column: "ssn".into(),
            }],
        },
        OutputColumn::Wildcard {
            tables: vec!["accounts".into()],
        },
        OutputColumn::Expr {
            name: Some("n".into()),
            sources: vec![],
        },
    ]);
    let plan = p.column_masks(
        &alice,
        "bank",
        Some(&f),
        &["name", "x", "id", "card_number", "n"],
    );
    let masked: Vec<bool> = plan.iter().map(|m| m.is_some()).collect();
    assert_eq!(masked, vec![false, true, false, true, false]);
    // Without a trace, names decide regardless of table.
    let plan = p.column_masks(&alice, "bank", None, &["ssn", "other"]);
    assert!(plan[0].is_some() && plan[1].is_none());
}

#[test]
fn target_tls_require_is_refused_until_supported() {
    let text = POLICY.replace(
        "allow_groups = [\"analysts\", \"dba\"]",
        "allow_groups = [\"analysts\", \"dba\"]\ntls = \"require\"",
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    let err = compile(&cfg, &text).unwrap_err().to_string();
    assert!(err.contains("not supported yet"), "{err}");
}

const SSH_POLICY: &str = r#"
[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = 5432
user = "app"
allow_groups = ["dba"]

[[connections]]
name = "bank-host"
type = "ssh"
host = "127.0.0.1"
port = 22
user = "ops"
password_env = "HOST_PW"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="
allow_groups = ["dba"]

[[rules]]
name = "no-rm-rf"
effect = "block"
message = "rm -rf is not allowed through the gateway"
connections = ["bank-host"]
pattern = "\\brm\\s+-[a-zA-Z]*(r[a-zA-Z]*f|f[a-zA-Z]*r)"

[[rules]]
name = "sudo-needs-approval"
effect = "approve"
message = "sudo needs a second person"
keywords = ["sudo"]
kinds = ["exec", "line"]
approvers = ["approvers"]

[[rules]]
name = "no-uploads"
effect = "block"
message = "no uploads"
kinds = ["upload"]

[[rules]]
name = "sql-no-deletes"
effect = "block"
message = "no deletes"
kinds = ["delete"]
"#;

#[test]
fn shell_rules_match_shell_commands_only() {
    use crate::classify::shell::{classify as shell, ShellKind};
    let cfg: PolicyConfig = toml::from_str(SSH_POLICY).unwrap();
    let p = compile(&cfg, SSH_POLICY).unwrap();
    let me = who(&["dba"]);
    let d = |text: &str| p.decide_shell(&me, "bank-host", text, &shell(text, ShellKind::Exec));
    assert_eq!(d("rm -rf /tmp/x").rule(), Some("no-rm-rf"));
    assert_eq!(d("ls; rm  -fr /").rule(), Some("no-rm-rf"));
    assert_eq!(d("sudo systemctl restart x").effect(), "hold");
    assert_eq!(d("scp -t /tmp/x").rule(), Some("no-uploads"));
    assert_eq!(d("scp -f /tmp/x").effect(), "allow");
    assert_eq!(d("ls -la").effect(), "allow");
    // The SQL kind rule never matches a shell command, the shell-kind rule
    // never matches SQL.
    let c = crate::classify::classify("SELECT 1", crate::classify::Dialect::Postgres);
    assert_eq!(p.decide(&me, "bank", "SELECT 1", &c).effect(), "allow");
    // A connection-scoped rule does not apply elsewhere.
    assert_eq!(
        p.decide_shell(
            &me,
            "other",
            "rm -rf /",
            &shell("rm -rf /", ShellKind::Exec)
        )
        .effect(),
        "allow"
    );
}

#[test]
fn binary_downloads_match_only_rules_that_name_the_kind() {
    use crate::classify::shell::{classify as shell, ShellKind};
    let text = format!(
        "{SSH_POLICY}\n[[rules]]\nname = \"anyone-anything\"\neffect = \"allow\"\ngroups = [\"dba\"]\n\n[[rules]]\nname = \"images\"\neffect = \"allow\"\nkinds = [\"binary\"]\npattern = '\\.img$'\n"
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    let p = compile(&cfg, &text).unwrap();
    let me = who(&["dba"]);
    let d = |text: &str| {
        let mut facts = shell(text, ShellKind::Binary);
        facts.kind = ShellKind::Binary;
        p.decide_shell(&me, "bank-host", text, &facts)
    };
    // A catch-all allow rule says nothing about binary content: no rule
    // matches, and the adapter refuses what no rule allows.
    assert_eq!(d("sftp get /srv/tool.bin").rule(), None);
    assert_eq!(d("sftp get /srv/disk.img").rule(), Some("images"));
    // Nor does a rule naming "binary" match ordinary downloads.
    let facts = shell("scp -f /srv/disk.img", ShellKind::Exec);
    assert_eq!(
        p.decide_shell(&me, "bank-host", "scp -f /srv/disk.img", &facts)
            .rule(),
        Some("anyone-anything")
    );
}

#[test]
fn ssh_connections_need_a_pinned_host_key() {
    let text = SSH_POLICY.replace(
        "host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\"\n",
        "",
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    let err = compile(&cfg, &text).unwrap_err().to_string();
    assert!(err.contains("host key"), "{err}");
}

#[test]
fn http_rules_decide_each_tool_and_never_match_sql() {
    let text = r#"
[[connections]]
name = "llm"
type = "openai"
host = "127.0.0.1"
port = 8000
allow_groups = ["ds"]

[[rules]]
name = "lookups-are-fine"
effect = "allow"
tools = ["lookup_*"]

[[rules]]
name = "no-wires"
effect = "block"
message = "no"
tools = ["wire_transfer"]

[[rules]]
name = "big-amounts"
effect = "block"
message = "no"
methods = ["POST"]
json = { "/amount" = "^[0-9]{5,}" }
"#;
    let cfg: PolicyConfig = toml::from_str(text).unwrap();
    let policy = compile(&cfg, text).unwrap();
    let who = crate::Identity {
        subject: "a".into(),
        email: None,
        groups: vec!["ds".into()],
        issuer: "i".into(),
        token_id: None,
        expires_at: 0,
    };
    let facts = crate::classify::http::HttpFacts {
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        tools: vec!["lookup_customer".into(), "wire_transfer".into()],
        ..Default::default()
    };
    // An allow for one tool does not carry the other past its block.
    assert_eq!(
        policy.decide_tool_calls(&who, "llm", &facts).effect(),
        "block"
    );
    assert_eq!(policy.decide_http(&who, "llm", &facts).effect(), "block");
    let lookups = crate::classify::http::HttpFacts {
        tools: vec!["lookup_customer".into()],
        ..facts.clone()
    };
    assert_eq!(
        policy.decide_tool_calls(&who, "llm", &lookups).effect(),
        "allow"
    );
    // A body that could not be read as JSON meets a blocking field rule.
    let form = crate::classify::http::HttpFacts {
        method: "POST".into(),
        opaque_body: true,
        ..Default::default()
    };
    assert_eq!(policy.decide_http(&who, "llm", &form).effect(), "block");
    // No HTTP rule matches a SQL statement.
    let c = crate::classify::classify(
        "delete from t where id = 1",
        crate::classify::Dialect::Postgres,
    );
    assert_eq!(
        policy
            .decide(&who, "llm", "delete from t where id = 1", &c)
            .effect(),
        "allow"
    );
}
