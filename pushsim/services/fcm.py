"""Fake FCM on one port: HTTP v1 sends, the OAuth2 token endpoint and IID topic management.

Glue only: the rules live in `fake_fcm` (sans-IO); this module resolves tokens against the fleet,
applies quotas on protocol time (`testbed.now()`), journals every request and hands accepted
messages to the dispatcher, one `Notification` per reached install.

Tokens of another project (SENDER_ID_MISMATCH) are the tokens of a second `TokenCodec` keyed by
`"<seed>/foreign-project"`: `FcmService.foreign_token(i)` hands them out.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re

import orjson

from device_sim.fleet import IOS
from device_sim.notification import Notification
from device_sim.tokens import TokenCodec
from fake_fcm import delivery, errors
from fake_fcm.errors import FcmFailure
from fake_fcm.message import SendRequest, validate
from fake_fcm.oauth import AccessToken, TokenAuthority
from fake_fcm.quota import Quotas
from fake_fcm.topics import TopicRegistry
from pushsim.testbed import Testbed
from pushsim.edge.types import ConnInfo, Headers, Reply

from .fcm_topics import IID_INFO, IID_OPS, SUBSCRIPTIONS_RE, TokenResolver, TopicEndpoints, failure_for, reply
from .fcm_data import PATH_RE as DELIVERY_DATA_RE
from .fcm_data import FcmDataApi
from .oauth import TOKEN_PATHS, OAuthService

log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json; charset=UTF-8")
_SEND_RE = re.compile(rb"/v1/projects/([^/?#]+)/messages:send")
_SEND_PATHS = 64         # distinct send paths remembered (a path names its project; few per server)
_US_LOW, _US_HIGH = 10**15, 10**16
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
        self.topic_api = TopicEndpoints(testbed, authority, self.topics, self.resolver,
                                        (self.project_id, self.project_number))
        self.data_api = FcmDataApi(testbed, authority, (self.project_id, self.project_number))
        self._suffix = "%" + hashlib.blake2b(self.project_id.encode(), digest_size=4).hexdigest() * 2
        self._prefixes: dict[str, str] = {}   # project → "projects/<project>/messages/0:"
        self._last_us = 0
        # Send paths already matched (raw :path → project, path text): the hot route is one dict lookup.
        self._send_paths: dict[bytes, tuple[str, str]] = {}
        self._fids: dict[str, int] = {}
        self._faults = getattr(testbed, "faults", None)   # the fault-injection hook, when the testbed has one
        self._lane, self._lanes = 0, 1
        hooks = getattr(testbed, "reset_hooks", None)
        if hooks is not None:
            hooks.append(self.reset)

    # Service protocol -------------------------------------------------------------------------
    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return 1000

    def closing_reason(self) -> bytes:
        return b'{"reason":"Shutdown"}'

    def reset(self) -> None:
        """`Testbed.reset()` (POST /reset) forgot the traffic: rate-limit history and topic
        subscriptions go with it, so each test starts from a clean FCM."""
        self.topics.reset()
        self.quotas.reset()

    def set_name_lane(self, lane: int, lanes: int) -> None:
        """Message names from several processes must not collide: this one only takes microsecond
        values ≡ lane (mod lanes)."""
        if not 0 <= lane < lanes:
            raise ValueError(f"lane {lane} of {lanes}")
        self._lane, self._lanes = lane, lanes

    def foreign_token(self, index: int) -> str:
        """A registration token that belongs to another Firebase project (sends get SENDER_ID_MISMATCH)."""
        return self.foreign.fcm_token(index)

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        faults = self._faults
        if faults is not None and faults.active:
            r = faults.intercept("fcm", self, conn, method, path, headers, body)
            if r is not None:
                return r
        try:
            if method == b"POST":
                send = self._send_paths.get(path)
                if send is not None:
                    return self._send(send[0], send[1], headers, body)
            return self._route(conn, method, path, headers, body)
        except Exception:                     # a bug must cost one 500, never the connection
            log.exception("FCM service failed on %s %r", method, path[:200])
            return self._reply(errors.FcmFailure(500, errors.status_body(500, "Internal error encountered."),
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
            return self._send(project, text, headers, body)
        if bare in TOKEN_PATHS:
            if method != b"POST":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            return self.oauth.handle(conn.tls, text, headers, body)
        op = IID_OPS.get(bare)
        if op is not None:
            if method != b"POST":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            return self.topic_api.iid(op, path, headers, body)
        m = SUBSCRIPTIONS_RE.fullmatch(bare)
        if m is not None:
            return self.topic_api.subscription(m, method, path, headers)
        m = DELIVERY_DATA_RE.fullmatch(bare)
        if m is not None:
            return self.data_api.handle(m, method, path, headers)
        if bare.startswith(IID_INFO) and len(bare) > len(IID_INFO):
            if method != b"GET":
                return self._reply(errors.method_not_allowed(method.decode("latin-1")))
            return self.topic_api.info(path, headers)
        return self._reply(errors.not_found_page(text))

    _reply = staticmethod(reply)

    # sends ------------------------------------------------------------------------------------
    def _fail(self, now: float, path: str, token: str | None, f: FcmFailure, counts: bool) -> Reply:
        if counts:                            # client errors (4xx but 429) use up project quota too
            self.quotas.count(now)
        self.testbed.ledger.reject(f.reason)
        self.testbed.journal.add(now, "fcm", "POST", path, token, f.status, f.reason, None)
        return self._reply(f)

    def _auth(self, headers: Headers, now: float) -> AccessToken | FcmFailure:
        auth = None
        for name, value in headers:
            if name == b"authorization":
                auth = value
                break
        return self.authority.check(auth, now)

    def _message_name(self, project: str, now: float) -> str:
        us = int(now * 1_000_000)
        if us <= self._last_us:
            us = self._last_us + 1
        if self._lanes != 1:
            us += (self._lane - us) % self._lanes
        self._last_us = us
        prefix = self._prefixes.get(project)
        if prefix is None:
            prefix = self._prefixes[project] = f"projects/{project}/messages/0:"
        if _US_LOW <= us < _US_HIGH:          # 16 digits already: every date from 2001 to 2286
            return prefix + str(us) + self._suffix
        return f"{prefix}{us % 10**16:016d}{self._suffix}"

    def _send(self, project: str, path: str, headers: Headers, body: bytes) -> Reply:
        now = self.testbed.now()
        grant = self._auth(headers, now)
        if isinstance(grant, FcmFailure):
            return self._fail(now, path, None, grant, False)
        if project != self.project_id and project != self.project_number:
            return self._fail(now, path, None, errors.project_denied(project), False)
        wait = self.quotas.project_wait(now)
        if wait is not None:
            return self._fail(now, path, None, errors.quota_exceeded(
                f"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of "
                f"service 'fcm.googleapis.com' for consumer 'project_number:{self.project_number}'.",
                f"project_number:{self.project_number}", "Send requests per minute", wait), False)
        req = validate(body)
        if isinstance(req, FcmFailure):
            return self._fail(now, path, _token_of(body), req, True)
        if req.target in ("token", "fid"):
            return self._send_one(project, path, req, now, body)
        installs = sorted(self.topics.subscribers(req.value)) if req.target == "topic" else \
            self.topics.match(req.condition)          # type: ignore[arg-type]
        name = self._message_name(project, now)
        self.quotas.count(now)
        if not req.validate_only and installs:
            self._fan_out(req, installs, 0, name, now, body)
        self.testbed.journal.add(now, "fcm", "POST", path, f"/topics/{req.value}"
                               if req.target == "topic" else req.value, 200, None, name)
        return Reply(200, [_JSON], b'{"name":"%s"}' % name.encode())

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

    def _resolve(self, req: SendRequest) -> int | FcmFailure:
        fleet = self.testbed.fleet
        if req.target == "fid":
            i = self._fid_index(req.value)
            if i is None:
                return errors.unregistered()
        else:
            who = self.resolver.resolve(req.value)
            if isinstance(who, str):
                return failure_for(who)
            i = who
        if i in fleet.uninstalled or (fleet.platform[i] == IOS and not fleet.fcm_ios[i]):
            return errors.unregistered()
        if req.restricted_package and fleet.platform[i] != IOS and fleet.app_of(i).package != req.restricted_package:
            return errors.invalid_argument("message.android.restricted_package_name",
                                           "Registration token's package name does not match restricted_package_name")
        return i

    def _send_one(self, project: str, path: str, req: SendRequest, now: float, body: bytes) -> Reply:
        i = self._resolve(req)
        if isinstance(i, FcmFailure):
            return self._fail(now, path, req.value, i, True)
        if req.validate_only:
            wait = self.quotas.device_wait(i, now)
        else:
            wait = self.quotas.device_admit(i, now)
        if wait is not None:
            secs, per = wait
            return self._fail(now, path, req.value, errors.quota_exceeded(
                "Message rate exceeded for the target device.", f"device:{req.value[:22]}",
                f"Messages per device per {per}", secs), False)
        name = self._message_name(project, now)
        self.quotas.project.add(now)
        note = None
        if not req.validate_only:
            note = self._submit(req, i, req.value if req.target == "token" else self.testbed.fleet.fcm_token(i),
                                name, now, body)
        self.testbed.journal.add(now, "fcm", "POST", path, req.value, 200, None, name, note)
        return Reply(200, [_JSON], b'{"name":"%s"}' % name.encode())

    def _submit(self, req: SendRequest, install: int, token: str, name: str, now: float,
                payload: bytes) -> Notification:
        d = delivery.for_apns(req, now) if self.testbed.fleet.platform[install] == IOS else \
            delivery.for_android(req, now)
        note = Notification("fcm", token, install, name, now, d.push_type, d.priority,
                            payload, d.expiration, d.collapse_id, d.content_available)
        self.testbed.dispatcher.submit(note)
        return note

    def _fid_index(self, fid: str) -> int | None:
        # The FID is the instance-id half of the registration token; built lazily, extended as the fleet grows.
        fleet = self.testbed.fleet
        for i in range(len(self._fids), len(fleet)):
            self._fids[fleet.fcm_token(i).partition(":")[0]] = i
        return self._fids.get(fid)


def _token_of(body: bytes) -> str | None:
    """Best effort, error path only: the target token of a rejected body, so /journal?token= finds it."""
    try:
        msg = orjson.loads(body).get("message")
        token = msg.get("token") or msg.get("fid")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
    return token if isinstance(token, str) else None


def build_fcm_service(testbed: Testbed, creds: object) -> FcmService:
    """The FCM service for `PushSim`: the service account from the state dir is the one trusted signer.

    `creds` is a `pushsim.credentials.Credentials` (its `fcm_service_account` path is read here).
    """
    from fake_fcm.oauth import ServiceAccount

    authority = TokenAuthority(ttl=lambda: testbed.config.access_token_ttl)
    authority.add_account(ServiceAccount.from_file(getattr(creds, "fcm_service_account")))
    return FcmService(testbed, authority)
