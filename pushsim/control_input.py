"""Validation of control-API input: every way a request can be wrong becomes `BadRequest` (→ 400 with
a message), so no handler sees input that makes it crash.

The control API is reachable by any local script, so what a request can make us hold or compute is
bounded here, once: the body's size (`MAX_BODY`, enforced by aiohttp's `client_max_size`), its
nesting (`MAX_DEPTH`, checked without recursion), integers to 64 bits, the query parameters each
route declares, and the length of any client value quoted back in an error message.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson
from aiohttp import web

MAX_BODY = 1 << 20          # bytes; the largest real body is a list of fault rules, a few KB
MAX_DEPTH = 32              # JSON nesting; our deepest schema (a fault rule) is 4 levels
MAX_INT = (1 << 63) - 1     # offsets, counts and ids are 64-bit in the fleet and the journal
QUOTE_LIMIT = 80            # characters of a client value quoted back in an error


class BadRequest(Exception):
    """The client's mistake; the message says what and where."""


def quote(value: object) -> str:
    """repr() of a client value, cut short: an error must not echo a megabyte back."""
    text = repr(value)   # bodies are depth-checked before any handler runs: repr cannot recurse deeply
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "…"


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        d += 1
        if d > deepest:
            deepest = d
            if d > MAX_DEPTH:
                break
        stack.extend((child, d) for child in v)
    return deepest


def parse_json(raw: bytes) -> Any:
    """A request body → a JSON value no deeper than MAX_DEPTH (handlers range-check numbers)."""
    if not raw.strip():
        raise BadRequest("body is empty; expected JSON")
    try:
        value = orjson.loads(raw)   # orjson: no recursion on our stack; integers past 64 bits become floats
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None
    if depth(value) > MAX_DEPTH:
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels")
    return value


async def json_body(request: web.Request) -> Any:
    return parse_json(await request.read())


async def json_object(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object, got {type_name(body)}")
    return body


def type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def choice(name: str, value: object, options: Collection[str]) -> str:
    """`value` must be one of the strings `options` (checked by type first: a list is not hashable)."""
    if not isinstance(value, str) or value not in options:
        raise BadRequest(f"{name}: expected one of {', '.join(sorted(options))}, got {quote(value)}")
    return value


def integer(name: str, value: object, lo: int = 0, hi: int = MAX_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequest(f"{name}: expected an integer between {lo} and {hi}, got {quote(value)}")
    return value


def int_param(request: web.Request, name: str, default: int, lo: int = 0, hi: int = MAX_INT) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    digits = raw.lstrip("+-")
    if not (digits.isascii() and digits.isdigit()) or len(raw) - len(digits) > 1:
        raise BadRequest(f"{name} must be an integer, got {quote(raw)}")
    # int() of a long string costs quadratic time; past 20 digits it is out of range anyway
    value = int(raw) if len(digits) <= 20 else (hi + 1 if raw[0] != "-" else lo - 1)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {quote(raw)}")
    return value


def check_query(query: Mapping[str, str], allowed: Collection[str]) -> None:
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        allowed_text = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"unknown query parameter(s) {', '.join(quote(u) for u in unknown)}; "
                         f"allowed: {allowed_text}")
