"""The fake APNs as an edge Service: fake_apns rules + fleet + dispatcher + journal + ledger.

Hot path: one header scan, dict lookups, one Notification per accepted request. Everything that
repeats (error bodies, header tuples, verified JWTs, token → install) is computed once.
"""
from __future__ import annotations

import itertools
import logging

from cryptography import x509

from device_sim.journal import Goaway
from device_sim.notification import Notification
from fake_apns import pushtypes, reasons
from fake_apns.auth import KeyStore
from fake_apns.connection import ApnsConnection, initial_max_streams, next_max_streams
from fake_apns.ids import IdGenerator, is_uuid
from fake_apns.provider import Rules, Target, decide
from pushsim.edge.types import ConnInfo, Headers, Reply
from pushsim.testbed import Testbed

log = logging.getLogger(__name__)

_APNS_ID = b"apns-id"
_UNIQUE_ID = b"apns-unique-id"
_JSON_CT = reasons.JSON_CT
_LOOKUP_CACHE_LIMIT = 200_000
_MISS = object()


class ApnsService:
    def __init__(self, testbed: Testbed, keys: KeyStore, *, env_key_reason: str | None = None,
                 wedge_on_expired: bool | None = None) -> None:
        cfg = testbed.config
        self.testbed, self.keys = testbed, keys
        self._now = testbed.now
        self._ledger, self._journal, self._dispatcher = testbed.ledger, testbed.journal, testbed.dispatcher
        self._fleet = testbed.fleet
        self.limit = cfg.max_streams
        self.throttle = cfg.throttle_on_reject
        self.sandbox = cfg.environment == "sandbox"
        # Apple documents BadEnvironmentKeyIdInToken but sends BadEnvironmentKeyInToken; "doc" picks
        # the documented spelling for clients written against the docs.
        spelling = env_key_reason or cfg.extra.get("apns_env_key_reason", "wire")
        self._env_key = reasons.ENV_KEY_DOC if spelling in ("doc", reasons.ENV_KEY_DOC) else reasons.ENV_KEY_WIRE
        if wedge_on_expired is None:
            # pushy: after ExpiredProviderToken the server "wedges" the connection; off by default.
            wedge_on_expired = cfg.extra.get("apns_wedge_on_expired", "").lower() in ("1", "true", "yes")
        self.rules = Rules(keys, self._lookup, cfg.environment, cfg.mismatch_mode, wedge_on_expired)
        self._ids = IdGenerator()
        self._unique_ids = IdGenerator()
        self._targets: dict[str, Target | None] = {}
        self._conn_ids = itertools.count(1)

    def number_connections(self, lane: int, lanes: int) -> None:
        """Connection ids from several processes must not collide (the report groups by connection):
        this one takes ids ≡ lane + 1 (mod lanes)."""
        self._conn_ids = itertools.count(lane + 1, lanes)

    # Service protocol -----------------------------------------------------------------------
    def open(self, conn: ConnInfo) -> ApnsConnection:
        state = ApnsConnection(conn.peer_cert_der, self.limit, next(self._conn_ids))
        if conn.peer_cert_der:
            state.sender = _subject(conn.peer_cert_der)
        return state

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return initial_max_streams(conn.peer_cert_der is not None, self.limit)

    def closing_reason(self) -> bytes:
        return reasons.BODY["Shutdown"]

    def idle_reason(self) -> bytes:
        return reasons.BODY["IdleTimeout"]

    # GOAWAYs (optional contract, pushsim.edge.conninfo): rare, once per connection, never per request.
    def goaway_sent(self, conn: ConnInfo, last_stream_id: int, code: int, debug: bytes) -> None:
        """The engine sent GOAWAY on this connection: journal it once (the first one; a later one
        may only lower last-stream-id), for the report's apns.goaway-ignored rule."""
        state = self._state(conn)
        g = state.goaway
        if isinstance(g, Goaway):
            g.last_stream_id = min(g.last_stream_id, last_stream_id)
            return
        state.goaway = self._journal.goaway(self._now(), "apns", state.id, state.sender, last_stream_id, code, debug)

    def stream_after_goaway(self, conn: ConnInfo, stream_id: int) -> None:
        """The client opened a stream above our GOAWAY's last-stream-id (ignored on the wire)."""
        g = getattr(conn.state, "goaway", None)
        if isinstance(g, Goaway):
            g.stream_after(self._now())

    def request_body_limit(self, conn: ConnInfo) -> int:
        # The largest payload APNs takes (VoIP); every body up to it gets the full rules.
        return pushtypes.VOIP_PAYLOAD_LIMIT

    def body_too_large(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                       prefix: bytes) -> Reply:
        # `prefix` is past every payload limit, so the rules answer PayloadTooLarge (or a reason
        # they check first: the answer is the one the whole body would have had).
        return self.handle(conn, method, path, headers, prefix)

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        try:
            return self._handle(conn, method, path, headers, body)
        except Exception:       # the contract: never raise; the sender sees what APNs would send
            log.exception("fake APNs failed on %r %r", method, path)
            return self._internal_error(method, path, headers)

    # internals ------------------------------------------------------------------------------
    def _lookup(self, token: str) -> Target | None:
        # An install's app and environment never change, so its Target is cached by token; only
        # the uninstalled mark can change (control API), and it is checked on every request.
        targets = self._targets
        target = targets.get(token, _MISS)
        if target is _MISS:
            fleet = self._fleet
            i = fleet.resolve_apns(token)
            target = None if i is None else Target(i, fleet.app_of(i).bundle_id, fleet.environment_of(i), None)
            if len(targets) >= _LOOKUP_CACHE_LIMIT:
                targets.clear()
            targets[token] = target
        if target is None:
            return None
        uninstalled = self._fleet.uninstalled
        if uninstalled and target.install in uninstalled:
            return Target(target.install, target.bundle_id, target.environment, uninstalled[target.install])
        return target

    def _state(self, conn: ConnInfo) -> ApnsConnection:
        state = conn.state
        if not isinstance(state, ApnsConnection):
            state = conn.state = self.open(conn)
        return state

    def _handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        state = self._state(conn)
        now = self._now()
        d = decide(state, method, path, headers, body, now, self.rules)
        apns_id = d.apns_id or self._ids.next()
        message_id = apns_id.decode("latin-1")
        reason = d.reason
        sender = state.sender
        if sender is None and state.tokens.key_id is not None:
            sender = state.sender = f"{state.tokens.team_id}/{state.tokens.key_id}"
        if reason is None:
            note = Notification("apns", d.token, d.install, message_id, now, d.push_type, d.priority, body,
                                d.expiration, d.collapse_id, d.content_available, d.drop_reason)
            self._dispatcher.submit(note)
            self._journal.add(now, "apns", "POST", path.decode("latin-1"), d.token, 200, None, message_id, note,
                              state.id, sender, headers)
            out = [(_APNS_ID, apns_id)]
            if self.sandbox:
                out.append((_UNIQUE_ID, self._unique_ids.next()))
            reply = Reply(200, out)
        else:
            if reason == reasons.ENV_KEY_WIRE:
                reason = self._env_key
            status = reasons.STATUS[reason]
            self._ledger.reject(reason)
            self._journal.add(now, "apns", method.decode("latin-1"), path.decode("latin-1"), d.token, status,
                              reason, message_id, None, state.id, sender, headers, body)
            reply = Reply(status, [_JSON_CT, (_APNS_ID, apns_id)], reasons.body_of(reason, d.timestamp))
        if self.throttle or state.max_streams != self.limit:      # steady state: nothing can change
            limit = next_max_streams(state, auth_ok=d.auth_ok, accepted=reason is None, limit=self.limit,
                                     throttle_on_reject=self.throttle)
            if limit is not None:
                reply.max_streams = limit
        return reply

    def _internal_error(self, method: bytes, path: bytes, headers: Headers) -> Reply:
        reason = "InternalServerError"
        try:
            # Clients such as aioapns match responses to requests by apns-id: echo it if it was sane.
            sent = [v for k, v in headers if k == _APNS_ID and is_uuid(v)]
            apns_id = sent[0] if sent else self._ids.next()
            self._ledger.reject(reason)
            self._journal.add(self._now(), "apns", method.decode("latin-1"), path.decode("latin-1"), None,
                              500, reason, apns_id.decode())
        except Exception:
            apns_id = b"00000000-0000-4000-8000-000000000000"
        return Reply(500, [_JSON_CT, (_APNS_ID, apns_id)], reasons.BODY[reason])


def _subject(cert_der: bytes) -> str | None:
    try:
        return x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()
    except ValueError:
        return None     # not a certificate we can read: ApnsConnection answers BadCertificate
