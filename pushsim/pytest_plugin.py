"""pytest plugin: the fakes in-process on ephemeral ports, fresh credentials, state reset per test.

Fixtures
    pushsim_server   session: a `PushSimClient` for one server shared by the whole run
    pushsim          function: the same client, with journal, ledger and fault rules reset first
    pushsim_endpoints function: the endpoints dict (URLs, CA file, credentials) for your sender

Reusing a server you started yourself (e.g. `pushsim serve` in CI, another language's tests):
    PUSHSIM_ENDPOINTS=/path/to/endpoints.json  or  PUSHSIM_ADMIN_URL=http://127.0.0.1:2199
Server settings for the in-process one: PUSHSIM_TEST_DEVICES (default "ios=20,android=20"),
PUSHSIM_TEST_SEED (default 0), or the `--pushsim-devices` / `--pushsim-seed` options.

Every helper talks to the control API over HTTP, so it behaves the same against either kind of server,
and is plain sync code (safe to call from async tests: the server runs on its own thread). Awaitable
twins (`await pushsim.await_delivery(...)`) poll without blocking the event loop.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

DEFAULT_DEVICES = "ios=20,android=20"


class PushSimError(AssertionError):
    pass


class PushSimClient:
    """Helpers over the control API (`admin.url`)."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.endpoints = endpoints
        self.admin_url = endpoints["admin"]["url"].rstrip("/")

    # plumbing -------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.admin_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise PushSimError(f"{method} {path} → {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    # the fleet ------------------------------------------------------------------------------
    def devices(self, platform: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self.request("GET", "/devices", query={"platform": platform, "limit": limit, "offset": offset})["devices"]

    def tokens(self, platform: str | None = None, limit: int = 100) -> list[str]:
        return [d["token"] for d in self.devices(platform, limit)]

    def device(self, token: str) -> dict[str, Any]:
        return self.request("GET", f"/devices/{urllib.parse.quote(token, safe='')}")

    def deliveries(self, token: str) -> list[dict[str, Any]]:
        return self.device(token).get("deliveries", [])

    def set_state(self, token: str, **change: Any) -> dict[str, Any]:
        return self.request("POST", f"/devices/{urllib.parse.quote(token, safe='')}/state", change)

    def uninstall(self, token: str) -> dict[str, Any]:
        return self.set_state(token, uninstall=True)

    def open_app(self, token: str) -> dict[str, Any]:
        return self.request("POST", f"/devices/{urllib.parse.quote(token, safe='')}/open", {})

    # journal, stats, reset ------------------------------------------------------------------
    def journal(self, token: str | None = None, service: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self.request("GET", "/journal", query={"token": token, "service": service, "limit": limit})["entries"]

    def stats(self) -> dict[str, Any]:
        return self.request("GET", "/stats")

    def reset(self) -> None:
        self.request("POST", "/reset", {})

    # faults ---------------------------------------------------------------------------------
    def add_fault(self, rule: dict[str, Any] | None = None, **parts: Any) -> dict[str, Any]:
        """`add_fault({"scope": ..., "action": ...})` or `add_fault(scope=..., trigger=..., action=...)`."""
        return self.request("POST", "/faults", rule if rule is not None else parts)["faults"][0]

    def faults(self) -> list[dict[str, Any]]:
        return self.request("GET", "/faults")["faults"]

    def remove_fault(self, rule_id: str) -> None:
        self.request("DELETE", f"/faults/{urllib.parse.quote(rule_id, safe='')}")

    def clear_faults(self) -> None:
        self.request("DELETE", "/faults")

    # waiting and asserting ------------------------------------------------------------------
    def wait_for(self, probe: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got:
                return got
            if time.monotonic() >= deadline:
                raise PushSimError(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(interval)

    def _settled(self, token: str, outcome: str, count: int) -> Callable[[], list[dict[str, Any]] | None]:
        def probe() -> list[dict[str, Any]] | None:
            ds = self.deliveries(token)
            got = [d for d in ds if d.get("outcome") == outcome]
            if len(got) >= count:
                return got
            # Settled otherwise is final: waiting longer cannot turn those into `outcome`.
            open_ = sum(1 for d in ds if d.get("outcome") == "pending")
            if len(got) + open_ < count:
                lost = [d for d in ds if d.get("outcome") not in (outcome, "pending")]
                if lost:
                    why = ", ".join(f"seq {d.get('seq')} {d.get('outcome')} ({d.get('reason')})" for d in lost[-3:])
                    raise PushSimError(f"wanted {count} {outcome} to {token[:16]}…, but {why}; "
                                       f"{len(got)} {outcome}, {open_} pending")
            return None
        return probe

    def wait_for_delivery(self, token: str, timeout: float = 5.0, count: int = 1,
                          outcome: str = "delivered") -> list[dict[str, Any]]:
        """Block until `token` has `count` notifications with `outcome`; returns them. Fails at once
        (with the outcome and reason) when too few are left pending to get there: a notification
        already dropped (or delivered, when waiting for a drop) cannot change any more."""
        try:
            return self.wait_for(self._settled(token, outcome, count), timeout, what=f"{count} {outcome} to {token[:16]}…")
        except PushSimError as e:
            raise PushSimError(f"{e}; deliveries so far: {self.deliveries(token)}") from None

    async def await_delivery(self, token: str, timeout: float = 5.0, count: int = 1,
                             outcome: str = "delivered") -> list[dict[str, Any]]:
        probe = self._settled(token, outcome, count)
        deadline = time.monotonic() + timeout
        while True:
            got = await asyncio.to_thread(probe)
            if got:
                return got
            if time.monotonic() >= deadline:
                raise PushSimError(f"timed out after {timeout:g}s waiting for {count} {outcome} to {token[:16]}…; "
                                   f"deliveries so far: {await asyncio.to_thread(self.deliveries, token)}")
            await asyncio.sleep(0.02)

    def assert_outcome(self, token: str, outcome: str, reason: str | None = None, count: int | None = None) -> None:
        """Every (or exactly `count`) notification to `token` ended as `outcome` (with `reason`)."""
        ds = self.deliveries(token)
        hits = [d for d in ds if d.get("outcome") == outcome and (reason is None or d.get("reason") == reason)]
        ok = len(hits) == count if count is not None else bool(ds) and len(hits) == len(ds)
        if not ok:
            want = f"{count if count is not None else 'all'} {outcome}" + (f" ({reason})" if reason else "")
            raise PushSimError(f"expected {want} for {token[:16]}…, got {[(d.get('outcome'), d.get('reason')) for d in ds]}")

    def assert_request_made(self, token: str | None = None, status: int | None = None,
                            reason: str | None = None, count: int | None = None,
                            service: str | None = None) -> list[dict[str, Any]]:
        """pytest-httpserver style: the journal holds (exactly `count`, or at least one) matching requests."""
        es = [e for e in self.journal(token=token, service=service)
              if (status is None or e["status"] == status) and (reason is None or e["reason"] == reason)]
        if (count is None and not es) or (count is not None and len(es) != count):
            seen = [(e["service"], e["status"], e["reason"]) for e in self.journal(token=token, service=service)]
            raise PushSimError(f"expected {count if count is not None else '≥1'} request(s) with status={status} "
                               f"reason={reason}, journal has {seen}")
        return es

    # the conformance report (pushsim/report) ----------------------------------------------------
    def report(self, ignore: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """GET /report: {"findings": [...], "metrics": {...}, "summary": {...}} (docs/report.md)."""
        return self.request("GET", "/report", query={"ignore": ",".join(ignore) or None})

    def assert_conformant(self, fail_on: str = "error", ignore: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Fail when the sender has findings at or above `fail_on`, each listed with its evidence."""
        from .report import failing
        from .report.render import finding_line
        rep = self.report(ignore)
        bad = failing(rep["findings"], fail_on)
        if bad:
            raise PushSimError(f"the sender is not conformant: {len(bad)} finding(s) at or above {fail_on}:\n"
                               + "\n".join(finding_line(f) for f in bad))
        return rep

# fixtures -------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("pushsim")
    g.addoption("--pushsim-devices", default=None, help="fleet for the in-process server (env PUSHSIM_TEST_DEVICES)")
    g.addoption("--pushsim-seed", default=None, type=int, help="seed for the in-process server (env PUSHSIM_TEST_SEED)")


def _external_endpoints() -> dict[str, Any] | None:
    path = os.environ.get("PUSHSIM_ENDPOINTS")
    if path:
        return json.loads(Path(path).read_text())
    url = os.environ.get("PUSHSIM_ADMIN_URL")
    if url:
        with urllib.request.urlopen(url.rstrip("/") + "/endpoints", timeout=10) as r:
            ep = json.loads(r.read())
        ep.setdefault("admin", {"url": url})
        return ep
    return None


@pytest.fixture(scope="session")
def pushsim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushSimClient]:
    external = _external_endpoints()
    if external is not None:
        yield PushSimClient(external)
        return
    from pushsim.config import Config
    from pushsim.server import run_in_thread

    opt = request.config.getoption
    devices = opt("--pushsim-devices") or os.environ.get("PUSHSIM_TEST_DEVICES", DEFAULT_DEVICES)
    seed = opt("--pushsim-seed")
    seed = int(os.environ.get("PUSHSIM_TEST_SEED", "0")) if seed is None else seed
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0,
                 state_dir=tmp_path_factory.mktemp("pushsim"), devices=devices, seed=seed)
    sim, stop = run_in_thread(cfg)
    try:
        yield PushSimClient(sim.endpoints)
    finally:
        stop()


@pytest.fixture
def pushsim(pushsim_server: PushSimClient) -> PushSimClient:
    pushsim_server.reset()
    return pushsim_server


@pytest.fixture
def pushsim_endpoints(pushsim: PushSimClient) -> dict[str, Any]:
    return pushsim.endpoints
