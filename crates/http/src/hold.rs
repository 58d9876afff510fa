//! Waiting on people: a held request (or a model's held tool call) stays
//! on the data path until approvers decide, and is withdrawn if the client
//! goes away first, or the caller's session deadline (token expiry, grant
//! end) comes, so it can never run later.

use gatehouse_core::approval::{ApprovalBroker, OpenedRequest, Outcome};
use gatehouse_core::deadline::SessionDeadline;
use std::sync::Arc;

/// Wait for the decision on `opened`; `Err` is the message for the client
/// when it was not approved. Dropping the future (the client hung up)
/// withdraws the request; so does reaching `deadline`.
pub(crate) async fn wait(
    broker: Arc<dyn ApprovalBroker>,
    opened: &OpenedRequest,
    deadline: &SessionDeadline,
) -> Result<(), String> {
    let mut pending = Pending {
        broker: broker.clone(),
        id: opened.id,
        armed: true,
    };
    let outcome = tokio::select! {
        // The deadline first: a request is never approved after it.
        biased;
        end = deadline.reached() => {
            pending.armed = false;
            let why = end.message();
            broker
                .withdraw(opened.id, &format!("the request ended while it waited: {why}"))
                .await;
            return Err(format!("request #{} was withdrawn: {why}", opened.id));
        }
        outcome = broker.wait(opened.id) => outcome,
    };
    pending.armed = false;
    match outcome {
        Outcome::Approved { .. } => Ok(()),
        Outcome::Denied { approver, reason } => Err(format!(
            "request #{} ({}) was denied by {approver}: {reason}",
            opened.id, opened.link
        )),
        Outcome::Expired => Err(format!(
            "request #{} ({}) expired: nobody approved it in time",
            opened.id, opened.link
        )),
        Outcome::Cancelled(why) => Err(format!("request #{} was withdrawn: {why}", opened.id)),
    }
}

/// Withdraws a held request when the waiting future is dropped.
struct Pending {
    broker: Arc<dyn ApprovalBroker>,
    id: u64,
    armed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed {
            let broker = self.broker.clone();
            let id = self.id;
            tokio::spawn(async move {
                broker
                    .withdraw(id, "the client disconnected while waiting")
                    .await
            });
        }
    }
}
