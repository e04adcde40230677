"""One FCM HTTP v1 send (project, authorization, body) + a clock reading → accepted message or error.

The check order is FCM's: auth, project, project quota, message validation, target resolution,
per-device quota, then the message name. Client errors (4xx but 429) after auth and project use up
project quota too; auth, project and quota failures do not. Sans-IO: the registry of installs is
reached through the callbacks in `SendRules`; the quota windows and topic registry are the only
state, and they live in fake_fcm.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from . import errors
from .errors import FcmFailure
from .message import SendRequest, token_of, validate
from .oauth import AccessToken, TokenAuthority
from .quota import Quotas
from .topics import TopicRegistry

_US_LOW, _US_HIGH = 10**15, 10**16
# Anything shaped like a registration token (instance id, ':', long url-safe tail) that the registry
# does not know is a token FCM has forgotten: UNREGISTERED. Other strings are not tokens at all: 400.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{8,}:[A-Za-z0-9_\-]{20,}")


class MessageNamer:
    """`projects/<p>/messages/0:<16-digit microseconds><suffix>`, strictly increasing per server.

    Several processes serving one project take disjoint lanes (microseconds ≡ lane mod lanes), so
    their names never collide."""

    def __init__(self, project_id: str) -> None:
        self._suffix = "%" + hashlib.blake2b(project_id.encode(), digest_size=4).hexdigest() * 2
        self._prefixes: dict[str, str] = {}   # project → "projects/<project>/messages/0:"
        self._last_us = 0
        self._lane, self._lanes = 0, 1

    def set_lane(self, lane: int, lanes: int) -> None:
        if not 0 <= lane < lanes:
            raise ValueError(f"lane {lane} of {lanes}")
        self._lane, self._lanes = lane, lanes

    def name(self, project: str, now: float) -> str:
        us = int(now * 1_000_000)
        if us <= self._last_us:
            us = self._last_us + 1
        if self._lanes != 1:
            us += (self._lane - us) % self._lanes
        self._last_us = us
        prefix = self._prefixes.get(project)
        if prefix is None:
            prefix = f"projects/{project}/messages/0:"
            if len(self._prefixes) < 64:              # keyed by client input: bounded
                self._prefixes[project] = prefix
        if _US_LOW <= us < _US_HIGH:          # 16 digits already: every date from 2001 to 2286
            return prefix + str(us) + self._suffix
        return f"{prefix}{us % 10**16:016d}{self._suffix}"


@dataclass(slots=True)
class SendRules:
    """What a send is checked against. The callbacks are the registry of installs (the fleet):
    `lookup(token)` → install index, or the FCM error code why not (UNREGISTERED, SENDER_ID_MISMATCH,
    INVALID_ARGUMENT); `lookup_fid(fid)` → install or None; `reachable(install)` → FCM still has a
    registration for it; `package_of(install)` → its Android package (None on iOS)."""
    authority: TokenAuthority
    project_id: str
    project_number: str
    quotas: Quotas
    topics: TopicRegistry
    namer: MessageNamer
    lookup: Callable[[str], int | str]
    lookup_fid: Callable[[str], int | None]
    reachable: Callable[[int], bool]
    package_of: Callable[[int], str | None]


class SendDecision:
    """The outcome of one send. `failure` None means accepted: `name` is the message name, and the
    message goes to `install` (a token or FID target) or to every one of `installs` (a topic or
    condition; maybe none). `token` is the target as the journal shows it."""
    __slots__ = ("failure", "token", "request", "name", "install", "installs", "sender")

    def __init__(self, failure: FcmFailure | None, token: str | None, request: SendRequest | None = None,
                 name: str | None = None, install: int = -1, installs: list[int] | None = None) -> None:
        self.failure, self.token, self.request, self.name = failure, token, request, name
        self.install, self.installs = install, installs
        self.sender: str | None = None   # the service account behind the access token, once known


def unknown_token_code(token: str) -> str:
    """The error code for a token no install has (nor another project): see TOKEN_SHAPE."""
    return "UNREGISTERED" if TOKEN_SHAPE.fullmatch(token) else "INVALID_ARGUMENT"


def failure_for(code: str) -> FcmFailure:
    """The answer to a token the registry does not know (see `SendRules.lookup`)."""
    if code == "SENDER_ID_MISMATCH":
        return errors.sender_id_mismatch()
    return errors.unregistered() if code == "UNREGISTERED" else errors.invalid_token()


def decide(rules: SendRules, project: str, authorization: bytes | None, body: bytes, now: float) -> SendDecision:
    grant = rules.authority.check(authorization, now)
    if isinstance(grant, FcmFailure):
        return SendDecision(grant, None)
    d = _decide(rules, grant, project, body, now)
    d.sender = grant.client_email
    return d


def _decide(rules: SendRules, grant: AccessToken, project: str, body: bytes, now: float) -> SendDecision:
    if project != rules.project_id and project != rules.project_number:
        return SendDecision(errors.project_denied(project), None)
    quotas = rules.quotas
    wait = quotas.project_wait(now)
    if wait is not None:
        number = rules.project_number
        return SendDecision(errors.quota_exceeded(
            f"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of "
            f"service 'fcm.googleapis.com' for consumer 'project_number:{number}'.",
            f"project_number:{number}", "Send requests per minute", wait), None)
    req = validate(body)
    if isinstance(req, FcmFailure):
        quotas.count(now)
        return SendDecision(req, token_of(body))
    if req.target not in ("token", "fid"):
        installs = sorted(rules.topics.subscribers(req.value)) if req.target == "topic" else \
            rules.topics.match(req.condition)          # type: ignore[arg-type]
        name = rules.namer.name(project, now)
        quotas.count(now)
        return SendDecision(None, f"/topics/{req.value}" if req.target == "topic" else req.value,
                            req, name, installs=installs)
    i = _resolve(rules, req)
    if isinstance(i, FcmFailure):
        quotas.count(now)
        return SendDecision(i, req.value)
    wait2 = quotas.device_wait(i, now) if req.validate_only else quotas.device_admit(i, now)
    if wait2 is not None:
        secs, per = wait2
        return SendDecision(errors.quota_exceeded(
            "Message rate exceeded for the target device.", f"device:{req.value[:22]}",
            f"Messages per device per {per}", secs), req.value)
    name = rules.namer.name(project, now)
    quotas.project.add(now)
    return SendDecision(None, req.value, req, name, install=i)


def _resolve(rules: SendRules, req: SendRequest) -> int | FcmFailure:
    if req.target == "fid":
        i = rules.lookup_fid(req.value)
        if i is None:
            return errors.unregistered()
    else:
        who = rules.lookup(req.value)
        if isinstance(who, str):
            return failure_for(who)
        i = who
    if not rules.reachable(i):
        return errors.unregistered()
    if req.restricted_package:
        package = rules.package_of(i)
        if package is not None and package != req.restricted_package:
            return errors.invalid_argument("message.android.restricted_package_name",
                                           "Registration token's package name does not match restricted_package_name")
    return i
