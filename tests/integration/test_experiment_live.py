"""`serve --experiment`: holdout cohorts on a live server, read through the control API."""
from __future__ import annotations

import httpx
import pytest

from _serve_helpers import apns_client, ephemeral_config, provider_token
from device_sim.cohorts import Experiment
from pushsim.server import run_in_thread
from tests.waiting import wait_until

IOS = 40
# Every install in the background, online, with Background App Refresh on and no scheduled opens:
# a silent push wakes a treated app; the test opens each app itself.
SCENARIO = """
[profile.ios]
app_state = { background = 1.0 }
low_power = 0.0
bar_off = 0.0
offline = 0.0
opens_per_day = 0.0

[app]
task_median = 0.01
task_sigma = 0.0
failure_rate = 0.0

[experiment]
mode = "{mode}"
arms = {{ holdout = 0.3, treated = 0.7 }}
seed = 11
"""


def _serve(tmp_path, mode: str):
    path = tmp_path / f"exp-{mode}.toml"
    path.write_text(SCENARIO.replace("{mode}", mode).replace("{{", "{").replace("}}", "}"))
    cfg = ephemeral_config(tmp_path / f"state-{mode}", devices=f"ios={IOS}")
    cfg.extra.update(scenario=str(path), experiment=str(path))
    return run_in_thread(cfg), Experiment.from_file(str(path))


def _silent(client: httpx.Client, endpoints, jwt: str, token: str) -> None:
    r = client.post(f"/3/device/{token}", content=b'{"aps":{"content-available":1}}',
                    headers={"authorization": f"bearer {jwt}", "apns-topic": endpoints["apns"]["topic"],
                             "apns-push-type": "background", "apns-priority": "5"})
    assert r.status_code == 200, r.text


def _assignments(admin: httpx.Client, **query) -> list[dict]:
    out, offset = [], 0
    while True:
        page = admin.get("/experiment/assignments", params={**query, "offset": offset, "limit": 7}).json()
        out += page["assignments"]
        offset += 7
        if offset >= page["total"]:
            return out


@pytest.fixture
def enforced(tmp_path):
    (sim, stop), exp = _serve(tmp_path, "enforced")
    with httpx.Client(base_url=sim.endpoints["admin"]["url"], timeout=10) as admin:
        yield sim, admin, exp
    stop()


def test_enforced_holdout_is_dropped_and_goes_stale_with_an_unchanged_sender(enforced):
    sim, admin, exp = enforced
    rows = _assignments(admin)
    assert [r["index"] for r in rows] == list(range(IOS))
    assert all(r["arm"] == exp.arm_of(r["index"]) for r in rows)
    holdout = [r["token"] for r in rows if r["arm"] == "holdout"]
    assert 0 < len(holdout) < IOS
    assert [r["token"] for r in _assignments(admin, arm="holdout")] == holdout
    jwt = provider_token(sim.endpoints)
    with apns_client(sim.endpoints) as apns:
        for r in rows:                       # the sender does not know about the experiment
            _silent(apns, sim.endpoints, jwt, r["token"])

    def settled() -> bool:
        s = admin.get("/stats/fleet").json()
        return s["background"]["running"] == 0 and s["background"]["started"] == IOS - len(holdout)
    wait_until(settled, "every treated install's background task finished")
    for r in rows:
        assert admin.post(f"/devices/{r['token']}/open", json={}).status_code == 200
    stats = admin.get("/stats").json()
    assert stats["dropped"].get("holdout") == len(holdout)
    assert stats["accepted"] == stats["delivered"] + sum(stats["dropped"].values()) + sum(stats["pending"].values())
    # enforced: the sender need not know, so sending to the holdout is no finding
    report = admin.get("/report").json()
    assert not [f for f in report["findings"] if f["rule"] == "experiment.send-to-holdout"]
    assert report["experiment"]["lift"]["treated"]["fresh_rate"]["estimate"] > 0   # the report shows the lift
    dev = admin.get(f"/devices/{holdout[0]}").json()
    assert dev["arm"] == "holdout" and dev["deliveries"][-1]["reason"] == "holdout"

    doc = admin.get("/experiment").json()["experiment"]
    arms = doc["arms"]
    assert arms["holdout"]["installs"] == len(holdout) and arms["treated"]["installs"] == IOS - len(holdout)
    assert arms["holdout"]["drops_by_reason"] == {"holdout": len(holdout)}
    assert arms["holdout"]["fresh_rate"]["estimate"] < arms["treated"]["fresh_rate"]["estimate"]
    lift = doc["lift"]["treated"]["fresh_rate"]
    assert lift["estimate"] > 0 and lift["ci95"][0] > 0
    assert doc["lift"]["treated"]["wakes_per_install_day"]["estimate"] > 0


def test_advertised_holdout_is_delivered_and_counted(tmp_path):
    (sim, stop), exp = _serve(tmp_path, "advertised")
    try:
        with httpx.Client(base_url=sim.endpoints["admin"]["url"], timeout=10) as admin:
            holdout = _assignments(admin, arm="holdout")
            jwt = provider_token(sim.endpoints)
            with apns_client(sim.endpoints) as apns:
                _silent(apns, sim.endpoints, jwt, holdout[0]["token"])
            wait_until(lambda: admin.get("/stats").json()["delivered"] == 1, "the push to the holdout delivered")
            doc = admin.get("/experiment").json()["experiment"]
            assert doc["mode"] == "advertised" and doc["sent_to_holdout"] == 1
            findings = [f for f in admin.get("/report").json()["findings"] if f["rule"] == "experiment.send-to-holdout"]
            assert len(findings) == 1 and findings[0]["count"] == 1
            assert findings[0]["tokens"] == [holdout[0]["token"]]
    finally:
        stop()


def test_experiment_routes_without_an_experiment_say_so(tmp_path):
    sim, stop = run_in_thread(ephemeral_config(tmp_path, devices="ios=2"))
    try:
        with httpx.Client(base_url=sim.endpoints["admin"]["url"], timeout=10) as admin:
            for path in ("/experiment", "/experiment/assignments"):
                r = admin.get(path)
                assert r.status_code == 409 and "--experiment" in r.json()["error"]
    finally:
        stop()


@pytest.mark.timeout(60)
def test_cluster_pools_every_workers_installs(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "exp.toml"
    path.write_text(SCENARIO.replace("{mode}", "enforced").replace("{{", "{").replace("}}", "}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--workers", "2", "--state-dir", str(tmp_path / "state"),
         "--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
         "--admin-port", "0", "--devices", f"ios={IOS}", "--scenario", str(path), "--experiment", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pushsim ready:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        ep = json.loads(Path(line.split(":", 1)[1].strip()).read_text())
        with httpx.Client(base_url=ep["admin"]["url"], timeout=10) as admin:
            rows = _assignments(admin)
            holdout = [r for r in rows if r["arm"] == "holdout"]
            jwt = provider_token(ep)
            with httpx.Client(http2=True, http1=False, base_url=ep["apns"]["h2c_url"], timeout=10) as apns:
                for r in rows:
                    _silent(apns, ep, jwt, r["token"])
            wait_until(lambda: admin.get("/stats").json()["accepted"] == IOS, "every push accepted", timeout=10)
            doc = admin.get("/experiment").json()["experiment"]
            assert doc["arms"]["holdout"]["installs"] == len(holdout)
            assert doc["arms"]["treated"]["installs"] == IOS - len(holdout)
            wait_until(lambda: admin.get("/experiment").json()["experiment"]["arms"]["holdout"]["drops_by_reason"]
                       == {"holdout": len(holdout)}, "every holdout push dropped, counted on its owner", timeout=10)
            dev = admin.get(f"/devices/{holdout[0]['token']}").json()
            assert dev["arm"] == "holdout"
    finally:
        proc.kill()
        proc.wait(10)
