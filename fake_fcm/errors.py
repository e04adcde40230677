"""google.rpc.Status error bodies exactly as FCM and Google's front end shape them.

Two kinds of 400 exist in the real service and are kept apart here: proto-JSON parse errors
(unknown field, wrong JSON type, bad enum or duration) carry only a `google.rpc.BadRequest`
detail, while FCM's own semantic checks carry the `FcmError` detail first and, when one field is
to blame, a `BadRequest` detail naming it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import orjson

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

CANONICAL = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

INVALID_ARGUMENT_MSG = "Request contains an invalid argument."
NOT_FOUND_MSG = "Requested entity was not found."
MISSING_CREDENTIAL_MSG = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
INVALID_CREDENTIAL_MSG = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
SEND_METHOD = "google.firebase.fcm.v1.FcmService.SendMessage"


@dataclass(slots=True)
class FcmFailure:
    """One error answer: HTTP status, the body, extra headers, and the reason for the ledger."""
    status: int
    body: bytes
    reason: str                       # FcmError code, or the ErrorInfo/parse reason for the ledger
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def status_body(code: int, message: str, details: list[dict[str, object]] | None = None,
                status: str | None = None) -> bytes:
    err: dict[str, object] = {"code": code, "message": message, "status": status or CANONICAL.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return orjson.dumps({"error": err})


def fcm_detail(error_code: str) -> dict[str, object]:
    return {"@type": FCM_ERROR, "errorCode": error_code}


def bad_request_detail(violations: list[tuple[str | None, str]]) -> dict[str, object]:
    out = []
    for fld, desc in violations:
        out.append({"field": fld, "description": desc} if fld else {"description": desc})
    return {"@type": BAD_REQUEST, "fieldViolations": out}


def parse_error(message: str, fld: str | None = None) -> FcmFailure:
    """A proto-JSON parse failure: BadRequest only, the description repeating the message."""
    return FcmFailure(400, status_body(400, message, [bad_request_detail([(fld, message)])]), "INVALID_ARGUMENT")


def invalid_argument(fld: str | None, description: str, message: str = INVALID_ARGUMENT_MSG,
                     error_code: str = "INVALID_ARGUMENT") -> FcmFailure:
    details = [fcm_detail(error_code)]
    if fld is not None:
        details.append(bad_request_detail([(fld, description)]))
    return FcmFailure(400, status_body(400, message, details), error_code)


def invalid_token() -> FcmFailure:
    return FcmFailure(400, status_body(400, "The registration token is not a valid FCM registration token",
                                      [fcm_detail("INVALID_ARGUMENT")]), "INVALID_ARGUMENT")


def unregistered() -> FcmFailure:
    return FcmFailure(404, status_body(404, NOT_FOUND_MSG, [fcm_detail("UNREGISTERED")]), "UNREGISTERED")


def sender_id_mismatch() -> FcmFailure:
    return FcmFailure(403, status_body(403, "SenderId mismatch", [fcm_detail("SENDER_ID_MISMATCH")]),
                      "SENDER_ID_MISMATCH")


def quota_exceeded(message: str, subject: str, description: str, retry_after: int) -> FcmFailure:
    details = [fcm_detail("QUOTA_EXCEEDED"),
               {"@type": QUOTA_FAILURE, "violations": [{"subject": subject, "description": description}]}]
    return FcmFailure(429, status_body(429, message, details), "QUOTA_EXCEEDED",
                      [(b"retry-after", str(max(1, retry_after)).encode())])


def _error_info(reason: str) -> dict[str, object]:
    return {"@type": ERROR_INFO, "reason": reason, "domain": "googleapis.com",
            "metadata": {"method": SEND_METHOD, "service": "fcm.googleapis.com"}}


_WWW_AUTH = [(b"www-authenticate", b'Bearer realm="https://accounts.google.com/"')]


def missing_credential() -> FcmFailure:
    return FcmFailure(401, status_body(401, MISSING_CREDENTIAL_MSG, [_error_info("CREDENTIALS_MISSING")]),
                      "CREDENTIALS_MISSING", list(_WWW_AUTH))


def access_token_expired() -> FcmFailure:
    return FcmFailure(401, status_body(401, INVALID_CREDENTIAL_MSG, [_error_info("ACCESS_TOKEN_EXPIRED")]),
                      "ACCESS_TOKEN_EXPIRED", list(_WWW_AUTH))


def invalid_credential() -> FcmFailure:
    return FcmFailure(401, status_body(401, INVALID_CREDENTIAL_MSG,
                                       [_error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED")]),
                      "ACCESS_TOKEN_TYPE_UNSUPPORTED", list(_WWW_AUTH))


def insufficient_scopes() -> FcmFailure:
    return FcmFailure(403, status_body(403, "Request had insufficient authentication scopes.",
                                       [_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT")]),
                      "ACCESS_TOKEN_SCOPE_INSUFFICIENT")


def project_denied(project: str) -> FcmFailure:
    msg = (f"Permission 'cloudmessaging.messages.create' denied on resource "
           f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).")
    info = {"@type": ERROR_INFO, "reason": "IAM_PERMISSION_DENIED", "domain": "cloudresourcemanager.googleapis.com",
            "metadata": {"permission": "cloudmessaging.messages.create",
                         "resource": f"projects/{project}"}}
    return FcmFailure(403, status_body(403, msg, [info]), "PERMISSION_DENIED")


def not_found_page(path: str) -> FcmFailure:
    """Google's front end answers unknown URLs with an HTML page, not JSON."""
    safe = path.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:200]
    html = ("<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n<title>Error 404 (Not Found)!!1</title>\n"
            f"<p><b>404.</b> <ins>That's an error.</ins>\n<p>The requested URL <code>{safe}</code> was not "
            "found on this server.  <ins>That's all we know.</ins>\n")
    return FcmFailure(404, html.encode(), "NOT_FOUND", [(b"content-type", b"text/html; charset=UTF-8")])


def method_not_allowed(method: str) -> FcmFailure:
    safe = method.replace("<", "&lt;")[:20]
    html = ("<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n<title>Error 405 (Method Not Allowed)!!1</title>\n"
            f"<p><b>405.</b> <ins>That's an error.</ins>\n<p>The request method <code>{safe}</code> is "
            "inappropriate for the URL.  <ins>That's all we know.</ins>\n")
    return FcmFailure(405, html.encode(), "METHOD_NOT_ALLOWED", [(b"content-type", b"text/html; charset=UTF-8")])


def _plain(status: int, message: str, code: str) -> Callable[[], FcmFailure]:
    return lambda: FcmFailure(status, status_body(status, message, [fcm_detail(code)]), code)


# Every error a send can get, by the code a sender's library switches on (FcmError code or, for
# auth, the ErrorInfo reason). Fault injection answers with these, so an injected error is
# byte-for-byte the one the fake sends for the real thing.
BY_CODE: dict[str, Callable[[], FcmFailure]] = {
    "INVALID_ARGUMENT": invalid_token,
    "UNREGISTERED": unregistered,
    "SENDER_ID_MISMATCH": sender_id_mismatch,
    "QUOTA_EXCEEDED": lambda: quota_exceeded(
        "Quota exceeded for quota metric 'Messages' and limit 'Messages per minute'.",
        "projects/pushsim", "Per-project message quota exceeded", 60),
    "UNAVAILABLE": _plain(503, "The service is currently unavailable.", "UNAVAILABLE"),
    "INTERNAL": _plain(500, "Internal error encountered.", "INTERNAL"),
    "UNSPECIFIED_ERROR": _plain(500, "Internal error encountered.", "UNSPECIFIED_ERROR"),
    "THIRD_PARTY_AUTH_ERROR": _plain(401, "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"),
    "ACCESS_TOKEN_EXPIRED": access_token_expired,
    "CREDENTIALS_MISSING": missing_credential,
}


def by_code(code: str, message: str | None = None) -> FcmFailure:
    """The error for `code` (KeyError if FCM has no such code), its message replaced if given."""
    f = BY_CODE[code]()
    if message is not None:
        doc = orjson.loads(f.body)
        doc["error"]["message"] = message
        f.body = orjson.dumps(doc)
    return f
