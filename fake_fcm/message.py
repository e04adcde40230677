"""FCM's own checks on a parsed send request, after the proto-JSON layer (schema.py) accepted it.

`validate(body)` returns a `SendRequest` describing what to deliver, or the `FcmFailure` FCM would
answer. It never raises: any bytes in, one of those two out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from . import errors
from .errors import FcmFailure
from .schema import ParseError, load, parse_duration, parse_obj
from .topics import Condition, ConditionError, parse_condition, valid_topic

MAX_PAYLOAD = 4096
MAX_TOPIC_PAYLOAD = 2048
MAX_TTL = 2_419_200                      # 28 days, also the default
LABEL_RE = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")
COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")
RESERVED_KEYS = ("from", "gcm")          # plus any key starting with "google"


@dataclass(slots=True)
class SendRequest:
    validate_only: bool
    message: dict[str, Any]              # keyed by proto field names
    target: str                          # "token" | "topic" | "condition" | "fid"
    value: str                           # the token, topic name, condition text or FID
    condition: Condition | None
    ttl: int | None                      # android.ttl in whole seconds (rounded down); None = not given
    collapse_key: str | None
    android_priority: str | None         # "HIGH" | "NORMAL" | None (then FCM's default applies)
    restricted_package: str | None
    has_notification: bool               # any notification block at all: a user-visible message


_EMPTY: dict[str, Any] = {}


def _size(data: dict[str, str] | None, notification: dict[str, Any] | None) -> int:
    n = 0
    for k, v in (data or {}).items():
        n += len(k.encode()) + len(v.encode())
    for k, v in (notification or {}).items():
        if isinstance(v, str):
            n += len(k.encode()) + len(v.encode())
    return n


def _labels(msg: dict[str, Any]) -> FcmFailure | None:
    places = []
    if "fcm_options" in msg:
        places.append(("message.fcm_options", msg["fcm_options"]))
    for plat in ("android", "apns", "webpush"):
        block = msg.get(plat)
        if block is not None and "fcm_options" in block:
            places.append((f"message.{plat}.fcm_options", block["fcm_options"]))
    for path, opts in places:
        label = opts.get("analytics_label")
        if label is not None and not LABEL_RE.fullmatch(label):
            return errors.invalid_argument(f"{path}.analytics_label", "Analytics label must match "
                                           "[a-zA-Z0-9-_.~%]{1,50}")
    return None


def _check(req: dict[str, Any]) -> SendRequest | FcmFailure:
    msg = req.get("message")
    if msg is None:
        return errors.invalid_argument("message", "Message must be specified")
    if "token" in msg:            # hot path first: the schema layer already allowed one target at most
        target = "token"
    else:
        target = "topic" if "topic" in msg else "condition" if "condition" in msg else "fid" if "fid" in msg else ""
    value = msg[target] if target else ""
    if not value:
        return errors.invalid_argument("message", "Exactly one of token, topic, condition or fid must be set")
    cond = None
    if target == "token":
        if len(value) > 4096:
            return errors.invalid_token()
    elif target == "topic":
        if not valid_topic(value):
            return errors.invalid_argument("message.topic", "Invalid topic name")
    elif target == "condition":
        try:
            cond = parse_condition(value)
        except ConditionError as e:
            return errors.invalid_argument("message.condition", f"Invalid condition expression provided: {e}")
    data = msg.get("data")
    if data:
        for key in data:
            if key in RESERVED_KEYS or key.startswith("google"):
                return errors.invalid_argument("message.data", f"Invalid data payload key: {key}")
    limit = MAX_PAYLOAD if target == "token" or target == "fid" else MAX_TOPIC_PAYLOAD
    if (data or "notification" in msg) and _size(data, msg.get("notification")) > limit:
        return _too_big(limit)
    android = msg.get("android")
    ttl = collapse = priority = package = None
    anote = None
    if android:
        adata = android.get("data")
        if adata:
            for key in adata:
                if key in RESERVED_KEYS or key.startswith("google"):
                    return errors.invalid_argument("message.android.data", f"Invalid data payload key: {key}")
        if "ttl" in android:
            secs = parse_duration(android["ttl"])
            if secs is None or secs < 0 or secs > MAX_TTL:
                return errors.invalid_argument("message.android.ttl",
                                               f"TTL must be between 0s and {MAX_TTL}s, got {android['ttl']}")
            ttl = int(secs)
        anote = android.get("notification")
        if anote and "color" in anote and not COLOR_RE.fullmatch(anote["color"]):
            return errors.invalid_argument("message.android.notification.color",
                                           "Color must be in the form #RRGGBB")
        if (adata or anote) and _size(adata, anote) > limit:
            return _too_big(limit)
        collapse = android.get("collapse_key") or None
        priority = android.get("priority")
        package = android.get("restricted_package_name") or None
    if "fcm_options" in msg or "apns" in msg or "webpush" in msg or (android and "fcm_options" in android):
        bad = _labels(msg)
        if bad is not None:
            return bad
    return SendRequest(
        bool(req.get("validate_only")), msg, target, value, cond, ttl, collapse, priority, package,
        bool("notification" in msg or anote or ("webpush" in msg and msg["webpush"].get("notification"))
             or ("apns" in msg and _apns_alert(msg))))


def _too_big(limit: int) -> FcmFailure:
    return errors.invalid_argument("message", f"Message is too big: the payload limit is {limit} bytes",
                                   message="Message is too big")


def _apns_alert(msg: dict[str, Any]) -> bool:
    aps = ((msg.get("apns") or {}).get("payload") or {}).get("aps")
    return isinstance(aps, dict) and bool(aps.get("alert"))


def validate(body: bytes) -> SendRequest | FcmFailure:
    try:
        obj = load(body)
        fast = fast_path(obj)
        if fast is not None:
            return fast
        req = parse_obj(obj)
    except ParseError as e:
        return e.failure
    except (RecursionError, ValueError, TypeError):
        # e.g. JSON nested deeper than the decoder allows: the front end calls that a parse error too
        return errors.parse_error("Invalid JSON payload received. Unexpected token.")
    return _check(req)


# The fast path: the shape almost every sender uses, accepted in one pass. It answers only when
# the general validator would accept the body, and then with an equal SendRequest; anything else
# (errors, camelCase names, nulls, other blocks) returns None and goes the general way.
_FAST_MESSAGE = frozenset({"token", "data", "notification", "android"})
_FAST_NOTIFICATION = frozenset({"title", "body", "image"})
_FAST_ANDROID = frozenset({"priority", "ttl", "collapse_key"})
_PRIORITIES = {"HIGH": "HIGH", "high": "HIGH", "NORMAL": "NORMAL", "normal": "NORMAL"}
_FAST_CHARS = MAX_PAYLOAD // 4           # this many characters can never exceed the byte limit in UTF-8


def fast_path(obj: Any) -> SendRequest | None:
    """A token send of {token, data?, notification?, android?{priority?, ttl?, collapse_key?}}, or None.

    `obj` is the freshly decoded body, owned by the caller: an accepted one is used (and its enum
    normalised) in place rather than copied."""
    if obj.__class__ is not dict or len(obj) != 1:
        return None
    msg = obj.get("message")
    if msg.__class__ is not dict or not _FAST_MESSAGE.issuperset(msg):
        return None
    token = msg.get("token")
    if token.__class__ is not str or not token or len(token) > 4096:
        return None
    chars = 0
    data = msg.get("data")
    if data is not None:
        if data.__class__ is not dict:
            return None
        for k, v in data.items():
            if v.__class__ is not str or k in RESERVED_KEYS or k.startswith("google"):
                return None
            chars += len(k) + len(v)
    elif "data" in msg:
        return None
    note = msg.get("notification")
    if note is not None:
        if note.__class__ is not dict or not _FAST_NOTIFICATION.issuperset(note):
            return None
        for k, v in note.items():
            if v.__class__ is not str:
                return None
            chars += len(k) + len(v)
    elif "notification" in msg:
        return None
    if chars > _FAST_CHARS:
        return None
    ttl = collapse = priority = None
    android = msg.get("android")
    if android is not None:
        if android.__class__ is not dict or not _FAST_ANDROID.issuperset(android):
            return None
        if android:
            p = android.get("priority")
            if p is not None:
                priority = _PRIORITIES.get(p) if p.__class__ is str else None
                if priority is None:
                    return None
            elif "priority" in android:
                return None
            t = android.get("ttl")
            if t is not None:
                secs = parse_duration(t) if t.__class__ is str else None
                if secs is None or secs < 0 or secs > MAX_TTL:
                    return None
                ttl = int(secs)
            elif "ttl" in android:
                return None
            c = android.get("collapse_key")
            if c is not None:
                if c.__class__ is not str:
                    return None
                collapse = c or None
            elif "collapse_key" in android:
                return None
            if priority is not None and priority != p:     # enums are kept upper-case, as the general path does
                android["priority"] = priority
    elif "android" in msg:
        return None
    return SendRequest(False, msg, "token", token, None, ttl, collapse, priority, None, note is not None)


def token_of(body: bytes) -> str | None:
    """Best effort, error path only: the target token of a rejected body, so the journal can show it."""
    try:
        msg = orjson.loads(body).get("message")
        token = msg.get("token") or msg.get("fid")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
    return token if isinstance(token, str) else None
