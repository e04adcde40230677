"""One APNs request (method, path, headers, body) + a clock reading → accepted notification or reason.

Check order follows pushy's validating mock (reference "Behaviours" 9): apns-id, method, path and
token syntax, duplicate headers, topic, collapse id, priority, push type, expiration, auth, payload.

Registry checks (unknown token, token of the other environment, DeviceTokenNotForTopic, 410
Unregistered) run *after* auth, unlike pushy, which does them before. Real APNs answers
InvalidProviderToken to a bad JWT whatever the device token (firebase-ios-sdk#4042: both an FCM token
and an APNs token got 403 InvalidProviderToken), and a server that told unauthenticated callers
whether a token is registered, and since when (410 timestamp), would leak device state. Token
*syntax* stays in pushy's place (before auth): a malformed token says nothing about any device.

Mismatches Apple says "may" be rejected or dropped (background push with priority 10, push type vs
topic suffix, push type vs payload) follow `mismatch_mode`:
- "reject": background + priority 10 → 400 BadPriority (Apple: "using priority 10 is an error", and
  BadPriority is the documented reason for a priority the request may not use); push type vs topic
  or payload → 400 InvalidPushType (observed: a `.voip` topic sent with push type alert got
  InvalidPushType, AndrewBarba/apns2#23; Apple: the header "must accurately reflect" the payload).
- "drop": accepted (200) but marked `drop_reason`, so the device side drops it, as real APNs has been
  seen to do (malliina/mobile-push#19: a silent payload sent as alert was accepted, never delivered).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import pushtypes as pt
from .auth import KeyStore, check_token
from .connection import ApnsConnection
from .ids import is_uuid

_PREFIX = b"/3/device/"
_HEX = b"0123456789abcdefABCDEF"
_TOPIC_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
_PRIORITY = {b"10": 10, b"5": 5, b"1": 1}
_SAFE_ID = bytes(range(0x21, 0x7F))     # echo a bad apns-id only if it is a safe header value


class Target:
    """What the fleet knows of the install a token belongs to. (A plain slots class: a frozen
    dataclass costs a microsecond per request in __init__.)"""
    __slots__ = ("install", "bundle_id", "environment", "uninstalled_ms")

    def __init__(self, install: int, bundle_id: str, environment: str, uninstalled_ms: int | None) -> None:
        self.install, self.bundle_id, self.environment, self.uninstalled_ms = (
            install, bundle_id, environment, uninstalled_ms)


@dataclass(slots=True)
class Rules:
    keys: KeyStore
    lookup: Callable[[str], Target | None]
    environment: str = "sandbox"
    mismatch_mode: str = "reject"
    wedge_on_expired: bool = False


class Decision:
    """The outcome of one request. `reason` None means accepted."""
    __slots__ = ("reason", "timestamp", "apns_id", "token", "auth_ok", "install", "push_type",
                 "priority", "expiration", "collapse_id", "content_available", "drop_reason")

    def __init__(self, reason: str | None, apns_id: bytes | None, token: str | None = None,
                 auth_ok: bool = False, timestamp: int | None = None) -> None:
        self.reason, self.apns_id, self.token, self.auth_ok = reason, apns_id, token, auth_ok
        self.timestamp = timestamp
        self.install = -1
        self.push_type = "alert"
        self.priority = 10
        self.expiration: float | None = None
        self.collapse_id: str | None = None
        self.content_available = False
        self.drop_reason: str | None = None


def _is_hex(token: bytes) -> bool:
    # No fixed length: Apple says not to assume a device-token size.
    return not len(token) & 1 and not token.translate(None, _HEX)


def decide(conn: ApnsConnection, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
           body: bytes, now: float, rules: Rules) -> Decision:
    apns = dict(headers)
    duplicate = False
    if len(apns) != len(headers):
        # Some name repeats (rare): rebuild keeping first values, and flag repeated apns-* headers.
        apns = {}
        for name, value in headers:
            if name not in apns:
                apns[name] = value
            elif name[:5] == b"apns-":
                duplicate = True
    authorization = apns.get(b"authorization")

    apns_id = apns.get(b"apns-id")
    if apns_id is not None and not is_uuid(apns_id):
        return Decision("BadMessageId", apns_id if apns_id and not apns_id.translate(None, _SAFE_ID) else None)
    if method != b"POST":
        return Decision("MethodNotAllowed", apns_id)
    if path[:10] != _PREFIX:
        return Decision("BadPath", apns_id)
    raw_token = path[10:]
    if not raw_token:
        return Decision("MissingDeviceToken", apns_id)
    if not _is_hex(raw_token):
        return Decision("BadDeviceToken", apns_id)
    token = raw_token.decode("ascii")
    if duplicate:
        return Decision("DuplicateHeaders", apns_id, token)

    cert = conn.cert
    raw_topic = apns.get(b"apns-topic")
    if raw_topic is None:
        if cert is None or cert.default_topic is None:
            return Decision("MissingTopic", apns_id, token)
        topic = cert.default_topic
    elif not raw_topic or len(raw_topic) > 255 or raw_topic.translate(None, _TOPIC_CHARS):
        return Decision("BadTopic", apns_id, token)
    else:
        topic = raw_topic.decode("ascii")

    collapse = apns.get(b"apns-collapse-id")
    if collapse is not None and len(collapse) > 64:      # bytes on the wire = UTF-8 bytes
        return Decision("BadCollapseId", apns_id, token)
    raw_priority = apns.get(b"apns-priority")
    priority = 10 if raw_priority is None else _PRIORITY.get(raw_priority)
    if priority is None:
        return Decision("BadPriority", apns_id, token)
    raw_type = apns.get(b"apns-push-type")
    if raw_type is not None and raw_type not in pt.PUSH_TYPES:
        return Decision("InvalidPushType", apns_id, token)
    raw_exp = apns.get(b"apns-expiration")
    if raw_exp is not None and not (raw_exp.isdigit() and len(raw_exp) <= 19):
        return Decision("BadExpirationDate", apns_id, token)

    # auth: a client certificate, when present, decides alone and `authorization` is ignored.
    if conn.cert_der is not None:
        if cert is None:
            return Decision("BadCertificate", apns_id, token)
        if rules.environment not in cert.environments:
            return Decision("BadCertificateEnvironment", apns_id, token)
        if topic not in cert.topics:
            return Decision("TopicDisallowed", apns_id, token, True)
    else:
        claims = check_token(conn.tokens, rules.keys, authorization, now, rules.environment,
                             wedge_on_expired=rules.wedge_on_expired)
        if isinstance(claims, str):
            return Decision(claims, apns_id, token)
        allowed = claims.key.topics
        if allowed is not None and topic not in allowed and pt.base_topic(topic) not in allowed:
            return Decision("TopicDisallowed", apns_id, token, True)

    target = rules.lookup(token)
    if target is None or target.environment != rules.environment:
        return Decision("BadDeviceToken", apns_id, token, True)
    suffix = pt.topic_suffix(topic, target.bundle_id)
    if suffix is None:
        return Decision("DeviceTokenNotForTopic", apns_id, token, True)
    if target.uninstalled_ms is not None:
        return Decision("Unregistered", apns_id, token, True, target.uninstalled_ms)

    if not body:
        return Decision("PayloadEmpty", apns_id, token, True)
    push_type = pt.NAMES[raw_type] if raw_type is not None else None
    limit = pt.VOIP_PAYLOAD_LIMIT if (push_type or pt.BY_SUFFIX.get(suffix)) == "voip" else pt.PAYLOAD_LIMIT
    if len(body) > limit:
        return Decision("PayloadTooLarge", apns_id, token, True)

    facts = pt.body_facts(body)
    content_available, visible = facts.content_available, facts.visible

    drop: str | None = None
    if push_type is None:
        # No header (allowed outside watchOS): APNs infers the type from the topic and payload.
        push_type = pt.BY_SUFFIX.get(suffix) or ("background" if content_available and not visible else "alert")
    else:
        if push_type == "background" and priority == 10:
            drop = "background-priority-10"
        elif pt.SUFFIX[raw_type] != suffix:
            drop = "push-type-topic-mismatch"
        elif not pt.fits(push_type, content_available, visible):
            drop = "push-type-payload-mismatch"
        if drop is not None and rules.mismatch_mode != "drop":
            return Decision("BadPriority" if drop == "background-priority-10" else "InvalidPushType",
                            apns_id, token, True)
    if drop is None and not facts.is_object:
        # No documented reason rejects a non-JSON body (pushy's mock accepts it too), but no device
        # could show it: accept, and let the device side drop it.
        drop = "payload-not-json-object"

    d = Decision(None, apns_id, token, True)
    d.install = target.install
    d.push_type = push_type
    d.priority = priority
    d.expiration = float(int(raw_exp)) if raw_exp is not None else None
    d.collapse_id = collapse.decode("utf-8", "replace") if collapse is not None else None
    d.content_available = content_available
    d.drop_reason = drop
    return d
