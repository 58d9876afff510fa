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
        functions: BTreeSet::new(),
        assigns_variable: false,
        computed_comparisons: Default::default(),
        column_writes: Vec::new(),
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
                transformed: false,
            }],
        },
        OutputColumn::Expr {
            name: Some("x".into()),
            sources: vec![ColumnSource {
                tables: vec!["customers".into()],
                column: "ssn".into(),
                transformed: false,
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
fn target_tls_compiles_for_postgres_and_a_client_cert_needs_it() {
    let text = POLICY.replace(
        "allow_groups = [\"analysts\", \"dba\"]",
        "allow_groups = [\"analysts\", \"dba\"]\ntls = \"verify-full\"",
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    compile(&cfg, &text).unwrap();
    let text = POLICY.replace(
        "allow_groups = [\"analysts\", \"dba\"]",
        "allow_groups = [\"analysts\", \"dba\"]\nclient_cert = \"c.pem\"\nclient_key = \"k.pem\"",
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    let err = compile(&cfg, &text).unwrap_err().to_string();
    assert!(err.contains("set tls = \"require\""), "{err}");
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

const MASKING_POLICY: &str = r#"
[[connections]]
name = "bank"
type = "postgres"
host = "127.0.0.1"
port = 5432
user = "app"
password_env = "BANK_PW"
allow_groups = ["analysts", "dba", "auditors"]

[[rules]]
name = "dba-customer-changes-need-approval"
effect = "approve"
message = "changes to customer records need a second person's approval"
groups = ["dba"]
kinds = ["update", "delete", "merge"]
tables = ["customers"]
approvers = ["approvers"]

[[rules]]
name = "no-unbounded-writes"
effect = "block"
message = "UPDATE and DELETE need a WHERE clause"
kinds = ["update", "delete"]
without_where = true

[masking]
[[masking.columns]]
name = "ids"
columns = ["customers.ssn", "customers.card_number"]
strategy = "partial"
keep_last = 4
except_groups = ["auditors"]

[[masking.columns]]
name = "contact"
columns = ["customers.email"]
strategy = "tokenize"
except_groups = ["auditors"]
"#;

fn masking_policy() -> Policy {
    let cfg: PolicyConfig = toml::from_str(MASKING_POLICY).unwrap();
    compile(&cfg, MASKING_POLICY).unwrap()
}

fn decide_sql(
    p: &Policy,
    groups: &[&str],
    sql: &str,
    dialect: crate::classify::Dialect,
) -> Verdict {
    let c = crate::classify::classify(sql, dialect);
    p.decide(&who(groups), "bank", sql, &c)
}

#[test]
fn masked_values_may_not_outlive_the_statement() {
    use crate::classify::Dialect::{MySql, Postgres};
    let p = masking_policy();
    let blocked = [
        (
            Postgres,
            "select set_config('x.y', card_number||'', false) from customers",
            Some("set_config"),
        ),
        (
            Postgres,
            "select pg_notify('ch', ssn) from customers",
            Some("pg_notify"),
        ),
        (
            Postgres,
            "select id from customers where pg_advisory_lock(length(ssn)) is not null",
            Some("pg_advisory_lock"),
        ),
        (
            Postgres,
            "select x from customers c, lateral dblink_exec('x', c.ssn) x",
            Some("dblink_exec"),
        ),
        (
            Postgres,
            "select public.upper(ssn) from customers",
            Some("public.upper"),
        ),
        (
            Postgres,
            "select \"UPPER\"(ssn) from customers",
            Some("UPPER"),
        ),
        (
            Postgres,
            "select ssn ### 'x' from customers",
            Some("operator(###)"),
        ),
        (
            Postgres,
            "with x as (select lo_from_bytea(0, ssn::bytea) from customers) select 1",
            Some("lo_from_bytea"),
        ),
        (
            Postgres,
            "update customers set phone = '1' where id = 1 and setval('s', length(ssn)) > 0",
            Some("setval"),
        ),
        (
            Postgres,
            "prepare p as select set_config('a.b', ssn, false) from customers",
            Some("set_config"),
        ),
        (
            Postgres,
            "explain analyze select set_config('a.b', ssn, false) from customers",
            Some("set_config"),
        ),
        (MySql, "select @v := ssn from customers", None),
        (MySql, "select ssn into/**/@v from customers", None),
        (MySql, "select ssn into @v from customers limit 1", None),
        (MySql, "select ssn from customers limit 1 into @v", None),
        (MySql, "select ssn into v from customers", None),
        (
            MySql,
            "select id from customers where (@v := ssn) is not null",
            None,
        ),
        (
            MySql,
            "select get_lock(ssn, 0) from customers",
            Some("get_lock"),
        ),
        (
            MySql,
            "select last_insert_id(id + length(ssn)) from customers",
            Some("last_insert_id"),
        ),
        (MySql, "set @v = (select ssn from customers limit 1)", None),
    ];
    for (dialect, sql, function) in blocked {
        let v = decide_sql(&p, &["dba"], sql, dialect);
        assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
        if let (Some(name), Verdict::Block { message, .. }) = (function, &v) {
            assert!(message.contains(name), "{sql}: {message}");
        }
        // A caller the column rules exempt sees the values anyway.
        let v = decide_sql(&p, &["auditors"], sql, dialect);
        assert_ne!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
    }
    for (dialect, sql) in [
        (Postgres, "select upper(ssn) as x from customers"),
        (
            Postgres,
            "select pg_catalog.lower(ssn), length(ssn), substr(ssn, 1, 3) || 'x' from customers",
        ),
        (
            Postgres,
            "select count(*), max(id), to_char(now(), 'YYYY'), coalesce(email, '') from customers",
        ),
        (Postgres, "select set_config('a.b', 'c', false)"),
        (Postgres, "select * from generate_series(1, 3) g"),
        (
            MySql,
            "select concat(upper(ssn), '-', reverse(ssn)), date_format(now(), '%Y') from customers",
        ),
        (MySql, "select @v := 1"),
    ] {
        let v = decide_sql(&p, &["dba"], sql, dialect);
        assert_eq!(v.effect(), "allow", "{sql}: {v:?}");
    }
}

/// Statements sqlparser cannot read, which PostgreSQL's grammar reads
/// (no column trace): facts parsed, output untraced.
fn grammar_read(sql: &str) -> crate::classify::Classification {
    let c = crate::classify::classify(sql, crate::classify::Dialect::Postgres);
    assert!(c.parse_error.is_none(), "{sql}: {:?}", c.parse_error);
    assert!(
        c.statements.iter().all(|f| f.parsed && f.output.is_none()),
        "{sql}: read by the grammar, untraced: {c:?}"
    );
    c
}

#[test]
fn results_of_statements_read_by_the_grammar_are_masked_whole() {
    let p = masking_policy();
    let analyst = who(&["analysts"]);
    for (sql, fields) in [
        (
            "select ssn, name as n, id from customers* where id = 1",
            ["ssn", "n", "id"],
        ),
        (
            "select concat(variadic array[name, ssn]) as x, id, email from customers where id = 1",
            ["x", "id", "email"],
        ),
        (
            "select sum(id) over (order by id rows between 1 preceding and 1 following exclude current row) as s, card_number as c, name from customers",
            ["s", "c", "name"],
        ),
        (
            "declare c cursor for select name as a, ssn as b, id from customers* where id <> all (values (1))",
            ["a", "b", "id"],
        ),
    ] {
        let c = grammar_read(sql);
        let f = &c.statements[0];
        assert!(f.tables_read.contains("customers"), "{sql}: {f:?}");
        let plan = p.column_masks(&analyst, "bank", Some(f), &fields);
        // A renamed column cannot be matched by name: every column is
        // masked (by its rule where its name is a rule's, else redacted).
        assert!(plan.iter().all(|m| m.is_some()), "{sql}: {plan:?}");
        for (mask, name) in plan.iter().zip(fields) {
            let mask = mask.as_ref().unwrap();
            if !matches!(name, "ssn" | "card_number" | "email") {
                assert_eq!(mask.rule, "untraceable-columns", "{sql}: {name}");
                assert_eq!(mask.strategy, crate::mask::Strategy::Redact);
            }
        }
        // The same statement, for a group the rules exempt: nothing masked.
        let plan = p.column_masks(&who(&["auditors"]), "bank", Some(f), &fields);
        assert!(plan.iter().all(|m| m.is_none()), "{sql}: {plan:?}");
    }
    // A table no column rule covers is left alone.
    let c = grammar_read("select name as n from accounts* where id = 1");
    let plan = p.column_masks(&analyst, "bank", Some(&c.statements[0]), &["n"]);
    assert_eq!(plan, vec![None]);
}

#[test]
fn calls_off_the_allow_list_are_refused_through_the_grammar() {
    let p = masking_policy();
    let refused = |sql: &str, what: &str| {
        let c = grammar_read(sql);
        let v = p.decide(&who(&["analysts"]), "bank", sql, &c);
        assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
        assert!(format!("{v:?}").contains(what), "{sql}: {v:?}");
        // A group the rules exempt may.
        let v = p.decide(&who(&["auditors"]), "bank", sql, &c);
        assert_ne!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
    };
    refused(
        "select pg_notify('ch', ssn) from customers* where id = 1",
        "pg_notify",
    );
    refused(
        "select my_fn(variadic array[ssn]) from customers where id = 1",
        "my_fn",
    );
    refused(
        "select id from customers* where pg_advisory_lock(length(ssn)) is not null",
        "pg_advisory_lock",
    );
    refused("select ssn::my_domain from customers*", "cast(my_domain)");
    refused("select ssn ### 'x' from customers*", "operator(###)");
    refused(
        "select set_config('x.y', string_agg(ssn, ',') over (order by id rows between unbounded preceding and current row exclude ties), false) from customers",
        "set_config",
    );
    // A comparison of a computed value spells a masked column out.
    refused(
        "select g from customers* c, generate_series(0, 9) g where substr(c.ssn, 1, 1) = chr(g)",
        "comparing",
    );
    // A write whose value may come from a masked column.
    refused("update customers set notes[1] = ssn where id = 1", "ssn");
    // Built-ins that keep their values in the statement are allowed.
    let sql = "select upper(name), length(ssn) from customers* where id = 1";
    let v = p.decide(&who(&["analysts"]), "bank", sql, &grammar_read(sql));
    assert_eq!(v.effect(), "allow", "{sql}: {v:?}");
}

#[test]
fn masked_values_may_not_move_into_unmasked_columns() {
    use crate::classify::Dialect::{MySql, Postgres};
    let p = masking_policy();
    for (dialect, sql) in [
        (Postgres, "update customers set notes = ssn where id = 1"),
        (Postgres, "update customers set notes = 'x' || upper(card_number) where id = 1"),
        (Postgres, "update customers c set notes = (select s.ssn from customers s where s.id = 2) where c.id = 1"),
        (Postgres, "alter table customers alter column notes type text using (ssn)"),
        (Postgres, "alter table customers alter column notes type text using (case when id = 8 then ssn else notes end)"),
        (Postgres, "alter table customers rename column ssn to x"),
        (Postgres, "alter table customers rename to c2"),
        (Postgres, "alter table customers add column x text generated always as (ssn) stored"),
        (Postgres, "insert into customers (id, notes) select id + 1000, ssn from customers"),
        (Postgres, "insert into customers select * from customers"),
        (Postgres, "insert into customers (id, notes) values (1, 'x') on conflict (id) do update set notes = customers.ssn"),
        (Postgres, "merge into customers c using customers s on c.id = s.id when matched then update set notes = s.ssn"),
        (Postgres, "with u as (update customers set notes = email where id = 1 returning id) select * from u"),
        (Postgres, "update customers set email = ssn where id = 1"),
        (MySql, "update customers set notes = ssn where id = 1"),
        (MySql, "insert into customers (id, notes) values (1, 'x') on duplicate key update notes = ssn"),
        (MySql, "alter table customers change ssn x text"),
        (MySql, "rename table customers to c2"),
    ] {
        let v = decide_sql(&p, &["dba"], sql, dialect);
        assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
        let v = decide_sql(&p, &["auditors"], sql, dialect);
        assert_ne!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
    }
    // Into a column masked the same way, or without a masked source: allowed.
    for (dialect, sql) in [
        (Postgres, "update customers set card_number = ssn where id = 1"),
        (Postgres, "update customers set phone = '555' where id = 7"),
        (Postgres, "alter table customers alter column ssn type varchar(20)"),
        (MySql, "update customers set notes = name where id = 1"),
        (MySql, "insert into customers (id, notes) values (1, 'x') on duplicate key update notes = values(notes)"),
    ] {
        let v = decide_sql(&p, &["dba"], sql, dialect);
        assert_ne!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
    }
}

#[test]
fn ddl_that_changes_a_tables_rows_meets_its_rules() {
    use crate::classify::Dialect::{MySql, Postgres};
    let p = masking_policy();
    for (dialect, sql) in [
        (Postgres, "alter table customers alter column notes type text using (case when id=8 then 'altered-by-ddl' else notes end)"),
        (Postgres, "alter table customers alter column notes type varchar(10)"),
        (Postgres, "alter table customers drop column notes"),
        (Postgres, "truncate customers"),
        (Postgres, "truncate table only customers cascade"),
        (Postgres, "cluster customers using customers_pkey"),
        (Postgres, "vacuum full customers"),
        (MySql, "alter table customers modify notes varchar(5)"),
        (MySql, "alter table customers convert to character set latin1"),
    ] {
        // Held by the rule for updates and deletes of customers (or
        // refused, where the parser cannot read it).
        let v = decide_sql(&p, &["dba"], sql, dialect);
        assert_ne!(v.effect(), "allow", "{sql}: {v:?}");
        // Deliberate DDL is not an UPDATE written without a WHERE: a
        // `without_where` rule leaves it to the rules on kinds and tables,
        // unless a USING expression sets every row's value.
        let v = decide_sql(&p, &["auditors"], sql, dialect);
        if !sql.contains(" using (") {
            assert_ne!(v.rule(), Some("no-unbounded-writes"), "{sql}: {v:?}");
        }
    }
    let v = decide_sql(
        &p,
        &["auditors"],
        "update customers set notes = ''",
        Postgres,
    );
    assert_eq!(v.rule(), Some("no-unbounded-writes"), "{v:?}");
    let v = decide_sql(
        &p,
        &["auditors"],
        "with d as (delete from customers returning id) select * from d",
        Postgres,
    );
    assert_eq!(v.rule(), Some("no-unbounded-writes"), "{v:?}");
    // With the approval rule first, a rewrite is held, not allowed.
    let v = decide_sql(
        &p,
        &["dba"],
        "alter table customers alter column notes type text using (case when id=8 then 'altered-by-ddl' else notes end)",
        Postgres,
    );
    assert_eq!(
        v.rule(),
        Some("dba-customer-changes-need-approval"),
        "{v:?}"
    );
    assert_eq!(v.effect(), "hold");
    let v = decide_sql(&p, &["dba"], "truncate customers", Postgres);
    assert_eq!(v.effect(), "hold", "{v:?}");
    let v = decide_sql(
        &p,
        &["dba"],
        "alter table customers add constraint c check (id > 0)",
        Postgres,
    );
    assert_eq!(v.effect(), "allow", "{v:?}");
}

proptest::proptest! {
    #[test]
    fn any_function_outside_the_allow_list_is_refused_on_masked_tables(
        name in "[a-z][a-z0-9_]{2,15}",
        column in proptest::sample::select(vec!["ssn", "card_number", "email", "name", "id"]),
    ) {
        use crate::classify::Dialect::{MySql, Postgres};
        let p = masking_policy();
        for dialect in [Postgres, MySql] {
            let sql = format!("select {name}({column}) from customers where id = 1");
            let c = crate::classify::classify(&sql, dialect);
            let f = &c.statements[0];
            if !f.parsed || !f.functions.contains(&name) {
                continue; // a keyword that takes parentheses, not a call
            }
            let v = p.decide(&who(&["dba"]), "bank", &sql, &c);
            if keeps_values_in_statement(&name) {
                proptest::prop_assert_eq!(v.effect(), "allow", "{}: {:?}", sql, v);
            } else {
                proptest::prop_assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{}: {:?}", sql, v);
            }
        }
    }

    #[test]
    fn a_masked_value_lands_only_where_it_is_masked_the_same_way(
        target in "[a-z][a-z0-9_]{0,12}",
        source in proptest::sample::select(vec!["ssn", "card_number", "email"]),
        wrap in proptest::sample::select(vec!["{}", "upper({})", "'x' || {}", "(select c2.{} from customers c2 limit 1)", "coalesce({}, '')"]),
    ) {
        let p = masking_policy();
        let value = wrap.replace("{}", source);
        let sql = format!("update customers set {target} = {value} where id = 1");
        let c = crate::classify::classify(&sql, crate::classify::Dialect::Postgres);
        proptest::prop_assume!(c.statements[0].parsed);
        let v = p.decide(&who(&["dba"]), "bank", &sql, &c);
        let group = |c: &str| match c {
            "ssn" | "card_number" => Some("ids"),
            "email" => Some("contact"),
            _ => None,
        };
        if group(&target) == group(source) {
            proptest::prop_assert_ne!(v.rule(), Some("masked-columns-stay-masked"), "{}", sql);
        } else {
            proptest::prop_assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{}", sql);
        }
    }
}

#[test]
fn catalogs_are_covered_only_by_rules_that_name_them() {
    let p = policy();
    let alice = who(&["analysts"]);
    let touch = |t: &str| p.column_rules_touch(&alice, "bank", [t.to_string()].iter());
    assert!(touch("customers"));
    assert!(touch("accounts"), "*.card_number covers any user table");
    for catalog in [
        "pg_class",
        "pg_catalog.pg_namespace",
        "information_schema.columns",
        "pg_settings",
    ] {
        assert!(!touch(catalog), "{catalog}");
    }
    for values in [
        "pg_stats",
        "pg_statistic",
        "pg_stat_activity",
        "public.pg_cards",
    ] {
        assert!(touch(values), "{values} holds values");
    }
    assert!(
        !touch("pg_largeobject"),
        "its columns are loid, pageno and data"
    );
    let text = format!(
        "{POLICY}\n[[masking.columns]]\nname = \"documents\"\ncolumns = [\"pg_largeobject.data\"]\nstrategy = \"redact\"\n"
    );
    let cfg: PolicyConfig = toml::from_str(&text).unwrap();
    let p = compile(&cfg, &text).unwrap();
    assert!(p.column_rules_touch(&alice, "bank", ["pg_largeobject".to_string()].iter()));
    let lo = crate::classify::classify("select lo_get(16403)", crate::classify::Dialect::Postgres);
    let v = p.decide(&alice, "bank", "select lo_get(16403)", &lo);
    assert!(matches!(v, Verdict::Block { .. }), "{v:?}");
}

#[test]
fn the_catalog_list_is_sorted() {
    // metadata_catalog uses a binary search.
    let p = policy();
    let alice = who(&["analysts"]);
    for t in ["pg_aggregate", "pg_views", "pg_type", "pg_roles"] {
        assert!(
            !p.column_rules_touch(&alice, "bank", [t.to_string()].iter()),
            "{t}"
        );
    }
}

#[test]
fn a_masked_table_renamed_like_a_catalog_is_refused() {
    let p = policy();
    for sql in [
        "alter table accounts rename to pg_class",
        "alter table accounts rename to \"PG_CLASS\"",
        "alter table accounts rename to pg_largeobject",
    ] {
        let v = decide_sql(&p, &["dba"], sql, crate::classify::Dialect::Postgres);
        assert_eq!(v.rule(), Some("masked-columns-stay-masked"), "{sql}: {v:?}");
    }
    let v = decide_sql(
        &p,
        &["dba"],
        "alter table accounts rename to ledger_accounts",
        crate::classify::Dialect::Postgres,
    );
    assert_ne!(
        v.rule(),
        Some("masked-columns-stay-masked"),
        "masked alike: {v:?}"
    );
}

#[test]
fn a_using_rewrite_is_an_unbounded_update_but_a_plain_type_change_is_not() {
    use crate::classify::Dialect::Postgres;
    let p = masking_policy();
    for sql in [
        "alter table accounts alter column balance type numeric(12,2) using 0",
        "alter table accounts alter column balance type numeric(12,2) using 0, alter column kind type text",
    ] {
        let v = decide_sql(&p, &["auditors"], sql, Postgres);
        assert_eq!(v.rule(), Some("no-unbounded-writes"), "{sql}: {v:?}");
    }
    for sql in [
        "alter table accounts alter column balance type numeric(14,2)",
        "alter table accounts rename column kind to account_kind",
    ] {
        let v = decide_sql(&p, &["auditors"], sql, Postgres);
        assert_ne!(v.rule(), Some("no-unbounded-writes"), "{sql}: {v:?}");
    }
}
