//! The command loop of one session: decide on the way in, mask on the way out.
//!
//! MySQL is strictly request/response: the client sends one command and
//! reads its whole response before the next. So one task runs the session:
//! it reads a command, classifies and decides it, records it (before
//! anything reaches the target; a failed audit write refuses the command),
//! forwards what is allowed, then reads the target's response, masks rows
//! as they stream and writes them to the client. Responses the gateway
//! makes up itself (a block, a denial) are ERR packets in the place of the
//! target's response, so every client and driver reports them as errors.

mod admission;
pub(crate) mod prepared;
mod results;

#[cfg(test)]
use prepared::show_params;

use crate::codec::packets::{self, com, status, Column};
use crate::codec::{encode_packet, rows, DecodeError, Packet, Reader};
use crate::io::{PacketReader, StreamError};
use crate::masking::{self, RowFormat, RowPlan};
use crate::session::{ClientIo, SessionContext};
use bytes::BytesMut;
use gatehouse_core::approval::quote_for_approver;
use gatehouse_core::classify::syntax::mysql_executable_comments;
use gatehouse_core::classify::{Classification, Dialect, StatementFacts, StatementKind};
use gatehouse_core::events::CommandResult;
use gatehouse_core::lifecycle::{Command, Refusal};
use gatehouse_core::mask::MaskCounts;
pub use gatehouse_core::pipeline::SessionStats;
use gatehouse_core::pipeline::{redact_secrets, resolve_executes, BoxFuture};
use gatehouse_core::Verdict;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Error number of a refused command (`ER_TABLEACCESS_DENIED_ERROR`'s
/// family: "command denied"), with SQLSTATE 42000.
const ER_DENIED: u16 = 1142;
/// `ER_UNKNOWN_ERROR`, for the audit trail failing.
const ER_UNKNOWN: u16 = 1105;
/// `ER_QUERY_INTERRUPTED`.
const ER_INTERRUPTED: u16 = 1317;

/// A server-side prepared statement as the gateway understands it.
struct Statement {
    sql: String,
    classification: Arc<Classification>,
    /// The statement its result columns follow.
    output_facts: Option<StatementFacts>,
    /// The hold verdict when running it needs approval (asked at each
    /// execution, once the parameters are known).
    held: Option<Verdict>,
    /// Parameter count and the types last bound (for showing approvers).
    params: u16,
    param_types: Vec<(u8, u8)>,
    /// The plan of an open cursor (COM_STMT_FETCH rows).
    cursor: Option<RowPlan>,
    /// Long data was sent for a held statement (kept from the target, since
    /// approvers could not see it); its next execution is refused.
    long_data: bool,
}

/// Per-command accounting.
struct CommandUnit {
    id: u64,
    started: Instant,
}

/// The result being streamed and what has been counted for it.
#[derive(Default)]
struct ResultState {
    rows: u64,
    masked: MaskCounts,
    error: Option<serde_json::Value>,
    sample: Vec<serde_json::Value>,
    /// The result's column names, recorded with `sample` so the rows can be read.
    columns: Vec<String>,
}

/// Run the session until either side closes.
pub async fn run(
    ctx: Arc<SessionContext>,
    client: Box<dyn ClientIo>,
    client_leftover: BytesMut,
    target: Box<dyn ClientIo>,
    target_leftover: BytesMut,
    grant_end: Option<BoxFuture<'static, String>>,
) -> SessionStats {
    let max = ctx.settings.max_packet_len;
    let mut proxy = Proxy {
        ctx: ctx.clone(),
        client: PacketReader::new(client, client_leftover, max),
        target: PacketReader::new(target, target_leftover, max),
        statements: HashMap::new(),
        sql_prepared: HashMap::new(),
        next_command: 0,
        stats: SessionStats::default(),
        out: Vec::with_capacity(64 * 1024),
        seq: 1,
        lexing_changed: false,
        withhold_errors: false,
        diagnostics_masked: false,
    };
    let grant_end = grant_end.unwrap_or_else(|| Box::pin(std::future::pending()));
    let reason = proxy.run(grant_end).await;
    let _ = proxy.flush().await;
    let _ = proxy.client.get_mut().shutdown().await;
    let mut stats = std::mem::take(&mut proxy.stats);
    stats.end_reason = reason;
    stats
}

struct Proxy {
    ctx: Arc<SessionContext>,
    client: PacketReader<Box<dyn ClientIo>>,
    target: PacketReader<Box<dyn ClientIo>>,
    statements: HashMap<u32, Statement>,
    /// SQL-level `PREPARE name FROM '…'` bodies by name.
    sql_prepared: HashMap<String, Classification>,
    next_command: u64,
    stats: SessionStats,
    out: Vec<u8>,
    /// Sequence number of the next packet to the client.
    seq: u8,
    /// The target said its session reads quotes differently from the
    /// gateway (NO_BACKSLASH_ESCAPES): no further statement can be judged.
    lexing_changed: bool,
    /// The current command reads columns masked for this caller, so the
    /// target's error text (which can quote values) is withheld.
    withhold_errors: bool,
    /// The last statement read columns masked for this caller, so its
    /// warnings (`SHOW WARNINGS`) are withheld too.
    diagnostics_masked: bool,
}

/// How handling a command ended: keep going, or end the session.
type Step = Result<bool, String>;

/// The words of a statement, lower-cased (quote-unaware; used only to
/// spot keywords the classifier reports coarsely).
fn words(sql: &str) -> Vec<String> {
    sql.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `KILL [CONNECTION | QUERY] id` → (query only, id).
pub fn parse_kill(sql: &str) -> Option<(bool, u32)> {
    let t = sql.trim().trim_end_matches(';').trim();
    let mut it = t.split_ascii_whitespace();
    if !it.next()?.eq_ignore_ascii_case("kill") {
        return None;
    }
    let mut next = it.next()?;
    let mut query = false;
    if next.eq_ignore_ascii_case("query") {
        query = true;
        next = it.next()?;
    } else if next.eq_ignore_ascii_case("connection") {
        next = it.next()?;
    }
    let id = next.parse().ok()?;
    it.next().is_none().then_some((query, id))
}

/// Statements that change how the server reads the following ones
/// (`sql_mode`, the connection's character set) are refused when the
/// gateway could then read a statement differently from the server:
/// NO_BACKSLASH_ESCAPES, multi-byte character sets whose second byte can be
/// a backslash, values the gateway cannot read (variables, expressions),
/// or a change sharing a multi-statement string with other statements
/// (the server reads those after the change; the gateway read them before).
fn session_syntax_refusal(sql: &str, c: &Classification) -> Option<Verdict> {
    // `SET sql_mode/**/= …` must read as `SET sql_mode = …`.
    let sql = &gatehouse_core::classify::without_comments(sql, Dialect::MySql);
    use std::sync::OnceLock;
    static TOUCHES: OnceLock<regex::Regex> = OnceLock::new();
    static VALUE: OnceLock<regex::Regex> = OnceLock::new();
    static UNSAFE: OnceLock<regex::Regex> = OnceLock::new();
    let touches = TOUCHES.get_or_init(|| {
        gatehouse_core::static_regex(r"(?i)\b(sql_mode|character_set_[a-z_]+|collation_connection)\b|\bset\s+(session\s+|local\s+)?(names|charset|character\s+set)\b")
    });
    if !touches.is_match(sql) {
        return None;
    }
    let refuse = |why: &str| {
        Some(Verdict::Block {
            rule: "mysql-session-syntax".into(),
            message: format!("{why}; gatehouse must read every statement as the server does"),
        })
    };
    let unsafe_charset = UNSAFE.get_or_init(|| {
        gatehouse_core::static_regex(r"(?i)no_backslash_escapes|ansi_quotes|\b(ansi|oracle|db2|mssql|maxdb|postgresql|sjis|cp932|big5|gbk|gb18030)\b")
    });
    if unsafe_charset.is_match(sql) {
        return refuse("sql_mode ANSI_QUOTES (and ANSI, ORACLE, DB2, MSSQL, MAXDB, POSTGRESQL, which imply it), NO_BACKSLASH_ESCAPES and the sjis, cp932, big5, gbk and gb18030 character sets are not supported through gatehouse");
    }
    if c.statements.iter().filter(|f| !f.nested).count() > 1 {
        return refuse("change sql_mode or the character set in a statement of its own");
    }
    let value = VALUE.get_or_init(|| {
        gatehouse_core::static_regex(r#"(?i)(?:sql_mode|character_set_[a-z_]+|collation_connection)\s*:?=\s*('[^']*'|"[^"]*"|[^\s,;]+)|\b(?:names|charset|character\s+set)\s+('[^']*'|"[^"]*"|[^\s,;]+)"#)
    });
    for caps in value.captures_iter(sql) {
        let v = caps
            .get(1)
            .or_else(|| caps.get(2))
            .map(|m| m.as_str())
            .unwrap_or_default();
        // A quoted value or a name; not a number (`sql_mode = 4` is
        // ANSI_QUOTES as a bit mask), not hex, not an expression.
        let name = v.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && !v.to_ascii_lowercase().starts_with("0x")
            && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        let quoted = (v.starts_with('\'') || v.starts_with('"'))
            && v.len() >= 2
            && v.ends_with(&v[..1])
            && v[1..v.len() - 1]
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ',');
        let literal = quoted || name;
        if !literal {
            return refuse("set sql_mode and the character set to literal values, not variables or expressions");
        }
    }
    None
}

impl Proxy {
    async fn run(&mut self, grant_end: BoxFuture<'static, String>) -> String {
        tokio::pin!(grant_end);
        loop {
            if let Err(e) = self.flush().await {
                return format!("client write failed: {e}");
            }
            let next = tokio::select! {
                p = self.client.next() => p,
                reason = &mut grant_end => return self.end_at_deadline(reason).await,
            };
            let pkt = match next {
                Ok(Some(p)) => p,
                Ok(None) => return "client disconnected".into(),
                Err(StreamError::Frame(e)) => {
                    self.seq = 0;
                    self.send_err(1153, "08S01", &format!("gatehouse closed the session: {e}"));
                    return format!("client protocol error: {e}");
                }
                Err(e) => return format!("client read failed: {e}"),
            };
            self.stats.bytes_from_client += pkt.payload.len() as u64 + 4;
            self.seq = pkt.last_seq.wrapping_add(1);
            // The deadline also ends a statement still running (a long
            // query, a big result): its session ends, and says so. A
            // statement waiting for approval ends on its own then (core
            // withdraws it and the client is told so); the session ends
            // right after.
            let holding = self.ctx.holding.clone();
            let mut ended = None;
            let handled = {
                let handle = self.handle(pkt);
                tokio::pin!(handle);
                loop {
                    tokio::select! {
                        step = &mut handle => break Ok(step),
                        reason = &mut grant_end, if ended.is_none() => {
                            if holding.load(std::sync::atomic::Ordering::SeqCst) {
                                ended = Some(reason);
                            } else {
                                break Err(reason);
                            }
                        }
                    }
                }
            };
            let step = match handled {
                Ok(step) => step,
                Err(reason) => return self.end_at_deadline(reason).await,
            };
            if let Some(reason) = ended {
                return self.end_at_deadline(reason).await;
            }
            match step {
                Ok(true) => {}
                Ok(false) => return "client quit".into(),
                Err(reason) => return reason,
            }
        }
    }

    /// The session's deadline came (token expiry, grant end, the gateway
    /// stopping): tell the client why, then end.
    async fn end_at_deadline(&mut self, reason: String) -> String {
        self.seq = 0;
        self.send_err(
            4031,
            "HY000",
            &format!("gatehouse ended this session: {reason}"),
        );
        let _ = self.flush().await;
        reason
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.client.get_mut().write_all(&self.out).await?;
            self.stats.bytes_to_client += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    async fn maybe_flush(&mut self) -> Result<(), String> {
        if self.out.len() >= 64 * 1024 {
            self.flush()
                .await
                .map_err(|e| format!("client write failed: {e}"))?;
        }
        Ok(())
    }

    /// Queue one packet to the client.
    fn send(&mut self, payload: &[u8]) {
        encode_packet(&mut self.out, &mut self.seq, payload);
    }

    fn send_err(&mut self, code: u16, sqlstate: &str, message: &str) {
        self.send(&packets::err(code, sqlstate, message));
    }

    /// Send a command to the target (a fresh sequence, number 0).
    async fn forward(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        let mut seq = 0;
        encode_packet(&mut out, &mut seq, payload);
        self.target
            .get_mut()
            .write_all(&out)
            .await
            .map_err(|e| self.target_failed(&e.to_string()))
    }

    fn target_failed(&mut self, e: &str) -> String {
        // 1158 ER_NET_READ_ERROR: a server-range number (client-range ones
        // such as 2013 make MariaDB's client report a malformed packet).
        self.send_err(
            1158,
            "08S01",
            &format!("gatehouse lost the connection to the database: {e}"),
        );
        format!("target connection failed: {e}")
    }

    async fn target_next(&mut self) -> Result<Packet, String> {
        match self.target.next().await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(self.target_failed("the target closed the connection")),
            Err(e) => Err(self.target_failed(&e.to_string())),
        }
    }

    fn protocol_error(&mut self, e: DecodeError) -> String {
        self.send_err(
            1047,
            "08S01",
            &format!("gatehouse closed the session: malformed command ({e})"),
        );
        format!("client protocol error: {e}")
    }

    /// Handle one client command; `Ok(false)` ends the session cleanly.
    async fn handle(&mut self, pkt: Packet) -> Step {
        let payload = pkt.payload;
        let Some(&cmd) = payload.first() else {
            return Err(self.protocol_error(DecodeError::Truncated("command")));
        };
        if self.lexing_changed && cmd != com::QUIT {
            self.send_err(
                ER_DENIED,
                "42000",
                "gatehouse ended this session: its sql_mode now includes NO_BACKSLASH_ESCAPES, so the gateway would read statements differently from the server; reconnect without it",
            );
            return Ok(false);
        }
        match cmd {
            com::QUIT => {
                let _ = self.forward(&payload).await;
                Ok(false)
            }
            com::QUERY => {
                let sql = String::from_utf8_lossy(&payload[1..]).into_owned();
                self.query(&payload, sql).await
            }
            com::INIT_DB => self.init_db(&payload).await,
            com::FIELD_LIST => self.field_list(&payload).await,
            com::STMT_PREPARE => {
                let sql = String::from_utf8_lossy(&payload[1..]).into_owned();
                self.prepare(&payload, sql).await
            }
            com::STMT_EXECUTE => self.execute(&payload).await,
            com::STMT_FETCH => self.fetch(&payload).await,
            com::STMT_SEND_LONG_DATA => {
                let id = packets::statement_id(&payload).map_err(|e| self.protocol_error(e))?;
                match self.statements.get_mut(&id) {
                    // Approvers must see every value that runs: long data for
                    // a held statement is kept back and its execution refused.
                    Some(stmt) if stmt.held.is_some() => stmt.long_data = true,
                    Some(_) => self.forward(&payload).await?,
                    None => {}
                }
                Ok(true)
            }
            com::STMT_CLOSE => {
                let id = packets::statement_id(&payload).map_err(|e| self.protocol_error(e))?;
                if self.statements.remove(&id).is_some() {
                    self.forward(&payload).await?;
                }
                Ok(true)
            }
            com::STMT_RESET => {
                let id = packets::statement_id(&payload).map_err(|e| self.protocol_error(e))?;
                let Some(stmt) = self.statements.get_mut(&id) else {
                    self.unknown_statement(id);
                    return Ok(true);
                };
                stmt.long_data = false;
                self.forward(&payload).await?;
                self.relay_one().await
            }
            com::PING | com::STATISTICS | com::SET_OPTION => {
                self.forward(&payload).await?;
                self.relay_one().await
            }
            com::RESET_CONNECTION => {
                self.statements.clear();
                self.sql_prepared.clear();
                self.forward(&payload).await?;
                self.relay_one().await
            }
            com::PROCESS_KILL => {
                let id = packets::statement_id(&payload).map_err(|e| self.protocol_error(e))?;
                self.kill(&format!("KILL {id}"), false, id).await
            }
            other => {
                self.stats.blocked += 1;
                let what = match other {
                    com::CHANGE_USER => {
                        "COM_CHANGE_USER (reconnect instead: your token is the identity)"
                    }
                    com::DEBUG => "COM_DEBUG",
                    0x12 | 0x15 | 0x1e => "replication commands",
                    _ => "this command",
                };
                self.send_err(
                    1047,
                    "08S01",
                    &format!("gatehouse does not relay {what} (command 0x{other:02x})"),
                );
                Ok(true)
            }
        }
    }

    /// Watch the server status for a change in how the session reads
    /// quotes: the gateway could no longer judge statements as the server
    /// reads them, so the session is ended at its next command.
    fn note_status(&mut self, status: u16) {
        if status & status::NO_BACKSLASH_ESCAPES != 0 {
            self.lexing_changed = true;
        }
    }

    /// Relay a one-packet response (OK, ERR, EOF or a string).
    async fn relay_one(&mut self) -> Step {
        let p = self.target_next().await?;
        if p.payload.first() == Some(&0x00) {
            if let Ok(ok) = packets::parse_ok(&p.payload) {
                self.note_status(ok.status);
            }
        }
        self.relay_err_or(&p.payload);
        Ok(true)
    }

    /// Send a target packet, masking it first if it is an ERR.
    fn relay_err_or(&mut self, payload: &[u8]) -> Option<packets::Err> {
        if payload.first() == Some(&0xff) && self.withhold_errors {
            // Error text can quote values (`XPATH syntax error: '…'`); for a
            // command that reads masked columns only the code goes back.
            if let Ok(e) = packets::parse_err(payload) {
                let message = format!(
                    "the database refused this statement (error {}); its message is withheld because the statement reads columns masked for you",
                    e.code
                );
                self.send_err(e.code, &e.sqlstate, &message);
                return Some(packets::Err { message, ..e });
            }
        }
        if payload.first() == Some(&0xff) {
            let mut counts = MaskCounts::default();
            let masked = masking::mask_err(&self.ctx.pipeline.masker, payload, &mut counts);
            let bytes = masked.as_deref().unwrap_or(payload).to_vec();
            self.send(&bytes);
            packets::parse_err(&bytes).ok()
        } else {
            self.send(payload);
            None
        }
    }

    fn unknown_statement(&mut self, id: u32) {
        self.send_err(
            1243,
            "HY000",
            &format!("Unknown prepared statement handler ({id}) given to gatehouse: prepare it again through the gateway"),
        );
    }

    /// Classify a command, resolving SQL-level EXECUTE to the body it runs.
    /// Returns the classification to decide on, per result the facts its
    /// columns follow, and a refusal only the adapter can see.
    fn resolve(&self, sql: &str) -> (Classification, Vec<Option<StatementFacts>>, Option<Verdict>) {
        let base = self.ctx.pipeline.classify(sql, Dialect::MySql);
        let r = resolve_executes(
            &base,
            |name| self.sql_prepared.get(&name.to_ascii_lowercase()).cloned(),
            |f| Ok(Some(f.clone())),
        );
        (r.decide_on, r.outputs, r.refusal)
    }

    /// Verdict for a command: policy, plus MySQL forms the gateway refuses
    /// whatever the policy, because it could not enforce masking or
    /// identity through them.
    fn verdict_for(
        &self,
        sql: &str,
        classification: &Classification,
        refusal: Option<Verdict>,
    ) -> Verdict {
        let ctx = &self.ctx;
        let mut verdict = ctx
            .pipeline
            .decide_in(&ctx.scope, sql, classification, refusal);
        let w = words(sql);
        let has = |k: &str| w.iter().any(|x| x == k);
        let copy = classification
            .statements
            .iter()
            .any(|f| f.kind == StatementKind::Copy);
        if (copy || has("into")) && (has("outfile") || has("dumpfile")) {
            verdict = verdict.stricter(Verdict::Block {
                rule: "mysql-file-export".into(),
                message: "SELECT … INTO OUTFILE/DUMPFILE writes results to the server's disk, where gatehouse cannot mask them; select the rows to your client instead".into(),
            });
        }
        if has("load") && has("local") && has("infile") {
            verdict = verdict.stricter(Verdict::Block {
                rule: "mysql-local-infile".into(),
                message: "LOAD DATA LOCAL INFILE is disabled through gatehouse (the client-file capability is not offered); load server-side files or use INSERT".into(),
            });
        }
        if let Some(block) = session_syntax_refusal(sql, classification) {
            verdict = verdict.stricter(block);
        }
        if classification
            .statements
            .iter()
            .any(|f| f.keyword.starts_with("KILL"))
        {
            verdict = verdict.stricter(Verdict::Block {
                rule: "mysql-kill".into(),
                message: "through gatehouse, KILL takes the form KILL [QUERY | CONNECTION] id, with an id this gateway gave you".into(),
            });
        }
        verdict
    }

    /// `SHOW WARNINGS`, `SHOW ERRORS` and `GET DIAGNOSTICS` report the
    /// messages of the statement before them, which quote values
    /// (`Truncated incorrect INTEGER value: '…'`): after a statement that
    /// read columns masked for this caller they are refused, as its own
    /// error text was withheld. Any other statement starts a new set of
    /// diagnostics.
    fn diagnostics_refusal(&mut self, sql: &str, c: &Classification) -> Option<Verdict> {
        let w = words(sql);
        let first_two = (
            w.first().map(String::as_str).unwrap_or_default(),
            w.get(1).map(String::as_str).unwrap_or_default(),
        );
        let diagnostics = matches!(
            first_two,
            ("show", "warnings" | "errors" | "count") | ("get", _)
        );
        if !diagnostics {
            self.diagnostics_masked = self.reads_masked(c);
            return None;
        }
        self.diagnostics_masked.then(|| Verdict::Block {
            rule: "masked-columns-stay-masked".into(),
            message: "the warnings and errors of the previous statement are withheld because it read columns masked for you".into(),
        })
    }

    /// Whether `c` reads a table with column rules active for this caller.
    fn reads_masked(&self, c: &Classification) -> bool {
        let ctx = &self.ctx;
        ctx.pipeline.policy.column_rules_touch(
            &ctx.scope.identity,
            &ctx.scope.connection,
            c.statements.iter().flat_map(|f| f.tables_read.iter()),
        )
    }

    /// The `command` event of a statement about to be admitted.
    fn command(
        &mut self,
        sql: &str,
        shown: &str,
        classification: &Classification,
        verdict: &Verdict,
        protocol: &str,
    ) -> Command {
        self.next_command += 1;
        self.stats.commands += 1;
        let ctx = &self.ctx;
        let mut command = ctx.pipeline.sql_command(
            &ctx.scope,
            self.next_command,
            protocol,
            sql,
            classification,
            verdict.clone(),
        );
        // Approvers never see a credential the statement carries.
        command.shown = redact_secrets(shown).into_owned();
        command
    }

    /// Run a decided command through core's lifecycle (record, refuse, or
    /// hold and wait with the client watched). `Ok(Some(id))`: forward it
    /// now; `Ok(None)`: refused (the ERR is queued); `Err`: the session ends.
    async fn admit(
        &mut self,
        sql: &str,
        shown: &str,
        classification: &Classification,
        verdict: &Verdict,
        protocol: &str,
    ) -> Result<Option<u64>, String> {
        let command = self.command(sql, shown, classification, verdict, protocol);
        let pipeline = self.ctx.pipeline.clone();
        let ctx = self.ctx.clone();
        let admitted = if matches!(verdict, Verdict::Hold { .. }) {
            let mut watch = admission::HeldClient::new(self);
            pipeline.admit(&ctx.scope, command, Some(&mut watch)).await
        } else {
            pipeline.admit(&ctx.scope, command, None).await
        };
        let refusal = match admitted {
            Ok(a) => return Ok(Some(a.command_id)),
            Err(r) => r,
        };
        if !matches!(refusal, Refusal::NotRecorded(_)) {
            self.stats.blocked += 1;
        }
        match admission::refusal_error(&refusal) {
            Some((code, sqlstate, message)) => {
                self.send_err(code, sqlstate, &message);
                Ok(None)
            }
            None => Err("client disconnected while its statement was held".into()),
        }
    }

    async fn query(&mut self, payload: &[u8], sql: String) -> Step {
        if let Some((query, id)) = parse_kill(&sql) {
            return self.kill(&sql, query, id).await;
        }
        let read = mysql_executable_comments(&sql, &self.ctx.server).into_owned();
        let (classification, outputs, refusal) = self.resolve(&read);
        let mut verdict = self.verdict_for(&read, &classification, refusal);
        if let Some(block) = self.diagnostics_refusal(&read, &classification) {
            verdict = verdict.stricter(block);
        }
        self.withhold_errors = self.reads_masked(&classification);
        let Some(id) = self
            .admit(&sql, &sql, &classification, &verdict, "text")
            .await?
        else {
            return Ok(true);
        };
        self.remember_sql_prepares(&classification);
        self.forward(payload).await?;
        let unit = CommandUnit {
            id,
            started: Instant::now(),
        };
        self.relay_results(RowFormat::Text, &outputs, unit, None)
            .await
    }

    /// Keep the bodies of `PREPARE name FROM '…'` so a later EXECUTE is
    /// checked against what it runs.
    fn remember_sql_prepares(&mut self, c: &Classification) {
        for (i, f) in c.statements.iter().enumerate() {
            if f.kind == StatementKind::Prepare && !f.nested {
                let body: Vec<StatementFacts> = c.statements[i + 1..]
                    .iter()
                    .take_while(|b| b.nested)
                    .cloned()
                    .collect();
                if let Some(name) = &f.prepared_name {
                    self.sql_prepared.insert(
                        name.to_ascii_lowercase(),
                        Classification {
                            statements: body,
                            parse_error: c.parse_error.clone(),
                        },
                    );
                }
            }
        }
    }

    async fn init_db(&mut self, payload: &[u8]) -> Step {
        let db = String::from_utf8_lossy(&payload[1..]).into_owned();
        let sql = format!("USE `{}`", db.replace('`', "``"));
        if db != self.ctx.database && db != self.ctx.scope.connection {
            self.stats.blocked += 1;
            let msg = format!(
                "connection \"{}\" is bound to database \"{}\"; to reach \"{db}\", connect to the gatehouse connection of that name",
                self.ctx.scope.connection, self.ctx.database
            );
            self.send_err(1044, "42000", &msg);
            return Ok(true);
        }
        let classification = self.ctx.pipeline.classify(&sql, Dialect::MySql);
        let allowed = Verdict::Allow { rule: None };
        if self
            .admit(&sql, &sql, &classification, &allowed, "init_db")
            .await?
            .is_none()
        {
            return Ok(true);
        }
        let mut fwd = vec![com::INIT_DB];
        fwd.extend_from_slice(self.ctx.database.clone().as_bytes());
        self.forward(&fwd).await?;
        self.relay_one().await
    }

    async fn field_list(&mut self, payload: &[u8]) -> Step {
        let mut r = Reader::new(&payload[1..], "field list");
        let table = String::from_utf8_lossy(r.nul_or_eof_str()).into_owned();
        let sql = format!("SELECT * FROM `{}` LIMIT 0", table.replace('`', "``"));
        let classification = self.ctx.pipeline.classify(&sql, Dialect::MySql);
        let verdict = self.verdict_for(&sql, &classification, None);
        let Some(_) = self
            .admit(&sql, &sql, &classification, &verdict, "field_list")
            .await?
        else {
            return Ok(true);
        };
        self.forward(payload).await?;
        // Column definitions up to EOF, or an ERR.
        loop {
            let p = self.target_next().await?;
            if packets::is_eof(&p.payload) || p.payload.first() == Some(&0xff) {
                self.relay_err_or(&p.payload);
                return Ok(true);
            }
            self.send(&p.payload);
        }
    }

    /// `KILL [QUERY] id`: ids are the gateway's, mapped to the target's
    /// own; only the caller's own sessions on this connection. A KILL QUERY
    /// of a session waiting for approval withdraws its request.
    async fn kill(&mut self, sql: &str, query: bool, id: u32) -> Step {
        let classification = self.ctx.pipeline.classify(sql, Dialect::MySql);
        let target = self.ctx.kills.get(id);
        let verdict = match &target {
            Some(t)
                if t.connection == self.ctx.scope.connection
                    && t.subject == self.ctx.scope.identity.subject =>
            {
                Verdict::Allow { rule: None }
            }
            Some(_) => Verdict::Block {
                rule: "mysql-kill".into(),
                message: format!("you are not the owner of thread {id}"),
            },
            None => Verdict::Block {
                rule: "mysql-kill".into(),
                message: format!("unknown thread id: {id}"),
            },
        };
        let Some(cmd) = self
            .admit(sql, sql, &classification, &verdict, "text")
            .await?
        else {
            return Ok(true);
        };
        let Some(t) = target else {
            return Ok(true);
        };
        if query && t.holding.load(std::sync::atomic::Ordering::SeqCst) {
            // Nothing runs on the target while a statement is held: withdraw
            // the request only (a KILL QUERY sent to an idle target session
            // could interrupt that session's next statement instead).
            t.held.notify_waiters();
            self.send(&packets::ok(&packets::Ok {
                status: status::AUTOCOMMIT,
                ..Default::default()
            }));
            return Ok(true);
        }
        let mut fwd = vec![com::QUERY];
        fwd.extend_from_slice(
            format!("KILL {}{}", if query { "QUERY " } else { "" }, t.target_id).as_bytes(),
        );
        self.forward(&fwd).await?;
        let unit = CommandUnit {
            id: cmd,
            started: Instant::now(),
        };
        self.relay_results(RowFormat::Text, &[], unit, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_forms() {
        assert_eq!(parse_kill("KILL 12"), Some((false, 12)));
        assert_eq!(parse_kill("kill query 7;"), Some((true, 7)));
        assert_eq!(parse_kill("KILL CONNECTION 9"), Some((false, 9)));
        assert_eq!(parse_kill("KILL USER bob"), None);
        assert_eq!(parse_kill("select 1"), None);
    }

    #[test]
    fn execute_parameters_are_shown() {
        // stmt 1, no cursor, 1 iteration, 2 params: bitmap, new types,
        // LONGLONG 7 and VAR_STRING 'x'.
        let mut p = vec![com::STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        p.push(0); // null bitmap
        p.push(1); // new params bound
        p.extend_from_slice(&[packets::ty::LONGLONG, 0, packets::ty::VAR_STRING, 0]);
        p.extend_from_slice(&7i64.to_le_bytes());
        p.extend_from_slice(&[1, b'x']);
        let mut types = Vec::new();
        assert_eq!(
            show_params(&p, 2, &mut types).as_deref(),
            Some("?1 = '7', ?2 = 'x'")
        );
    }
}
