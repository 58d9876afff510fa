//! The command lifecycle, written once for every protocol.
//!
//! ```text
//!   adapter: read a command ─▶ classify ─▶ decide ─┐
//!                                                  ▼
//!   Pipeline::admit ─ hold? open an approval request (broker)
//!                   ─ record the `command` event   (fail closed:
//!                       a command the trail cannot hold never runs,
//!                       and its approval request is withdrawn)
//!                   ─ blocked? refuse
//!                   ─ held? tell the client it waits, then wait for the
//!                       decision, the session's deadline or the client
//!                       (cancel, hang-up, too much input) — whichever
//!                       comes first; every way out but approval
//!                       withdraws the request
//!   adapter: forward, relay (masking) ─▶ Pipeline::finish (`command.result`)
//! ```
//!
//! Adapters read their protocol into a [`Command`] and turn what comes
//! back (an [`Admitted`] or a [`Refusal`], and the notices of a
//! [`HoldWatch`]) into their protocol's bytes; the order of the stages and
//! every rule about failure live here, once.

use crate::approval::{HeldCommand, HoldError, OpenedRequest, Outcome, Requirement};
use crate::deadline::{SessionDeadline, SessionEnd};
use crate::events::{self, CommandEvent, CommandResult, Event};
use crate::identity::Identity;
use crate::pipeline::{BoxFuture, EventRecord, Pipeline, RecordError};
use crate::verdict::Verdict;
use std::sync::Arc;

/// Client input a held command's session keeps while it waits; past this
/// the request is withdrawn, since the gateway could no longer notice a
/// hang-up behind the buffered bytes.
pub const HELD_INPUT_LIMIT: usize = 1 << 20;

/// The session a command belongs to: what every command of it shares.
/// Adapters keep one per session (behind an `Arc`) and pass it to
/// [`Pipeline::admit`] and [`Pipeline::finish`].
#[derive(Debug, Clone)]
pub struct CommandScope {
    /// The session's id.
    pub session_id: String,
    /// The caller (as policy sees them on this connection).
    pub identity: Identity,
    /// The connection's name.
    pub connection: String,
    /// `postgres`, `mysql`, `ssh`, `http`: how approvers see where a held
    /// command came from.
    pub protocol: &'static str,
    /// When the session must end (token expiry, grant end): a held command
    /// is withdrawn then. `None` where the adapter ends the whole session
    /// at its deadline by dropping the wait (the request is withdrawn when
    /// it is dropped).
    pub deadline: Option<SessionDeadline>,
}

/// A decided command, as the adapter hands it to [`Pipeline::admit`].
#[derive(Debug, Clone)]
pub struct Command {
    /// The `command` event: what the command is, and its verdict
    /// (`approval_request` is filled in here).
    pub event: CommandEvent,
    /// The command as approvers see it; read only when the verdict holds
    /// it. The adapter redacts what its protocol hides (SQL's secret
    /// literals); nothing else is cut, so approvers see what would run.
    pub shown: String,
}

/// A command that may run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Its number in the session (its result names it).
    pub command_id: u64,
    /// When it was held: the request and who approved it.
    pub approved: Option<(u64, Vec<String>)>,
}

/// Why a command does not run. Every refusal has been recorded (except
/// [`Refusal::NotRecorded`], which is why); adapters word it in their
/// protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rule blocked it.
    Blocked {
        /// The rule.
        rule: String,
        /// The rule's message.
        message: String,
    },
    /// A rule holds it, but nobody can approve it here: approvals are not
    /// enabled, or this kind of command cannot wait.
    CannotHold {
        /// The rule.
        rule: String,
        /// The rule's message.
        message: String,
    },
    /// The approval request could not be opened.
    HoldFailed(HoldError),
    /// The trail could not keep the command, so it does not run.
    NotRecorded(RecordError),
    /// It was held and not approved.
    NotApproved {
        /// The approval request.
        request: u64,
        /// Where approvers decide it.
        link: String,
        /// How the wait ended.
        why: NotApproved,
    },
    /// The client went away while its command waited; nothing to tell.
    Gone,
}

/// How a held command's wait ended without approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotApproved {
    /// An approver said no.
    Denied {
        /// Who.
        approver: String,
        /// Their reason.
        reason: String,
    },
    /// Nobody decided in time.
    Expired,
    /// Withdrawn by someone else or by the gateway (the reason).
    Withdrawn(String),
    /// The client cancelled it (PostgreSQL's cancel, KILL QUERY, Ctrl-C).
    Cancelled,
    /// The client sent more than the gateway keeps while a command waits.
    TooMuchInput,
    /// The session's deadline came (the message for the client).
    SessionEnded(String),
}

/// What a client did while its command waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// It cancelled the command (the words for the trail: how).
    Cancelled(&'static str),
    /// It hung up.
    HungUp,
    /// It sent more than the gateway keeps while waiting.
    TooMuchInput,
}

/// A held command's request, as the client is told about it.
#[derive(Debug, Clone)]
pub struct Waiting<'a> {
    /// The request.
    pub request: &'a OpenedRequest,
    /// The rule that held it.
    pub rule: &'a str,
    /// The rule's message.
    pub message: &'a str,
    /// Who must approve.
    pub requirement: &'a Requirement,
}

/// The adapter's side of a wait for approval: how to tell its client, and
/// what its client does meanwhile.
pub trait HoldWatch: Send {
    /// Tell the client its command waits (and flush what is pending);
    /// `Err` (why) when the connection failed, which withdraws the request.
    fn waiting<'a>(&'a mut self, waiting: &'a Waiting<'a>) -> BoxFuture<'a, Result<(), String>>;

    /// Resolves with the next thing the client does that matters to the
    /// wait (harmless input is kept for later by the adapter). Must be
    /// cancel-safe: it is dropped when the decision comes first.
    fn client(&mut self) -> BoxFuture<'_, ClientEvent>;

    /// The command was approved: tell the client before it runs.
    fn approved<'a>(&'a mut self, request: u64, approvers: &'a [String]) -> BoxFuture<'a, ()> {
        let _ = (request, approvers);
        Box::pin(async {})
    }
}

/// A wait with no client to watch (HTTP: hyper drops the request's future
/// when the client hangs up, which withdraws the request) and nothing to
/// tell before the answer.
pub struct Unwatched;

impl HoldWatch for Unwatched {
    fn waiting<'a>(&'a mut self, _: &'a Waiting<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn client(&mut self) -> BoxFuture<'_, ClientEvent> {
        Box::pin(std::future::pending())
    }
}

/// An open approval request that is withdrawn unless it is settled: if the
/// wait is dropped (the adapter's session ended, hyper dropped the
/// request), the request can never run later.
struct OpenRequest {
    broker: Arc<dyn crate::approval::ApprovalBroker>,
    id: u64,
    armed: bool,
    /// Where its withdrawal runs (see [`Pipeline::background`]).
    background: tokio_util::task::TaskTracker,
}

impl OpenRequest {
    /// Withdraw the request. The withdrawal runs as a task of its own, so
    /// it completes even if the waiting future is dropped meanwhile (the
    /// adapter's session ending in the same instant).
    async fn withdraw(mut self, why: &str) {
        self.armed = false;
        let (broker, id, why) = (self.broker.clone(), self.id, why.to_string());
        let done = self
            .background
            .spawn(async move { broker.withdraw(id, &why).await });
        let _ = done.await;
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (broker, id) = (self.broker.clone(), self.id);
        if tokio::runtime::Handle::try_current().is_ok() {
            self.background.spawn(async move {
                broker
                    .withdraw(id, "the session ended while the command waited")
                    .await
            });
        }
    }
}

impl Pipeline {
    /// Admit one decided command: open its hold, record it, refuse it or
    /// wait for its decision. `Ok` means it may be forwarded now (and its
    /// result recorded with [`Pipeline::finish`]). `watch` is the client's
    /// side of a hold; `None` where this kind of command cannot wait, so a
    /// hold is refused (and recorded as such).
    pub async fn admit(
        &self,
        scope: &CommandScope,
        mut command: Command,
        watch: Option<&mut dyn HoldWatch>,
    ) -> Result<Admitted, Refusal> {
        let command_id = command.event.command_id;
        // Hold: open the approval request first, so the record names it.
        let mut refusal = None;
        let mut opened = None;
        if let Verdict::Hold { rule, message, .. } = &command.event.verdict {
            match self.open_hold(scope, &command, watch.is_some()).await {
                Ok(o) => opened = Some(o),
                Err(r) => {
                    // The trail says what happened: refused, and why.
                    command.event.verdict = Verdict::Block {
                        rule: rule.clone(),
                        message: format!("{message} ({})", r.hold_problem()),
                    };
                    refusal = Some(r);
                }
            }
        }
        // Record before anything runs or is refused; a command the trail
        // does not hold never runs, and nobody may approve it.
        command.event.approval_request = opened.as_ref().map(|(_, o)| o.id);
        let verdict = command.event.verdict.clone();
        if let Err(e) = self.record_command_event(scope, command.event).await {
            if let Some((request, _)) = opened {
                request
                    .withdraw(&format!("the command could not be recorded: {e}"))
                    .await;
            }
            return Err(Refusal::NotRecorded(e));
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        if let Verdict::Block { rule, message } = verdict {
            return Err(Refusal::Blocked { rule, message });
        }
        let (Some((request, opened)), Some(watch)) = (opened, watch) else {
            return Ok(Admitted {
                command_id,
                approved: None,
            });
        };
        let Verdict::Hold {
            rule,
            message,
            requirement,
        } = &verdict
        else {
            return Err(Refusal::Gone);
        };
        let waiting = Waiting {
            request: &opened,
            rule,
            message,
            requirement,
        };
        wait_for_decision(scope, request, &opened, &waiting, watch)
            .await
            .map(|approvers| Admitted {
                command_id,
                approved: Some((opened.id, approvers)),
            })
    }

    /// Open the approval request of a held command; `can_wait` is false
    /// where this kind of command cannot wait (then, as without approvals,
    /// nobody can approve it and it is refused).
    async fn open_hold(
        &self,
        scope: &CommandScope,
        command: &Command,
        can_wait: bool,
    ) -> Result<(OpenRequest, OpenedRequest), Refusal> {
        let Verdict::Hold {
            rule,
            message,
            requirement,
        } = &command.event.verdict
        else {
            return Err(Refusal::HoldFailed(HoldError::NotHeld));
        };
        let broker = match &self.approvals {
            Some(broker) if can_wait => broker,
            _ => {
                return Err(Refusal::CannotHold {
                    rule: rule.clone(),
                    message: message.clone(),
                })
            }
        };
        let held = HeldCommand {
            requester: scope.identity.clone(),
            connection: scope.connection.clone(),
            session_id: scope.session_id.clone(),
            protocol: scope.protocol.into(),
            command: command.shown.clone(),
            rule: rule.clone(),
            message: message.clone(),
            requirement: requirement.clone(),
        };
        let opened = broker.open(held).await.map_err(Refusal::HoldFailed)?;
        let request = OpenRequest {
            broker: broker.clone(),
            id: opened.id,
            armed: true,
            background: self.background.clone(),
        };
        Ok((request, opened))
    }

    /// Record a `command` event of `scope`'s session.
    async fn record_command_event(
        &self,
        scope: &CommandScope,
        event: CommandEvent,
    ) -> Result<u64, RecordError> {
        self.recorder
            .record(scope.event(Event::Command(Box::new(event))))
            .await
    }

    /// Record a forwarded command's `command.result` without holding up
    /// the stream: a recorder that takes it at once (the journal, in its
    /// default durability) does so here; one that must wait (an fsync in
    /// strict mode) finishes in a task a stopping gateway waits for.
    pub fn finish_later(&self, scope: &CommandScope, result: &CommandResult) {
        let mut recording = self.finish(scope, result);
        let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
        if recording.as_mut().poll(&mut cx).is_pending() {
            // Polled again by the task, which registers its own waker.
            self.background.spawn(recording);
        }
    }

    /// The `command.result` of a forwarded command, ready to record (a
    /// failure is logged: the result has already gone to the client).
    pub fn finish(&self, scope: &CommandScope, result: &CommandResult) -> BoxFuture<'static, ()> {
        // Serialized from the borrowed result: no copy of its sample rows.
        let event = scope.event_data(events::kind::COMMAND_RESULT, events::to_data(result));
        let recorder = self.recorder.clone();
        Box::pin(async move {
            if let Err(e) = recorder.record(event).await {
                tracing::error!(error = %e, "could not record a command result");
            }
        })
    }
}

impl CommandScope {
    /// An event of this session.
    pub fn event(&self, event: Event) -> EventRecord {
        self.event_data(event.kind(), event.data())
    }

    /// An event of this session from its kind and its serialized body.
    fn event_data(&self, kind: &'static str, data: serde_json::Value) -> EventRecord {
        EventRecord {
            kind,
            session_id: Some(self.session_id.clone()),
            subject: Some(self.identity.subject.clone()),
            connection: Some(self.connection.clone()),
            data,
        }
    }
}

impl Refusal {
    /// Why a hold could not be kept, for the trail.
    fn hold_problem(&self) -> String {
        match self {
            Refusal::CannotHold { .. } => "it could not wait for approval here".into(),
            Refusal::HoldFailed(e) => format!("the approval request could not be opened: {e}"),
            _ => String::new(),
        }
    }
}

/// Wait for people to decide `opened`, the session's deadline or the
/// client, whichever comes first; every way out but approval withdraws the
/// request. `Ok` carries the approvers: the request has been claimed for
/// this one execution.
async fn wait_for_decision(
    scope: &CommandScope,
    request: OpenRequest,
    opened: &OpenedRequest,
    waiting: &Waiting<'_>,
    watch: &mut dyn HoldWatch,
) -> Result<Vec<String>, Refusal> {
    let id = opened.id;
    let not_approved = |why| Refusal::NotApproved {
        request: id,
        link: opened.link.clone(),
        why,
    };
    if let Err(why) = watch.waiting(waiting).await {
        request.withdraw(&why).await;
        return Err(Refusal::Gone);
    }
    let broker = request.broker.clone();
    let decision = broker.wait(id);
    let outcome = tokio::select! {
            // The deadline first: a command is never approved after it.
            biased;
            end = reached(scope.deadline.as_ref()) => {
                let why = end.message();
                request
                    .withdraw(&format!("the session ended while the command waited: {why}"))
                    .await;
                return Err(not_approved(NotApproved::SessionEnded(why)));
            }
        outcome = decision => outcome,
            event = watch.client() => {
                let (trail, why) = match event {
                    ClientEvent::Cancelled(how) => (how, NotApproved::Cancelled),
                    ClientEvent::TooMuchInput => (
                        "the client sent more than 1 MiB while waiting",
                        NotApproved::TooMuchInput,
                    ),
                    ClientEvent::HungUp => {
                        request.withdraw("the client disconnected while waiting").await;
                        return Err(Refusal::Gone);
                    }
                };
                request.withdraw(trail).await;
                return Err(not_approved(why));
            }
    };
    let mut request = request;
    request.armed = false;
    match outcome {
        Outcome::Approved { approvers } => {
            watch.approved(id, &approvers).await;
            Ok(approvers)
        }
        Outcome::Denied { approver, reason } => {
            Err(not_approved(NotApproved::Denied { approver, reason }))
        }
        Outcome::Expired => Err(not_approved(NotApproved::Expired)),
        Outcome::Cancelled(why) => Err(not_approved(NotApproved::Withdrawn(why))),
    }
}

/// When `deadline` is reached; never without one.
async fn reached(deadline: Option<&SessionDeadline>) -> SessionEnd {
    match deadline {
        Some(d) => d.reached().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
