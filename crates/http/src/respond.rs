//! Responses the gateway writes itself, in the dialect each client
//! understands: OpenAI SDKs read `{"error": {...}}`, kubectl reads a
//! Kubernetes `Status`, other JSON clients get a plain error object.

use bytes::Bytes;
use gatehouse_core::policy::ConnectionKind;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Error type of bodies sent to clients.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the adapter sends.
pub type ClientBody = BoxBody<Bytes, BodyError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Why the gateway answered instead of the upstream, for clients and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a token that did not validate.
    Unauthenticated,
    /// The caller may not use the connection, or a rule blocked the request.
    Forbidden,
    /// An approver denied the held request, or nobody decided in time.
    NotApproved,
    /// No connection is reached at this host or path.
    NotFound,
    /// The request body is larger than the configured bound.
    TooLarge,
    /// The request could not be read (malformed JSON where JSON is needed).
    BadRequest,
    /// The upstream failed or sent what the gateway cannot safely pass on.
    BadGateway,
    /// The gateway could not keep the evidence, so nothing ran.
    Unavailable,
    /// The caller has too many requests running (or waiting) at once.
    TooMany,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden | Refusal::NotApproved => StatusCode::FORBIDDEN,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::TooMany => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Machine-readable code, also recorded in the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "blocked_by_gatehouse",
            Refusal::NotApproved => "not_approved",
            Refusal::NotFound => "no_such_connection",
            Refusal::TooLarge => "request_too_large",
            Refusal::BadRequest => "unreadable_request",
            Refusal::BadGateway => "upstream_failed",
            Refusal::Unavailable => "audit_unavailable",
            Refusal::TooMany => "too_many_requests",
        }
    }

    /// The Kubernetes `Status.reason` kubectl prints.
    fn kube_reason(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "Unauthorized",
            Refusal::Forbidden | Refusal::NotApproved => "Forbidden",
            Refusal::NotFound => "NotFound",
            Refusal::TooLarge => "RequestEntityTooLarge",
            Refusal::BadRequest => "BadRequest",
            Refusal::BadGateway => "InternalError",
            Refusal::Unavailable => "ServiceUnavailable",
            Refusal::TooMany => "TooManyRequests",
        }
    }

    /// The OpenAI error `type` SDKs expose.
    fn openai_type(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "authentication_error",
            Refusal::Forbidden | Refusal::NotApproved => "permission_error",
            Refusal::NotFound => "not_found_error",
            Refusal::TooLarge | Refusal::BadRequest => "invalid_request_error",
            Refusal::BadGateway | Refusal::Unavailable => "api_error",
            Refusal::TooMany => "rate_limit_error",
        }
    }
}

/// The error body for `kind`'s clients.
pub fn error_body(kind: Option<ConnectionKind>, refusal: Refusal, message: &str) -> Vec<u8> {
    let value = match kind {
        Some(ConnectionKind::Kubernetes) => serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": refusal.kube_reason(),
            "code": refusal.status().as_u16(),
        }),
        Some(ConnectionKind::Openai) => {
            return crate::openai::openai_error_body(
                message,
                refusal.openai_type(),
                Some(refusal.code()),
            )
        }
        _ => serde_json::json!({
            "error": {"code": refusal.code(), "message": message}
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A JSON error response for `kind`'s clients.
pub fn error(
    kind: Option<ConnectionKind>,
    refusal: Refusal,
    message: &str,
) -> Response<ClientBody> {
    let mut resp = Response::new(full(error_body(kind, refusal, message)));
    *resp.status_mut() = refusal.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if refusal == Refusal::Unauthenticated {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatehouse\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_its_own_error_shape() {
        let k: serde_json::Value = serde_json::from_slice(&error_body(
            Some(ConnectionKind::Kubernetes),
            Refusal::Forbidden,
            "no",
        ))
        .unwrap();
        assert_eq!(k["kind"], "Status");
        assert_eq!(k["code"], 403);
        assert_eq!(k["reason"], "Forbidden");
        let o: serde_json::Value = serde_json::from_slice(&error_body(
            Some(ConnectionKind::Openai),
            Refusal::Forbidden,
            "no",
        ))
        .unwrap();
        assert_eq!(o["error"]["type"], "permission_error");
        assert_eq!(o["error"]["message"], "no");
    }
}
