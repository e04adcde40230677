"""Every relative link in the repository's Markdown resolves to a file inside the repository, and no
document points at documents outside it or at the machine it was written on."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", "node_modules", ".hypothesis", ".pytest_cache"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# a document outside the repository (a reader of a clone has none), or an absolute path of the machine
# the text was written on; a tool's lookup path such as ../shared/tools/h2spec is neither
MACHINE = re.compile(r"\.\./shared/\S*\.(?:md|txt)\b|/work/")


def _docs() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md") if not SKIP & set(p.relative_to(ROOT).parts))


def _relative_links(text: str) -> list[str]:
    out = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):   # URLs, mailto:, anchors
            continue
        out.append(target.split("#", 1)[0])
    return out


def test_the_check_sees_links() -> None:
    assert _relative_links("see [a](docs/x.md#y), [b](https://e.org/z) and [c](#top)") == ["docs/x.md"]
    assert MACHINE.search("See ../shared/DESIGN.md") and MACHINE.search("`/work/main/.venv/bin/python`")
    assert not MACHINE.search("then `../shared/tools/h2spec` beside the repository")
    assert len(_docs()) > 5


@pytest.mark.parametrize("doc", _docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in _relative_links(text):
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} points outside the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
    assert not MACHINE.search(text), f"{doc.name} quotes a path outside the repository: {MACHINE.search(text)[0]}"
