"""The HTML report opened in a real browser: Debian's headless chromium driven by Playwright.

The page must render every plot with data and make no request at all (it is opened from a file,
and every other request is blocked and recorded). A screenshot is kept under the test's tmp dir.
The browser is the system one (`./run.sh test` installs the `chromium` package); Playwright never
downloads one here.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from device_sim.scenario import simulate
from pushsim import cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTS = ("traffic", "reasons", "budget", "freshness", "latency", "trace")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (./run.sh test installs it)")

SCENARIO = """name = "browser"
duration = 21600
[fleet]
devices = "ios=10,android=10"
[profile.ios]
opens_per_day = 24.0
[profile.android]
opens_per_day = 24.0
[[traffic]]
platform = "ios"
push_type = "background"
per_hour = 6
[[traffic]]
platform = "android"
push_type = "data"
per_hour = 2
collapse_id = "k"
"""


def test_html_report_renders_every_plot_offline(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    report = tmp_path / "out.html"
    assert cli.main(["run", str(scenario), "--mode", "virtual", "--html", str(report), "--no-progress"]) == 0
    url = report.as_uri()
    attempted: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                    headless=True, args=FLAGS, viewport={"width": 960, "height": 900})
        try:
            def guard(route, request):   # type: ignore[no-untyped-def]
                if request.url == url:
                    route.continue_()
                else:
                    attempted.append(request.url)
                    route.abort()
            ctx.route("**/*", guard)
            pg = ctx.new_page()
            pg.on("request", lambda r: r.url != url and attempted.append(r.url))
            pg.goto(url, wait_until="load", timeout=15_000)
            shown = pg.eval_on_selector_all("svg[data-plot]", """els => els.map(e => ({
                name: e.dataset.plot, points: +e.dataset.points,
                width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height,
                marks: [...e.querySelectorAll('polyline')].filter(p => p.getAttribute('points').trim()).length
                     + [...e.querySelectorAll('rect')].filter(r => +r.getAttribute('width') > 0.5).length
                     + e.querySelectorAll('circle').length}))""")
            delivered = pg.locator("tr", has_text="delivered").first.inner_text()
            pg.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            ctx.close()
    by_name = {s["name"]: s for s in shown}
    for name in PLOTS:
        s = by_name[name]
        assert s["points"] > 0 and s["marks"] > 0, s
        assert s["width"] > 100 and s["height"] > 30, s
    assert attempted == []
    # the number the page shows is the run's: the same scenario and seed give the same ledger
    world, _ = simulate(str(scenario), 0)
    assert delivered.split()[:2] == ["delivered", f"{world.ledger.delivered:,}"] and world.ledger.delivered > 0
    assert (tmp_path / "report.png").stat().st_size > 10_000
