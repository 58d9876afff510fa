//! One session channel, relayed between the client and the target.
//!
//! Requests are forwarded with `want_reply` set so the target's answer can
//! be passed back in order; exec requests are decided first (allow, block
//! with a message on stderr and exit status 126, or hold for approval with
//! "waiting for approval #N" on stderr). Output is recorded, masked, in
//! asciicast v2; SFTP packets are framed to record file names and sizes
//! and to refuse opens by rule.
//!
//! On a connection that masks what the user sees (`mask_terminal`, caller
//! not exempt), terminal output is masked packet by packet, an exec
//! without a terminal as two streams (`Relay::exec_output`), and
//! downloads (SFTP reads, `scp -f`) as described in [`crate::download`].

mod admission;

use crate::download::{self, Binary, ScpDownload, SftpDownloads};
use crate::line::{Key, LineBuf};
use crate::recording::Recording;
use crate::sftp;
use crate::target::Target;
use crate::Live;
use gatehouse_core::classify::shell::{self, ShellFacts, ShellKind};
use gatehouse_core::deadline::SessionEnd;
use gatehouse_core::events::{
    CommandDetail, CommandEvent, CommandResult, Event, FileTransfer, Pty, ShellCommand, ShellOpened,
};
use gatehouse_core::lifecycle::{Admitted, Command, NotApproved, Refusal};
use gatehouse_core::mask::{Masker, NotText, TextStream};
use gatehouse_core::Verdict;
use russh::client;
use russh::server::{self, Msg};
use russh::{Channel, ChannelId, ChannelMsg};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Exit status of a command the gateway refused.
pub const REFUSED_EXIT_STATUS: u32 = 126;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No shell, exec or subsystem yet.
    Idle,
    Shell,
    Exec,
    /// scp: file bytes, not terminal output; counted, not recorded.
    Transfer,
    Sftp,
}

struct Relay {
    live: Arc<Live>,
    number: u32,
    id: ChannelId,
    client: Channel<Msg>,
    handle: server::Handle,
    tgt: Channel<client::Msg>,
    /// Whether the client wants the answer to each forwarded request.
    pending: VecDeque<bool>,
    mode: Mode,
    pty: Option<(String, u32, u32)>,
    env: Vec<String>,
    recording: Option<Recording>,
    line: LineBuf,
    /// The end of recent output, to spot password prompts.
    tail: Vec<u8>,
    /// The exec command being run: its audit id, facts and start.
    exec: Option<(u64, ShellFacts, Instant)>,
    transfer_bytes: u64,
    sftp_in: sftp::Framer,
    sftp_out: sftp::Framer,
    tracker: sftp::Tracker,
    mask_terminal: bool,
    /// Set when downloads are masked: `mask_terminal` on the connection
    /// and the caller not exempt from the detectors.
    file_masker: Option<Arc<Masker>>,
    downloads: SftpDownloads,
    /// scp -f on a masking connection.
    scp: Option<ScpDownload>,
    /// An exec without a terminal on a masking connection: its stdout and
    /// stderr masked as streams (see `Relay::exec_output`).
    exec_text: Option<ExecText>,
    exit_status: Option<u32>,
    /// Set when the session's deadline cut this channel off.
    cut: Option<String>,
}

/// The output streams of an exec without a terminal, masked whole.
#[derive(Default)]
struct ExecText {
    /// stdout, stderr.
    streams: [TextStream; 2],
    /// Binary output allowed by this rule: passed unchanged.
    passed: Option<String>,
    /// Why the output was refused.
    refused: Option<String>,
}

impl ExecText {
    /// The `output_masking` object of the command's result event.
    fn summary(&self) -> serde_json::Value {
        let mut counts = gatehouse_core::mask::MaskCounts::default();
        for s in &self.streams {
            counts.merge(&s.counts);
        }
        let result = match (&self.passed, &self.refused) {
            (_, Some(_)) => "refused",
            (Some(_), None) => "passed",
            (None, None) => "masked",
        };
        serde_json::json!({
            "result": result,
            "masked": counts,
            "rule": self.passed,
            "reason": self.refused,
        })
    }
}

enum Next {
    Client(Option<ChannelMsg>),
    Target(Option<ChannelMsg>),
    Deadline(SessionEnd),
}

/// Relay one session channel until either side closes it.
pub async fn run(live: Arc<Live>, client: Channel<Msg>, handle: server::Handle) {
    let id = client.id();
    let target: Result<Arc<Target>, String> = live.target().await;
    let tgt = match target {
        Ok(t) => t
            .channel_open_session()
            .await
            .map_err(|e| format!("gatehouse could not open a channel on the target: {e}")),
        Err(e) => Err(e),
    };
    let tgt = match tgt {
        Ok(t) => t,
        Err(message) => return refuse_channel(client, handle, &message).await,
    };
    let mask_terminal = live.connection.as_ref().is_some_and(|c| c.mask_terminal);
    let file_masker = (mask_terminal && live.pipeline.policy.detectors_apply(&live.scope.identity))
        .then(|| live.pipeline.masker.clone());
    let number = live.next_channel();
    let mut relay = Relay {
        live,
        number,
        id,
        client,
        handle,
        tgt,
        pending: VecDeque::new(),
        mode: Mode::Idle,
        pty: None,
        env: Vec::new(),
        recording: None,
        line: LineBuf::default(),
        tail: Vec::new(),
        exec: None,
        transfer_bytes: 0,
        sftp_in: sftp::Framer::default(),
        sftp_out: sftp::Framer::default(),
        tracker: sftp::Tracker::default(),
        mask_terminal,
        file_masker,
        downloads: SftpDownloads::default(),
        scp: None,
        exec_text: None,
        exit_status: None,
        cut: None,
    };
    relay.pump().await;
    relay.finish().await;
    relay.live.channel_done();
}

/// Answer every request on a channel the caller may not use with `message`
/// on stderr and exit status 255.
async fn refuse_channel(mut client: Channel<Msg>, handle: server::Handle, message: &str) {
    let id = client.id();
    while let Some(msg) = client.wait().await {
        match msg {
            ChannelMsg::RequestPty {
                want_reply: true, ..
            }
            | ChannelMsg::SetEnv {
                want_reply: true, ..
            } => {
                let _ = handle.channel_success(id).await;
            }
            ChannelMsg::RequestShell { want_reply }
            | ChannelMsg::Exec { want_reply, .. }
            | ChannelMsg::RequestSubsystem { want_reply, .. } => {
                if want_reply {
                    let _ = handle.channel_success(id).await;
                }
                let _ = client
                    .extended_data_bytes(1, format!("gatehouse: {message}\r\n").into_bytes())
                    .await;
                let _ = client.exit_status(255).await;
                let _ = client.eof().await;
                let _ = client.close().await;
                return;
            }
            ChannelMsg::Close => return,
            _ => {}
        }
    }
}

impl Relay {
    async fn pump(&mut self) {
        let deadline = self.live.deadline.clone();
        loop {
            let next = {
                let (c, t) = (&mut self.client, &mut self.tgt);
                // The deadline first: nothing the client sends after it
                // is acted on.
                tokio::select! {
                    biased;
                    end = deadline.reached() => Next::Deadline(end),
                    m = c.wait() => Next::Client(m),
                    m = t.wait() => Next::Target(m),
                }
            };
            let go_on = match next {
                Next::Client(Some(m)) => self.on_client(m).await,
                Next::Target(Some(m)) => self.on_target(m).await,
                Next::Client(None) | Next::Target(None) => false,
                Next::Deadline(end) => self.end_at_deadline(&end).await,
            };
            if !go_on {
                break;
            }
        }
    }

    async fn stderr(&self, text: &str) {
        let _ = self
            .client
            .extended_data_bytes(1, text.as_bytes().to_vec())
            .await;
    }

    async fn reply(&self, want_reply: bool, ok: bool) {
        if want_reply {
            let _ = if ok {
                self.handle.channel_success(self.id).await
            } else {
                self.handle.channel_failure(self.id).await
            };
        }
    }

    /// Start this channel's recording; `false` if it cannot be written,
    /// and then nothing may run unrecorded (fail closed).
    fn start_recording(&mut self, title: &str) -> bool {
        if self.recording.is_some() {
            return true;
        }
        let (term, w, h) = self.pty.clone().unwrap_or_else(|| (String::new(), 80, 24));
        let path = self.live.recordings_dir.join(format!(
            "{}-{}.cast",
            self.live.scope.session_id, self.number
        ));
        let masker = self
            .live
            .pipeline
            .policy
            .detectors_apply(&self.live.scope.identity)
            .then(|| self.live.pipeline.masker.clone());
        match Recording::create(&path, w, h, Some(&term), title, masker) {
            Ok(r) => {
                self.recording = Some(r);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not start an ssh recording");
                false
            }
        }
    }

    /// Decide a shell command (exec, line, transfer) with the policy.
    fn decide(&self, text: &str, facts: &ShellFacts) -> Verdict {
        self.live.pipeline.policy.decide_shell(
            &self.live.scope.identity,
            &self.live.scope.connection,
            text,
            facts,
        )
    }

    /// The `command` event of a shell command about to be admitted.
    fn command(
        &self,
        text: &str,
        facts: &ShellFacts,
        verdict: Verdict,
        edited: Option<bool>,
    ) -> Command {
        Command {
            event: CommandEvent {
                command_id: self.live.count_command(false),
                protocol: "ssh".into(),
                detail: CommandDetail::Shell(ShellCommand {
                    channel: self.number,
                    kind: facts.kind,
                    command: text.to_string(),
                    program: facts.program.clone(),
                    path: facts.path.clone(),
                    recording_offset: self
                        .recording
                        .as_ref()
                        .map(|r| (r.elapsed() * 1000.0).round() / 1000.0),
                    edited,
                }),
                verdict,
                approval_request: None,
            },
            shown: text.to_string(),
        }
    }

    /// Run a command that cannot wait for approval (a shell line, an SFTP
    /// request; their holds are refused before) through core's lifecycle.
    async fn admit_unheld(&mut self, command: Command) -> Result<u64, Refusal> {
        let live = self.live.clone();
        let admitted = live.pipeline.admit(&live.scope, command, None).await;
        self.counted(admitted)
    }

    /// Count a refusal in the session's `blocked` (the trail already has it).
    fn counted(&self, admitted: Result<Admitted, Refusal>) -> Result<u64, Refusal> {
        admitted.map(|a| a.command_id).inspect_err(|r| {
            if !matches!(r, Refusal::NotRecorded(_)) {
                self.live.count_refusal();
            }
        })
    }

    async fn on_client(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::RequestPty {
                want_reply,
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
            } => {
                self.pty = Some((term.clone(), col_width, row_height));
                let ok = self
                    .tgt
                    .request_pty(
                        true,
                        &term,
                        col_width,
                        row_height,
                        pix_width,
                        pix_height,
                        &terminal_modes,
                    )
                    .await
                    .is_ok();
                self.forwarded(want_reply, ok).await;
            }
            ChannelMsg::SetEnv {
                want_reply,
                variable_name,
                variable_value,
            } => {
                self.env.push(variable_name.clone());
                let ok = self
                    .tgt
                    .set_env(true, variable_name, variable_value)
                    .await
                    .is_ok();
                self.forwarded(want_reply, ok).await;
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(r) = self.recording.as_mut() {
                    r.resize(col_width, row_height);
                }
                let _ = self
                    .tgt
                    .window_change(col_width, row_height, pix_width, pix_height)
                    .await;
            }
            ChannelMsg::RequestShell { want_reply } => {
                if self.mode != Mode::Idle {
                    self.reply(want_reply, false).await;
                    return true;
                }
                self.mode = Mode::Shell;
                let opened = ShellOpened {
                    protocol: "ssh".into(),
                    channel: self.number,
                    pty: self.pty.as_ref().map(|(term, width, height)| Pty {
                        term: term.clone(),
                        width: *width,
                        height: *height,
                    }),
                    env: self.env.clone(),
                };
                if let Err(e) = self.live.record(Event::SshShell(opened)).await {
                    self.reply(want_reply, true).await;
                    let refusal = admission::refusal_message(&Refusal::NotRecorded(e));
                    return self.refuse_and_close(&refusal.unwrap_or_default()).await;
                }
                let title = format!(
                    "{} on {}",
                    self.live.scope.identity.subject, self.live.scope.connection
                );
                if !self.start_recording(&title) {
                    self.reply(want_reply, true).await;
                    return self
                        .refuse_and_close("gatehouse could not start this session's recording, so the shell was not opened; ask an administrator to check the gateway's recordings folder")
                        .await;
                }
                let ok = self.tgt.request_shell(true).await.is_ok();
                self.forwarded(want_reply, ok).await;
            }
            ChannelMsg::Exec {
                want_reply,
                command,
            } => {
                if self.mode != Mode::Idle {
                    self.reply(want_reply, false).await;
                    return true;
                }
                return self.exec(want_reply, command).await;
            }
            ChannelMsg::RequestSubsystem { want_reply, name } => {
                if self.mode != Mode::Idle {
                    self.reply(want_reply, false).await;
                    return true;
                }
                let text = format!("subsystem {name}");
                let facts = shell::classify(&text, ShellKind::Exec);
                let mut verdict = self.decide(&text, &facts);
                if name != "sftp" {
                    verdict = verdict.stricter(Verdict::Block {
                        rule: "unknown-subsystem".into(),
                        message: format!(
                            "the \"{name}\" subsystem cannot be audited by gatehouse, so it is refused"
                        ),
                    });
                }
                if matches!(verdict, Verdict::Hold { .. }) {
                    verdict = held_not_supported(verdict, "an SFTP session");
                }
                let command = self.command(&text, &facts, verdict, None);
                match self.admit_unheld(command).await {
                    Ok(_) => {}
                    Err(Refusal::Blocked { rule, message }) => {
                        tracing::info!(%rule, "ssh subsystem refused: {message}");
                        self.reply(want_reply, false).await;
                        return true;
                    }
                    Err(refusal) => {
                        self.reply(want_reply, false).await;
                        let message = admission::refusal_message(&refusal).unwrap_or_default();
                        return self.refuse_and_close(&message).await;
                    }
                }
                self.mode = Mode::Sftp;
                let ok = self.tgt.request_subsystem(true, name).await.is_ok();
                self.forwarded(want_reply, ok).await;
            }
            ChannelMsg::RequestX11 { want_reply, .. } => {
                self.reply(want_reply, false).await;
            }
            ChannelMsg::Signal { signal } => {
                let _ = self.tgt.signal(signal).await;
            }
            ChannelMsg::Data { data } => return self.client_data(&data).await,
            ChannelMsg::Eof => {
                let _ = self.tgt.eof().await;
            }
            ChannelMsg::Close => return false,
            // Agent forwarding is answered by the handler (refused).
            _ => {}
        }
        true
    }

    /// Pass a request on; the target's answer goes back when it arrives.
    async fn forwarded(&mut self, want_reply: bool, sent: bool) {
        if sent {
            self.pending.push_back(want_reply);
        } else {
            self.reply(want_reply, false).await;
        }
    }

    /// The session's deadline came (token expired, grant ended): tell the
    /// user on stderr, in the recording too, and close the channel; the
    /// connection is closed once every channel has recorded its evidence.
    async fn end_at_deadline(&mut self, end: &SessionEnd) -> bool {
        let message = end.message();
        let line = format!("\r\ngatehouse: {message}\r\n");
        if let Some(r) = self.recording.as_mut() {
            r.output(line.as_bytes());
        }
        self.stderr(&line).await;
        self.cut = Some(message);
        let _ = self.client.eof().await;
        false
    }

    async fn refuse_and_close(&mut self, message: &str) -> bool {
        self.stderr(&format!("gatehouse: {message}\r\n")).await;
        let _ = self.client.exit_status(REFUSED_EXIT_STATUS).await;
        self.exit_status = Some(REFUSED_EXIT_STATUS);
        let _ = self.client.eof().await;
        false
    }

    async fn exec(&mut self, want_reply: bool, command: Vec<u8>) -> bool {
        let text = String::from_utf8_lossy(&command).into_owned();
        let facts = shell::classify(&text, ShellKind::Exec);
        let verdict = self.decide(&text, &facts);
        // The request is answered now: a refusal is told on stderr with an
        // exit status, which every client shows.
        self.reply(want_reply, true).await;
        let audited = self.command(&text, &facts, verdict, None);
        let live = self.live.clone();
        let mut watch = admission::HeldChannel {
            relay: self,
            input: Vec::new(),
            eof: false,
        };
        let admitted = live
            .pipeline
            .admit(&live.scope, audited, Some(&mut watch))
            .await;
        let (early_input, early_eof) = (std::mem::take(&mut watch.input), watch.eof);
        let id = match self.counted(admitted) {
            Ok(id) => id,
            Err(refusal) => {
                if let Refusal::NotApproved {
                    why: NotApproved::SessionEnded(why),
                    ..
                } = &refusal
                {
                    self.cut = Some(why.clone());
                }
                return match admission::refusal_message(&refusal) {
                    Some(message) => self.refuse_and_close(&message).await,
                    None => false,
                };
            }
        };
        self.mode = if matches!(facts.kind, ShellKind::Upload | ShellKind::Download) {
            if facts.kind == ShellKind::Download && self.file_masker.is_some() {
                self.scp = Some(ScpDownload::default());
            }
            Mode::Transfer
        } else {
            if !self.start_recording(&text) {
                return self
                    .refuse_and_close("gatehouse could not start this command's recording, so it was not run; ask an administrator to check the gateway's recordings folder")
                    .await;
            }
            if self.pty.is_none() && self.file_masker.is_some() {
                self.exec_text = Some(ExecText::default());
            }
            Mode::Exec
        };
        self.exec = Some((id, facts, Instant::now()));
        if self.tgt.exec(true, command).await.is_err() {
            return self.refuse_and_close("the target connection failed").await;
        }
        // Already answered above.
        self.pending.push_back(false);
        if !early_input.is_empty() && !self.client_data(&early_input).await {
            return false;
        }
        if early_eof {
            let _ = self.tgt.eof().await;
        }
        true
    }

    async fn client_data(&mut self, data: &[u8]) -> bool {
        match self.mode {
            Mode::Sftp => self.sftp_from_client(data).await,
            Mode::Shell => self.shell_input(data).await,
            Mode::Transfer => {
                self.transfer_bytes += data.len() as u64;
                let data = match self.scp.as_mut() {
                    Some(scp) => scp.from_client(data),
                    None => data.to_vec(),
                };
                data.is_empty() || self.tgt.data_bytes(data).await.is_ok()
            }
            Mode::Exec | Mode::Idle => self.tgt.data_bytes(data.to_vec()).await.is_ok(),
        }
    }

    /// Keystrokes of an interactive shell: forwarded as typed; each
    /// submitted line is recorded and checked against the rules before its
    /// Enter key is forwarded.
    async fn shell_input(&mut self, data: &[u8]) -> bool {
        let mut start = 0;
        for i in 0..data.len() {
            let Key::Submit(line, edited) = self.line.feed(data[i]) else {
                continue;
            };
            if line.trim().is_empty() {
                continue;
            }
            // Everything up to the Enter key has been typed; hold the Enter.
            if i > start && self.tgt.data_bytes(data[start..i].to_vec()).await.is_err() {
                return false;
            }
            start = i;
            let secret = answers_password_prompt(&self.tail);
            let shown = if secret {
                "[input to a password prompt, not recorded]".to_string()
            } else {
                line.clone()
            };
            let facts = shell::classify(&shown, ShellKind::Line);
            // The prompt text is the user's to choose (`PS1='Password: '`),
            // so a "password" line is still checked against the rules; it is
            // only kept out of the recording.
            let mut verdict = self.decide(&line, &shell::classify(&line, ShellKind::Line));
            if matches!(verdict, Verdict::Hold { .. }) {
                verdict = held_not_supported(verdict, "an interactive shell");
            }
            let command = self.command(&shown, &facts, verdict, Some(edited));
            let admitted = self.admit_unheld(command).await;
            if let Some(r) = self.recording.as_mut() {
                if !secret {
                    r.input(&line);
                }
            }
            let refusal = admitted
                .err()
                .map(|r| admission::refusal_message(&r).unwrap_or_default());
            if let Some(message) = refusal {
                // Erase the typed line on the target (Ctrl-U works in
                // readline and in the terminal's own line editing), submit
                // the empty line for a fresh prompt, and drop the rest of
                // this input.
                let text = format!("\r\ngatehouse: {message}\r\n");
                if let Some(r) = self.recording.as_mut() {
                    r.output(text.as_bytes());
                }
                let _ = self.client.data_bytes(text.into_bytes()).await;
                return self.tgt.data_bytes(&b"\x15\r"[..]).await.is_ok();
            }
        }
        if start < data.len() {
            return self.tgt.data_bytes(data[start..].to_vec()).await.is_ok();
        }
        true
    }

    async fn sftp_from_client(&mut self, data: &[u8]) -> bool {
        let packets = match self.sftp_in.push(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "sftp stream refused");
                return false;
            }
        };
        for packet in packets {
            if self.file_masker.is_some() {
                if let Some(id) =
                    download::request_id(&packet).filter(|&id| self.downloads.collides(id))
                {
                    let answer = download::status(
                        id,
                        4,
                        "gatehouse: request id in use by the gateway; retry",
                    );
                    if self.client.data_bytes(answer).await.is_err() {
                        return false;
                    }
                    continue;
                }
                if let Some(out) = self.downloads.client_packet(&packet) {
                    if !self.send_sftp(out).await {
                        return false;
                    }
                    continue;
                }
            }
            if let Some(mut done) = self.tracker.closed(&packet) {
                let masking = self
                    .downloads
                    .close_packet(&packet)
                    .filter(|m| done.direction == "download" || m.bytes_in > 0);
                if let Some(m) = &masking {
                    done.bytes = done.bytes.max(m.bytes_in);
                }
                let _ = self
                    .live
                    .record(Event::FileTransfer(transfer_event(
                        self.number,
                        &done,
                        masking.as_ref(),
                    )))
                    .await;
            }
            let request = match self.tracker.client_packet(&packet) {
                sftp::ClientRequest::Open {
                    id,
                    write: true,
                    read: true,
                    ..
                } if self.file_masker.is_some() => {
                    let answer = sftp::permission_denied(
                        id,
                        "gatehouse masks downloads on this connection, so a file cannot be opened for reading and writing at once",
                    );
                    self.tracker.target_packet(&sftp::permission_denied(id, ""));
                    if self.client.data_bytes(answer).await.is_err() {
                        return false;
                    }
                    continue;
                }
                sftp::ClientRequest::Open {
                    id, path, write, ..
                } => {
                    let kind = if write {
                        ShellKind::Upload
                    } else {
                        ShellKind::Download
                    };
                    let text = format!("sftp {} {path}", if write { "put" } else { "get" });
                    Some((id, kind, text, path))
                }
                // Renames, links, removals and attribute changes write to
                // every path they name: judged and recorded as uploads, so
                // an upload rule cannot be dodged by renaming afterwards.
                sftp::ClientRequest::Change { id, op, paths } => Some((
                    id,
                    ShellKind::Upload,
                    format!("sftp {op} {}", paths.join(" ")),
                    paths.last().cloned().unwrap_or_default(),
                )),
                sftp::ClientRequest::Other => None,
            };
            if let Some((id, kind, text, path)) = request {
                let mut facts = shell::classify(&text, kind);
                facts.path = Some(path);
                let mut verdict = self.decide(&text, &facts);
                if matches!(verdict, Verdict::Hold { .. }) {
                    verdict = held_not_supported(verdict, "SFTP");
                }
                let command = self.command(&text, &facts, verdict, None);
                let refusal = match self.admit_unheld(command).await {
                    Ok(_) => None,
                    Err(Refusal::Blocked { rule, message }) => {
                        Some(format!("blocked by gatehouse rule \"{rule}\": {message}"))
                    }
                    Err(r) => admission::refusal_message(&r),
                };
                if let Some(message) = refusal {
                    self.tracker.target_packet(&sftp::permission_denied(id, ""));
                    let answer = sftp::permission_denied(id, &message);
                    if self.client.data_bytes(answer).await.is_err() {
                        return false;
                    }
                    continue;
                }
            }
            if self.tgt.data_bytes(packet).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Send what the masked downloads produced.
    async fn send_sftp(&mut self, out: download::Out) -> bool {
        if let Some(n) = &out.notice {
            self.stderr(&format!("{n}\r\n")).await;
        }
        for p in out.target {
            if self.tgt.data_bytes(p).await.is_err() {
                return false;
            }
        }
        let to_client: Vec<u8> = out.client.concat();
        to_client.is_empty() || self.client.data_bytes(to_client).await.is_ok()
    }

    /// SFTP packets from the target: answers to the gateway's own reads
    /// feed the masked downloads; the rest are tracked and forwarded.
    async fn sftp_from_target(&mut self, data: &[u8]) -> bool {
        let packets = match self.sftp_out.push(data) {
            Ok(p) => p,
            Err(e) if self.file_masker.is_none() => {
                tracing::warn!(error = %e, "sftp stream from target");
                return self.client.data_bytes(data.to_vec()).await.is_ok();
            }
            Err(e) => {
                tracing::warn!(error = %e, "sftp stream from target refused");
                return false;
            }
        };
        let Some(masker) = self.file_masker.clone() else {
            for p in &packets {
                self.tracker.target_packet(p);
            }
            return self.client.data_bytes(data.to_vec()).await.is_ok();
        };
        let live = self.live.clone();
        let decide = move |path: &str, e: &NotText| {
            decide_binary(&live, &format!("sftp get {path}"), path, e)
        };
        let mut forward = Vec::new();
        for p in packets {
            if let Some(out) = self.downloads.target_packet(&p, &masker, &decide) {
                if !self.send_sftp(out).await {
                    return false;
                }
                continue;
            }
            // Every READ of a file handle is the gateway's to answer (an
            // upload's handle may be readable too: sftp-server opens
            // CREAT/APPEND without WRITE read-only), so a DATA answer it did
            // not ask for is not forwarded: the target is not speaking
            // SFTP as the gateway follows it.
            if p.get(4) == Some(&103) {
                tracing::warn!("unsolicited SFTP DATA from the target on a masking connection");
                self.stderr("gatehouse: the target sent file data the gateway did not ask for, so this SFTP session was ended\r\n").await;
                return false;
            }
            if let Some((handle, t)) = self.tracker.target_packet(&p) {
                self.downloads.open(handle, t.path);
            }
            forward.extend_from_slice(&p);
        }
        forward.is_empty() || self.client.data_bytes(forward).await.is_ok()
    }

    /// scp -f output on a masking connection: file content masked, binary
    /// files refused unless a rule allows them.
    async fn scp_from_target(&mut self, data: &[u8]) -> bool {
        let (Some(scp), Some(masker)) = (self.scp.as_mut(), self.file_masker.clone()) else {
            return false;
        };
        let live = self.live.clone();
        let decide =
            move |path: &str, e: &NotText| decide_binary(&live, &format!("scp -f {path}"), path, e);
        let out = match scp.from_target(data, &masker, &decide) {
            Ok(out) => out,
            Err(e) => {
                return self
                    .refuse_and_close(&format!(
                        "gatehouse could not follow this scp transfer ({e}), so it was ended"
                    ))
                    .await
            }
        };
        for o in &out.done {
            let t = sftp::Transfer {
                path: o.path.clone(),
                direction: "download",
                bytes: o.bytes_in,
            };
            let mut event = transfer_event(self.number, &t, Some(o));
            event.protocol = "scp".to_string();
            // The path asked for (`scp -f PATH`); `path` is the file sent.
            event.requested = self.exec.as_ref().and_then(|e| e.1.path.clone());
            let _ = self.live.record(Event::FileTransfer(event)).await;
        }
        if !out.target.is_empty() && self.tgt.data_bytes(out.target).await.is_err() {
            return false;
        }
        out.client.is_empty() || self.client.data_bytes(out.client).await.is_ok()
    }

    /// Output of an exec without a terminal on a masking connection
    /// (stream 0 stdout, 1 stderr): recorded, then masked as one stream
    /// each, so a value split across packets is masked whole. Output that
    /// is not text in its first 8 KiB is refused unless a rule with
    /// `kinds = ["binary"]` allows it; later it ends the command. `Err` is
    /// the refusal for the user.
    fn exec_output(&mut self, index: usize, data: &[u8]) -> Result<Vec<u8>, String> {
        self.saw_output(data);
        let (Some(x), Some(masker)) = (self.exec_text.as_mut(), self.file_masker.clone()) else {
            return Ok(data.to_vec());
        };
        if x.passed.is_some() {
            return Ok(data.to_vec());
        }
        let early = x.streams[index].bytes_in < download::SNIFF as u64;
        let result = match x.streams[index].push(&masker, data) {
            Ok(out) => Ok(out),
            Err(found) if early => {
                let command = self
                    .exec
                    .as_ref()
                    .map(|e| e.1.words.join(" "))
                    .unwrap_or_default();
                let subject = format!("the output of `{command}`");
                match decide_binary(&self.live, &command, &subject, &found) {
                    Binary::Allowed { rule } => {
                        x.passed = Some(rule);
                        Ok(data.to_vec())
                    }
                    Binary::Refused { message, .. } => Err(message),
                }
            }
            Err(found) => Err(format!(
                "the command's output is not text ({found}) after text was sent; the rest was withheld because binary output cannot be masked"
            )),
        };
        if let (Err(why), Some(x)) = (&result, self.exec_text.as_mut()) {
            x.refused = Some(why.clone());
        }
        result
    }

    /// Release what the exec's output streams hold back (the command's
    /// output ended).
    async fn flush_exec_text(&mut self) -> bool {
        let (Some(x), Some(masker)) = (self.exec_text.as_mut(), self.file_masker.clone()) else {
            return true;
        };
        if x.passed.is_some() {
            return true;
        }
        let rests: Vec<Result<Vec<u8>, NotText>> =
            x.streams.iter_mut().map(|s| s.finish(&masker)).collect();
        for (index, rest) in rests.into_iter().enumerate() {
            let bytes = match rest {
                Ok(b) => b,
                Err(found) => format!("\r\ngatehouse: the output ended in the middle of a character ({found}); it was dropped\r\n").into_bytes(),
            };
            if bytes.is_empty() {
                continue;
            }
            let sent = if index == 0 {
                self.client.data_bytes(bytes).await
            } else {
                self.client.extended_data_bytes(1, bytes).await
            };
            if sent.is_err() {
                return false;
            }
        }
        true
    }

    /// Output as the target sent it: its end kept in `tail` (to spot
    /// password prompts) and handed to the recording.
    fn saw_output(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > 256 {
            let cut = self.tail.len() - 256;
            self.tail.drain(..cut);
        }
        if let Some(r) = self.recording.as_mut() {
            r.output(data);
        }
    }

    fn output(&mut self, data: &[u8]) -> Vec<u8> {
        self.saw_output(data);
        if self.mask_terminal
            && self
                .live
                .pipeline
                .policy
                .detectors_apply(&self.live.scope.identity)
        {
            let mut counts = Default::default();
            if let Some(masked) = self
                .live
                .pipeline
                .masker
                .mask_detected_bytes(data, &mut counts)
            {
                return masked;
            }
        }
        data.to_vec()
    }

    async fn on_target(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => {
                let out = match self.mode {
                    Mode::Sftp => return self.sftp_from_target(&data).await,
                    Mode::Transfer => {
                        self.transfer_bytes += data.len() as u64;
                        if self.scp.is_some() {
                            return self.scp_from_target(&data).await;
                        }
                        // An upload's answers (acknowledgements, errors):
                        // on a masking connection, masked like any output.
                        match &self.file_masker {
                            Some(m) => m
                                .mask_detected_bytes(&data, &mut Default::default())
                                .unwrap_or_else(|| data.to_vec()),
                            None => data.to_vec(),
                        }
                    }
                    Mode::Exec if self.exec_text.is_some() => match self.exec_output(0, &data) {
                        Ok(out) => out,
                        Err(message) => return self.refuse_and_close(&message).await,
                    },
                    _ => self.output(&data),
                };
                if self.recording.as_ref().is_some_and(|r| r.failed()) {
                    return self
                        .refuse_and_close(
                            "gatehouse could not write this session's recording, so it was ended",
                        )
                        .await;
                }
                return out.is_empty() || self.client.data_bytes(out).await.is_ok();
            }
            ChannelMsg::ExtendedData { data, ext } => {
                let out = if self.mode == Mode::Sftp || self.mode == Mode::Transfer {
                    // The transfer's own stderr (scp's or sftp-server's
                    // messages): masked on a masking connection.
                    match &self.file_masker {
                        Some(m) => m
                            .mask_detected_bytes(&data, &mut Default::default())
                            .unwrap_or_else(|| data.to_vec()),
                        None => data.to_vec(),
                    }
                } else if self.exec_text.is_some() && ext == 1 {
                    match self.exec_output(1, &data) {
                        Ok(out) => out,
                        Err(message) => return self.refuse_and_close(&message).await,
                    }
                } else {
                    self.output(&data)
                };
                if out.is_empty() {
                    return true;
                }
                return self.client.extended_data_bytes(ext, out).await.is_ok();
            }
            ChannelMsg::Eof => {
                if !self.flush_exec_text().await {
                    return false;
                }
                let _ = self.client.eof().await;
            }
            ChannelMsg::ExitStatus { exit_status } => {
                self.exit_status = Some(exit_status);
                let _ = self.client.exit_status(exit_status).await;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let _ = self
                    .handle
                    .exit_signal_request(self.id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
            }
            answer @ (ChannelMsg::Success | ChannelMsg::Failure) => {
                // The oldest forwarded request is the one answered.
                let wanted = self.pending.pop_front() == Some(true);
                self.reply(wanted, matches!(answer, ChannelMsg::Success))
                    .await;
            }
            ChannelMsg::Close => {
                self.flush_exec_text().await;
                return false;
            }
            _ => {}
        }
        true
    }

    /// Close both ends and record how the channel ended.
    async fn finish(&mut self) {
        let _ = self.tgt.close().await;
        let _ = self.client.close().await;
        let mut masked: std::collections::HashMap<String, download::Outcome> = self
            .downloads
            .unfinished()
            .into_iter()
            .map(|o| (o.path.clone(), o))
            .collect();
        for mut t in self.tracker.unfinished() {
            let masking = masked
                .remove(&t.path)
                .filter(|m| t.direction == "download" || m.bytes_in > 0);
            if let Some(m) = &masking {
                t.bytes = t.bytes.max(m.bytes_in);
            }
            let _ = self
                .live
                .record(Event::FileTransfer(transfer_event(
                    self.number,
                    &t,
                    masking.as_ref(),
                )))
                .await;
        }
        if let Some((id, facts, started)) = self.exec.take() {
            let mut detail = serde_json::Map::new();
            detail.insert("channel".into(), self.number.into());
            detail.insert("exit_status".into(), self.exit_status.into());
            detail.insert(
                "duration_ms".into(),
                (started.elapsed().as_millis() as u64).into(),
            );
            if let Some(x) = &self.exec_text {
                detail.insert("output_masking".into(), x.summary());
            }
            if self.mode == Mode::Transfer {
                detail.insert(
                    "transfer".into(),
                    serde_json::json!({
                        "direction": facts.kind,
                        "path": facts.path,
                        "bytes": self.transfer_bytes,
                    }),
                );
            }
            let result = CommandResult {
                command_id: id,
                error: self
                    .cut
                    .as_ref()
                    .map(|why| format!("cut off: {why}").into()),
                detail,
                ..CommandResult::default()
            };
            self.live.pipeline.finish(&self.live.scope, &result).await;
        }
        if let Some(r) = self.recording.take() {
            match r.close() {
                Ok(closed) => {
                    let v = serde_json::to_value(&closed).unwrap_or_default();
                    let event = closed.event(u64::from(self.number), "ssh");
                    if let Err(e) = self.live.record(event).await {
                        tracing::error!(error = %e, "could not chain an ssh recording");
                    }
                    self.live.add_recording(v);
                }
                Err(e) => tracing::error!(error = %e, "could not close an ssh recording"),
            }
        }
    }
}

/// A `file.transfer` event; `masking` says how a download on a masking
/// connection was treated (masked, passed by a rule, refused).
fn transfer_event(
    channel: u32,
    t: &sftp::Transfer,
    masking: Option<&download::Outcome>,
) -> FileTransfer {
    FileTransfer {
        protocol: "sftp".to_string(),
        channel,
        path: t.path.clone(),
        direction: t.direction.to_string(),
        bytes: t.bytes,
        masking: masking.map(download::Outcome::event),
        requested: None,
    }
}

/// Decide a download that is not text on a masking connection: refused
/// unless a rule naming `kinds = ["binary"]` allows it.
fn decide_binary(live: &Live, text: &str, path: &str, found: &NotText) -> Binary {
    let mut facts = shell::classify(text, ShellKind::Binary);
    facts.kind = ShellKind::Binary;
    facts.path = Some(path.to_string());
    let verdict = live.pipeline.policy.decide_shell(
        &live.scope.identity,
        &live.scope.connection,
        text,
        &facts,
    );
    match verdict {
        Verdict::Allow { rule: Some(rule) } => Binary::Allowed { rule },
        Verdict::Allow { rule: None } => Binary::Refused {
            rule: None,
            message: format!(
                "{path} is not text ({found}); this connection masks downloads and a binary file cannot be masked, so it was refused (an administrator can allow such files with a rule of kinds = [\"binary\"])"
            ),
        },
        Verdict::Block { rule, message } => Binary::Refused {
            message: format!("{path} is not text ({found}) and is blocked by rule \"{rule}\": {message}"),
            rule: Some(rule),
        },
        Verdict::Hold { rule, message, .. } => Binary::Refused {
            message: format!(
                "{path} is not text ({found}); rule \"{rule}\" asks for approval ({message}), which cannot be asked for during a transfer, so it was refused"
            ),
            rule: Some(rule),
        },
    }
}

/// Approval holds need a command that has not started: exec requests.
fn held_not_supported(verdict: Verdict, place: &str) -> Verdict {
    let rule = verdict.rule().unwrap_or_default().to_string();
    let message = match &verdict {
        Verdict::Hold { message, .. } => message.clone(),
        _ => String::new(),
    };
    Verdict::Block {
        message: format!(
            "{message}; approval cannot be asked from {place}, run it as `ssh CONNECTION@gateway 'command'` to request approval"
        ),
        rule,
    }
}

/// Whether the output just before a line asked for a secret.
fn answers_password_prompt(tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail).to_ascii_lowercase();
    let last = text
        .trim_end_matches([' ', '\t'])
        .rsplit(['\n', '\r'])
        .next()
        .unwrap_or("");
    (last.contains("password") || last.contains("passphrase") || last.contains("passcode"))
        && last.ends_with(':')
}

#[cfg(test)]
mod tests {
    #[test]
    fn password_prompts_are_spotted() {
        assert!(super::answers_password_prompt(b"[sudo] password for ops: "));
        assert!(super::answers_password_prompt(b"\r\nEnter passphrase:"));
        assert!(!super::answers_password_prompt(b"$ echo password"));
    }
}
