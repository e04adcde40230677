"""IID topic management (`/iid/v1:batchAdd`, `:batchRemove`): request parsing and reply bodies.

IID speaks its own dialect: `{"error": "<Code>"}` at the top level and `{"results": [{} |
{"error": "<CODE>"}]}` per token. The per-result code strings are not documented by Google; the
ones used here (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED, TOO_MANY_TOPICS) follow what the
Admin SDKs surface.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from .topics import valid_topic

MAX_TOKENS = 1000


@dataclass(slots=True)
class BatchRequest:
    topic: str
    tokens: list[str]


def error_body(code: str) -> bytes:
    return orjson.dumps({"error": code})


def parse_batch(body: bytes) -> BatchRequest | tuple[int, str]:
    """The body of a batchAdd/batchRemove, or (status, error code) for a bad one. Never raises."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 400, "InvalidJson"
    if not isinstance(obj, dict):
        return 400, "InvalidJson"
    to, tokens = obj.get("to"), obj.get("registration_tokens")
    if not isinstance(to, str) or not to:
        return 400, "MissingTopic"
    topic = to[len("/topics/"):] if to.startswith("/topics/") else to
    if not valid_topic(topic):
        return 400, "InvalidTopicName"
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        return 400, "InvalidRegistrationTokens"
    if len(tokens) > MAX_TOKENS:
        return 400, "TooManyTokens"
    return BatchRequest(topic, tokens)


def results_body(results: list[str | None]) -> bytes:
    return orjson.dumps({"results": [{} if r is None else {"error": r} for r in results]})
