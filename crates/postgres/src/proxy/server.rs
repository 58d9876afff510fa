//! The server side of a PostgreSQL session: relays the target's answers
//! in order, masking rows (and COPY data, notices, notifications, parameter
//! status) for the caller, applies prepared-statement changes once the
//! target confirms them, and records each command's result.

use super::*;
/// The result set being streamed and what has been counted for it.
#[derive(Default)]
pub(super) struct ResultState {
    /// Index of the statement (simple query) whose results are streaming.
    pub(super) index: usize,
    pub(super) plan: Option<RowPlan>,
    pub(super) copy_csv: bool,
    pub(super) rows: u64,
    pub(super) masked: MaskCounts,
    pub(super) error: Option<serde_json::Value>,
    pub(super) sample: Vec<serde_json::Value>,
    /// The result's column names (from its RowDescription), recorded with
    /// `sample` so the rows can be read.
    pub(super) columns: Vec<String>,
    /// Originals of the masked cells of `sample` (row, column, value), kept
    /// only to be sealed; never recorded in the clear.
    pub(super) originals: Vec<serde_json::Value>,
}

pub(super) struct ServerPump {
    pub(super) ctx: Arc<SessionContext>,
    pub(super) reader: FrameReader<TargetReader>,
    pub(super) client: WriteHalf<Box<dyn ClientIo>>,
    pub(super) rx: mpsc::UnboundedReceiver<Pending>,
    pub(super) queue: VecDeque<Pending>,
    pub(super) status: u8,
    pub(super) out: Vec<u8>,
    pub(super) result: ResultState,
    pub(super) bytes_to_client: u64,
    pub(super) rx_open: bool,
    pub(super) prepared: Prepared,
}

impl ServerPump {
    pub(super) async fn run(&mut self) -> String {
        loop {
            tokio::select! {
                biased;
                entry = self.rx.recv(), if self.rx_open => match entry {
                    Some(p) => self.queue.push_back(p),
                    None => self.rx_open = false,
                },
                frame = self.reader.next() => match frame {
                    Ok(Some(f)) => {
                        if let Err(e) = self.step(f) {
                            let _ = self.write().await;
                            return e;
                        }
                        loop {
                            match self.reader.buffered() {
                                Ok(Some(f)) => {
                                    if let Err(e) = self.step(f) {
                                        let _ = self.write().await;
                                        return e;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => return format!("target protocol error: {e}"),
                            }
                        }
                    }
                    Ok(None) => {
                        let _ = self.write().await;
                        return "target closed the connection".into();
                    }
                    Err(e) => {
                        let _ = self.write().await;
                        return format!("target connection failed: {e}");
                    }
                },
            }
            self.flush_synthetic();
            if let Err(e) = self.write().await {
                return format!("client write failed: {e}");
            }
            if !self.rx_open && self.queue.is_empty() {
                // The client is gone and nothing is owed to it.
                return "client disconnected".into();
            }
        }
    }

    /// Handle one target message in order with any gateway-made responses.
    pub(super) fn step(&mut self, frame: Frame) -> Result<(), String> {
        self.drain_rx();
        self.flush_synthetic();
        self.handle(frame)?;
        self.flush_synthetic();
        Ok(())
    }

    pub(super) fn drain_rx(&mut self) {
        while let Ok(p) = self.rx.try_recv() {
            self.queue.push_back(p);
        }
    }

    pub(super) async fn write(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.client.write_all(&self.out).await?;
            self.bytes_to_client += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Emit gateway-made responses that have reached the head of the queue.
    pub(super) fn flush_synthetic(&mut self) {
        while let Some(Pending::Synthetic { .. }) = self.queue.front() {
            if let Some(Pending::Synthetic { bytes, ready, .. }) = self.queue.pop_front() {
                self.emit_synthetic(&bytes, ready);
            }
        }
    }

    /// Write one gateway-made response, with ReadyForQuery if it ends a command.
    pub(super) fn emit_synthetic(&mut self, bytes: &[u8], ready: bool) {
        self.out.extend_from_slice(bytes);
        if ready {
            self.out
                .extend_from_slice(&backend::ready_for_query(self.status));
        }
    }

    pub(super) fn detect(&self) -> gatehouse_core::mask::Detection {
        self.ctx
            .pipeline
            .policy
            .detection(&self.ctx.scope.identity, &self.ctx.scope.connection)
    }

    /// Mask plan for a result set of `facts` with these columns.
    pub(super) fn plan(
        &self,
        facts: Option<&StatementFacts>,
        fields: &[Field],
        formats: &[i16],
    ) -> RowPlan {
        let ctx = &self.ctx;
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let masks = ctx.pipeline.policy.column_masks(
            &ctx.scope.identity,
            &ctx.scope.connection,
            facts,
            &names,
        );
        RowPlan::new(fields, formats, masks, self.detect())
    }

    /// Mask plan when the columns are not known (COPY of a whole table, or
    /// an Execute whose statement was never described).
    pub(super) fn blind_plan(&self, facts: Option<&StatementFacts>, columns: usize) -> RowPlan {
        let ctx = &self.ctx;
        if let Some(items) = facts.and_then(|f| f.output.as_ref()) {
            let traced = items
                .iter()
                .all(|i| matches!(i, gatehouse_core::classify::OutputColumn::Expr { .. }));
            if traced && items.len() == columns {
                let fields: Vec<Field> = items
                    .iter()
                    .map(|i| match i {
                        gatehouse_core::classify::OutputColumn::Expr { name, .. } => {
                            text_field(name.as_deref().unwrap_or("?column?"))
                        }
                        gatehouse_core::classify::OutputColumn::Wildcard { .. } => {
                            text_field("?column?")
                        }
                    })
                    .collect();
                return self.plan(facts, &fields, &vec![0; columns]);
            }
        }
        let covered = facts.is_some_and(|f| {
            ctx.pipeline.policy.column_rules_touch(
                &ctx.scope.identity,
                &ctx.scope.connection,
                f.tables_read.iter().chain(f.tables_written.iter()),
            )
        });
        RowPlan::unknown(
            columns,
            covered.then(|| gatehouse_core::policy::ColumnMask::redact_all("untraceable-columns")),
            self.detect().any(),
        )
    }

    pub(super) fn handle(&mut self, frame: Frame) -> Result<(), String> {
        match frame.tag {
            b'D' => self.data_row(&frame),
            b'T' => self.row_description(&frame),
            b'C' | b'I' | b's' => self.statement_done(&frame),
            b'E' => self.error(&frame),
            b'N' => self.notice(&frame),
            b'Z' => self.ready(&frame),
            b'1' => self.expect_pop(&frame, |p| matches!(p, Pending::Parse { .. })),
            b't' => {
                // ParameterDescription: the target's parameter types, kept so
                // approvers of a held statement see its values decoded.
                if let Some(Pending::DescribeStatement(Some(stmt))) = self.queue.front() {
                    if let Ok(types) = backend::parse_parameter_description(&frame.body) {
                        *stmt.param_types.lock().unwrap_or_else(|p| p.into_inner()) = types;
                    }
                }
                self.out.extend_from_slice(&frame.raw);
                Ok(())
            }
            b'2' => self.expect_pop(&frame, |p| matches!(p, Pending::Bind)),
            b'3' => self.expect_pop(&frame, |p| matches!(p, Pending::Close)),
            b'n' => self.expect_pop(&frame, |p| {
                matches!(
                    p,
                    Pending::DescribeStatement(_) | Pending::DescribePortal(_)
                )
            }),
            b'H' => self.copy_out_start(&frame),
            b'd' => self.copy_data(&frame),
            b'S' => self.parameter_status(&frame),
            b'A' => self.notification(&frame),
            _ => {
                // CopyDone, CopyInResponse, CopyBothResponse, EmptyQuery…:
                // relayed unchanged (they carry no values).
                self.out.extend_from_slice(&frame.raw);
                Ok(())
            }
        }
    }

    pub(super) fn expect_pop(
        &mut self,
        frame: &Frame,
        is: impl Fn(&Pending) -> bool,
    ) -> Result<(), String> {
        if self.queue.front().is_some_and(&is) {
            self.queue.pop_front();
        } else {
            tracing::debug!(tag = %(frame.tag as char), "response without a matching request");
        }
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    pub(super) fn row_description(&mut self, frame: &Frame) -> Result<(), String> {
        let fields =
            backend::parse_row_description(&frame.body).map_err(|e| format!("target sent {e}"))?;
        let formats: Vec<i16> = fields.iter().map(|f| f.format).collect();
        let plan = match self.queue.front() {
            Some(Pending::Query { statements, .. }) => {
                if self.result.sample.is_empty() {
                    self.result.columns = fields.iter().map(|f| f.name.clone()).collect();
                }
                let facts = statements.get(self.result.index).cloned().flatten();
                let plan = self.plan(facts.as_ref(), &fields, &formats);
                self.result.plan = Some(plan.clone());
                Some(plan)
            }
            Some(Pending::DescribeStatement(stmt)) => {
                let stmt = stmt.clone();
                self.queue.pop_front();
                stmt.map(|s| {
                    *s.fields.lock().unwrap_or_else(|p| p.into_inner()) = Some(fields.clone());
                    self.plan(s.output_facts.as_ref(), &fields, &formats)
                })
            }
            Some(Pending::DescribePortal(portal)) => {
                let portal = portal.clone();
                self.queue.pop_front();
                portal.map(|p| {
                    *p.statement.fields.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(fields.clone());
                    self.plan(p.statement.output_facts.as_ref(), &fields, &formats)
                })
            }
            _ => None,
        };
        match plan.and_then(|p| p.rewrite_description(&fields)) {
            Some(rewritten) => self.out.extend_from_slice(&rewritten),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    pub(super) fn data_row(&mut self, frame: &Frame) -> Result<(), String> {
        if self.result.plan.is_none() {
            if let Some(Pending::Execute { portal, .. }) = self.queue.front() {
                let portal = portal.clone();
                let fields = portal
                    .statement
                    .fields
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let formats =
                    expand_formats(&portal.formats, fields.as_ref().map_or(0, |f| f.len()));
                if let Some(f) = &fields {
                    self.result.columns = f.iter().map(|f| f.name.clone()).collect();
                }
                let plan = match fields {
                    Some(f) => self.plan(portal.statement.output_facts.as_ref(), &f, &formats),
                    None => {
                        let width = backend::parse_data_row(&frame.body)
                            .map(|v| v.len())
                            .unwrap_or(0);
                        self.blind_plan(portal.statement.output_facts.as_ref(), width)
                    }
                };
                self.result.plan = Some(plan);
            }
        }
        self.result.rows += 1;
        let capture = self.result.sample.len() < self.ctx.settings.result_capture_rows;
        let masked = match &self.result.plan {
            Some(plan) => plan
                .mask_row(
                    &self.ctx.pipeline.masker,
                    &frame.body,
                    &mut self.result.masked,
                )
                .map_err(|e| format!("target sent {e}"))?,
            // A row with no plan (no RowDescription seen): scan everything.
            None => {
                let width = backend::parse_data_row(&frame.body)
                    .map(|v| v.len())
                    .unwrap_or(0);
                let plan = RowPlan::unknown(width, None, self.detect().any());
                plan.mask_row(
                    &self.ctx.pipeline.masker,
                    &frame.body,
                    &mut self.result.masked,
                )
                .map_err(|e| format!("target sent {e}"))?
            }
        };
        let bytes: &[u8] = masked.as_deref().unwrap_or(&frame.raw);
        if capture {
            if let Ok(values) = backend::parse_data_row(&bytes[5..]) {
                if masked.is_some() && self.ctx.settings.seal_originals.is_some() {
                    if let Ok(originals) = backend::parse_data_row(&frame.body) {
                        let row = self.result.sample.len();
                        for (column, (original, shown)) in originals.iter().zip(&values).enumerate()
                        {
                            if original != shown {
                                self.result.originals.push(serde_json::json!({
                                    "row": row,
                                    "column": column,
                                    "value": original.map(|b| String::from_utf8_lossy(b).into_owned()),
                                }));
                            }
                        }
                    }
                }
                self.result.sample.push(serde_json::json!(values
                    .iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect::<Vec<_>>()));
            }
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    pub(super) fn copy_out_start(&mut self, frame: &Frame) -> Result<(), String> {
        let (format, cols) =
            backend::parse_copy_response(&frame.body).map_err(|e| format!("target sent {e}"))?;
        if format != 0 {
            // Refused before it ran when the text says so; this is the
            // backstop: binary rows cannot be masked, so none is forwarded.
            return Err("target began a binary COPY to the client, which cannot be masked".into());
        }
        let (facts, sql) = match self.queue.front() {
            Some(Pending::Query {
                statements, sql, ..
            }) => (
                statements.get(self.result.index).cloned().flatten(),
                sql.clone(),
            ),
            Some(Pending::Execute { portal, .. }) => (
                portal.statement.output_facts.clone(),
                portal.statement.sql.clone(),
            ),
            _ => (None, String::new()),
        };
        self.result.copy_csv = csv_copy(&sql);
        self.result.plan = Some(self.blind_plan(facts.as_ref(), cols.len()));
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    pub(super) fn copy_data(&mut self, frame: &Frame) -> Result<(), String> {
        self.result.rows += 1;
        let masked = self.result.plan.as_ref().and_then(|p| {
            p.mask_copy_line(
                &self.ctx.pipeline.masker,
                &frame.body,
                self.result.copy_csv,
                &mut self.result.masked,
            )
        });
        match masked {
            Some(line) => self.out.extend_from_slice(&backend::copy_data(&line)),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    pub(super) fn statement_done(&mut self, frame: &Frame) -> Result<(), String> {
        if frame.tag == b'C' {
            if let Ok(tag) = backend::parse_command_complete(&frame.body) {
                if let Some(n) = backend::rows_from_tag(tag) {
                    self.result.rows = self.result.rows.max(n);
                }
                let tag = tag.to_string();
                self.apply_prepared_effects(&tag);
            }
        }
        self.out.extend_from_slice(&frame.raw);
        match self.queue.front() {
            Some(Pending::Query { .. }) => {
                self.result.index += 1;
                self.result.plan = None;
            }
            Some(Pending::Execute { .. }) => {
                if let Some(Pending::Execute { unit, .. }) = self.queue.pop_front() {
                    self.finish(unit);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The target confirmed the current statement (CommandComplete `tag`):
    /// apply its prepared-statement change, checked against the tag so a
    /// change never lands on the wrong statement.
    pub(super) fn apply_prepared_effects(&mut self, tag: &str) {
        let (effects, index) = match self.queue.front() {
            Some(Pending::Query { effects, .. }) => (effects, self.result.index),
            Some(Pending::Execute { effects, .. }) => (effects, 0),
            _ => return,
        };
        let Some((_, effect)) = effects.iter().find(|(i, _)| *i == index) else {
            return;
        };
        let mut map = lock_prepared(&self.prepared);
        match (effect, tag) {
            (PreparedEffect::Add(name, stmt), "PREPARE") => {
                map.insert(name.clone(), stmt.clone());
            }
            (PreparedEffect::Remove(name), "DEALLOCATE") => {
                map.remove(name);
            }
            (_, "DEALLOCATE ALL" | "DISCARD ALL") => map.clear(),
            (_, other) => {
                tracing::debug!(tag = other, "prepared-statement change not confirmed");
            }
        }
    }

    /// A Parse the target refused (or skipped after an earlier error):
    /// put back what the name meant before, as the target still has it.
    pub(super) fn roll_back_parse(&mut self, name: String, previous: Option<Arc<Statement>>) {
        let mut map = lock_prepared(&self.prepared);
        match previous {
            Some(old) => {
                map.insert(name, old);
            }
            None => {
                map.remove(&name);
            }
        }
    }

    /// Whether the command now answering reads a table with column rules
    /// for this caller (its error text could quote a masked value).
    pub(super) fn current_reads_masked(&self) -> bool {
        let ctx = &self.ctx;
        let touches = |facts: &mut dyn Iterator<Item = &StatementFacts>| {
            let tables: Vec<&String> = facts.flat_map(|f| f.tables_read.iter()).collect();
            ctx.pipeline.policy.column_rules_touch(
                &ctx.scope.identity,
                &ctx.scope.connection,
                tables.into_iter(),
            )
        };
        match self.queue.front() {
            Some(Pending::Query { statements, .. }) => touches(&mut statements.iter().flatten()),
            Some(Pending::Execute { portal, .. }) => {
                touches(&mut portal.statement.classification.statements.iter())
            }
            _ => false,
        }
    }

    /// An ErrorResponse or NoticeResponse as the client may see it: its
    /// text through the detectors, or, for a command reading columns masked
    /// for this caller, only its code (error and notice text can quote a
    /// value: `invalid input syntax for type integer: "…"`, a function's
    /// `RAISE NOTICE`). `None` when the original may go as it is.
    pub(super) fn screened_notice(&mut self, tag: u8, body: &[u8]) -> Option<Vec<u8>> {
        let masker = self.ctx.pipeline.masker.clone();
        let masked = masking::mask_notice(&masker, tag, body, &mut self.result.masked);
        if !self.current_reads_masked() {
            return masked;
        }
        let original = backend::parse_notice(body).unwrap_or_default();
        let severity = original.get(b'S').unwrap_or("NOTICE").to_string();
        let code = original.get(b'C').unwrap_or("XX000").to_string();
        let what = if tag == b'E' {
            "the database refused this statement"
        } else {
            "the database sent a notice"
        };
        Some(
            Notice::new(
                &severity,
                &code,
                &format!("{what} ({code}); its message is withheld because the statement reads columns masked for you"),
                None,
            )
            .encode(tag),
        )
    }

    /// A ParameterStatus report: followed for the session's lexing (an
    /// unsafe client encoding ends the session), its value masked by the
    /// detectors (`set_config('application_name', …)` can carry anything).
    pub(super) fn parameter_status(&mut self, frame: &Frame) -> Result<(), String> {
        let (name, value) =
            backend::parse_parameter_status(&frame.body).map_err(|e| format!("target sent {e}"))?;
        if let Some(why) = self.ctx.syntax.observe(name, value) {
            self.out.extend_from_slice(
                &Notice::new(
                    "FATAL",
                    "22023",
                    &format!("gatehouse ended this session: {why}"),
                    None,
                )
                .encode(b'E'),
            );
            return Err(format!("the target reported {name} = {value}"));
        }
        let masker = self.ctx.pipeline.masker.clone();
        match masker.mask_detected(value, &mut self.result.masked) {
            Some(masked) => self
                .out
                .extend_from_slice(&backend::parameter_status(name, &masked)),
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    /// A notification for a LISTENer. Its payload is whatever the notifier
    /// chose, from any session: no column traces to it, so for a caller
    /// with column rules on this connection it is withheld; otherwise the
    /// detectors mask it.
    pub(super) fn notification(&mut self, frame: &Frame) -> Result<(), String> {
        let n = backend::parse_notification(&frame.body).map_err(|e| format!("target sent {e}"))?;
        let ctx = &self.ctx;
        let replaced = if !n.payload.is_empty()
            && ctx
                .pipeline
                .policy
                .masks_columns_for(&ctx.scope.identity, &ctx.scope.connection)
        {
            Some(NOTIFICATION_WITHHELD.to_string())
        } else {
            ctx.pipeline
                .masker
                .clone()
                .mask_detected(n.payload, &mut self.result.masked)
        };
        match replaced {
            Some(payload) => {
                self.out
                    .extend_from_slice(&backend::notification(&backend::Notification {
                        payload: &payload,
                        ..n
                    }))
            }
            None => self.out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    pub(super) fn error(&mut self, frame: &Frame) -> Result<(), String> {
        if let Some(Pending::FailBatch { .. }) = self.queue.front() {
            if let Some(Pending::FailBatch { bytes }) = self.queue.pop_front() {
                self.out.extend_from_slice(&bytes);
            }
            self.skip_to_sync();
            return Ok(());
        }
        if let Some(Pending::FailTransaction) = self.queue.front() {
            // The refusal raised by the gateway's `DO` block: the client
            // gets it as the server's own error would read, without the
            // PL/pgSQL context line the block adds (routine and line of
            // code are the gateway's, not the client's).
            if let Ok(mut notice) = backend::parse_notice(&frame.body) {
                notice
                    .fields
                    .retain(|(code, _)| !matches!(code, b'W' | b'F' | b'L' | b'R'));
                self.out.extend_from_slice(&notice.encode(b'E'));
                return Ok(());
            }
        }
        let masked = self.screened_notice(b'E', &frame.body);
        let notice = backend::parse_notice(masked.as_deref().map_or(&frame.body[..], |m| &m[5..]))
            .unwrap_or_default();
        self.result.error = Some(serde_json::json!({
            "sqlstate": notice.get(b'C'),
            "message": notice.get(b'M'),
        }));
        self.out
            .extend_from_slice(masked.as_deref().unwrap_or(&frame.raw));
        // Extended protocol: the target now skips everything up to Sync.
        let extended = !matches!(
            self.queue.front(),
            Some(Pending::Query { .. } | Pending::FailTransaction) | None
        );
        if extended {
            self.skip_to_sync();
        }
        Ok(())
    }

    /// Extended protocol after an error: the target skips everything up to
    /// Sync, so the requests queued before it get no answer.
    pub(super) fn skip_to_sync(&mut self) {
        while let Some(front) = self.queue.front() {
            match front {
                Pending::Sync | Pending::Query { .. } | Pending::FailTransaction => break,
                Pending::Synthetic { batch: false, .. } => break,
                _ => {}
            }
            match self.queue.pop_front() {
                Some(Pending::Execute { unit, .. }) => self.finish(unit),
                Some(Pending::Parse { name, previous }) => self.roll_back_parse(name, previous),
                _ => {}
            }
        }
    }

    pub(super) fn notice(&mut self, frame: &Frame) -> Result<(), String> {
        let masked = self.screened_notice(b'N', &frame.body);
        self.out
            .extend_from_slice(masked.as_deref().unwrap_or(&frame.raw));
        Ok(())
    }

    pub(super) fn ready(&mut self, frame: &Frame) -> Result<(), String> {
        self.status = backend::parse_ready_for_query(&frame.body).unwrap_or(b'I');
        self.ctx
            .transaction
            .store(self.status, std::sync::atomic::Ordering::SeqCst);
        self.ctx.syntax.ready_for_query();
        // Whatever the target skipped after an error is done now.
        while let Some(front) = self.queue.pop_front() {
            match front {
                Pending::Query { unit, .. } => {
                    self.finish(unit);
                    break;
                }
                Pending::FailTransaction => {
                    // The refusal was recorded with its command.
                    self.result = ResultState::default();
                    break;
                }
                Pending::Sync => break,
                Pending::Execute { unit, .. } => self.finish(unit),
                // A gateway response queued before this point belongs before it.
                Pending::Synthetic { bytes, ready, .. } => self.emit_synthetic(&bytes, ready),
                _ => {}
            }
        }
        self.out.extend_from_slice(&frame.raw);
        Ok(())
    }

    /// Record the outcome of one command (without holding up the stream).
    pub(super) fn finish(&mut self, unit: CommandUnit) {
        let result = std::mem::take(&mut self.result);
        let ctx = &self.ctx;
        let sealed_originals = match &ctx.settings.seal_originals {
            Some(sealer) if !result.originals.is_empty() => {
                let plain = serde_json::json!({"command_id": unit.id, "cells": result.originals});
                Some((sealer.0)(plain.to_string().as_bytes()))
            }
            _ => None,
        };
        let event = CommandResult {
            sealed_originals,
            ..CommandResult::sql(
                unit.id,
                result.rows,
                unit.started.elapsed().as_micros() as u64,
                result.masked,
                result.error,
                result.columns,
                result.sample,
            )
        };
        ctx.pipeline.finish_later(&ctx.scope, &event);
    }
}
