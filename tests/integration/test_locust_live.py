"""Headless locust runs (subprocesses) against a live `pushsim serve` on ephemeral ports.

Each run is bounded (`-t 2s`/`3s` plus a subprocess timeout) and reads locust's JSON/CSV output.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(90)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PUSHSIM_ENDPOINTS", None)
    return env


@pytest.fixture(scope="module")
def pushsim(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("pushsim-state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--state-dir", str(state), "--apns-port", "0",
         "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0",
         "--devices", "ios=300,android=300", "--seed", "7"],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("pushsim ready:"):
                ready.set()
    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(30):
            pytest.fail("pushsim serve did not get ready:\n" + "".join(lines[-30:]))
        endpoints = json.loads((state / "endpoints.json").read_text())
        yield {"state": state, "endpoints_file": state / "endpoints.json", **endpoints}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_locust(locustfile: str, pushsim: dict, out: Path, *args: str, users: int = 10,
               run_time: str = "3s", timeout: float = 45) -> tuple[int, dict[tuple[str, str], dict], str]:
    """(exit code, {(type, name): json entry}, log). Results go to `out` as JSON, CSV and HTML."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users), "-r", str(users),
           "-t", run_time, "--stop-timeout", "2", "--only-summary", "--pushsim-endpoints",
           str(pushsim["endpoints_file"]), "--json-file", str(out / "stats"), "--csv", str(out / "run"),
           "--html", str(out / "report.html"), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    stats_file = out / "stats.json"
    entries = json.loads(stats_file.read_text()) if stats_file.exists() else []
    return proc.returncode, {(e["method"], e["name"]): e for e in entries}, proc.stdout + proc.stderr


def totals(stats: dict, request_type: str) -> tuple[int, int]:
    rows = [e for (t, _n), e in stats.items() if t == request_type]
    return sum(e["num_requests"] for e in rows), sum(e["num_failures"] for e in rows)


def failure_texts(out: Path) -> dict[str, int]:
    with open(out / "run_failures.csv") as f:
        return {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(f)}


def test_apns_user_headless_zero_failures_and_passing_gates(pushsim, tmp_path) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_apns.py", pushsim, tmp_path,
                                "--gate-max-fail-ratio", "0", "--gate-min-rps", "5", "--gate-max-p95-ms", "5000")
    requests, failures = totals(stats, "APNS")
    assert requests > 0 and failures == 0, log[-3000:]
    assert {n for (_t, n) in stats} >= {"alert", "background"}      # the 50/50 silent mix
    assert rc == 0 and "pushsim gates passed" in log
    assert (tmp_path / "report.html").stat().st_size > 1000 and (tmp_path / "run_stats.csv").exists()


@pytest.mark.parametrize("http,transport", [("2", "tls"), ("1.1", "h2c")])
def test_fcm_user_headless_zero_failures(pushsim, tmp_path, http: str, transport: str) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_fcm.py", pushsim, tmp_path,
                                "--fcm-http", http, "--fcm-transport", transport)
    requests, failures = totals(stats, "FCM")
    assert requests > 0 and failures == 0, log[-3000:]
    token_requests, token_failures = totals(stats, "OAUTH")
    assert token_requests >= 1 and token_failures == 0        # the OAuth grant ran, once per process
    assert token_requests < requests
    assert rc == 0, log[-3000:]


def test_injected_fault_shows_as_failures_and_flips_the_gate(pushsim, tmp_path) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_apns.py", pushsim, tmp_path,
                                "--apns-topic", "com.wrong.topic", "--gate-max-fail-ratio", "0.01",
                                run_time="2s", users=4)
    requests, failures = totals(stats, "APNS")
    assert requests > 0 and failures == requests, log[-3000:]
    texts = failure_texts(tmp_path)
    # The APNs reason is the failure text locust groups by, e.g. "400 TopicDisallowed".
    assert texts and all(re.search(r"PushRejected\('4\d\d [A-Z][A-Za-z]+'\)|^4\d\d [A-Z]", t) for t in texts), texts
    assert rc == 3 and "pushsim gate failed: failure ratio" in log


def test_a_lenient_gate_passes_a_run_with_some_bad_tokens(pushsim, tmp_path) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_fcm.py", pushsim, tmp_path,
                                "--bad-token-ratio", "0.3", "--gate-max-fail-ratio", "0.9",
                                run_time="2s", users=4)
    requests, failures = totals(stats, "FCM")
    assert 0 < failures < requests, log[-3000:]
    assert any("INVALID_ARGUMENT" in t or "UNREGISTERED" in t for t in failure_texts(tmp_path))
    assert rc == 0          # locust alone exits 1 on any failure; the gate decides instead


def test_apns_user_with_certificate_auth(pushsim, tmp_path) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_apns.py", pushsim, tmp_path, "--apns-auth", "cert",
                                run_time="2s", users=4)
    requests, failures = totals(stats, "APNS")
    assert requests > 0 and failures == 0 and rc == 0, log[-3000:]


def test_shape_runs_and_stops_by_itself(pushsim, tmp_path) -> None:
    rc, stats, log = run_locust("loadtests/locustfile_apns.py,loadtests/locustfile_shape.py", pushsim, tmp_path,
                                "--shape", "spike", "--spike-at", "1", "--spike-length", "2",
                                users=6, run_time="4s")
    requests, failures = totals(stats, "APNS")
    assert requests > 0 and failures == 0 and rc == 0, log[-3000:]
    steps = [int(n) for n in re.findall(r"Shape test updating to (\d+) users", log)]
    assert steps[:3] == [1, 6, 1], steps          # base (peak/10 → 1), spike to -u 6, back to base
    assert "Shape test completed" in log          # the shape, not -t, ended the run


class TriggerServer:
    """An HTTP trigger in front of a sender: POST {"token": ...} → `send(token)`, 202 or 502.

    Sends one at a time: the senders here share one sync HTTP/2 client across handler threads,
    which is not what they were written for."""

    def __init__(self, send: Callable[[str], bool]) -> None:
        self.triggers = 0
        self.errors: list[str] = []
        lock = threading.Lock()
        trigger = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                try:
                    with lock:
                        ok = send(body["token"])
                except Exception as exc:  # noqa: BLE001 - reported to the test, answered 502
                    trigger.errors.append(repr(exc))
                    ok = False
                trigger.triggers += 1
                self.send_response(202 if ok else 502)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tiny_apns_sender(pushsim: dict) -> tuple[Callable[[str], bool], Callable[[], None]]:
    """A few lines of sender: one APNs alert over h2c, expiration 0 (try once, never store)."""
    import httpx

    from loadtests.auth import ProviderTokens
    apns = pushsim["apns"]
    tokens = ProviderTokens.from_file(apns["key_file"], apns["key_id"], apns["team_id"])
    http = httpx.Client(http1=False, http2=True, base_url=apns["h2c_url"], timeout=5)

    def send(token: str) -> bool:
        r = http.post(f"/3/device/{token}", content=b'{"aps":{"alert":"hi"}}', headers={
            "authorization": tokens.header(), "apns-topic": apns["topic"], "apns-push-type": "alert",
            "apns-expiration": "0"})
        return r.status_code == 200
    return send, http.close


def check_e2e(stats: dict, log: str, out: Path, trigger: TriggerServer, platform: str) -> None:
    triggers, trigger_failures = totals(stats, "TRIGGER")
    e2e, e2e_failures = totals(stats, "E2E")
    assert triggers > 0 and trigger_failures == 0, (trigger.errors[:3], log[-3000:])
    assert trigger.triggers >= triggers
    # Every trigger got its device outcome: delivered, or dropped by the simulated fleet (offline
    # with apns-expiration 0, force-quit) — which the E2E stats report with the drop reason.
    assert e2e > e2e_failures >= 0, log[-3000:]
    if e2e_failures:
        assert all(t.startswith("E2EFailure('dropped:") for t in failure_texts(out)), failure_texts(out)
    entry = stats[("E2E", platform)]
    assert 0 < entry["total_response_time"] / entry["num_requests"] < 5000


def test_sender_under_test_end_to_end(pushsim, tmp_path) -> None:
    send, close = tiny_apns_sender(pushsim)
    trigger = TriggerServer(send)
    try:
        rc, stats, log = run_locust("loadtests/locustfile_sender.py", pushsim, tmp_path,
                                    "--sut-url", trigger.url, "--e2e-timeout", "5", users=4)
    finally:
        trigger.close()
        close()
    check_e2e(stats, log, tmp_path, trigger, "ios")


def test_example_sender_end_to_end_over_fcm(pushsim, tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("pushsim_example_sender", REPO / "examples" / "sender.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module         # its dataclasses look their module up there
    spec.loader.exec_module(module)
    sender = module.Sender.from_endpoints(json.loads(pushsim["endpoints_file"].read_text()))
    trigger = TriggerServer(lambda token: sender.send_fcm(token, {"notification": {"title": "hi"}}).ok)
    try:
        rc, stats, log = run_locust("loadtests/locustfile_sender.py", pushsim, tmp_path, "--sut-url", trigger.url,
                                    "--sut-platform", "android", "--e2e-timeout", "5", users=4)
    finally:
        trigger.close()
        sender.close()
    check_e2e(stats, log, tmp_path, trigger, "android")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANGE_RE = re.compile(r"pushsim token range: worker (\d)/2 android=\[(\d+),(\d+)\) ios=\[(\d+),(\d+)\)")
USED_RE = re.compile(r"pushsim tokens used: worker \((\d), 2\) (ios|android) offset=(\d+) count=(\d+) requests=(\d+)")


def test_distributed_two_workers_split_the_tokens(pushsim, tmp_path) -> None:
    port = _free_port()
    common = ["-f", "loadtests/locustfile.py", "--pushsim-endpoints", str(pushsim["endpoints_file"])]
    workers = [subprocess.Popen([sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port)], cwd=REPO, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        master = subprocess.run([sys.executable, "-m", "locust", *common, "--master", "--master-bind-host", "127.0.0.1",
                                 "--master-bind-port", str(port), "--expect-workers", "2",
                                 "--expect-workers-max-wait", "30", "--headless", "-u", "8", "-r", "8", "-t", "3s",
                                 "--only-summary", "--json-file", str(tmp_path / "stats")],
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
    ranges = {}
    for log in logs:
        m = RANGE_RE.search(log)
        assert m, log[-3000:]
        i, a0, a1, i0, i1 = map(int, m.groups())
        ranges[i] = {"android": range(a0, a1), "ios": range(i0, i1)}
        used = [u for u in USED_RE.findall(log) if int(u[0]) == i]
        assert used and sum(int(u[4]) for u in used) > 0, log[-3000:]     # this worker sent pushes
        for _w, platform, offset, count, _n in used:                      # ... from its own range only
            assert int(offset) == ranges[i][platform].start and int(count) == len(ranges[i][platform])
    assert sorted(ranges) == [0, 1]
    for platform in ("ios", "android"):
        a, b = ranges[0][platform], ranges[1][platform]
        assert len(a) and len(b) and not set(a) & set(b)
        assert sorted([*a, *b]) == list(range(300))


def test_device_side_in_locust_outputs_and_its_gates(pushsim, tmp_path) -> None:
    out = tmp_path / "dev"
    rc, stats, log = run_locust("loadtests/locustfile_apns.py", pushsim, out, "--gate-min-receipt-rate", "0.01",
                                "--gate-max-findings", "1000", run_time="2s")
    assert rc == 0 and "pushsim gates passed" in log, log[-3000:]
    side = json.loads((out / "stats.pushsim.json").read_text())
    assert side["accepted"] > 0 and side["delivered"] > 0 and side["findings"] is not None
    assert side["accepted"] >= totals(stats, "APNS")[0] - totals(stats, "APNS")[1]
    page = (out / "report.html").read_text()
    assert page.count("pushsim: what the devices did") == 1 and f"<td>accepted</td>" in page
    # an impossible receipt rate flips the gate, with the number in the log
    rc, _stats, log = run_locust("loadtests/locustfile_apns.py", pushsim, tmp_path / "dev2",
                                 "--gate-min-receipt-rate", "1.01", run_time="1s")
    assert rc == 3 and "pushsim gate failed: receipt rate" in log, log[-3000:]
