"""A fake FCM on loopback ports for integration tests: TLS (ALPN h2 + http/1.1) and cleartext.

Uses the edge listener (HTTP/2 engines + preface sniffing) when present; without it, only
HTTP/1.1 is served and HTTP/2 tests skip.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from fake_fcm.oauth import ServiceAccount, TokenAuthority
from fake_fcm.testing import make_service_account
from pushsim.config import Config
from pushsim.services.fcm import FcmService
from pushsim.testbed import Testbed

from pushsim.edge.listener import start_listener

_SA: dict[str, str] | None = None
_CERTS: tuple[trustme.CA, trustme.LeafCert] | None = None


def service_account_info() -> dict[str, str]:
    global _SA                           # RSA key generation is slow-ish: once per session
    if _SA is None:
        _SA = make_service_account()
    return dict(_SA)


class SkewClock:
    """Wall time plus an adjustable offset: lets a test age access tokens on the server only."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


@dataclass
class Harness:
    testbed: Testbed
    service: FcmService
    clock: SkewClock
    url: str
    h2c_url: str
    ca_file: str
    sa_file: str
    sa_info: dict[str, str]
    servers: list[Any] = field(default_factory=list)
    conns: set = field(default_factory=set)

    @property
    def project_id(self) -> str:
        return self.testbed.config.project_id

    def send_url(self, base: str | None = None) -> str:
        return f"{base or self.url}/v1/projects/{self.project_id}/messages:send"

    def fcm_token(self, platform: str = "android", k: int = 0) -> str:
        fleet = self.testbed.fleet
        return fleet.fcm_token([i for i in range(len(fleet)) if fleet.platform_of(i) == platform][k])

    async def stop(self) -> None:
        for p in list(self.conns):
            p.shutdown(b"")
        for s in self.servers:
            s.close()
        await asyncio.sleep(0)


def _tls_context(cert: trustme.LeafCert, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    ctx.set_alpn_protocols(alpn)
    return ctx


async def start(tmp: Path, devices: str = "ios=3,android=5", **cfg: Any) -> Harness:
    global _CERTS
    loop = asyncio.get_running_loop()
    if _CERTS is None:
        ca = trustme.CA()
        _CERTS = ca, ca.issue_cert("127.0.0.1", "localhost")
    ca, leaf = _CERTS
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    clock = SkewClock()
    testbed = Testbed(Config(devices=devices, **cfg), schedule=loop.call_soon, now=clock)
    info = service_account_info()
    authority = TokenAuthority(ttl=lambda: testbed.config.access_token_ttl)
    authority.add_account(ServiceAccount.from_info(info))
    svc = FcmService(testbed, authority)
    conns: set = set()
    servers = []
    tls = await start_listener("127.0.0.1", 0, service=svc, ssl_context=_tls_context(leaf, ["h2", "http/1.1"]),
                               engine="h2", http1=True, conns=conns)
    clear = await start_listener("127.0.0.1", 0, service=svc, ssl_context=None, engine="h2", http1=True,
                                 conns=conns)
    servers += [tls, clear]
    url = f"https://127.0.0.1:{tls.sockets[0].getsockname()[1]}"
    info["token_uri"] = url + "/token"
    sa_file = tmp / "fcm_service_account.json"
    sa_file.write_text(json.dumps(info))
    return Harness(testbed, svc, clock, url, f"http://127.0.0.1:{clear.sockets[0].getsockname()[1]}",
                   str(ca_file), str(sa_file), info, servers, conns)
