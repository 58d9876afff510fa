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
//!
//! The pumps live in `proxy/client.rs` and `proxy/server.rs`; how a
//! command's admission is said in PostgreSQL's words, in
//! `proxy/admission.rs`; this file holds what both share (the queue's
//! entries, prepared statements and portals, the errors the gateway makes).

mod admission;
mod client;
mod server;

use client::ClientPump;
use server::{ResultState, ServerPump};

use crate::codec::backend::{self, Field, Notice};
use crate::codec::frontend::{self, Target};
use crate::codec::Frame;
use crate::io::FrameReader;
use crate::masking::{self, RowPlan};
use crate::session::{ClientIo, SessionContext};
use crate::target::{TargetReader, TargetStream, TargetWriter};
use bytes::BytesMut;
use gatehouse_core::approval::quote_for_approver as quoted;
use gatehouse_core::classify::syntax::{
    may_change_lexing, pg_backslash_ambiguous, pg_encoding_change_refusal, pg_standard_strings,
};
use gatehouse_core::classify::{
    Classification, CopyDirection, Dialect, StatementFacts, StatementKind,
};
use gatehouse_core::events::CommandResult;
use gatehouse_core::lifecycle::{Command, Refusal};
use gatehouse_core::mask::MaskCounts;
pub use gatehouse_core::pipeline::SessionStats;
use gatehouse_core::pipeline::{redact_secrets, resolve_executes, BoxFuture};
use gatehouse_core::Verdict;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
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
    target: TargetStream,
    target_leftover: BytesMut,
    grant_end: Option<BoxFuture<'static, String>>,
) -> SessionStats {
    let (client_r, client_w) = tokio::io::split(client);
    let (target_r, target_w) = crate::target::split(target);
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
