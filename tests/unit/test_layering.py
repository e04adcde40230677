"""Layers point down only: the imports of every module, read from the source with `ast`.

The rule (DESIGN.md, "Layers"):
- pushsim composes everything; nothing below imports it, nor loadtests, benchmarks or tests.
- fake_apns and fake_fcm are protocol rules as pure functions: they know nothing of sockets or the
  event loop, and nothing of the device world or of each other. Turning an accepted request into a
  device `Notification` is the adapter's job (pushsim/services), so each fake stays testable alone.
- device_sim is the device world: it knows nothing of HTTP (no HTTP or TLS library, no socket) and
  nothing of the fakes. It may use asyncio: its loop driver runs timers on the real clock.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_ABOVE = {"pushsim", "loadtests", "benchmarks", "tests"}
_NETWORK = {"socket", "ssl", "http", "aiohttp", "h2", "hpack", "httpx", "urllib3", "requests"}
FORBIDDEN: dict[str, set[str]] = {
    "fake_apns": _ABOVE | _NETWORK | {"asyncio", "device_sim", "fake_fcm"},
    "fake_fcm": _ABOVE | _NETWORK | {"asyncio", "device_sim", "fake_apns"},
    "device_sim": _ABOVE | _NETWORK | {"fake_apns", "fake_fcm"},
}


def imported_roots(source: str) -> set[str]:
    """Top-level package names a module imports, wherever the import statement is (lazy ones too)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN[package]
        out.extend(f"{path.relative_to(ROOT)} imports {name}" for name in sorted(bad))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upward_or_sideways(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_the_reader_sees_every_form_of_import() -> None:
    src = ("import pushsim.server\nfrom pushsim.testbed import Testbed\nimport os, aiohttp as web\n"
           "from . import fleet\nfrom .world import World\n"
           "def lazy():\n    from device_sim.world import World\n")
    assert imported_roots(src) == {"pushsim", "os", "aiohttp", "device_sim"}
