"""A one-process APNs-like server for the benchmark: the given HTTP/2 engine + a lean service.

The benchmark's "engine-only" row (the stand-in used before `pushsim.server.PushSim`): the
per-request work a fake APNs does on the accepted path (method/path/topic checks, JWT verified once
per token string and cached, JSON parse, a fresh apns-id), without fleet, device_sim or ledger. Prints `port N` when listening; stops on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

import jwt

from pushsim.edge.types import ConnInfo, Headers, Reply

_BAD = Reply(400, [(b"content-type", b"application/json")], b'{"reason":"BadDeviceToken"}')
_AUTH = Reply(403, [(b"content-type", b"application/json")], b'{"reason":"InvalidProviderToken"}')


class BenchApnsService:
    def __init__(self, public_key: object, topic: bytes) -> None:
        self._key = public_key
        self._topic = topic
        self._jwts: dict[bytes, bool] = {}

    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return 1000

    def closing_reason(self) -> bytes:
        return b'{"reason":"Shutdown"}'

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        if method != b"POST" or not path.startswith(b"/3/device/") or len(path) != 74:
            return _BAD
        h = dict(headers)
        if h.get(b"apns-topic") != self._topic:
            return _BAD
        auth = h.get(b"authorization", b"")
        ok = self._jwts.get(auth)
        if ok is None:
            try:
                jwt.decode(auth[7:], self._key, algorithms=["ES256"], options={"verify_iat": False})
                ok = True
            except jwt.PyJWTError:
                ok = False
            self._jwts[auth] = ok
        if not ok:
            return _AUTH
        if "aps" not in json.loads(body):
            return _BAD
        r = os.urandom(16).hex()
        apns_id = f"{r[:8]}-{r[8:12]}-{r[12:16]}-{r[16:20]}-{r[20:]}".encode()
        return Reply(200, [(b"apns-id", apns_id)])


async def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["fast", "h2"], default="fast")
    ap.add_argument("--pubkey", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--topic", default="com.example.app")
    a = ap.parse_args(argv)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    with open(a.pubkey, "rb") as f:
        svc = BenchApnsService(load_pem_public_key(f.read()), a.topic.encode())
    if a.engine == "fast":
        from pushsim.edge.fast_engine import FastH2Protocol as Engine
    else:
        from pushsim.edge.h2_engine import H2Protocol as Engine  # type: ignore[no-redef]
    ctx = None
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols(["h2"])
    conns: set = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Engine(svc, conns), "127.0.0.1", 0, ssl=ctx)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    import uvloop
    uvloop.run(main(sys.argv[1:]))
