//! Admission in SSH's words: the lifecycle's refusals as a line on stderr
//! (with a refused exit status), and a held exec's wait announced there,
//! with the channel watched for Ctrl-C, a signal or a hang-up. Input the
//! client sends while it waits is kept for the command. The lifecycle
//! itself is core's ([`gatehouse_core::lifecycle`]).

use super::Relay;
use gatehouse_core::lifecycle::{
    ClientEvent, HoldWatch, NotApproved, Refusal, Waiting, HELD_INPUT_LIMIT,
};
use gatehouse_core::pipeline::BoxFuture;
use russh::ChannelMsg;

/// What the user reads for a refusal; `None` when the client is gone.
pub(super) fn refusal_message(refusal: &Refusal) -> Option<String> {
    Some(match refusal {
        Refusal::Blocked { rule, message } => format!("blocked by rule \"{rule}\": {message}"),
        Refusal::CannotHold { rule, message } => format!("rule \"{rule}\" requires approval ({message}), but approvals are not enabled on this gateway, so the command was not run"),
        Refusal::HoldFailed(e) => format!("gatehouse could not open an approval request, so the command was not run: {e}"),
        Refusal::NotRecorded(e) => format!("gatehouse could not record this command in the audit trail, so it was not run: {e}"),
        Refusal::NotApproved { request: id, why, .. } => match why {
            NotApproved::Denied { approver, reason } => format!("approval request #{id} was denied by {approver}: {reason}; the command was not run"),
            NotApproved::Expired => format!("approval request #{id} expired before anyone decided; the command was not run"),
            NotApproved::Withdrawn(why) | NotApproved::SessionEnded(why) => format!("approval request #{id} was withdrawn: {why}; the command was not run"),
            NotApproved::Cancelled => format!("approval request #{id} was withdrawn"),
            NotApproved::TooMuchInput => format!("approval request #{id} was withdrawn: the client sent more than 1 MiB while the command waited"),
        },
        Refusal::Gone => return None,
    })
}

/// An SSH channel whose exec waits for approval.
pub(super) struct HeldChannel<'a> {
    pub(super) relay: &'a mut Relay,
    /// Input sent while waiting, for the command once it runs.
    pub(super) input: Vec<u8>,
    /// The client closed its input while waiting.
    pub(super) eof: bool,
}

impl HoldWatch for HeldChannel<'_> {
    fn waiting<'b>(&'b mut self, w: &'b Waiting<'b>) -> BoxFuture<'b, Result<(), String>> {
        let text = format!(
            "gatehouse: waiting for approval #{}: {}\r\ngatehouse: rule \"{}\": {}. Needs {}; expires in {} s. Press Ctrl-C to withdraw it.\r\n",
            w.request.id,
            w.request.link,
            w.rule,
            w.message,
            w.requirement.describe(),
            w.requirement.timeout_secs
        );
        Box::pin(async move {
            self.relay.stderr(&text).await;
            Ok(())
        })
    }

    fn client(&mut self) -> BoxFuture<'_, ClientEvent> {
        Box::pin(async move {
            loop {
                match self.relay.client.wait().await {
                    Some(ChannelMsg::Data { data })
                        if self.relay.pty.is_some() && data.contains(&3) =>
                    {
                        // Ctrl-C on a terminal: the user gives up.
                        return ClientEvent::Cancelled("cancelled by the client (Ctrl-C)");
                    }
                    Some(ChannelMsg::Data { data }) => {
                        self.input.extend_from_slice(&data);
                        if self.input.len() > HELD_INPUT_LIMIT {
                            return ClientEvent::TooMuchInput;
                        }
                    }
                    Some(ChannelMsg::Eof) => self.eof = true,
                    Some(ChannelMsg::Signal { .. }) => {
                        return ClientEvent::Cancelled("cancelled by the client")
                    }
                    Some(ChannelMsg::Close) | None => return ClientEvent::HungUp,
                    Some(_) => {}
                }
            }
        })
    }

    fn approved<'b>(&'b mut self, request: u64, approvers: &'b [String]) -> BoxFuture<'b, ()> {
        let text = format!(
            "gatehouse: approval #{request} granted by {}; running it now\r\n",
            approvers.join(", ")
        );
        Box::pin(async move { self.relay.stderr(&text).await })
    }
}
