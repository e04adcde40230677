"""Small things users hit: --version, a closed pipe, stats --fleet's table."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from device_sim.replay import export_jsonl
from device_sim.scenario import simulate
from pushsim import cli
from pushsim.cli.stats import funnel_table, metrics_rows, table

REPO = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("pushsim ")


def test_broken_pipe_in_a_command_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    def register(sub):   # type: ignore[no-untyped-def]
        p = sub.add_parser("pipe")
        p.set_defaults(func=lambda a: (_ for _ in ()).throw(BrokenPipeError(32, "Broken pipe")))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("pushsim.cli.stats",))
    import pushsim.cli.stats as stats
    monkeypatch.setattr(stats, "register", register)
    fd = os.dup(sys.stdout.fileno())        # main() points stdout at /dev/null: put it back after
    try:
        assert cli.main(["pipe"]) == 141
    finally:
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world, _ = simulate({"name": "p", "duration": 3600, "fleet": {"devices": "ios=30,android=30"},
                         "traffic": [{"platform": "ios", "push_type": "background", "per_hour": 20},
                                     {"platform": "android", "push_type": "data", "per_hour": 20}]}, 1)
    path = tmp_path_factory.mktemp("pipe") / "j.jsonl"
    path.write_text("".join(export_jsonl(world)))
    return path


@pytest.mark.parametrize("argv", [["--help"], ["replay", "--help"], ["run", "scenarios/mixed-fleet.toml", "--mode",
                                  "virtual", "--no-progress"], ["replay", "{j}", "--json"],
                                  ["report", "{j}", "--format", "json", "--fail-on", "never"]])
def test_a_reader_that_left_ends_the_command_quietly(argv: list[str], journal: Path) -> None:
    argv = [a.replace("{j}", str(journal)) for a in argv]
    proc = subprocess.Popen([sys.executable, "-m", "pushsim", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()                      # the `| head` that already exited
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 141), err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def test_fleet_table_is_readable() -> None:
    world, _ = simulate({"name": "f", "duration": 3600, "fleet": {"devices": "ios=5,android=5"},
                         "traffic": [{"platform": "ios", "push_type": "background", "per_hour": 4}]}, 2)
    m = world.device_sim.stats()
    lines = table(metrics_rows(m))
    assert any(ln.strip().startswith("background tasks started") for ln in lines)
    text = "\n".join(lines) + funnel_table(m["funnel"])
    assert "{" not in text and "'" not in text
