"""Tokens for the load users: read from pushsim's control API, split into per-worker ranges."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PAGE = 1000


def load_endpoints(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "endpoints.json"
    with open(p) as f:
        return json.load(f)


def split_range(total: int, parts: int, index: int) -> tuple[int, int]:
    """(offset, count) of part `index` of `parts` near-equal, disjoint, covering slices of [0, total)."""
    if parts < 1 or not 0 <= index < parts:
        raise ValueError(f"bad part {index} of {parts}")
    size, extra = divmod(max(0, total), parts)
    offset = index * size + min(index, extra)
    return offset, size + (1 if index < extra else 0)


def device_total(http: Any, admin_url: str, platform: str) -> int:
    r = http.get(f"{admin_url}/devices", params={"platform": platform, "limit": 1, "offset": 0})
    r.raise_for_status()
    return int(r.json()["total"])


def fetch_tokens(http: Any, admin_url: str, platform: str, offset: int, count: int) -> list[str]:
    """Tokens of installs [offset, offset+count) for `platform`, paging through `/devices`."""
    out: list[str] = []
    while len(out) < count:
        want = min(PAGE, count - len(out))
        r = http.get(f"{admin_url}/devices",
                     params={"platform": platform, "limit": want, "offset": offset + len(out)})
        r.raise_for_status()
        page = [d["token"] for d in r.json()["devices"]]
        if not page:
            break
        out += page[:want]
    return out
