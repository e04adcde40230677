"""Issue 13's "Done when", literally: against a running `pushsim serve` (a subprocess), a careful
sender gets no error-level finding, and a sender that misbehaves in each catalogued way gets every
rule id of `pushsim.report.RULES` in `pushsim report --format json` (the CLI, as a subprocess).

Every outcome the rules read is pinned: installs whose delivery matters are set online or offline
through the control API, faults are scoped to one token, and the device clock runs CLOCK times as
fast as the wall clock, so the inactivity threshold below passes in a second of wall time. Two
thresholds come from a policy file, as a user would set them: quiet hours (the hour the quiet-hours
install's clock showed, in its own time zone) and the inactivity window.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from _serve_helpers import ROOT, cli_env, serve_subprocess
from bad_sender import BadSender
from device_sim.profile import utc_offset_minutes
from pushsim.report import RULES
from tests.waiting import wait_until

sys.path.insert(0, str(ROOT / "examples"))
from sender import Sender  # noqa: E402

SEED = 5
CLOCK = 10                   # device seconds per wall second
INACTIVE_DAYS = 0.0001       # 8.6 s of device time: under a second of wall time at CLOCK
EXPERIMENT = """[experiment]
arms = { holdout = 0.2, treated = 0.8 }
mode = "advertised"
seed = 1
"""


def _report(admin: str, *extra: str) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "pushsim", "report", "--admin", admin, "--format", "json", *extra],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _careful(ep: dict[str, Any], ios: list[str], android: list[str]) -> None:
    """The example sender: reuses its connection, backs off, drops dead tokens."""
    s = Sender.from_endpoints(ep, tokens=set(ios) | set(android), max_wait=5.0)
    try:
        for t in ios:
            assert s.send_apns(t, {"aps": {"alert": "hi"}}).ok
        for t in android:
            assert s.send_fcm(t, {"notification": {"title": "hi"}}).ok
    finally:
        s.close()


def test_a_bad_sender_gets_every_rule_id_from_pushsim_report_against_pushsim_serve(tmp_path: Path) -> None:
    exp = tmp_path / "experiment.toml"
    exp.write_text(EXPERIMENT)
    with serve_subprocess(tmp_path / "state", "--devices", "ios=24,android=8", "--seed", str(SEED),
                          "--clock", f"scaled:{CLOCK}", "--experiment", str(exp)) as ep:
        admin = ep["admin"]["url"]
        adm = httpx.Client(base_url=admin, timeout=10)
        devices = adm.get("/devices", params={"limit": 100}).json()["devices"]
        holdout = {a["index"] for a in adm.get("/experiment/assignments", params={"arm": "holdout"}).json()["assignments"]}
        ios = [d for d in devices if d["platform"] == "ios"]
        android = [d["token"] for d in devices if d["platform"] == "android"]
        # the installs a rule needs to be in one arm or another, or a time zone away from UTC
        treated_ios = [d for d in ios if d["index"] not in holdout]
        to_holdout = next(d["token"] for d in ios if d["index"] in holdout)
        quiet = next(d for d in treated_ios if abs(utc_offset_minutes(SEED, d["index"])) >= 60)
        gone = ios[-1]["token"]             # uninstalled for the 410 rules
        roles = [d["token"] for d in treated_ios if d is not quiet and d["token"] != gone]
        assert len(roles) >= 8, "the seed gives too few treated installs"

        _careful(ep, roles[:2], android[:2])
        code, rep = _report(admin, "--fail-on", "error")
        assert code == 0 and not [f for f in rep["findings"] if f["severity"] == "error"]

        b = BadSender(ep)
        try:
            for t in [*roles[:8], quiet["token"]]:
                b.pin(t, online=True, app_state="background", low_power=False, bar=True)
            for t in android[4:7]:
                b.pin(t, online=t == android[4], app_state="background")
            # the other Android targets online: an install left to the default fleet's offline windows
            # stores the device-rate flood, and past 100 pending FCM discards it (too-many-pending)
            for t in [*android[:4], android[7]]:
                b.pin(t, online=True, app_state="background")
            first_inactive = time.monotonic()
            assert b.apns_send(roles[7]).status_code == 200          # seen now, then not opened for days
            statuses = {
                # the error rules (as tests/integration/test_report_live.py)
                "apns.send-after-unregistered": b.keep_sending_after_410(gone),
                "fcm.send-after-unregistered": b.keep_sending_after_unregistered(android[7]),
                "apns.retry-too-soon": b.retry_429_at_once(roles[0]),
                "fcm.retry-after-ignored": b.ignore_retry_after(android[0]),
                "apns.retry-non-retryable": b.resend_payload_too_large(roles[1]),
                "fcm.retry-non-retryable": b.resend_invalid_argument(android[1]),
                "apns.token-refresh-too-often": b.refresh_token_on_every_push(roles[0]),
                "apns.token-expired": b.use_a_stale_token(roles[1]),
                "fcm.device-rate": b.flood_one_device(android[3]),
                # warnings, guardrails, info
                "apns.connection-churn": b.connection_per_push(roles[2]),
                "apns.goaway-ignored": [b.keep_sending_after_goaway(roles[0], roles[1], roles[2])],
                "silent.payload-large": [b.large_background_push(roles[3])],
                "apns.background-too-frequent": b.background_burst(roles[4]),
                "guardrail.no-effect": b.background_without_news(roles[5]),
                "guardrail.visible-before-ready": [b.visible_before_ready(roles[6])],
                "guardrail.quiet-hours": [b.apns_send(quiet["token"]).status_code],
                "fcm.high-priority-without-notification": [b.high_priority_data(android[4])],
                "fcm.too-many-pending": b.flood_offline_install(android[5]),
                "fcm.collapse-key-limit": b.many_collapse_keys(android[6]),
                "experiment.send-to-holdout": [b.apns_send(to_holdout).status_code],
            }
            # inactivity: the same install again, once INACTIVE_DAYS of device time have passed
            wait_until(lambda: (time.monotonic() - first_inactive) * CLOCK > INACTIVE_DAYS * 86400 * 1.5,
                       "the inactivity window passed in device time", timeout=10)
            statuses["guardrail.inactive-install"] = [b.apns_send(roles[7]).status_code]
        finally:
            b.close()
        assert statuses["apns.connection-churn"] == [200] * 12
        assert statuses["apns.goaway-ignored"] == [3]             # GOAWAY(last-stream-id 3), streams 7 and 9 after it
        assert statuses["apns.background-too-frequent"] == [200] * 25
        assert statuses["fcm.too-many-pending"] == [200] * 101 and statuses["fcm.collapse-key-limit"] == [200] * 5
        assert statuses["guardrail.visible-before-ready"] == statuses["fcm.high-priority-without-notification"] == [200]
        # (micro-batching and the frequency cap come from the same burst as background-too-frequent)

        # Quiet hours: the hour the quiet install's clock showed when the push landed, from the
        # export (its accepted line's device time, its install line's time zone).
        export = [json.loads(x) for x in adm.get("/journal", params={"format": "jsonl"}, timeout=30).text.splitlines()]
        (landed,) = [r for r in export if r["type"] == "accepted" and r["token"] == quiet["token"]]
        (inst,) = [r for r in export if r["type"] == "install" and r["install"] == quiet["index"]]
        assert inst["tz_minutes"] == utc_offset_minutes(SEED, quiet["index"])
        hour = math.floor(((landed["at"] + inst["tz_minutes"] * 60) % 86400) / 3600)
        policy = tmp_path / "policy.toml"
        policy.write_text(f"[guardrail.quiet-hours]\nstart_hour = {hour}\nend_hour = {(hour + 1) % 24}\n\n"
                          f"[guardrail.inactive-install]\ndays = {INACTIVE_DAYS}\n")

        code, rep = _report(admin, "--policy", str(policy), "--fail-on", "error")
        assert code == 1
        found = {f["rule"] for f in rep["findings"]}
        assert found >= {r.id for r in RULES}, f"missing: {sorted({r.id for r in RULES} - found)}"
        jwt_sender = f"{ep['apns']['team_id']}/{ep['apns']['key_id']}"

        def finding(rule: str, sender: str = jwt_sender) -> dict[str, Any]:
            (f,) = [f for f in rep["findings"] if f["rule"] == rule and f["sender"] == sender]
            return f

        assert quiet["token"] in finding("guardrail.quiet-hours")["tokens"]
        assert roles[7] in finding("guardrail.inactive-install")["tokens"]
        assert finding("apns.goaway-ignored")["count"] == 2
        fcm_sender = ep["fcm"]["client_email"]
        assert finding("fcm.too-many-pending", fcm_sender)["count"] == 101
        assert finding("fcm.collapse-key-limit", fcm_sender)["count"] == 1
        assert finding("fcm.high-priority-without-notification", fcm_sender)["tokens"] == [android[4]]
        # (other installs got a second visible push with no silent one between: not ready either)
        assert roles[6] in finding("guardrail.visible-before-ready")["tokens"]
        assert finding("guardrail.no-effect")["tokens"] == [roles[5]]
        assert finding("silent.payload-large")["tokens"] == [roles[3]]
        assert to_holdout in finding("experiment.send-to-holdout")["tokens"]
        for rule in ("apns.background-too-frequent", "guardrail.micro-batching", "guardrail.frequency-cap"):
            assert roles[4] in finding(rule)["tokens"], rule
        # the connection-per-push sender authenticated with the client certificate: its own sender
        (churn,) = [f for f in rep["findings"] if f["rule"] == "apns.connection-churn"]
        assert churn["sender"] not in ("", jwt_sender) and churn["count"] == 12

        # every finding's evidence points at journal entries (or, for streams the server ignored,
        # at the connection of a GOAWAY) that exist
        ids = {r["id"] for r in export if r["type"] == "request"}
        seqs = {r["seq"] for r in export if r["type"] == "accepted"}
        conns = {r["conn"] for r in export if r["type"] == "goaway"}
        for f in rep["findings"]:
            assert 0 < len(f["evidence"]) <= f["count"], f["rule"]
            for ev in f["evidence"]:
                assert ("id" in ev and ev["id"] in ids) or ("seq" in ev and ev["seq"] in seqs) or \
                       (f["rule"] == "apns.goaway-ignored" and ev["conn"] in conns), (f["rule"], ev)
        adm.close()
