//! Recording `kubectl exec` and `attach` streams as asciicast, like SSH
//! sessions: output masked by the detectors, keystrokes as input events,
//! resizes, and the file's SHA-256 chained into the audit trail.

use crate::proxy::Exchange;
use crate::wsframes::{ChannelProtocol, ExecDecoder, ExecEvent, Sender};
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::pipeline::EventRecord;
use gatehouse_core::recording::Recording;

/// Largest channel message decoded for the recording; bigger ones (bulk
/// copies through `exec`) are counted, not recorded.
const MAX_MESSAGE: usize = 1024 * 1024;

/// Watches an exec stream's bytes and writes its recording.
pub(crate) struct ExecTap {
    recording: Recording,
    client: Option<ExecDecoder>,
    server: Option<ExecDecoder>,
    status: Option<serde_json::Value>,
    unreadable: Option<String>,
    skipped_bytes: u64,
}

impl ExecTap {
    /// Open the recording before the request goes upstream, so an exec
    /// that cannot be recorded never starts.
    pub(crate) fn open(exchange: &Exchange, title: &str) -> Result<ExecTap, String> {
        let dir = &exchange.adapter.settings.recordings_dir;
        let path = dir.join(format!(
            "{}-{}.cast",
            exchange.session.id, exchange.command_id
        ));
        let recording = Recording::create(
            &path,
            80,
            24,
            None,
            title,
            Some(exchange.adapter.pipeline.masker.clone()),
        )?;
        Ok(ExecTap {
            recording,
            client: None,
            server: None,
            status: None,
            unreadable: None,
            skipped_bytes: 0,
        })
    }

    /// The subprotocol the API server chose; without a known one the
    /// bytes are relayed but cannot be decoded (recorded as such).
    pub(crate) fn set_protocol(&mut self, subprotocol: Option<&str>) {
        match subprotocol.and_then(ChannelProtocol::from_subprotocol) {
            Some(p) => {
                self.client = Some(ExecDecoder::new(p, Sender::Client, MAX_MESSAGE));
                self.server = Some(ExecDecoder::new(p, Sender::Server, MAX_MESSAGE));
            }
            None => {
                self.unreadable = Some(format!(
                    "stream protocol {:?} is not one gatehouse decodes (v4/v5.channel.k8s.io), so the stream was cut",
                    subprotocol.unwrap_or("none")
                ))
            }
        }
    }

    /// Bytes went by, from the client when `from_client`. `false` when
    /// the stream can no longer be recorded: the session must be cut, since
    /// nothing may go on unrecorded.
    pub(crate) fn observe(&mut self, from_client: bool, bytes: &[u8]) -> bool {
        let decoder = if from_client {
            self.client.as_mut()
        } else {
            self.server.as_mut()
        };
        let Some(decoder) = decoder else {
            self.skipped_bytes += bytes.len() as u64;
            return false;
        };
        let mut events = Vec::new();
        let readable = match decoder.feed(bytes, &mut events) {
            Ok(()) => true,
            Err(e) => {
                self.unreadable.get_or_insert_with(|| {
                    format!("the exec stream could not be decoded, so it was cut: {e}")
                });
                false
            }
        };
        for event in events {
            match event {
                ExecEvent::Stdin(b) => self.recording.input(&String::from_utf8_lossy(&b)),
                ExecEvent::Stdout(b) | ExecEvent::Stderr(b) => self.recording.output(&b),
                ExecEvent::Resize { cols, rows } => {
                    self.recording.resize(u32::from(cols), u32::from(rows))
                }
                ExecEvent::Status(s) => self.status = Some(s),
                ExecEvent::Oversized { len } => self.skipped_bytes += len,
                ExecEvent::Close(_) | ExecEvent::Disconnect { .. } => {}
            }
        }
        readable && !self.recording.failed()
    }

    /// Close the recording and chain it into the trail; what the result
    /// event says about the stream.
    pub(crate) async fn close(
        self,
        exchange: &Exchange,
    ) -> (Option<serde_json::Value>, MaskCounts) {
        let status = self.status.clone();
        let unreadable = self.unreadable.clone();
        let skipped = self.skipped_bytes;
        match self.recording.close() {
            Ok(closed) => {
                let event = closed.event(exchange.command_id, "kubernetes-exec");
                let pipeline = &exchange.adapter.pipeline;
                if let Err(e) = pipeline
                    .recorder
                    .record(EventRecord::of(
                        event,
                        Some(&exchange.session.id),
                        Some(&exchange.session.identity.subject),
                        Some(&exchange.session.connection),
                    ))
                    .await
                {
                    tracing::error!(error = %e, "could not chain an exec recording");
                }
                (
                    Some(serde_json::json!({
                        "exec_status": status,
                        "recording": closed.file,
                        "unrecorded": unreadable,
                        "unrecorded_bytes": skipped,
                    })),
                    closed.masked,
                )
            }
            Err(e) => (
                Some(serde_json::json!({"exec_status": status, "recording_error": e})),
                MaskCounts::default(),
            ),
        }
    }
}
