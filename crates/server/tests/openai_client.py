"""Drives a running `lore serve` with the official `openai` package.

Usage: openai_client.py BASE_URL API_KEY
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)

models = [m.id for m in client.models.list()]
assert "lanterns/odile" in models, models
print("models:", len(models))

first = client.chat.completions.create(
    model="lanterns/odile",
    messages=[{"role": "user", "content": "Good evening, Warden. Who are you?"}],
)
reply = first.choices[0].message.content
assert first.object == "chat.completion", first
assert first.choices[0].message.role == "assistant"
assert reply, first
assert first.usage.completion_tokens > 0, first.usage
print("non-streaming:", repr(reply))

# The same conversation, one message on: the server maps it onto the same session.
raw = client.chat.completions.with_raw_response.create(
    model="lanterns/odile",
    messages=[
        {"role": "user", "content": "Good evening, Warden. Who are you?"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And what do you guard?"},
    ],
    stream=True,
    stream_options={"include_usage": True},
)
session = raw.headers.get("x-lore-session")
assert session, raw.headers
pieces, finish, usage = [], None, None
for chunk in raw.parse():
    assert chunk.object == "chat.completion.chunk", chunk
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert pieces, "no content streamed"
assert finish in ("stop", "length"), finish
assert usage is not None and usage.completion_tokens > 0, usage
print("streaming:", repr("".join(pieces)), "session", session)

# An explicit session header continues that session.
again = client.chat.completions.create(
    model="lanterns/odile",
    messages=[{"role": "user", "content": "Thank you."}],
    extra_headers={"X-Lore-Session": session},
)
assert again.id.startswith(f"chatcmpl-{session}-2"), again.id

try:
    client.chat.completions.create(
        model="harbour/mara", messages=[{"role": "user", "content": "hi"}]
    )
    raise AssertionError("another tenant's character answered")
except openai.NotFoundError as e:
    print("other tenant:", e.status_code)

bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="lk_nope_nope", max_retries=0)
try:
    bad.models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    print("wrong key:", e.status_code)
print("ok")
