"""The live dashboard at the control API's root: static HTML, JS and CSS shipped in this package
(static/, package data in pyproject), no build step and no network. The page reads aggregates only
(`/stats`, `/stats/fleet`, `/metrics`, `/report`), never per-install lists, so it costs the server
the same with ten installs or a million. See docs/dashboard.md.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

_TYPES = {"index.html": "text/html", "dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_cache: dict[str, bytes] = {}


def asset(name: str) -> web.Response:
    """One of the dashboard's files (read once from the package, then served from memory)."""
    body = _cache.get(name)
    if body is None:
        body = _cache[name] = resources.files(__package__).joinpath("static", name).read_bytes()
    # no-cache: a new pushsim's dashboard is picked up on reload, not after a stale copy expires
    return web.Response(body=body, content_type=_TYPES[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def index(request: web.Request, sim: Any = None) -> web.Response:
    return asset("index.html")


async def script(request: web.Request, sim: Any = None) -> web.Response:
    return asset("dashboard.js")


async def style(request: web.Request, sim: Any = None) -> web.Response:
    return asset("dashboard.css")
