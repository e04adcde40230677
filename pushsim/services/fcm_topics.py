"""Token resolution and topic management on the FCM port.

Two APIs subscribe installs to topics:
- IID (`POST /iid/v1:batchAdd|:batchRemove`, `access_token_auth: true`), ≤ 1000 tokens per call;
- FCM v1 registrations, used by firebase-admin ≥ 7.6:
  `POST /v1/projects/{p}/registrations/{token}/topicSubscriptions?topic_name=T` and
  `DELETE /v1/projects/{p}/registrations/{token}/topicSubscriptions/{T}?allow_missing=true`.
A subscribe that already holds answers 409 ALREADY_EXISTS (the Admin SDK counts it a success).
"""
from __future__ import annotations

import re
from typing import Callable
from urllib.parse import parse_qs, unquote

import orjson

from device_sim.fleet import Fleet
from device_sim.tokens import TokenCodec
from fake_fcm import errors, iid
from fake_fcm.errors import FcmFailure
from fake_fcm.oauth import AccessToken, TokenAuthority
from fake_fcm.quota import SlidingWindow
from fake_fcm.send import failure_for
from fake_fcm.topics import TopicRegistry, valid_topic
from pushsim.edge.types import Headers, Reply
from pushsim.testbed import Testbed

JSON = (b"content-type", b"application/json; charset=UTF-8")
# Anything shaped like a registration token (instance id, ':', long url-safe tail) that we did not
# issue is a token FCM has forgotten: UNREGISTERED. Other strings are not tokens at all: 400.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{8,}:[A-Za-z0-9_\-]{20,}")
SUBSCRIPTIONS_RE = re.compile(rb"/v1/projects/([^/?#]+)/registrations/([^/?#]+)/topicSubscriptions(?:/([^/?#]+))?")
IID_OPS = {b"/iid/v1:batchAdd": "add", b"/iid/v1:batchRemove": "remove"}
IID_INFO = b"/iid/info/"
TOPIC_QPS = 3000        # subscription changes per second per project


class TokenResolver:
    """Registration token → install index, or why not. Tokens of another project come from `foreign`."""

    CACHE = 1 << 17

    def __init__(self, fleet: Fleet, foreign: TokenCodec) -> None:
        self.fleet, self.foreign = fleet, foreign
        self._known: dict[str, int] = {}    # decoding costs ~50 µs; senders repeat tokens a lot

    def resolve(self, token: str) -> int | str:
        i = self._known.get(token)
        if i is None:
            i = self.fleet.resolve_fcm(token)
            if i is not None:
                if len(self._known) >= self.CACHE:
                    self._known.clear()
                self._known[token] = i
        if i is None:
            if self.foreign.fcm_index(token) is not None:
                return "SENDER_ID_MISMATCH"
            return "UNREGISTERED" if TOKEN_SHAPE.fullmatch(token) else "INVALID_ARGUMENT"
        if i in self.fleet.uninstalled:
            return "UNREGISTERED"
        return i


def reply(f: FcmFailure) -> Reply:
    hdrs = [] if any(k == b"content-type" for k, _ in f.headers) else [JSON]
    return Reply(f.status, hdrs + f.headers, f.body)


class TopicEndpoints:
    def __init__(self, testbed: Testbed, authority: TokenAuthority, registry: TopicRegistry,
                 resolver: TokenResolver, project_ids: tuple[str, str]) -> None:
        self.testbed, self.authority, self.registry = testbed, authority, registry
        self.resolver, self.project_ids = resolver, project_ids
        self.rate = SlidingWindow(TOPIC_QPS, window=1)

    def _journal(self, now: float, service: str, method: bytes, path: str, token: str | None, status: int,
                 reason: str | None) -> None:
        self.testbed.journal.add(now, service, method.decode("latin-1"), path, token, status, reason, None)

    # FCM v1 registrations -------------------------------------------------------------------
    def subscription(self, m: re.Match[bytes], method: bytes, path: bytes, headers: Headers) -> Reply:
        now = self.testbed.now()
        text = path.decode("latin-1")
        project, token = m.group(1).decode("latin-1"), unquote(m.group(2).decode("latin-1"))
        f = self._check(headers, project, now)
        if f is None:
            f = self._change(method, m, path, token, now)
            if isinstance(f, Reply):
                self._journal(now, "fcm", method, text, token, f.status, None)
                return f
        self._journal(now, "fcm", method, text, token, f.status, f.reason)
        return reply(f)

    def _check(self, headers: Headers, project: str, now: float) -> FcmFailure | None:
        auth = next((v for k, v in headers if k == b"authorization"), None)
        grant = self.authority.check(auth, now)
        if isinstance(grant, FcmFailure):
            return grant
        if project not in self.project_ids:
            return errors.project_denied(project)
        if self.rate.full(now):
            f = errors.quota_exceeded("Topic subscription rate exceeded.", f"project:{project}",
                                      "Topic subscription changes per second", 1)
            return f
        return None

    def _change(self, method: bytes, m: re.Match[bytes], path: bytes, token: str, now: float) -> Reply | FcmFailure:
        query = parse_qs(path.partition(b"?")[2].decode("latin-1"))
        if method == b"POST" and m.group(3) is None:
            topic = (query.get("topic_name") or [""])[-1]
        elif method == b"DELETE" and m.group(3) is not None:
            topic = unquote(m.group(3).decode("latin-1"))
        else:
            return errors.method_not_allowed(method.decode("latin-1"))
        if not valid_topic(topic):
            return errors.invalid_argument("topic_name", "Invalid topic name")
        who = self.resolver.resolve(token)
        if isinstance(who, str):
            return failure_for(who)
        self.rate.add(now)
        name = f"projects/{m.group(1).decode('latin-1')}/registrations/{token}/topicSubscriptions/{topic}"
        held = topic in self.registry.topics_of(who)
        if method == b"POST":
            if held:
                return errors.FcmFailure(409, errors.status_body(409, "Requested entity already exists",
                                                                 status="ALREADY_EXISTS"), "ALREADY_EXISTS")
            if not self.registry.subscribe(topic, who):
                return errors.invalid_argument(None, "Too many topics for this app instance",
                                               message="Too many topics", error_code="TOO_MANY_TOPICS")
            return Reply(200, [JSON], orjson.dumps({"name": name}))
        if not held and (query.get("allow_missing") or [""])[-1].lower() != "true":
            return errors.FcmFailure(404, errors.status_body(404, errors.NOT_FOUND_MSG), "NOT_FOUND")
        self.registry.unsubscribe(topic, who)
        return Reply(200, [JSON], b"{}")

    # IID --------------------------------------------------------------------------------------
    def _iid_authorized(self, headers: Headers, now: float) -> bool:
        """IID wants a valid OAuth access token *and* the `access_token_auth: true` header."""
        hmap = dict(headers)
        if hmap.get(b"access_token_auth", b"").lower() != b"true":
            return False
        return isinstance(self.authority.check(hmap.get(b"authorization"), now), AccessToken)

    def iid(self, op: str, path: bytes, headers: Headers, body: bytes) -> Reply:
        now = self.testbed.now()
        text = path.decode("latin-1")
        if not self._iid_authorized(headers, now):
            return self._iid_error(now, text, 401, "Unauthorized")
        if self.rate.full(now):
            return self._iid_error(now, text, 429, "TooManyRequests", [(b"retry-after", b"1")])
        parsed = iid.parse_batch(body)
        if isinstance(parsed, tuple):
            return self._iid_error(now, text, parsed[0], parsed[1])
        self.rate.add(now)
        apply: Callable[[str, int], object] = self.registry.subscribe if op == "add" else self.registry.unsubscribe
        results: list[str | None] = []
        for token in parsed.tokens:
            who = self.resolver.resolve(token)
            if isinstance(who, str):
                results.append({"UNREGISTERED": "NOT_FOUND", "SENDER_ID_MISMATCH": "PERMISSION_DENIED"}.get(
                    who, "INVALID_ARGUMENT"))
            elif apply(parsed.topic, who) is False:
                results.append("TOO_MANY_TOPICS")
            else:
                results.append(None)
        self._journal(now, "iid", b"POST", text, f"/topics/{parsed.topic}", 200, None)
        return Reply(200, [JSON], iid.results_body(results))

    def info(self, path: bytes, headers: Headers) -> Reply:
        """`GET /iid/info/{token}[?details=true]`: what IID knows of an instance, its topics included."""
        now = self.testbed.now()
        text = path.decode("latin-1")
        if not self._iid_authorized(headers, now):
            return self._iid_error(now, text, 401, "Unauthorized", method=b"GET")
        bare, _, query = text.partition("?")
        token = unquote(bare[len("/iid/info/"):])
        who = self.resolver.resolve(token)
        if isinstance(who, str):
            return self._iid_error(now, text, 404 if who != "INVALID_ARGUMENT" else 400,
                                   "No information found about this instance id." if who != "INVALID_ARGUMENT"
                                   else "InvalidToken", method=b"GET")
        fleet = self.testbed.fleet
        ios = fleet.platform_of(who) == "ios"
        app = fleet.app_of(who)
        doc: dict[str, object] = {"application": app.bundle_id if ios else app.package, "subtype": "",
                                  "scope": "*", "authorizedEntity": self.project_ids[1],
                                  "platform": "IOS" if ios else "ANDROID"}
        if "details=true" in query:
            doc["rel"] = {"topics": {t: {"addDate": "1970-01-01"} for t in sorted(self.registry.topics_of(who))}}
        self._journal(now, "iid", b"GET", text, token, 200, None)
        return Reply(200, [JSON], orjson.dumps(doc))

    def _iid_error(self, now: float, path: str, status: int, code: str,
                   extra: list[tuple[bytes, bytes]] | None = None, method: bytes = b"POST") -> Reply:
        self._journal(now, "iid", method, path, None, status, code)
        return Reply(status, [JSON] + (extra or []), iid.error_body(code))
