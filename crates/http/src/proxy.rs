//! One request through the pipeline: route → authenticate → authorize →
//! classify → decide → record → (hold) → forward → mask → record.

use crate::admission::{self, Subject};
use crate::facts::{self, RequestView};
use crate::respond::{error, full, ClientBody, Refusal};
use crate::sessions::{Arrival, Busy, HttpSession};
use crate::upstream::Upstream;
use crate::HttpAdapter;
use bytes::Bytes;
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::deadline::{SessionDeadline, SessionEnd};
use gatehouse_core::events::{CommandDetail, CommandEvent, CommandResult, HttpCommand};
use gatehouse_core::lifecycle::{Command, CommandScope, Refusal as Refused, Unwatched};
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::pipeline::AuthError;
use gatehouse_core::policy::{ConnectionConfig, ConnectionKind};
use gatehouse_core::session::{Entry, Turned};
use gatehouse_core::{Identity, Verdict};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Headers that describe one hop, never forwarded as they are.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Most requests one identity may have running or held on a connection at
/// once; past it the gateway answers 429 instead of holding more bodies.
const MAX_IN_FLIGHT: u64 = 64;

/// Longest command text an approver is shown; a request that does not fit
/// is not held (nobody could review it whole), it is refused.
const APPROVER_TEXT: usize = 16 * 1024;

/// What the command record and the response pump share about a request.
pub(crate) struct Exchange {
    pub(crate) adapter: Arc<HttpAdapter>,
    /// Who asked (as of this request's token).
    pub(crate) identity: Identity,
    /// What was asked, for decisions about the answer.
    pub(crate) request: HttpFacts,
    /// The JSON fields masked whole for this caller on this connection.
    pub(crate) fields: Vec<gatehouse_core::policy::FieldMask>,
    pub(crate) session: Arc<HttpSession>,
    pub(crate) command_id: u64,
    pub(crate) started: Instant,
    pub(crate) bytes_from_client: u64,
    /// When this request's answer must stop: the expiry of the token it
    /// came with, or the end of the grant that admitted it. Streams
    /// (SSE, watches, followed logs, exec and port-forward) end then.
    pub(crate) deadline: SessionDeadline,
    /// What its commands (the request, a model's tool calls) share, for
    /// core's lifecycle: built once per request.
    pub(crate) scope: CommandScope,
}

impl Exchange {
    /// Record how the request ended and count it in its session. Runs
    /// after the last byte went to the client; a failure to record is
    /// logged (the response has already gone).
    pub(crate) async fn finish(
        &self,
        status: StatusCode,
        bytes_to_client: u64,
        masked: &MaskCounts,
        response: Option<serde_json::Value>,
        error: Option<String>,
    ) {
        self.session
            .count(self.bytes_from_client, bytes_to_client, false);
        let result = CommandResult {
            command_id: self.command_id,
            status: Some(status.as_u16()),
            bytes_to_client: Some(bytes_to_client),
            duration_us: Some(self.started.elapsed().as_micros() as u64),
            masked: masked.clone(),
            response,
            error: error.map(Into::into),
            ..CommandResult::default()
        };
        self.adapter.pipeline.finish(&self.scope, &result).await;
    }
}

impl Exchange {
    /// A stream was cut at `end`: a token expiry is recorded as such
    /// (`session.expired`, naming the request), so an examiner can list it.
    pub(crate) async fn record_cut(&self, end: &SessionEnd) {
        self.adapter
            .pipeline
            .record_deadline(
                &self.session.id,
                &self.identity,
                &self.session.connection,
                end,
                serde_json::json!({"protocol": "http", "command_id": self.command_id}),
            )
            .await;
    }

    /// The request's deadline came before its answer was ready (a slow
    /// upstream, a JSON answer still being read): the answer is withheld,
    /// 401 for an expired token (sign in again), 403 for an ended grant.
    pub(crate) async fn refuse_at_deadline(
        &self,
        kind: ConnectionKind,
        end: &SessionEnd,
    ) -> Response<ClientBody> {
        self.record_cut(end).await;
        let refusal = if end.is_token_expiry() {
            Refusal::Unauthenticated
        } else {
            Refusal::Forbidden
        };
        let message = format!("{}; the answer was withheld", end.message());
        let status = if end.is_token_expiry() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        self.refuse(status, kind, refusal, &message, None).await
    }

    /// Answer for the upstream with a refusal in `kind`'s dialect, and
    /// record the request's end with `detail` (the client's message when
    /// `None`; details such as internal addresses stay in the trail).
    pub(crate) async fn refuse(
        &self,
        status: StatusCode,
        kind: ConnectionKind,
        refusal: Refusal,
        message: &str,
        detail: Option<String>,
    ) -> Response<ClientBody> {
        let detail = detail.unwrap_or_else(|| message.to_string());
        self.finish(status, 0, &MaskCounts::default(), None, Some(detail))
            .await;
        error(Some(kind), refusal, message)
    }
}

/// Where a request goes.
struct Routed {
    conn: ConnectionConfig,
    /// The path after the connection's prefix, as sent.
    raw_path: String,
    /// The same path in canonical form, as rules judge it.
    rest_path: String,
}

/// Who sent it, signed in.
struct Caller {
    identity: Identity,
    /// Its token's expiry (or grant's end, or the gateway's stop).
    deadline: SessionDeadline,
    session: Arc<HttpSession>,
    /// The request's commands' scope (its identity and deadline).
    scope: CommandScope,
    /// Keeps the session busy until the answer is over.
    busy: Busy,
}

/// What it is, read.
struct ReadRequest {
    parts: http::request::Parts,
    body: Bytes,
    upgrade: bool,
    query: String,
    facts: HttpFacts,
    command_id: u64,
}

impl HttpAdapter {
    /// Serve one request; every outcome is a response in the client's dialect.
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ClientBody> {
        match self.run(req, peer).await {
            Ok(resp) | Err(resp) => resp,
        }
    }

    /// The stages of one request, in order: route, sign in, read, decide
    /// and admit, forward. Each returns the client's answer when the
    /// request stops there.
    async fn run(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ClientBody>, Response<ClientBody>> {
        let routed = self.route(&req)?;
        let caller = self.sign_in(&req, &routed.conn, peer).await?;
        let read = self.read(req, &routed, &caller).await?;
        self.admit(&routed, &caller, &read).await?;
        self.forward(routed, caller, read).await
    }

    /// Route stage: which connection the request is for, and the path the
    /// upstream will act on.
    #[allow(
        clippy::result_large_err,
        reason = "a refusal is the client's response itself, made once per request"
    )]
    fn route(&self, req: &Request<Incoming>) -> Result<Routed, Response<ClientBody>> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let path = req.uri().path().to_string();
        let Some(route) = self.routes.find(host.as_deref(), &path) else {
            return Err(error(
                None,
                Refusal::NotFound,
                &format!("no connection is reached at {path}; use https://<gateway>/<connection>/… or a configured host name"),
            ));
        };
        let conn = route.connection.clone();
        let raw_path = route.path;
        // Rules judge the path the upstream will act on; a path servers
        // could read differently (dot segments, doubled or encoded
        // slashes, `;` parameters) is refused rather than guessed at.
        let rest_path = match canonical_path(&raw_path) {
            Ok(p) => p,
            Err(why) => {
                return Err(error(Some(conn.kind), Refusal::BadRequest, &why));
            }
        };
        Ok(Routed {
            conn,
            raw_path,
            rest_path,
        })
    }

    /// Sign-in stage: the caller's token, their right to the connection
    /// (core's session lifecycle), their HTTP session and its load.
    async fn sign_in(
        &self,
        req: &Request<Incoming>,
        conn: &ConnectionConfig,
        peer: SocketAddr,
    ) -> Result<Caller, Response<ClientBody>> {
        let peer_text = peer.to_string();
        let kind = Some(conn.kind);
        let Some(token) = bearer(req.headers()) else {
            return Err(error(
                kind,
                Refusal::Unauthenticated,
                "send your Gatehouse token as `Authorization: Bearer <token>` (from your identity provider, or `gatehouse token issue` with the dev issuer)",
            ));
        };
        let arrival = gatehouse_core::session::Arrival {
            token: &token,
            connection: &conn.name,
            user: "",
            client_addr: &peer_text,
            protocol: "http",
            serves: |kind| kind.is_http(),
            require_subject_match: false,
        };
        let Entry {
            identity, grant, ..
        } = self
            .pipeline
            .enter(&arrival)
            .await
            .map_err(|turned| match turned {
                Turned::Unauthenticated(
                    e @ AuthError::Limited {
                        retry_after_secs, ..
                    },
                ) => {
                    let mut resp = error(kind, Refusal::TooMany, &e.to_string());
                    resp.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, retry_after_secs.into());
                    resp
                }
                Turned::Unauthenticated(e) => error(
                    kind,
                    Refusal::Unauthenticated,
                    &format!("gatehouse could not verify your token: {e}"),
                ),
                Turned::Denied { reason, .. } => error(kind, Refusal::Forbidden, &reason),
                Turned::WrongKind { .. } | Turned::WrongUser { .. } => error(
                    kind,
                    Refusal::Forbidden,
                    &format!(
                        "connection \"{}\" is not served by the HTTP listener",
                        conn.name
                    ),
                ),
            })?;
        let grant_id = grant.as_ref().map(|g| g.id);
        // Each request is authenticated on its own token; what it starts
        // (a wait for approval, a stream) ends when that token expires or
        // the grant ends.
        let deadline = self.pipeline.session_deadline(&identity, grant);
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let session = self
            .sessions
            .enter(
                &identity,
                &conn.name,
                Arrival {
                    client_addr: &peer_text,
                    grant_id,
                    user_agent: user_agent.as_deref(),
                    connection_type: kind_name(conn.kind),
                },
            )
            .await
            .map_err(|e| {
                error(
                    kind,
                    Refusal::Unavailable,
                    &format!("gatehouse could not record this session in the audit trail, so the request is refused: {e}"),
                )
            })?;
        let busy = session.busy();
        if session.in_flight() > MAX_IN_FLIGHT {
            return Err(error(
                kind,
                Refusal::TooMany,
                &format!("you have more than {MAX_IN_FLIGHT} requests running or waiting for approval on this connection; wait for some to finish"),
            ));
        }

        let scope = session.scope(Some((&identity, &deadline)));
        Ok(Caller {
            identity,
            deadline,
            session,
            scope,
            busy,
        })
    }

    /// Read stage: the body (bounded, uncompressed) and what the request
    /// is (its facts); an unreadable request is recorded as refused.
    async fn read(
        &self,
        req: Request<Incoming>,
        routed: &Routed,
        caller: &Caller,
    ) -> Result<ReadRequest, Response<ClientBody>> {
        let (conn, rest_path) = (&routed.conn, &routed.rest_path);
        let session = &caller.session;
        let kind = Some(conn.kind);
        let (parts, body) = req.into_parts();
        let upgrade = wants_upgrade(&parts.headers);
        if parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(error(
                kind,
                Refusal::BadRequest,
                "compressed request bodies cannot be checked by gatehouse; send it uncompressed",
            ));
        }
        let body = read_bounded(body, &parts.headers, self.settings.max_request_bytes)
            .await
            .map_err(|(refusal, message)| error(kind, refusal, &message))?;
        let query = parts.uri.query().unwrap_or("").to_string();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let json_content = content_type.contains("json");
        let form_content = content_type.contains("x-www-form-urlencoded");
        let view = RequestView {
            method: parts.method.as_str(),
            path: rest_path,
            query: &query,
            json_content,
            form_content,
            body: &body,
        };
        let command_id = session.next_command();
        let facts = match facts::classify(conn.kind, &view, &self.pipeline.masker) {
            Ok(f) => f,
            Err(why) => {
                let facts = HttpFacts {
                    method: view.method.to_string(),
                    path: rest_path.clone(),
                    query: query.clone(),
                    summary: format!("{} {}", view.method, rest_path),
                    ..HttpFacts::default()
                };
                let verdict = Verdict::Block {
                    rule: "unreadable-request".into(),
                    message: why.clone(),
                };
                // Recorded as refused; the client is told why either way.
                let command = self.command(conn, command_id, &facts, verdict, body.len());
                let _ = self.pipeline.admit(&caller.scope, command, None).await;
                session.count(body.len() as u64, 0, true);
                return Err(error(kind, Refusal::BadRequest, &why));
            }
        };
        Ok(ReadRequest {
            parts,
            body,
            upgrade,
            query,
            facts,
            command_id,
        })
    }

    /// Decide and admit stage: policy on the request's facts, then core's
    /// lifecycle (record, refuse, or hold until approvers decide).
    async fn admit(
        &self,
        routed: &Routed,
        caller: &Caller,
        read: &ReadRequest,
    ) -> Result<(), Response<ClientBody>> {
        let conn = &routed.conn;
        let kind = Some(conn.kind);
        let (identity, session, deadline) = (&caller.identity, &caller.session, &caller.deadline);
        let (facts, body, upgrade, command_id) =
            (&read.facts, &read.body, read.upgrade, read.command_id);
        let parts = &read.parts;
        let verdict = self
            .pipeline
            .policy
            .decide_http(identity, &conn.name, facts);
        // A blocked request is refused for its rule whatever its transport
        // (kubectl falls back from WebSocket to SPDY and shows the last
        // error); anything else may only switch to protocols we record.
        if !matches!(verdict, Verdict::Block { .. })
            && upgrade
            && !upgrade_allowed(conn.kind, facts, &parts.headers)
        {
            session.count(body.len() as u64, 0, true);
            return Err(error(
                kind,
                Refusal::BadRequest,
                "gatehouse relays protocol upgrades only for kubectl exec and attach (WebSocket, v4/v5.channel.k8s.io, so the session can be recorded; kubectl 1.30 or newer) and port-forward",
            ));
        }

        let mut command = self.command(conn, command_id, facts, verdict, body.len());
        if let Verdict::Hold { rule, .. } = &command.event.verdict {
            match self.approver_text(facts) {
                Ok(text) => command.shown = text,
                // Approvers could not be shown what they would approve.
                Err(why) => {
                    command.event.verdict = Verdict::Block {
                        rule: rule.clone(),
                        message: why,
                    }
                }
            }
        }
        let admitted = self
            .pipeline
            .admit(&caller.scope, command, Some(&mut Unwatched))
            .await;
        if let Err(refused) = admitted {
            if let (Refused::NotApproved { .. }, Some(end)) = (&refused, deadline.ended()) {
                self.pipeline
                    .record_deadline(
                        &session.id,
                        identity,
                        &conn.name,
                        &end,
                        serde_json::json!({"protocol": "http", "command_id": command_id}),
                    )
                    .await;
            }
            if !matches!(refused, Refused::NotRecorded(_)) {
                session.count(body.len() as u64, 0, true);
            }
            let (status, message) = admission::refusal(&refused, Subject::Request);
            return Err(error(kind, status, &message));
        }

        Ok(())
    }

    /// Forward stage: to the upstream, then the answer relayed (masked) or
    /// the protocol switched (kubectl exec, port-forward), within the
    /// caller's deadline.
    async fn forward(
        self: Arc<Self>,
        routed: Routed,
        caller: Caller,
        read: ReadRequest,
    ) -> Result<Response<ClientBody>, Response<ClientBody>> {
        let Routed { conn, raw_path, .. } = routed;
        let Caller {
            identity,
            deadline,
            session,
            scope,
            busy,
        } = caller;
        let ReadRequest {
            mut parts,
            body,
            upgrade,
            query,
            facts,
            command_id,
        } = read;
        let kind = Some(conn.kind);
        // Forward.
        let Some(upstream) = self.upstreams.get(&conn.name) else {
            return Err(error(
                kind,
                Refusal::BadGateway,
                &format!("connection \"{}\" has no upstream configured", conn.name),
            ));
        };
        let fields = self.pipeline.policy.field_masks(&identity, &conn.name);
        let exchange = Exchange {
            adapter: self.clone(),
            identity: identity.clone(),
            request: facts,
            fields,
            session: session.clone(),
            command_id,
            started: Instant::now(),
            bytes_from_client: body.len() as u64,
            deadline,
            scope,
        };
        let client_upgrade = if upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let forwarded_body = if conn.mask_prompts {
            let mut counts = MaskCounts::default();
            crate::llm::mask_prompt(&body, &self.pipeline.masker, &mut counts).unwrap_or(body)
        } else {
            body
        };
        // An exec that cannot be recorded does not start.
        let mut tap = None;
        if upgrade && crate::kubefacts::is_exec(&exchange.request) {
            match crate::exec::ExecTap::open(&exchange, &exchange.request.summary) {
                Ok(t) => tap = Some(t),
                Err(e) => {
                    let message = format!("gatehouse could not open a recording for this exec, so it did not start: {e}");
                    return Err(exchange
                        .refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            conn.kind,
                            Refusal::Unavailable,
                            &message,
                            None,
                        )
                        .await);
                }
            }
        }
        let out = match self.upstream_request(
            upstream,
            &conn,
            &identity,
            !exchange.fields.is_empty(),
            &parts,
            &raw_path,
            upgrade,
            forwarded_body,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Err(exchange
                    .refuse(
                        StatusCode::BAD_GATEWAY,
                        conn.kind,
                        Refusal::BadGateway,
                        &e,
                        None,
                    )
                    .await)
            }
        };
        // The answer must come before the deadline.
        let sent = tokio::select! {
            biased;
            end = exchange.deadline.reached() => {
                return Err(exchange.refuse_at_deadline(conn.kind, &end).await);
            }
            sent = upstream.send(out) => sent,
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "upstream request failed");
                let message = format!("the upstream of connection \"{}\" did not answer; the details are in the gateway's log and audit trail", conn.name);
                return Err(exchange
                    .refuse(
                        StatusCode::BAD_GATEWAY,
                        conn.kind,
                        Refusal::BadGateway,
                        &message,
                        Some(e),
                    )
                    .await);
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(exchange
                    .refuse(
                        StatusCode::BAD_GATEWAY,
                        conn.kind,
                        Refusal::BadGateway,
                        "the upstream switched protocols without being asked to",
                        None,
                    )
                    .await);
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let mut client_resp = Response::new(full(Bytes::new()));
            *client_resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            for (name, value) in resp.headers() {
                client_resp
                    .headers_mut()
                    .append(name.clone(), value.clone());
            }
            let subprotocol = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok());
            if let Some(t) = tap.as_mut() {
                t.set_protocol(subprotocol);
            }
            let output_masker =
                match subprotocol.and_then(crate::wsframes::ChannelProtocol::from_subprotocol) {
                    Some(protocol)
                        if tap.is_some()
                            && conn.mask_terminal
                            && self.pipeline.policy.detectors_apply(&identity) =>
                    {
                        let tty = crate::kube::ExecRequest::from_query(&query).tty;
                        Some(crate::execmask::ExecMasker::new(
                            self.pipeline.masker.clone(),
                            protocol,
                            binary_decider(
                                &self.pipeline,
                                &identity,
                                &conn.name,
                                &exchange.request.text,
                            ),
                            tty,
                        ))
                    }
                    _ => None,
                };
            crate::splice::spawn(
                exchange,
                tap,
                client_upgrade,
                upstream_upgrade,
                busy,
                output_masker,
            );
            return Ok(client_resp);
        }
        Ok(crate::response::relay(exchange, &conn, resp, busy).await)
    }

    /// What an approver reads: the summary and the body as the upstream
    /// will take it (JSON re-serialised, so a duplicated key shows the
    /// value that takes effect), detector-masked. `Err` when it is too
    /// long to show whole.
    fn approver_text(&self, facts: &HttpFacts) -> Result<String, String> {
        let mut text = facts.summary.clone();
        let body = match &facts.json {
            Some(j) if facts.detail.is_none() => {
                let mut j = j.clone();
                redact_secret_fields(&mut j);
                serde_json::to_string_pretty(&j).unwrap_or_default()
            }
            _ => facts.text.clone(),
        };
        if !body.is_empty() && !text.contains(body.as_str()) {
            text.push('\n');
            text.push_str(&body);
        }
        let mut counts = MaskCounts::default();
        let text = self
            .pipeline
            .masker
            .mask_detected(&text, &mut counts)
            .unwrap_or(text);
        if text.len() > APPROVER_TEXT {
            return Err(format!(
                "this request needs approval, but it is {} bytes long and approvers are shown at most {APPROVER_TEXT}; send a smaller request",
                text.len()
            ));
        }
        Ok(text)
    }

    /// The `command` event of a request about to be admitted: its facts
    /// with the query, summary and judged text masked for the trail.
    fn command(
        &self,
        conn: &ConnectionConfig,
        command_id: u64,
        facts: &HttpFacts,
        verdict: Verdict,
        body_len: usize,
    ) -> Command {
        let mut counts = MaskCounts::default();
        let text = truncate(&facts.text, facts::TEXT_CAPTURE).to_string();
        let text = self
            .pipeline
            .masker
            .mask_detected(&text, &mut counts)
            .unwrap_or(text);
        let mut request = serde_json::to_value(facts).unwrap_or_default();
        if let Some(obj) = request.as_object_mut() {
            let masker = &self.pipeline.masker;
            let query = redact_query(&facts.query);
            let query = masker.mask_detected(&query, &mut counts).unwrap_or(query);
            let summary = masker
                .mask_detected(&facts.summary, &mut counts)
                .unwrap_or_else(|| facts.summary.clone());
            obj.insert("query".into(), query.into());
            obj.insert("summary".into(), summary.into());
        }
        Command {
            event: CommandEvent {
                command_id,
                protocol: "http".into(),
                detail: CommandDetail::Http(HttpCommand {
                    connection_type: kind_name(conn.kind).into(),
                    request,
                    channel: crate::kubefacts::is_exec(facts).then_some(command_id),
                    detail: facts.detail.clone(),
                    text: (!text.is_empty()).then_some(text),
                    text_masked: counts,
                    body_bytes: Some(body_len),
                    tool_call: None,
                    answer_to: None,
                }),
                verdict,
                approval_request: None,
            },
            shown: String::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upstream_request(
        &self,
        upstream: &Upstream,
        conn: &ConnectionConfig,
        identity: &Identity,
        fields_apply: bool,
        parts: &http::request::Parts,
        path: &str,
        upgrade: bool,
        body: Bytes,
    ) -> Result<Request<crate::upstream::UpstreamBody>, String> {
        let uri = upstream.uri(path, parts.uri.query())?;
        let mut out = Request::new(http_body_util::Full::new(body));
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = uri;
        let headers = out.headers_mut();
        copy_request_headers(&parts.headers, headers, upgrade);
        headers.insert(
            header::HOST,
            HeaderValue::from_str(upstream.authority()).map_err(|e| e.to_string())?,
        );
        // Bodies are read to mask them: ask for them uncompressed.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if conn.kind == ConnectionKind::Kubernetes {
            // Protobuf bodies cannot be masked, and field rules are written
            // for objects, not tables or YAML: plain JSON says the same.
            if let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()) {
                if accept.contains("protobuf") || (fields_apply && accept != "application/json") {
                    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
                }
            }
            if conn.impersonate {
                impersonate(headers, identity)?;
            }
            // An exec or attach may only settle on a channel protocol the
            // recorder decodes: the others are not offered upstream.
            if upgrade {
                if let Some(offered) = headers
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                {
                    let known: Vec<&str> = offered
                        .split(',')
                        .map(str::trim)
                        .filter(|p| crate::wsframes::ChannelProtocol::from_subprotocol(p).is_some())
                        .collect();
                    if !known.is_empty() && path_is_exec_like(path) {
                        headers.insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_str(&known.join(", ")).map_err(|e| e.to_string())?,
                        );
                    }
                }
            }
        }
        if let Some((name, value)) = upstream.credential()? {
            headers.insert(name, value);
        }
        Ok(out)
    }
}

/// The connection type as recorded and shown.
pub(crate) fn kind_name(kind: ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::Openai => "openai",
        ConnectionKind::Kubernetes => "kubernetes",
        _ => "http",
    }
}

/// The caller's bearer token.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Whether the client asks to switch protocols (WebSocket, SPDY).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// How much of an oversized body is read and thrown away before the 413,
/// so a client still sending sees the answer instead of a reset.
const DRAIN_MAX: usize = 4 * 1024 * 1024;

/// Read a request body whole, refusing it (never truncating) past `limit`.
async fn read_bounded(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, (Refusal, String)> {
    let too_large = || {
        (
            Refusal::TooLarge,
            format!("the request body is larger than this gateway accepts ({limit} bytes, [http] max_request_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > (limit + DRAIN_MAX) as u64) {
        return Err(too_large());
    }
    let mut collected = bytes::BytesMut::new();
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                (
                    Refusal::BadRequest,
                    format!("could not read the request body: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen <= limit {
                    collected.extend_from_slice(&data);
                } else if seen > limit + DRAIN_MAX {
                    break;
                }
            }
        }
        Ok::<(), (Refusal, String)>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
        Ok(Ok(())) if seen <= limit => Ok(collected.freeze()),
        Ok(Ok(())) => Err(too_large()),
        Ok(Err(e)) => Err(e),
        Err(_) if seen > limit => Err(too_large()),
        Err(_) => Err((
            Refusal::BadRequest,
            "the request body did not arrive within 30 seconds".into(),
        )),
    }
}

/// Copy the client's headers for the upstream, minus hop-by-hop headers,
/// the caller's own credential and anything that would change who the
/// upstream thinks is calling.
fn copy_request_headers(from: &HeaderMap, to: &mut HeaderMap, upgrade: bool) {
    let named_in_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in from {
        let n = name.as_str();
        let hop = HOP_BY_HOP.contains(&n) || named_in_connection.iter().any(|c| c == n);
        // Compressed WebSocket frames could not be read for the recording.
        let unreadable = n == "sec-websocket-extensions";
        if hop || unreadable || identity_bearing(n) {
            continue;
        }
        if n == "sec-websocket-protocol" {
            // kubectl may offer its token as a subprotocol; never forward it.
            if let Some(kept) = without_bearer_subprotocols(value) {
                to.append(name.clone(), kept);
            }
            continue;
        }
        to.append(name.clone(), value.clone());
    }
    if upgrade {
        to.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(u) = from.get(header::UPGRADE) {
            to.insert(header::UPGRADE, u.clone());
        }
    }
}

/// Headers that would tell the upstream who is calling, change what it
/// does beyond what the gateway decided (method overrides, URL rewrites,
/// ranges of a body the gateway must mask whole), or carry a length the
/// gateway may change.
fn identity_bearing(n: &str) -> bool {
    matches!(
        n,
        "authorization"
            | "cookie"
            | "host"
            | "content-length"
            | "forwarded"
            | "x-real-ip"
            | "true-client-ip"
            | "remote-user"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "range"
            | "if-range"
    ) || n.starts_with("impersonate-")
        || n.starts_with("x-remote-")
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-auth-request-")
        || n.starts_with("x-webauth-")
        || n.starts_with("x-original-")
        || n.starts_with("x-envoy-")
        || matches!(n, "x-client-ip" | "cf-connecting-ip" | "x-user" | "x-email")
}

/// A `Sec-WebSocket-Protocol` value without bearer-token entries.
fn without_bearer_subprotocols(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let kept: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization"))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// Only Kubernetes streams into pods switch protocols, and only to
/// WebSocket or SPDY: anything else (`h2c`, a WebSocket to another API)
/// would carry traffic the gateway could not decide or mask.
fn upgrade_allowed(kind: ConnectionKind, facts: &HttpFacts, headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|u| u.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let websocket = upgrade == "websocket";
    if kind != ConnectionKind::Kubernetes {
        return false;
    }
    match facts.resource.as_deref() {
        // exec and attach are recorded: only the channel protocols the
        // recorder decodes may be offered (no SPDY, no unknown ones).
        Some("pods/exec") | Some("pods/attach") => {
            let offered: Vec<String> = headers
                .get_all("sec-websocket-protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization"))
                .collect();
            websocket
                && offered
                    .iter()
                    .any(|p| crate::wsframes::ChannelProtocol::from_subprotocol(p).is_some())
        }
        Some("pods/portforward") => websocket || upgrade.starts_with("spdy/"),
        _ => false,
    }
}

/// Whether a (raw) Kubernetes path ends in an exec or attach subresource.
fn path_is_exec_like(path: &str) -> bool {
    path.ends_with("/exec") || path.ends_with("/attach")
}

/// The path as the upstream will act on it: percent-decoded, or an error
/// when servers could disagree about it.
fn canonical_path(raw: &str) -> Result<String, String> {
    let refuse = || {
        format!("the path {raw:?} has dot segments, doubled or encoded slashes or `;` parameters, which servers read differently; gatehouse refuses it rather than guess")
    };
    let lower = raw.to_ascii_lowercase();
    // Encoded separators and escapes would mean one thing here and another
    // after the upstream decodes them (`%3F` starts a query there, `%25`
    // is decoded twice).
    if ["%2f", "%5c", "%00", "%3f", "%23", "%25"]
        .iter()
        .any(|e| lower.contains(e))
        || raw.contains('\\')
    {
        return Err(refuse());
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hi = it.next();
            let lo = it.next();
            let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
            match (hex(hi), hex(lo)) {
                (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                _ => return Err(refuse()),
            }
        } else {
            bytes.push(b);
        }
    }
    let decoded = String::from_utf8(bytes).map_err(|_| refuse())?;
    let bad_segment = decoded.split('/').skip(1).enumerate().any(|(i, seg)| {
        seg == "." || seg == ".." || (seg.is_empty() && i + 1 < decoded.split('/').count() - 1)
    });
    if bad_segment
        || decoded.contains([';', '?', '#', '%', ' '])
        || decoded.chars().any(char::is_control)
    {
        return Err(refuse());
    }
    Ok(decoded)
}

/// Blank out values of secret-named fields before people see a body.
fn redact_secret_fields(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if crate::facts::is_secret_name(k) {
                    *v = serde_json::Value::String("***".into());
                } else {
                    redact_secret_fields(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secret_fields),
        _ => {}
    }
}

/// Ask the API server to act as the caller, so its RBAC applies per person.
fn impersonate(headers: &mut HeaderMap, identity: &Identity) -> Result<(), String> {
    let user = identity.email.as_deref().unwrap_or(&identity.subject);
    let value = |s: &str| {
        HeaderValue::from_str(s).map_err(|_| format!("identity \"{s}\" cannot be sent as a header"))
    };
    headers.insert(HeaderName::from_static("impersonate-user"), value(user)?);
    for g in &identity.groups {
        headers.append(HeaderName::from_static("impersonate-group"), value(g)?);
    }
    Ok(())
}

/// Query parameters whose values look like secrets are recorded as `***`.
pub(crate) fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            let lower = k.to_ascii_lowercase();
            if crate::facts::is_secret_name(k)
                || ["key", "signature", "sig"]
                    .iter()
                    .any(|s| lower.contains(s))
            {
                format!("{k}=***")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` cut to at most `max` bytes on a character boundary, never inside a number.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    // Never inside a number: a cut card would escape the detectors.
    gatehouse_core::mask::cut_for_trail(text, max)
}

/// Remove hop-by-hop headers from a response going back to the client.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// How binary exec output (`kubectl cp` runs `tar cf -`) on a masking
/// connection is decided: refused unless a rule with `kinds = ["binary"]`
/// matches the exec's command (its `pattern` sees the command line).
fn binary_decider(
    pipeline: &std::sync::Arc<gatehouse_core::pipeline::Pipeline>,
    identity: &gatehouse_core::Identity,
    connection: &str,
    command: &str,
) -> crate::execmask::DecideBinary {
    use gatehouse_core::classify::shell::{self, ShellKind};
    let pipeline = pipeline.clone();
    let identity = identity.clone();
    let connection = connection.to_string();
    let command = command.to_string();
    Box::new(move |found| {
        let mut facts = shell::classify(&command, ShellKind::Binary);
        facts.kind = ShellKind::Binary;
        match pipeline
            .policy
            .decide_shell(&identity, &connection, &command, &facts)
        {
            Verdict::Allow { rule: Some(rule) } => Ok(rule),
            Verdict::Allow { rule: None } => Err(format!(
                "the output of `{command}` is not text ({found}); this connection masks exec output and binary output cannot be masked, so it was refused (kubectl cp needs a rule with kinds = [\"binary\"] that allows it)"
            )),
            Verdict::Block { rule, message } | Verdict::Hold { rule, message, .. } => Err(format!(
                "the output of `{command}` is not text ({found}) and rule \"{rule}\" refuses it: {message}"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_credentials_and_impersonation_never_travel_upstream() {
        let mut from = HeaderMap::new();
        from.insert("authorization", HeaderValue::from_static("Bearer caller"));
        from.insert("impersonate-user", HeaderValue::from_static("admin"));
        from.insert("connection", HeaderValue::from_static("close, x-secret"));
        from.insert("x-secret", HeaderValue::from_static("1"));
        from.insert("content-type", HeaderValue::from_static("application/json"));
        let mut to = HeaderMap::new();
        copy_request_headers(&from, &mut to, false);
        assert_eq!(to.len(), 1);
        assert!(to.contains_key("content-type"));
    }

    #[test]
    fn paths_servers_could_read_differently_are_refused() {
        assert_eq!(canonical_path("/%63ustomers/1").unwrap(), "/customers/1");
        assert_eq!(
            canonical_path("/v1/chat/completions").unwrap(),
            "/v1/chat/completions"
        );
        assert_eq!(canonical_path("/").unwrap(), "/");
        assert_eq!(canonical_path("/a/").unwrap(), "/a/");
        for bad in [
            "/./customers/1",
            "//customers/1",
            "/customers;x/1",
            "/a/../admin",
            "/a%2fb",
            "/%2e%2e/x",
            "/a/%2E/b",
            "/a\\b",
            "/admin%3F",
            "/admin%23x",
            "/%2561dmin",
            "/a%20b",
            "/transfers%3f",
        ] {
            assert!(canonical_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn method_overrides_and_forwarding_headers_are_dropped() {
        let mut from = HeaderMap::new();
        for h in [
            "x-http-method-override",
            "x-forwarded-user",
            "x-original-url",
            "remote-user",
            "range",
            "content-length",
        ] {
            from.insert(HeaderName::from_static(h), HeaderValue::from_static("x"));
        }
        from.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(
                "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.c2VjcmV0",
            ),
        );
        let mut to = HeaderMap::new();
        copy_request_headers(&from, &mut to, false);
        assert_eq!(to.len(), 1, "{to:?}");
        assert_eq!(to["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    #[test]
    fn secrets_in_queries_are_not_recorded() {
        assert_eq!(
            redact_query("a=1&api_key=xyz&Token=t"),
            "a=1&api_key=***&Token=***"
        );
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
