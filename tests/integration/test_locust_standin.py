"""The APNs locust user (a real locust subprocess) against in-test stand-ins that misbehave.

The stand-in APNs is the tiny h2 server of test_locust_h2client.py, run on its own gevent hub in a
thread, sending GOAWAY and RST_STREAM REFUSED_STREAM on purpose; a stand-in control API lists the
tokens. Needs nothing from the other pushsim packages, so it runs in any tree.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import socket
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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSIM_")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def standin(tmp_path: Path):
    """(endpoints.json path, the stand-in APNs server, the provider key) for one test."""
    def start(**kw: Any) -> tuple[Path, TinyH2Server, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        (tmp_path / "key.p8").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        apns = H2InThread(**kw)
        admin = StandInAdmin()
        stops.extend([admin.stop, apns.stop])
        port = apns.server.port
        endpoints = tmp_path / "endpoints.json"
        endpoints.write_text(json.dumps({
            "apns": {"url": f"https://127.0.0.1:{port}", "h2c_url": f"http://127.0.0.1:{port}",
                     "topic": "com.example.app", "key_file": str(tmp_path / "key.p8"),
                     "key_id": "KEYID12345", "team_id": "TEAM123456"},
            "admin": {"url": admin.url}}))
        return endpoints, apns.server, key
    stops: list = []
    yield start
    for stop in stops:
        stop()


def test_apns_user_rides_out_goaway_and_refused_streams(standin, tmp_path: Path) -> None:
    endpoints, srv, key = standin(initial_streams=1, raise_to=50, goaway_after=150, rst_every=37)
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtests/locustfile_apns.py", "--headless", "-u", "10",
         "-r", "10", "-t", "3s", "--only-summary", "--stop-timeout", "2", "--apns-transport", "h2c",
         "--pushsim-endpoints", str(endpoints), "--json-file", str(tmp_path / "stats"), "--csv", str(tmp_path / "run")],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=40)
    stats = json.loads((tmp_path / "stats.json").read_text())
    requests = sum(e["num_requests"] for e in stats)
    failures = sum(e["num_failures"] for e in stats)
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


RANGE_RE = re.compile(r"pushsim token range: worker (\d)/2 android=\[(\d+),(\d+)\) ios=\[(\d+),(\d+)\)")
USED_RE = re.compile(r"pushsim tokens used: worker \((\d), 2\) ios offset=(\d+) count=(\d+) requests=(\d+)")


def test_distributed_workers_get_disjoint_token_ranges(standin, tmp_path: Path) -> None:
    endpoints, srv, _key = standin()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["-f", "loadtests/locustfile_apns.py", "--pushsim-endpoints", str(endpoints), "--apns-transport", "h2c"]
    workers = [subprocess.Popen([sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port)], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        master = subprocess.run([sys.executable, "-m", "locust", *common, "--master", "--master-bind-host", "127.0.0.1",
                                 "--master-bind-port", str(port), "--expect-workers", "2", "--expect-workers-max-wait",
                                 "30", "--headless", "-u", "6", "-r", "6", "-t", "3s", "--only-summary",
                                 "--json-file", str(tmp_path / "stats")],
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
        logs = [w.communicate(timeout=20)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(5)
    assert master.returncode == 0, master.stderr[-3000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert sum(e["num_requests"] for e in stats) > 0 and sum(e["num_failures"] for e in stats) == 0
    ranges: dict[int, range] = {}
    for log in logs:
        m = RANGE_RE.search(log)
        assert m, log[-3000:]
        index, _a0, _a1, i0, i1 = map(int, m.groups())
        ranges[index] = range(i0, i1)
        used = USED_RE.search(log)
        assert used and int(used.group(4)) > 0, log[-3000:]
        assert (int(used.group(2)), int(used.group(3))) == (i0, i1 - i0)
    assert sorted(ranges) == [0, 1] and sorted([*ranges[0], *ranges[1]]) == list(range(len(TOKENS)))
    # The server saw pushes to both halves, and to nothing outside the token list.
    hit = {TOKENS.index(p.decode().rsplit("/", 1)[1]) for p in srv.paths}
    assert hit & set(ranges[0]) and hit & set(ranges[1])
