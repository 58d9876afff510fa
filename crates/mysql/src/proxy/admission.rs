//! Admission in MySQL's words: the lifecycle's refusals as ERR packets
//! (error codes a server would use for the same reason), and a held
//! statement's wait. MySQL has no asynchronous notice, so the client simply
//! waits for its answer; the wait is visible to approvers (console, API,
//! notifications) and in the gateway's log. The lifecycle itself is
//! core's ([`gatehouse_core::lifecycle`]).

use super::{Proxy, ER_DENIED, ER_INTERRUPTED, ER_UNKNOWN};
use gatehouse_core::lifecycle::{
    ClientEvent, HoldWatch, NotApproved, Refusal, Waiting, HELD_INPUT_LIMIT,
};
use gatehouse_core::pipeline::BoxFuture;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use tokio::sync::futures::OwnedNotified;

/// The ERR for a refusal (code, SQLSTATE, message); `None` when the
/// client is gone.
pub(super) fn refusal_error(refusal: &Refusal) -> Option<(u16, &'static str, String)> {
    let denied = |m: String| Some((ER_DENIED, "42000", m));
    let interrupted = |m: String| Some((ER_INTERRUPTED, "70100", m));
    match refusal {
        Refusal::Blocked { rule, message } => denied(format!("blocked by gatehouse rule \"{rule}\": {message} (the statement was not sent to the database; the attempt is recorded in the audit trail)")),
        Refusal::CannotHold { rule, message } => denied(format!("gatehouse rule \"{rule}\" requires approval: {message}; approvals are not enabled on this gateway, so the statement was not run")),
        Refusal::HoldFailed(e) => Some((
            ER_UNKNOWN,
            "HY000",
            format!("gatehouse could not open an approval request, so the statement was not run: {e}"),
        )),
        Refusal::NotRecorded(e) => Some((
            ER_UNKNOWN,
            "HY000",
            format!("gatehouse could not record this command in the audit trail, so it was not run: {e}; ask an administrator to check the gateway's audit store"),
        )),
        Refusal::NotApproved { request: id, link, why } => match why {
            NotApproved::Denied { approver, reason } => denied(format!("approval request #{id} was denied by {approver}: {reason} (the statement was not run; see {link})")),
            NotApproved::Expired => denied(format!("approval request #{id} expired before anyone decided (the statement was not run; run it again to ask again)")),
            NotApproved::Withdrawn(why) => denied(format!("approval request #{id} was withdrawn: {why} (the statement was not run)")),
            NotApproved::Cancelled => interrupted(format!("Query execution was interrupted: approval request #{id} was withdrawn")),
            NotApproved::TooMuchInput => interrupted(format!("approval request #{id} was withdrawn: the client sent more than 1 MiB while the statement waited")),
            NotApproved::SessionEnded(why) => interrupted(format!("approval request #{id} was withdrawn: {why}")),
        },
        Refusal::Gone => None,
    }
}

/// A MySQL client whose statement waits for approval, watched for a
/// `KILL QUERY` (from another connection, relayed through the session's
/// `held_cancel`) and for a hang-up.
pub(super) struct HeldClient<'a> {
    proxy: &'a mut Proxy,
    /// Registered before the wait starts, so a KILL QUERY right after
    /// cannot be missed.
    cancelled: Pin<Box<OwnedNotified>>,
}

impl<'a> HeldClient<'a> {
    pub(super) fn new(proxy: &'a mut Proxy) -> Self {
        let mut cancelled = Box::pin(proxy.ctx.held_cancel.clone().notified_owned());
        cancelled.as_mut().enable();
        // From here a KILL QUERY from another connection withdraws this
        // statement (nothing runs on the target while it waits).
        proxy.ctx.holding.store(true, Ordering::SeqCst);
        HeldClient { proxy, cancelled }
    }
}

impl Drop for HeldClient<'_> {
    fn drop(&mut self) {
        self.proxy.ctx.holding.store(false, Ordering::SeqCst);
    }
}

impl HoldWatch for HeldClient<'_> {
    fn waiting<'b>(&'b mut self, w: &'b Waiting<'b>) -> BoxFuture<'b, Result<(), String>> {
        tracing::info!(
            session = %self.proxy.ctx.scope.session_id,
            request = w.request.id,
            link = %w.request.link,
            "mysql statement held for approval; the client waits for the decision"
        );
        Box::pin(async { Ok(()) })
    }

    fn client(&mut self) -> BoxFuture<'_, ClientEvent> {
        Box::pin(async move {
            loop {
                if self.proxy.client.pending_bytes() >= HELD_INPUT_LIMIT {
                    return ClientEvent::TooMuchInput;
                }
                tokio::select! {
                    _ = self.cancelled.as_mut() => {
                        return ClientEvent::Cancelled("cancelled by the client (KILL QUERY)")
                    }
                    read = self.proxy.client.fill() => {
                        if !matches!(read, Ok(n) if n > 0) {
                            return ClientEvent::HungUp;
                        }
                    }
                }
            }
        })
    }

    fn approved<'b>(&'b mut self, request: u64, approvers: &'b [String]) -> BoxFuture<'b, ()> {
        tracing::info!(request, approvers = ?approvers, "held mysql statement approved; running it");
        Box::pin(async {})
    }
}
