"""What an accepted FCM message means for one install: priority, push type, expiry, collapse key.

Android installs read the `android` block (priority high=10 / normal=5, FCM's defaults: high for
notification messages, normal for data-only). iOS installs reached through FCM read the `apns`
block as FCM forwards it to APNs: `apns-priority`, `apns-push-type`, `apns-expiration`,
`apns-collapse-id`, and `aps.content-available`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .message import SendRequest


@dataclass(slots=True)
class Delivery:
    push_type: str
    priority: int
    content_available: bool
    collapse_id: str | None
    expiration: float | None          # absolute wall seconds; 0.0 = now or never; None = FCM default


def for_android(req: SendRequest, now: float) -> Delivery:
    if req.android_priority is not None:
        priority = 10 if req.android_priority == "HIGH" else 5
    else:
        priority = 10 if req.has_notification else 5
    expiration = None if req.ttl is None else (0.0 if req.ttl == 0 else now + req.ttl)
    return Delivery("notification" if req.has_notification else "data", priority,
                    not req.has_notification, req.collapse_key, expiration)


def _int(text: object) -> int | None:
    if isinstance(text, str) and text.strip().lstrip("-").isdigit():
        return int(text.strip())
    return None


_NONE: dict[str, Any] = {}


def for_apns(req: SendRequest, now: float) -> Delivery:
    apns: dict[str, Any] | None = req.message.get("apns")
    if not apns:
        if req.has_notification:
            return Delivery("alert", 10, False, None, None)
        return Delivery("background", 5, True, None, None)
    raw = apns.get("headers")
    headers = {k.lower(): v for k, v in raw.items()} if raw else _NONE
    aps = (apns.get("payload") or _NONE).get("aps")
    silent = isinstance(aps, dict) and aps.get("content-available") == 1
    push_type = headers.get("apns-push-type") or ("alert" if req.has_notification else "background")
    prio = _int(headers.get("apns-priority"))
    if prio not in (1, 5, 10):
        prio = 5 if push_type == "background" or not req.has_notification else 10
    exp = _int(headers.get("apns-expiration"))
    if exp is not None:
        expiration: float | None = 0.0 if exp <= 0 else float(exp)
    else:
        # FCM maps android-less TTL to nothing on iOS; the APNs default (store for a while) applies
        expiration = None
    return Delivery(push_type, prio, silent or not req.has_notification,
                    headers.get("apns-collapse-id") or None, expiration)
