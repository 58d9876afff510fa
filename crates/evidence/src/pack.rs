//! Building a pack: choose the chain segment that covers the period and is
//! anchored by signed checkpoints, write the events, recordings, report and
//! control map, then list every file in a manifest signed with the gateway's
//! key.

use crate::facts::Facts;
use crate::{controls, report, EvidenceError};
use gatehouse_audit::{
    export_range_jsonl, key_fingerprint, parse_time_bound, period_seq_range, read_checkpoints,
    verify_segment_jsonl, AuditEvent, AuditSigner, Checkpoint, SegmentReport, SegmentStart,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The specification written into every pack as `SPEC.md`.
pub const SPEC_TEXT: &str = include_str!("../SPEC.md");

/// The manifest's format tag.
pub const FORMAT: &str = "gatehouse.evidence.pack.v1";

/// File names inside a pack.
pub mod files {
    /// The manifest (signed).
    pub const MANIFEST: &str = "manifest.json";
    /// The manifest's signature (hex Ed25519).
    pub const SIGNATURE: &str = "manifest.sig";
    /// The chain segment.
    pub const EVENTS: &str = "events.jsonl";
    /// The checkpoints anchoring it.
    pub const CHECKPOINTS: &str = "checkpoints.jsonl";
    /// The human-readable report.
    pub const REPORT: &str = "report.html";
    /// The control map, as a page.
    pub const CONTROL_MAP_HTML: &str = "control-map.html";
    /// The control map, as JSON.
    pub const CONTROL_MAP_JSON: &str = "control-map.json";
    /// The facts behind the report, as JSON.
    pub const SUMMARY: &str = "summary.json";
    /// How to verify, in plain text.
    pub const README: &str = "README.txt";
    /// The pack's specification: formats and how to verify independently.
    pub const SPEC: &str = "SPEC.md";
    /// Per-session recordings.
    pub const SESSIONS_DIR: &str = "sessions";
    /// Terminal recordings (asciicast) and their player pages.
    pub const RECORDINGS_DIR: &str = "recordings";
    /// The vendored player, inside [`RECORDINGS_DIR`].
    pub const PLAYER_DIR: &str = "recordings/player";
}

/// asciinema-player 3.18.0 (Apache-2.0), vendored in the console.
const PLAYER_JS: &str =
    include_str!("../../console/static/asciinema-player/asciinema-player.min.js");
const PLAYER_CSS: &str = include_str!("../../console/static/asciinema-player/asciinema-player.css");
const PLAYER_LICENSE: &str = include_str!("../../console/static/asciinema-player/LICENSE");
/// Starts the player on the recording embedded in the page (a file:// page
/// cannot fetch the .cast beside it).
const PLAY_JS: &str = "// Gatehouse evidence pack: play the recording embedded in this page, offline.\n\
(function () {\n\
  'use strict';\n\
  var el = document.getElementById('player');\n\
  var cast = document.getElementById('cast');\n\
  if (!el || !cast || !window.AsciinemaPlayer) { return; }\n\
  window.AsciinemaPlayer.create({ data: cast.textContent }, el, { fit: 'width', idleTimeLimit: 2, preload: true });\n\
  el.setAttribute('data-ready', '1');\n\
})();\n";

/// Where to find what the trail only references.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// The gateway's terminal recordings folder (`state_dir/recordings`):
    /// the period's recordings are copied into the pack when their SHA-256
    /// is the one the trail recorded. None leaves them out.
    pub recordings_dir: Option<PathBuf>,
}

/// One terminal recording in the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// The session it belongs to.
    pub session: String,
    /// The file name the `recording` event names.
    pub file: String,
    /// Its path in the pack.
    pub path: String,
    /// Its player page.
    pub player: String,
    /// SHA-256, hex (equal to the `recording` event's).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The `recording` event.
    pub event_seq: u64,
}

/// Which events a pack covers, and what anchors them.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    /// The period as asked (normalized), start inclusive.
    pub from: Option<String>,
    /// The period as asked (normalized), end exclusive.
    pub to: Option<String>,
    /// First and last event in the period.
    pub period: (u64, u64),
    /// First event of the segment (after the opening checkpoint, or 1).
    pub first_seq: u64,
    /// Last event of the segment (the closing checkpoint's, or the period's
    /// last when no checkpoint covers it yet).
    pub last_seq: u64,
    /// The checkpoints from the opening one to the closing one.
    pub checkpoints: Vec<Checkpoint>,
    /// The closing checkpoint, when one covers the period's last event.
    pub closing: Option<Checkpoint>,
}

impl SegmentPlan {
    /// Whether a signed checkpoint covers the period's last event.
    pub fn is_closed(&self) -> bool {
        self.closing.is_some()
    }
}

/// Plan the segment for events at or after `from` and before `to` in the
/// trail at `db`.
pub fn plan_segment(
    db: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<SegmentPlan, EvidenceError> {
    let norm = |what: &str, v: Option<&str>| -> Result<Option<String>, EvidenceError> {
        v.map(|t| {
            parse_time_bound(t).ok_or_else(|| {
                EvidenceError::Invalid(format!(
                    "--{what} \"{t}\" is not a time; use a date (2025-01-31) or RFC 3339 (2025-01-31T09:00:00Z)"
                ))
            })
        })
        .transpose()
    };
    let from = norm("from", from)?;
    let to = norm("to", to)?;
    if let (Some(f), Some(t)) = (&from, &to) {
        if f >= t {
            return Err(EvidenceError::Invalid(format!(
                "--from ({f}) must be before --to ({t})"
            )));
        }
    }
    let period = period_seq_range(db, from.as_deref(), to.as_deref())?.ok_or_else(|| {
        EvidenceError::Invalid(format!(
            "the audit trail has no events from {} to {}; check the period (times are UTC)",
            from.as_deref().unwrap_or("the beginning"),
            to.as_deref().unwrap_or("now")
        ))
    })?;
    let all = read_checkpoints(db)?;
    let opening = all.iter().rfind(|cp| cp.event_seq < period.0).cloned();
    let closing = all.iter().find(|cp| cp.event_seq >= period.1).cloned();
    let first_seq = opening.as_ref().map_or(1, |cp| cp.event_seq + 1);
    let last_seq = closing.as_ref().map_or(period.1, |cp| cp.event_seq);
    let lo = opening.as_ref().map_or(0, |cp| cp.seq);
    let hi = closing.as_ref().map_or(u64::MAX, |cp| cp.seq);
    let checkpoints = all
        .into_iter()
        .filter(|cp| cp.seq >= lo && cp.seq <= hi && cp.event_seq <= last_seq)
        .collect();
    Ok(SegmentPlan {
        from,
        to,
        period,
        first_seq,
        last_seq,
        checkpoints,
        closing,
    })
}

/// One file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the pack, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// One session's recording in the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// The session id as recorded.
    pub id: String,
    /// Its events, JSON lines (exact lines of events.jsonl).
    pub events_file: String,
    /// Its timeline page.
    pub html_file: String,
    /// Events in the recording.
    pub events: u64,
}

/// The period a pack was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start (inclusive), UTC; None means from the first event.
    pub from: Option<String>,
    /// End (exclusive), UTC; None means up to the time of export.
    pub to: Option<String>,
    /// First event in the period.
    pub first_seq: u64,
    /// Last event in the period.
    pub last_seq: u64,
}

/// The segment as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// First event.
    pub first_seq: u64,
    /// Last event.
    pub last_seq: u64,
    /// Events in events.jsonl.
    pub events: u64,
    /// Checkpoints in checkpoints.jsonl.
    pub checkpoints: u64,
    /// What anchors the start.
    pub start: SegmentStart,
    /// The closing checkpoint (number, event covered), if any.
    pub closing_checkpoint: Option<(u64, u64)>,
    /// Events after the closing checkpoint (covered by the hash chain and
    /// this manifest's signature only).
    pub unsigned_tail: u64,
}

/// The key that signed the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// `SHA256:` + hex of the raw public key.
    pub fingerprint: String,
}

/// `manifest.json`: what the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The program that wrote the pack.
    pub generator: String,
    /// When it was written (UTC).
    pub created_at: String,
    /// The period.
    pub period: Period,
    /// The chain segment.
    pub segment: Segment,
    /// The key (for people; verification takes the key from the examiner).
    pub signing_key: KeyInfo,
    /// Session recordings.
    pub sessions: Vec<SessionEntry>,
    /// Terminal recordings (absent in packs written before they were
    /// included).
    #[serde(default)]
    pub recordings: Vec<RecordingEntry>,
    /// Every other file in the pack, sorted by path.
    pub files: Vec<FileEntry>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The manifest as signed.
    pub manifest: Manifest,
    /// The segment's verification at export.
    pub verification: SegmentReport,
    /// Facts of the period.
    pub facts: Facts,
}

/// The session id as a file name: itself when plain, else a stand-in.
fn session_file_stem(id: &str, n: usize) -> String {
    let plain = !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        id.to_string()
    } else {
        format!("session-{n:05}")
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EvidenceError + '_ {
    move |e| EvidenceError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EvidenceError> {
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// Write a pack for `plan` from the trail at `db` into `out` (which must not
/// exist or be empty), signing its manifest with `signer`.
pub fn write_pack(
    db: &Path,
    plan: &SegmentPlan,
    signer: &AuditSigner,
    out: &Path,
    generator: &str,
) -> Result<PackSummary, EvidenceError> {
    write_pack_with(db, plan, signer, out, generator, &PackOptions::default())
}

/// [`write_pack`], with the terminal recordings of `options`.
pub fn write_pack_with(
    db: &Path,
    plan: &SegmentPlan,
    signer: &AuditSigner,
    out: &Path,
    generator: &str,
    options: &PackOptions,
) -> Result<PackSummary, EvidenceError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io_err(out))?;
        if entries.next().is_some() {
            return Err(EvidenceError::Invalid(format!(
                "{} is not empty; give a new folder for the pack",
                out.display()
            )));
        }
    }
    let sessions_dir = out.join(files::SESSIONS_DIR);
    std::fs::create_dir_all(&sessions_dir).map_err(io_err(&sessions_dir))?;
    let key = signer.verifying_key();
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // The segment, exactly as stored.
    let events_path = out.join(files::EVENTS);
    {
        let file = std::fs::File::create(&events_path).map_err(io_err(&events_path))?;
        let mut w = std::io::BufWriter::new(file);
        export_range_jsonl(db, &mut w, plan.first_seq, plan.last_seq)?;
        w.flush().map_err(io_err(&events_path))?;
    }
    let checkpoints_path = out.join(files::CHECKPOINTS);
    let mut cp_text = String::new();
    for cp in &plan.checkpoints {
        cp_text.push_str(&serde_json::to_string(cp).map_err(EvidenceError::json)?);
        cp_text.push('\n');
    }
    write_file(&checkpoints_path, cp_text.as_bytes())?;

    // Verify what was written, from the files themselves.
    let verification = {
        let mut ev =
            BufReader::new(std::fs::File::open(&events_path).map_err(io_err(&events_path))?);
        let mut cp = BufReader::new(
            std::fs::File::open(&checkpoints_path).map_err(io_err(&checkpoints_path))?,
        );
        verify_segment_jsonl(&mut ev, &mut cp, &key)?
    };

    // Read the lines back: events for the report, raw lines for recordings.
    let mut period_events: Vec<AuditEvent> = Vec::new();
    let mut by_session: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut session_order: Vec<String> = Vec::new();
    let reader = BufReader::new(std::fs::File::open(&events_path).map_err(io_err(&events_path))?);
    for line in reader.lines() {
        let line = line.map_err(io_err(&events_path))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: AuditEvent = serde_json::from_str(&line).map_err(EvidenceError::json)?;
        if event.seq < plan.period.0 || event.seq > plan.period.1 {
            continue;
        }
        if let Some(sid) = &event.session_id {
            if !by_session.contains_key(sid) {
                session_order.push(sid.clone());
            }
            by_session
                .entry(sid.clone())
                .or_default()
                .push(line.clone());
        }
        period_events.push(event);
    }
    let facts = Facts::gather(&period_events);

    // Terminal recordings, bound to the chain by the SHA-256 their
    // `recording` event carries.
    let (recordings, left_out) =
        copy_recordings(out, options.recordings_dir.as_deref(), &period_events)?;

    // Session recordings.
    let mut sessions = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for (n, sid) in session_order.iter().enumerate() {
        let mut stem = session_file_stem(sid, n + 1);
        if !used.insert(stem.to_lowercase()) {
            stem = format!("session-{:05}", n + 1);
            used.insert(stem.clone());
        }
        let lines = &by_session[sid];
        let mut text = lines.join("\n");
        text.push('\n');
        let events_file = format!("{}/{stem}.jsonl", files::SESSIONS_DIR);
        let html_file = format!("{}/{stem}.html", files::SESSIONS_DIR);
        write_file(&out.join(&events_file), text.as_bytes())?;
        let events: Vec<&AuditEvent> = period_events
            .iter()
            .filter(|e| e.session_id.as_deref() == Some(sid.as_str()))
            .collect();
        let facts_of = facts.sessions.iter().find(|s| &s.id == sid);
        let page = report::session_page(
            sid,
            facts_of,
            &events,
            &format!("{stem}.jsonl"),
            &recordings,
        );
        write_file(&out.join(&html_file), page.as_bytes())?;
        sessions.push(SessionEntry {
            id: sid.clone(),
            events_file,
            html_file,
            events: lines.len() as u64,
        });
    }

    let segment = Segment {
        first_seq: plan.first_seq,
        last_seq: plan.last_seq,
        events: verification.events,
        checkpoints: verification.checkpoints,
        start: verification.start.clone(),
        closing_checkpoint: verification.closing_checkpoint,
        unsigned_tail: verification.unsigned_tail,
    };
    let period = Period {
        from: plan.from.clone(),
        to: plan.to.clone(),
        first_seq: plan.period.0,
        last_seq: plan.period.1,
    };
    let signing_key = KeyInfo {
        algorithm: "Ed25519".into(),
        fingerprint: key_fingerprint(&key),
    };
    let context = report::ReportContext {
        created_at: &created_at,
        generator,
        period: &period,
        segment: &segment,
        key: &signing_key,
        verification: &verification,
        checkpoints: &plan.checkpoints,
        sessions: &sessions,
        recordings: &recordings,
        left_out: &left_out,
    };
    write_file(
        &out.join(files::REPORT),
        report::report_page(&context, &facts).as_bytes(),
    )?;
    write_file(
        &out.join(files::CONTROL_MAP_HTML),
        controls::control_map_html(&report::period_text(&period)).as_bytes(),
    )?;
    write_file(
        &out.join(files::CONTROL_MAP_JSON),
        serde_json::to_string_pretty(&controls::control_map_json())
            .map_err(EvidenceError::json)?
            .as_bytes(),
    )?;
    write_file(
        &out.join(files::SUMMARY),
        serde_json::to_string_pretty(&facts)
            .map_err(EvidenceError::json)?
            .as_bytes(),
    )?;
    write_file(
        &out.join(files::README),
        readme(&period, &signing_key).as_bytes(),
    )?;
    write_file(&out.join(files::SPEC), SPEC_TEXT.as_bytes())?;

    // The manifest: every file but itself and its signature.
    let mut entries = Vec::new();
    list_files(out, out, &mut entries)?;
    entries.retain(|e| e.path != files::MANIFEST && e.path != files::SIGNATURE);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        format: FORMAT.into(),
        generator: generator.into(),
        created_at,
        period,
        segment,
        signing_key,
        sessions,
        recordings,
        files: entries,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(EvidenceError::json)?;
    bytes.push(b'\n');
    write_file(&out.join(files::MANIFEST), &bytes)?;
    let signature = signer.sign_manifest(&bytes);
    write_file(
        &out.join(files::SIGNATURE),
        format!("{signature}\n").as_bytes(),
    )?;
    Ok(PackSummary {
        manifest,
        verification,
        facts,
    })
}

/// A recording of the period left out of the pack: its file and why.
type LeftOut = (String, String);

/// A file name the gateway could have written: no folders, no tricks.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Copy the period's terminal recordings into `out/recordings` with a
/// player page each; a recording missing from `dir` or whose content is
/// not what the trail recorded is left out and said so.
fn copy_recordings(
    out: &Path,
    dir: Option<&Path>,
    events: &[AuditEvent],
) -> Result<(Vec<RecordingEntry>, Vec<LeftOut>), EvidenceError> {
    let mut entries = Vec::new();
    let mut left_out = Vec::new();
    let recorded: Vec<&AuditEvent> = events.iter().filter(|e| e.kind == "recording").collect();
    if recorded.is_empty() {
        return Ok((entries, left_out));
    }
    let Some(dir) = dir else {
        for e in recorded {
            let file = e.data.get("file").and_then(|f| f.as_str()).unwrap_or("");
            left_out.push((
                file.to_string(),
                "the recordings folder was not given to the export".to_string(),
            ));
        }
        return Ok((entries, left_out));
    };
    let player_dir = out.join(files::PLAYER_DIR);
    for e in recorded {
        let file = e
            .data
            .get("file")
            .and_then(|f| f.as_str())
            .unwrap_or("")
            .to_string();
        let want = e
            .data
            .get("sha256")
            .and_then(|f| f.as_str())
            .unwrap_or("")
            .to_string();
        if !plain_file_name(&file) || file.ends_with(".html") {
            left_out.push((file, format!("event {} names no plain file name", e.seq)));
            continue;
        }
        let bytes = match std::fs::read(dir.join(&file)) {
            Ok(b) => b,
            Err(err) => {
                left_out.push((
                    file,
                    format!("it cannot be read from the recordings folder ({err})"),
                ));
                continue;
            }
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha != want {
            left_out.push((
                file,
                format!(
                    "its SHA-256 ({sha}) is not the one event {} recorded ({want}): it was altered after it was \
                     closed",
                    e.seq
                ),
            ));
            continue;
        }
        if entries.is_empty() {
            std::fs::create_dir_all(&player_dir).map_err(io_err(&player_dir))?;
            write_file(
                &player_dir.join("asciinema-player.min.js"),
                PLAYER_JS.as_bytes(),
            )?;
            write_file(
                &player_dir.join("asciinema-player.css"),
                PLAYER_CSS.as_bytes(),
            )?;
            write_file(&player_dir.join("LICENSE"), PLAYER_LICENSE.as_bytes())?;
            write_file(&player_dir.join("play.js"), PLAY_JS.as_bytes())?;
        }
        let path = format!("{}/{file}", files::RECORDINGS_DIR);
        let player = format!("{path}.html");
        write_file(&out.join(&path), &bytes)?;
        let session = e.session_id.clone().unwrap_or_default();
        let page = report::player_page(&file, e, &String::from_utf8_lossy(&bytes));
        write_file(&out.join(&player), page.as_bytes())?;
        entries.push(RecordingEntry {
            session,
            file,
            path,
            player,
            sha256: sha,
            size: bytes.len() as u64,
            event_seq: e.seq,
        });
    }
    Ok((entries, left_out))
}

/// Every regular file under `dir`, with paths relative to `root`.
pub(crate) fn list_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<FileEntry>,
) -> Result<(), EvidenceError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort();
    for path in names {
        let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            list_files(root, &path, out)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let (size, sha256) = if meta.is_file() {
            hash_file(&path)?
        } else {
            (0, String::new())
        };
        out.push(FileEntry {
            path: rel,
            size,
            sha256,
        });
    }
    Ok(())
}

/// Size and SHA-256 of a file, streaming.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), EvidenceError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn readme(period: &Period, key: &KeyInfo) -> String {
    format!(
        "Gatehouse evidence pack\n\
         =======================\n\n\
         Period: {period}\n\
         Signed with the gateway's Ed25519 key {fp}\n\n\
         Open report.html in a browser (it works offline and prints). control-map.html maps each\n\
         artifact to FFIEC, NIST CSF 2.0 and PCI DSS 4.0.1 requirement 10, stating what it shows.\n\n\
         To check this pack, obtain the gateway's public key from the institution through a\n\
         separate channel (the operator prints it with `gatehouse audit public-key --config FILE`)\n\
         and compare its fingerprint with the one above, then run:\n\n\
         \x20   gatehouse evidence verify THIS_FOLDER --public-key gateway.pub\n\n\
         That checks, offline: the manifest's signature; every file's size and SHA-256 against the\n\
         manifest (and that no file was added or removed); every event's hash and its link to the\n\
         one before; every checkpoint's signature and the hash it signed; that both ends of the\n\
         segment are anchored by signed checkpoints (or event 1); and that each session recording\n\
         is exactly that session's events. It names every problem it finds.\n\n\
         Files\n\
         -----\n\
         manifest.json, manifest.sig   what the signature covers, and the signature (hex)\n\
         events.jsonl                  the chain segment: one event per line, exactly as hashed\n\
         checkpoints.jsonl             the signed checkpoints anchoring it\n\
         sessions/*.jsonl, *.html      each session's events, and a readable timeline\n\
         report.html                   the report for people\n\
         summary.json                  the figures behind the report\n\
         control-map.html, .json       the control map\n\
         SPEC.md                       the formats, and how to verify without Gatehouse\n\n\
         SPEC.md specifies every format (event hash, canonical JSON, checkpoint and manifest\n\
         signatures) and every check, so the pack can be verified without the vendor's binary.\n\
         An independent verifier written from it ships with Gatehouse (tools/verify_pack.py;\n\
         Python 3 and the `cryptography` package):\n\n\
         \x20   python3 verify_pack.py THIS_FOLDER --public-key gateway.pub\n",
        period = report::period_text(period),
        fp = key.fingerprint
    )
}
