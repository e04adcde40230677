"""The APNs locust user (a real locust subprocess) against in-test stand-ins that misbehave.

The stand-in APNs is the tiny h2 server of test_locust_h2client.py, run on its own gevent hub in a
thread, sending GOAWAY and RST_STREAM REFUSED_STREAM on purpose; a stand-in control API lists the
tokens. Needs nothing from the other pushsim packages, so it runs in any tree.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_locust_h2client import TinyH2Server

REPO = Path(__file__).resolve().parents[2]
TOKENS = [f"{i:064x}" for i in range(1, 41)]

pytestmark = pytest.mark.timeout(60)


class H2InThread:
    """TinyH2Server on a gevent hub of its own thread, so the test thread may block."""

    def __init__(self, **kw: Any) -> None:
        self._stop = threading.Event()
        ready = threading.Event()

        def run() -> None:
            self.server = TinyH2Server(**kw)
            ready.set()
            while not self._stop.is_set():
                gevent.sleep(0.05)
            self.server.stop()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class StandInAdmin:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                off, lim = int(q.get("offset", 0)), int(q.get("limit", 100))
                tokens = TOKENS if q.get("platform") == "ios" else []
                body = json.dumps({"devices": [{"token": t, "platform": "ios"} for t in tokens[off:off + lim]],
                                   "total": len(tokens)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a: Any) -> None:
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_apns_user_rides_out_goaway_and_refused_streams(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.p8").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    apns = H2InThread(initial_streams=1, raise_to=50, goaway_after=150, rst_every=37)
    admin = StandInAdmin()
    try:
        port = apns.server.port
        (tmp_path / "endpoints.json").write_text(json.dumps({
            "apns": {"url": f"https://127.0.0.1:{port}", "h2c_url": f"http://127.0.0.1:{port}",
                     "topic": "com.example.app", "key_file": str(tmp_path / "key.p8"),
                     "key_id": "KEYID12345", "team_id": "TEAM123456"},
            "admin": {"url": admin.url}}))
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "loadtests/locustfile_apns.py", "--headless", "-u", "10",
             "-r", "10", "-t", "3s", "--only-summary", "--stop-timeout", "2", "--apns-transport", "h2c",
             "--pushsim-endpoints", str(tmp_path / "endpoints.json"), "--json-file", str(tmp_path / "stats"), "--csv", str(tmp_path / "run")],
            cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
            timeout=40)
    finally:
        admin.stop()
        apns.stop()
    stats = json.loads((tmp_path / "stats.json").read_text())
    requests = sum(e["num_requests"] for e in stats)
    failures = sum(e["num_failures"] for e in stats)
    srv = apns.server
    assert requests > 0, proc.stderr[-3000:]
    assert srv.goaways >= 2 and srv.rsts >= 2, (srv.goaways, srv.rsts, srv.requests)
    # The user retried, once, exactly the requests the server never processed: those refused or
    # left unanswered once were answered on retry; only a request unlucky twice is a failure.
    recovered = [i for i, n in srv.unprocessed.items() if n == 1 and i in srv.answered]
    twice = [i for i, n in srv.unprocessed.items() if n >= 2]
    assert len(recovered) >= 2
    assert failures == len(twice), (tmp_path / "run_failures.csv").read_text()
    assert failures <= requests * 0.02
    # One provider token, a valid ES256 JWT for this key, on every request; paths from the token list.
    [auth] = srv.authorizations
    claims = jwt.decode(auth.decode().removeprefix("bearer "), key.public_key(), algorithms=["ES256"])
    assert claims["iss"] == "TEAM123456"
    assert jwt.get_unverified_header(auth.decode().removeprefix("bearer "))["kid"] == "KEYID12345"
    assert {p.decode().rsplit("/", 1)[1] for p in srv.paths} <= set(TOKENS)
