//! PostgreSQL's own regression suite, run directly and through the
//! gateway, to show where the gateway is not transparent.
//!
//! The suite is `src/test/regress` of the installed server's own sources,
//! which `scripts/pg-regress-sources.sh` fetches (with apt-get source) and
//! builds its C functions for; its folder comes from
//! `GATEHOUSE_PG_REGRESS_DIR`, else from that script's cache under
//! `target/pg-regress/`. Without it these tests say SKIPPED and pass,
//! unless `GATEHOUSE_REQUIRE_PG_REGRESS=1` (scripts/test.sh sets it).
//!
//! Every test of `parallel_schedule` runs on its own, one after another in
//! schedule order (a parallel group's tests too), with psql invoked the way
//! pg_regress invokes it (`pg_regress_main.c`: `psql -X -a -q -d DB -v
//! HIDE_TABLEAM=on -v HIDE_TOAST_COMPRESSION=on < sql/TEST.sql`, standard
//! output and error into one file) in the environment `pg_regress.c` sets
//! (PGTZ and PGDATESTYLE and PGOPTIONS' intervalstyle, read from that file;
//! PGAPPNAME=pg_regress/TEST; LC_MESSAGES=C; PG_ABS_SRCDIR, PG_ABS_BUILDDIR,
//! PG_LIBDIR and PG_DLSUFFIX for the tests' `\getenv`). Each run gets a
//! fresh database made as pg_regress makes one (from template0, with its
//! `ALTER DATABASE … SET`s) under pg_regress's name, `regression` (the
//! runs take turns), and both runs log in to PostgreSQL as the same
//! superuser, directly with its password, through the gateway (connection
//! `regression`) with a token for an identity of the same name, so their
//! outputs compare line for line; only ports and timings are normalised.
//! The outputs are kept in `target/tmp/pg_regress/` for `diff -u`.
//!
//!     bash scripts/pg-regress-sources.sh
//!     cargo test -p gatehouse --test pg_regress -- --nocapture --test-threads=1

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{err, out, target, TestGateway};

/// Tests whose output through the permissive gateway is identical to the
/// direct one (of the 217 in PostgreSQL 15's parallel_schedule).
const IDENTICAL_TESTS: usize = 217;

/// Tests whose output text really holds what a detector looks for, so the
/// default detectors change it: digit runs that are valid card numbers
/// (`to_char` output, numeric strings), phone-like numbers and emails
/// (full-text search samples).
const DETECTED_IN_TEXT: &[&str] = &[
    "int8",
    "numeric",
    "select_views",
    "strings",
    "timestamp",
    "timestamptz",
    "tsearch",
];

/// The superuser both runs log in as (pg_regress expects one), and the
/// subject of the gateway's token.
const ROLE: &str = "gatehouse_su";
const ROLE_PASSWORD: &str = "regress-su-password";
/// Every run's database, made afresh for each (they run one after the
/// other), and the gateway's connection to it: pg_regress's own name,
/// which some tests spell out (`GRANT CREATE ON DATABASE regression`,
/// psql's `\dt regression.schema.table`).
const DB: &str = "regression";
/// The identity's group, the only one the connection lets in.
const GROUP: &str = "regress";
/// How long one test's psql may take (the slowest take seconds).
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The suite's folder and what pg_regress would give psql.
struct Suite {
    dir: PathBuf,
    tests: Vec<String>,
    /// Environment from pg_regress.c: PGTZ, PGDATESTYLE, PGOPTIONS.
    env: Vec<(&'static str, String)>,
}

/// The sources, or `None` (skipped) when they are not there.
fn suite() -> Option<Suite> {
    let dir = std::env::var_os("GATEHOUSE_PG_REGRESS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(cached_suite_dir);
    let missing = match &dir {
        None => Some(
            "no GATEHOUSE_PG_REGRESS_DIR and no download for the installed postgresql-15 under target/pg-regress/"
                .to_string(),
        ),
        Some(d) if !d.join("parallel_schedule").is_file() => {
            Some(format!("{} holds no parallel_schedule", d.display()))
        }
        Some(d) if !d.join("regress.so").is_file() => {
            Some(format!("{} holds no regress.so", d.display()))
        }
        Some(_) => None,
    };
    if let Some(why) = missing {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_PG_REGRESS").as_deref() != Ok("1"),
            "PostgreSQL's regression suite is required but {why}; run scripts/pg-regress-sources.sh"
        );
        eprintln!("SKIPPED: {why} (run scripts/pg-regress-sources.sh)");
        return None;
    }
    let dir = dir?.canonicalize().expect("the suite's folder");
    let schedule = std::fs::read_to_string(dir.join("parallel_schedule")).unwrap();
    let tests = schedule
        .lines()
        .filter_map(|l| l.strip_prefix("test:"))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect();
    let source = std::fs::read_to_string(dir.join("pg_regress.c")).unwrap();
    let quoted_after = |needle: &str| {
        let at = source
            .find(needle)
            .unwrap_or_else(|| panic!("pg_regress.c no longer has {needle}"));
        let rest = &source[at + needle.len()..];
        let start = rest.find('"').unwrap() + 1;
        let end = start + rest[start..].find('"').unwrap();
        rest[start..end].to_string()
    };
    let env = vec![
        ("PGTZ", quoted_after("setenv(\"PGTZ\",")),
        ("PGDATESTYLE", quoted_after("setenv(\"PGDATESTYLE\",")),
        // pg_regress appends its options to the caller's PGOPTIONS.
        (
            "PGOPTIONS",
            format!(" {}", quoted_after("const char *my_pgoptions =")),
        ),
    ];
    Some(Suite { dir, tests, env })
}

/// scripts/pg-regress-sources.sh's finished download for the installed
/// server's version (`target/pg-regress/VERSION/postgresql-*/src/test/regress`).
fn cached_suite_dir() -> Option<PathBuf> {
    let version = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "postgresql-15"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| out(&o))?;
    let cache = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/pg-regress")
        .join(version.trim());
    if !cache.join(".complete").is_file() {
        return None;
    }
    std::fs::read_dir(&cache)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("src/test/regress"))
        .find(|p| p.is_dir())
}

/// Both tests share one cluster, whose roles and tablespaces are global:
/// they take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Create (once) the superuser the runs log in as.
fn superuser() {
    static MADE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        target()
            .cluster
            .create_role(ROLE, ROLE_PASSWORD, true)
            .expect("create the suite's superuser");
    });
}

/// A fresh database made the way pg_regress makes one, in a cluster
/// without what an earlier run left behind: the suite's roles and
/// tablespaces are global and a run whose cleanup was refused leaves them
/// (pg_regress's `make check` starts from a new cluster instead).
async fn fresh_database() {
    tokio::task::spawn_blocking(move || {
        let t = target();
        t.cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database \
                       WHERE datname = '{DB}' OR datname LIKE 'regression\\_%' \\gexec\n\
                     SELECT format('DROP TABLESPACE %I', spcname) FROM pg_tablespace \
                       WHERE spcname LIKE 'regress\\_%' \\gexec\n\
                     SELECT format('DROP ROLE %I', rolname) FROM pg_roles \
                       WHERE rolname LIKE 'regress\\_%' \\gexec\n\
                     CREATE DATABASE \"{DB}\" TEMPLATE=template0 OWNER {ROLE};\n\
                     ALTER DATABASE \"{DB}\" SET lc_messages TO 'C';\
                     ALTER DATABASE \"{DB}\" SET lc_monetary TO 'C';\
                     ALTER DATABASE \"{DB}\" SET lc_numeric TO 'C';\
                     ALTER DATABASE \"{DB}\" SET lc_time TO 'C';\
                     ALTER DATABASE \"{DB}\" SET bytea_output TO 'hex';\
                     ALTER DATABASE \"{DB}\" SET timezone_abbreviations TO 'Default';\n"
                ),
            )
            .expect("create the suite's database")
    })
    .await
    .unwrap();
}

/// Where one run logs in.
struct Login {
    label: &'static str,
    port: u16,
    password: String,
    sslmode: &'static str,
}

/// One run of the whole schedule: each test's output, in schedule order.
struct Run {
    outputs: Vec<(String, String)>,
    elapsed: Duration,
    timed_out: Vec<String>,
}

/// Where outputs go: `target/tmp/pg_regress/`.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg_regress")
}

/// Run the schedule against `login`'s fresh database, serially.
async fn run_suite(suite: &Suite, login: &Login) -> Run {
    fresh_database().await;
    // pg_regress's output folder: tests write files into results/ from
    // psql (as us) and from the server (as its own OS user).
    let build = work_dir().join("build");
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(build.join("results")).unwrap();
    set_mode(&build, 0o755);
    set_mode(&build.join("results"), 0o1777);
    let out_dir = work_dir().join(login.label);
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let psql = gatehouse_testbed::pgcluster::PgCluster::find_binaries()
        .unwrap()
        .join("psql");
    let started = Instant::now();
    let mut outputs = Vec::new();
    let mut timed_out = Vec::new();
    for test in &suite.tests {
        let file = out_dir.join(format!("{test}.out"));
        let sink = std::fs::File::create(&file).unwrap();
        let input = std::fs::File::open(suite.dir.join("sql").join(format!("{test}.sql"))).unwrap();
        let mut cmd = tokio::process::Command::new(&psql);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(suite.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PGAPPNAME", format!("pg_regress/{test}"))
            .env("LC_MESSAGES", "C")
            .env("PG_ABS_SRCDIR", &suite.dir)
            .env("PG_ABS_BUILDDIR", &build)
            .env("PG_LIBDIR", &suite.dir)
            .env("PG_DLSUFFIX", ".so")
            .env("PGPASSWORD", &login.password)
            .args(["-X", "-a", "-q", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={ROLE} dbname={DB} sslmode={}",
                login.port, login.sslmode
            ))
            .args(["-v", "HIDE_TABLEAM=on", "-v", "HIDE_TOAST_COMPRESSION=on"])
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(sink.try_clone().unwrap()))
            .stderr(Stdio::from(sink))
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("psql runs");
        if tokio::time::timeout(TEST_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
            timed_out.push(test.clone());
        }
        let text = std::fs::read(&file).unwrap();
        outputs.push((test.clone(), String::from_utf8_lossy(&text).into_owned()));
    }
    Run {
        outputs,
        elapsed: started.elapsed(),
        timed_out,
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The gateway in front of the suite's database: one connection, one
/// allow-all rule, and `policy` (what the two tests vary).
async fn gateway(policy: &str) -> TestGateway {
    let port = target().cluster.port();
    let policy = policy.to_string();
    TestGateway::start_config(move |dir| {
        let pw = dir.join("target.pw");
        std::fs::write(&pw, ROLE_PASSWORD).unwrap();
        format!(
            r#"state_dir = "state"
{policy}

[postgres]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

# The trail's fsync per commit would only slow the suite down.
[audit]
durability = "normal"

[[connections]]
name = "{DB}"
type = "postgres"
host = "127.0.0.1"
port = {port}
database = "{DB}"
user = "{ROLE}"
password_file = "{pw}"
allow_groups = ["{GROUP}"]

[[rules]]
name = "allow-all"
effect = "allow"
message = "the regression suite runs whatever it runs"
"#,
            pw = pw.display(),
        )
    })
    .await
}

/// What necessarily differs between the runs: the ports (in connection
/// errors), psql's `\timing`.
fn normalise(text: &str, ports: &[u16]) -> String {
    let mut text = text.to_string();
    for port in ports {
        text = text.replace(&format!("port {port}"), "port PORT");
    }
    let time = regex_lite::Regex::new(r"(?m)^Time: [0-9.,]+ ms.*$").unwrap();
    time.replace_all(&text, "Time: T ms").into_owned()
}

/// `diff -u` of two files, without its header.
fn diff(a: &Path, b: &Path) -> String {
    let o = std::process::Command::new("diff")
        .arg("-u")
        .arg(a)
        .arg(b)
        .output()
        .expect("diff runs");
    out(&o).lines().skip(2).collect::<Vec<_>>().join("\n")
}

/// Whether `output` is one of the outputs PostgreSQL expects for `test`
/// (expected/TEST.out or an alternative expected/TEST_N.out).
fn as_expected(suite: &Suite, test: &str, output: &str) -> bool {
    std::fs::read_dir(suite.dir.join("expected"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == format!("{test}.out")
                || name
                    .strip_prefix(&format!("{test}_"))
                    .and_then(|n| n.strip_suffix(".out"))
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|x| x == output))
}

/// A statement's first words, upper-cased, up to the first that is not a
/// plain word: how refusals are grouped.
fn leading_keywords(sql: &str) -> String {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let words: Vec<String> = s
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    if words.is_empty() {
        s.chars().take(20).collect()
    } else {
        words.join(" ")
    }
}

/// What the trail says about one gateway run.
#[derive(Default)]
struct Trail {
    /// Commands recorded.
    commands: usize,
    /// (test, rule, sql) of every command refused.
    refused: Vec<(String, String, String)>,
    /// (test, sql) of every command sqlparser could not read (classified
    /// by the keyword fallback instead).
    unparsed: Vec<(String, String)>,
    /// Refusals sessions counted (fast-path calls and other refusals
    /// that are not recorded as commands are in here too).
    blocked_by_sessions: u64,
    /// Per test: values masked in its results, errors and notices.
    masked: BTreeMap<String, BTreeMap<String, u64>>,
}

async fn read_trail(gw: &TestGateway) -> Trail {
    let events = support::events(gw).await;
    let mut test_of: HashMap<String, String> = HashMap::new();
    for e in events.iter().filter(|e| e["kind"] == "session.start") {
        let app = e["data"]["application_name"].as_str().unwrap_or_default();
        let test = app.strip_prefix("pg_regress/").unwrap_or(app);
        test_of.insert(
            e["session_id"].as_str().unwrap_or_default().to_string(),
            test.to_string(),
        );
    }
    let test = |e: &serde_json::Value| {
        test_of
            .get(e["session_id"].as_str().unwrap_or_default())
            .cloned()
            .unwrap_or_default()
    };
    let mut trail = Trail::default();
    for e in &events {
        let data = &e["data"];
        match e["kind"].as_str().unwrap_or_default() {
            "command" => {
                trail.commands += 1;
                if !data["parse_error"].is_null() {
                    trail.unparsed.push((
                        test(e),
                        data["sql"].as_str().unwrap_or_default().to_string(),
                    ));
                }
                if data["verdict"]["effect"] == "block" {
                    trail.refused.push((
                        test(e),
                        data["verdict"]["rule"].as_str().unwrap_or("?").to_string(),
                        data["sql"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            "command.result" => {
                if let Some(counts) = data["masked"].as_object().filter(|c| !c.is_empty()) {
                    let per_test = trail.masked.entry(test(e)).or_default();
                    for (entity, n) in counts {
                        *per_test.entry(entity.clone()).or_default() += n.as_u64().unwrap_or(0);
                    }
                }
            }
            "session.end" => trail.blocked_by_sessions += data["blocked"].as_u64().unwrap_or(0),
            _ => {}
        }
    }
    trail
}

/// Print the refused commands grouped by rule and leading keywords, at
/// most `most` groups.
fn print_refusals(trail: &Trail, most: usize) {
    println!(
        "refused commands in the trail: {} of {} ({} refusals counted by the sessions, fast-path calls included)",
        trail.refused.len(),
        trail.commands,
        trail.blocked_by_sessions
    );
    print_groups(
        trail
            .refused
            .iter()
            .map(|(test, rule, sql)| (format!("{rule}: {}", leading_keywords(sql)), test, sql)),
        most,
    );
}

/// Print the commands sqlparser could not read, by leading keywords.
fn print_unparsed(trail: &Trail, most: usize) {
    println!(
        "commands sqlparser could not read (keyword fallback): {} of {}",
        trail.unparsed.len(),
        trail.commands
    );
    print_groups(
        trail
            .unparsed
            .iter()
            .map(|(test, sql)| (leading_keywords(sql), test, sql)),
        most,
    );
}

/// Print (key, test, sql) items grouped by key, most frequent first, with
/// the tests they occur in and one example; at most `most` groups.
fn print_groups<'a>(items: impl Iterator<Item = (String, &'a String, &'a String)>, most: usize) {
    let mut groups: BTreeMap<String, (usize, Vec<&String>, &String)> = BTreeMap::new();
    for (key, test, sql) in items {
        let g = groups.entry(key).or_insert_with(|| (0, Vec::new(), sql));
        g.0 += 1;
        if !g.1.contains(&test) {
            g.1.push(test);
        }
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let total = groups.len();
    for (key, (n, tests, example)) in groups.into_iter().take(most) {
        let example = one_line(example, 90);
        let tests: Vec<&str> = tests.iter().map(|t| t.as_str()).collect();
        println!("  {n:5}  {key}  [{}]  e.g. {example}", tests.join(" "));
    }
    if total > most {
        println!("  … and {} more groups", total - most);
    }
}

/// `line` cut to `width` characters.
fn cut(line: &str, width: usize) -> String {
    match line.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// `text` on one line, cut to `width` characters.
fn one_line(text: &str, width: usize) -> String {
    cut(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
        width,
    )
}

/// Error lines of the outputs that name the gateway, grouped by message
/// (without quoted names and parenthesised details), and how many there
/// are.
fn gateway_errors(run: &Run) -> (usize, BTreeMap<String, usize>) {
    let quoted = regex_lite::Regex::new(r#""[^"]*""#).unwrap();
    let mut groups = BTreeMap::new();
    let mut total = 0;
    for (_, output) in &run.outputs {
        for line in output.lines() {
            if line.contains("gatehouse")
                && (line.starts_with("ERROR:") || line.starts_with("FATAL:"))
            {
                total += 1;
                let key = quoted.replace_all(line, "\"…\"");
                let key = key.split(" (").next().unwrap_or_default();
                let key = cut(key, 140);
                *groups.entry(key).or_insert(0) += 1;
            }
        }
    }
    (total, groups)
}

fn print_gateway_errors(run: &Run) {
    let (total, groups) = gateway_errors(run);
    println!("errors naming gatehouse in the outputs: {total}");
    for (line, n) in groups {
        println!("  {n:5}  {line}");
    }
}

/// The permissive gateway against PostgreSQL itself: how many of the
/// suite's tests give the same output through the gateway as directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_suite_through_a_permissive_gateway_matches_direct() {
    let Some(suite) = suite() else { return };
    let _turn = TURN.lock().await;
    superuser();
    let started = Instant::now();

    let direct = run_suite(
        &suite,
        &Login {
            label: "direct",
            port: target().cluster.port(),
            password: ROLE_PASSWORD.into(),
            sslmode: "disable",
        },
    )
    .await;

    // Statements sqlparser cannot read are decided by the rules (here:
    // allowed), no detectors, no column rules.
    let gw = gateway("unparseable = \"rules\"\n\n[masking]\ndetectors = []\n").await;
    let token = gw.token_ttl(ROLE, &[GROUP], Duration::from_secs(3 * 3600));
    let through = run_suite(
        &suite,
        &Login {
            label: "gateway",
            port: gw.port(),
            password: token,
            sslmode: "require",
        },
    )
    .await;

    let ports = [target().cluster.port(), gw.port()];
    let mut identical = 0;
    let mut differing = Vec::new();
    let mut direct_as_expected = 0;
    let dir = work_dir();
    for ((test, d), (_, g)) in direct.outputs.iter().zip(&through.outputs) {
        if as_expected(&suite, test, d) {
            direct_as_expected += 1;
        }
        let (d, g) = (normalise(d, &ports), normalise(g, &ports));
        if d == g {
            identical += 1;
        } else {
            let (a, b) = (
                dir.join("direct").join(format!("{test}.norm")),
                dir.join("gateway").join(format!("{test}.norm")),
            );
            std::fs::write(&a, &d).unwrap();
            std::fs::write(&b, &g).unwrap();
            differing.push((test.clone(), diff(&a, &b)));
        }
    }

    println!(
        "PostgreSQL regression suite ({} tests of {}/parallel_schedule, run one at a time)",
        suite.tests.len(),
        suite.dir.display()
    );
    println!(
        "direct: {:.0?}, {direct_as_expected} of {} as PostgreSQL expects (expected/*.out){}",
        direct.elapsed,
        suite.tests.len(),
        timed_out_note(&direct)
    );
    println!(
        "through the gateway: {:.0?}{}",
        through.elapsed,
        timed_out_note(&through)
    );
    println!(
        "identical through the gateway: {identical} of {}; outputs in {}",
        suite.tests.len(),
        dir.display()
    );
    for (test, diff) in &differing {
        println!("--- {test} differs:");
        for line in diff.lines().take(14) {
            println!("    {}", cut(line, 160));
        }
    }
    let trail = read_trail(&gw).await;
    print_refusals(&trail, usize::MAX);
    print_gateway_errors(&through);
    print_unparsed(&trail, 30);
    gw.stop().await;
    println!("whole test: {:.0?}", started.elapsed());

    assert_eq!(
        identical,
        IDENTICAL_TESTS,
        "identical tests through the gateway changed; differing: {:?}",
        differing.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
}

fn timed_out_note(run: &Run) -> String {
    if run.timed_out.is_empty() {
        String::new()
    } else {
        format!(
            "; timed out after {:?}: {}",
            TEST_TIMEOUT,
            run.timed_out.join(" ")
        )
    }
}

/// The gateway with its default settings in front of the same suite: a
/// statement sqlparser cannot read is refused (`unparseable = "block"`),
/// and the content detectors run with the demo's strategies. What this
/// measures, and prints: the share of the suite's commands the gateway
/// refuses (by rule and leading keywords), and which tests' output the
/// detectors changed (values masked in rows, errors and notices, by the
/// trail). It asserts only that the whole suite runs through and that the
/// trail it leaves verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_suite_through_the_default_policy() {
    let Some(suite) = suite() else { return };
    let _turn = TURN.lock().await;
    superuser();
    let demo = gatehouse::demo::DEMO_POLICY;
    let strategies = &demo[demo.find("[masking]").expect("the demo masks")
        ..demo
            .find("[[masking.columns]]")
            .expect("the demo has column rules")];
    let gw = gateway(strategies).await;
    let token = gw.token_ttl(ROLE, &[GROUP], Duration::from_secs(3 * 3600));
    let run = run_suite(
        &suite,
        &Login {
            label: "gateway-default",
            port: gw.port(),
            password: token,
            sslmode: "require",
        },
    )
    .await;
    let trail = read_trail(&gw).await;
    println!(
        "default policy: {} tests in {:.0?}{}",
        run.outputs.len(),
        run.elapsed,
        timed_out_note(&run)
    );
    println!(
        "refused {:.1}% of the commands ({} of {})",
        100.0 * trail.refused.len() as f64 / trail.commands.max(1) as f64,
        trail.refused.len(),
        trail.commands
    );
    print_refusals(&trail, 40);
    print_gateway_errors(&run);
    println!(
        "commands neither sqlparser nor PostgreSQL's grammar could read: {} of {}",
        trail.unparsed.len(),
        trail.commands
    );
    println!(
        "tests whose output the detectors changed: {}",
        trail.masked.len()
    );
    for (test, counts) in &trail.masked {
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  {test}: {}", counts.join(", "));
    }
    let (_dir, config) = gw.stop().await;

    assert_eq!(run.outputs.len(), suite.tests.len());
    // Fewer than 0.5% of the suite's commands are refused (README lists
    // the forms: DO blocks, statements the server rejects too, …).
    assert!(
        trail.refused.len() * 200 < trail.commands,
        "{} of {} commands refused",
        trail.refused.len(),
        trail.commands
    );
    // The detectors change only outputs whose text holds card-like digit
    // runs, phone-like numbers or emails (README, "Tests").
    for test in trail.masked.keys() {
        assert!(
            DETECTED_IN_TEXT.contains(&test.as_str()),
            "the detectors changed {test}, which is not known to hold PII-like text"
        );
    }
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"])
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .await
        .expect("gatehouse runs");
    let text = format!("{}{}", out(&o), err(&o));
    assert!(o.status.success(), "audit verify: {text}");
    assert!(text.contains("audit trail intact"), "{text}");
}
