//! Verifying a pack offline, from nothing but its files and the public key
//! the examiner obtained separately. Every check runs even after one fails,
//! so the result names everything that is wrong, not just the first thing.

use crate::pack::{files, hash_file, list_files, FileEntry, Manifest, FORMAT};
use crate::EvidenceError;
use gatehouse_audit::{
    key_fingerprint, verify_manifest_signature, verify_segment_jsonl, AuditEvent, SegmentStart,
    VerifyingKey,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Component, Path};

/// One area of the verification and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `key`, `manifest`, `files`, `chain`, `checkpoints`, `sessions`, `period`.
    pub area: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
}

/// The outcome of [`verify_pack`].
#[derive(Debug, Clone, Serialize)]
pub struct PackVerification {
    /// Every area checked, in order.
    pub checks: Vec<Check>,
    /// Every problem, each in one line that names the file, event or
    /// checkpoint concerned.
    pub problems: Vec<String>,
    /// Notes that are not failures (an unsigned tail).
    pub notes: Vec<String>,
    /// The manifest, when it could be read.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

impl PackVerification {
    /// True when nothing failed.
    pub fn is_verified(&self) -> bool {
        self.problems.is_empty()
    }

    fn fail(&mut self, area: &'static str, problem: String) {
        self.problems.push(format!("{area}: {problem}"));
    }

    fn check(&mut self, area: &'static str, ok: bool, detail: String) {
        self.checks.push(Check { area, ok, detail });
    }
}

fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !path.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Verify the pack in `dir` against `key`.
pub fn verify_pack(dir: &Path, key: &VerifyingKey) -> Result<PackVerification, EvidenceError> {
    let mut v = PackVerification {
        checks: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        manifest: None,
    };
    if !dir.is_dir() {
        return Err(EvidenceError::Invalid(format!(
            "{} is not a folder; give the folder `gatehouse evidence` wrote",
            dir.display()
        )));
    }
    let fingerprint = key_fingerprint(key);

    // 1. The manifest and its signature.
    let manifest_path = dir.join(files::MANIFEST);
    let bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) => {
            v.fail(
                "manifest",
                format!(
                    "{} cannot be read ({e}): nothing in the pack can be trusted without it",
                    files::MANIFEST
                ),
            );
            v.check("manifest", false, "missing".into());
            return Ok(v);
        }
    };
    let signature = std::fs::read_to_string(dir.join(files::SIGNATURE));
    let signature_ok = match &signature {
        Err(e) => {
            v.fail(
                "manifest",
                format!(
                    "{} cannot be read ({e}): the manifest is unsigned",
                    files::SIGNATURE
                ),
            );
            false
        }
        Ok(sig) => match verify_manifest_signature(key, &bytes, sig) {
            Ok(()) => true,
            Err(reason) => {
                v.fail("manifest", format!("{}: {reason}", files::SIGNATURE));
                false
            }
        },
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            v.fail(
                "manifest",
                format!("{} is not a valid manifest ({e})", files::MANIFEST),
            );
            v.check("manifest", false, "unreadable".into());
            return Ok(v);
        }
    };
    if manifest.format != FORMAT {
        v.fail(
            "manifest",
            format!(
                "format is \"{}\", this gatehouse reads \"{FORMAT}\"",
                manifest.format
            ),
        );
    }
    let key_ok = manifest.signing_key.fingerprint == fingerprint;
    if !key_ok {
        v.fail(
            "key",
            format!(
                "the public key given ({fingerprint}) is not the key the manifest names ({}): verify with the \
                 gateway's own public key, obtained from the institution",
                manifest.signing_key.fingerprint
            ),
        );
    }
    v.check(
        "key",
        key_ok,
        format!("public key {fingerprint} (Ed25519), given on the command line"),
    );
    v.check(
        "manifest",
        signature_ok,
        if signature_ok {
            format!(
                "signature valid; written {} by {}",
                manifest.created_at, manifest.generator
            )
        } else {
            "signature does not verify".into()
        },
    );

    // 2. Files: listed = present, same size and hash; nothing extra.
    let mut listed: BTreeMap<String, &FileEntry> = BTreeMap::new();
    for f in &manifest.files {
        if !safe_relative(&f.path) {
            v.fail(
                "files",
                format!(
                    "the manifest lists \"{}\", which is not a path inside the pack",
                    f.path
                ),
            );
            continue;
        }
        listed.insert(f.path.clone(), f);
    }
    let mut present = Vec::new();
    list_files(dir, dir, &mut present)?;
    let present: BTreeSet<String> = present
        .into_iter()
        .map(|f| f.path)
        .filter(|p| p != files::MANIFEST && p != files::SIGNATURE)
        .collect();
    let mut file_problems = 0;
    for (path, entry) in &listed {
        if !present.contains(path) {
            v.fail(
                "files",
                format!(
                    "{path} is listed in the manifest but missing from the pack: it was deleted"
                ),
            );
            file_problems += 1;
            continue;
        }
        let (size, sha) = hash_file(&dir.join(path))?;
        if sha != entry.sha256 {
            v.fail(
                "files",
                format!(
                    "{path}: its SHA-256 is {sha} but the manifest says {} (size {size}, manifest {}): the file was \
                     altered after the pack was signed",
                    entry.sha256, entry.size
                ),
            );
            file_problems += 1;
        } else if size != entry.size {
            v.fail(
                "files",
                format!(
                    "{path}: its size is {size} but the manifest says {}",
                    entry.size
                ),
            );
            file_problems += 1;
        }
    }
    for path in present.difference(&listed.keys().cloned().collect()) {
        v.fail(
            "files",
            format!(
                "{path} is in the pack but not in the signed manifest: it was added after signing"
            ),
        );
        file_problems += 1;
    }
    for required in [files::EVENTS, files::CHECKPOINTS, files::REPORT] {
        if !listed.contains_key(required) {
            v.fail(
                "files",
                format!("the manifest does not list {required}, which every pack has"),
            );
            file_problems += 1;
        }
    }
    v.check(
        "files",
        file_problems == 0,
        format!(
            "{} files listed; {}",
            listed.len(),
            if file_problems == 0 {
                "all present, sizes and SHA-256 match, none added".to_string()
            } else {
                format!("{file_problems} problem(s)")
            }
        ),
    );

    // 3. The chain segment, from the files themselves.
    let events_path = dir.join(files::EVENTS);
    let checkpoints_path = dir.join(files::CHECKPOINTS);
    match (
        std::fs::File::open(&events_path),
        std::fs::File::open(&checkpoints_path),
    ) {
        (Ok(ev), Ok(cp)) => {
            let report =
                verify_segment_jsonl(&mut BufReader::new(ev), &mut BufReader::new(cp), key)?;
            for p in &report.problems {
                v.fail("chain", p.to_string());
            }
            if report.truncated {
                v.fail("chain", "more problems were found than are listed".into());
            }
            let s = &manifest.segment;
            let found = (report.first_seq, report.last_seq, report.events);
            if found != (Some(s.first_seq), Some(s.last_seq), s.events) {
                v.fail(
                    "chain",
                    format!(
                        "the manifest says events {}–{} ({} events) but {} holds {} ({} events)",
                        s.first_seq,
                        s.last_seq,
                        s.events,
                        files::EVENTS,
                        match (report.first_seq, report.last_seq) {
                            (Some(a), Some(b)) => format!("events {a}–{b}"),
                            _ => "no events".into(),
                        },
                        report.events
                    ),
                );
            }
            if report.closing_checkpoint != s.closing_checkpoint {
                v.fail(
                    "checkpoints",
                    format!(
                        "the manifest says the segment closes at {} but the verified checkpoints close it at {}",
                        closing_text(s.closing_checkpoint),
                        closing_text(report.closing_checkpoint)
                    ),
                );
            }
            let start = match &report.start {
                SegmentStart::Genesis => "starts at event 1 (genesis)".to_string(),
                SegmentStart::Checkpoint {
                    checkpoint,
                    event_seq,
                } => {
                    format!("starts right after signed checkpoint {checkpoint} (event {event_seq})")
                }
                SegmentStart::Unanchored => "start NOT anchored".to_string(),
                SegmentStart::Empty => "no events".to_string(),
            };
            let chain_ok =
                report.problems.iter().all(|p| p.checkpoint.is_none()) && report.is_intact();
            v.check(
                "chain",
                report.is_intact(),
                format!(
                    "events {}–{} ({} events): every hash and link {}; {start}",
                    report.first_seq.unwrap_or(0),
                    report.last_seq.unwrap_or(0),
                    report.events,
                    if chain_ok {
                        "checks"
                    } else {
                        "checked, problems listed below"
                    }
                ),
            );
            let cp_problems = report
                .problems
                .iter()
                .filter(|p| p.checkpoint.is_some())
                .count();
            v.check(
                "checkpoints",
                cp_problems == 0,
                format!(
                    "{} checkpoints, {}; closes at {}",
                    report.checkpoints,
                    if cp_problems == 0 {
                        "every signature valid and every signed hash matches its event".to_string()
                    } else {
                        format!("{cp_problems} problem(s)")
                    },
                    closing_text(report.closing_checkpoint)
                ),
            );
            if report.unsigned_tail > 0 {
                v.notes.push(format!(
                    "the last {} event(s) of the segment (events {}–{}) are after the last signed checkpoint: they \
                     are protected by the hash chain and by the manifest's signature, not by a checkpoint the gateway \
                     signed as it wrote them",
                    report.unsigned_tail,
                    report.last_seq.unwrap_or(0) + 1 - report.unsigned_tail,
                    report.last_seq.unwrap_or(0)
                ));
            }
            let p = &manifest.period;
            if let (Some(a), Some(b)) = (report.first_seq, report.last_seq) {
                if p.first_seq < a || p.last_seq > b || p.first_seq > p.last_seq {
                    v.fail(
                        "period",
                        format!(
                            "the period's events {}–{} are not inside the segment {a}–{b}",
                            p.first_seq, p.last_seq
                        ),
                    );
                }
            }
        }
        (ev, cp) => {
            for (r, name) in [(ev.err(), files::EVENTS), (cp.err(), files::CHECKPOINTS)] {
                if let Some(e) = r {
                    v.fail("chain", format!("{name} cannot be read ({e})"));
                }
            }
            v.check("chain", false, "cannot be checked".into());
        }
    }

    // 4. Session recordings are exactly their events in events.jsonl.
    let session_problems = check_sessions(dir, &manifest, &mut v)?;
    v.check(
        "sessions",
        session_problems == 0,
        format!(
            "{} session recordings {}",
            manifest.sessions.len(),
            if session_problems == 0 {
                "match their events in the chain line for line".to_string()
            } else {
                format!("checked, {session_problems} problem(s)")
            }
        ),
    );
    // 5. Terminal recordings are the files the chain recorded.
    let recording_problems = check_recordings(dir, &manifest, &mut v)?;
    v.check(
        "recordings",
        recording_problems == 0,
        format!(
            "{} terminal recordings {}",
            manifest.recordings.len(),
            if recording_problems == 0 {
                "each with the SHA-256 its recording event holds".to_string()
            } else {
                format!("checked, {recording_problems} problem(s)")
            }
        ),
    );
    v.check(
        "period",
        !v.problems.iter().any(|p| p.starts_with("period:")),
        format!(
            "{}: events {}–{}",
            crate::report::period_text(&manifest.period),
            manifest.period.first_seq,
            manifest.period.last_seq
        ),
    );
    v.manifest = Some(manifest);
    Ok(v)
}

/// Each terminal recording the manifest lists is the file whose SHA-256
/// the chain's `recording` event of that session recorded (so a recording
/// is bound to the signed chain, not only to the manifest).
fn check_recordings(
    dir: &Path,
    manifest: &Manifest,
    v: &mut PackVerification,
) -> Result<usize, EvidenceError> {
    if manifest.recordings.is_empty() {
        return Ok(0);
    }
    let mut recorded: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    if let Ok(file) = std::fs::File::open(dir.join(files::EVENTS)) {
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
                continue;
            };
            if event.kind != "recording"
                || event.seq < manifest.period.first_seq
                || event.seq > manifest.period.last_seq
            {
                continue;
            }
            let text = |k: &str| {
                event
                    .data
                    .get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            recorded.insert(
                (event.session_id.clone().unwrap_or_default(), text("file")),
                (event.seq, text("sha256")),
            );
        }
    }
    let mut problems = 0;
    for r in &manifest.recordings {
        if !safe_relative(&r.path) {
            v.fail(
                "recordings",
                format!(
                    "the manifest names \"{}\" as a recording, which is not a path inside the pack",
                    r.path
                ),
            );
            problems += 1;
            continue;
        }
        let Some((seq, want)) = recorded.get(&(r.session.clone(), r.file.clone())) else {
            v.fail(
                "recordings",
                format!(
                    "{}: no recording event of session {} names {} in {}",
                    r.path,
                    r.session,
                    r.file,
                    files::EVENTS
                ),
            );
            problems += 1;
            continue;
        };
        let path = dir.join(&r.path);
        if !path.is_file() {
            v.fail(
                "recordings",
                format!("{} cannot be read (it is missing)", r.path),
            );
            problems += 1;
            continue;
        }
        let (_, sha) = hash_file(&path)?;
        if &sha != want {
            v.fail(
                "recordings",
                format!(
                    "{}: its SHA-256 is {sha} but event {seq} recorded {want}: it is not the recording the gateway made",
                    r.path
                ),
            );
            problems += 1;
        }
    }
    Ok(problems)
}

fn closing_text(c: Option<(u64, u64)>) -> String {
    match c {
        Some((cp, e)) => format!("checkpoint {cp} (event {e})"),
        None => "no checkpoint".into(),
    }
}

fn line_hash(line: &str) -> [u8; 32] {
    Sha256::digest(line.as_bytes()).into()
}

fn check_sessions(
    dir: &Path,
    manifest: &Manifest,
    v: &mut PackVerification,
) -> Result<usize, EvidenceError> {
    // The chain's lines per session (hashes only, in order), within the period.
    let mut expected: BTreeMap<&str, Vec<(u64, [u8; 32])>> = BTreeMap::new();
    let ids: BTreeSet<&str> = manifest.sessions.iter().map(|s| s.id.as_str()).collect();
    let Ok(file) = std::fs::File::open(dir.join(files::EVENTS)) else {
        return Ok(0);
    };
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
            continue;
        };
        if event.seq < manifest.period.first_seq || event.seq > manifest.period.last_seq {
            continue;
        }
        if let Some(sid) = event.session_id.as_deref() {
            if let Some(id) = ids.get(sid) {
                expected
                    .entry(id)
                    .or_default()
                    .push((event.seq, line_hash(&line)));
            }
        }
    }
    let mut problems = 0;
    for s in &manifest.sessions {
        if !safe_relative(&s.events_file) {
            v.fail(
                "sessions",
                format!(
                    "the manifest names \"{}\" as a recording, which is not a path inside the pack",
                    s.events_file
                ),
            );
            problems += 1;
            continue;
        }
        let want = expected.get(s.id.as_str()).cloned().unwrap_or_default();
        let got: Vec<String> = match std::fs::read_to_string(dir.join(&s.events_file)) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) => {
                v.fail(
                    "sessions",
                    format!("{} cannot be read ({e})", s.events_file),
                );
                problems += 1;
                continue;
            }
        };
        if got.len() != want.len() {
            v.fail(
                "sessions",
                format!(
                    "{} holds {} events but {} has {} for session {}",
                    s.events_file,
                    got.len(),
                    files::EVENTS,
                    want.len(),
                    s.id
                ),
            );
            problems += 1;
        }
        if let Some((i, (seq, _))) = want
            .iter()
            .zip(&got)
            .enumerate()
            .find(|(_, (w, g))| w.1 != line_hash(g))
            .map(|(i, (w, _))| (i, w))
        {
            v.fail(
                "sessions",
                format!(
                    "{} line {}: it is not event {seq} of session {} as it stands in {}",
                    s.events_file,
                    i + 1,
                    s.id,
                    files::EVENTS
                ),
            );
            problems += 1;
        }
    }
    Ok(problems)
}
