//! Request bodies: the signed webhook JSON and the Slack message. Pure
//! functions, no I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::notification::Notification;

/// Slack refuses section text over 3000 characters; keep the title well
/// under it.
const SLACK_TITLE_MAX_CHARS: usize = 2000;

#[derive(Serialize)]
struct WebhookBody<'a> {
    event: &'a str,
    id: &'a str,
    title: &'a str,
    link: Option<&'a str>,
    data: &'a Value,
    delivery: &'a str,
    sent_at: String,
}

/// The webhook body, exactly the bytes that are signed and sent.
pub(crate) fn webhook_body(
    n: &Notification,
    delivery_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&WebhookBody {
        event: &n.event,
        id: &n.id,
        title: &n.title,
        link: n.link.as_deref(),
        data: &n.data,
        delivery: delivery_id,
        sent_at: sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// Escapes the three characters Slack's mrkdwn treats as control
/// characters, so a title cannot ping `<!channel>` or forge a link.
pub(crate) fn escape_mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A URL made safe inside `<url|label>`: `|` would end the URL early.
fn escape_link_url(s: &str) -> String {
    escape_mrkdwn(s).replace('|', "%7C")
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The Slack incoming-webhook message: `text` (used by notifications and
/// old clients) plus a section block with the link as
/// `<url|Open request #id>`.
pub(crate) fn slack_body(n: &Notification) -> Value {
    let title = escape_mrkdwn(&truncate_chars(&n.title, SLACK_TITLE_MAX_CHARS));
    let (text, section) = match n.link.as_deref() {
        Some(link) => (
            format!("{title} {}", escape_mrkdwn(link)),
            format!(
                "{title}\n<{}|Open request #{}>",
                escape_link_url(link),
                escape_mrkdwn(&truncate_chars(&n.id, 100))
            ),
        ),
        None => (title.clone(), title),
    };
    json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": section } }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(title: &str, link: Option<&str>) -> Notification {
        Notification {
            event: "approval.requested".into(),
            id: "42".into(),
            title: title.into(),
            link: link.map(str::to_string),
            data: json!({"k": [1, 2]}),
        }
    }

    #[test]
    fn webhook_body_has_every_field() {
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .expect("date")
            .with_timezone(&Utc);
        let body = webhook_body(&n("t", Some("https://c/a/42")), "dlv_1", at).expect("json");
        let v: Value = serde_json::from_slice(&body).expect("parse");
        assert_eq!(
            v,
            json!({
                "event": "approval.requested", "id": "42", "title": "t",
                "link": "https://c/a/42", "data": {"k": [1, 2]},
                "delivery": "dlv_1", "sent_at": "2025-01-02T03:04:05.000Z"
            })
        );
        let body = webhook_body(&n("t", None), "d", at).expect("json");
        let v: Value = serde_json::from_slice(&body).expect("parse");
        assert_eq!(v["link"], Value::Null);
    }

    #[test]
    fn slack_has_title_and_link() {
        let v = slack_body(&n(
            "alice wants DELETE",
            Some("https://console/approvals/42"),
        ));
        assert_eq!(v["text"], "alice wants DELETE https://console/approvals/42");
        assert_eq!(v["blocks"][0]["type"], "section");
        assert_eq!(v["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(
            v["blocks"][0]["text"]["text"],
            "alice wants DELETE\n<https://console/approvals/42|Open request #42>"
        );
    }

    #[test]
    fn slack_escapes_control_characters() {
        let v = slack_body(&n("<!channel> a&b", Some("https://c/x?a=1&b=|2>")));
        let s = v["blocks"][0]["text"]["text"].as_str().unwrap_or_default();
        assert!(s.starts_with("&lt;!channel&gt; a&amp;b\n"), "{s}");
        assert!(
            s.contains("<https://c/x?a=1&amp;b=%7C2&gt;|Open request #42>"),
            "{s}"
        );
        assert!(!v["text"]
            .as_str()
            .unwrap_or_default()
            .contains("<!channel>"));
    }

    #[test]
    fn slack_without_link_and_long_title() {
        let long = "é".repeat(5000);
        let v = slack_body(&n(&long, None));
        let s = v["text"].as_str().unwrap_or_default();
        assert_eq!(s.chars().count(), SLACK_TITLE_MAX_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(v["blocks"][0]["text"]["text"], v["text"]);
    }
}
