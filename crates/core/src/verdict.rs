//! The outcome of the decide stage.

use serde::{Deserialize, Serialize};

/// What the pipeline does with one command.
///
/// Ordered from least to most strict so that, for a multi-statement command,
/// the strictest verdict of its statements wins (`max`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Verdict {
    /// Forward to the target.
    Allow {
        /// The rule that allowed it, or `None` for the connection's default.
        rule: Option<String>,
    },
    /// Hold until people approve; never forwarded before.
    Hold {
        /// The rule that asked for approval.
        rule: String,
        /// Why, shown to the requester and the approvers.
        #[serde(default)]
        message: String,
        /// Who must approve, and how long the request stays open (a
        /// record without it reads as one nobody can meet).
        #[serde(default = "crate::approval::Requirement::unmeetable")]
        requirement: crate::approval::Requirement,
    },
    /// Refuse; the target never sees the command.
    Block {
        /// The rule that blocked it.
        rule: String,
        /// Why, shown to the client in its own protocol.
        #[serde(default)]
        message: String,
    },
}

impl Verdict {
    /// Rank used to pick the strictest verdict.
    pub fn severity(&self) -> u8 {
        match self {
            Verdict::Allow { .. } => 0,
            Verdict::Hold { .. } => 1,
            Verdict::Block { .. } => 2,
        }
    }

    /// The stricter of two verdicts; on a tie the first one stays.
    pub fn stricter(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Short name for logs and the audit trail.
    pub fn effect(&self) -> &'static str {
        match self {
            Verdict::Allow { .. } => "allow",
            Verdict::Hold { .. } => "hold",
            Verdict::Block { .. } => "block",
        }
    }

    /// The rule name, if a rule decided.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Verdict::Allow { rule } => rule.as_deref(),
            Verdict::Hold { rule, .. } | Verdict::Block { rule, .. } => Some(rule),
        }
    }
}
