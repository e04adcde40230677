"""`python -m benchmarks quick` end to end against real processes (pushsim serve, nghttpd, h2load).

Tiny counts: this checks that the harness runs and what its JSON looks like, never how fast anything is.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not (shutil.which("h2load") and shutil.which("nghttpd")),
                                reason="needs h2load and nghttpd")


@pytest.mark.timeout(60)
def test_quick_json_shape_and_compare(tmp_path: Path):
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"utc": "then", "rows": {"apns-h2c": {"ratio": 0.2, "ratio_spread": 0.01},
                                                        "fcm-h2c": {"ratio": 0.1, "ratio_spread": 0.01}}}))
    out = tmp_path / "after.json"
    p = subprocess.run([sys.executable, "-m", "benchmarks", "quick", "-n", "400", "--ref-n", "1000", "--runs", "2",
                        "--warmup", "100", "-c", "2", "-m", "10", "--devices", "200", "--tokens", "50",
                        "--budget", "20", "--save", str(out), "--compare", str(before)],
                       capture_output=True, text=True, timeout=50, cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "quick" and res["workers"] == 1 and res["rounds"] >= 1
    assert set(res["rows"]) == {"nghttpd-h2c-apns", "apns-h2c", "nghttpd-h2c-fcm", "fcm-h2c"}
    for name in ("apns-h2c", "fcm-h2c"):
        row = res["rows"][name]
        assert row["ref"] == f"nghttpd-h2c-{name.split('-')[0]}"
        assert row["ratio"] > 0 and row["req_s"] > 0 and row["server_cpu_us_per_req"] > 0
        assert len(row["ratio_runs"]) == res["rounds"]
        assert set(row["latency_us"]) == {"p50", "p90", "p99", "max"}
    assert "compared with" in p.stdout and "apns-h2c" in p.stdout.split("compared with")[1]
