//! The external anchor: a copy of every signed checkpoint, kept outside the
//! store, so that deleting the newest checkpoints *and* the events they
//! covered (which leaves a store that is consistent on its own) is caught.
//!
//! The anchor is a file of JSON lines, one [`Checkpoint`] per line in the
//! same form as [`crate::export_checkpoints_jsonl`] (number `seq`, covered
//! event `event_seq` and its hash, `ts`, `prev_hash`, `hash`, `signature`,
//! and from format 2 the signed policy). The writer appends each checkpoint
//! *after* committing it to the store, so every line names a checkpoint the
//! store had; the file is created with mode 0600 and is meant to live on
//! another volume, or be shipped to write-once storage.
//!
//! [`crate::verify_with`] then fails when the store is behind its anchor:
//! a checkpoint the anchor holds is missing from the store (and was not
//! removed by a signed prune record), or differs from the anchor's copy.
//! The writer refuses to resume such a store.

use crate::checkpoint::Checkpoint;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes read from the end of the anchor to find its last line.
const TAIL_BYTES: u64 = 64 * 1024;

fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Create the anchor (and its folder) if it does not exist yet, 0600.
pub(crate) fn ensure(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    open_options().open(path).map(drop)
}

/// Append `checkpoints` as JSON lines and flush them to disk. A torn last
/// line (a crash in the middle of an append) is closed first, so a new line
/// never runs into it.
pub(crate) fn append(path: &Path, checkpoints: &[Checkpoint]) -> io::Result<()> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let mut file = open_options().open(path)?;
    let mut text = Vec::new();
    if !ends_with_newline(path)? {
        text.push(b'\n');
    }
    for cp in checkpoints {
        serde_json::to_writer(&mut text, cp).map_err(io::Error::other)?;
        text.push(b'\n');
    }
    file.write_all(&text)?;
    file.sync_data()
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The anchor's newest checkpoint (its last line that is a checkpoint
/// record), or None when the file is empty. Reads only the end of the file.
pub(crate) fn last(path: &Path) -> io::Result<Option<Checkpoint>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let mut lines: Vec<&[u8]> = tail.split(|b| *b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // may start in the middle of a line
    }
    Ok(lines
        .iter()
        .rev()
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .find_map(|l| serde_json::from_slice::<Checkpoint>(l).ok()))
}

/// One line of the anchor, as read.
pub(crate) enum Line {
    /// A checkpoint record.
    Checkpoint(Checkpoint),
    /// A line that is not one (a torn append, or an edit); its text is not
    /// kept.
    Unreadable,
}

/// Reads the first `len` bytes of the anchor line by line (the length taken
/// before the store snapshot, so every line read names a checkpoint that
/// snapshot can see).
pub(crate) struct Reader {
    lines: std::io::Lines<BufReader<std::io::Take<File>>>,
    /// 1-based number of the last line returned.
    pub(crate) line_no: u64,
}

impl Reader {
    pub(crate) fn open(path: &Path, len: u64) -> io::Result<Reader> {
        let file = File::open(path)?;
        Ok(Reader {
            lines: BufReader::new(file.take(len)).lines(),
            line_no: 0,
        })
    }
}

impl Iterator for Reader {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.line_no += 1;
                    return Some(Ok(Line::Unreadable));
                }
                Err(e) => return Some(Err(e)),
            };
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            return Some(Ok(match serde_json::from_str(&line) {
                Ok(cp) => Line::Checkpoint(cp),
                Err(_) => Line::Unreadable,
            }));
        }
    }
}

/// The writer lock file of the store at `db`: the writer holds an exclusive
/// lock on it while it runs, so verify can tell a live trail (whose newest
/// events may not be signed yet) from a stopped one (which must be signed
/// to the end).
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Take the writer lock of the store at `db`. Err when another process
/// holds it, or it cannot be taken at all: the journal and the chain belong
/// to one writer, and a second one would fork them.
pub(crate) fn lock_writer(db: &Path) -> Result<File, crate::AuditError> {
    let path = lock_path(db);
    let refuse = |reason: String| crate::AuditError::Open {
        path: db.display().to_string(),
        reason,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(|e| {
        refuse(format!(
            "its writer lock {} cannot be created ({e})",
            path.display()
        ))
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(refuse(format!(
            "another process holds its writer lock ({}): only one gateway may write an audit store; stop it first",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(refuse(format!(
            "its writer lock {} cannot be taken ({e}); put the store on a local file system",
            path.display()
        ))),
    }
}

/// Whether a writer holds the lock of the store at `db`: Some(false) when
/// none does (or there is no lock file: no writer ever ran here, e.g. a
/// copied store), None when it cannot be told.
pub(crate) fn writer_running(db: &Path) -> Option<bool> {
    let file = match File::open(lock_path(db)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Some(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}
