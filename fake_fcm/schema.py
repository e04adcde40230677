"""The FCM v1 `SendMessageRequest` schema as proto-JSON sees it, and a parser that walks it.

Proto JSON rules the real front end applies before FCM sees anything: unknown names are rejected,
each field has one JSON type, `null` means "not set", both `snake_case` and `lowerCamelCase`
names are accepted, and a oneof (the message target) may be set once. Errors here read exactly
like the front end's ("Invalid value at 'message.data[0].value' (TYPE_STRING), 1").
"""
from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from .errors import FcmFailure, parse_error

_PKG = "type.googleapis.com/google.firebase.fcm.v1."
STR, BOOL, INT, DURATION, TIMESTAMP, STRUCT = "str", "bool", "int", "duration", "timestamp", "struct"
DURATION_RE = re.compile(r"(-?)(\d{1,12})(?:\.(\d{1,9}))?s")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_TYPE_NAMES = {STR: "TYPE_STRING", BOOL: "TYPE_BOOL", INT: "TYPE_INT32",
               DURATION: "type.googleapis.com/google.protobuf.Duration",
               TIMESTAMP: "type.googleapis.com/google.protobuf.Timestamp",
               STRUCT: "type.googleapis.com/google.protobuf.Struct"}

# Field kinds: a scalar name above, ("map",) string→string, ("list", kind), ("msg", name), ("enum", name, values)
ENUMS = {
    "AndroidMessagePriority": ("NORMAL", "HIGH"),
    "NotificationPriority": ("PRIORITY_UNSPECIFIED", "PRIORITY_MIN", "PRIORITY_LOW", "PRIORITY_DEFAULT",
                             "PRIORITY_HIGH", "PRIORITY_MAX"),
    "Visibility": ("VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"),
    "Proxy": ("PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"),
}
_MAP, _LSTR, _LDUR = ("map",), ("list", STR), ("list", DURATION)


def _enum(name: str) -> tuple[str, str, tuple[str, ...]]:
    return ("enum", name, ENUMS[name])


MESSAGES: dict[str, dict[str, Any]] = {
    "SendMessageRequest": {"validate_only": BOOL, "message": ("msg", "Message")},
    "Message": {"name": STR, "data": _MAP, "notification": ("msg", "Notification"),
                "android": ("msg", "AndroidConfig"), "webpush": ("msg", "WebpushConfig"),
                "apns": ("msg", "ApnsConfig"), "fcm_options": ("msg", "FcmOptions"),
                "token": STR, "topic": STR, "condition": STR, "fid": STR},
    "Notification": {"title": STR, "body": STR, "image": STR},
    "FcmOptions": {"analytics_label": STR},
    "AndroidConfig": {"collapse_key": STR, "priority": _enum("AndroidMessagePriority"), "ttl": DURATION,
                      "restricted_package_name": STR, "data": _MAP,
                      "notification": ("msg", "AndroidNotification"),
                      "fcm_options": ("msg", "AndroidFcmOptions"), "direct_boot_ok": BOOL,
                      "bandwidth_constrained_ok": BOOL, "restricted_satellite_ok": BOOL},
    "AndroidFcmOptions": {"analytics_label": STR},
    "AndroidNotification": {
        "title": STR, "body": STR, "icon": STR, "color": STR, "sound": STR, "tag": STR,
        "click_action": STR, "body_loc_key": STR, "body_loc_args": _LSTR, "title_loc_key": STR,
        "title_loc_args": _LSTR, "channel_id": STR, "ticker": STR, "sticky": BOOL,
        "event_time": TIMESTAMP, "local_only": BOOL, "notification_priority": _enum("NotificationPriority"),
        "default_sound": BOOL, "default_vibrate_timings": BOOL, "default_light_settings": BOOL,
        "vibrate_timings": _LDUR, "visibility": _enum("Visibility"), "notification_count": INT,
        "light_settings": ("msg", "LightSettings"), "image": STR, "bypass_proxy_notification": BOOL,
        "proxy": _enum("Proxy")},
    "LightSettings": {"color": ("msg", "Color"), "light_on_duration": DURATION, "light_off_duration": DURATION},
    "Color": {"red": "float", "green": "float", "blue": "float", "alpha": "float"},
    "ApnsConfig": {"headers": _MAP, "payload": STRUCT, "fcm_options": ("msg", "ApnsFcmOptions"),
                   "live_activity_token": STR},
    "ApnsFcmOptions": {"analytics_label": STR, "image": STR},
    "WebpushConfig": {"headers": _MAP, "data": _MAP, "notification": STRUCT,
                      "fcm_options": ("msg", "WebpushFcmOptions")},
    "WebpushFcmOptions": {"link": STR, "analytics_label": STR},
}
TARGETS = ("token", "topic", "condition", "fid")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


# JSON name (either spelling) → (proto field name, kind), per message type
_NAMES: dict[str, dict[str, tuple[str, Any]]] = {
    m: {alias: (f, k) for f, k in fields.items() for alias in (f, _camel(f))} for m, fields in MESSAGES.items()
}


def _show(value: object) -> str:
    if isinstance(value, (dict, list)):
        return ""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text[:200]


class ParseError(Exception):
    def __init__(self, failure: FcmFailure) -> None:
        self.failure = failure


def _invalid(path: str, type_name: str, value: object) -> ParseError:
    shown = _show(value)
    msg = f"Invalid value at '{path}' ({type_name})" + (f", {shown}" if shown else "")
    return ParseError(parse_error(msg, path))


def parse_duration(text: str) -> float | None:
    """Seconds in a google.protobuf.Duration JSON string, or None if it is not one."""
    m = DURATION_RE.fullmatch(text)
    if m is None:
        return None
    sign, secs, frac = m.groups()
    value = int(secs) + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    return -value if sign else value


def _scalar(kind: str, value: object, path: str) -> object:
    if kind == STR:
        if isinstance(value, str):
            return value
    elif kind == BOOL:
        if isinstance(value, bool):
            return value
    elif kind == INT:
        if isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31:
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,10}", value) and -2**31 <= int(value) < 2**31:
            return int(value)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    elif kind == DURATION:
        if isinstance(value, str) and DURATION_RE.fullmatch(value):
            return value
    elif kind == TIMESTAMP:
        if isinstance(value, str) and _TIMESTAMP_RE.fullmatch(value):
            return value
    elif kind == STRUCT:
        if isinstance(value, dict):
            return value
    raise _invalid(path, _TYPE_NAMES.get(kind, "TYPE_FLOAT"), value)


@functools.lru_cache(maxsize=4096)
def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _field(kind: Any, value: object, path: str) -> object:
    if isinstance(kind, str):
        return _scalar(kind, value, path)
    tag = kind[0]
    if tag == "msg":
        if value.__class__ is not dict:
            raise _invalid(path, _PKG + kind[1], value)
        return parse_message(kind[1], value, path)    # type: ignore[arg-type]
    if tag == "map":
        if value.__class__ is not dict:
            raise ParseError(parse_error(
                f"Invalid JSON payload received. Expected an object for map field '{path}'.", path))
        for v in value.values():                      # type: ignore[attr-defined]
            if v.__class__ is not str:
                for i, v2 in enumerate(value.values()):   # type: ignore[attr-defined]
                    if v2.__class__ is not str:
                        raise _invalid(f"{path}[{i}].value", "TYPE_STRING", v2)
        return value
    if tag == "list":
        if not isinstance(value, list):
            raise _invalid(path, _TYPE_NAMES[kind[1]], value)
        return [_scalar(kind[1], v, f"{path}[{i}]") for i, v in enumerate(value)]
    # enum: names in any case (the Python SDK sends "high"), or the number
    names = kind[2]
    if isinstance(value, str) and value.upper() in names:
        return value.upper()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]          # every FCM enum here numbers its names 0, 1, 2, ... in order
    raise _invalid(path, _PKG + kind[1], value)


_TARGET_SET = frozenset(TARGETS)


def parse_message(type_name: str, obj: dict[str, Any], path: str) -> dict[str, Any]:
    """Validate one JSON object against its proto type; returns it keyed by proto (snake) names."""
    names = _NAMES[type_name]
    out: dict[str, Any] = {}
    target = None
    for key, value in obj.items():
        hit = names.get(key)
        if hit is None:
            where = f" at '{path}'" if path else ""
            raise ParseError(parse_error(
                f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.', path or None))
        if value is None:
            continue
        fname, kind = hit
        if fname in _TARGET_SET:
            if target is not None:
                raise ParseError(parse_error(
                    f"Invalid value at '{path}' (oneof), oneof field 'target' is already set. "
                    f"Cannot set '{fname}'", path))
            target = fname
        if kind is STR and value.__class__ is str:        # the common cases, without a call
            out[fname] = value
            continue
        if kind is _MAP and value.__class__ is dict:
            for v in value.values():
                if v.__class__ is not str:
                    break
            else:
                out[fname] = value
                continue
        out[fname] = _field(kind, value, _join(path, fname))
    return out


def load(body: bytes) -> Any:
    """The request body as JSON (an empty body is an empty object), or ParseError."""
    try:
        return orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise ParseError(parse_error("Invalid JSON payload received. Unexpected token.")) from None


def parse_request(body: bytes) -> dict[str, Any]:
    """The whole request body → {"validate_only"?, "message"?} or ParseError."""
    return parse_obj(load(body))


def parse_obj(obj: Any) -> dict[str, Any]:
    """An already decoded request body → {"validate_only"?, "message"?} or ParseError."""
    if obj.__class__ is dict and len(obj) == 1:
        msg = obj.get("message")
        if msg.__class__ is dict:                      # the usual body: {"message": {...}}
            return {"message": parse_message("Message", msg, "message")}
    if not isinstance(obj, dict):
        raise ParseError(parse_error(
            'Invalid JSON payload received. Unknown name "": Root element must be a message.'))
    return parse_message("SendMessageRequest", obj, "")
