"""A minimal stand-in for the fakes' error builders, for unit tests of the fault model only."""
from __future__ import annotations

import json

from pushsim.faults.actions import ErrorBuilders

APNS = {"BadDeviceToken": 400, "Unregistered": 410, "ExpiredToken": 410, "TooManyRequests": 429,
        "InternalServerError": 500, "ServiceUnavailable": 503, "Shutdown": 503}
FCM = {"INVALID_ARGUMENT": 400, "UNREGISTERED": 404, "QUOTA_EXCEEDED": 429, "UNAVAILABLE": 503, "INTERNAL": 500}


def _apns_body(reason: str, ts: int | None) -> bytes:
    d: dict[str, object] = {"reason": reason}
    if ts is not None:
        d["timestamp"] = ts
    return json.dumps(d).encode()


def _fcm_error(code: str, message: str | None) -> tuple[int, bytes, list]:
    status = FCM[code]
    body = json.dumps({"error": {"code": status, "message": message or code, "status": code,
                                 "details": [{"errorCode": code}]}}).encode()
    return status, body, [(b"retry-after", b"60")] if code == "QUOTA_EXCEEDED" else []


BUILDERS = ErrorBuilders(APNS.get, _apns_body, FCM.get, _fcm_error)
