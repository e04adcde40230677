"""A sender that misbehaves in every way the report's rules name (tests only).

Each method commits one sin against a running pushsim, over real connections: httpx over HTTP/2
for APNs (JWT or certificate auth) and FCM (OAuth), and the raw h2 package where the sin is at the
connection level (streams after a GOAWAY, which no well-behaved library will open).
"""
from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import httpx
import jwt
from hyperframe.frame import DataFrame, Frame, HeadersFrame, PingFrame


class BadSender:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.ep = endpoints
        a = endpoints["apns"]
        self.topic, self.key = a["topic"], Path(a["key_file"]).read_text()
        self.verify = ssl.create_default_context(cafile=endpoints["ca_file"])
        self.apns = self._client(a["url"])
        self.fcm = self._client(endpoints["fcm"]["url"])
        self.admin = httpx.Client(base_url=endpoints["admin"]["url"], timeout=10)
        self._jwt = self.provider_token()
        self._access: str | None = None

    def _client(self, url: str) -> httpx.Client:
        return httpx.Client(http2=True, verify=self.verify, base_url=url, timeout=10)

    def close(self) -> None:
        for c in (self.apns, self.fcm, self.admin):
            c.close()

    # credentials ---------------------------------------------------------------------------
    def provider_token(self, iat: float | None = None) -> str:
        a = self.ep["apns"]
        return jwt.encode({"iss": a["team_id"], "iat": int(time.time() if iat is None else iat)}, self.key,
                          algorithm="ES256", headers={"kid": a["key_id"]})

    def access_token(self) -> str:
        if self._access is None:
            sa = json.loads(Path(self.ep["fcm"]["service_account_file"]).read_text())
            now = int(time.time())
            assertion = jwt.encode({"iss": sa["client_email"], "aud": sa["token_uri"], "iat": now, "exp": now + 3600,
                                    "scope": "https://www.googleapis.com/auth/firebase.messaging"},
                                   sa["private_key"], algorithm="RS256", headers={"kid": sa["private_key_id"]})
            r = self.fcm.post(sa["token_uri"], data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                                     "assertion": assertion})
            r.raise_for_status()
            self._access = r.json()["access_token"]
        return self._access

    # sending -------------------------------------------------------------------------------
    def apns_send(self, token: str, body: bytes = b'{"aps":{"alert":"hi"}}', *, client: httpx.Client | None = None,
                  jwt_token: str | None = None, push_type: str = "alert") -> httpx.Response:
        headers = {"apns-topic": self.topic, "apns-push-type": push_type,
                   "apns-priority": "5" if push_type == "background" else "10"}
        if jwt_token != "":          # "": certificate auth, the client certificate says who sends
            headers["authorization"] = f"bearer {jwt_token or self._jwt}"
        return (client or self.apns).post(f"/3/device/{token}", content=body, headers=headers)

    def apns_background(self, token: str, extra: str = "") -> httpx.Response:
        return self.apns_send(token, b'{"aps":{"content-available":1}' + extra.encode() + b"}", push_type="background")

    def fcm_send(self, token: str, message: dict[str, Any] | None = None) -> httpx.Response:
        msg = {"notification": {"title": "hi"}} if message is None else message
        project = self.ep["fcm"]["project_id"]
        return self.fcm.post(f"/v1/projects/{project}/messages:send", json={"message": {**msg, "token": token}},
                             headers={"authorization": f"Bearer {self.access_token()}"})

    def fault(self, service: str, token: str, reason: str, **action: Any) -> None:
        """The next request to `token` is answered `reason` (a fault rule, POST /faults)."""
        self.fault_once(service, token, type="respond", reason=reason, **action)

    def fault_once(self, service: str, token: str, **action: Any) -> None:
        r = self.admin.post("/faults", json={"scope": {"service": service, "tokens": [token]},
                                             "trigger": {"first": 1}, "action": action})
        r.raise_for_status()

    def pin(self, token: str, **state: Any) -> None:
        """Fix an install's situation (online, app_state, low_power, ...) so outcomes are certain."""
        self.admin.post(f"/devices/{token}/state", json=state).raise_for_status()

    # the sins, one per error rule ------------------------------------------------------------------
    def keep_sending_after_410(self, token: str) -> list[int]:
        self.admin.post(f"/devices/{token}/state", json={"installed": False}).raise_for_status()
        return [self.apns_send(token).status_code for _ in range(3)]

    def keep_sending_after_unregistered(self, token: str) -> list[int]:
        self.admin.post(f"/devices/{token}/state", json={"installed": False}).raise_for_status()
        return [self.fcm_send(token).status_code for _ in range(3)]

    def retry_429_at_once(self, token: str) -> list[int]:
        self.fault("apns", token, "TooManyRequests")
        return [self.apns_send(token).status_code for _ in range(2)]

    def ignore_retry_after(self, token: str) -> list[int]:
        self.fault("fcm", token, "UNAVAILABLE", retry_after=30)
        return [self.fcm_send(token).status_code for _ in range(2)]

    def resend_payload_too_large(self, token: str) -> list[int]:
        big = b'{"aps":{"alert":"' + b"x" * 5000 + b'"}}'
        return [self.apns_send(token, big).status_code for _ in range(2)]

    def resend_invalid_argument(self, token: str) -> list[int]:
        bad = {"android": {"ttl": "forever"}}
        return [self.fcm_send(token, bad).status_code for _ in range(2)]

    def refresh_token_on_every_push(self, token: str) -> list[int]:
        with self._client(self.ep["apns"]["url"]) as c:
            first = self.apns_send(token, client=c, jwt_token=self.provider_token()).status_code
            second = self.apns_send(token, client=c, jwt_token=self.provider_token(time.time() - 10)).status_code
        return [first, second]

    def use_a_stale_token(self, token: str) -> list[int]:
        with self._client(self.ep["apns"]["url"]) as c:
            return [self.apns_send(token, client=c, jwt_token=self.provider_token(time.time() - 7200)).status_code]

    def flood_one_device(self, token: str, n: int = 245) -> list[int]:
        return [self.fcm_send(token, {"data": {"i": str(i)}}).status_code for i in range(n)]

    # the sins, one per warning / guardrail / info rule -------------------------------------------
    def connection_per_push(self, token: str, n: int = 12) -> list[int]:
        """apns.connection-churn: a new TLS connection for every push (certificate auth, so this
        sender's connections are its own: the rule judges each sender's reuse)."""
        a = self.ep["apns"]
        ctx = ssl.create_default_context(cafile=self.ep["ca_file"])
        ctx.load_cert_chain(a["client_cert"], a["client_key"])
        out = []
        for _ in range(n):
            with httpx.Client(http2=True, verify=ctx, base_url=a["url"], timeout=10) as c:
                out.append(self.apns_send(token, client=c, jwt_token="").status_code)
        return out

    def keep_sending_after_goaway(self, stall_token: str, goaway_token: str, late_token: str,
                                  late: int = 2) -> int:
        """apns.goaway-ignored: on one connection (h2c, raw h2), a stalled stream keeps it open;
        the next request gets a GOAWAY; then `late` new streams anyway. Returns the GOAWAY's
        last-stream-id once the server has read them (a PING sent after them came back)."""
        url = urlsplit(self.ep["apns"]["h2c_url"])
        self.fault_once("apns", stall_token, type="stall")
        self.fault_once("apns", goaway_token, type="goaway", answer=False, reason="Shutdown")
        sock = socket.create_connection((url.hostname, url.port), timeout=10)
        try:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())

            def headers(token: str) -> list[tuple[str, str]]:
                return [(":method", "POST"), (":scheme", "http"), (":authority", url.netloc),
                        (":path", f"/3/device/{token}"), ("authorization", f"bearer {self._jwt}"),
                        ("apns-topic", self.topic), ("apns-push-type", "alert")]

            body = b'{"aps":{"alert":"hi"}}'

            def send(sid: int, token: str) -> None:
                conn.send_headers(sid, headers(token))
                conn.send_data(sid, body, end_stream=True)
                sock.sendall(conn.data_to_send())

            seen: list[object] = []

            def until(done: Any) -> None:
                while not done():
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("the server closed the connection first")
                    seen.extend(conn.receive_data(data))
                    sock.sendall(conn.data_to_send())

            send(1, late_token)
            # token auth: one stream at a time until a token is accepted, then APNs allows more
            until(lambda: any(isinstance(e, h2.events.StreamEnded) for e in seen)
                  and conn.remote_settings.max_concurrent_streams > 2)
            send(3, stall_token)                  # never answered: the connection stays open
            send(5, goaway_token)                 # answered by GOAWAY(last-stream-id = 3)
            until(lambda: any(isinstance(e, h2.events.ConnectionTerminated) for e in seen))
            goaway = next(e for e in seen if isinstance(e, h2.events.ConnectionTerminated))
            # The sin: well after reading the GOAWAY (so no stream of ours can have crossed it),
            # open new streams on the same connection. h2 refuses to after a GOAWAY, so the
            # frames are built by hand, encoded with the connection's own HPACK state.
            time.sleep(0.2)
            frames = b""
            for i in range(late):
                sid = 7 + 2 * i
                frames += HeadersFrame(sid, conn.encoder.encode(headers(late_token)), flags=["END_HEADERS"]).serialize()
                frames += DataFrame(sid, body, flags=["END_STREAM"]).serialize()
            sock.sendall(frames + PingFrame(0, b"pushsim!").serialize())
            buf = b""
            while True:                           # the PING's ACK: everything before it was read
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed before the PING was answered")
                buf += data
                while len(buf) >= 9:
                    frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
                    if len(buf) < 9 + length:
                        break
                    payload, buf = buf[9:9 + length], buf[9 + length:]
                    if isinstance(frame, PingFrame) and "ACK" in frame.flags and payload == b"pushsim!":
                        return int(goaway.last_stream_id)
        finally:
            sock.close()

    def large_background_push(self, token: str, size: int = 3000) -> int:
        """silent.payload-large: a background push of `size` bytes where a signal would do."""
        return self.apns_background(token, ',"blob":"' + "x" * (size - 40) + '"').status_code

    def background_burst(self, token: str, n: int = 25) -> list[int]:
        """apns.background-too-frequent (> 3 an hour), guardrail.micro-batching (3 within a minute)
        and guardrail.frequency-cap (> 24 a day): n background pushes back to back to one install."""
        return [self.apns_background(token, f',"i":{i}').status_code for i in range(n)]

    def background_without_news(self, token: str) -> list[int]:
        """guardrail.no-effect: the same content version announced twice."""
        return [self.apns_background(token, ',"content_version":3').status_code for _ in range(2)]

    def visible_before_ready(self, token: str) -> int:
        """guardrail.visible-before-ready: a visible push for content (version 5) no silent push
        made ready first."""
        return self.apns_send(token, b'{"aps":{"alert":"new!"},"content_version":5}').status_code

    def high_priority_data(self, token: str) -> int:
        """fcm.high-priority-without-notification: high priority, nothing to show."""
        return self.fcm_send(token, {"data": {"k": "v"}, "android": {"priority": "high"}}).status_code

    def flood_offline_install(self, token: str, n: int = 101) -> list[int]:
        """fcm.too-many-pending: over 100 non-collapsible messages to an offline install."""
        return [self.fcm_send(token, {"data": {"i": str(i)}}).status_code for i in range(n)]

    def many_collapse_keys(self, token: str, n: int = 5) -> list[int]:
        """fcm.collapse-key-limit: a fifth collapse key for an offline install."""
        return [self.fcm_send(token, {"data": {"i": str(i)}, "android": {"collapse_key": f"k{i}"}}).status_code
                for i in range(n)]
