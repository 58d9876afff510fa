//! The JSON API for approvals and access grants (`/api/v1/…`).
//!
//! Every call carries the caller's own OIDC token as a bearer token and is
//! validated exactly like a database login, so the CLI, scripts and the
//! console's decisions all pass the same checks and leave the same trail.

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_approvals::{Broker, BrokerError, RequestFilter, Status};
use gatehouse_core::duration;
use gatehouse_core::events::{Event, SealedRevealed};
use gatehouse_core::pipeline::{AuthError, EventRecord};
use gatehouse_core::Identity;
use serde::Deserialize;
use std::sync::Arc;

/// Most requests one list call returns.
const MAX_LIST: usize = 1000;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Requests and grants.
    pub broker: Broker,
    /// Validates callers' bearer tokens, through the same sign-in limits
    /// and `auth.failure` records as every protocol.
    pub pipeline: Arc<gatehouse_core::pipeline::Pipeline>,
    /// Groups that see everything read-only.
    pub auditor_groups: Arc<Vec<String>>,
    /// The audit trail (reveals of sealed originals are recorded in it).
    pub audit: gatehouse_audit::AuditLog,
    /// The audit store, read for sealed originals.
    pub audit_db: std::path::PathBuf,
}

/// An API error as JSON: `{"error": "..."}` with a fitting status.
pub struct ApiError(StatusCode, String);

/// Too many failed sign-ins from the caller's address: 429, `Retry-After`.
struct Limited(String, u64);

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let mut resp = ApiError(StatusCode::TOO_MANY_REQUESTS, self.0).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(self.1));
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.0, Json(serde_json::json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, e.to_string())
    }
}

/// The authenticated caller of an API request.
pub struct Caller(pub Identity);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "send your token as `Authorization: Bearer <token>` (GATEHOUSE_TOKEN for the CLI)"
                        .into(),
                )
                .into_response()
            })?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        match state
            .pipeline
            .authenticate(token, API_CONNECTION, "", &peer, "api")
            .await
        {
            Ok(identity) => Ok(Caller(identity)),
            Err(
                e @ AuthError::Limited {
                    retry_after_secs, ..
                },
            ) => Err(Limited(e.to_string(), retry_after_secs).into_response()),
            Err(e) => Err(
                ApiError(StatusCode::UNAUTHORIZED, format!("token rejected: {e}")).into_response(),
            ),
        }
    }
}

/// What a refused API token's `auth.failure` names as its connection.
const API_CONNECTION: &str = "gatehouse-api";

/// The API's routes, under `/api/v1`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/approvals", get(list))
        .route("/api/v1/approvals/{id}", get(show))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/deny", post(deny))
        .route("/api/v1/access", post(request_access))
        .route("/api/v1/grants", get(grants))
        .route("/api/v1/grants/{id}/revoke", post(revoke))
        .route("/api/v1/audit/events/{seq}/reveal", post(reveal))
        .with_state(state)
}

async fn whoami(Caller(who): Caller) -> Json<Identity> {
    Json(who)
}

#[derive(Deserialize)]
struct ListQuery {
    /// `pending` (default), a status name, or `all`.
    status: Option<String>,
    connection: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let statuses = match q.status.as_deref().unwrap_or("pending") {
        "all" => Vec::new(),
        s => vec![Status::parse(s).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown status \"{s}\"; use pending, approved, executed, denied, expired, withdrawn or all"),
            )
        })?],
    };
    let requests = st
        .broker
        .requests(RequestFilter {
            statuses,
            connection: q.connection,
            limit: q.limit.unwrap_or(200).min(MAX_LIST),
        })
        .await?;
    let visible: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.visible_to(&who, &st.auditor_groups))
        .map(|r| with_extras(&st.broker, r, &who))
        .collect();
    Ok(Json(serde_json::json!({"requests": visible})))
}

/// A request as JSON, with its link and whether the caller may decide it.
fn with_extras(
    broker: &Broker,
    r: &gatehouse_approvals::Request,
    who: &Identity,
) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("link".into(), broker.link(r.id).into());
        obj.insert("title".into(), r.title().into());
        obj.insert("requirement_text".into(), r.requirement.describe().into());
        obj.insert("can_decide".into(), broker.can_decide(r, who).into());
    }
    v
}

async fn show(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = st.broker.request(id).await?;
    if !r.visible_to(&who, &st.auditor_groups) {
        // Same answer as a missing request: ids are not secrets, but what
        // others run is.
        return Err(BrokerError::NotFound(format!("request #{id}")).into());
    }
    Ok(Json(with_extras(&st.broker, &r, &who)))
}

#[derive(Deserialize)]
struct DecisionBody {
    reason: String,
}

async fn approve(
    st: State<ApiState>,
    who: Caller,
    id: Path<u64>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(st, who, id, true, body.reason).await
}

async fn deny(
    st: State<ApiState>,
    who: Caller,
    id: Path<u64>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(st, who, id, false, body.reason).await
}

async fn decide(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    approve: bool,
    reason: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = st.broker.decide(id, &who, approve, &reason).await?;
    Ok(Json(with_extras(&st.broker, &r, &who)))
}

#[derive(Deserialize)]
struct AccessBody {
    connection: String,
    /// `2h`, `30m`, …
    duration: String,
    reason: String,
    /// The group the grant acts as (one of the connection's `access_as`).
    #[serde(default, rename = "as")]
    as_group: Option<String>,
}

async fn request_access(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Json(body): Json<AccessBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let secs = duration::parse(&body.duration)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?
        .as_secs();
    let r = st
        .broker
        .request_access(
            &who,
            &body.connection,
            secs,
            &body.reason,
            body.as_group.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(with_extras(&st.broker, &r, &who))))
}

#[derive(Deserialize)]
struct GrantsQuery {
    active: Option<bool>,
}

async fn grants(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Query(q): Query<GrantsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let auditor = st.auditor_groups.iter().any(|g| who.in_group(g));
    let all = st.broker.grants(q.active.unwrap_or(false)).await?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|g| auditor || st.broker.may_revoke(g, &who))
        .collect();
    Ok(Json(serde_json::json!({"grants": visible})))
}

async fn revoke(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let g = st.broker.revoke(id, &who, &body.reason).await?;
    Ok(Json(serde_json::to_value(g).unwrap_or_default()))
}

/// Hand out an event's sealed originals to an auditor, recording who asked
/// and why *before* anything is returned (fail closed). The gateway holds no
/// key that opens them: the caller decrypts with the investigator's identity.
async fn reveal(
    State(st): State<ApiState>,
    Caller(who): Caller,
    Path(seq): Path<u64>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !st.auditor_groups.iter().any(|g| who.in_group(g)) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "only auditors ([console] auditor_groups) may take sealed originals".into(),
        ));
    }
    let reason = body.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "say why (--reason): the reveal is recorded in the audit trail".into(),
        ));
    }
    let db = st.audit_db.clone();
    let event = tokio::task::spawn_blocking(move || {
        gatehouse_audit::TrailReader::open(&db)
            .and_then(|r| r.after(seq.saturating_sub(1), 1))
            .map(|v| v.into_iter().next())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .filter(|e| e.seq == seq)
    .ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("there is no audit event {seq}"),
        )
    })?;
    let sealed = event
        .data
        .get("sealed_originals")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "audit event {seq} ({}) holds no sealed originals",
                    event.kind
                ),
            )
        })?
        .to_string();
    let recorded = st
        .audit
        .record(crate::gateway::new_event(EventRecord::of(
            Event::SealedRevealed(Box::new(SealedRevealed {
                event_seq: seq,
                reason: reason.to_string(),
                by: who.clone(),
            })),
            event.session_id.as_deref(),
            Some(&who.subject),
            event.connection.as_deref(),
        )))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the reveal could not be recorded in the audit trail, so nothing is handed out: {e}"),
            )
        })?;
    Ok(Json(serde_json::json!({
        "event_seq": seq,
        "sealed_originals": sealed,
        "recorded_as": recorded,
    })))
}
