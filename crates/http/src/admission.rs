//! Admission in HTTP's words: the lifecycle's refusals as an HTTP error
//! of the connection's kind (a Kubernetes Status, an OpenAI error object,
//! a problem document). A held request simply stays open until approvers
//! decide: there is nothing to tell the client before the answer, and
//! when the client hangs up hyper drops the request's future, which
//! withdraws the request (see [`gatehouse_core::lifecycle`]).

use crate::respond::Refusal as Status;
use gatehouse_core::lifecycle::{NotApproved, Refusal};

/// What is being admitted, for the words of a refusal.
#[derive(Clone, Copy)]
pub(crate) enum Subject {
    /// A client's request.
    Request,
    /// A model's tool call, found in an answer.
    ToolCall,
}

/// The kind of error and its message for a refusal.
pub(crate) fn refusal(refusal: &Refusal, subject: Subject) -> (Status, String) {
    let tool = matches!(subject, Subject::ToolCall);
    match refusal {
        Refusal::Blocked { rule, message } if tool => (
            Status::Forbidden,
            format!("the model's tool call was blocked by gatehouse rule \"{rule}\": {message}"),
        ),
        Refusal::Blocked { rule, message } => (
            Status::Forbidden,
            format!("blocked by gatehouse rule \"{rule}\": {message}"),
        ),
        Refusal::CannotHold { rule, .. } => (
            Status::Forbidden,
            format!(
                "rule \"{rule}\" needs approval{}, but this gateway has no approvals configured",
                if tool { " for this tool call" } else { "" }
            ),
        ),
        Refusal::HoldFailed(e) => (
            Status::Unavailable,
            if tool {
                format!("gatehouse could not open an approval request for this tool call: {e}")
            } else {
                format!("gatehouse could not open an approval request, so nothing ran: {e}")
            },
        ),
        Refusal::NotRecorded(e) => (
            Status::Unavailable,
            if tool {
                format!("gatehouse could not record this tool call, so it is withheld: {e}")
            } else {
                format!("gatehouse could not record this request in the audit trail, so it did not run: {e}")
            },
        ),
        Refusal::NotApproved {
            request: id,
            link,
            why,
        } => (
            Status::NotApproved,
            match why {
                NotApproved::Denied { approver, reason } => {
                    format!("request #{id} ({link}) was denied by {approver}: {reason}")
                }
                NotApproved::Expired => {
                    format!("request #{id} ({link}) expired: nobody approved it in time")
                }
                NotApproved::Withdrawn(why) | NotApproved::SessionEnded(why) => {
                    format!("request #{id} was withdrawn: {why}")
                }
                NotApproved::Cancelled | NotApproved::TooMuchInput => {
                    format!("request #{id} was withdrawn")
                }
            },
        ),
        Refusal::Gone => (
            Status::Unavailable,
            "the request was withdrawn: the client went away".into(),
        ),
    }
}
