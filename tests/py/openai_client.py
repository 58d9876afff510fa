"""The official openai SDK through the gateway, one scenario per run.

    python3 openai_client.py SCENARIO PROMPT

The base URL, token and CA come from GATEHOUSE_LLM_BASE_URL,
GATEHOUSE_TOKEN and GATEHOUSE_CA_FILE; GATEHOUSE_LLM_MODEL names the model
("tiny" unless set) and GATEHOUSE_LLM_MAX_TOKENS, when set, caps the chat
answers (a real model would otherwise write until its context is full). Prints one JSON object: what the
SDK returned (or the error it raised), for the Rust test to check.
"""

import json
import os
import sys
import time

import openai


def client():
    return openai.OpenAI(
        base_url=os.environ["GATEHOUSE_LLM_BASE_URL"],
        api_key=os.environ["GATEHOUSE_TOKEN"],
        http_client=openai.DefaultHttpxClient(verify=os.environ["GATEHOUSE_CA_FILE"]),
        max_retries=0,
        timeout=60,
    )


MODEL = os.environ.get("GATEHOUSE_LLM_MODEL", "tiny")


def limits():
    """Extra chat arguments: max_tokens when the caller caps answers."""
    cap = os.environ.get("GATEHOUSE_LLM_MAX_TOKENS")
    return {"max_tokens": int(cap)} if cap else {}


def chat(c, prompt):
    r = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], **limits()
    )
    return {
        "content": r.choices[0].message.content,
        "usage": r.usage.model_dump() if r.usage else None,
    }


def stream(c, prompt):
    started = time.monotonic()
    first = None
    parts = []
    usage = None
    chunks = 0
    with c.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
        **limits(),
    ) as s:
        for chunk in s:
            chunks += 1
            if chunk.usage:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if first is None:
                        first = time.monotonic() - started
                    parts.append(choice.delta.content)
    return {
        "content": "".join(parts),
        "chunks": chunks,
        "content_chunks": len(parts),
        "usage": usage,
        "first_content_after_s": first,
        "total_s": time.monotonic() - started,
    }


def completions(c, prompt):
    r = c.completions.create(model="tiny", prompt=prompt, max_tokens=64)
    return {"content": r.choices[0].text}


def embeddings(c, prompt):
    r = c.embeddings.create(model="tiny", input=prompt)
    return {"dimensions": len(r.data[0].embedding)}


def models(c, _prompt):
    return {"models": [m.id for m in c.models.list()]}


def tools(c, prompt):
    r = c.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": prompt}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "wire_transfer",
                    "description": "Send money",
                    "parameters": {
                        "type": "object",
                        "properties": {"amount": {"type": "number"}},
                    },
                },
            }
        ],
    )
    calls = r.choices[0].message.tool_calls or []
    return {
        "tool_calls": [
            {"name": t.function.name, "arguments": t.function.arguments} for t in calls
        ]
    }


def tools_stream(c, prompt):
    calls = {}
    with c.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": prompt}],
        tools=[{"type": "function", "function": {"name": "wire_transfer", "parameters": {"type": "object"}}}],
        stream=True,
    ) as s:
        for chunk in s:
            for choice in chunk.choices:
                for t in (choice.delta.tool_calls or []) if choice.delta else []:
                    entry = calls.setdefault(t.index, {"name": "", "arguments": ""})
                    if t.function and t.function.name:
                        entry["name"] += t.function.name
                    if t.function and t.function.arguments:
                        entry["arguments"] += t.function.arguments
    return {"tool_calls": [calls[i] for i in sorted(calls)]}


SCENARIOS = {
    "tools_stream": tools_stream,
    "chat": chat,
    "stream": stream,
    "completions": completions,
    "embeddings": embeddings,
    "models": models,
    "tools": tools,
}


def main():
    scenario, prompt = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "hello"
    try:
        result = SCENARIOS[scenario](client(), prompt)
    except openai.APIStatusError as e:
        result = {"error": {"status": e.status_code, "message": e.message, "body": e.body}}
    except openai.APIError as e:
        result = {"error": {"status": None, "message": e.message, "body": e.body}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
