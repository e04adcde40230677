"""The fast engine over real sockets: httpx (h2c and TLS with ALPN h2) and h2load."""
from __future__ import annotations

import asyncio
import re
import shutil
import ssl

import httpx
import pytest
import trustme

from pushsim.edge.fast_engine import FastH2Protocol
from tests.engine_wire import ScriptService


async def _serve(ctx: ssl.SSLContext | None = None) -> tuple[asyncio.AbstractServer, int, set, ScriptService]:
    svc, conns = ScriptService(initial_max_streams=1000), set()
    server = await asyncio.get_running_loop().create_server(
        lambda: FastH2Protocol(svc, conns), "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1], conns, svc


async def test_httpx_h2c_requests_and_shutdown_goaway():
    server, port, conns, svc = await _serve()
    try:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as client:
            rs = await asyncio.gather(*[client.post(f"http://127.0.0.1:{port}/ok", content=b"x" * i)
                                        for i in range(20)])
            assert [r.status_code for r in rs] == [200] * 20
            assert {r.http_version for r in rs} == {"HTTP/2"}
            assert sorted(int(r.headers["x-body-len"]) for r in rs) == list(range(20))
            err = await client.post(f"http://127.0.0.1:{port}/err/400", content=b"{}")
            assert err.status_code == 400 and err.json()["reason"] == "BadDeviceToken"
            big = await client.post(f"http://127.0.0.1:{port}/big/300000")
            assert big.content == b"x" * 300000            # needs the client's WINDOW_UPDATEs
            assert len(conns) == 1
            for proto in list(conns):
                proto.shutdown(b'{"reason":"Shutdown"}')
            for _ in range(50):
                if not conns:
                    break
                await asyncio.sleep(0.02)
            assert not conns                              # closed by us after the GOAWAY
    finally:
        server.close()


async def test_httpx_over_tls_with_alpn_h2():
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.set_alpn_protocols(["h2"])
    server, port, conns, svc = await _serve(ctx)
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with httpx.AsyncClient(http1=False, http2=True, verify=client_ctx, timeout=5) as client:
            r = await client.post(f"https://127.0.0.1:{port}/ok", content=b"{}")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert svc.opened[0].tls and svc.opened[0].alpn == "h2"
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
async def test_h2load_many_streams_all_2xx(tmp_path):
    body = tmp_path / "payload.json"
    body.write_bytes(b'{"aps":{"content-available":1}}')
    server, port, conns, svc = await _serve()
    try:
        proc = await asyncio.create_subprocess_exec(
            "h2load", "-n", "3000", "-c", "4", "-m", "50", "-d", str(body),
            f"http://127.0.0.1:{port}/ok", stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert re.search(r"status codes: 3000 2xx, 0 3xx, 0 4xx, 0 5xx", text), text
        assert len(svc.seen) == 3000 and svc.seen[-1][3] == body.read_bytes()
    finally:
        server.close()
