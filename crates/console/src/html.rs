//! Page shell, navigation, error pages and the small formatting helpers
//! every page uses. All markup goes through maud, which escapes every
//! interpolated value; nothing here builds HTML from strings.

use crate::auth::Viewer;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// A complete HTML document around `main`.
pub(crate) fn document(title: &str, header: Markup, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · Gatehouse" }
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                (header)
                main { (main) }
            }
        }
    }
}

/// The top bar: navigation for the pages this viewer may open, who is
/// signed in, and the sign-out button.
pub(crate) fn top_bar(viewer: Option<&Viewer>, active: &str) -> Markup {
    let items: &[(&str, &str, bool)] = &[
        ("approvals", "Approvals", true),
        ("grants", "Grants", true),
        ("sessions", "Sessions", true),
        ("audit", "Audit trail", false),
        ("deliveries", "Notifications", false),
    ];
    html! {
        header.top {
            a.brand href="/approvals" { span.logo { "▣" } " Gatehouse" }
            @if let Some(v) = viewer {
                nav {
                    @for (path, label, everyone) in items {
                        @if *everyone || v.auditor {
                            a href={ "/" (path) } class=[(active == *path).then_some("active")] { (label) }
                        }
                    }
                }
                div.who {
                    span.name title=(v.identity.subject) { (v.name()) }
                    @if v.auditor { span.badge.neutral title="auditors see everything, read-only" { "auditor" } }
                    @if !v.identity.groups.is_empty() {
                        span.groups { (v.identity.groups.join(", ")) }
                    }
                    form.inline method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(v.csrf);
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
        }
    }
}

/// A page for a signed-in viewer.
pub(crate) fn layout(viewer: &Viewer, active: &str, title: &str, content: Markup) -> Markup {
    document(title, top_bar(Some(viewer), active), content)
}

/// An HTML response.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page that says what went wrong and what to do next.
pub(crate) fn error_page(
    viewer: Option<&Viewer>,
    status: StatusCode,
    title: &str,
    message: &str,
    next: Option<(&str, &str)>,
) -> Response {
    let body = html! {
        section.card.problem {
            h1 { (title) }
            p { (message) }
            @if let Some((href, label)) = next {
                p { a.button href=(href) { (label) } }
            }
        }
    };
    respond(status, document(title, top_bar(viewer, ""), body))
}

/// The 403 page.
pub(crate) fn forbidden(viewer: &Viewer, what: &str) -> Response {
    error_page(
        Some(viewer),
        StatusCode::FORBIDDEN,
        "Not yours to see",
        &format!(
            "{what} Signed in as {} (groups: {}). If you need it, ask an administrator to add you to the right group.",
            viewer.name(),
            if viewer.identity.groups.is_empty() {
                "none".to_string()
            } else {
                viewer.identity.groups.join(", ")
            }
        ),
        Some(("/approvals", "Back to approvals")),
    )
}

/// The 404 page.
pub(crate) fn not_found(viewer: Option<&Viewer>, what: &str) -> Response {
    error_page(
        viewer,
        StatusCode::NOT_FOUND,
        "Not found",
        what,
        Some(("/approvals", "Back to approvals")),
    )
}

/// Unix seconds as RFC 3339 UTC.
pub(crate) fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix seconds as `2025-01-31 09:15:02 UTC`, in a `<time>` element whose
/// tooltip the page script sets to the reader's local time.
pub(crate) fn when(ts: i64) -> Markup {
    let shown = chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into());
    html! { time datetime=(rfc3339(ts)) title=(shown) { (shown) } }
}

/// An audit-trail timestamp (`2025-01-31T09:15:02.123Z`) shown like [`when`].
pub(crate) fn when_text(ts: &str) -> Markup {
    let shown = chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string());
    html! { time datetime=(ts) title=(shown) { (shown) } }
}

/// A duration in words: `45s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub(crate) fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => {
            let m = s % 3600 / 60;
            if m == 0 {
                format!("{} h", s / 3600)
            } else {
                format!("{} h {m} min", s / 3600)
            }
        }
        _ => {
            let h = s % 86_400 / 3600;
            if h == 0 {
                format!("{} d", s / 86_400)
            } else {
                format!("{} d {h} h", s / 86_400)
            }
        }
    }
}

/// `5 min ago` / `in 5 min`, relative to `now`.
pub(crate) fn relative(ts: i64, now: i64) -> String {
    if ts <= now {
        format!("{} ago", span(now - ts))
    } else {
        format!("in {}", span(ts - now))
    }
}

/// Percent-encode one URL path segment or query value.
pub(crate) fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_escapes_everything_interpolated() {
        let nasty = r#"<script>alert("x")</script> & 'q'"#;
        let out = html! { p title=(nasty) { (nasty) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(out.contains("&quot;x&quot;"), "{out}");
        assert!(out.contains("&amp;"), "{out}");
        let page = error_page(None, StatusCode::BAD_REQUEST, nasty, nasty, None);
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(span(5), "5s");
        assert_eq!(span(125), "2 min");
        assert_eq!(span(7200), "2 h");
        assert_eq!(span(3900), "1 h 5 min");
        assert_eq!(span(90_000), "1 d 1 h");
        assert_eq!(relative(100, 160), "1 min ago");
        assert_eq!(relative(400, 100), "in 5 min");
    }

    #[test]
    fn url_parts_are_encoded() {
        assert_eq!(url_part("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(url_part("s-1_2.3~"), "s-1_2.3~");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(when(0).into_string().contains("1970-01-01 00:00:00 UTC"));
        assert!(when_text("2025-01-31T09:15:02.123Z")
            .into_string()
            .contains("2025-01-31 09:15:02 UTC"));
    }
}
