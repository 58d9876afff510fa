//! The decide stage for a model's own tool calls.
//!
//! An agent runs whatever tool the model's answer calls, so the answer is
//! the last place the gateway can stop a call. Rules that name `tools`
//! judge the calls in an answer before it reaches the caller: a block
//! replaces the answer with an error, a hold keeps it until approvers
//! decide, with the call's arguments in front of them.

use crate::admission::{self, Subject};
use crate::openai::LlmToolCall;
use crate::proxy::{kind_name, truncate, Exchange};
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::events::{CommandDetail, CommandEvent, HttpCommand};
use gatehouse_core::lifecycle::{Command, Unwatched};
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::policy::ConnectionKind;

/// Longest arguments text shown to approvers and recorded.
const ARGUMENTS_SHOWN: usize = 2048;

/// Decide the tool calls of an answer; `Err` is the message for the client
/// when the answer must not reach it.
pub(crate) async fn vet(exchange: &Exchange, calls: &[LlmToolCall]) -> Result<(), String> {
    if calls.is_empty() {
        return Ok(());
    }
    let pipeline = &exchange.adapter.pipeline;
    let connection = &exchange.session.connection;
    let masker = &pipeline.masker;
    let mut counts = MaskCounts::default();
    let shown: Vec<String> = calls
        .iter()
        .map(|c| {
            let args = truncate(&c.arguments, ARGUMENTS_SHOWN).to_string();
            let args = masker.mask_detected(&args, &mut counts).unwrap_or(args);
            format!("{}({args})", c.name)
        })
        .collect();
    let facts = HttpFacts {
        method: exchange.request.method.clone(),
        path: exchange.request.path.clone(),
        query: exchange.request.query.clone(),
        model: exchange.request.model.clone(),
        tools: calls.iter().map(|c| c.name.clone()).collect(),
        text: calls
            .iter()
            .map(|c| c.arguments.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        summary: format!("the model calls {}", shown.join(", ")),
        ..HttpFacts::default()
    };
    let verdict = pipeline
        .policy
        .decide_tool_calls(&exchange.identity, connection, &facts);
    let command = Command {
        event: CommandEvent {
            command_id: exchange.session.next_command(),
            protocol: "http".into(),
            detail: CommandDetail::Http(HttpCommand {
                connection_type: kind_name(ConnectionKind::Openai).into(),
                request: serde_json::to_value(&facts).unwrap_or_default(),
                channel: None,
                detail: None,
                text: Some(shown.join("\n")),
                text_masked: counts,
                body_bytes: None,
                tool_call: Some(true),
                answer_to: Some(exchange.command_id),
            }),
            verdict,
            approval_request: None,
        },
        shown: facts.summary.clone(),
    };

    pipeline
        .admit(&exchange.scope, command, Some(&mut Unwatched))
        .await
        .map(|_| ())
        .map_err(|refused| admission::refusal(&refused, Subject::ToolCall).1)
}
