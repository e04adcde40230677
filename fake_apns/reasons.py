"""Every documented APNs rejection reason, its HTTP status, and the exact bytes that go on the wire.

Error responses carry `content-type: application/json` and one body `{"reason": ...}`; 410 adds a
millisecond `timestamp`. Bodies are built once here because they are the same for every request.
"""
from __future__ import annotations

import orjson

# Apple's "Handling notification responses" table (32 reasons). The environment-key reason is listed
# by Apple as BadEnvironmentKeyIdInToken, but the server really sends BadEnvironmentKeyInToken
# (APNSwift PR #229); both spellings are known here and the service picks which one to send.
STATUS: dict[str, int] = {
    **dict.fromkeys((
        "BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority",
        "BadTopic", "DeviceTokenNotForTopic", "DuplicateHeaders", "IdleTimeout", "InvalidPushType",
        "MissingDeviceToken", "MissingTopic", "PayloadEmpty", "TopicDisallowed"), 400),
    **dict.fromkeys((
        "BadCertificate", "BadCertificateEnvironment", "ExpiredProviderToken", "Forbidden",
        "InvalidProviderToken", "MissingProviderToken", "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyIdInToken"), 403),
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}
DOCUMENTED: frozenset[str] = frozenset(STATUS)

ENV_KEY_DOC = "BadEnvironmentKeyIdInToken"
ENV_KEY_WIRE = "BadEnvironmentKeyInToken"
STATUS[ENV_KEY_WIRE] = 403

JSON_CT = (b"content-type", b"application/json")
BODY: dict[str, bytes] = {r: orjson.dumps({"reason": r}) for r in STATUS}


def status_of(reason: str) -> int:
    return STATUS[reason]


def body_of(reason: str, timestamp_ms: int | None = None) -> bytes:
    """The error body; a 410 carries the time APNs learned the token stopped working (ms)."""
    if timestamp_ms is None:
        return BODY[reason]
    return orjson.dumps({"reason": reason, "timestamp": timestamp_ms})
