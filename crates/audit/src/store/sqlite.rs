//! The embedded store: one SQLite file in WAL mode, so readers (verify,
//! export, the console) run while the gateway writes.

use super::{AuditStore, ChainHead, Journaled, StoreError};
use crate::canonical::canonical_json;
use crate::chain::GENESIS_HASH;
use crate::checkpoint::Checkpoint;
use crate::error::AuditError;
use crate::event::AuditEvent;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How hard each commit pushes data to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Strict: a recorded event is on disk (fsync'd) before the caller goes
    /// on, so it survives power loss. Concurrent callers share each fsync.
    /// (A store opened so commits with `synchronous = FULL`.)
    Full,
    /// The default: a recorded event is in the journal (the kernel's page
    /// cache) before the caller goes on, so it survives a gateway crash, and
    /// on disk within the sync window (10 ms by default), which bounds what
    /// a power loss can take. (A store opened so commits with
    /// `synchronous = NORMAL` and is fsync'd by `make_durable`.)
    #[default]
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// The on-disk format this code reads and writes (`PRAGMA user_version`).
/// 2 added the signed checkpoint policy (`checkpoints.checkpoint_every`,
/// `checkpoints.checkpoint_interval_ms`); a format 1 store is migrated on
/// open by adding the two columns (NULL in its old rows).
const FORMAT_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    session_id TEXT,
    subject    TEXT,
    connection TEXT,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS events_session_id ON events(session_id);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq        INTEGER PRIMARY KEY,
    event_seq  INTEGER NOT NULL,
    event_hash TEXT NOT NULL,
    ts         TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    checkpoint_every       INTEGER,
    checkpoint_interval_ms INTEGER
) STRICT;
";

/// Column list matching [`decode_event_row`].
pub(crate) const EVENT_COLUMNS: &str =
    "seq, ts, kind, session_id, subject, connection, data, prev_hash, hash";

/// Column list matching [`decode_checkpoint_row`], for a store in the
/// current format (use [`checkpoint_columns`] on a store that may be older).
pub(crate) const CHECKPOINT_COLUMNS: &str =
    "seq, event_seq, event_hash, ts, prev_hash, hash, signature, checkpoint_every, checkpoint_interval_ms";

/// [`CHECKPOINT_COLUMNS`] for a format 1 store (read-only readers never
/// migrate it): the policy columns read as NULL.
const CHECKPOINT_COLUMNS_V1: &str =
    "seq, event_seq, event_hash, ts, prev_hash, hash, signature, NULL, NULL";

/// Whether the `checkpoints` table has the format 2 policy columns.
fn has_policy_columns(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('checkpoints') WHERE name = 'checkpoint_every'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The checkpoint column list to select on `conn`, whatever its format.
pub(crate) fn checkpoint_columns(conn: &Connection) -> rusqlite::Result<&'static str> {
    Ok(if has_policy_columns(conn)? {
        CHECKPOINT_COLUMNS
    } else {
        CHECKPOINT_COLUMNS_V1
    })
}

/// The SQLite store the writer appends to. Holds the one read-write
/// connection; readers open their own read-only ones.
pub struct SqliteStore {
    // Field order matters: the connection closes before the files below.
    conn: Connection,
    path: PathBuf,
    durability: Durability,
    /// The database and its WAL, open for as long as the connection is, for
    /// `make_durable`'s fsyncs. Opening a file per fsync and closing it
    /// would drop every POSIX lock this process holds on it, SQLite's
    /// included.
    files: [std::fs::File; 2],
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path` in WAL mode with the
    /// given durability, and check that this process may write to it.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, AuditError> {
        let fail = |reason: String| AuditError::Open {
            path: path.display().to_string(),
            reason,
        };
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| fail(e.to_string()))?;
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Err(AuditError::NotWritable {
                path: path.display().to_string(),
                reason: "the file is read-only for this user".to_string(),
            });
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!(
                "SQLite refused WAL mode (journal_mode is {mode}); use a local file system"
            )));
        }
        conn.pragma_update(None, "synchronous", durability.pragma())
            .map_err(|e| fail(e.to_string()))?;
        // The writer appends in groups all day: a larger page cache and
        // fewer, larger WAL checkpoints keep its cost per event down.
        conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 8192;")
            .map_err(|e| fail(e.to_string()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if version > FORMAT_VERSION {
            return Err(fail(format!(
                "it was written by a newer gatehouse (format {version}, this one understands {FORMAT_VERSION}); upgrade gatehouse"
            )));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| fail(e.to_string()))?;
        if !has_policy_columns(&conn).map_err(|e| fail(e.to_string()))? {
            conn.execute_batch(
                "ALTER TABLE checkpoints ADD COLUMN checkpoint_every INTEGER;
                 ALTER TABLE checkpoints ADD COLUMN checkpoint_interval_ms INTEGER;",
            )
            .map_err(|e| fail(format!("cannot add the checkpoint policy columns: {e}")))?;
        }
        conn.pragma_update(None, "user_version", FORMAT_VERSION)
            .map_err(|e| fail(e.to_string()))?;
        // The WAL exists once the schema is written; its entry in the folder
        // must be durable too.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let open_file = |p: &Path| {
            std::fs::File::open(p).map_err(|e| fail(format!("cannot open {}: {e}", p.display())))
        };
        let files = [open_file(path)?, open_file(Path::new(&wal))?];
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(folder)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(format!("cannot sync its folder: {e}")))?;
        }
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            durability,
            files,
        })
    }
}

impl SqliteStore {
    /// Insert `rows` (event, canonical data text) in one transaction that
    /// must continue the store's head.
    fn insert<'a>(
        &mut self,
        rows: impl Iterator<Item = (&'a AuditEvent, &'a str)>,
    ) -> Result<(), StoreError> {
        let mut rows = rows.peekable();
        let Some((first, _)) = rows.peek() else {
            return Ok(());
        };
        let (first_seq, first_prev) = (first.seq, first.prev_hash.clone());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head = query_head(&tx)?;
        let (next_seq, prev_hash) = head
            .as_ref()
            .map_or((1, GENESIS_HASH), |h| (h.seq + 1, h.hash.as_str()));
        if first_seq != next_seq || first_prev != prev_hash {
            return Err(StoreError(format!(
                "the store's last event is {} but this batch continues event {}: another process is writing to \
                 the same store, and only one gateway may write an SQLite audit store",
                next_seq - 1,
                first_seq.saturating_sub(1)
            )));
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (seq, ts, kind, session_id, subject, connection, data, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (e, data) in rows {
                insert.execute(params![
                    to_sql_int(e.seq)?,
                    e.ts,
                    e.kind,
                    e.session_id,
                    e.subject,
                    e.connection,
                    data,
                    e.prev_hash,
                    e.hash
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl AuditStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        query_head(&self.conn)
    }

    fn last_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq DESC LIMIT 1");
        let row = self
            .conn
            .query_row(&sql, [], |row| Ok(decode_checkpoint_row(row)))
            .optional()?;
        row.transpose().map_err(StoreError)
    }

    fn append_batch(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let texts: Vec<String> = events.iter().map(|e| canonical_json(&e.data)).collect();
        self.insert(events.iter().zip(texts.iter().map(String::as_str)))
    }

    fn append_journaled(&mut self, batch: &[Journaled]) -> Result<(), StoreError> {
        self.insert(batch.iter().map(|j| (&j.event, j.data_text.as_str())))
    }

    fn append_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO checkpoints (seq, event_seq, event_hash, ts, prev_hash, hash, signature,
                                      checkpoint_every, checkpoint_interval_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                to_sql_int(cp.seq)?,
                to_sql_int(cp.event_seq)?,
                cp.event_hash,
                cp.ts,
                cp.prev_hash,
                cp.hash,
                cp.signature,
                cp.checkpoint_every.map(to_sql_int).transpose()?,
                cp.checkpoint_interval_ms.map(to_sql_int).transpose()?
            ],
        )?;
        Ok(())
    }

    /// `synchronous = NORMAL` commits reach the WAL file by `write(2)` and
    /// the database file at checkpoints; an fsync of both makes every one
    /// of them durable.
    fn make_durable(&mut self) -> Result<(), StoreError> {
        if self.durability == Durability::Full {
            return Ok(());
        }
        for file in &self.files {
            file.sync_all()
                .map_err(|e| StoreError(format!("fsync of {}: {e}", self.path.display())))?;
        }
        Ok(())
    }

    fn read_events(&mut self, from_seq: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![to_sql_int(from_seq)?, to_sql_int(limit as u64)?],
            |row| Ok(decode_event_row(row)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.map_err(|e| StoreError(e.to_string()))?);
        }
        Ok(out)
    }

    fn read_checkpoints(
        &mut self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![to_sql_int(from_seq)?, to_sql_int(limit as u64)?],
            |row| Ok(decode_checkpoint_row(row)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.map_err(StoreError)?);
        }
        Ok(out)
    }
}

fn query_head(conn: &Connection) -> Result<Option<ChainHead>, StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    row.map(|(seq, hash)| {
        let seq = u64::try_from(seq)
            .map_err(|_| StoreError(format!("the last event has a negative seq ({seq})")))?;
        Ok(ChainHead { seq, hash })
    })
    .transpose()
}

fn to_sql_int(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError(format!("{n} does not fit in an SQLite integer")))
}

/// Decode one `EVENT_COLUMNS` row. A row someone edited into the wrong
/// shape is reported as corrupt with its seq, not as a store failure, so
/// verify can name it.
pub(crate) fn decode_event_row(row: &Row<'_>) -> Result<AuditEvent, AuditError> {
    read_event_row(row)?.decode()
}

/// An event row as stored, its columns read but its data not yet parsed
/// (a verifier only hashes it).
pub(crate) struct StoredEvent {
    event: AuditEvent,
    data_text: String,
}

/// Read the columns of one `EVENT_COLUMNS` row (cheap: no JSON yet).
pub(crate) fn read_event_row(row: &Row<'_>) -> Result<StoredEvent, AuditError> {
    let raw_seq: i64 = row.get(0).map_err(|e| AuditError::CorruptRow {
        seq: 0,
        reason: format!("its seq is not an integer ({e})"),
    })?;
    let seq = u64::try_from(raw_seq).map_err(|_| AuditError::CorruptRow {
        seq: 0,
        reason: format!("its seq {raw_seq} is negative"),
    })?;
    let corrupt = |column: &str, e: rusqlite::Error| AuditError::CorruptRow {
        seq,
        reason: format!("column {column} has the wrong type ({e})"),
    };
    Ok(StoredEvent {
        data_text: row.get(6).map_err(|e| corrupt("data", e))?,
        event: AuditEvent {
            seq,
            ts: row.get(1).map_err(|e| corrupt("ts", e))?,
            kind: row.get(2).map_err(|e| corrupt("kind", e))?,
            session_id: row.get(3).map_err(|e| corrupt("session_id", e))?,
            subject: row.get(4).map_err(|e| corrupt("subject", e))?,
            connection: row.get(5).map_err(|e| corrupt("connection", e))?,
            data: serde_json::Value::Null,
            prev_hash: row.get(7).map_err(|e| corrupt("prev_hash", e))?,
            hash: row.get(8).map_err(|e| corrupt("hash", e))?,
        },
    })
}

impl StoredEvent {
    /// What verifying needs: the event's hash, once its data text is known
    /// to be canonical. The data is not kept (the chain does not need it),
    /// and is only parsed when the fast check cannot vouch for the text.
    pub(crate) fn hashed(self) -> Result<(AuditEvent, String), AuditError> {
        if !crate::canonical::is_canonical(&self.data_text) {
            // The sure way, which also says what is wrong.
            self.parsed_canonical()?;
        }
        let hash = crate::chain::event_hash_with_data(&self.event, &self.data_text);
        Ok((self.event, hash))
    }

    /// The event with its data parsed (and checked canonical).
    pub(crate) fn decode(mut self) -> Result<AuditEvent, AuditError> {
        self.event.data = self.parsed_canonical()?;
        Ok(self.event)
    }

    /// The data, parsed; an error unless the stored text is exactly its
    /// canonical form.
    fn parsed_canonical(&self) -> Result<serde_json::Value, AuditError> {
        let seq = self.event.seq;
        let data = serde_json::from_str(&self.data_text).map_err(|e| AuditError::CorruptRow {
            seq,
            reason: format!("its data is not valid JSON ({e})"),
        })?;
        // Data is stored in its canonical form. Any other text (a key given
        // twice, which SQLite's json_extract reads one way and the hash
        // another) was written by something other than the gateway.
        if canonical_json(&data) != self.data_text {
            return Err(AuditError::CorruptRow {
                seq,
                reason: "its data is not in the canonical form the gateway writes (a duplicated key, or an edit)"
                    .into(),
            });
        }
        Ok(data)
    }
}

/// Decode one `CHECKPOINT_COLUMNS` row; the error says what is wrong with it.
pub(crate) fn decode_checkpoint_row(row: &Row<'_>) -> Result<Checkpoint, String> {
    let int = |i: usize, column: &str| -> Result<u64, String> {
        let n: i64 = row
            .get(i)
            .map_err(|e| format!("its {column} is not an integer ({e})"))?;
        u64::try_from(n).map_err(|_| format!("its {column} {n} is negative"))
    };
    let text = |i: usize, column: &str| -> Result<String, String> {
        row.get(i)
            .map_err(|e| format!("its {column} has the wrong type ({e})"))
    };
    let opt_int = |i: usize, column: &str| -> Result<Option<u64>, String> {
        let n: Option<i64> = row
            .get(i)
            .map_err(|e| format!("its {column} is not an integer ({e})"))?;
        n.map(|n| u64::try_from(n).map_err(|_| format!("its {column} {n} is negative")))
            .transpose()
    };
    Ok(Checkpoint {
        seq: int(0, "seq")?,
        event_seq: int(1, "event_seq")?,
        event_hash: text(2, "event_hash")?,
        ts: text(3, "ts")?,
        prev_hash: text(4, "prev_hash")?,
        hash: text(5, "hash")?,
        signature: text(6, "signature")?,
        checkpoint_every: opt_int(7, "checkpoint_every")?,
        checkpoint_interval_ms: opt_int(8, "checkpoint_interval_ms")?,
    })
}

/// Turns a SQLite error on the store at `path` into a read error.
pub(crate) fn read_error(path: &Path) -> impl Fn(rusqlite::Error) -> AuditError + Copy + '_ {
    move |e| AuditError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A read-only connection for verify, export and the console: never takes
/// the write lock, so it runs while the gateway appends.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, AuditError> {
    let shown = || path.display().to_string();
    if !path.exists() {
        return Err(AuditError::NotFound { path: shown() });
    }
    let read_err = read_error(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(read_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(read_err)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'checkpoints')",
            [],
            |row| row.get(0),
        )
        .map_err(read_err)?;
    if tables != 2 {
        return Err(AuditError::Read {
            path: shown(),
            reason:
                "this file is not a gatehouse audit store (it has no events and checkpoints tables)"
                    .to_string(),
        });
    }
    Ok(conn)
}
