//! Who may see what. Deciding and revoking are checked again by the broker;
//! these rules decide what a page shows, and fail closed.
//!
//! * Auditors (members of `auditor_groups`) see everything, read-only.
//! * Everyone sees their own requests, grants and sessions.
//! * An approver sees the requests they may decide or did decide (and the
//!   sessions those requests came from, to judge the command in context),
//!   and the grants of connections they approve access to.

use crate::auth::Viewer;
use gatehouse_approvals::{Grant, Request};
use gatehouse_core::Identity;

/// Whether `who` is in one of the groups that decide `r`.
pub(crate) fn in_approver_groups(r: &Request, who: &Identity) -> bool {
    r.requirement
        .any_of
        .iter()
        .chain(r.requirement.each_of.iter())
        .any(|g| who.in_group(g))
}

/// Whether the viewer may open request `r`.
pub(crate) fn may_view_request(r: &Request, v: &Viewer) -> bool {
    v.auditor
        || r.is_requester(&v.identity)
        || r.decisions.iter().any(|d| {
            d.approver.subject == v.identity.subject && d.approver.issuer == v.identity.issuer
        })
        || in_approver_groups(r, &v.identity)
}

/// Whether `who` holds grant `g`.
pub(crate) fn holds(g: &Grant, who: &Identity) -> bool {
    g.holder.subject == who.subject && g.holder.issuer == who.issuer
}

/// Whether the viewer may see grant `g`, created by `request` (if found).
pub(crate) fn may_view_grant(g: &Grant, request: Option<&Request>, v: &Viewer) -> bool {
    v.auditor
        || holds(g, &v.identity)
        || request.is_some_and(|r| in_approver_groups(r, &v.identity))
}

/// Whether to offer the revoke button on grant `g`: its holder or an
/// access approver of its connection (the broker checks again).
pub(crate) fn may_revoke(g: &Grant, request: Option<&Request>, v: &Viewer) -> bool {
    holds(g, &v.identity) || request.is_some_and(|r| in_approver_groups(r, &v.identity))
}

/// Whether the viewer may open a session of `subject` (issued by `issuer`
/// when the trail recorded it), given the requests it raised that the
/// viewer may see.
pub(crate) fn may_view_session(
    subject: Option<&str>,
    issuer: Option<&str>,
    v: &Viewer,
    visible_requests: usize,
) -> bool {
    let own = subject == Some(v.identity.subject.as_str())
        && issuer.is_none_or(|i| i == v.identity.issuer);
    v.auditor || own || visible_requests > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_approvals::{RequestKind, Status};
    use gatehouse_core::approval::{Decision, Requirement};

    fn who(sub: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: sub.into(),
            email: Some(format!("{sub}@bank.test")),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            issuer: "https://idp".into(),
            token_id: None,
            expires_at: 0,
        }
    }

    fn viewer(sub: &str, groups: &[&str], auditor: bool) -> Viewer {
        Viewer {
            identity: who(sub, groups),
            csrf: "c".into(),
            auditor,
            sid: "s".into(),
        }
    }

    fn request() -> Request {
        Request {
            id: 1,
            kind: RequestKind::Command,
            status: Status::Pending,
            requester: who("alice", &["analysts"]),
            connection: "bank".into(),
            session_id: Some("s1".into()),
            protocol: Some("postgres".into()),
            command: Some("delete from t".into()),
            rule: Some("r".into()),
            message: "m".into(),
            access_secs: None,
            access_as: Vec::new(),
            requirement: Requirement {
                any_of: vec!["approvers".into()],
                count: 1,
                each_of: vec!["security".into()],
                timeout_secs: 60,
            },
            decisions: vec![],
            created_at: 0,
            expires_at: 60,
            settled_at: None,
            note: None,
            grant_id: None,
        }
    }

    #[test]
    fn request_visibility() {
        let mut r = request();
        assert!(
            may_view_request(&r, &viewer("alice", &["analysts"], false)),
            "requester"
        );
        assert!(
            may_view_request(&r, &viewer("omar", &["approvers"], false)),
            "approver"
        );
        assert!(
            may_view_request(&r, &viewer("sec", &["security"], false)),
            "each_of group"
        );
        assert!(
            may_view_request(&r, &viewer("audrey", &["auditors"], true)),
            "auditor"
        );
        assert!(
            !may_view_request(&r, &viewer("bob", &["analysts"], false)),
            "bystander"
        );
        r.decisions.push(Decision {
            approver: who("bob", &[]),
            approve: true,
            reason: "r".into(),
            at: String::new(),
        });
        assert!(
            may_view_request(&r, &viewer("bob", &[], false)),
            "decided it"
        );
    }

    #[test]
    fn grant_visibility_and_revoke() {
        let mut r = request();
        r.kind = RequestKind::Access;
        let g = Grant {
            id: 1,
            request_id: 1,
            holder: who("alice", &[]),
            connection: "bank".into(),
            access_as: Vec::new(),
            starts_at: 0,
            expires_at: 10,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        };
        let holder = viewer("alice", &[], false);
        let approver = viewer("omar", &["approvers"], false);
        let auditor = viewer("audrey", &["auditors"], true);
        let other = viewer("bob", &[], false);
        assert!(may_view_grant(&g, Some(&r), &holder) && may_revoke(&g, Some(&r), &holder));
        assert!(may_view_grant(&g, Some(&r), &approver) && may_revoke(&g, Some(&r), &approver));
        assert!(may_view_grant(&g, Some(&r), &auditor));
        assert!(
            !may_revoke(&g, Some(&r), &auditor),
            "auditors are read-only"
        );
        assert!(!may_view_grant(&g, Some(&r), &other) && !may_revoke(&g, None, &other));
    }

    #[test]
    fn session_visibility() {
        let me = viewer("alice", &[], false);
        assert!(may_view_session(Some("alice"), Some("https://idp"), &me, 0));
        assert!(!may_view_session(
            Some("alice"),
            Some("https://other"),
            &me,
            0
        ));
        assert!(!may_view_session(Some("bob"), None, &me, 0));
        assert!(
            may_view_session(Some("bob"), None, &me, 1),
            "approver of its request"
        );
        assert!(may_view_session(
            Some("bob"),
            None,
            &viewer("a", &[], true),
            0
        ));
    }
}
