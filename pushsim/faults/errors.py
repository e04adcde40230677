"""The fakes' own error tables (fake_apns.reasons, fake_fcm.errors.BY_CODE), bound into
`ErrorBuilders`: an injected error is byte-for-byte what the fake sends for the real thing."""
from __future__ import annotations

from pushsim.edge.types import Headers

from .actions import ErrorBuilders


def default_builders() -> ErrorBuilders:
    from fake_apns import reasons
    from fake_fcm import errors as fe

    def fcm_status(code: str) -> int | None:
        f = fe.BY_CODE.get(code)
        return f().status if f is not None else None

    def fcm_error(code: str, message: str | None) -> tuple[int, bytes, Headers]:
        f = fe.by_code(code, message)
        return f.status, f.body, list(f.headers)

    return ErrorBuilders(apns_status=reasons.STATUS.get, apns_body=reasons.body_of,
                         fcm_status=fcm_status, fcm_error=fcm_error)
