//! Prepared statements (COM_STMT_PREPARE, EXECUTE, FETCH): a statement is
//! decided when prepared, a held one at each execution with its
//! parameters shown to approvers, and its binary rows masked.

use super::*;

impl Proxy {
    pub(super) async fn prepare(&mut self, payload: &[u8], sql: String) -> Step {
        let read = mysql_executable_comments(&sql, &self.ctx.server).into_owned();
        let (classification, outputs, refusal) = self.resolve(&read);
        let mut verdict = self.verdict_for(&read, &classification, refusal);
        if let Some(block) = self.diagnostics_refusal(&read, &classification) {
            verdict = verdict.stricter(block);
        }
        if let Verdict::Block { .. } = verdict {
            // Refused at PREPARE: recorded, never sent.
            self.admit(&sql, &sql, &classification, &verdict, "prepare")
                .await?;
            return Ok(true);
        }
        self.forward(payload).await?;
        let first = self.target_next().await?;
        if first.payload.first() != Some(&0x00) {
            self.relay_err_or(&first.payload);
            return Ok(true);
        }
        let ok = packets::parse_prepare_ok(&first.payload)
            .map_err(|e| self.target_failed(&format!("bad prepare response: {e}")))?;
        self.send(&first.payload);
        if ok.params > 0 {
            for _ in 0..=ok.params {
                let p = self.target_next().await?;
                self.send(&p.payload);
            }
        }
        let output_facts = outputs.into_iter().next().flatten();
        if ok.columns > 0 {
            self.relay_columns(
                u64::from(ok.columns),
                output_facts.as_ref(),
                RowFormat::Binary,
            )
            .await?;
        }
        self.statements.insert(
            ok.statement_id,
            Statement {
                sql,
                classification: Arc::new(classification),
                output_facts,
                held: matches!(verdict, Verdict::Hold { .. }).then_some(verdict),
                params: ok.params,
                param_types: Vec::new(),
                cursor: None,
                long_data: false,
            },
        );
        Ok(true)
    }

    pub(super) async fn execute(&mut self, payload: &[u8]) -> Step {
        let id = packets::statement_id(payload).map_err(|e| self.protocol_error(e))?;
        let Some(stmt) = self.statements.get_mut(&id) else {
            self.unknown_statement(id);
            return Ok(true);
        };
        let params = show_params(payload, stmt.params, &mut stmt.param_types);
        if stmt.held.is_some() && (stmt.long_data || params.is_none()) {
            stmt.long_data = false;
            self.stats.blocked += 1;
            self.send_err(
                ER_DENIED,
                "42000",
                "gatehouse refused this execution: it needs approval, and approvers must see every parameter, so send them inline (not as long data) in a well-formed COM_STMT_EXECUTE",
            );
            return Ok(true);
        }
        let sql = stmt.sql.clone();
        let classification = stmt.classification.clone();
        let facts = stmt.output_facts.clone();
        let verdict = stmt.held.clone().unwrap_or(Verdict::Allow { rule: None });
        self.withhold_errors = self.reads_masked(&classification);
        let shown = match params.as_deref() {
            Some("") => sql.clone(),
            Some(p) => format!("{sql}\n-- parameters: {p}"),
            None => format!("{sql}\n-- parameters: (not readable by gatehouse)"),
        };
        let Some(command) = self
            .admit(&sql, &shown, &classification, &verdict, "prepared")
            .await?
        else {
            return Ok(true);
        };
        self.forward(payload).await?;
        let unit = CommandUnit {
            id: command,
            started: Instant::now(),
        };
        self.relay_results(RowFormat::Binary, &[facts], unit, Some(id))
            .await
    }

    pub(super) async fn fetch(&mut self, payload: &[u8]) -> Step {
        let id = packets::statement_id(payload).map_err(|e| self.protocol_error(e))?;
        let Some(plan) = self.statements.get(&id).and_then(|s| s.cursor.clone()) else {
            self.unknown_statement(id);
            return Ok(true);
        };
        self.forward(payload).await?;
        let mut result = ResultState::default();
        self.relay_rows(&plan, &mut result).await?;
        Ok(true)
    }
}

/// Bound parameters of a COM_STMT_EXECUTE, as approvers see them.
pub fn show_params(payload: &[u8], count: u16, last_types: &mut Vec<(u8, u8)>) -> Option<String> {
    if count == 0 {
        return Some(String::new());
    }
    let mut r = Reader::new(payload, "execute");
    r.bytes(1 + 4 + 1 + 4).ok()?;
    let n = count as usize;
    let bitmap = r.bytes(n.div_ceil(8)).ok()?.to_vec();
    if r.u8().ok()? == 1 {
        let mut types = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.u8().ok()?;
            let flags = r.u8().ok()?;
            types.push((t, flags));
        }
        *last_types = types;
    }
    if last_types.len() != n {
        return None;
    }
    let mut shown = Vec::with_capacity(n);
    for (i, (t, flags)) in last_types.iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            shown.push(format!("?{} = NULL", i + 1));
            continue;
        }
        let col = Column {
            column_type: *t,
            flags: if flags & 0x80 != 0 {
                packets::UNSIGNED_FLAG
            } else {
                0
            },
            ..Default::default()
        };
        let len = rows::binary_value_len(*t, r.rest()).ok()?;
        let wire = r.bytes(len).ok()?;
        let text = rows::binary_value_text(&col, wire)
            .map(|s| quote_for_approver(&s))
            .unwrap_or_else(|| format!("0x{}", hex::encode(wire)));
        shown.push(format!("?{} = {text}", i + 1));
    }
    // Bytes left over mean the gateway and the server could read the
    // values differently: refuse to show (and so to run) them.
    r.rest().is_empty().then(|| shown.join(", "))
}
