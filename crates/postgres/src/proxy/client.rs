//! The client side of a PostgreSQL session: reads the client's messages,
//! classifies and decides each command, admits it through core's lifecycle
//! (see `admission.rs` for the protocol's words) and forwards it; keeps the
//! session's prepared statements, portals and cursors as the target will.

use super::*;
pub(super) struct ClientPump {
    pub(super) ctx: Arc<SessionContext>,
    pub(super) reader: FrameReader<ReadHalf<Box<dyn ClientIo>>>,
    pub(super) target: TargetWriter,
    pub(super) tx: mpsc::UnboundedSender<Pending>,
    pub(super) prepared: Prepared,
    pub(super) portals: HashMap<String, Arc<Portal>>,
    /// Declared cursors' statements by name, for masking what FETCH returns.
    pub(super) cursors: HashMap<String, StatementFacts>,
    pub(super) discard_until_sync: bool,
    /// Query and Sync messages forwarded: the target answers each with
    /// ReadyForQuery, after reporting any setting it changed.
    pub(super) sent_syncs: u64,
    /// A statement executed since the last Sync may have changed how the
    /// target lexes (reported only at the next ReadyForQuery).
    pub(super) batch_may_change: bool,
    /// Extended-protocol messages were forwarded since the last Sync or
    /// Query: the target holds their answers until a sync point.
    pub(super) unsynced: bool,
    pub(super) next_command: u64,
    pub(super) stats: SessionStats,
    pub(super) out: Vec<u8>,
}

impl ClientPump {
    pub(super) async fn run(&mut self) -> String {
        loop {
            // Forward in batches: write to the target only when no further
            // client message is already buffered.
            let next = match self.reader.buffered() {
                Ok(Some(f)) => Ok(Some(f)),
                Ok(None) => {
                    if let Err(e) = self.flush().await {
                        return format!("target write failed: {e}");
                    }
                    self.reader.next().await
                }
                Err(e) => Err(e),
            };
            let frame = match next {
                Ok(Some(f)) => f,
                Ok(None) => return "client disconnected".into(),
                Err(e) => {
                    self.fatal("08P01", &format!("gatehouse closed the session: {e}"));
                    return format!("client protocol error: {e}");
                }
            };
            self.stats.bytes_from_client += frame.raw.len() as u64;
            match self.handle(frame).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = self.flush().await;
                    return "client terminated".into();
                }
                Err(reason) => return reason,
            }
        }
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.target.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub(super) fn push(&self, p: Pending) {
        // The server pump outlives us; a send error means it is gone and the
        // session is ending anyway.
        let _ = self.tx.send(p);
    }

    pub(super) fn fatal(&self, sqlstate: &str, message: &str) {
        let bytes = Notice::new("FATAL", sqlstate, message, None).encode(b'E');
        self.push(Pending::Synthetic {
            bytes,
            ready: false,
            batch: false,
        });
    }

    /// Handle one client message; `Ok(false)` ends the session cleanly.
    pub(super) async fn handle(&mut self, frame: Frame) -> Result<bool, String> {
        let malformed = |e: crate::codec::DecodeError| e.to_string();
        match frame.tag {
            b'Q' if self.discard_until_sync => {
                // The target would skip it too, waiting for Sync.
            }
            b'Q' => {
                let sql = match frontend::parse_query(&frame.body) {
                    Ok(s) => s.to_string(),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.simple_query(frame, sql, "simple").await;
            }
            b'P' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let parse = match frontend::parse_parse(&frame.body) {
                    Ok(p) => (p.name.to_string(), p.query.to_string(), p.param_types),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.parse(frame, parse.0, parse.1, parse.2).await;
            }
            b'B' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let bind = match frontend::parse_bind(&frame.body) {
                    Ok(b) => b,
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.portals.remove(bind.portal);
                let Some(stmt) = self.known_statement(bind.statement) else {
                    self.refuse_in_batch(&format!(
                        "prepared statement \"{}\" was not prepared through gatehouse (or was refused), so it cannot be checked",
                        bind.statement
                    ));
                    return Ok(true);
                };
                let params_shown = stmt.held.as_ref().map(|_| {
                    let types = stmt
                        .param_types
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    show_params(&bind.param_formats, &types, &bind.params)
                });
                let portal = Arc::new(Portal {
                    statement: stmt,
                    formats: bind.result_formats.clone(),
                    params_shown,
                });
                self.portals.insert(bind.portal.to_string(), portal);
                self.push(Pending::Bind);
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'D' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                match frontend::parse_target(&frame.body, "Describe") {
                    Ok(Target::Statement(name)) => match self.known_statement(name) {
                        Some(stmt) => self.push(Pending::DescribeStatement(Some(stmt))),
                        None => {
                            self.refuse_in_batch(&format!(
                                "prepared statement \"{name}\" is not known to gatehouse"
                            ));
                            return Ok(true);
                        }
                    },
                    Ok(Target::Portal(name)) => match self.portals.get(name).cloned() {
                        Some(portal) => self.push(Pending::DescribePortal(Some(portal))),
                        None => {
                            self.refuse_in_batch(&format!(
                                "portal \"{name}\" is not known to gatehouse"
                            ));
                            return Ok(true);
                        }
                    },
                    Err(e) => return self.protocol_error(malformed(e)),
                }
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'E' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                let portal_name = match frontend::parse_execute(&frame.body) {
                    Ok((p, _)) => p.to_string(),
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                self.execute(frame, &portal_name).await;
            }
            b'C' => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                match frontend::parse_target(&frame.body, "Close") {
                    Ok(Target::Statement(name)) => {
                        lock_prepared(&self.prepared).remove(name);
                    }
                    Ok(Target::Portal(name)) => {
                        self.portals.remove(name);
                    }
                    Err(e) => return self.protocol_error(malformed(e)),
                }
                self.push(Pending::Close);
                self.unsynced = true;
                self.out.extend_from_slice(&frame.raw);
            }
            b'S' => {
                self.discard_until_sync = false;
                self.sync_point();
                self.push(Pending::Sync);
                self.out.extend_from_slice(&frame.raw);
            }
            b'H' => {
                if !self.discard_until_sync {
                    self.out.extend_from_slice(&frame.raw);
                }
            }
            // COPY FROM STDIN data, relayed as is.
            b'd' | b'c' | b'f' => self.out.extend_from_slice(&frame.raw),
            b'X' => {
                self.out.extend_from_slice(&frame.raw);
                return Ok(false);
            }
            b'F' if self.discard_until_sync => {}
            b'F' => {
                let call = match frontend::parse_function_call(&frame.body) {
                    Ok(c) => c,
                    Err(e) => return self.protocol_error(malformed(e)),
                };
                match crate::fastpath::as_sql(&call) {
                    Ok(sql) => self.simple_query(frame, sql, "fast-path").await,
                    Err(why) => {
                        self.stats.blocked += 1;
                        self.refuse_query(error_bytes(
                            "0A000",
                            &format!("gatehouse refused this: {why}"),
                            Some("call the function with SELECT instead"),
                        ));
                    }
                }
            }
            other => {
                return self.protocol_error(format!("unexpected message type '{}'", other as char));
            }
        }
        Ok(true)
    }

    /// A statement the client may bind: one parsed through the gateway, or a
    /// SQL-level `PREPARE` the target confirmed (one namespace, as in
    /// PostgreSQL).
    pub(super) fn known_statement(&self, name: &str) -> Option<Arc<Statement>> {
        lock_prepared(&self.prepared).get(name).cloned()
    }

    /// Refuse one extended-protocol message in place: the client gets an
    /// error where the response would be, and the rest of the batch is
    /// skipped up to Sync, as PostgreSQL itself does after an error.
    pub(super) fn refuse_in_batch(&mut self, message: &str) {
        self.stats.blocked += 1;
        self.fail_batch(error_bytes(
            "26000",
            &format!("gatehouse refused this: {message}"),
            Some("prepare the statement again through the gateway"),
        ));
    }

    /// Whether a refusal must fail the target's side too, as a server
    /// error would: a transaction block is open, or this batch has
    /// already sent the target work.
    pub(super) fn refusal_must_fail_target(&self) -> bool {
        self.unsynced
            || self
                .ctx
                .transaction
                .load(std::sync::atomic::Ordering::SeqCst)
                == b'T'
    }

    /// End the current extended-protocol batch with `error` in place of the
    /// response, then skip the client's messages up to Sync.
    ///
    /// When the batch has already sent the target work, or a transaction
    /// block is open, a server error would roll that work back (or leave
    /// the transaction failed); so the target is made to fail the batch
    /// itself, with a Parse it cannot accept, and its error is answered
    /// with the refusal. A named statement is used, so the client's
    /// unnamed one is left alone (a Parse that fails creates nothing).
    pub(super) fn fail_batch(&mut self, error: Vec<u8>) {
        if self.refusal_must_fail_target() {
            self.push(Pending::FailBatch { bytes: error });
            self.out.extend_from_slice(&frontend::parse(
                "gatehouse_refusal",
                "gatehouse refused a statement in this batch",
            ));
            self.unsynced = true;
        } else {
            self.push(Pending::Synthetic {
                bytes: error,
                ready: false,
                batch: true,
            });
        }
        self.discard_until_sync = true;
    }

    pub(super) fn protocol_error(&mut self, problem: String) -> Result<bool, String> {
        self.fatal("08P01", &format!("gatehouse closed the session: {problem}"));
        Err(format!("client protocol error: {problem}"))
    }

    /// A Sync or Query is being forwarded: the target answers it with
    /// ReadyForQuery, having first reported any setting the batch before it
    /// changed, so nothing is left unsynced.
    pub(super) fn sync_point(&mut self) {
        self.sent_syncs += 1;
        self.batch_may_change = false;
        self.unsynced = false;
    }

    /// The text to classify for `sql`: as the target will read it under the
    /// session's lexical settings (see [`crate::syntax`]). A text whose
    /// reading depends on them (a backslash in a plain string, non-ASCII
    /// bytes) waits until the target has answered everything sent before
    /// it, so the settings it last reported are the ones it reads with.
    /// After an Execute not yet followed by Sync that may have changed them
    /// (the server reports only at ReadyForQuery), that cannot be known,
    /// for a Parse or a Query alike: the error for the client.
    pub(super) async fn readable<'a>(&mut self, sql: &'a str) -> Result<Cow<'a, str>, Vec<u8>> {
        let ambiguous = pg_backslash_ambiguous(sql);
        if sql.is_ascii() && !ambiguous {
            return Ok(Cow::Borrowed(sql));
        }
        if self.batch_may_change {
            return Err(error_bytes(
                "0A000",
                "gatehouse reads a statement with non-ASCII text or a backslash in a quoted string only once the server has reported its settings, and a statement earlier in this batch may have changed them",
                Some("send Sync before this statement"),
            ));
        }
        if self.flush().await.is_err() {
            return Err(Vec::new());
        }
        let syntax = &self.ctx.syntax;
        syntax.answered(self.sent_syncs).await;
        if !syntax.encoding_safe() {
            return Err(error_bytes(
                "22023",
                "the session's client_encoding cannot be read by gatehouse, so the statement was not run",
                None,
            ));
        }
        if ambiguous && !syntax.standard_strings() {
            return Ok(Cow::Owned(pg_standard_strings(sql).into_owned()));
        }
        Ok(Cow::Borrowed(sql))
    }

    /// Classify one command text, resolving SQL-level EXECUTE to the body it
    /// runs. Returns the classification to decide on and, per result set,
    /// the facts its columns follow.
    pub(super) fn resolve(
        &self,
        sql: &str,
    ) -> (Classification, Vec<Option<StatementFacts>>, Option<Verdict>) {
        let base = self.ctx.pipeline.classify(sql, Dialect::Postgres);
        let mut declared: HashMap<String, StatementFacts> = HashMap::new();
        let r = resolve_executes(
            &base,
            |name| {
                self.known_statement(name)
                    .map(|s| (*s.classification).clone())
            },
            |f| {
                let cursor = f.prepared_name.as_deref().unwrap_or_default();
                if f.keyword.starts_with("DECLARE") {
                    declared.insert(cursor.to_string(), f.clone());
                    Ok(Some(f.clone()))
                } else if f.keyword.starts_with("FETCH") {
                    // FETCH returns the cursor's query's columns.
                    match declared.get(cursor).or_else(|| self.cursors.get(cursor)) {
                        Some(c) => Ok(Some(c.clone())),
                        // A cursor the gateway has not seen declared (one a
                        // function opened, say): its columns cannot be
                        // traced, which matters only to a caller column
                        // rules apply to; for others the detectors read it.
                        None if !self
                            .ctx
                            .pipeline
                            .policy
                            .masks_columns_for(&self.ctx.scope.identity, &self.ctx.scope.connection) =>
                        {
                            Ok(Some(f.clone()))
                        }
                        None => Err(Verdict::Block {
                            rule: "unknown-cursor".into(),
                            message: format!("FETCH from cursor {cursor}: gatehouse has not seen it declared, so it cannot mask its rows"),
                        }),
                    }
                } else {
                    Ok(Some(f.clone()))
                }
            },
        );
        (r.decide_on, r.outputs, r.refusal)
    }

    /// Verdict for a command: policy, plus checks only the adapter can make.
    pub(super) fn verdict_for(
        &self,
        sql: &str,
        classification: &Classification,
        refusal: Option<Verdict>,
    ) -> Verdict {
        let ctx = &self.ctx;
        let mut verdict = ctx
            .pipeline
            .decide_in(&ctx.scope, sql, classification, refusal);
        let binary_copy_out =
            classification.statements.iter().any(|f| {
                f.kind == StatementKind::Copy && f.copy_direction == Some(CopyDirection::Out)
            }) && binary_copy(sql)
                && copies_to_client(sql);
        if binary_copy_out {
            verdict = verdict.stricter(Verdict::Block {
                rule: "binary-copy".into(),
                message: "binary COPY output cannot be masked; use FORMAT text or csv".into(),
            });
        }
        if let Some(message) = pg_encoding_change_refusal(sql) {
            verdict = verdict.stricter(Verdict::Block {
                rule: "pg-session-syntax".into(),
                message,
            });
        }
        verdict
    }

    /// The `command` event of a statement about to be admitted: its number
    /// in the session, what it is, and its verdict.
    pub(super) fn command(
        &mut self,
        sql: &str,
        classification: &Classification,
        verdict: Verdict,
        protocol: &str,
    ) -> Command {
        self.next_command += 1;
        self.stats.commands += 1;
        let ctx = &self.ctx;
        ctx.pipeline.sql_command(
            &ctx.scope,
            self.next_command,
            protocol,
            sql,
            classification,
            verdict,
        )
    }

    /// Run `command` through core's lifecycle (record, refuse, or hold and
    /// wait with the client watched); `Err` is the client's answer.
    pub(super) async fn admit(&mut self, command: Command) -> Result<u64, Vec<u8>> {
        let pipeline = self.ctx.pipeline.clone();
        let ctx = self.ctx.clone();
        let admitted = if matches!(command.event.verdict, Verdict::Hold { .. }) {
            let mut watch = admission::HeldClient::new(self);
            pipeline.admit(&ctx.scope, command, Some(&mut watch)).await
        } else {
            pipeline.admit(&ctx.scope, command, None).await
        };
        admitted.map(|a| a.command_id).map_err(|refusal| {
            if !matches!(refusal, Refusal::NotRecorded(_) | Refusal::Gone) {
                self.stats.blocked += 1;
            }
            admission::refusal_error(&refusal)
        })
    }

    /// Admit a simple Query, or a fast-path call (`protocol`) as the
    /// `SELECT` it stands for: decide, hold, record, then forward `frame`.
    pub(super) async fn simple_query(&mut self, frame: Frame, sql: String, protocol: &str) {
        let read = match self.readable(&sql).await {
            Ok(text) => text.into_owned(),
            Err(bytes) => {
                self.stats.blocked += 1;
                return self.refuse_query(bytes);
            }
        };
        let (classification, outputs, refusal) = self.resolve(&read);
        let mut verdict = self.verdict_for(&read, &classification, refusal);
        let effects = match self.prepared_effects(&sql, &classification) {
            Ok(e) => e,
            Err(refused) => {
                verdict = verdict.stricter(refused);
                Vec::new()
            }
        };
        if let Verdict::Hold { rule, .. } = &verdict {
            // Preparing runs nothing: the hold moves to every execution.
            let only_prepares = classification
                .statements
                .iter()
                .filter(|f| !f.nested)
                .all(|f| f.kind == StatementKind::Prepare);
            if only_prepares {
                verdict = Verdict::Allow {
                    rule: Some(format!("{rule} (held at each execution)")),
                };
            }
        }
        let mut command = self.command(&sql, &classification, verdict, protocol);
        if matches!(command.event.verdict, Verdict::Hold { .. }) {
            command.shown =
                redact_secrets(&self.shown_for_approval(&sql, &classification)).into_owned();
        }
        let id = match self.admit(command).await {
            Ok(id) => id,
            Err(bytes) => return self.refuse_query(bytes),
        };
        self.remember_cursors(&classification);
        self.push(Pending::Query {
            unit: CommandUnit {
                id,
                started: Instant::now(),
            },
            statements: outputs,
            sql,
            effects,
        });
        self.sync_point();
        self.out.extend_from_slice(&frame.raw);
    }

    /// The command as approvers see it: with the body of every prepared
    /// statement it EXECUTEs, since `EXECUTE p('x')` alone says nothing.
    pub(super) fn shown_for_approval(&self, sql: &str, c: &Classification) -> String {
        let mut shown = sql.to_string();
        for f in c
            .statements
            .iter()
            .filter(|f| f.kind == StatementKind::Execute)
        {
            let name = f.prepared_name.clone().unwrap_or_default();
            if let Some(stmt) = self.known_statement(&name) {
                shown.push_str(&format!(
                    "\n-- {name} was prepared as: {}",
                    one_line(&stmt.sql)
                ));
            }
        }
        shown
    }

    /// Answer a simple Query with a gateway-made error; the statement is
    /// not forwarded. Inside a transaction block a server error would
    /// abort the transaction (later statements fail, COMMIT rolls back), and
    /// scripts rely on that: so there the gateway has the target raise the
    /// same error itself, with a `DO` block that runs nothing else.
    pub(super) fn refuse_query(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        // Mid-batch (extended messages not yet synced) the target answers
        // nothing until a sync point, and a server error would abort the
        // batch's implicit transaction too: the same way.
        if self.refusal_must_fail_target() {
            if let Some(sql) = raise_statement(&bytes) {
                self.push(Pending::FailTransaction);
                self.sync_point();
                self.out.extend_from_slice(&frontend::query(&sql));
                return;
            }
        }
        self.push(Pending::Synthetic {
            bytes,
            ready: true,
            batch: false,
        });
    }

    /// Keep declared cursors' queries so FETCH results are masked.
    pub(super) fn remember_cursors(&mut self, c: &Classification) {
        for f in c
            .statements
            .iter()
            .filter(|f| !f.nested && f.keyword.starts_with("DECLARE"))
        {
            if let Some(name) = &f.prepared_name {
                self.cursors.insert(name.clone(), f.clone());
            }
        }
    }

    /// The prepared-statement changes `c` makes if the target runs it, by
    /// top-level statement index. A `PREPARE` body is kept with its own
    /// verdict, so every later execution is checked (and held) again.
    /// Refuses a `PREPARE` of a name already in use, as PostgreSQL would.
    pub(super) fn prepared_effects(
        &self,
        sql: &str,
        c: &Classification,
    ) -> Result<Vec<(usize, PreparedEffect)>, Verdict> {
        let mut effects = Vec::new();
        let top: Vec<(usize, &StatementFacts)> = c
            .statements
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.nested)
            .collect();
        for (index, (at, f)) in top.iter().enumerate() {
            match f.kind {
                StatementKind::Prepare => {
                    let Some(name) = f.prepared_name.clone() else {
                        continue;
                    };
                    // A name in use is refused as PostgreSQL refuses it,
                    // in its words. Forwarding it for the server to refuse
                    // would let a pipelined `DEALLOCATE p` / `PREPARE p AS
                    // …` / `EXECUTE p` run a body the gateway never judged
                    // (its map changes only when the server answers).
                    if self.known_statement(&name).is_some() {
                        return Err(Verdict::Block {
                            rule: DUPLICATE_PREPARED.into(),
                            message: format!("prepared statement \"{name}\" already exists"),
                        });
                    }
                    let body = Classification {
                        statements: c.statements[at + 1..]
                            .iter()
                            .take_while(|b| b.nested)
                            .cloned()
                            .collect(),
                        parse_error: c.parse_error.clone(),
                    };
                    let verdict = self.verdict_for(sql, &body, None);
                    let stmt = Arc::new(Statement {
                        sql: sql.to_string(),
                        output_facts: body.statements.first().cloned(),
                        classification: Arc::new(body),
                        fields: Mutex::new(None),
                        held: matches!(verdict, Verdict::Hold { .. }).then_some(verdict),
                        param_types: Mutex::new(Vec::new()),
                    });
                    effects.push((index, PreparedEffect::Add(name, stmt)));
                }
                StatementKind::Deallocate => {
                    let name = f.prepared_name.clone().unwrap_or_default();
                    effects.push((index, PreparedEffect::Remove(name)));
                }
                _ if f.keyword.starts_with("DISCARD") => {
                    effects.push((index, PreparedEffect::Clear));
                }
                _ => {}
            }
        }
        Ok(effects)
    }

    pub(super) async fn parse(
        &mut self,
        frame: Frame,
        name: String,
        sql: String,
        param_types: Vec<u32>,
    ) {
        // A name already in use is the server's to refuse (42P05): the
        // previous statement is put back when it does (`roll_back_parse`).
        let read = match self.readable(&sql).await {
            Ok(text) => text.into_owned(),
            Err(bytes) => {
                self.stats.blocked += 1;
                lock_prepared(&self.prepared).remove(&name);
                return self.fail_batch(bytes);
            }
        };
        let (classification, outputs, refusal) = self.resolve(&read);
        let verdict = self.verdict_for(&read, &classification, refusal);
        if matches!(verdict, Verdict::Block { .. }) {
            // Preparing runs nothing, so only a refusal is recorded here;
            // a hold moves to each Execute.
            let command = self.command(&sql, &classification, verdict, "extended");
            let bytes = self.admit(command).await.err().unwrap_or_default();
            // The target keeps its old unnamed statement; forget ours so a
            // Bind of it is refused rather than run unchecked.
            lock_prepared(&self.prepared).remove(&name);
            self.fail_batch(bytes);
            return;
        }
        let stmt = Arc::new(Statement {
            sql,
            classification: Arc::new(classification),
            output_facts: outputs.into_iter().next().flatten(),
            fields: Mutex::new(None),
            held: matches!(verdict, Verdict::Hold { .. }).then_some(verdict),
            param_types: Mutex::new(param_types),
        });
        let previous = lock_prepared(&self.prepared).insert(name.clone(), stmt);
        self.push(Pending::Parse { name, previous });
        self.unsynced = true;
        self.out.extend_from_slice(&frame.raw);
    }

    pub(super) async fn execute(&mut self, frame: Frame, portal_name: &str) {
        let Some(portal) = self.portals.get(portal_name).cloned() else {
            self.refuse_in_batch(&format!(
                "portal \"{portal_name}\" is not known to gatehouse"
            ));
            return;
        };
        let stmt = portal.statement.clone();
        // A statement that runs a SQL-level prepared statement (`EXECUTE q`,
        // `EXPLAIN ANALYZE EXECUTE q`) runs whatever q is now, which may have
        // been prepared again since this Parse: decide on that.
        let runs_prepared = stmt
            .classification
            .statements
            .iter()
            .any(|f| f.kind == StatementKind::Execute);
        let (classification, verdict) = if runs_prepared {
            let (c, _, refusal) = self.resolve(&stmt.sql);
            let v = self.verdict_for(&stmt.sql, &c, refusal);
            (Arc::new(c), v)
        } else {
            let v = stmt.held.clone().unwrap_or(Verdict::Allow { rule: None });
            (stmt.classification.clone(), v)
        };
        let mut command = self.command(&stmt.sql, &classification, verdict, "extended");
        if matches!(command.event.verdict, Verdict::Hold { .. }) {
            let sql = self.shown_for_approval(&stmt.sql, &classification);
            let sql = redact_secrets(&sql).into_owned();
            command.shown = match portal.params_shown.as_deref() {
                Some(p) if !p.is_empty() => format!("{sql}\n-- parameters: {p}"),
                _ => sql,
            };
            // The target answers what was sent so far only on Flush; ask
            // for it so the notice reaches the client in order.
            self.out.extend_from_slice(&FLUSH);
        }
        let id = match self.admit(command).await {
            Ok(id) => id,
            Err(bytes) => {
                if !bytes.is_empty() {
                    self.fail_batch(bytes);
                }
                return;
            }
        };
        self.remember_cursors(&stmt.classification);
        let effects = match self.prepared_effects(&stmt.sql, &stmt.classification) {
            Ok(e) => e,
            Err(refused) => {
                self.stats.blocked += 1;
                return self.fail_batch(verdict_error(&refused).unwrap_or_default());
            }
        };
        self.push(Pending::Execute {
            unit: CommandUnit {
                id,
                started: Instant::now(),
            },
            portal,
            effects,
        });
        self.batch_may_change |= may_change_lexing(&stmt.classification);
        self.unsynced = true;
        self.out.extend_from_slice(&frame.raw);
    }
}
