"""Three independent instances (one deployment: a copied state dir, so one sender identity) and the
merged views over their control APIs: `pushsim stats`, `pushsim report` and `pushsim journal` with
three `--admin` URLs (docs/multi-instance.md)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _serve_helpers import apns_client, ephemeral_config, provider_token, push
from pushsim.cli import main as cli_main
from pushsim.credentials import ensure_credentials
from pushsim.pytest_plugin import PushSimClient
from pushsim.server import run_in_thread
from tests.waiting import wait_until

FUNNEL = ("accepted", "rejected", "delivered", "dropped", "pending")
ONE_SHOT_CONNECTIONS = 4      # per instance: 3 × (4 + 1) ≥ 10 connections only when merged


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    first = tmp_path_factory.mktemp("state0")
    ensure_credentials(first, ephemeral_config(first))
    dirs = [first]
    for k in (1, 2):               # "a copied state dir on N machines"
        d = tmp_path_factory.mktemp(f"state{k}") / "s"
        shutil.copytree(first, d, ignore=shutil.ignore_patterns("endpoints.json", ".lock"))
        dirs.append(d)
    started: list[tuple[Any, Any]] = []
    try:
        for d in dirs:
            started.append(run_in_thread(ephemeral_config(d, devices="ios=8,android=2")))
        sims = [s for s, _ in started]
        _traffic(sims)
        yield sims
    finally:
        for _, stop in started:
            stop()


def _traffic(sims: list[Any]) -> None:
    """Instance k: two accepted pushes and the same bad request twice on one connection, then
    one push on each of ONE_SHOT_CONNECTIONS new connections; its own tokens only."""
    for k, sim in enumerate(sims):
        ep = sim.endpoints
        client = PushSimClient(ep)
        ios = client.tokens("ios", limit=8)[2 * k: 2 * k + 2]
        for token in ios:       # online, awake: every push settles at once, so no count moves during a test
            client.set_state(token, online=True, app_state="foreground", low_power=False)
        jwt = provider_token(ep)
        with apns_client(ep) as c:
            for token in ios:
                assert push(c, ep, token, jwt).status_code == 200
            bad = "00" * 31 + f"0{k}"
            assert [push(c, ep, bad, jwt).status_code for _ in range(2)] == [400, 400]
        for _ in range(ONE_SHOT_CONNECTIONS):
            with apns_client(ep) as c:
                assert push(c, ep, ios[0], jwt).status_code == 200
    for sim in sims:
        client = PushSimClient(sim.endpoints)
        wait_until(lambda: not any((client.stats()["pending"] or {}).values()), "every push settled", timeout=10)


def _urls(sims: list[Any]) -> list[str]:
    return [s.endpoints["admin"]["url"] for s in sims]


def _admin_args(sims: list[Any]) -> list[str]:
    return [a for u in _urls(sims) for a in ("--admin", u)]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    got = capsys.readouterr()
    return code, got.out, got.err


def test_merged_stats_are_the_sum_of_the_three_and_balance(instances: list[Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "stats", *_admin_args(instances), "--json")
    assert code == 0
    merged = json.loads(out)
    parts = [PushSimClient(s.endpoints).stats() for s in instances]
    assert merged["accepted"] == sum(p["accepted"] for p in parts) == 3 * (2 + ONE_SHOT_CONNECTIONS)
    assert merged["delivered"] == sum(p["delivered"] for p in parts)
    for key in ("rejected", "dropped", "pending"):
        want: dict[str, int] = {}
        for p in parts:
            for reason, n in p[key].items():
                want[reason] = want.get(reason, 0) + n
        assert merged[key] == want
    assert merged["rejected"] == {"BadDeviceToken": 6}
    assert merged["accepted"] == merged["delivered"] + sum(merged["dropped"].values()) + sum(merged["pending"].values())
    assert [p["instance"] for p in merged["per_instance"]] == [u.removeprefix("http://") for u in _urls(instances)]
    code, out, _ = _run(capsys, "stats", "--admin", ",".join(_urls(instances)))      # a comma list, as text
    assert code == 0 and "instances (3)" in out and "accounting: balanced" in out
    code, out, _ = _run(capsys, "stats", *_admin_args(instances), "--fleet", "--json")
    fleet = json.loads(out)
    parts = [PushSimClient(s.endpoints).request("GET", "/stats/fleet") for s in instances]
    assert code == 0 and fleet["funnel"]["accepted"] == merged["accepted"]
    assert fleet["active_installs"] == sum(p["active_installs"] for p in parts)
    assert fleet["ios"]["alerts_shown"] == sum(p["ios"]["alerts_shown"] for p in parts)
    assert merged["delivered"] == merged["accepted"]


def test_one_url_answers_exactly_as_before(instances: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "stats", "--admin", _urls(instances)[1], "--json")
    assert code == 0 and json.loads(out) == PushSimClient(instances[1].endpoints).stats()


def test_the_merged_report_is_the_union_and_finds_churn_across_instances(instances: list[Any],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "report", *_admin_args(instances), "--format", "json", "--fail-on", "never")
    assert code == 0
    merged = json.loads(out)
    names = [u.removeprefix("http://") for u in _urls(instances)]
    assert merged["instances"] == names
    by_key = {(f["rule"], f["sender"]): f for f in merged["findings"]}
    alone: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for name, sim in zip(names, instances):
        for f in PushSimClient(sim.endpoints).report()["findings"]:
            alone.setdefault((f["rule"], f["sender"]), []).append((name, f))
    assert ("apns.retry-non-retryable", instances[0].endpoints["apns"]["team_id"] + "/" +
            instances[0].endpoints["apns"]["key_id"]) in alone
    for key, parts in alone.items():            # every instance's finding, merged with its peers'
        f = by_key[key]
        assert f["count"] == sum(p["count"] for _, p in parts)
        shown = {(e["instance"], e.get("id"), e.get("seq")) for e in f["evidence"]}
        for name, p in parts:
            assert {(name, e.get("id"), e.get("seq")) for e in p["evidence"]} <= shown
    churn = [f for f in merged["findings"] if f["rule"] == "apns.connection-churn"]
    assert ("apns.connection-churn", churn[0]["sender"]) not in alone      # no instance alone has 10 connections
    assert len(churn) == 1 and {e["instance"] for e in churn[0]["evidence"]} == set(names)
    code, text, _ = _run(capsys, "report", "--admin", ",".join(_urls(instances)), "--fail-on", "error")
    assert code == 1 and "apns.connection-churn" in text and f"{names[2]} journal #" in text

def test_the_merged_html_report_names_every_instance(instances: list[Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code, _, err = _run(capsys, "report", *_admin_args(instances), "--format", "html", "--output", str(out),
                        "--fail-on", "never")
    assert code == 0, err
    page = out.read_text()
    assert "3 instances: " in page and "apns.connection-churn" in page
    assert all(u.removeprefix("http://") in page for u in _urls(instances))


def test_the_merged_journal_pages_through_every_entry_once(instances: list[Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    since, seen = "", []
    for _ in range(40):
        code, out, _ = _run(capsys, "journal", *_admin_args(instances), "--limit", "4",
                            *(("--since", since) if since else ()))
        assert code == 0
        page = json.loads(out)
        if not page["entries"]:
            break
        seen += [(e["instance"], e["id"]) for e in page["entries"]]
        since = page["next_since"]
    want = [(u.removeprefix("http://"), e["id"]) for u, s in zip(_urls(instances), instances)
            for e in PushSimClient(s.endpoints).journal(limit=1000)]
    assert sorted(seen) == sorted(want) and len(seen) == len(set(seen)) == 3 * (4 + ONE_SHOT_CONNECTIONS)
    out_file = tmp_path / "all.jsonl"
    assert _run(capsys, "journal", *_admin_args(instances), "--format", "jsonl", "--output", str(out_file))[0] == 0
    code, text, _ = _run(capsys, "report", str(out_file), "--fail-on", "never")       # the saved merged export
    assert code == 0 and "apns.connection-churn" in text and f"{instances[0].endpoints['admin']['url'][7:]} journal #" in text


def test_a_down_instance_fails_with_its_name_unless_partial(instances: list[Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    code, _, err = _run(capsys, "report", *_admin_args(instances), "--admin", down)
    assert code == 2 and down.removeprefix("http://") in err and "Traceback" not in err
    code, out, err = _run(capsys, "stats", *_admin_args(instances), "--admin", down, "--partial", "--json")
    assert code == 0 and "merged 3 of 4" in err and json.loads(out)["accepted"] == 3 * (2 + ONE_SHOT_CONNECTIONS)
    code, _, err = _run(capsys, "journal", *_admin_args(instances), "--where", "nope=1")   # the instances' own 400
    assert code == 2 and "HTTP 400" in err and "nope" in err and all(u in err for u in _urls(instances))
