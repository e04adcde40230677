"""`pushsim push`, `pushsim stats`, `pushsim run`: output, exit codes, env vars, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest


from pushsim.cli import main
from pushsim.config import Config
from pushsim.pytest_plugin import PushSimClient
from pushsim.server import run_in_thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushSimClient]:
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0, devices="ios=3,android=3",
                 state_dir=tmp_path_factory.mktemp("cli"))
    sim, stop = run_in_thread(cfg)
    client = PushSimClient(sim.endpoints)
    client.endpoints_file = str(sim.endpoints_file)    # type: ignore[attr-defined]
    yield client
    stop()


@pytest.fixture
def ps(server: PushSimClient, monkeypatch: pytest.MonkeyPatch) -> PushSimClient:
    for var in ("PUSHSIM_ENDPOINTS", "PUSHSIM_ADMIN_URL", "PUSHSIM_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    server.reset()
    return server


def apns_file(tmp_path: Path, doc: dict) -> str:
    p = tmp_path / "note.apns"
    p.write_text(json.dumps(doc))
    return str(p)


def test_push_apns_file_in_simctl_format(ps: PushSimClient, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tok = ps.tokens("ios")[0]
    ps.set_state(tok, online=True, app_state="foreground", low_power=False)   # the default fleet has offline windows
    f = apns_file(tmp_path, {"Simulator Target Bundle": ps.endpoints["apns"]["topic"],
                             "aps": {"alert": {"title": "hi"}}, "custom": 1})
    assert main(["push", tok, f, "--endpoints", ps.endpoints_file]) == 0
    out = capsys.readouterr().out
    assert out.startswith("apns 200 OK id=")
    ps.wait_for_delivery(tok, timeout=5)
    # the simctl key is not part of the payload APNs receives; the topic came from it
    assert ps.journal(token=tok)[0]["status"] == 200


def test_push_shows_reason_and_retry_after_and_exits_1(ps: PushSimClient, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tok = ps.tokens("ios")[1]
    ps.add_fault(scope={"service": "apns", "tokens": [tok]},
                 action={"type": "respond", "reason": "TooManyRequests", "retry_after": 3})
    monkeypatch.setenv("PUSHSIM_ENDPOINTS", ps.endpoints_file)          # env instead of the flag
    assert main(["push", tok, apns_file(tmp_path, {"aps": {"content-available": 1}}), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert (res["status"], res["reason"], res["retry_after"]) == (429, "TooManyRequests", "3")


def test_push_fcm_message_json(ps: PushSimClient, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tok = ps.tokens("android")[0]
    f = tmp_path / "msg.json"
    f.write_text(json.dumps({"message": {"token": "ignored", "data": {"k": "v"}}}))
    assert main(["push", tok, str(f), "--admin-url", ps.admin_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fcm 200 OK id=projects/")
    ps.uninstall(tok)
    assert main(["push", tok, str(f), "--admin-url", ps.admin_url, "--cleartext"]) == 1
    assert "fcm 404 UNREGISTERED" in capsys.readouterr().out


@pytest.mark.parametrize("argv_tail, words", [
    (["nope.apns"], "nope.apns: no such file"),
    (["BAD_JSON"], "not valid JSON"),
    (["NO_APS"], "\"aps\" object"),
])
def test_push_bad_input_is_one_line_exit_2(ps: PushSimClient, tmp_path: Path, capsys: pytest.CaptureFixture,
                                           argv_tail: list[str], words: str) -> None:
    files = {"BAD_JSON": "{oops", "NO_APS": json.dumps({"alert": "x"})}
    name = argv_tail[0]
    if name in files:
        (tmp_path / name).write_text(files[name])
        name = str(tmp_path / name)
    assert main(["push", ps.tokens("ios")[0], name, "--endpoints", ps.endpoints_file]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_running_server_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHSIM_ENDPOINTS", raising=False)
    monkeypatch.delenv("PUSHSIM_ADMIN_URL", raising=False)
    assert main(["stats", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "endpoints.json not found" in err and "pushsim serve" in err


def test_bad_flag_exits_2() -> None:
    with pytest.raises(SystemExit) as e:
        main(["push", "--bogus"])
    assert e.value.code == 2


def test_stats_table_and_json(ps: PushSimClient, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tok = ps.tokens("ios")[2]
    ps.set_state(tok, online=True, app_state="foreground", low_power=False)
    main(["push", tok, apns_file(tmp_path, {"aps": {"alert": "x"}}), "--endpoints", ps.endpoints_file])
    ps.wait_for_delivery(tok, timeout=5)
    capsys.readouterr()
    assert main(["stats", "--endpoints", ps.endpoints_file]) == 0
    table = capsys.readouterr().out
    assert "accepted" in table and "delivered" in table and "100.0%" in table
    assert main(["stats", "--endpoints", ps.endpoints_file, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accepted"] == 1


def test_run_example_scenario_progress_and_funnel(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}       # state in a temporary dir of its own
    r = subprocess.run([sys.executable, "-m", "pushsim", "run", str(ROOT / "examples" / "scenario.toml")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "100.0% 260/260 requests" in r.stderr          # progress on stderr (same traffic as --mode virtual)
    out = r.stdout
    assert "funnel" in out and "delivered" in out and "TooManyRequests" in out


def test_run_json_accounts_for_every_request(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(ROOT / "examples" / "scenario.toml"), "--json", "--no-progress",
                 "--max-requests", "100", "--state-dir", str(tmp_path)]) == 0
    s = json.loads(capsys.readouterr().out)
    f = s["funnel"]
    assert s["sent"] == 100 and sum(s["responses"].values()) == 100
    assert f["accepted"] + sum(f["rejected"].values()) == 100
    assert f["accepted"] == f["delivered"] + sum(f["dropped"].values()) + sum(f["pending"].values())
    assert f["rejected"].get("TooManyRequests", 0) >= 1            # the scenario's [[faults]] rule fired


def test_run_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    assert main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", str(ROOT / "examples" / "scenario.toml"), "--max-requests", "0"]) == 2
    assert "--max-requests" in capsys.readouterr().err


def test_run_bad_scenario_values_and_virtual_mode(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[fleet]\ndevices = "ios=lots"\n[[traffic]]\nplatform = "ios"\n')
    assert main(["run", str(bad)]) == 2
    assert "devices" in capsys.readouterr().err
    bad.write_text('duration = "long"\n[[traffic]]\nplatform = "ios"\n')
    assert main(["run", str(bad)]) == 2
    assert "bad scenario" in capsys.readouterr().err
    # the example has [[faults]]: a virtual run refuses them by name unless told to skip them
    assert main(["run", str(ROOT / "examples" / "scenario.toml"), "--mode", "virtual", "--json"]) == 2
    assert "--skip-faults" in capsys.readouterr().err
    assert main(["run", str(ROOT / "examples" / "scenario.toml"), "--mode", "virtual", "--json", "--skip-faults"]) == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)["digest"]) == 64 and "skipping 1 [[faults]]" in out.err


def test_run_live_paces_on_the_scaled_clock_and_says_when_it_truncates(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    scen = tmp_path / "paced.toml"
    # one push every 10 device seconds for 10 device minutes: 59 requests, cut at 20
    scen.write_text('duration = 600\n[fleet]\ndevices = "ios=1"\n[[traffic]]\nplatform = "ios"\n'
                    'push_type = "alert"\nper_hour = 360\n')
    assert main(["run", str(scen), "--json", "--no-progress", "--max-requests", "20", "--clock", "scaled:500",
                 "--settle", "0.5", "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr()
    s = json.loads(out.out)
    assert s["sent"] == 20
    assert "has 59 requests; sending the first 20" in out.err
    assert "as fast as" not in out.err
    # the 20th request is due 200 device seconds in: 0.4 s of wall time at scaled:500
    assert s["elapsed_s"] >= 0.38
    assert main(["run", str(scen), "--json", "--no-progress", "--max-requests", "5",
                 "--settle", "0.5", "--state-dir", str(tmp_path / "state2")]) == 0
    assert "as fast as the fakes answer" in capsys.readouterr().err


def test_push_wait_prints_what_the_device_did(ps: PushSimClient, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    ok, quit_ = ps.tokens("ios")[0], ps.tokens("ios")[1]
    ps.set_state(ok, online=True, app_state="foreground", low_power=False)
    assert main(["push", ok, apns_file(tmp_path, {"aps": {"alert": "x"}}), "--endpoints", ps.endpoints_file,
                 "--wait"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "device: delivered"
    ps.set_state(quit_, online=True, app_state="force_quit")
    assert main(["push", quit_, apns_file(tmp_path, {"aps": {"content-available": 1}}), "--endpoints",
                 ps.endpoints_file, "--wait", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["device"]["outcome"], res["device"]["reason"]) == ("dropped", "force-quit")


def test_push_wait_reports_pending_after_its_timeout(ps: PushSimClient, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    tok = ps.tokens("ios")[2]
    ps.set_state(tok, online=False)
    assert main(["push", tok, apns_file(tmp_path, {"aps": {"alert": "x"}}), "--endpoints", ps.endpoints_file,
                 "--wait", "--wait-timeout", "0.3"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "device: still pending (stored-offline) after 0.3 s"
    assert main(["push", tok, apns_file(tmp_path, {"aps": {"alert": "x"}}), "--endpoints", ps.endpoints_file,
                 "--wait", "--wait-timeout", "x"]) == 2


def test_wait_for_delivery_fails_at_once_on_a_drop(ps: PushSimClient, tmp_path: Path) -> None:
    import time

    from pushsim.pytest_plugin import PushSimError
    tok = ps.tokens("ios")[1]
    ps.set_state(tok, online=True, app_state="force_quit")
    main(["push", tok, apns_file(tmp_path, {"aps": {"content-available": 1}}), "--endpoints", ps.endpoints_file])
    t0 = time.monotonic()
    with pytest.raises(PushSimError, match=r"dropped \(force-quit\)"):
        ps.wait_for_delivery(tok, timeout=20)
    assert time.monotonic() - t0 < 5          # not the 20 s timeout
    assert ps.wait_for_delivery(tok, outcome="dropped")[0]["reason"] == "force-quit"


def test_stats_fleet_table(ps: PushSimClient, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tok = ps.tokens("ios")[0]
    ps.set_state(tok, online=True, app_state="foreground", low_power=False)
    main(["push", tok, apns_file(tmp_path, {"aps": {"content-available": 1}}), "--endpoints", ps.endpoints_file])
    ps.wait_for_delivery(tok, timeout=5)
    capsys.readouterr()
    assert main(["stats", "--fleet", "--endpoints", ps.endpoints_file]) == 0
    out = capsys.readouterr().out
    assert "fleet" in out and "background tasks started" in out and "{" not in out
    assert main(["stats", "--fleet", "--json", "--endpoints", ps.endpoints_file]) == 0
    assert json.loads(capsys.readouterr().out)["funnel"]["delivered"] == 1


def test_token_command_prints_credentials_the_fakes_accept(ps: PushSimClient, capsys: pytest.CaptureFixture) -> None:
    import httpx
    assert main(["token", "apns", "--endpoints", ps.endpoints_file]) == 0
    jwt = capsys.readouterr().out.strip()
    assert jwt.count(".") == 2
    assert main(["token", "fcm", "--endpoints", ps.endpoints_file]) == 0
    access = capsys.readouterr().out.strip()
    fcm = ps.endpoints["fcm"]
    r = httpx.post(f"{fcm['h2c_url']}/v1/projects/{fcm['project_id']}/messages:send",
                   json={"message": {"token": ps.tokens("android")[0], "data": {"k": "v"}}},
                   headers={"authorization": f"Bearer {access}"})
    assert r.status_code == 200, r.text
    assert main(["token", "apns", "--state-dir", "/nonexistent"]) == 2


def test_run_live_html_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.unit.test_report_html import assert_offline, plot_points
    out = tmp_path / "live.html"
    assert main(["run", str(ROOT / "examples" / "scenario.toml"), "--no-progress", "--max-requests", "100",
                 "--state-dir", str(tmp_path), "--html", str(out)]) == 0
    text = capsys.readouterr().out
    assert "funnel" in text and "{" not in text
    page = out.read_text()
    pts = plot_points(page)
    assert pts["traffic"] > 0 and pts["latency-response"] > 0 and pts["trace"] > 0, pts
    assert "rejected requests" in page      # the [[faults]] rule's 429s come from the journal
    assert_offline(page)
