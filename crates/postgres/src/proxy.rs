//! The proxy loop of one session: decide on the way in, mask on the way out.
//!
//! Two tasks share a session. The *client pump* reads the client's messages,
//! classifies and decides each command, records it, and forwards what is
//! allowed. The *server pump* reads the target's responses, masks them and
//! writes them to the client. For every message that will get a response,
//! the client pump queues a [`Pending`] entry before forwarding it, so the
//! server pump knows which statement (and therefore which mask plan) each
//! response belongs to. Responses the gateway makes up itself (a block, a
//! refused command) travel through the same queue, so they reach the client
//! exactly where the target's response would have been.

mod admission;

use crate::codec::backend::{self, Field, Notice};
use crate::codec::frontend::{self, Target};
use crate::codec::Frame;
use crate::io::FrameReader;
use crate::masking::{self, RowPlan};
use crate::session::{ClientIo, SessionContext};
use bytes::BytesMut;
use gatehouse_core::approval::quote_for_approver as quoted;
use gatehouse_core::classify::syntax::{
    may_change_lexing, pg_backslash_ambiguous, pg_encoding_change_refusal, pg_standard_strings,
};
use gatehouse_core::classify::{
    Classification, CopyDirection, Dialect, StatementFacts, StatementKind,
};
use gatehouse_core::events::{CommandEvent, CommandResult};
use gatehouse_core::lifecycle::{Command, Refusal};
use gatehouse_core::mask::MaskCounts;
pub use gatehouse_core::pipeline::SessionStats;
use gatehouse_core::pipeline::{resolve_executes, BoxFuture};
use gatehouse_core::Verdict;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A prepared statement as the gateway understands it.
struct Statement {
    sql: String,
    classification: Arc<Classification>,
    /// The statement whose result columns the rows follow (for EXECUTE, the
    /// prepared body).
    output_facts: Option<StatementFacts>,
    /// Result columns, once the target has described them.
    fields: Mutex<Option<Vec<Field>>>,
    /// The hold verdict when running it needs approval (asked at Execute,
    /// once the parameters are known).
    held: Option<Verdict>,
    /// Parameter type OIDs (from Parse, then the target's
    /// ParameterDescription), so approvers see bound values decoded.
    param_types: Mutex<Vec<u32>>,
}

/// The session's prepared statements, one namespace as in PostgreSQL
/// (protocol-level Parse and SQL-level PREPARE share it), shared by both
/// pumps so the map follows what the target actually accepted: a Parse the
/// target refuses is rolled back, and a SQL PREPARE or DEALLOCATE takes
/// effect only when the target confirms it.
type Prepared = Arc<Mutex<HashMap<String, Arc<Statement>>>>;

/// A change to [`Prepared`] that waits for the target's CommandComplete.
#[derive(Clone)]
enum PreparedEffect {
    /// `PREPARE name AS …` succeeded.
    Add(String, Arc<Statement>),
    /// `DEALLOCATE name` succeeded.
    Remove(String),
    /// `DEALLOCATE ALL` or `DISCARD ALL` succeeded.
    Clear,
}

fn lock_prepared(p: &Prepared) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Statement>>> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Portal {
    statement: Arc<Statement>,
    formats: Vec<i16>,
    /// The bound parameters as approvers see them (held statements only).
    params_shown: Option<String>,
}

/// Per-command accounting, shared by the unit that produces its results.
struct CommandUnit {
    id: u64,
    started: Instant,
}

/// What the server pump should expect next from the target.
enum Pending {
    /// A simple Query: results for each statement, then ReadyForQuery.
    Query {
        unit: CommandUnit,
        statements: Vec<Option<StatementFacts>>,
        sql: String,
        /// Prepared-statement changes, by top-level statement index.
        effects: Vec<(usize, PreparedEffect)>,
    },
    /// A statement the gateway sent to fail the client's open transaction
    /// with a refusal's error (see [`ClientPump::refuse_query`]): its error
    /// and ReadyForQuery go to the client as the refusal's answer.
    FailTransaction,
    /// A Parse; if the target refuses it, `previous` is put back.
    Parse {
        name: String,
        previous: Option<Arc<Statement>>,
    },
    Bind,
    DescribeStatement(Option<Arc<Statement>>),
    DescribePortal(Option<Arc<Portal>>),
    Execute {
        unit: CommandUnit,
        portal: Arc<Portal>,
        /// Prepared-statement changes, applied when the target confirms.
        effects: Vec<(usize, PreparedEffect)>,
    },
    Close,
    Sync,
    /// A Parse the gateway sent to fail the client's extended-protocol
    /// batch with a refusal (see [`ClientPump::fail_batch`]): the target's
    /// error for it is answered with `bytes`. Dropped, like the target's
    /// own skipped responses, if the batch fails earlier.
    FailBatch {
        bytes: Vec<u8>,
    },
    /// A gateway-made response. `ready` appends ReadyForQuery with the
    /// current transaction status; `batch` ones are dropped if the target
    /// fails the same extended-protocol batch first (one error per batch).
    Synthetic {
        bytes: Vec<u8>,
        ready: bool,
        batch: bool,
    },
}

/// What a LISTENer with column rules sees in place of a payload.
const NOTIFICATION_WITHHELD: &str = "[withheld by gatehouse: column rules apply to you on this connection, and a notification's payload cannot be traced to the columns it came from]";

/// A Flush message, sent to the target before a held Execute waits.
const FLUSH: [u8; 5] = [b'H', 0, 0, 0, 4];

/// `900` → `15m`, for the client's notice.
fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Run the session until either side closes.
pub async fn run(
    ctx: Arc<SessionContext>,
    client: Box<dyn ClientIo>,
    client_leftover: BytesMut,
    target: TcpStream,
    target_leftover: BytesMut,
    grant_end: Option<BoxFuture<'static, String>>,
) -> SessionStats {
    let (client_r, client_w) = tokio::io::split(client);
    let (target_r, target_w) = target.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let max = ctx.settings.max_message_len;
    let prepared: Prepared = Arc::default();
    let mut client_pump = ClientPump {
        ctx: ctx.clone(),
        reader: FrameReader::new(client_r, client_leftover, max),
        target: target_w,
        tx,
        prepared: prepared.clone(),
        portals: HashMap::new(),
        cursors: HashMap::new(),
        discard_until_sync: false,
        sent_syncs: 0,
        batch_may_change: false,
        unsynced: false,
        next_command: 0,
        stats: SessionStats::default(),
        out: Vec::with_capacity(8192),
    };
    let mut server_pump = ServerPump {
        ctx: ctx.clone(),
        reader: FrameReader::new(target_r, target_leftover, max),
        client: client_w,
        rx,
        queue: VecDeque::new(),
        status: b'I',
        out: Vec::with_capacity(64 * 1024),
        result: ResultState::default(),
        bytes_to_client: 0,
        rx_open: true,
        prepared,
    };
    let grant_end = grant_end.unwrap_or_else(|| Box::pin(std::future::pending()));
    let mut revoked = None;
    let (client_end, server_end) = {
        let client_fut = client_pump.run();
        let server_fut = server_pump.run();
        tokio::pin!(client_fut, server_fut, grant_end);
        tokio::select! {
            c = &mut client_fut => {
                // Let the target finish answering what was already sent.
                let s = tokio::time::timeout(std::time::Duration::from_secs(5), &mut server_fut).await;
                (c, s.unwrap_or_else(|_| "timed out draining target".to_string()))
            }
            s = &mut server_fut => (String::new(), s),
            reason = &mut grant_end => {
                revoked = Some(reason.clone());
                (reason, String::new())
            }
        }
    };
    if let Some(reason) = revoked {
        // The access grant that let this caller in has ended: so does the
        // session, with the reason in the client's own protocol.
        let bytes = Notice::new(
            "FATAL",
            "57P01",
            &format!("gatehouse ended this session: {reason}"),
            None,
        )
        .encode(b'E');
        let _ = server_pump.client.write_all(&bytes).await;
        let _ = server_pump.client.shutdown().await;
    }
    let mut stats = std::mem::take(&mut client_pump.stats);
    stats.bytes_to_client = server_pump.bytes_to_client;
    stats.end_reason = if client_end.is_empty() {
        server_end
    } else {
        client_end
    };
    stats
}

fn error_bytes(sqlstate: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    Notice::new("ERROR", sqlstate, message, hint).encode(b'E')
}

/// The error a client sees for a verdict that stops its command.
/// The rule of a refused `PREPARE` of a name in use: answered with the
/// server's own error (42P05, its text, no hint), as the server would.
const DUPLICATE_PREPARED: &str = "duplicate-prepared-statement";

fn verdict_error(verdict: &Verdict) -> Option<Vec<u8>> {
    match verdict {
        Verdict::Allow { .. } => None,
        Verdict::Block { rule, message } if rule == DUPLICATE_PREPARED => {
            Some(error_bytes("42P05", message, None))
        }
        Verdict::Block { rule, message } => Some(error_bytes(
            block_sqlstate(rule),
            &format!("blocked by gatehouse rule \"{rule}\": {message}"),
            Some("this statement was not sent to the database; the attempt is recorded in the audit trail"),
        )),
        Verdict::Hold { .. } => None,
    }
}

/// A `DO` block that makes the target raise the error in `bytes` (an
/// ErrorResponse the gateway made): same SQLSTATE, message and hint. The
/// texts are dollar-quoted with `$` removed, so nothing in them can end the
/// quote; the code must be five letters or digits.
fn raise_statement(bytes: &[u8]) -> Option<String> {
    let notice = backend::parse_notice(bytes.get(5..)?).ok()?;
    let code = notice.get(b'C').unwrap_or("42501");
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // Printable ASCII only: the target may read other bytes in a client
    // encoding of the moment.
    let text = |k: u8| {
        notice
            .get(k)
            .unwrap_or("")
            .chars()
            .map(|c| {
                if (c.is_ascii_graphic() && c != '$') || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect::<String>()
    };
    Some(format!(
        "DO $gatehouse$BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = $m${}$m$, HINT = $m${}$m$; END$gatehouse$",
        text(b'M'),
        text(b'H')
    ))
}

/// The SQLSTATE of a block: where the gateway refuses what the server
/// would have refused too, the server's own code, so code that catches it
/// (EXECUTE of an unknown statement's 26000) behaves as it would directly; otherwise
/// insufficient_privilege.
fn block_sqlstate(rule: &str) -> &'static str {
    match rule {
        DUPLICATE_PREPARED => "42P05",
        "unknown-prepared-statement" => "26000",
        "unknown-cursor" => "34000",
        _ => "42501",
    }
}

/// A statement's text on one line, for notes beside a command.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A binary-format parameter decoded by its type where the type is known
/// (from Parse or the target's ParameterDescription); otherwise its bytes
/// in hex, never a guess.
fn show_binary(oid: u32, b: &[u8]) -> String {
    let fixed = |n: usize| b.len() == n;
    let decoded = match oid {
        16 if fixed(1) => Some(format!("{}", b[0] != 0)),
        21 if fixed(2) => Some(i16::from_be_bytes([b[0], b[1]]).to_string()),
        23 if fixed(4) => Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string()),
        20 if fixed(8) => {
            Some(i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).to_string())
        }
        700 if fixed(4) => Some(f32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string()),
        701 if fixed(8) => {
            Some(f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).to_string())
        }
        // text, varchar, bpchar, name, json
        25 | 1043 | 1042 | 19 | 114 => std::str::from_utf8(b).ok().map(quoted),
        _ => None,
    };
    match decoded {
        Some(v) => v,
        None => format!(
            "binary ({} bytes, type {oid}) 0x{}",
            b.len(),
            hex::encode(b)
        ),
    }
}

/// How approvers see bound parameters: text-format values quoted, binary
/// ones decoded by type where it is known.
fn show_params(formats: &[i16], types: &[u32], params: &[Option<&[u8]>]) -> String {
    let shown: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i).is_some_and(|f| *f == 1),
            };
            let value = match v {
                None => "NULL".to_string(),
                Some(b) if !binary => quoted(&String::from_utf8_lossy(b)),
                Some(b) => show_binary(types.get(i).copied().unwrap_or(0), b),
            };
            format!("${} = {value}", i + 1)
        })
        .collect();
    shown.join(", ")
}

struct ClientPump {
    ctx: Arc<SessionContext>,
    reader: FrameReader<ReadHalf<Box<dyn ClientIo>>>,
    target: OwnedWriteHalf,
    tx: mpsc::UnboundedSender<Pending>,
    prepared: Prepared,
    portals: HashMap<String, Arc<Portal>>,
    /// Declared cursors' statements by name, for masking what FETCH returns.
    cursors: HashMap<String, StatementFacts>,
    discard_until_sync: bool,
    /// Query and Sync messages forwarded: the target answers each with
    /// ReadyForQuery, after reporting any setting it changed.
    sent_syncs: u64,
    /// A statement executed since the last Sync may have changed how the
    /// target lexes (reported only at the next ReadyForQuery).
    batch_may_change: bool,
    /// Extended-protocol messages were forwarded since the last Sync or
    /// Query: the target holds their answers until a sync point.
    unsynced: bool,
    next_command: u64,
    stats: SessionStats,
    out: Vec<u8>,
}

impl ClientPump {
    async fn run(&mut self) -> String {
        loop {
            // Forward in batches: write to the target only when no further
            // client message is already buffered.
            let next = match self.reader.buffered() {
                Ok(Some(f)) => Ok(Some(f)),
                Ok(None) => {
                    if let Err(e) = self.flush().await {
                        return format!("target write failed: {e}");
                    }
                    self.reader.next().await
                }
                Err(e) => Err(e),
            };
            let frame = match next {
                Ok(Some(f)) => f,
                Ok(None) => return "client disconnected".into(),
                Err(e) => {
                    self.fatal("08P01", &format!("gatehouse closed the session: {e}"));
                    return format!("client protocol error: {e}");
                }
            };
            self.stats.bytes_from_client += frame.raw.len() as u64;
            match self.handle(frame).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = self.flush().await;
                    return "client terminated".into();
                }
                Err(reason) => return reason,
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.target.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn push(&self, p: Pending) {
        // The server pump outlives us; a send error means it is gone and the
        // session is ending anyway.
        let _ = self.tx.send(p);
    }

    fn fatal(&self, sqlstate: &str, message: &str) {
        let bytes = Notice::new("FATAL", sqlstate, message, None).encode(b'E');
        self.push(Pending::Synthetic {
            bytes,
            ready: false,
            batch: false,
        });
    }

    /// Handle one client message; `Ok(false)` ends the session cleanly.
    async fn handle(&mut self, frame: Frame) -> Result<bool, String> {
        let malformed = |e: crate::codec::DecodeError| e.to_string();
        match frame.tag {
            b'Q' if self.discard_until_sync => {
                // The target would skip it too, waiting for Sync.
            }
            b'Q' => {
                let sql = match frontend::parse_query(&frame.body) {
                    Ok(s) => s.to_string(),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.simple_query(frame, sql, "simple").await;
            }
            b'P' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let parse = match frontend::parse_parse(&frame.body) {
                    Ok(p) => (p.name.to_string(), p.query.to_string(), p.param_types),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.parse(frame, parse.0, parse.1, parse.2).await;
            }
            b'B' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let bind = match frontend::parse_bind(&frame.body) {
                    Ok(b) => b,
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.portals.remove(bind.portal);
                let Some(stmt) = self.known_statement(bind.statement) else {
                    self.refuse_in_batch(&format!(
                        "prepared statement \"{}\" was not prepared through gatehouse (or was refused), so it cannot be checked",
                        bind.statement
                    ));
                    return Ok(true);
                };
                let params_shown = stmt.held.as_ref().map(|_| {
                    let types = stmt
                        .param_types
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    show_params(&bind.param_formats, &types, &bind.params)
                });
                let portal = Arc::new(Portal {
                    statement: stmt,
                    formats: bind.result_formats.clone(),
                    params_shown,
                });
                self.portals.insert(bind.portal.to_string(), portal);
                self.push(Pending::Bind);
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'D' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                match frontend::parse_target(&frame.body, "Describe") {
                    Ok(Target::Statement(name)) => match self.known_statement(name) {
                        Some(stmt) => self.push(Pending::DescribeStatement(Some(stmt))),
                        None => {
                            self.refuse_in_batch(&format!(
                                "prepared statement \"{name}\" is not known to gatehouse"
                            ));
                            return Ok(true);
                        }
                    },
                    Ok(Target::Portal(name)) => match self.portals.get(name).cloned() {
                        Some(portal) => self.push(Pending::DescribePortal(Some(portal))),
                        None => {
                            self.refuse_in_batch(&format!(
                                "portal \"{name}\" is not known to gatehouse"
                            ));
                            return Ok(true);
                        }
                    },
                    Err(e) => return self.protocol_error(malformed(e)),
                }
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'E' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let portal_name = match frontend::parse_execute(&frame.body) {
                    Ok((p, _)) => p.to_string(),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.execute(frame, &portal_name).await;
            }
            b'C' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                match frontend::parse_target(&frame.body, "Close") {
                    Ok(Target::Statement(name)) => {
                        lock_prepared(&self.prepared).remove(name);
                    }
                    Ok(Target::Portal(name)) => {
                        self.portals.remove(name);
                    }
                    Err(e) => return self.protocol_error(malformed(e)),
                }
                self.push(Pending::Close);
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'S' => {
                self.discard_until_sync = false;
                self.sync_point();
                self.push(Pending::Sync);
                self.out.extend_from_slice(&frame.raw);
            }
            b'H' => {
                if !self.discard_until_sync {
                    self.out.extend_from_slice(&frame.raw);
                }
            }
            // COPY FROM STDIN data, relayed as is.
            b'd' | b'c' | b'f' => self.out.extend_from_slice(&frame.raw),
            b'X' => {
                self.out.extend_from_slice(&frame.raw);
                return Ok(false);
            }
            b'F' if self.discard_until_sync => {}
            b'F' => {
                let call = match frontend::parse_function_call(&frame.body) {
                    Ok(c) => c,
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                match crate::fastpath::as_sql(&call) {
                    Ok(sql) => self.simple_query(frame, sql, "fast-path").await,
                    Err(why) => {
                        self.stats.blocked += 1;
                        self.refuse_query(error_bytes(
                            "0A000",
                            &format!("gatehouse refused this: {why}"),
                            Some("call the function with SELECT instead"),
                        ));
                    }
                }
            }
            other => {
                return self.protocol_error(format!("unexpected message type '{}'", other as char));
            }
        }
        Ok(true)
    }

    /// A statement the client may bind: one parsed through the gateway, or a
    /// SQL-level `PREPARE` the target confirmed (one namespace, as in
    /// PostgreSQL).
    fn known_statement(&self, name: &str) -> Option<Arc<Statement>> {
        lock_prepared(&self.prepared).get(name).cloned()
    }

    /// Refuse one extended-protocol message in place: the client gets an
    /// error where the response would be, and the rest of the batch is
    /// skipped up to Sync, as PostgreSQL itself does after an error.
    fn refuse_in_batch(&mut self, message: &str) {
        self.stats.blocked += 1;
        self.fail_batch(error_bytes(
            "26000",
            &format!("gatehouse refused this: {message}"),
            Some("prepare the statement again through the gateway"),
        ));
    }

    /// Whether a refusal must fail the target's side too, as a server
    /// error would: a transaction block is open, or this batch has
    /// already sent the target work.
    fn refusal_must_fail_target(&self) -> bool {
        self.unsynced
            || self
                .ctx
                .transaction
                .load(std::sync::atomic::Ordering::SeqCst)
                == b'T'
    }

    /// End the current extended-protocol batch with `error` in place of the
    /// response, then skip the client's messages up to Sync.
    ///
    /// When the batch has already sent the target work, or a transaction
    /// block is open, a server error would roll that work back (or leave
    /// the transaction failed); so the target is made to fail the batch
    /// itself, with a Parse it cannot accept, and its error is answered
    /// with the refusal. A named statement is used, so the client's
    /// unnamed one is left alone (a Parse that fails creates nothing).
    fn fail_batch(&mut self, error: Vec<u8>) {
        if self.refusal_must_fail_target() {
            self.push(Pending::FailBatch { bytes: error });
            self.out.extend_from_slice(&frontend::parse(
                "gatehouse_refusal",
                "gatehouse refused a statement in this batch",
            ));
            self.unsynced = true;
        } else {
            self.push(Pending::Synthetic {
                bytes: error,
                ready: false,
                batch: true,
            });
        }
        self.discard_until_sync = true;
    }

    fn protocol_error(&mut self, problem: String) -> Result<bool, String> {
        self.fatal("08P01", &format!("gatehouse closed the session: {problem}"));
        Err(format!("client protocol error: {problem}"))
    }

    /// A Sync or Query is being forwarded: the target answers it with
    /// ReadyForQuery, having first reported any setting the batch before it
    /// changed, so nothing is left unsynced.
    fn sync_point(&mut self) {
        self.sent_syncs += 1;
        self.batch_may_change = false;
        self.unsynced = false;
    }

    /// The text to classify for `sql`: as the target will read it under the
    /// session's lexical settings (see [`crate::syntax`]). A text whose
    /// reading depends on them (a backslash in a plain string, non-ASCII
    /// bytes) waits until the target has answered everything sent before
    /// it, so the settings it last reported are the ones it reads with.
    /// After an Execute not yet followed by Sync that may have changed them
    /// (the server reports only at ReadyForQuery), that cannot be known,
    /// for a Parse or a Query alike: the error for the client.
    async fn readable<'a>(&mut self, sql: &'a str) -> Result<Cow<'a, str>, Vec<u8>> {
        let ambiguous = pg_backslash_ambiguous(sql);
        if sql.is_ascii() && !ambiguous {
            return Ok(Cow::Borrowed(sql));
        }
        if self.batch_may_change {
            return Err(error_bytes(
                "0A000",
                "gatehouse reads a statement with non-ASCII text or a backslash in a quoted string only once the server has reported its settings, and a statement earlier in this batch may have changed them",
                Some("send Sync before this statement"),
            ));
        }
        if self.flush().await.is_err() {
            return Err(Vec::new());
        }
        let syntax = &self.ctx.syntax;
        syntax.answered(self.sent_syncs).await;
        if !syntax.encoding_safe() {
            return Err(error_bytes(
                "22023",
                "the session's client_encoding cannot be read by gatehouse, so the statement was not run",
                None,
            ));
        }
        if ambiguous && !syntax.standard_strings() {
            return Ok(Cow::Owned(pg_standard_strings(sql).into_owned()));
        }
        Ok(Cow::Borrowed(sql))
    }

    /// Classify one command text, resolving SQL-level EXECUTE to the body it
    /// runs. Returns the classification to decide on and, per result set,
    /// the facts its columns follow.
    fn resolve(&self, sql: &str) -> (Classification, Vec<Option<StatementFacts>>, Option<Verdict>) {
        let base = self.ctx.pipeline.classify(sql, Dialect::Postgres);
        let mut declared: HashMap<String, StatementFacts> = HashMap::new();
        let r = resolve_executes(
            &base,
            |name| {
                self.known_statement(name)
                    .map(|s| (*s.classification).clone())
            },
            |f| {
                let cursor = f.prepared_name.as_deref().unwrap_or_default();
                if f.keyword.starts_with("DECLARE") {
                    declared.insert(cursor.to_string(), f.clone());
                    Ok(Some(f.clone()))
                } else if f.keyword.starts_with("FETCH") {
                    // FETCH returns the cursor's query's columns.
                    match declared.get(cursor).or_else(|| self.cursors.get(cursor)) {
                        Some(c) => Ok(Some(c.clone())),
                        // A cursor the gateway has not seen declared (one a
                        // function opened, say): its columns cannot be
                        // traced, which matters only to a caller column
                        // rules apply to; for others the detectors read it.
                        None if !self
                            .ctx
                            .pipeline
                            .policy
                            .masks_columns_for(&self.ctx.identity, &self.ctx.connection) =>
                        {
                            Ok(Some(f.clone()))
                        }
                        None => Err(Verdict::Block {
                            rule: "unknown-cursor".into(),
                            message: format!("FETCH from cursor {cursor}: gatehouse has not seen it declared, so it cannot mask its rows"),
                        }),
                    }
                } else {
                    Ok(Some(f.clone()))
                }
            },
        );
        (r.decide_on, r.outputs, r.refusal)
    }

    /// Verdict for a command: policy, plus checks only the adapter can make.
    fn verdict_for(
        &self,
        sql: &str,
        classification: &Classification,
        refusal: Option<Verdict>,
    ) -> Verdict {
        let ctx = &self.ctx;
        let mut verdict =
            ctx.pipeline
                .decide_with(&ctx.identity, &ctx.connection, sql, classification, refusal);
        let binary_copy_out =
            classification.statements.iter().any(|f| {
                f.kind == StatementKind::Copy && f.copy_direction == Some(CopyDirection::Out)
            }) && binary_copy(sql)
                && copies_to_client(sql);
        if binary_copy_out {
            verdict = verdict.stricter(Verdict::Block {
                rule: "binary-copy".into(),
                message: "binary COPY output cannot be masked; use FORMAT text or csv".into(),
            });
        }
        if let Some(message) = pg_encoding_change_refusal(sql) {
            verdict = verdict.stricter(Verdict::Block {
                rule: "pg-session-syntax".into(),
                message,
            });
        }
        verdict
    }

    /// The `command` event of a statement about to be admitted: its number
    /// in the session, what it is, and its verdict.
    fn command(
        &mut self,
        sql: &str,
        classification: &Classification,
        verdict: Verdict,
        protocol: &str,
    ) -> Command {
        self.next_command += 1;
        self.stats.commands += 1;
        let ctx = &self.ctx;
        Command {
            event: CommandEvent {
                command_id: self.next_command,
                protocol: protocol.into(),
                detail: ctx.pipeline.sql_command(
                    &ctx.identity,
                    &ctx.connection,
                    sql,
                    classification,
                ),
                verdict,
                approval_request: None,
            },
            shown: String::new(),
        }
    }

    /// Run `command` through core's lifecycle (record, refuse, or hold and
    /// wait with the client watched); `Err` is the client's answer.
    async fn admit(&mut self, command: Command) -> Result<u64, Vec<u8>> {
        let pipeline = self.ctx.pipeline.clone();
        let ctx = self.ctx.clone();
        let admitted = if matches!(command.event.verdict, Verdict::Hold { .. }) {
            let mut watch = admission::HeldClient::new(self);
            pipeline.admit(&ctx.scope, command, Some(&mut watch)).await
        } else {
            pipeline.admit(&ctx.scope, command, None).await
        };
        admitted.map(|a| a.command_id).map_err(|refusal| {
            if !matches!(refusal, Refusal::NotRecorded(_) | Refusal::Gone) {
                self.stats.blocked += 1;
            }
            admission::refusal_error(&refusal)
        })
    }

    /// Admit a simple Query, or a fast-path call (`protocol`) as the
    /// `SELECT` it stands for: decide, hold, record, then forward `frame`.
    async fn simple_query(&mut self, frame: Frame, sql: String, protocol: &str) {
        let read = match self.readable(&sql).await {
            Ok(text) => text.into_owned(),
            Err(bytes) => {
                self.stats.blocked += 1;
                return self.refuse_query(bytes);
            }
        };
        let (classification, outputs, refusal) = self.resolve(&read);
        let mut verdict = self.verdict_for(&read, &classification, refusal);
        let effects = match self.prepared_effects(&sql, &classification) {
            Ok(e) => e,
            Err(refused) => {
                verdict = verdict.stricter(refused);
                Vec::new()
            }
        };
        if let Verdict::Hold { rule, .. } = &verdict {
            // Preparing runs nothing: the hold moves to every execution.
            let only_prepares = classification
                .statements
                .iter()
                .filter(|f| !f.nested)
                .all(|f| f.kind == StatementKind::Prepare);
            if only_prepares {
                verdict = Verdict::Allow {
                    rule: Some(format!("{rule} (held at each execution)")),
                };
            }
        }
        let mut command = self.command(&sql, &classification, verdict, protocol);
        if matches!(command.event.verdict, Verdict::Hold { .. }) {
            command.shown = self.shown_for_approval(&sql, &classification);
        }
        let id = match self.admit(command).await {
            Ok(id) => id,
            Err(bytes) => return self.refuse_query(bytes),
        };
        self.remember_cursors(&classification);
        self.push(Pending::Query {
            unit: CommandUnit {
                id,
                started: Instant::now(),
            },
            statements: outputs,
            sql,
            effects,
        });
        self.sync_point();
        self.out.extend_from_slice(&frame.raw);
    }

    /// The command as approvers see it: with the body of every prepared
    /// statement it EXECUTEs, since `EXECUTE p('x')` alone says nothing.
    fn shown_for_approval(&self, sql: &str, c: &Classification) -> String {
        let mut shown = sql.to_string();
        for f in c
            .statements
            .iter()
            .filter(|f| f.kind == StatementKind::Execute)
        {
            let name = f.prepared_name.clone().unwrap_or_default();
            if let Some(stmt) = self.known_statement(&name) {
                shown.push_str(&format!(
                    "\n-- {name} was prepared as: {}",
                    one_line(&stmt.sql)
                ));
            }
        }
        shown
    }

    /// Answer a simple Query with a gateway-made error; the statement is
    /// not forwarded. Inside a transaction block a server error would
    /// abort the transaction (later statements fail, COMMIT rolls back), and
    /// scripts rely on that: so there the gateway has the target raise the
    /// same error itself, with a `DO` block that runs nothing else.
    fn refuse_query(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        // Mid-batch (extended messages not yet synced) the target answers
        // nothing until a sync point, and a server error would abort the
        // batch's implicit transaction too: the same way.
        if self.refusal_must_fail_target() {
            if let Some(sql) = raise_statement(&bytes) {
                self.push(Pending::FailTransaction);
                self.sync_point();
                self.out.extend_from_slice(&frontend::query(&sql));
                return;
            }
        }
        self.push(Pending::Synthetic {
            bytes,
            ready: true,
            batch: false,
        });
    }

    /// Keep declared cursors' queries so FETCH results are masked.
    fn remember_cursors(&mut self, c: &Classification) {
        for f in c
            .statements
            .iter()
            .filter(|f| !f.nested && f.keyword.starts_with("DECLARE"))
        {
            if let Some(name) = &f.prepared_name {
                self.cursors.insert(name.clone(), f.clone());
            }
        }
    }

    /// The prepared-statement changes `c` makes if the target runs it, by
    /// top-level statement index. A `PREPARE` body is kept with its own
    /// verdict, so every later execution is checked (and held) again.
    /// Refuses a `PREPARE` of a name already in use, as PostgreSQL would.
    fn prepared_effects(
        &self,
        sql: &str,
        c: &Classification,
    ) -> Result<Vec<(usize, PreparedEffect)>, Verdict> {
        let mut effects = Vec::new();
        let top: Vec<(usize, &StatementFacts)> = c
            .statements
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.nested)
            .collect();
        for (index, (at, f)) in top.iter().enumerate() {
            match f.kind {
                StatementKind::Prepare => {
                    let Some(name) = f.prepared_name.clone() else {
                        continue;
                    };
                    // A name in use is refused as PostgreSQL refuses it,
                    // in its words. Forwarding it for the server to refuse
                    // would let a pipelined `DEALLOCATE p` / `PREPARE p AS
                    // …` / `EXECUTE p` run a body the gateway never judged
                    // (its map changes only when the server answers).
                    if self.known_statement(&name).is_some() {
                        return Err(Verdict::Block {
                            rule: DUPLICATE_PREPARED.into(),
                            message: format!("prepared statement \"{name}\" already exists"),
                        });
                    }
                    let body = Classification {
                        statements: c.statements[at + 1..]
                            .iter()
                            .take_while(|b| b.nested)
                            .cloned()
                            .collect(),
                        parse_error: c.parse_error.clone(),
                    };
                    let verdict = self.verdict_for(sql, &body, None);
                    let stmt = Arc::new(Statement {
                        sql: sql.to_string(),
                        output_facts: body.statements.first().cloned(),
                        classification: Arc::new(body),
                        fields: Mutex::new(None),
                        held: matches!(verdict, Verdict::Hold { .. }).then_some(verdict),
                        param_types: Mutex::new(Vec::new()),
                    });
                    effects.push((index, PreparedEffect::Add(name, stmt)));
                }
                StatementKind::Deallocate => {
                    let name = f.prepared_name.clone().unwrap_or_default();
                    effects.push((index, PreparedEffect::Remove(name)));
                }
                _ if f.keyword.starts_with("DISCARD") => {
                    effects.push((index, PreparedEffect::Clear));
                }
                _ => {}
            }
        }
        Ok(effects)
    }

    async fn parse(&mut self, frame: Frame, name: String, sql: String, param_types: Vec<u32>) {
        // A name already in use is the server's to refuse (42P05): the
        // previous statement is put back when it does (`roll_back_parse`).
        let read = match self.readable(&sql).await {
            Ok(text) => text.into_owned(),
            Err(bytes) => {
                self.stats.blocked += 1;
                lock_prepared(&self.prepared).remove(&name);
                return self.fail_batch(bytes);
            }
        };
        let (classification, outputs, refusal) = self.resolve(&read);
        let verdict = self.verdict_for(&read, &classification, refusal);
        if matches!(verdict, Verdict::Block { .. }) {
            // Preparing runs nothing, so only a refusal is recorded here;
            // a hold moves to each Execute.
            let command = self.command(&sql, &classification, verdict, "extended");
            let bytes = self.admit(command).await.err().unwrap_or_default();
            // The target keeps its old unnamed statement; forget ours so a
            // Bind of it is refused rather than run unchecked.
            lock_prepared(&self.prepared).remove(&name);
            self.fail_batch(bytes);
            return;
        }
        let stmt = Arc::new(Statement {
            sql,
            classification: Arc::new(classification),
            output_facts: outputs.into_iter().next().flatten(),
            fields: Mutex::new(None),
            held: matches!(verdict, Verdict::Hold { .. }).then_some(verdict),
            param_types: Mutex::new(param_types),
        });
        let previous = lock_prepared(&self.prepared).insert(name.clone(), stmt);
        self.push(Pending::Parse { name, previous });
        self.unsynced = true;
        self.out.extend_from_slice(&frame.raw);
    }

    async fn execute(&mut self, frame: Frame, portal_name: &str) {
        let Some(portal) = self.portals.get(portal_name).cloned() else {
            self.refuse_in_batch(&format!(
                "portal \"{portal_name}\" is not known to gatehouse"
            ));
            return;
        };
        let stmt = portal.statement.clone();
        // A statement that runs a SQL-level prepared statement (`EXECUTE q`,
        // `EXPLAIN ANALYZE EXECUTE q`) runs whatever q is now, which may have
        // been prepared again since this Parse: decide on that.
        let runs_prepared = stmt
            .classification
            .statements
            .iter()
            .any(|f| f.kind == StatementKind::Execute);
        let (classification, verdict) = if runs_prepared {
            let (c, _, refusal) = self.resolve(&stmt.sql);
            let v = self.verdict_for(&stmt.sql, &c, refusal);
            (Arc::new(c), v)
        } else {
            let v = stmt.held.clone().unwrap_or(Verdict::Allow { rule: None });
            (stmt.classification.clone(), v)
        };
        let mut command = self.command(&stmt.sql, &classification, verdict, "extended");
        if matches!(command.event.verdict, Verdict::Hold { .. }) {
            let sql = self.shown_for_approval(&stmt.sql, &classification);
            command.shown = match portal.params_shown.as_deref() {
                Some(p) if !p.is_empty() => format!("{sql}\n-- parameters: {p}"),
                _ => sql,
            };
            // The target answers what was sent so far only on Flush; ask
            // for it so the notice reaches the client in order.
            self.out.extend_from_slice(&FLUSH);
        }
        let id = match self.admit(command).await {
            Ok(id) => id,
            Err(bytes) => {
                if !bytes.is_empty() {
                    self.fail_batch(bytes);
                }
                return;
            }
        };
        self.remember_cursors(&stmt.classification);
        let effects = match self.prepared_effects(&stmt.sql, &stmt.classification) {
            Ok(e) => e,
            Err(refused) => {
                self.stats.blocked += 1;
                return self.fail_batch(verdict_error(&refused).unwrap_or_default());
            }
        };
        self.push(Pending::Execute {
            unit: CommandUnit {
                id,
                started: Instant::now(),
            },
            portal,
            effects,
        });
        self.batch_may_change |= may_change_lexing(&stmt.classification);
        self.unsynced = true;
        self.out.extend_from_slice(&frame.raw);
    }
}

/// `COPY … (FORMAT binary)` or the old `COPY … BINARY` syntax.
fn binary_copy(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| w == "binary")
}

/// Whether a COPY sends its rows to the client (`TO STDOUT`), as opposed
/// to a server-side file or program, whose rows never pass the gateway.
/// Read from the scanner's words, so `'stdout'` in a string or comment does
/// not count; an unquoted STDOUT anywhere else only makes the check stricter.
fn copies_to_client(sql: &str) -> bool {
    gatehouse_core::classify::tokens(sql, Dialect::Postgres)
        .iter()
        .any(|(_, t)| matches!(t, gatehouse_core::classify::Token::Word(w) if w.eq_ignore_ascii_case("stdout")))
}

fn csv_copy(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| w == "csv")
}

/// The result set being streamed and what has been counted for it.
#[derive(Default)]
struct ResultState {
    /// Index of the statement (simple query) whose results are streaming.
    index: usize,
    plan: Option<RowPlan>,
    copy_csv: bool,
    rows: u64,
    masked: MaskCounts,
    error: Option<serde_json::Value>,
    sample: Vec<serde_json::Value>,
    /// The result's column names (from its RowDescription), recorded with
    /// `sample` so the rows can be read.
    columns: Vec<String>,
    /// Originals of the masked cells of `sample` (row, column, value), kept
    /// only to be sealed; never recorded in the clear.
    originals: Vec<serde_json::Value>,
}

struct ServerPump {
    ctx: Arc<SessionContext>,
    reader: FrameReader<OwnedReadHalf>,
    client: WriteHalf<Box<dyn ClientIo>>,
    rx: mpsc::UnboundedReceiver<Pending>,
    queue: VecDeque<Pending>,
    status: u8,
    out: Vec<u8>,
    result: ResultState,
    bytes_to_client: u64,
    rx_open: bool,
    prepared: Prepared,
}

impl ServerPump {
    async fn run(&mut self) -> String {
        loop {
            tokio::select! {
                biased;
                entry = self.rx.recv(), if self.rx_open => match entry {
                    Some(p) => self.queue.push_back(p),
                    None => self.rx_open = false,
                },
                frame = self.reader.next() => match frame {
                    Ok(Some(f)) => {
                        if let Err(e) = self.step(f) {
                            let _ = self.write().await;
                            return e;
                        }
                        loop {
                            match self.reader.buffered() {
                                Ok(Some(f)) => {
                                    if let Err(e) = self.step(f) {
                                        let _ = self.write().await;
                                        return e;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => return format!("target protocol error: {e}"),
                            }
                        }
                    }
                    Ok(None) => {
                        let _ = self.write().await;
                        return "target closed the connection".into();
                    }
                    Err(e) => {
                        let _ = self.write().await;
                        return format!("target connection failed: {e}");
                    }
                },
            }
            self.flush_synthetic();
            if let Err(e) = self.write().await {
                return format!("client write failed: {e}");
            }
            if !self.rx_open && self.queue.is_empty() {
                // The client is gone and nothing is owed to it.
                return "client disconnected".into();
            }
        }
    }

    /// Handle one target message in order with any gateway-made responses.
    fn step(&mut self, frame: Frame) -> Result<(), String> {
        self.drain_rx();
        self.flush_synthetic();
        self.handle(frame)?;
        self.flush_synthetic();
        Ok(())
    }

    fn drain_rx(&mut self) {
        while let Ok(p) = self.rx.try_recv() {
            self.queue.push_back(p);
        }
    }

    async fn write(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.client.write_all(&self.out).await?;
            self.bytes_to_client += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Emit gateway-made responses that have reached the head of the queue.
    fn flush_synthetic(&mut self) {
        while let Some(Pending::Synthetic { .. }) = self.queue.front() {
            if let Some(Pending::Synthetic { bytes, ready, .. }) = self.queue.pop_front() {
                self.emit_synthetic(&bytes, ready);
            }
        }
    }

    /// Write one gateway-made response, with ReadyForQuery if it ends a command.
    fn emit_synthetic(&mut self, bytes: &[u8], ready: bool) {
        self.out.extend_from_slice(bytes);
        if ready {
            self.out
                .extend_from_slice(&backend::ready_for_query(self.status));
        }
    }

    fn detect(&self) -> gatehouse_core::mask::Detection {
        self.ctx
            .pipeline
            .policy
            .detection(&self.ctx.identity, &self.ctx.connection)
    }

    /// Mask plan for a result set of `facts` with these columns.
    fn plan(&self, facts: Option<&StatementFacts>, fields: &[Field], formats: &[i16]) -> RowPlan {
        let ctx = &self.ctx;
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let masks = ctx
            .pipeline
            .policy
            .column_masks(&ctx.identity, &ctx.connection, facts, &names);
        RowPlan::new(fields, formats, masks, self.detect())
    }

    /// Mask plan when the columns are not known (COPY of a whole table, or
    /// an Execute whose statement was never described).
    fn blind_plan(&self, facts: Option<&StatementFacts>, columns: usize) -> RowPlan {
        let ctx = &self.ctx;
        if let Some(items) = facts.and_then(|f| f.output.as_ref()) {
            let traced = items
                .iter()
                .all(|i| matches!(i, gatehouse_core::classify::OutputColumn::Expr { .. }));
            if traced && items.len() == columns {
                let fields: Vec<Field> = items
                    .iter()
                    .map(|i| match i {
                        gatehouse_core::classify::OutputColumn::Expr { name, .. } => {
                            text_field(name.as_deref().unwrap_or("?column?"))
                        }
                        gatehouse_core::classify::OutputColumn::Wildcard { .. } => {
                            text_field("?column?")
                        }
                    })
                    .collect();
                return self.plan(facts, &fields, &vec![0; columns]);
            }
        }
        let covered = facts.is_some_and(|f| {
            ctx.pipeline.policy.column_rules_touch(
                &ctx.identity,
                &ctx.connection,
                f.tables_read.iter().chain(f.tables_written.iter()),
            )
        });
        RowPlan::unknown(
            columns,
            covered.then(|| gatehouse_core::policy::ColumnMask::redact_all("untraceable-columns")),
            self.detect().any(),
        )
    }

    fn handle(&mut self, frame: Frame) -> Result<(), String> {
        match frame.tag {
            b'D' => self.data_row(&frame),
            b'T' => self.row_description(&frame),
            b'C' | b'I' | b's' => self.statement_done(&frame),
            b'E' => self.error(&frame),
            b'N' => self.notice(&frame),
            b'Z' => self.ready(&frame),
            b'1' => self.expect_pop(&frame, |p| matches!(p, Pending::Parse { .. })),
            b't' => {
                // ParameterDescription: the target's parameter types, kept so
                // approvers of a held statement see its values decoded.
                if let Some(Pending::DescribeStatement(Some(stmt))) = self.queue.front() {
                    if let Ok(types) = backend::parse_parameter_description(&frame.body) {
                        *stmt.param_types.lock().unwrap_or_else(|p| p.into_inner()) = types;
                    }
                }
                self.out.extend_from_slice(&frame.raw);
                Ok(())
            }
            b'2' => self.expect_pop(&frame, |p| matches!(p, Pending::Bind)),
            b'3' => self.expect_pop(&frame, |p| matches!(p, Pending::Close)),
            b'n' => self.expect_pop(&frame, |p| {
                matches!(
                    p,
                    Pending::DescribeStatement(_) | Pending::DescribePortal(_)
                )
            }),
            b'H' => self.copy_out_start(&frame),
            b'd' => self.copy_data(&frame),
            b'S' => self.parameter_status(&frame),
            b'A' => self.notification(&frame),
            _ => {
                // CopyDone, CopyInResponse, CopyBothResponse, EmptyQuery…:
                // relayed unchanged (they carry no values).
                self.out.extend_from_slice(&frame.raw);
                Ok(())
            }
        }
    }

    fn expect_pop(&mut self, frame: &Frame, is: impl Fn(&Pending) -> bool) -> Result<(), String> {
        if self.queue.front().is_some_and(&is) {
            self.queue.pop_front();
        } else {
            tracing::debug!(tag = %(frame.tag as char), "response without a matching request");
        }
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    fn row_description(&mut self, frame: &Frame) -> Result<(), String> {
        let fields =
            backend::parse_row_description(&frame.body).map_err(|e| format!("target sent {e}"))?;
        let formats: Vec<i16> = fields.iter().map(|f| f.format).collect();
        let plan = match self.queue.front() {
            Some(Pending::Query { statements, .. }) => {
                if self.result.sample.is_empty() {
                    self.result.columns = fields.iter().map(|f| f.name.clone()).collect();
                }
                let facts = statements.get(self.result.index).cloned().flatten();
                let plan = self.plan(facts.as_ref(), &fields, &formats);
                self.result.plan = Some(plan.clone());
                Some(plan)
            }
            Some(Pending::DescribeStatement(stmt)) => {
                let stmt = stmt.clone();
                self.queue.pop_front();
                stmt.map(|s| {
                    *s.fields.lock().unwrap_or_else(|p| p.into_inner()) = Some(fields.clone());
                    self.plan(s.output_facts.as_ref(), &fields, &formats)
                })
            }
            Some(Pending::DescribePortal(portal)) => {
                let portal = portal.clone();
                self.queue.pop_front();
                portal.map(|p| {
                    *p.statement.fields.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(fields.clone());
                    self.plan(p.statement.output_facts.as_ref(), &fields, &formats)
                })
            }
            _ => None,
        };
        match plan.and_then(|p| p.rewrite_description(&fields)) {
            Some(rewritten) => self.out.extend_from_slice(&rewritten),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    fn data_row(&mut self, frame: &Frame) -> Result<(), String> {
        if self.result.plan.is_none() {
            if let Some(Pending::Execute { portal, .. }) = self.queue.front() {
                let portal = portal.clone();
                let fields = portal
                    .statement
                    .fields
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let formats =
                    expand_formats(&portal.formats, fields.as_ref().map_or(0, |f| f.len()));
                if let Some(f) = &fields {
                    self.result.columns = f.iter().map(|f| f.name.clone()).collect();
                }
                let plan = match fields {
                    Some(f) => self.plan(portal.statement.output_facts.as_ref(), &f, &formats),
                    None => {
                        let width = backend::parse_data_row(&frame.body)
                            .map(|v| v.len())
                            .unwrap_or(0);
                        self.blind_plan(portal.statement.output_facts.as_ref(), width)
                    }
                };
                self.result.plan = Some(plan);
            }
        }
        self.result.rows += 1;
        let capture = self.result.sample.len() < self.ctx.settings.result_capture_rows;
        let masked = match &self.result.plan {
            Some(plan) => plan
                .mask_row(
                    &self.ctx.pipeline.masker,
                    &frame.body,
                    &mut self.result.masked,
                )
                .map_err(|e| format!("target sent {e}"))?,
            // A row with no plan (no RowDescription seen): scan everything.
            None => {
                let width = backend::parse_data_row(&frame.body)
                    .map(|v| v.len())
                    .unwrap_or(0);
                let plan = RowPlan::unknown(width, None, self.detect().any());
                plan.mask_row(
                    &self.ctx.pipeline.masker,
                    &frame.body,
                    &mut self.result.masked,
                )
                .map_err(|e| format!("target sent {e}"))?
            }
        };
        let bytes: &[u8] = masked.as_deref().unwrap_or(&frame.raw);
        if capture {
            if let Ok(values) = backend::parse_data_row(&bytes[5..]) {
                if masked.is_some() && self.ctx.settings.seal_originals.is_some() {
                    if let Ok(originals) = backend::parse_data_row(&frame.body) {
                        let row = self.result.sample.len();
                        for (column, (original, shown)) in originals.iter().zip(&values).enumerate()
                        {
                            if original != shown {
                                self.result.originals.push(serde_json::json!({
                                    "row": row,
                                    "column": column,
                                    "value": original.map(|b| String::from_utf8_lossy(b).into_owned()),
                                }));
                            }
                        }
                    }
                }
                self.result.sample.push(serde_json::json!(values
                    .iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect::<Vec<_>>()));
            }
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn copy_out_start(&mut self, frame: &Frame) -> Result<(), String> {
        let (format, cols) =
            backend::parse_copy_response(&frame.body).map_err(|e| format!("target sent {e}"))?;
        if format != 0 {
            // Refused before it ran when the text says so; this is the
            // backstop: binary rows cannot be masked, so none is forwarded.
            return Err("target began a binary COPY to the client, which cannot be masked".into());
        }
        let (facts, sql) = match self.queue.front() {
            Some(Pending::Query {
                statements, sql, ..
            }) => (
                statements.get(self.result.index).cloned().flatten(),
                sql.clone(),
            ),
            Some(Pending::Execute { portal, .. }) => (
                portal.statement.output_facts.clone(),
                portal.statement.sql.clone(),
            ),
            _ => (None, String::new()),
        };
        self.result.copy_csv = csv_copy(&sql);
        self.result.plan = Some(self.blind_plan(facts.as_ref(), cols.len()));
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    fn copy_data(&mut self, frame: &Frame) -> Result<(), String> {
        self.result.rows += 1;
        let masked = self.result.plan.as_ref().and_then(|p| {
            p.mask_copy_line(
                &self.ctx.pipeline.masker,
                &frame.body,
                self.result.copy_csv,
                &mut self.result.masked,
            )
        });
        match masked {
            Some(line) => self.out.extend_from_slice(&backend::copy_data(&line)),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    fn statement_done(&mut self, frame: &Frame) -> Result<(), String> {
        if frame.tag == b'C' {
            if let Ok(tag) = backend::parse_command_complete(&frame.body) {
                if let Some(n) = backend::rows_from_tag(tag) {
                    self.result.rows = self.result.rows.max(n);
                }
                let tag = tag.to_string();
                self.apply_prepared_effects(&tag);
            }
        }
        self.out.extend_from_slice(&frame.raw);
        match self.queue.front() {
            Some(Pending::Query { .. }) => {
                self.result.index += 1;
                self.result.plan = None;
            }
            Some(Pending::Execute { .. }) => {
                if let Some(Pending::Execute { unit, .. }) = self.queue.pop_front() {
                    self.finish(unit);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The target confirmed the current statement (CommandComplete `tag`):
    /// apply its prepared-statement change, checked against the tag so a
    /// change never lands on the wrong statement.
    fn apply_prepared_effects(&mut self, tag: &str) {
        let (effects, index) = match self.queue.front() {
            Some(Pending::Query { effects, .. }) => (effects, self.result.index),
            Some(Pending::Execute { effects, .. }) => (effects, 0),
            _ => return,
        };
        let Some((_, effect)) = effects.iter().find(|(i, _)| *i == index) else {
            return;
        };
        let mut map = lock_prepared(&self.prepared);
        match (effect, tag) {
            (PreparedEffect::Add(name, stmt), "PREPARE") => {
                map.insert(name.clone(), stmt.clone());
            }
            (PreparedEffect::Remove(name), "DEALLOCATE") => {
                map.remove(name);
            }
            (_, "DEALLOCATE ALL" | "DISCARD ALL") => map.clear(),
            (_, other) => {
                tracing::debug!(tag = other, "prepared-statement change not confirmed");
            }
        }
    }

    /// A Parse the target refused (or skipped after an earlier error):
    /// put back what the name meant before, as the target still has it.
    fn roll_back_parse(&mut self, name: String, previous: Option<Arc<Statement>>) {
        let mut map = lock_prepared(&self.prepared);
        match previous {
            Some(old) => {
                map.insert(name, old);
            }
            None => {
                map.remove(&name);
            }
        }
    }

    /// Whether the command now answering reads a table with column rules
    /// for this caller (its error text could quote a masked value).
    fn current_reads_masked(&self) -> bool {
        let ctx = &self.ctx;
        let touches = |facts: &mut dyn Iterator<Item = &StatementFacts>| {
            let tables: Vec<&String> = facts.flat_map(|f| f.tables_read.iter()).collect();
            ctx.pipeline.policy.column_rules_touch(
                &ctx.identity,
                &ctx.connection,
                tables.into_iter(),
            )
        };
        match self.queue.front() {
            Some(Pending::Query { statements, .. }) => touches(&mut statements.iter().flatten()),
            Some(Pending::Execute { portal, .. }) => {
                touches(&mut portal.statement.classification.statements.iter())
            }
            _ => false,
        }
    }

    /// An ErrorResponse or NoticeResponse as the client may see it: its
    /// text through the detectors, or, for a command reading columns masked
    /// for this caller, only its code (error and notice text can quote a
    /// value: `invalid input syntax for type integer: "…"`, a function's
    /// `RAISE NOTICE`). `None` when the original may go as it is.
    fn screened_notice(&mut self, tag: u8, body: &[u8]) -> Option<Vec<u8>> {
        let masker = self.ctx.pipeline.masker.clone();
        let masked = masking::mask_notice(&masker, tag, body, &mut self.result.masked);
        if !self.current_reads_masked() {
            return masked;
        }
        let original = backend::parse_notice(body).unwrap_or_default();
        let severity = original.get(b'S').unwrap_or("NOTICE").to_string();
        let code = original.get(b'C').unwrap_or("XX000").to_string();
        let what = if tag == b'E' {
            "the database refused this statement"
        } else {
            "the database sent a notice"
        };
        Some(
            Notice::new(
                &severity,
                &code,
                &format!("{what} ({code}); its message is withheld because the statement reads columns masked for you"),
                None,
            )
            .encode(tag),
        )
    }

    /// A ParameterStatus report: followed for the session's lexing (an
    /// unsafe client encoding ends the session), its value masked by the
    /// detectors (`set_config('application_name', …)` can carry anything).
    fn parameter_status(&mut self, frame: &Frame) -> Result<(), String> {
        let (name, value) =
            backend::parse_parameter_status(&frame.body).map_err(|e| format!("target sent {e}"))?;
        if let Some(why) = self.ctx.syntax.observe(name, value) {
            self.out.extend_from_slice(
                &Notice::new(
                    "FATAL",
                    "22023",
                    &format!("gatehouse ended this session: {why}"),
                    None,
                )
                .encode(b'E'),
            );
            return Err(format!("the target reported {name} = {value}"));
        }
        let masker = self.ctx.pipeline.masker.clone();
        match masker.mask_detected(value, &mut self.result.masked) {
            Some(masked) => self
                .out
                .extend_from_slice(&backend::parameter_status(name, &masked)),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    /// A notification for a LISTENer. Its payload is whatever the notifier
    /// chose, from any session: no column traces to it, so for a caller
    /// with column rules on this connection it is withheld; otherwise the
    /// detectors mask it.
    fn notification(&mut self, frame: &Frame) -> Result<(), String> {
        let n = backend::parse_notification(&frame.body).map_err(|e| format!("target sent {e}"))?;
        let ctx = &self.ctx;
        let replaced = if !n.payload.is_empty()
            && ctx
                .pipeline
                .policy
                .masks_columns_for(&ctx.identity, &ctx.connection)
        {
            Some(NOTIFICATION_WITHHELD.to_string())
        } else {
            ctx.pipeline
                .masker
                .clone()
                .mask_detected(n.payload, &mut self.result.masked)
        };
        match replaced {
            Some(payload) => {
                self.out
                    .extend_from_slice(&backend::notification(&backend::Notification {
                        payload: &payload,
                        ..n
                    }))
            }
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    fn error(&mut self, frame: &Frame) -> Result<(), String> {
        if let Some(Pending::FailBatch { .. }) = self.queue.front() {
            if let Some(Pending::FailBatch { bytes }) = self.queue.pop_front() {
                self.out.extend_from_slice(&bytes);
            }
            self.skip_to_sync();
            return Ok(());
        }
        if let Some(Pending::FailTransaction) = self.queue.front() {
            // The refusal raised by the gateway's `DO` block: the client
            // gets it as the server's own error would read, without the
            // PL/pgSQL context line the block adds (routine and line of
            // code are the gateway's, not the client's).
            if let Ok(mut notice) = backend::parse_notice(&frame.body) {
                notice
                    .fields
                    .retain(|(code, _)| !matches!(code, b'W' | b'F' | b'L' | b'R'));
                self.out.extend_from_slice(&notice.encode(b'E'));
                return Ok(());
            }
        }
        let masked = self.screened_notice(b'E', &frame.body);
        let notice = backend::parse_notice(masked.as_deref().map_or(&frame.body[..], |m| &m[5..]))
            .unwrap_or_default();
        self.result.error = Some(serde_json::json!({
            "sqlstate": notice.get(b'C'),
            "message": notice.get(b'M'),
        }));
        self.out
            .extend_from_slice(masked.as_deref().unwrap_or(&frame.raw));
        // Extended protocol: the target now skips everything up to Sync.
        let extended = !matches!(
            self.queue.front(),
            Some(Pending::Query { .. } | Pending::FailTransaction) | None
        );
        if extended {
            self.skip_to_sync();
        }
        Ok(())
    }

    /// Extended protocol after an error: the target skips everything up to
    /// Sync, so the requests queued before it get no answer.
    fn skip_to_sync(&mut self) {
        while let Some(front) = self.queue.front() {
            match front {
                Pending::Sync | Pending::Query { .. } | Pending::FailTransaction => break,
                Pending::Synthetic { batch: false, .. } => break,
                _ => {}
            }
            match self.queue.pop_front() {
                Some(Pending::Execute { unit, .. }) => self.finish(unit),
                Some(Pending::Parse { name, previous }) => self.roll_back_parse(name, previous),
                _ => {}
            }
        }
    }

    fn notice(&mut self, frame: &Frame) -> Result<(), String> {
        let masked = self.screened_notice(b'N', &frame.body);
        self.out
            .extend_from_slice(masked.as_deref().unwrap_or(&frame.raw));
        Ok(())
    }

    fn ready(&mut self, frame: &Frame) -> Result<(), String> {
        self.status = backend::parse_ready_for_query(&frame.body).unwrap_or(b'I');
        self.ctx
            .transaction
            .store(self.status, std::sync::atomic::Ordering::SeqCst);
        self.ctx.syntax.ready_for_query();
        // Whatever the target skipped after an error is done now.
        while let Some(front) = self.queue.pop_front() {
            match front {
                Pending::Query { unit, .. } => {
                    self.finish(unit);
                    break;
                }
                Pending::FailTransaction => {
                    // The refusal was recorded with its command.
                    self.result = ResultState::default();
                    break;
                }
                Pending::Sync => break,
                Pending::Execute { unit, .. } => self.finish(unit),
                // A gateway response queued before this point belongs before it.
                Pending::Synthetic { bytes, ready, .. } => self.emit_synthetic(&bytes, ready),
                _ => {}
            }
        }
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    /// Record the outcome of one command (without holding up the stream).
    fn finish(&mut self, unit: CommandUnit) {
        let result = std::mem::take(&mut self.result);
        let ctx = &self.ctx;
        let sealed_originals = match &ctx.settings.seal_originals {
            Some(sealer) if !result.originals.is_empty() => {
                let plain = serde_json::json!({"command_id": unit.id, "cells": result.originals});
                Some((sealer.0)(plain.to_string().as_bytes()))
            }
            _ => None,
        };
        let sampled = !result.sample.is_empty();
        let event = CommandResult {
            command_id: unit.id,
            rows: Some(result.rows),
            duration_us: Some(unit.started.elapsed().as_micros() as u64),
            masked: result.masked,
            error: result.error,
            columns: (sampled && !result.columns.is_empty()).then_some(result.columns),
            result_sample: sampled.then_some(result.sample),
            sealed_originals,
            ..CommandResult::default()
        };
        tokio::spawn(ctx.pipeline.finish(&ctx.scope, &event));
    }
}

fn expand_formats(formats: &[i16], n: usize) -> Vec<i16> {
    match formats.len() {
        0 => vec![0; n],
        1 => vec![formats[0]; n],
        _ => formats.to_vec(),
    }
}

fn text_field(name: &str) -> Field {
    Field {
        name: name.to_string(),
        table_oid: 0,
        column: 0,
        type_oid: 25,
        type_len: -1,
        type_mod: -1,
        format: 0,
    }
}
