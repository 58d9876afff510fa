//! SQLite storage for requests and grants.
//!
//! Each row keeps indexed columns for the queries we run and the whole
//! record as JSON, so the schema stays small while the model grows. Calls
//! are synchronous; the broker runs them off the async threads.

use crate::model::{Grant, Request, Status};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Store errors; the text is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused.
    #[error("approvals store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be made private to this user.
    #[error("approvals store: cannot make the file private: {0}")]
    Private(std::io::Error),
    /// A stored record did not parse.
    #[error("approvals store holds an unreadable record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The approvals database.
pub struct Store {
    db: Connection,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<Status>,
    /// Only this connection.
    pub connection: Option<String>,
    /// Newest first, at most this many (0: 200).
    pub limit: usize,
}

impl Store {
    /// Open (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Requests name people and hold the commands they ran: owner only.
        gatehouse_core::private::file(path).map_err(StoreError::Private)?;
        let db = Connection::open(path)?;
        Self::init(db)
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Store, StoreError> {
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS requests (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 status TEXT NOT NULL,
                 connection TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS requests_status ON requests(status);
             CREATE TABLE IF NOT EXISTS grants (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 subject TEXT NOT NULL,
                 connection TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 revoked_at INTEGER,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS grants_holder ON grants(subject, connection);",
        )?;
        Ok(Store { db })
    }

    /// Insert a new request, assigning its id.
    pub fn insert_request(&mut self, r: &mut Request) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO requests (status, connection, created_at, body) VALUES (?1, ?2, ?3, '{}')",
            params![r.status.as_str(), r.connection, r.created_at],
        )?;
        r.id = tx.last_insert_rowid() as u64;
        tx.execute(
            "UPDATE requests SET body = ?1 WHERE id = ?2",
            params![serde_json::to_string(r)?, r.id as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Replace a request's record.
    pub fn save_request(&mut self, r: &Request) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE requests SET status = ?1, body = ?2 WHERE id = ?3",
            params![r.status.as_str(), serde_json::to_string(r)?, r.id as i64],
        )?;
        Ok(())
    }

    /// One request.
    pub fn request(&self, id: u64) -> Result<Option<Request>, StoreError> {
        self.record_by_id("requests", id)
    }

    /// The JSON record of row `id` in `table` (a fixed table name).
    fn record_by_id<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        let body: Option<String> = self
            .db
            .query_row(
                &format!("SELECT body FROM {table} WHERE id = ?1"),
                params![id as i64],
                |row| row.get(0),
            )
            .optional()?;
        Ok(match body {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        })
    }

    /// Requests matching `filter`, newest first.
    pub fn requests(&self, filter: &RequestFilter) -> Result<Vec<Request>, StoreError> {
        let limit = if filter.limit == 0 { 200 } else { filter.limit };
        let mut sql = String::from("SELECT body FROM requests WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if !filter.statuses.is_empty() {
            let marks: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| {
                    args.push(s.as_str().to_string());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(",")));
        }
        if let Some(c) = &filter.connection {
            args.push(c.clone());
            sql.push_str(&format!(" AND connection = ?{}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut stmt = self.db.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |row| {
            row.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }

    /// Save an approved access request and insert the grant it creates, in
    /// one transaction, so neither exists without the other.
    pub fn save_request_with_grant(
        &mut self,
        r: &mut Request,
        mut g: Grant,
    ) -> Result<Grant, StoreError> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO grants (subject, connection, expires_at, body) VALUES (?1, ?2, ?3, '{}')",
            params![g.holder.subject, g.connection, g.expires_at],
        )?;
        g.id = tx.last_insert_rowid() as u64;
        r.grant_id = Some(g.id);
        tx.execute(
            "UPDATE grants SET body = ?1 WHERE id = ?2",
            params![serde_json::to_string(&g)?, g.id as i64],
        )?;
        tx.execute(
            "UPDATE requests SET status = ?1, body = ?2 WHERE id = ?3",
            params![r.status.as_str(), serde_json::to_string(r)?, r.id as i64],
        )?;
        tx.commit()?;
        Ok(g)
    }

    /// One grant.
    pub fn grant(&self, id: u64) -> Result<Option<Grant>, StoreError> {
        self.record_by_id("grants", id)
    }

    /// Replace a grant's record.
    pub fn save_grant(&mut self, g: &Grant) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE grants SET revoked_at = ?1, body = ?2 WHERE id = ?3",
            params![g.revoked_at, serde_json::to_string(g)?, g.id as i64],
        )?;
        Ok(())
    }

    /// Grants, newest first; with `live_at`, only those in force then.
    pub fn grants(&self, live_at: Option<i64>) -> Result<Vec<Grant>, StoreError> {
        let mut stmt = match live_at {
            Some(_) => self.db.prepare(
                "SELECT body FROM grants WHERE revoked_at IS NULL AND expires_at > ?1 ORDER BY id DESC",
            )?,
            None => self
                .db
                .prepare("SELECT body FROM grants WHERE ?1 IS NULL OR 1=1 ORDER BY id DESC LIMIT 500")?,
        };
        let rows = stmt.query_map(params![live_at], |row| row.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }
}
