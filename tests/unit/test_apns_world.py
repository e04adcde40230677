"""A small fake-APNs world for the test_apns_* modules: testbed, fleet, keys, clock, connections."""
from __future__ import annotations

import orjson

from device_sim.fleet import App
from fake_apns.auth import KeyStore
from fake_apns.testing import make_jwt, make_push_cert, new_key
from pushsim.config import Config
from pushsim.edge.types import ConnInfo, Reply
from pushsim.services.apns import ApnsService
from pushsim.testbed import Testbed

T0 = 1_700_000_000.0
TOPIC = "com.example.app"
TEAM, OTHER_TEAM = "TEAM1AAAAA", "TEAM2BBBBB"
UNINSTALLED_MS = 1_699_999_000_123


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class World:
    """Installs: 0..4 iOS (0 healthy, 1 uninstalled), 5..6 Android, 7 iOS of another app,
    8 iOS in the other APNs environment."""

    def __init__(self, devices: str = "ios=5,android=2", **config: object) -> None:
        self.clock = Clock()
        self.config = Config(devices=devices, **config)
        self.testbed = Testbed(self.config, now=self.clock)
        fleet = self.testbed.fleet
        other_app = fleet.add_app(App("com.other.app", "com.other.app"))
        self.other_app_install = fleet.add("ios", 1, app=other_app)[0]
        other_env = "production" if self.config.environment == "sandbox" else "sandbox"
        self.other_env_install = fleet.add("ios", 1, environment=other_env)[0]
        fleet.uninstall(1, UNINSTALLED_MS)
        self.keys = KeyStore()
        self.pk = {name: new_key() for name in ("k1", "k2", "k3", "kenv", "ktopic")}
        self.kid = {"k1": "KEY1AAAAAA", "k2": "KEY2AAAAAA", "k3": "KEY3BBBBBB", "kenv": "KEYENVAAAA",
                    "ktopic": "KEYTOPICAA"}
        self.keys.add(self.kid["k1"], TEAM, self.pk["k1"].public_key())
        self.keys.add(self.kid["k2"], TEAM, self.pk["k2"].public_key())
        self.keys.add(self.kid["k3"], OTHER_TEAM, self.pk["k3"].public_key())
        self.keys.add(self.kid["kenv"], TEAM, self.pk["kenv"].public_key(), environments=frozenset({other_env}))
        self.keys.add(self.kid["ktopic"], TEAM, self.pk["ktopic"].public_key(),
                      topics=frozenset({"com.other.app"}))
        self.service = ApnsService(self.testbed, self.keys)
        self._jwts: dict[tuple[str, float, str], bytes] = {}

    def token(self, install: int = 0) -> str:
        tok = self.testbed.fleet.apns_token(install)
        assert tok is not None
        return tok

    def jwt(self, key: str = "k1", iat: float | None = None, team: str | None = None) -> bytes:
        """The same string for the same claims, as real clients reuse a token (ECDSA signatures differ)."""
        args = (key, self.clock.t if iat is None else iat, team or (OTHER_TEAM if key == "k3" else TEAM))
        if args not in self._jwts:
            self._jwts[args] = make_jwt(self.pk[key], self.kid[key], args[2], args[1])
        return self._jwts[args]

    def conn(self, cert_der: bytes | None = None) -> ConnInfo:
        c = ConnInfo(tls=True, alpn="h2", http2=True, peer_cert_der=cert_der)
        c.state = self.service.open(c)
        return c

    def cert_conn(self, topics: list[str] | None = None, envs: tuple[str, ...] = ("sandbox", "production")) -> ConnInfo:
        return self.conn(make_push_cert(topics or [TOPIC, TOPIC + ".voip"], envs))

    def headers(self, *, auth: bytes | None = None, topic: str | None = TOPIC, **extra: str) -> list[tuple[bytes, bytes]]:
        h = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost")]
        if auth is not None:
            h.append((b"authorization", b"bearer " + auth))
        if topic is not None:
            h.append((b"apns-topic", topic.encode()))
        for name, value in extra.items():
            h.append((b"apns-" + name.replace("_", "-").encode(), value.encode()))
        return h

    def send(self, conn: ConnInfo, *, install: int = 0, path: bytes | None = None, method: bytes = b"POST",
             body: bytes = b'{"aps":{"alert":"hi"}}', headers: list[tuple[bytes, bytes]] | None = None,
             **kw: object) -> Reply:
        if path is None:
            path = b"/3/device/" + self.token(install).encode()
        if headers is None:
            kw.setdefault("auth", self.jwt())
            headers = self.headers(**kw)   # type: ignore[arg-type]
        self.accepted_before = self.testbed.ledger.accepted
        reply = self.service.handle(conn, method, path, headers, body)
        self.testbed.ledger.check()
        return reply


def reason_of(reply: Reply) -> str | None:
    return orjson.loads(reply.body)["reason"] if reply.body else None


def header(reply: Reply, name: bytes) -> bytes | None:
    values = [v for k, v in reply.headers if k == name]
    assert len(values) <= 1
    return values[0] if values else None


def test_world_installs_are_what_the_docstring_says():
    w = World()
    fleet = w.testbed.fleet
    assert fleet.resolve_apns(w.token(0)) == 0
    assert fleet.apns_token(5) is None and fleet.apns_token(6) is None
    assert fleet.app_of(w.other_app_install).bundle_id == "com.other.app"
    assert fleet.environment_of(w.other_env_install) == "production"
    assert 1 in fleet.uninstalled and 0 not in fleet.uninstalled


def test_a_plain_valid_request_is_accepted():
    w = World()
    reply = w.send(w.conn())
    assert reply.status == 200 and reply.body == b"", reply
    assert w.testbed.ledger.accepted == 1
