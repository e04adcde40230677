"""FCM's two topic-management APIs as decisions: request + clock reading → the answer.

- IID (`POST /iid/v1:batchAdd|:batchRemove`, `access_token_auth: true`), ≤ 1000 tokens per call, and
  `GET /iid/info/{token}[?details=true]`;
- FCM v1 registrations, used by firebase-admin ≥ 7.6:
  `POST /v1/projects/{p}/registrations/{token}/topicSubscriptions?topic_name=T` and
  `DELETE /v1/projects/{p}/registrations/{token}/topicSubscriptions/{T}?allow_missing=true`.
A subscribe that already holds answers 409 ALREADY_EXISTS (the Admin SDK counts it a success).
Subscription changes share one per-project rate (TOPIC_QPS per second). The registry of installs is
reached through callbacks; the adapter journals each `TopicAnswer` and writes it to the wire.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, unquote

import orjson

from . import errors, iid
from .errors import FcmFailure
from .oauth import AccessToken, TokenAuthority
from .quota import SlidingWindow
from .send import failure_for
from .topics import TopicRegistry, valid_topic

JSON = (b"content-type", b"application/json; charset=UTF-8")
SUBSCRIPTIONS_RE = re.compile(rb"/v1/projects/([^/?#]+)/registrations/([^/?#]+)/topicSubscriptions(?:/([^/?#]+))?")
IID_OPS = {b"/iid/v1:batchAdd": "add", b"/iid/v1:batchRemove": "remove"}
IID_INFO = b"/iid/info/"
TOPIC_QPS = 3000        # subscription changes per second per project


@dataclass(slots=True)
class TopicAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    service: str             # the API the journal files it under: "fcm" (v1 registrations) | "iid"
    token: str | None        # the target as the journal shows it
    reason: str | None       # None = success


def _failure(f: FcmFailure, token: str | None) -> TopicAnswer:
    hdrs = [] if any(k == b"content-type" for k, _ in f.headers) else [JSON]
    return TopicAnswer(f.status, hdrs + f.headers, f.body, "fcm", token, f.reason)


class TopicApi:
    def __init__(self, authority: TokenAuthority, registry: TopicRegistry, lookup: Callable[[str], int | str],
                 describe: Callable[[int], tuple[bool, str]], project_ids: tuple[str, str]) -> None:
        """`lookup(token)` → install or the FCM error code why not (see send.SendRules.lookup);
        `describe(install)` → (is iOS, its bundle id or package); `project_ids` = (id, number)."""
        self.authority, self.registry, self.lookup, self.describe = authority, registry, lookup, describe
        self.project_ids = project_ids
        self.rate = SlidingWindow(TOPIC_QPS, window=1)
        # A partitioned deployment (pushsim --partition): `elsewhere(token)` names the partition that
        # owns a token this registry does not hold (None: nobody's), `forward(partition, op, topic,
        # tokens)` hands the change to it. The answer for such a token is success: the owner decides
        # later, as FCM's own subscription changes are eventually consistent.
        self.elsewhere: Callable[[str], int | None] | None = None
        self.forward: Callable[[int, str, str, list[str]], None] | None = None

    # FCM v1 registrations -------------------------------------------------------------------
    def subscription(self, m: re.Match[bytes], method: bytes, path: bytes, authorization: bytes | None,
                     now: float) -> TopicAnswer:
        project, token = m.group(1).decode("latin-1"), unquote(m.group(2).decode("latin-1"))
        f = self._check(authorization, project, now)
        if f is not None:
            return _failure(f, token)
        return self._change(method, m, path, token, now)

    def _check(self, authorization: bytes | None, project: str, now: float) -> FcmFailure | None:
        grant = self.authority.check(authorization, now)
        if isinstance(grant, FcmFailure):
            return grant
        if project not in self.project_ids:
            return errors.project_denied(project)
        if self.rate.full(now):
            return errors.quota_exceeded("Topic subscription rate exceeded.", f"project:{project}",
                                         "Topic subscription changes per second", 1)
        return None

    def _change(self, method: bytes, m: re.Match[bytes], path: bytes, token: str, now: float) -> TopicAnswer:
        query = parse_qs(path.partition(b"?")[2].decode("latin-1"))
        if method == b"POST" and m.group(3) is None:
            topic = (query.get("topic_name") or [""])[-1]
        elif method == b"DELETE" and m.group(3) is not None:
            topic = unquote(m.group(3).decode("latin-1"))
        else:
            return _failure(errors.method_not_allowed(method.decode("latin-1")), token)
        if not valid_topic(topic):
            return _failure(errors.invalid_argument("topic_name", "Invalid topic name"), token)
        who = self.lookup(token)
        name = f"projects/{m.group(1).decode('latin-1')}/registrations/{token}/topicSubscriptions/{topic}"
        if isinstance(who, str):
            owner = self._owner_elsewhere(who, token)
            if owner is None:
                return _failure(failure_for(who), token)
            self.rate.add(now)
            op = "add" if method == b"POST" else "remove"
            self.forward(owner, op, topic, [token])            # type: ignore[misc]
            return TopicAnswer(200, [JSON], orjson.dumps({"name": name}) if op == "add" else b"{}", "fcm", token, None)
        self.rate.add(now)
        held = topic in self.registry.topics_of(who)
        if method == b"POST":
            if held:
                return _failure(FcmFailure(409, errors.status_body(409, "Requested entity already exists",
                                                                   status="ALREADY_EXISTS"), "ALREADY_EXISTS"), token)
            if not self.registry.subscribe(topic, who):
                return _failure(errors.invalid_argument(None, "Too many topics for this app instance",
                                                        message="Too many topics", error_code="TOO_MANY_TOPICS"), token)
            return TopicAnswer(200, [JSON], orjson.dumps({"name": name}), "fcm", token, None)
        if not held and (query.get("allow_missing") or [""])[-1].lower() != "true":
            return _failure(FcmFailure(404, errors.status_body(404, errors.NOT_FOUND_MSG), "NOT_FOUND"), token)
        self.registry.unsubscribe(topic, who)
        return TopicAnswer(200, [JSON], b"{}", "fcm", token, None)

    # IID --------------------------------------------------------------------------------------
    def _iid_authorized(self, headers: list[tuple[bytes, bytes]], now: float) -> bool:
        """IID wants a valid OAuth access token *and* the `access_token_auth: true` header."""
        hmap = dict(headers)
        if hmap.get(b"access_token_auth", b"").lower() != b"true":
            return False
        return isinstance(self.authority.check(hmap.get(b"authorization"), now), AccessToken)

    def iid(self, op: str, headers: list[tuple[bytes, bytes]], body: bytes, now: float) -> TopicAnswer:
        if not self._iid_authorized(headers, now):
            return _iid_error(401, "Unauthorized")
        if self.rate.full(now):
            return _iid_error(429, "TooManyRequests", [(b"retry-after", b"1")])
        parsed = iid.parse_batch(body)
        if isinstance(parsed, tuple):
            return _iid_error(parsed[0], parsed[1])
        self.rate.add(now)
        apply: Callable[[str, int], object] = self.registry.subscribe if op == "add" else self.registry.unsubscribe
        results: list[str | None] = []
        away: dict[int, list[str]] = {}
        for token in parsed.tokens:
            who = self.lookup(token)
            owner = self._owner_elsewhere(who, token) if isinstance(who, str) else None
            if owner is not None:
                away.setdefault(owner, []).append(token)
                results.append(None)
            else:
                results.append(_iid_result(apply, parsed.topic, who))
        for owner, tokens in away.items():
            self.forward(owner, op, parsed.topic, tokens)      # type: ignore[misc]
        return TopicAnswer(200, [JSON], iid.results_body(results), "iid", f"/topics/{parsed.topic}", None)

    def _owner_elsewhere(self, code: str, token: str) -> int | None:
        """The partition that owns a token this registry does not know, if it is one of ours."""
        if code != "UNREGISTERED" or self.elsewhere is None or self.forward is None:
            return None
        return self.elsewhere(token)

    def apply(self, op: str, topic: str, tokens: list[str]) -> list[str | None]:
        """A subscription change another partition handed over: the IID per-token results."""
        apply: Callable[[str, int], object] = self.registry.subscribe if op == "add" else self.registry.unsubscribe
        return [_iid_result(apply, topic, self.lookup(token)) for token in tokens]

    def info(self, path: bytes, headers: list[tuple[bytes, bytes]], now: float) -> TopicAnswer:
        """`GET /iid/info/{token}[?details=true]`: what IID knows of an instance, its topics included."""
        if not self._iid_authorized(headers, now):
            return _iid_error(401, "Unauthorized")
        bare, _, query = path.decode("latin-1").partition("?")
        token = unquote(bare[len("/iid/info/"):])
        who = self.lookup(token)
        if isinstance(who, str):
            if who == "INVALID_ARGUMENT":
                return _iid_error(400, "InvalidToken")
            return _iid_error(404, "No information found about this instance id.")
        ios, application = self.describe(who)
        doc: dict[str, object] = {"application": application, "subtype": "",
                                  "scope": "*", "authorizedEntity": self.project_ids[1],
                                  "platform": "IOS" if ios else "ANDROID"}
        if "details=true" in query:
            doc["rel"] = {"topics": {t: {"addDate": "1970-01-01"} for t in sorted(self.registry.topics_of(who))}}
        return TopicAnswer(200, [JSON], orjson.dumps(doc), "iid", token, None)


_IID_CODES = {"UNREGISTERED": "NOT_FOUND", "SENDER_ID_MISMATCH": "PERMISSION_DENIED"}


def _iid_result(apply: Callable[[str, int], object], topic: str, who: int | str) -> str | None:
    """One token's IID batch result: None (done) or the error code."""
    if isinstance(who, str):
        return _IID_CODES.get(who, "INVALID_ARGUMENT")
    return "TOO_MANY_TOPICS" if apply(topic, who) is False else None


def _iid_error(status: int, code: str, extra: list[tuple[bytes, bytes]] | None = None) -> TopicAnswer:
    return TopicAnswer(status, [JSON] + (extra or []), iid.error_body(code), "iid", None, code)
