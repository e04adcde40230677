"""The fakes' own error builders, bound into `ErrorBuilders`: an injected error is byte-for-byte
what the fake sends for the real thing. Only the FCM codes the fake has no named builder for are
composed here, from the fake's own `status_body` and `fcm_detail`.
"""
from __future__ import annotations

from typing import Callable

from pushsim.edge.types import Headers

from .actions import ErrorBuilders


def default_builders() -> ErrorBuilders:
    from fake_apns import reasons
    from fake_fcm import errors as fe

    def plain(status: int, message: str, code: str) -> Callable[[], "fe.FcmFailure"]:
        return lambda: fe.FcmFailure(status, fe.status_body(status, message, [fe.fcm_detail(code)]), code)

    fcm: dict[str, Callable[[], fe.FcmFailure]] = {
        "INVALID_ARGUMENT": fe.invalid_token,
        "UNREGISTERED": fe.unregistered,
        "SENDER_ID_MISMATCH": fe.sender_id_mismatch,
        "QUOTA_EXCEEDED": lambda: fe.quota_exceeded(
            "Quota exceeded for quota metric 'Messages' and limit 'Messages per minute'.",
            "projects/pushsim", "Per-project message quota exceeded", 60),
        "UNAVAILABLE": plain(503, "The service is currently unavailable.", "UNAVAILABLE"),
        "INTERNAL": plain(500, "Internal error encountered.", "INTERNAL"),
        "UNSPECIFIED_ERROR": plain(500, "Internal error encountered.", "UNSPECIFIED_ERROR"),
        "THIRD_PARTY_AUTH_ERROR": plain(401, "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"),
        "ACCESS_TOKEN_EXPIRED": fe.access_token_expired,
        "CREDENTIALS_MISSING": fe.missing_credential,
    }

    def fcm_status(code: str) -> int | None:
        f = fcm.get(code)
        return f().status if f is not None else None

    def fcm_error(code: str, message: str | None) -> tuple[int, bytes, Headers]:
        f = fcm[code]()
        body = f.body
        if message is not None:
            import orjson
            doc = orjson.loads(body)
            doc["error"]["message"] = message
            body = orjson.dumps(doc)
        return f.status, body, list(f.headers)

    return ErrorBuilders(apns_status=reasons.STATUS.get, apns_body=reasons.body_of,
                         fcm_status=fcm_status, fcm_error=fcm_error)
