"""The listener and the h2 engine with real clients: httpx, curl, a no-ALPN TLS client."""
from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import sys
from pathlib import Path

import httpx
import pytest
import trustme

from edge_support import RawClient, ScriptedService, serving
from pushsim.edge import listener
from pushsim.edge.conninfo import conn_info
from pushsim.edge.tls import server_context

pytestmark = pytest.mark.timeout(15)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    paths = {"ca": d / "ca.pem", "cert": d / "cert.pem", "key": d / "key.pem"}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


def tls(pki: dict[str, Path], alpn: list[str], client_ca: bool = False) -> ssl.SSLContext:
    return server_context(str(pki["cert"]), str(pki["key"]), alpn,
                          str(pki["ca"]) if client_ca else None)


async def run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    return out.decode()


class Http1StandIn(asyncio.Protocol):
    """Stands in for pushsim.edge.http1.Http1Protocol: these tests check the hand-over, not HTTP/1.1."""

    def __init__(self, service: object, conns: set) -> None:
        self.conns, self.buf = conns, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.conn = transport, conn_info(transport, http2=False)
        self.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nh1")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)


@pytest.fixture
def http1_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener, "resolve_http1", lambda: Http1StandIn)


async def test_httpx_h2c_prior_knowledge_with_a_1mb_body() -> None:
    async with serving() as s, httpx.AsyncClient(http1=False, http2=True) as client:
        r = await client.post(f"http://127.0.0.1:{s.port}/echo", content=b"x" * 1_000_000)
        assert r.http_version == "HTTP/2" and r.json()["len"] == 1_000_000
        assert s.service.opened[0].tls is False and s.service.opened[0].http2 is True


async def test_many_concurrent_streams_with_bodies_do_not_stall() -> None:
    async with serving() as s, httpx.AsyncClient(http1=False, http2=True) as client:
        url = f"http://127.0.0.1:{s.port}/echo"
        rs = await asyncio.gather(*(client.post(url, content=b"y" * 20_000) for _ in range(150)))
        assert [r.json()["len"] for r in rs] == [20_000] * 150
        assert len(s.service.opened) == 1   # all multiplexed on one connection


async def test_httpx_over_tls_negotiates_h2(ca: trustme.CA, pki: dict[str, Path]) -> None:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    async with serving(ssl_context=tls(pki, ["h2"])) as s, \
            httpx.AsyncClient(http2=True, verify=ctx) as client:
        r = await client.post(f"https://127.0.0.1:{s.port}/status/403", content=b"{}")
        assert r.http_version == "HTTP/2" and r.status_code == 403
        assert r.json() == {"reason": "Status 403"}
        opened = s.service.opened[0]
        assert (opened.tls, opened.alpn, opened.peer_cert_der) == (True, "h2", None)


async def test_tls_client_without_alpn_still_gets_http2(pki: dict[str, Path]) -> None:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))   # like aioapns: no ALPN offered
    async with serving(ssl_context=tls(pki, ["h2"])) as s:
        c = await RawClient.connect(s.port, ssl_ctx=ctx)
        sid = c.request("/echo", b"{}", authority=False, headers=[(b"host", b"api.push.apple.com")])
        assert await c.wait(c.done(sid))
        assert c.responses[sid].status == 200
        assert (s.service.opened[0].tls, s.service.opened[0].alpn) == (True, None)
        await c.close()


async def test_client_certificate_reaches_the_service(ca: trustme.CA, pki: dict[str, Path]) -> None:
    client_cert = ca.issue_cert("provider@example.com")
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    client_cert.configure_cert(ctx)
    async with serving(ssl_context=tls(pki, ["h2"], client_ca=True)) as s:
        c = await RawClient.connect(s.port, ssl_ctx=ctx)
        sid = c.request("/echo")
        assert await c.wait(c.done(sid))
        want = ssl.PEM_cert_to_DER_cert(client_cert.cert_chain_pems[0].bytes().decode())
        assert s.service.opened[0].peer_cert_der == want
        await c.close()


async def test_client_certificate_from_another_ca_fails_the_handshake(pki: dict[str, Path]) -> None:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    trustme.CA().issue_cert("intruder@example.com").configure_cert(ctx)
    async with serving(ssl_context=tls(pki, ["h2"], client_ca=True)) as s:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            c = await RawClient.connect(s.port, ssl_ctx=ctx)   # TLS 1.3 reports it on first read
            c.request("/echo")
            await c.wait(lambda c: c.closed)
            raise ConnectionError("closed") if c.closed else AssertionError("accepted")
        assert not s.service.handled


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
async def test_curl_http2_over_tls_and_prior_knowledge(pki: dict[str, Path]) -> None:
    async with serving(ssl_context=tls(pki, ["h2"])) as s:
        out = await run("curl", "-sS", "--http2", "--cacert", str(pki["ca"]), "-d", "{}",
                        "-w", "\n%{http_version} %{http_code}", f"https://127.0.0.1:{s.port}/echo")
        body, meta = out.rsplit("\n", 1)
        assert meta == "2 200" and json.loads(body)["authority"] == f"127.0.0.1:{s.port}"
    async with serving() as s:
        out = await run("curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                        "-w", "%{http_version} %{http_code}", f"http://127.0.0.1:{s.port}/status/410")
        assert out == "2 410"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
async def test_cleartext_sniffing_splits_h1_and_h2(http1_stand_in: None) -> None:
    async with serving(http1=True) as s:
        url = f"http://127.0.0.1:{s.port}/echo"
        h1 = await run("curl", "-sS", "--http1.1", url)
        h2 = await run("curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}", url)
        assert h1 == "h1"
        assert h2.endswith(" 2") and json.loads(h2[:-2])["method"] == "GET"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
async def test_tls_alpn_picks_the_engine(pki: dict[str, Path], http1_stand_in: None) -> None:
    async with serving(ssl_context=tls(pki, ["h2", "http/1.1"]), http1=True) as s:
        url = f"https://127.0.0.1:{s.port}/echo"
        h1 = await run("curl", "-sS", "--http1.1", "--cacert", str(pki["ca"]), url)
        h2 = await run("curl", "-sS", "--http2", "--cacert", str(pki["ca"]), "-o", "/dev/null",
                       "-w", "%{http_version}", url)
        assert (h1, h2) == ("h1", "2")
    # TLS without ALPN and HTTP/1.1 enabled: the preface decides
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    async with serving(ssl_context=tls(pki, ["h2", "http/1.1"]), http1=True) as s:
        c = await RawClient.connect(s.port, ssl_ctx=ctx)
        sid = c.request("/echo")
        assert await c.wait(c.done(sid)) and c.responses[sid].status == 200
        await c.close()


async def test_ipv6_loopback() -> None:
    async with serving(host="::1") as s, httpx.AsyncClient(http1=False, http2=True) as client:
        r = await client.get(f"http://[::1]:{s.port}/echo")
        assert r.status_code == 200 and s.service.opened[0].peer[0] == "::1"


async def test_reuse_port_lets_two_listeners_share_a_port() -> None:
    service = ScriptedService()
    first = await listener.start_listener("127.0.0.1", 0, service=service, reuse_port=True)
    port = first.sockets[0].getsockname()[1]
    second = await listener.start_listener("127.0.0.1", port, service=service, reuse_port=True)
    try:
        assert second.sockets[0].getsockname()[1] == port
    finally:
        for srv in (first, second):
            srv.close()
            await srv.wait_closed()


async def test_fast_engine_serves_fast() -> None:
    async with serving(engine="fast") as s, httpx.AsyncClient(http1=False, http2=True) as client:
        assert (await client.get(f"http://127.0.0.1:{s.port}/")).status_code == 200
        (proto,) = s.conns
        assert type(proto).__name__ == "FastH2Protocol"


@pytest.mark.parametrize("module, start", [
    ("pushsim.edge.fast_engine", lambda: listener.resolve_engine("fast")),
    ("pushsim.edge.http1", listener.resolve_http1),
])
def test_an_engine_that_fails_to_import_is_an_error_not_a_fallback(monkeypatch, module, start) -> None:
    monkeypatch.setitem(sys.modules, module, None)     # `import` of it now raises ImportError
    with pytest.raises(ImportError):
        start()


async def test_shutdown_connections_drains_everything() -> None:
    async with serving() as s, httpx.AsyncClient(http1=False, http2=True) as client:
        assert (await client.get(f"http://127.0.0.1:{s.port}/")).status_code == 200
        stalled = asyncio.ensure_future(client.get(f"http://127.0.0.1:{s.port}/fault/stall"))
        while len(s.service.handled) < 2:
            await asyncio.sleep(0.01)
        await listener.shutdown_connections(s.conns, b'{"reason":"Shutdown"}', timeout=0.3)
        assert not s.conns
        with pytest.raises(httpx.HTTPError):
            await asyncio.wait_for(stalled, 3)


async def test_aioapns_without_alpn_over_tls(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from aioapns import APNs, NotificationRequest
    from aioapns.connection import APNsDevelopmentClientProtocol
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    async with serving(ssl_context=tls(pki, ["h2"])) as s:
        monkeypatch.setattr(APNsDevelopmentClientProtocol, "APNS_SERVER", "127.0.0.1")
        monkeypatch.setattr(APNsDevelopmentClientProtocol, "APNS_PORT", s.port)
        apns = APNs(key=key, key_id="ABC123DEFG", team_id="DEF123GHIJ", topic="com.example.app",
                    use_sandbox=True, ssl_context=ssl.create_default_context(cafile=str(pki["ca"])),
                    max_connections=1)
        ok = await apns.send_notification(NotificationRequest("ab" * 32, {"aps": {"alert": "hi"}}))
        bad = await apns.send_notification(NotificationRequest("bad", {"aps": {"alert": "hi"}}))
        assert ok.is_successful and (bad.status, bad.description) == ("400", "BadDeviceToken")
        assert s.service.opened[0].alpn is None   # aioapns offers no ALPN
        for conn in apns.pool.connections:
            conn.close()


def test_under_uvloop_tls_dispatch_faults_and_shutdown(pki: dict[str, Path],
                                                       http1_stand_in: None) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))   # no ALPN: goes through sniffing
        async with serving(ssl_context=tls(pki, ["h2", "http/1.1"]), http1=True) as s:
            c = await RawClient.connect(s.port, ssl_ctx=ctx)
            ok, slow = c.request("/echo"), c.request("/delay/0.2")
            assert await c.wait(c.done(ok)) and c.responses[ok].status == 200
            next(iter(s.conns)).shutdown(b'{"reason":"Shutdown"}')
            assert await c.wait(lambda c: c.closed)
            assert c.responses[slow].status == 200
            c2 = await RawClient.connect(s.port, ssl_ctx=ctx)
            c2.request("/fault/tcp_reset")
            assert await c2.wait(lambda c: c.closed)
            await c.close()
            await c2.close()

    uvloop.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.skipif(not shutil.which("nghttp"), reason="nghttp (nghttp2 client) not installed")
async def test_nghttp_gets_in_flight_answer_after_shutdown_goaway() -> None:
    async with serving() as s:
        base = f"http://127.0.0.1:{s.port}"
        proc = await asyncio.create_subprocess_exec(
            "nghttp", "-nv", f"{base}/delay/0.5", f"{base}/echo",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        while len(s.service.handled) < 2:
            await asyncio.sleep(0.01)
        for proto in list(s.conns):
            proto.shutdown(b'{"reason":"Shutdown"}')
        out, _ = await asyncio.wait_for(proc.communicate(), 5)
        lines = out.decode().splitlines()
        goaway = next(i for i, line in enumerate(lines) if "recv GOAWAY" in line)
        answers = [i for i, line in enumerate(lines) if ") :status: 200" in line and "recv" in line]
        assert proc.returncode == 0 and len(answers) == 2
        assert answers[0] < goaway < answers[1]   # the delayed answer arrives after the GOAWAY


async def test_tls_1_2_client_gets_h2(pki: dict[str, Path]) -> None:
    async with serving(ssl_context=tls(pki, ["h2"])) as s:
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["h2"])
        c = await RawClient.connect(s.port, ssl_ctx=ctx)
        sid = c.request("/echo")
        assert await c.wait(c.done(sid)) and c.responses[sid].status == 200
        assert c.writer.get_extra_info("ssl_object").version() == "TLSv1.2"
        await c.close()
