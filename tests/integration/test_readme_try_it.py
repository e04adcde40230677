"""The README's "Try it" block, run as written (bash) next to a server on ephemeral ports.

The block reads every URL from endpoints.json, so a server on other ports works the same; the test
gives it the layout it assumes: `.pushsim/` (the state dir) and `.venv/bin/pushsim` in the cwd.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pushsim.config import Config
from pushsim.server import run_in_thread

ROOT = Path(__file__).resolve().parents[2]


def try_it_block() -> str:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"Try it .*?```bash\n(.*?)```", readme, re.S)
    assert m, "README has no Try it block"
    return m.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (./run.sh test installs it)")
def test_readme_try_it_block_works_as_written(tmp_path: Path) -> None:
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0,
                 devices="ios=3,android=3", state_dir=tmp_path / ".pushsim", seed=1)
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "pushsim").write_text(f"#!/bin/sh\nexec {sys.executable} -m pushsim \"$@\"\n")
    (venv_bin / "pushsim").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("PUSHSIM_ENDPOINTS", "PUSHSIM_ADMIN_URL", "PUSHSIM_STATE_DIR"):
        env.pop(var, None)
    sim, stop = run_in_thread(cfg)
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", try_it_block()], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=45)
    finally:
        stop()
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    assert re.search(r"^HTTP/2 200", out, re.M) and "apns-id:" in out.lower()
    # curl -s prints the JSON without a newline: decode the first document where it starts
    stats, _ = json.JSONDecoder().raw_decode(out[out.index('{"accepted"'):])
    assert stats["accepted"] == 1
    assert re.search(r"accepted +1\nrejected +0\n", out)      # the `pushsim stats` table
