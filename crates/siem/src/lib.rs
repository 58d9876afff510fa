//! Continuous delivery of audit events to SIEMs.
//!
//! Each configured sink (rotating JSON-lines files, RFC 5424 syslog over TCP
//! or TLS, Splunk HEC) has its own task that *follows the audit store*: it
//! reads committed events after its cursor through a read-only connection,
//! delivers them as one batch, and only then moves its cursor (kept in a
//! file in the state folder, replaced atomically). So:
//!
//! * **Off the data path.** The gateway commits events to the audit store
//!   as before; sinks read them afterwards. A slow or unreachable sink never
//!   delays a statement (SQLite WAL readers do not block the writer).
//! * **Never loses events.** The audit store is the buffer: a sink that is
//!   down falls behind and catches up from its cursor when it comes back,
//!   however long it was away, across gateway restarts.
//! * **At least once.** A batch whose delivery is not confirmed (HEC: a 2xx
//!   answer; syslog: written and flushed on a connection the receiver had
//!   not closed; file: written and synced) is sent again, so a receiver can
//!   see an event twice after a failure; each event carries its `seq` and
//!   `hash` to deduplicate on. Syslog over TCP has no acknowledgements: a
//!   receiver host that vanishes without closing its connections can lose
//!   what was written to it last; use HEC where that matters.
//!
//! See [`format`] for the Gatehouse and OCSF schemas.

mod config;
pub mod format;
mod sinks;

pub use config::{Format, SiemConfig, SinkConfig, SinkKind};

use gatehouse_audit::{AuditEvent, TrailReader};
use serde::{Deserialize, Serialize};
use sinks::Sink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What can stop SIEM delivery from starting.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    /// The `[siem]` section is wrong; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// A cursor file cannot be read or written.
    #[error("SIEM cursor {path}: {reason}")]
    Cursor {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A sink's position: the last event it has confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last delivered event's seq (0: nothing yet).
    pub seq: u64,
    /// Its hash, so a replaced store is noticed.
    pub hash: String,
}

impl Cursor {
    /// Read the cursor at `path` (absent: start from the beginning).
    pub fn load(path: &Path) -> Result<Cursor, SiemError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| SiemError::Cursor {
                path: path.display().to_string(),
                reason: format!(
                    "is not a cursor ({e}); move it aside to deliver again from the first event"
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(e) => Err(SiemError::Cursor {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Replace the cursor at `path` atomically (write, sync, rename), so a
    /// crash leaves the old or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), SiemError> {
        let fail = |e: std::io::Error| SiemError::Cursor {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string(self).unwrap_or_default();
        {
            use std::io::Write;
            let mut f = gatehouse_core::private::open(
                &tmp,
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true),
            )
            .map_err(fail)?;
            f.write_all(text.as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

/// How one sink is doing, for operators.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// The last event it confirmed.
    pub delivered_seq: u64,
    /// Failed attempts since the last success.
    pub failures: u64,
    /// The last error, while failing.
    pub last_error: Option<String>,
}

/// Running delivery: one task per sink.
pub struct Siem {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    status: Arc<Mutex<Vec<SinkStatus>>>,
}

struct Worker {
    index: usize,
    name: String,
    sink: Sink,
    cursor_path: PathBuf,
    audit_db: PathBuf,
    batch: usize,
    poll: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    status: Arc<Mutex<Vec<SinkStatus>>>,
}

impl Siem {
    /// Start a task per sink of `cfg`, following the audit store at
    /// `audit_db`. Relative sink paths and `cursor_dir` are resolved against
    /// `state_dir`, CA and token files against `base_dir`.
    pub fn start(
        cfg: &SiemConfig,
        audit_db: &Path,
        state_dir: &Path,
        base_dir: &Path,
    ) -> Result<Siem, SiemError> {
        cfg.validate().map_err(SiemError::Config)?;
        let (shutdown, rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for (index, s) in cfg.sinks.iter().enumerate() {
            let sink = Sink::new(
                &s.name,
                &s.kind,
                s.format.unwrap_or(cfg.format),
                Duration::from_secs(cfg.timeout_secs.max(1)),
                state_dir,
                base_dir,
            )?;
            let cursor_path = state_dir
                .join(&cfg.cursor_dir)
                .join(format!("{}.cursor", s.name));
            let cursor = Cursor::load(&cursor_path)?;
            if let Ok(mut st) = status.lock() {
                st.push(SinkStatus {
                    name: s.name.clone(),
                    delivered_seq: cursor.seq,
                    ..SinkStatus::default()
                });
            }
            workers.push(Worker {
                index,
                name: s.name.clone(),
                sink,
                cursor_path,
                audit_db: audit_db.to_path_buf(),
                batch: cfg.batch,
                poll: Duration::from_millis(cfg.poll_interval_ms.max(10)),
                initial_backoff: Duration::from_millis(cfg.initial_backoff_ms.max(10)),
                max_backoff: Duration::from_secs(cfg.max_backoff_secs.max(1)),
                status: status.clone(),
            });
        }
        let tasks = workers
            .into_iter()
            .map(|w| tokio::spawn(w.run(rx.clone())))
            .collect();
        Ok(Siem {
            shutdown,
            tasks,
            status,
        })
    }

    /// Each sink's progress.
    pub fn status(&self) -> Vec<SinkStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stop every sink (a batch in flight is abandoned and sent again next
    /// time, from the cursor).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
    }
}

impl Worker {
    fn set_status(&self, f: impl FnOnce(&mut SinkStatus)) {
        if let Ok(mut st) = self.status.lock() {
            if let Some(s) = st.get_mut(self.index) {
                f(s);
            }
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut cursor = match Cursor::load(&self.cursor_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "SIEM sink stopped");
                return;
            }
        };
        let mut reader: Option<TrailReader> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            // Read what is committed after the cursor (blocking I/O off the
            // async workers).
            let db = self.audit_db.clone();
            let (after, limit) = (cursor.seq, self.batch);
            let taken = reader.take();
            let read = tokio::task::spawn_blocking(move || {
                let r = match taken {
                    Some(r) => r,
                    None => TrailReader::open(&db)?,
                };
                let events = r.after(after, limit)?;
                Ok::<_, gatehouse_audit::AuditError>((r, events))
            })
            .await;
            let events: Vec<AuditEvent> = match read {
                Ok(Ok((r, events))) => {
                    reader = Some(r);
                    events
                }
                Ok(Err(e)) => {
                    tracing::debug!(sink = %self.name, error = %e, "audit store not readable yet");
                    Vec::new()
                }
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "SIEM reader task failed");
                    Vec::new()
                }
            };
            let Some(last) = events.last() else {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let next = Cursor {
                seq: last.seq,
                hash: last.hash.clone(),
            };
            // Deliver the batch, retrying with backoff until it is confirmed.
            let mut backoff = self.initial_backoff;
            loop {
                match self.sink.deliver(&events).await {
                    Ok(()) => break,
                    Err(e) => {
                        self.set_status(|s| {
                            s.failures += 1;
                            s.last_error = Some(e.clone());
                        });
                        tracing::warn!(sink = %self.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "SIEM delivery failed; will retry from the cursor");
                        let jitter = Duration::from_millis(
                            rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1),
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(backoff + jitter) => {}
                            _ = stop.changed() => {}
                        }
                        if *stop.borrow() {
                            return;
                        }
                        backoff = (backoff * 2).min(self.max_backoff);
                    }
                }
            }
            if let Err(e) = next.save(&self.cursor_path) {
                tracing::error!(sink = %self.name, error = %e, "cannot save the SIEM cursor; events may be delivered again");
            }
            cursor = next;
            let seq = cursor.seq;
            self.set_status(|s| {
                s.delivered_seq = seq;
                s.failures = 0;
                s.last_error = None;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_start_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/one.cursor");
        assert_eq!(Cursor::load(&path).unwrap(), Cursor::default());
        let c = Cursor {
            seq: 42,
            hash: "ab".into(),
        };
        c.save(&path).unwrap();
        assert_eq!(Cursor::load(&path).unwrap(), c);
        std::fs::write(&path, "garbage").unwrap();
        assert!(Cursor::load(&path)
            .unwrap_err()
            .to_string()
            .contains("move it aside"));
    }

    #[test]
    fn config_parses_every_sink_kind() {
        let cfg: SiemConfig = toml_like(
            r#"{"format":"ocsf","sinks":[
                {"name":"f","type":"file","path":"siem/e.jsonl","rotate_bytes":10,"keep":2},
                {"name":"s","type":"syslog","address":"127.0.0.1:6514","tls":true,"format":"gatehouse"},
                {"name":"h","type":"splunk_hec","url":"https://x:8088/services/collector/event","token_env":"T"}]}"#,
        );
        assert_eq!(cfg.format, Format::Ocsf);
        assert_eq!(cfg.sinks.len(), 3);
        assert_eq!(cfg.sinks[1].format, Some(Format::Gatehouse));
        assert!(matches!(
            cfg.sinks[1].kind,
            SinkKind::Syslog {
                tls: true,
                facility: 13,
                ..
            }
        ));
        cfg.validate().unwrap();
        let mut bad = cfg.clone();
        bad.sinks[2].name = "f".into();
        assert!(bad.validate().unwrap_err().contains("used twice"));
    }

    fn toml_like(json: &str) -> SiemConfig {
        serde_json::from_str(json).unwrap()
    }
}
