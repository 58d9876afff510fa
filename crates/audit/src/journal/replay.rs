//! Reading the journal back at start: the events the store lacks, checked
//! before anything is built on them.
//!
//! * A segment's name is its first event's seq, and its first line must
//!   say so; segments follow one another without a gap.
//! * Journal copies of the store's unsigned events (those after its last
//!   checkpoint, which nothing signed yet) must equal the store's: a store
//!   tail rewritten while the gateway was down is refused, not signed.
//! * Events beyond the store must continue its chain.
//! * Only the newest segment with data may end torn: a last line without
//!   its newline, or NUL bytes (what a power loss leaves in pages the disk
//!   never got). Everything from there to its end is cut and counted. A
//!   whole line that is not an event, or one that does not chain, is an
//!   edit, and refuses the start, as a broken store does.
//! * At most [`MAX_UNINDEXED`] events (plus one checkpoint interval, what a
//!   power loss can take from the store) are replayed: the gateway never lets
//!   the store fall further behind, so more means someone wrote them.

#[cfg(doc)]
use super::MAX_UNINDEXED;
use super::{segments, StoreTail};
use crate::chain::ChainCursor;
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::journal::Recovery;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Read the events after the store's head back from the segments in `dir`.
pub(super) fn read_back(
    dir: &Path,
    store: &StoreTail<'_>,
    max_replay: u64,
) -> Result<(Vec<AuditEvent>, Recovery), AuditError> {
    let shown = dir.display().to_string();
    let read_err = |e: io::Error| AuditError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let broken = |seq: u64, reason: String| AuditError::Broken {
        path: shown.clone(),
        seq,
        reason,
    };
    let mut list = Vec::new();
    for (first, path) in segments(dir).map_err(read_err)? {
        let len = std::fs::metadata(&path).map_err(read_err)?.len();
        list.push((first, path, len));
    }
    let newest_with_data = list.iter().rposition(|(_, _, len)| *len > 0);
    // Events below this need no reading: the store has them and has signed
    // them (or they chain into what it signed).
    let first_to_check = store
        .unsigned
        .keys()
        .min()
        .copied()
        .unwrap_or(store.head.seq + 1)
        .min(store.head.seq + 1);
    let mut cursor = ChainCursor::after(store.head.seq, &store.head.hash);
    let mut replay = Vec::new();
    let mut recovery = Recovery::default();
    for (i, (first, path, total)) in list.iter().enumerate() {
        let later_start = list[i + 1..]
            .iter()
            .find(|(_, _, len)| *len > 0)
            .map(|(f, _, _)| *f);
        if *total == 0 || later_start.is_some_and(|next| next <= first_to_check) {
            continue;
        }
        let newest = Some(i) == newest_with_data;
        let file = File::open(path).map_err(read_err)?;
        // Never past the length seen at open.
        let mut reader = BufReader::new(file.take(*total));
        let mut offset = 0u64;
        let mut line = Vec::new();
        let mut changed = false;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(read_err)? as u64;
            if n == 0 {
                break;
            }
            if !line.ends_with(b"\n") || line.contains(&0) {
                if !newest {
                    return Err(broken(
                        cursor.next_seq(),
                        format!(
                            "the journal segment {} is cut short or holds zeros at byte {offset}, and a newer \
                             segment follows it",
                            path.display()
                        ),
                    ));
                }
                // A write a power loss tore: never on disk whole, so never
                // acknowledged in strict mode. Cut it and what follows.
                let cut = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(read_err)?;
                cut.set_len(offset).map_err(read_err)?;
                cut.sync_all().map_err(read_err)?;
                recovery.torn_bytes = total - offset;
                tracing::warn!(segment = %path.display(), bytes = total - offset, "cut a torn end from the audit journal");
                break;
            }
            let seq = seq_of(&line);
            if offset == 0 && seq != Some(*first) {
                return Err(broken(
                    *first,
                    format!(
                        "the journal segment {} does not start with event {first}",
                        path.display()
                    ),
                ));
            }
            offset += n;
            match seq {
                Some(seq) if seq < first_to_check => continue,
                _ => {}
            }
            let event: AuditEvent = serde_json::from_slice(&line).map_err(|e| {
                broken(
                    seq.unwrap_or(cursor.next_seq()),
                    format!(
                        "a whole line of the journal segment {} is not an event ({e}): it was edited",
                        path.display()
                    ),
                )
            })?;
            if event.seq <= store.head.seq {
                if let Some(hash) = store.unsigned.get(&event.seq) {
                    if *hash != event.hash {
                        return Err(broken(
                            event.seq,
                            format!(
                                "the store's event {} differs from the journal's copy in {}: the store (or the \
                                 journal) was edited after it was written",
                                event.seq,
                                path.display()
                            ),
                        ));
                    }
                }
                continue;
            }
            cursor
                .check(&event)
                .map_err(|bad| broken(bad.seq, format!("in the journal: {}", bad.reason)))?;
            replay.push(event);
            changed = true;
            if replay.len() as u64 > max_replay {
                return Err(broken(
                    store.head.seq + 1,
                    format!(
                        "the journal holds more than {max_replay} events beyond the store, more than the gateway \
                         ever lets the store fall behind (plus what a power loss can take from the store): they \
                         were not written by it"
                    ),
                ));
            }
        }
        if changed || newest {
            // What is built on next must not outlive a power loss that
            // takes this (after a kill -9 the newest segment's end may
            // still be only in the page cache, replayed or not).
            File::open(path)
                .and_then(|f| f.sync_data())
                .map_err(read_err)?;
        }
    }
    recovery.replayed = replay.len() as u64;
    Ok((replay, recovery))
}

/// The seq a journal line starts with (`{"seq":N,`), read without parsing
/// the line.
fn seq_of(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Delete empty segments other than `keep` (left by a start, or by a
/// rotation whose first write a crash took), so none can sit after the
/// segment appends go to.
pub(super) fn remove_empty_segments(dir: &Path, keep: u64) -> io::Result<()> {
    for (first, path) in segments(dir)? {
        if first != keep && std::fs::metadata(&path)?.len() == 0 {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// How many events the journal in `dir` holds after `store_head`, and the
/// first and last of them (a crashed gateway's events its next start will
/// index). Reads only each line's seq; checks nothing.
pub(crate) fn beyond(dir: &Path, store_head: u64) -> io::Result<Option<(u64, u64, u64)>> {
    let mut found: Option<(u64, u64, u64)> = None;
    let list = match segments(dir) {
        Ok(list) => list,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for (i, (_, path)) in list.iter().enumerate() {
        if list
            .get(i + 1)
            .is_some_and(|(next, _)| *next <= store_head + 1)
        {
            continue;
        }
        let reader = BufReader::new(File::open(path)?);
        for line in reader.split(b'\n') {
            let line = line?;
            match seq_of(&line) {
                Some(seq) if seq > store_head => {
                    found = Some(match found {
                        None => (1, seq, seq),
                        Some((n, first, _)) => (n + 1, first, seq),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(found)
}
