"""The pytest plugin as users run it: a separate pytest process with `-p pushsim.pytest_plugin`."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]

GENERATED = '''
import time

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from fake_apns.testing import make_jwt
from pushsim.pytest_plugin import PushSimError

SEEN = {}


def send(pushsim, token):
    a = pushsim.endpoints["apns"]
    key = load_pem_private_key(open(a["key_file"], "rb").read(), None)
    auth = make_jwt(key, a["key_id"], a["team_id"], int(time.time())).decode()
    with httpx.Client(http1=False, http2=True, timeout=3) as c:
        return c.post(f"{a['h2c_url']}/3/device/{token}", content=b'{"aps":{"alert":"x"}}',
                      headers={"authorization": f"bearer {auth}", "apns-topic": a["topic"],
                               "apns-push-type": "alert"})


def test_a_fault_and_delivery(pushsim):
    SEEN["admin"] = pushsim.admin_url
    tok = pushsim.tokens("ios")[0]
    pushsim.set_state(tok, online=True, app_state="foreground", low_power=False)   # the default fleet has offline windows
    pushsim.add_fault(scope={"service": "apns", "tokens": [tok]}, trigger={"first": 1},
                      action={"type": "respond", "reason": "ServiceUnavailable"})
    assert send(pushsim, tok).status_code == 503
    assert send(pushsim, tok).status_code == 200
    pushsim.wait_for_delivery(tok, timeout=5)
    pushsim.assert_outcome(tok, "delivered", count=1)
    pushsim.assert_request_made(token=tok, status=503, reason="ServiceUnavailable", count=1)


def test_b_state_was_reset_but_server_shared(pushsim):
    assert pushsim.admin_url == SEEN["admin"]
    assert pushsim.journal() == [] and pushsim.faults() == []
    assert pushsim.stats()["accepted"] == 0


def test_c_wait_times_out_with_a_clear_message(pushsim):
    tok = pushsim.tokens("ios")[1]
    with pytest.raises(PushSimError, match="timed out after 0.2s"):
        pushsim.wait_for_delivery(tok, timeout=0.2)
    with pytest.raises(PushSimError, match="expected 1 request"):
        pushsim.assert_request_made(token=tok, count=1)


@pytest.mark.asyncio
async def test_d_async_helpers(pushsim):
    tok = pushsim.tokens("ios")[2]
    pushsim.set_state(tok, online=True, app_state="foreground", low_power=False)   # the default fleet has offline windows
    assert send(pushsim, tok).status_code == 200
    got = await pushsim.await_delivery(tok, timeout=5)
    assert got[0]["outcome"] == "delivered"


def test_e_tokens_and_devices(pushsim, pushsim_endpoints):
    assert len(pushsim.tokens("ios")) == 3 and len(pushsim.tokens("android")) == 2
    assert set(pushsim_endpoints) >= {"apns", "fcm", "admin", "ca_file"}
'''


def plugin_args() -> list[str]:
    """`-p pushsim.pytest_plugin` from a checkout; nothing when installed (the pytest11 entry point loads it,
    and naming it again would register the module twice)."""
    from importlib.metadata import entry_points

    installed = any(ep.value == "pushsim.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "pushsim.pytest_plugin"]


def run_pytest(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for var in ("PUSHSIM_ENDPOINTS", "PUSHSIM_ADMIN_URL"):     # an outer run's reuse must not leak in
        if var not in (env or {}):
            e.pop(var, None)
    return subprocess.run([sys.executable, "-m", "pytest", *plugin_args(), "-q",
                           "-p", "no:cacheprovider", *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.timeout(150)
def test_plugin_fixtures_and_the_example_sender_suite(tmp_path: Path) -> None:
    # One pytest process (and one session server) for both files: process start-up is the cost here.
    # The example sender's suite passing here is the "only the plugin" acceptance check.
    (tmp_path / "test_generated.py").write_text(textwrap.dedent(GENERATED))
    r = run_pytest(["--pushsim-devices", "ios=3,android=2", "-rA", "test_generated.py",
                    str(ROOT / "examples" / "test_sender.py")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 passed" in r.stdout
    assert "PASSED" in r.stdout and "test_sender.py::test_429_with_retry_after_is_retried_after_the_wait" in r.stdout


@pytest.mark.timeout(150)
def test_plugin_reuses_an_external_server(tmp_path: Path) -> None:
    from pushsim.config import Config
    from pushsim.server import run_in_thread

    sim, stop = run_in_thread(Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0,
                                     devices="ios=3,android=2", state_dir=tmp_path / "state"))
    try:
        (tmp_path / "test_ext.py").write_text(textwrap.dedent(f'''
            def test_uses_the_running_server(pushsim):
                assert pushsim.admin_url == {sim.endpoints["admin"]["url"]!r}
        '''))
        r = run_pytest(["test_ext.py"], tmp_path, env={"PUSHSIM_ENDPOINTS": str(sim.endpoints_file)})
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        stop()


def test_admin_url_reuse_reads_endpoints_from_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pushsim.config import Config
    from pushsim.pytest_plugin import _external_endpoints
    from pushsim.server import run_in_thread

    monkeypatch.delenv("PUSHSIM_ENDPOINTS", raising=False)
    monkeypatch.delenv("PUSHSIM_ADMIN_URL", raising=False)
    assert _external_endpoints() is None
    sim, stop = run_in_thread(Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0,
                                     devices="ios=1", state_dir=tmp_path))
    try:
        monkeypatch.setenv("PUSHSIM_ADMIN_URL", sim.endpoints["admin"]["url"])
        ep = _external_endpoints()
        assert ep is not None and ep["apns"]["url"] == sim.endpoints["apns"]["url"]
    finally:
        stop()
