"""The live dashboard in a real browser: Debian's headless chromium driven by Playwright (the system
browser, never a downloaded one), under a small live APNs load from the test."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from _serve_helpers import apns_client, ephemeral_config, provider_token, push
from pushsim.server import run_in_thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not shutil.which("chromium"):
    pytest.skip("Debian's chromium is not installed (./run.sh test installs it)", allow_module_level=True)
from playwright.sync_api import sync_playwright   # noqa: E402  (only once chromium is known to be there)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PUSHES = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    sim, stop = run_in_thread(ephemeral_config(tmp_path_factory.mktemp("state"), devices="ios=20,android=10"))
    yield sim
    stop()


def _cluster(state: Path) -> Iterator[dict[str, Any]]:
    """`pushsim serve --workers 2` as a subprocess → its endpoints.json."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushsim", "serve", "--workers", "2", "--state-dir", str(state),
         "--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
         "--admin-port", "0", "--devices", "ios=20,android=10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()   # type: ignore[union-attr]
        assert line.startswith("pushsim ready:"), proc.stderr.read()   # type: ignore[union-attr]
        yield json.loads(Path(line.split(":", 1)[1].strip()).read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(params=["one process", "--workers 2"])
def endpoints(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    if request.param == "one process":
        yield request.getfixturevalue("server").endpoints
    else:
        yield from _cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                   headless=True, args=FLAGS,
                                                   viewport={"width": 1280, "height": 1400})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def _shown(page, stat: str) -> int | None:
    text = page.locator(f'[data-stat="{stat}"]').inner_text().replace(",", "")
    return int(text) if text.isdigit() else None


def _canvas_inked(page, canvas_id: str) -> int:
    """How many pixels of the canvas are neither white nor transparent nor the axes' grey."""
    return page.evaluate("""(id) => {
        const c = document.getElementById(id), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
            if (a > 0 && !(r > 180 && g > 180 && b > 180) && !(r === g && g === b)) n++;
        }
        return n;
    }""", canvas_id)


def test_dashboard_shows_the_funnel_moving_and_matches_stats(endpoints, page, tmp_path):
    admin_url = endpoints["admin"]["url"]
    with httpx.Client(base_url=admin_url, timeout=10) as admin:
        assert admin.post("/reset").status_code == 200
        tokens = [d["token"] for d in admin.get("/devices", params={"platform": "ios", "limit": 20}).json()["devices"]]
        page.goto(admin_url + "/")
        page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=10_000)   # the summary stream is up

        jwt = provider_token(endpoints)
        done = threading.Event()

        def load() -> None:   # a bounded loop of pushes, a few per tick of the page's poll
            with apns_client(endpoints) as apns:
                for i in range(PUSHES):
                    push(apns, endpoints, tokens[i % len(tokens)] if i % 10 else "00" * 31 + "zz", jwt)
                    time.sleep(0.03)   # spread the load over a few polls, so the rates plot has points
            done.set()

        t = threading.Thread(target=load)
        t.start()
        # the funnel moves while the load runs
        page.wait_for_function("Number(document.querySelector('[data-stat=accepted]').textContent.replace(/,/g, '')) > 0",
                               timeout=10_000)
        assert done.wait(20)
        t.join()

        stats = admin.get("/stats").json()
        assert stats["accepted"] + sum(stats["rejected"].values()) == PUSHES, stats
        # once the load stopped, the page catches up with /stats and shows the same numbers
        deadline = time.monotonic() + 10
        while True:
            stats = admin.get("/stats").json()
            want = {"accepted": stats["accepted"], "delivered": stats["delivered"],
                    "dropped": sum(stats["dropped"].values()), "pending": sum(stats["pending"].values()),
                    "rejected": sum(stats["rejected"].values())}
            shown = {k: _shown(page, k) for k in want}
            if shown == want or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        assert shown == want
        assert want["accepted"] == want["delivered"] + want["dropped"] + want["pending"]
        assert "BadDeviceToken" in page.locator("#rejected").inner_text()

        # plots have data: the rates line and (after the slow poll) the status and delay bars
        page.wait_for_function("window.pushsimDashboard.history.some(p => p.accepted > 0)", timeout=10_000)
        assert _canvas_inked(page, "rates") > 50
        deadline = time.monotonic() + 10
        while _canvas_inked(page, "statuses") < 50 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert _canvas_inked(page, "statuses") >= 50 and _canvas_inked(page, "latency") >= 50
        assert _canvas_inked(page, "delay") >= 50
        assert "receipt rate" in page.locator("#primer").inner_text()
        _check_fleet_states(page, admin)
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def _check_fleet_states(page, admin: httpx.Client) -> None:
    """The states panel shows, per platform, exactly the counts of the /stats/fleet answer it read,
    and that answer counts the whole fleet (20 iOS + 10 Android, small enough to count exactly)."""
    page.wait_for_function("window.pushsimDashboard.fleet && window.pushsimDashboard.fleet.states", timeout=10_000)
    states = page.evaluate("window.pushsimDashboard.fleet.states")
    live = admin.get("/stats/fleet").json()["states"]
    assert states["exact"] and (states["ios"]["installs"], states["android"]["installs"]) == (20, 10)
    assert (live["ios"]["installs"], live["android"]["installs"]) == (20, 10)
    for platform in ("ios", "android"):
        rows = page.locator(f"#states-{platform} .row")
        shown = {rows.nth(i).locator("span").first.inner_text(): int(rows.nth(i).locator(".n").inner_text().replace(",", ""))
                 for i in range(rows.count())}
        want = {k.replace("_", " "): n for k, n in states[platform].items() if k != "installs" and n > 0}
        assert shown == want, platform
        assert shown.get("online", 0) + shown.get("offline", 0) == states[platform]["installs"]
    assert "every install counted" in page.locator("#states-note").inner_text()


def test_dashboard_files_come_from_the_package(server):
    with httpx.Client(base_url=server.endpoints["admin"]["url"], timeout=10) as admin:
        page = admin.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/dashboard.js">' in page.text and "http" not in page.text.split("<body>")[1]
        assert admin.get("/dashboard.js").headers["content-type"].startswith("text/javascript")
        assert admin.get("/dashboard.css").headers["content-type"].startswith("text/css")
