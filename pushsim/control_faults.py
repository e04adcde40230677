"""Control API routes for fault rules and per-install control, added to the admin app by `add_routes`.

    POST   /faults              one rule, a list of rules, or {"rules": [...]}  → 201 {"faults": [...]}
    GET    /faults              → {"faults": [...]} with per-rule matched/fired counters
    DELETE /faults/{id}         → 200, or 404 {"error": ...}
    DELETE /faults              → remove every rule
    POST   /devices/{token}/state   change app state, connectivity, power, BAR, standby bucket, uninstall
    POST   /devices/{token}/open    the user opens the app

Bad JSON or a bad rule → 400 {"error": "<what and where>"}; nothing is half-applied.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pushsim.faults import RuleError

STATE_FIELDS = {
    "app_state": str, "connectivity": str, "low_power": bool, "charging": bool, "doze": bool,
    "background_app_refresh": bool, "standby_bucket": str, "installed": bool, "os_version": int,
}
# control API name → device_sim's set_state keyword (value mapped where the meaning differs)
TO_SIM = {"app_state": "app_state", "low_power": "low_power", "charging": "charging", "doze": "doze",
          "background_app_refresh": "bar", "standby_bucket": "bucket", "os_version": "os_version"}
ALIASES = {"state": "app_state", "bar": "background_app_refresh", "bucket": "standby_bucket"}
APP_STATES = ("foreground", "background", "suspended", "force_quit", "force_stopped", "stopped",
              "never_launched")
BUCKETS = ("active", "working_set", "frequent", "rare", "restricted", "never")
POWER = {"normal": {"low_power": False, "doze": False, "charging": False},
         "low_power": {"low_power": True}, "doze": {"doze": True}, "charging": {"charging": True}}


def _bad(msg: str, status: int = 400) -> web.Response:
    return web.json_response({"error": msg}, status=status)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not valid JSON: {e}"}),
                                 content_type="application/json") from None


def parse_state_change(raw: Any) -> dict[str, Any]:
    """Validate a state change; returns canonical field → value. Raises ValueError with a clear message."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("expected a JSON object such as {\"app_state\": \"background\"}")
    out: dict[str, Any] = {}
    for key, val in raw.items():
        name = ALIASES.get(key, key)
        if name == "uninstall":
            if val is not True:
                raise ValueError("uninstall: expected true")
            out["installed"] = False
            continue
        if name == "power":
            if val not in POWER:
                raise ValueError(f"power: expected one of {', '.join(POWER)}, got {val!r}")
            out.update(POWER[val])
            continue
        if name not in STATE_FIELDS:
            allowed = sorted(set(STATE_FIELDS) | {"uninstall", "power"} | set(ALIASES))
            raise ValueError(f"unknown field {key!r}; allowed: {', '.join(allowed)}")
        if not isinstance(val, STATE_FIELDS[name]):
            raise ValueError(f"{key}: expected {STATE_FIELDS[name].__name__}, got {val!r}")
        if name == "app_state" and val not in APP_STATES:
            raise ValueError(f"app_state: expected one of {', '.join(APP_STATES)}, got {val!r}")
        if name == "connectivity" and val not in ("online", "offline"):
            raise ValueError(f"connectivity: expected online or offline, got {val!r}")
        if name == "standby_bucket" and val not in BUCKETS:
            raise ValueError(f"standby_bucket: expected one of {', '.join(BUCKETS)}, got {val!r}")
        if name == "installed" and val is not False:
            raise ValueError("installed: only false (uninstall) is supported")
        out[name] = val
    return out


def _resolve(fleet: Any, token: str) -> int | None:
    i = fleet.resolve_apns(token)
    return i if i is not None else fleet.resolve_fcm(token)


def _device_api(bench: Any) -> Any:
    """device_sim's per-install control, where this build has it (set_state / open_app)."""
    for name in ("devices", "sim", "device_sim"):
        api = getattr(bench, name, None)
        if api is not None and hasattr(api, "set_state"):
            return api
    return None


def add_routes(app: web.Application, sim: Any) -> None:
    bench = sim.bench
    faults = bench.faults

    async def post_faults(request: web.Request) -> web.Response:
        body = await _json(request)
        specs = body.get("rules") if isinstance(body, dict) and "rules" in body else body
        specs = specs if isinstance(specs, list) else [specs]
        if not specs:
            return _bad("no rules given")
        try:
            rules = faults.add_many(specs)
        except RuleError as e:
            return _bad(str(e))
        return web.json_response({"faults": [r.to_json() for r in rules]}, status=201)

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response({"faults": [r.to_json() for r in faults.list()]})

    async def delete_fault(request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        if not faults.remove(rid):
            return _bad(f"no fault rule {rid!r}", 404)
        return web.json_response({"deleted": rid})

    async def delete_all(request: web.Request) -> web.Response:
        n = len(faults.list())
        faults.clear()
        return web.json_response({"deleted": n})

    async def post_state(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        index = _resolve(bench.fleet, token)
        if index is None:
            return _bad(f"unknown device token {token!r}", 404)
        try:
            change = parse_state_change(await _json(request))
        except ValueError as e:
            return _bad(str(e))
        now = bench.now()
        api = _device_api(bench)
        rest = {k: v for k, v in change.items() if k != "installed"}
        if rest:
            if api is None:
                return _bad(f"this build cannot change {', '.join(sorted(rest))} yet (only uninstall)", 501)
            sim_change = {TO_SIM[k]: v for k, v in rest.items() if k in TO_SIM}
            if "connectivity" in rest:
                sim_change["online"] = rest["connectivity"] == "online"
            try:
                api.set_state(index, **sim_change)
            except ValueError as e:
                return _bad(str(e))
        if change.get("installed") is False:
            bench.fleet.uninstall(index, int(now * 1000))
        device = bench.fleet.describe(index)
        if api is not None and hasattr(api, "describe"):
            device = {**device, **api.describe(index)}
        return web.json_response({"token": token, "applied": change, "device": device})

    async def post_open(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        index = _resolve(bench.fleet, token)
        if index is None:
            return _bad(f"unknown device token {token!r}", 404)
        api = _device_api(bench)
        if api is None or not hasattr(api, "open_app"):
            return _bad("this build has no simulated app to open", 501)
        api.open_app(index)
        return web.json_response({"token": token, "opened": True})

    app.router.add_post("/faults", post_faults)
    app.router.add_get("/faults", get_faults)
    app.router.add_delete("/faults", delete_all)
    app.router.add_delete("/faults/{id}", delete_fault)
    app.router.add_post("/devices/{token}/state", post_state)
    app.router.add_post("/devices/{token}/open", post_open)
