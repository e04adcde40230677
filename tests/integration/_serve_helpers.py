"""Shared bits for the serve/control integration tests: configs on ephemeral ports, APNs requests."""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt

from pushsim.config import Config
from pushsim.control import ROUTES


def ephemeral_config(state_dir: Path, **kw: Any) -> Config:
    values: dict[str, Any] = {"apns_port": 0, "apns_h2c_port": 0, "fcm_port": 0, "fcm_h2c_port": 0,
                              "admin_port": 0, "devices": "ios=5,android=3", **kw}
    return Config(state_dir=state_dir, **values)


ROOT = Path(__file__).resolve().parents[2]
EPHEMERAL_PORTS = ["--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
                   "--admin-port", "0"]


def cli_env() -> dict[str, str]:
    """The environment for a `pushsim` subprocess: this checkout, no PUSHSIM_* settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSIM_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def serve_subprocess(state_dir: Path, *args: str, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """`pushsim serve` as a subprocess on ephemeral ports: its endpoints once it printed its ready
    line; SIGINT (then SIGKILL) to its PID afterwards."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "serve.log"       # a file, not a pipe: a chatty server never blocks on it
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pushsim", "serve", "--state-dir", str(state_dir),
                                 *EPHEMERAL_PORTS, *args], cwd=ROOT, env=cli_env(), text=True,
                                stdout=subprocess.PIPE, stderr=err)
    try:
        timer = threading.Timer(timeout, proc.kill)   # a hung start fails the test instead of hanging it
        timer.start()
        try:
            line = proc.stdout.readline()            # type: ignore[union-attr]
        finally:
            timer.cancel()
        if not line.startswith("pushsim ready: "):
            proc.kill()
            raise AssertionError(f"pushsim serve did not start: {line!r} {log.read_text()}")
        yield json.loads(Path(line.removeprefix("pushsim ready: ").strip()).read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def provider_token(endpoints: dict[str, Any], iat: float | None = None) -> str:
    a = endpoints["apns"]
    return jwt.encode({"iss": a["team_id"], "iat": int(iat if iat is not None else time.time())},
                      Path(a["key_file"]).read_text(), algorithm="ES256", headers={"kid": a["key_id"]})


def apns_client(endpoints: dict[str, Any]) -> httpx.Client:
    return httpx.Client(http2=True, verify=ssl.create_default_context(cafile=endpoints["ca_file"]), base_url=endpoints["apns"]["url"], timeout=10)


def push(client: httpx.Client, endpoints: dict[str, Any], token: str, jwt_token: str,
         apns_id: str | None = None) -> httpx.Response:
    headers = {"authorization": f"bearer {jwt_token}", "apns-topic": endpoints["apns"]["topic"],
               "apns-push-type": "alert", "apns-priority": "10"}
    if apns_id:
        headers["apns-id"] = apns_id
    return client.post(f"/3/device/{token}", headers=headers, content=b'{"aps":{"alert":"hello"}}')


def walk_routes(admin: httpx.Client, token: str) -> dict[str, int]:
    """Ask every route of the control-API table once → {"METHOD path": status}. `{token}` is a real
    install's token; `{id}` a fault rule made for the purpose. An unrouted path would be 404/405."""
    seen: dict[str, int] = {}
    for route in ROUTES:
        if "{id}" in route.path:
            assert admin.post("/faults", json={"id": "walk", "action": {"type": "stall"}}).status_code == 201
        path = route.path.format(token=token, id="walk")
        with admin.stream(route.method, path) as r:   # /events: the headers are the answer
            seen[f"{route.method} {route.path}"] = r.status_code
    admin.delete("/faults")
    return seen


def promtool_check(text: str) -> None:
    """`promtool check metrics` on a scrape (Debian's prometheus package; ./run.sh test installs it)."""
    import shutil
    import subprocess

    import pytest
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus; ./run.sh test installs it)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def funnel_of_metrics(text: str) -> dict[str, object]:
    """The /stats funnel as the scrape tells it, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    out: dict[str, object] = {"accepted": 0, "delivered": 0, "rejected": {}, "dropped": {}, "pending": {}}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("pushsim_accepted_total", "pushsim_delivered_total"):
                out[s.name.removeprefix("pushsim_").removesuffix("_total")] = int(s.value)
            elif s.name in ("pushsim_rejected_total", "pushsim_dropped_total", "pushsim_pending"):
                key = s.name.removeprefix("pushsim_").removesuffix("_total")
                if s.value:
                    out[key][s.labels["reason"]] = int(s.value)   # type: ignore[index]
    return out


def consistent_scrape(admin: httpx.Client) -> tuple[dict[str, object], str]:
    """(/stats funnel, /metrics text) taken while nothing settled in between (deadline-bounded)."""
    import time
    deadline = time.monotonic() + 10
    keys = ("accepted", "delivered", "rejected", "dropped", "pending")
    while True:
        before = {k: admin.get("/stats").json()[k] for k in keys}
        text = admin.get("/metrics").text
        after = {k: admin.get("/stats").json()[k] for k in keys}
        if before == after or time.monotonic() > deadline:
            return {k: {r: n for r, n in v.items() if n} if isinstance(v, dict) else v
                    for k, v in after.items()}, text
        time.sleep(0.05)


def summary_events(admin: httpx.Client, n: int) -> list[tuple[str, dict[str, object]]]:
    """The first n (id, funnel) events of /events?summary=1."""
    import json
    out: list[tuple[str, dict[str, object]]] = []
    ident, kind = "", ""
    with admin.stream("GET", "/events", params={"summary": "1"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                assert kind == "stats"
                out.append((ident, json.loads(line[6:])))
                if len(out) == n:
                    break
    return out
