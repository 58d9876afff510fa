//! The decide stage for a model's own tool calls.
//!
//! An agent runs whatever tool the model's answer calls, so the answer is
//! the last place the gateway can stop a call. Rules that name `tools`
//! judge the calls in an answer before it reaches the caller: a block
//! replaces the answer with an error, a hold keeps it until approvers
//! decide, with the call's arguments in front of them.

use crate::openai::LlmToolCall;
use crate::proxy::{kind_name, truncate, Exchange};
use gatehouse_core::approval::HeldCommand;
use gatehouse_core::classify::http::HttpFacts;
use gatehouse_core::mask::MaskCounts;
use gatehouse_core::pipeline::EventRecord;
use gatehouse_core::policy::ConnectionKind;
use gatehouse_core::Verdict;

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
    let opened = match &verdict {
        Verdict::Hold {
            rule,
            message,
            requirement,
        } => {
            let Some(broker) = pipeline.approvals.clone() else {
                return Err(format!(
                    "rule \"{rule}\" needs approval for this tool call, but this gateway has no approvals configured"
                ));
            };
            let held = HeldCommand {
                requester: exchange.identity.clone(),
                connection: connection.clone(),
                session_id: exchange.session.id.clone(),
                protocol: "http".into(),
                command: facts.summary.clone(),
                rule: rule.clone(),
                message: message.clone(),
                requirement: requirement.clone(),
            };
            Some((
                broker.clone(),
                broker.open(held).await.map_err(|e| {
                    format!("gatehouse could not open an approval request for this tool call: {e}")
                })?,
            ))
        }
        _ => None,
    };
    let command_id = exchange.session.next_command();
    let record = pipeline.recorder.record(EventRecord {
        kind: "command",
        session_id: Some(exchange.session.id.clone()),
        subject: Some(exchange.identity.subject.clone()),
        connection: Some(connection.clone()),
        data: serde_json::json!({
            "command_id": command_id,
            "protocol": "http",
            "connection_type": kind_name(ConnectionKind::Openai),
            "tool_call": true,
            "answer_to": exchange.command_id,
            "request": facts,
            "text": shown.join("\n"),
            "text_masked": counts,
            "verdict": verdict,
            "approval_request": opened.as_ref().map(|(_, o)| o.id),
        }),
    });
    pipeline
        .record_or_withdraw(opened.as_ref().map(|(_, o)| o.id), record)
        .await
        .map_err(|e| {
            format!("gatehouse could not record this tool call, so it is withheld: {e}")
        })?;
    match verdict {
        Verdict::Allow { .. } => Ok(()),
        Verdict::Block { rule, message } => Err(format!(
            "the model's tool call was blocked by gatehouse rule \"{rule}\": {message}"
        )),
        Verdict::Hold { .. } => {
            let (broker, opened) = opened.expect("a hold opened a request");
            crate::hold::wait(broker, &opened, &exchange.deadline).await
        }
    }
}
