//! Who must approve a held command, and how a set of decisions settles it.
//!
//! The rules are pure so every adapter, the API, the CLI and the console
//! reach the same answer for the same decisions: the broker that stores
//! requests lives in its own crate, adapters see it only through
//! [`ApprovalBroker`].

use crate::identity::Identity;
use crate::pipeline::BoxFuture;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a request waits for a decision when the rule does not say.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Who must approve, as compiled from a rule (`approvers`, `approvals`,
/// `approvers_each`, `approval_timeout`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// An approver must be in one of these groups ("N of M").
    pub any_of: Vec<String>,
    /// How many distinct eligible approvers must approve.
    pub count: u32,
    /// Besides the count, one approver from each of these groups.
    pub each_of: Vec<String>,
    /// Seconds the request stays open before it expires.
    pub timeout_secs: u64,
}

impl Requirement {
    /// A requirement nobody can meet (no approver group): what a record
    /// that lacks its requirement reads as, never an approval.
    pub fn unmeetable() -> Requirement {
        Requirement {
            any_of: Vec::new(),
            count: 1,
            each_of: Vec::new(),
            timeout_secs: 0,
        }
    }

    /// Whether `approver` may decide a request made by `requester`.
    ///
    /// Nobody decides their own request, whatever their groups.
    pub fn eligible(&self, requester: &Identity, approver: &Identity) -> Result<(), String> {
        if same_person(requester, approver) {
            return Err("you cannot decide your own request; another approver must".into());
        }
        let groups = self.any_of.iter().chain(self.each_of.iter());
        if groups.clone().any(|g| approver.in_group(g)) {
            Ok(())
        } else {
            Err(format!(
                "you are not in a group that may decide this request (approver groups: {})",
                groups.cloned().collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// Settle a request from its decisions so far.
    ///
    /// One eligible denial denies; approval needs `count` distinct eligible
    /// approvers plus one from every `each_of` group.
    pub fn settle(&self, decisions: &[Decision]) -> Settlement {
        if let Some(d) = decisions.iter().find(|d| !d.approve) {
            return Settlement::Denied(d.approver.subject.clone());
        }
        // One person counts once, whatever number of tokens they hold.
        let mut approvers: Vec<&Identity> = Vec::new();
        for d in decisions.iter().filter(|d| d.approve) {
            if !approvers.iter().any(|a| same_person(a, &d.approver)) {
                approvers.push(&d.approver);
            }
        }
        let counted = approvers
            .iter()
            .filter(|a| self.any_of.is_empty() || self.any_of.iter().any(|g| a.in_group(g)))
            .count() as u32;
        let missing_groups: Vec<String> = self
            .each_of
            .iter()
            .filter(|g| !approvers.iter().any(|a| a.in_group(g)))
            .cloned()
            .collect();
        if counted >= self.count && missing_groups.is_empty() {
            Settlement::Approved
        } else {
            Settlement::Waiting {
                approvals_needed: self.count.saturating_sub(counted),
                groups_needed: missing_groups,
            }
        }
    }

    /// A one-line description for people ("1 approval from approvers").
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} approval{} from {}",
            self.count,
            if self.count == 1 { "" } else { "s" },
            if self.any_of.is_empty() {
                "any approver group".to_string()
            } else {
                self.any_of.join(" or ")
            }
        );
        if !self.each_of.is_empty() {
            s.push_str(&format!(
                ", including one from each of {}",
                self.each_of.join(", ")
            ));
        }
        s
    }
}

/// The same person, even if they hold two tokens: same issuer and subject,
/// or the same email (erring towards "same", which only ever asks for
/// another approver).
pub fn same_person(a: &Identity, b: &Identity) -> bool {
    (a.issuer == b.issuer && a.subject == b.subject)
        || matches!((&a.email, &b.email), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided.
    pub approver: Identity,
    /// Approve or deny.
    pub approve: bool,
    /// Their justification (required).
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Where a request stands given its decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// More decisions are needed.
    Waiting {
        /// Approvals still missing from the count.
        approvals_needed: u32,
        /// `each_of` groups with no approver yet.
        groups_needed: Vec<String>,
    },
    /// Enough approvals.
    Approved,
    /// Someone eligible said no (their subject).
    Denied(String),
}

/// A held command, as an adapter hands it to the broker.
#[derive(Debug, Clone)]
pub struct HeldCommand {
    /// Who asked.
    pub requester: Identity,
    /// The connection it is for.
    pub connection: String,
    /// The session holding it.
    pub session_id: String,
    /// The protocol it came in by (`postgres`, …).
    pub protocol: String,
    /// The command as the approver must see it (secrets redacted).
    pub command: String,
    /// The rule that held it.
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// Who must approve.
    pub requirement: Requirement,
}

/// An open request, as the adapter tells its client.
#[derive(Debug, Clone)]
pub struct OpenedRequest {
    /// The request's number.
    pub id: u64,
    /// Where approvers decide it (the console page).
    pub link: String,
}

/// How a held command's wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Approved and claimed for this one execution: forward it now.
    Approved {
        /// Who approved (emails or subjects), for the client's notice.
        approvers: Vec<String>,
    },
    /// Denied by `approver` because `reason`.
    Denied {
        /// Who denied.
        approver: String,
        /// Their justification.
        reason: String,
    },
    /// Nobody decided in time.
    Expired,
    /// Withdrawn (the client went away or cancelled) or could not be kept.
    Cancelled(String),
}

/// Why a held command's approval request could not be opened: the command
/// is refused, and no approver ever sees a request for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// The trail could not record the request, so it was withdrawn before
    /// anyone could act on it.
    #[error("the audit trail could not record the request: {0}")]
    NotRecorded(String),
    /// The approvals store failed.
    #[error("the approvals store failed: {0}")]
    Store(String),
    /// The command's verdict is not a hold (a caller's mistake).
    #[error("the command is not held")]
    NotHeld,
}

/// The approval stage as adapters see it; implemented by the approvals crate.
pub trait ApprovalBroker: Send + Sync {
    /// Open a request for a held command; recorded before it is visible.
    fn open(&self, held: HeldCommand) -> BoxFuture<'_, Result<OpenedRequest, HoldError>>;
    /// Wait for the decision. An `Approved` outcome has been claimed for
    /// exactly one execution, so a request never runs twice.
    fn wait(&self, id: u64) -> BoxFuture<'_, Outcome>;
    /// The requester gave up (disconnected, cancelled): withdraw the
    /// request if still open so it can never run later.
    fn withdraw(&self, id: u64, why: &str) -> BoxFuture<'_, ()>;
}

/// A time-bound access grant in force for one session.
pub struct GrantLease {
    /// The grant's number, recorded with the session.
    pub id: u64,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
    /// The groups its holder acts as (the grant's scope), in place of
    /// their own.
    pub acting_as: Vec<String>,
    /// Resolves, with a reason for the client, when the grant is revoked or
    /// expires; the adapter then ends the session.
    pub ended: BoxFuture<'static, String>,
}

/// The grant side of the authorize stage; implemented by the approvals crate.
pub trait AccessGrants: Send + Sync {
    /// The active grant letting `identity` use `connection`, if any.
    fn active(&self, identity: &Identity, connection: &str) -> Option<GrantLease>;
}

/// A bound value as approvers see it, on one line: quotes doubled and
/// control characters escaped, so a parameter cannot forge extra lines in
/// the command an approver reads.
pub fn quote_for_approver(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// How long `requirement` waits.
pub fn timeout_of(requirement: &Requirement) -> Duration {
    Duration::from_secs(requirement.timeout_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn decide(sub: &str, groups: &[&str], approve: bool) -> Decision {
        Decision {
            approver: who(sub, groups),
            approve,
            reason: "ok".into(),
            at: String::new(),
        }
    }

    fn req(any: &[&str], count: u32, each: &[&str]) -> Requirement {
        Requirement {
            any_of: any.iter().map(|s| s.to_string()).collect(),
            count,
            each_of: each.iter().map(|s| s.to_string()).collect(),
            timeout_secs: 60,
        }
    }

    #[test]
    fn requester_never_approves_own_request() {
        let r = req(&["approvers"], 1, &[]);
        let me = who("alice", &["dba", "approvers"]);
        assert!(r.eligible(&me, &me).is_err());
        let mut other_token = me.clone();
        other_token.subject = "alice-2".into();
        assert!(r.eligible(&me, &other_token).is_err(), "same email");
        assert!(r.eligible(&me, &who("omar", &["approvers"])).is_ok());
        assert!(r.eligible(&me, &who("bob", &["dba"])).is_err());
    }

    #[test]
    fn n_of_m_counts_distinct_approvers() {
        let r = req(&["approvers"], 2, &[]);
        let one = [decide("omar", &["approvers"], true)];
        assert!(matches!(
            r.settle(&one),
            Settlement::Waiting {
                approvals_needed: 1,
                ..
            }
        ));
        let twice = [
            decide("omar", &["approvers"], true),
            decide("omar", &["approvers"], true),
        ];
        assert!(matches!(r.settle(&twice), Settlement::Waiting { .. }));
        // Two tokens, two issuers, one email: still one person.
        let mut other_token = decide("omar", &["approvers"], true);
        other_token.approver.subject = "0f3c-corporate-id".into();
        other_token.approver.issuer = "https://corp-idp".into();
        let two_tokens = [decide("omar", &["approvers"], true), other_token];
        assert!(matches!(r.settle(&two_tokens), Settlement::Waiting { .. }));
        let two = [
            decide("omar", &["approvers"], true),
            decide("zoe", &["approvers"], true),
        ];
        assert_eq!(r.settle(&two), Settlement::Approved);
    }

    #[test]
    fn one_from_each_group() {
        let r = req(&[], 2, &["security", "dba-leads"]);
        let both_security = [
            decide("s1", &["security"], true),
            decide("s2", &["security"], true),
        ];
        assert_eq!(
            r.settle(&both_security),
            Settlement::Waiting {
                approvals_needed: 0,
                groups_needed: vec!["dba-leads".into()]
            }
        );
        let mixed = [
            decide("s1", &["security"], true),
            decide("l1", &["dba-leads"], true),
        ];
        assert_eq!(r.settle(&mixed), Settlement::Approved);
    }

    #[test]
    fn a_denial_settles() {
        let r = req(&["approvers"], 2, &[]);
        let d = [
            decide("omar", &["approvers"], true),
            decide("zoe", &["approvers"], false),
        ];
        assert_eq!(r.settle(&d), Settlement::Denied("zoe".into()));
    }

    #[test]
    fn approver_view_of_values_stays_on_one_line() {
        assert_eq!(quote_for_approver("it's"), "'it''s'");
        assert_eq!(quote_for_approver("a\n-- b"), "'a\\n-- b'");
    }

    #[test]
    fn describe_reads_well() {
        assert_eq!(
            req(&["approvers"], 1, &[]).describe(),
            "1 approval from approvers"
        );
        assert_eq!(
            req(&["a", "b"], 2, &["sec"]).describe(),
            "2 approvals from a or b, including one from each of sec"
        );
    }
}
