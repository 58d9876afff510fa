//! Result sets in MySQL's words: a result's columns planned for masking
//! (by rule and by the column's origin as the target reports it), its rows
//! relayed and masked as they stream, and each command's result recorded.

use super::*;

impl Proxy {
    /// Plan the masking of a result set with these columns.
    pub(super) fn plan(
        &self,
        facts: Option<&StatementFacts>,
        columns: Vec<Column>,
        format: RowFormat,
    ) -> RowPlan {
        let ctx = &self.ctx;
        let names: Vec<String> = columns.iter().map(Column::name_str).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut masks = ctx.pipeline.policy.column_masks(
            &ctx.scope.identity,
            &ctx.scope.connection,
            facts,
            &names,
        );
        // Defence in depth: the target names each result column's table and
        // column of origin; a rule covering that origin masks it too (an
        // alias the classifier could not trace, a view over a table).
        let origins: Vec<String> = columns
            .iter()
            .map(|c| String::from_utf8_lossy(&c.org_name).into_owned())
            .collect();
        for (i, c) in columns.iter().enumerate() {
            if masks[i].is_some() || c.org_table.is_empty() || c.org_name.is_empty() {
                continue;
            }
            let table = String::from_utf8_lossy(&c.org_table).to_string();
            let facts = origin_facts(&table, &origins[i]);
            masks[i] = ctx
                .pipeline
                .policy
                .column_masks(
                    &ctx.scope.identity,
                    &ctx.scope.connection,
                    Some(&facts),
                    &[origins[i].as_str()],
                )
                .pop()
                .flatten();
        }
        let detect = ctx
            .pipeline
            .policy
            .detection(&ctx.scope.identity, &ctx.scope.connection);
        RowPlan::new(columns, masks, detect, format)
    }

    /// Relay the response to a query or execution: OK/ERR packets and result
    /// sets, as many as the target sends (multi-statements, procedures).
    pub(super) async fn relay_results(
        &mut self,
        format: RowFormat,
        outputs: &[Option<StatementFacts>],
        unit: CommandUnit,
        statement: Option<u32>,
    ) -> Step {
        let mut result = ResultState::default();
        let mut index = 0;
        loop {
            let p = self.target_next().await?;
            match p.payload.first() {
                Some(0x00) => {
                    if let Ok(ok) = packets::parse_ok(&p.payload) {
                        self.note_status(ok.status);
                        result.rows += ok.affected_rows;
                        self.send(&p.payload);
                        if ok.status & status::MORE_RESULTS_EXISTS != 0 {
                            index += 1;
                            continue;
                        }
                    } else {
                        self.send(&p.payload);
                    }
                    break;
                }
                Some(0xff) => {
                    if let Some(e) = self.relay_err_or(&p.payload) {
                        result.error = Some(
                            serde_json::json!({"code": e.code, "sqlstate": e.sqlstate, "message": e.message}),
                        );
                    }
                    break;
                }
                Some(0xfb) => {
                    // A LOCAL INFILE request, though the capability was not
                    // negotiated: answer with no data.
                    let mut out = Vec::new();
                    let mut seq = p.last_seq.wrapping_add(1);
                    encode_packet(&mut out, &mut seq, &[]);
                    self.target
                        .get_mut()
                        .write_all(&out)
                        .await
                        .map_err(|e| self.target_failed(&e.to_string()))?;
                    continue;
                }
                _ => {}
            }
            let count = packets::column_count(&p.payload)
                .map_err(|e| self.target_failed(&format!("bad result set: {e}")))?;
            self.send(&p.payload);
            let facts = outputs.get(index).cloned().flatten();
            let (plan, eof) = self.relay_columns(count, facts.as_ref(), format).await?;
            let mut st = packets::eof_status(&eof.payload);
            if st & status::CURSOR_EXISTS != 0 {
                // Rows come later, through COM_STMT_FETCH.
                if let Some(s) = statement.and_then(|id| self.statements.get_mut(&id)) {
                    s.cursor = Some(plan);
                }
                break;
            }
            let ended = self.relay_rows(&plan, &mut result).await?;
            match ended {
                Some(s) => {
                    self.note_status(s);
                    st = s
                }
                None => break,
            }
            if st & status::MORE_RESULTS_EXISTS == 0 {
                break;
            }
            index += 1;
        }
        self.finish(unit, result);
        Ok(true)
    }

    /// Relay rows up to the closing EOF (its status) or an ERR (`None`).
    pub(super) async fn relay_rows(
        &mut self,
        plan: &RowPlan,
        result: &mut ResultState,
    ) -> Result<Option<u16>, String> {
        loop {
            let r = self.target_next().await?;
            if packets::is_eof(&r.payload) {
                self.send(&r.payload);
                return Ok(Some(packets::eof_status(&r.payload)));
            }
            if r.payload.first() == Some(&0xff) {
                if let Some(e) = self.relay_err_or(&r.payload) {
                    result.error = Some(
                        serde_json::json!({"code": e.code, "sqlstate": e.sqlstate, "message": e.message}),
                    );
                }
                return Ok(None);
            }
            result.rows += 1;
            let masked = plan
                .mask_row(&self.ctx.pipeline.masker, &r.payload, &mut result.masked)
                .map_err(|e| self.target_failed(&format!("bad row: {e}")))?;
            let bytes: &[u8] = masked.as_deref().unwrap_or(&r.payload);
            if result.sample.len() < self.ctx.settings.result_capture_rows {
                if let Some(s) = plan.sample(bytes) {
                    if result.sample.is_empty() {
                        result.columns = plan.column_names();
                    }
                    result.sample.push(s);
                }
            }
            let bytes = bytes.to_vec();
            self.send(&bytes);
            self.maybe_flush().await?;
        }
    }

    /// Relay a result's `count` column definitions (those the plan masks
    /// rewritten, so the client reads them as text) and the EOF after
    /// them; the plan, for the rows, and the EOF.
    pub(super) async fn relay_columns(
        &mut self,
        count: u64,
        facts: Option<&StatementFacts>,
        format: RowFormat,
    ) -> Result<(RowPlan, Packet), String> {
        let mut columns = Vec::with_capacity((count as usize).min(4096));
        let mut raws = Vec::with_capacity((count as usize).min(4096));
        for _ in 0..count {
            let c = self.target_next().await?;
            let col = packets::parse_column(&c.payload)
                .map_err(|e| self.target_failed(&format!("bad column definition: {e}")))?;
            columns.push(col);
            raws.push(c.payload);
        }
        let plan = self.plan(facts, columns, format);
        for (i, raw) in raws.iter().enumerate() {
            match plan.rewrite_column(i) {
                Some(rewritten) => self.send(&rewritten),
                None => self.send(raw),
            }
        }
        let eof = self.target_next().await?;
        self.send(&eof.payload);
        Ok((plan, eof))
    }

    /// Record the outcome of one command (without holding up the session).
    pub(super) fn finish(&mut self, unit: CommandUnit, result: ResultState) {
        let event = CommandResult::sql(
            unit.id,
            result.rows,
            unit.started.elapsed().as_micros() as u64,
            result.masked,
            result.error,
            result.columns,
            result.sample,
        );
        self.ctx.pipeline.finish_later(&self.ctx.scope, &event);
    }
}

/// Facts of a one-column `SELECT column FROM table`, to ask the column
/// rules about a result column's origin as the target reports it.
fn origin_facts(table: &str, column: &str) -> StatementFacts {
    use gatehouse_core::classify::{ColumnSource, OutputColumn};
    let table = table.to_ascii_lowercase();
    let column = column.to_ascii_lowercase();
    StatementFacts {
        kind: StatementKind::Select,
        keyword: "SELECT".into(),
        tables_read: [table.clone()].into_iter().collect(),
        tables_written: Default::default(),
        has_where: false,
        has_limit: false,
        copy_direction: None,
        prepared_name: None,
        output: Some(vec![OutputColumn::Expr {
            name: Some(column.clone()),
            sources: vec![ColumnSource {
                tables: vec![table],
                column,
                transformed: false,
            }],
        }]),
        parsed: true,
        nested: false,
        functions: Default::default(),
        assigns_variable: false,
        computed_comparisons: Default::default(),
        column_writes: Vec::new(),
    }
}
