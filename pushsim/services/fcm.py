"""Fake FCM on one port: HTTP v1 sends, the OAuth2 token endpoint and IID topic management.

Glue only: the rules live in `fake_fcm` (sans-IO); this module resolves tokens against the fleet,
applies quotas on protocol time (`testbed.now()`), journals every request and hands accepted
messages to the dispatcher, one `Notification` per reached install.

Tokens of another project (SENDER_ID_MISMATCH) are the tokens of a second `TokenCodec` keyed by
`"<seed>/foreign-project"`: `FcmService.foreign_token(i)` hands them out.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import Callable

from device_sim.fleet import IOS
from device_sim.notification import Notification
from device_sim.tokens import TokenCodec
from fake_fcm import delivery, errors
from fake_fcm.errors import FcmFailure
from fake_fcm.message import SendRequest, validate
from fake_fcm.oauth import TokenAuthority
from fake_fcm.quota import Quotas
from fake_fcm.send import MessageNamer, SendRules, decide
from fake_fcm.topic_api import IID_INFO, IID_OPS, SUBSCRIPTIONS_RE, TopicAnswer, TopicApi
from fake_fcm.topics import TopicRegistry
from pushsim.edge.http1 import MAX_BODY, error_reply
from pushsim.edge.types import ConnInfo, Headers, Reply
from pushsim.testbed import Testbed

from .fcm_data import PATH_RE as DELIVERY_DATA_RE
from .fcm_data import FcmDataApi
from .fcm_tokens import TokenResolver, reply
from .oauth import TOKEN_PATHS, OAuthService

log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json; charset=UTF-8")
_SEND_RE = re.compile(rb"/v1/projects/([^/?#]+)/messages:send")
_SEND_PATHS = 64         # distinct send paths remembered (a path names its project; few per server)
FANOUT_CHUNK = 2000      # installs per event-loop turn: a million-subscriber topic must not stall the port


class FcmService:
    def __init__(self, testbed: Testbed, authority: TokenAuthority) -> None:
        self.testbed = testbed
        self.authority = authority
        self.oauth = OAuthService(testbed, authority)
        cfg = testbed.config
        self.project_id, self.project_number = cfg.project_id, cfg.project_number
        self.topics = TopicRegistry()
        self.quotas = Quotas(cfg.fcm_project_quota, cfg.fcm_device_quota_minute, cfg.fcm_device_quota_hour)
        self.foreign = TokenCodec(f"{cfg.seed}/foreign-project")
        self.resolver = TokenResolver(testbed.fleet, self.foreign)
        self.topic_api = TopicApi(authority, self.topics, self.resolver.resolve, self._describe,
                                  (self.project_id, self.project_number))
        self._conn_ids = itertools.count(1)
        self.data_api = FcmDataApi(testbed, authority, (self.project_id, self.project_number))
        self.namer = MessageNamer(self.project_id)
        fleet = testbed.fleet
        # Per-send facts read from the fleet's arrays inline (slot i // N; N = 1 unless partitioned):
        # a Fleet method call per send would cost more than the lookup.
        platform, fcm_ios, n = fleet.platform, fleet.fcm_ios, fleet.part_n
        self._platform, self._part_n = platform, n
        self.rules = SendRules(authority, self.project_id, self.project_number, self.quotas, self.topics,
                               self.namer, self.resolver.resolve, self._fid_index,
                               lambda i: i not in fleet.uninstalled and (platform[i // n] != IOS or fcm_ios[i // n]),
                               lambda i: None if platform[i // n] == IOS else fleet.app_of(i).package)
        # Send paths already matched (raw :path → project, path text): the hot route is one dict lookup.
        self._send_paths: dict[bytes, tuple[str, str]] = {}
        self._fids: dict[str, int] = {}
        # Partitioned (pushsim/partition.py): called with (body, message name, now) for each accepted
        # topic/condition message, to hand it to the other partitions' instances.
        self.hand_off: Callable[[bytes, str, float], None] | None = None
        testbed.reset_hooks.append(self.reset)

    # Service protocol -------------------------------------------------------------------------
    def open(self, conn: ConnInfo) -> object:
        return FcmConnection(next(self._conn_ids))

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return 1000

    def closing_reason(self) -> bytes:
        return b'{"reason":"Shutdown"}'

    def request_body_limit(self, conn: ConnInfo) -> int:
        return MAX_BODY                       # the same cap over HTTP/2 as over HTTP/1.1

    def body_too_large(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                       prefix: bytes) -> Reply:
        # Google's front end refuses it before FCM sees it: 413 and its HTML error page.
        return error_reply(413)

    def reset(self) -> None:
        """`Testbed.reset()` (POST /reset) forgot the traffic: rate-limit history and topic
        subscriptions go with it, so each test starts from a clean FCM."""
        self.topics.reset()
        self.quotas.reset()

    def set_name_lane(self, lane: int, lanes: int) -> None:
        """Message names from several processes must not collide: this one only takes microsecond
        values ≡ lane (mod lanes)."""
        self.namer.set_lane(lane, lanes)

    def number_connections(self, lane: int, lanes: int) -> None:
        """Connection ids from several processes must not collide (the report groups by connection):
        this one takes ids ≡ lane + 1 (mod lanes)."""
        self._conn_ids = itertools.count(lane + 1, lanes)

    def foreign_token(self, index: int) -> str:
        """A registration token that belongs to another Firebase project (sends get SENDER_ID_MISMATCH)."""
        return self.foreign.fcm_token(index)

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        try:
            if method == b"POST":
                send = self._send_paths.get(path)
                if send is not None:
                    return self._send(conn, send[0], send[1], headers, body)
            return self._route(conn, method, path, headers, body)
        except Exception:                     # a bug must cost one 500, never the connection
            log.exception("FCM service failed on %s %r", method, path[:200])
            return self._reply(FcmFailure(500, errors.status_body(500, "Internal error encountered."),
                                                 "INTERNAL"))

    def _route(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        bare = path.split(b"?", 1)[0]
        m = _SEND_RE.fullmatch(bare)
        text = path.decode("latin-1")
        if m is not None:
            if method != b"POST":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            project = m.group(1).decode("latin-1")
            if len(self._send_paths) < _SEND_PATHS:
                self._send_paths[path] = (project, text)
            return self._send(conn, project, text, headers, body)
        if bare in TOKEN_PATHS:
            if method != b"POST":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            return self.oauth.handle(conn.tls, text, headers, body)
        op = IID_OPS.get(bare)
        if op is not None:
            if method != b"POST":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            now = self.testbed.now()
            return self._answer(now, method, text, self.topic_api.iid(op, headers, body, now))
        m = SUBSCRIPTIONS_RE.fullmatch(bare)
        if m is not None:
            now = self.testbed.now()
            return self._answer(now, method, text,
                                self.topic_api.subscription(m, method, path, _authorization(headers), now))
        m = DELIVERY_DATA_RE.fullmatch(bare)
        if m is not None:
            return self.data_api.handle(m, method, path, headers)
        if bare.startswith(IID_INFO) and len(bare) > len(IID_INFO):
            if method != b"GET":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            now = self.testbed.now()
            return self._answer(now, method, text, self.topic_api.info(path, headers, now))
        return self._reply(errors.not_found_page(text))

    _reply = staticmethod(reply)

    def _answer(self, now: float, method: bytes, path: str, a: TopicAnswer) -> Reply:
        self.testbed.journal.add(now, a.service, method.decode("latin-1"), path, a.token, a.status, a.reason, None)
        return Reply(a.status, a.headers, a.body)

    def _describe(self, install: int) -> tuple[bool, str]:
        fleet = self.testbed.fleet
        ios = fleet.platform_of(install) == "ios"
        app = fleet.app_of(install)
        return ios, app.bundle_id if ios else app.package

    # sends ------------------------------------------------------------------------------------
    def _send(self, conn: ConnInfo, project: str, path: str, headers: Headers, body: bytes) -> Reply:
        testbed = self.testbed
        now = testbed.now()
        d = decide(self.rules, project, _authorization(headers), body, now)
        f = d.failure
        cid = getattr(conn.state, "id", None)
        if f is not None:
            testbed.ledger.reject(f.reason)
            testbed.journal.add(now, "fcm", "POST", path, d.token, f.status, f.reason, None, None, cid,
                                d.sender, headers, body, _retry_after(f.headers))
            return self._reply(f)
        req, name = d.request, d.name
        assert req is not None and name is not None
        note = None
        if d.installs is not None:
            if not req.validate_only and d.installs:
                self._fan_out(req, d.installs, 0, name, now, body)
            if not req.validate_only and self.hand_off is not None:
                self.hand_off(body, name, now)
        elif not req.validate_only:
            i = d.install
            note = self._submit(req, i, req.value if req.target == "token" else testbed.fleet.fcm_token(i),
                                name, now, body)
        testbed.journal.add(now, "fcm", "POST", path, d.token, 200, None, name, note, cid, d.sender, headers,
                            None if note is not None else body)
        return Reply(200, [_JSON], b'{"name":"%s"}' % name.encode())

    def deliver_handed_off(self, body: bytes, name: str, now: float) -> int:
        """A topic/condition message another partition accepted (as `name`, at `now`): fan it out to
        this instance's subscribers. Returns how many installs it reaches; ValueError for a body
        that is not a topic or condition message."""
        req = validate(body)
        if isinstance(req, FcmFailure) or req.target not in ("topic", "condition"):
            raise ValueError("not a valid topic or condition message")
        installs = sorted(self.topics.subscribers(req.value)) if req.target == "topic" else \
            self.topics.match(req.condition)            # type: ignore[arg-type]
        if not req.validate_only and installs:
            self._fan_out(req, installs, 0, name, now, body)
        return len(installs)

    def _fan_out(self, req: SendRequest, installs: list[int], start: int, name: str, now: float,
                 body: bytes) -> None:
        """Hand a topic/condition message to its installs, FANOUT_CHUNK per loop turn (never blocking long)."""
        fleet = self.testbed.fleet
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:                  # no loop (sans-IO tests, tools): all at once
            loop = None
        while start < len(installs):
            end = min(start + FANOUT_CHUNK, len(installs))
            for i in installs[start:end]:
                if i not in fleet.uninstalled:
                    self._submit(req, i, fleet.fcm_token(i), name, now, body)
            start = end
            if loop is not None and start < len(installs):
                loop.call_soon(self._fan_out, req, installs, start, name, now, body)
                return

    def _submit(self, req: SendRequest, install: int, token: str, name: str, now: float,
                payload: bytes) -> Notification:
        d = delivery.for_apns(req, now) if self._platform[install // self._part_n] == IOS else \
            delivery.for_android(req, now)
        note = Notification("fcm", token, install, name, now, d.push_type, d.priority,
                            payload, d.expiration, d.collapse_id, d.content_available)
        self.testbed.dispatcher.submit(note)
        return note

    def _fid_index(self, fid: str) -> int | None:
        # The FID is the instance-id half of the registration token; built lazily over the installs
        # this fleet owns, extended as the fleet grows.
        fleet = self.testbed.fleet
        for slot in range(len(self._fids), fleet.owned_count):
            i = fleet.slot_to_index(slot)
            self._fids[fleet.fcm_token(i).partition(":")[0]] = i
        return self._fids.get(fid)


class FcmConnection:
    """Per-connection state: the id the journal shows (a sender's connection reuse is a report rule)."""
    __slots__ = ("id",)

    def __init__(self, conn_id: int) -> None:
        self.id = conn_id


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    for name, value in headers:
        if name == b"retry-after" and value.isdigit():
            return float(int(value))
    return None


def build_fcm_service(testbed: Testbed, creds: object) -> FcmService:
    """The FCM service for `PushSim`: the service account from the state dir is the one trusted signer.

    `creds` is a `pushsim.credentials.Credentials` (its `fcm_service_account` path is read here).
    """
    from fake_fcm.oauth import ServiceAccount

    authority = TokenAuthority(ttl=lambda: testbed.config.access_token_ttl)
    authority.add_account(ServiceAccount.from_file(getattr(creds, "fcm_service_account")))
    return FcmService(testbed, authority)


def _authorization(headers: Headers) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            return value
    return None
