//! Admission in PostgreSQL's words: the lifecycle's refusals as
//! ErrorResponses (the SQLSTATE a server would use for the same reason),
//! and a held statement's wait as NOTICEs, with the client watched for a
//! cancel request or a hang-up. The lifecycle itself is core's
//! ([`gatehouse_core::lifecycle`]).

use super::{error_bytes, human_secs, verdict_error, ClientPump, Pending};
use crate::codec::backend::Notice;
use gatehouse_core::lifecycle::{
    ClientEvent, HoldWatch, NotApproved, Refusal, Waiting, HELD_INPUT_LIMIT,
};
use gatehouse_core::pipeline::BoxFuture;
use gatehouse_core::Verdict;
use std::pin::Pin;
use tokio::sync::futures::OwnedNotified;

/// The ErrorResponse for a refusal; empty when there is nobody to tell.
pub(super) fn refusal_error(refusal: &Refusal) -> Vec<u8> {
    match refusal {
        Refusal::Blocked { rule, message } => verdict_error(&Verdict::Block {
            rule: rule.clone(),
            message: message.clone(),
        })
        .unwrap_or_default(),
        Refusal::CannotHold { rule, message } => error_bytes(
            "42501",
            &format!("gatehouse rule \"{rule}\" requires approval: {message}"),
            Some("approvals are not enabled on this gateway, so the statement was not run"),
        ),
        Refusal::HoldFailed(e) => error_bytes(
            "58000",
            &format!(
                "gatehouse could not open an approval request, so the statement was not run: {e}"
            ),
            None,
        ),
        Refusal::NotRecorded(e) => error_bytes(
            "58000",
            &format!("gatehouse could not record this command in the audit trail, so it was not run: {e}"),
            Some("ask an administrator to check the gateway's audit store"),
        ),
        Refusal::NotApproved { request: id, why, .. } => match why {
            NotApproved::Denied { approver, reason } => error_bytes(
                "42501",
                &format!("approval request #{id} was denied by {approver}: {reason}"),
                Some("the statement was not run; the decision is recorded in the audit trail"),
            ),
            NotApproved::Expired => error_bytes(
                "42501",
                &format!("approval request #{id} expired before anyone decided"),
                Some("the statement was not run; run it again to ask again"),
            ),
            NotApproved::Withdrawn(why) | NotApproved::SessionEnded(why) => error_bytes(
                "42501",
                &format!("approval request #{id} was withdrawn: {why}"),
                Some("the statement was not run"),
            ),
            NotApproved::Cancelled => error_bytes(
                "57014",
                &format!(
                    "canceling statement due to user request: approval request #{id} was withdrawn"
                ),
                None,
            ),
            NotApproved::TooMuchInput => error_bytes(
                "54000",
                &format!("approval request #{id} was withdrawn: the client sent more than 1 MiB while the statement waited"),
                Some("send the next statements after the decision"),
            ),
        },
        Refusal::Gone => Vec::new(),
    }
}

/// A PostgreSQL client whose statement waits for approval: told with
/// NOTICEs, watched for a cancel request (on another connection, relayed
/// through the session's `held_cancel`) and for a hang-up.
pub(super) struct HeldClient<'a> {
    pub(super) pump: &'a mut ClientPump,
    /// Registered before the wait is announced, so a cancel sent right
    /// after the notice is not missed.
    cancelled: Pin<Box<OwnedNotified>>,
}

impl<'a> HeldClient<'a> {
    pub(super) fn new(pump: &'a mut ClientPump) -> Self {
        let mut cancelled = Box::pin(pump.ctx.held_cancel.clone().notified_owned());
        cancelled.as_mut().enable();
        HeldClient { pump, cancelled }
    }

    fn notice(&self, text: &str, detail: Option<&str>) {
        self.pump.push(Pending::Synthetic {
            bytes: Notice::new("NOTICE", "01000", text, detail).encode(b'N'),
            ready: false,
            batch: false,
        });
    }
}

impl HoldWatch for HeldClient<'_> {
    fn waiting<'b>(&'b mut self, w: &'b Waiting<'b>) -> BoxFuture<'b, Result<(), String>> {
        self.notice(
            &format!("waiting for approval #{}: {}", w.request.id, w.request.link),
            Some(&format!(
                "rule \"{}\": {}. Needs {}; expires in {}. Press Ctrl-C to withdraw it.",
                w.rule,
                w.message,
                w.requirement.describe(),
                human_secs(w.requirement.timeout_secs)
            )),
        );
        // Messages already sent reach the target, and the notice the client.
        Box::pin(async move {
            self.pump
                .flush()
                .await
                .map_err(|_| "the target connection failed".to_string())
        })
    }

    fn client(&mut self) -> BoxFuture<'_, ClientEvent> {
        Box::pin(async move {
            loop {
                if self.pump.reader.pending_bytes() >= HELD_INPUT_LIMIT {
                    // Past this the gateway could no longer notice a hang-up.
                    return ClientEvent::TooMuchInput;
                }
                tokio::select! {
                    _ = self.cancelled.as_mut() => return ClientEvent::Cancelled("cancelled by the client"),
                    read = self.pump.reader.fill() => {
                        if !matches!(read, Ok(n) if n > 0) {
                            return ClientEvent::HungUp;
                        }
                    }
                }
            }
        })
    }

    fn approved<'b>(&'b mut self, request: u64, approvers: &'b [String]) -> BoxFuture<'b, ()> {
        self.notice(
            &format!(
                "approval #{request} granted by {}; running it now",
                approvers.join(", ")
            ),
            None,
        );
        Box::pin(async {})
    }
}
