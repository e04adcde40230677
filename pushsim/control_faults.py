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

# Accepted names → device_sim's `set_state` keyword. The first group is this API's vocabulary (the
# issue's words); the second is device_sim's own, accepted as is so either kind of client works.
STATE_FIELDS: dict[str, tuple[str, type]] = {
    "app_state": ("app_state", str), "low_power": ("low_power", bool), "charging": ("charging", bool),
    "doze": ("doze", bool), "background_app_refresh": ("bar", bool), "standby_bucket": ("bucket", str),
    "os_version": ("os_version", int),
    "bar": ("bar", bool), "bucket": ("bucket", str), "online": ("online", bool), "open": ("open", bool),
    "state": ("app_state", str),
}
APP_STATES = ("foreground", "background", "suspended", "force_quit", "force_stopped", "stopped",
              "never_launched")
BUCKETS = ("active", "working_set", "frequent", "rare", "restricted", "never")
POWER = {"normal": {"low_power": False, "doze": False, "charging": False},
         "low_power": {"low_power": True}, "doze": {"doze": True}, "charging": {"charging": True}}
ALLOWED = sorted(set(STATE_FIELDS) | {"connectivity", "power", "uninstall"})


def _bad(msg: str, status: int = 400) -> web.Response:
    return web.json_response({"error": msg}, status=status)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not valid JSON: {e}"}),
                                 content_type="application/json") from None


def parse_state_change(raw: Any) -> tuple[dict[str, Any], bool]:
    """Validate a state change → (device_sim set_state keywords, uninstall?). ValueError says what is wrong."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("expected a non-empty JSON object such as {\"app_state\": \"background\"}")
    out: dict[str, Any] = {}
    uninstall = False
    for key, val in raw.items():
        if key in ("uninstall", "installed"):
            wanted = key == "uninstall"          # {"uninstall": true} or {"installed": false}
            if val is not wanted:
                raise ValueError(f"{key}: only {str(wanted).lower()} is supported (reinstalling is not)")
            uninstall = True
        elif key == "power":
            if val not in POWER:
                raise ValueError(f"power: expected one of {', '.join(POWER)}, got {val!r}")
            out.update(POWER[val])
        elif key == "connectivity":
            if val not in ("online", "offline"):
                raise ValueError(f"connectivity: expected online or offline, got {val!r}")
            out["online"] = val == "online"
        elif key in STATE_FIELDS:
            name, kind = STATE_FIELDS[key]
            if not isinstance(val, kind) or (kind is int and isinstance(val, bool)):
                raise ValueError(f"{key}: expected {kind.__name__}, got {val!r}")
            if name == "app_state" and val not in APP_STATES:
                raise ValueError(f"{key}: expected one of {', '.join(APP_STATES)}, got {val!r}")
            if name == "bucket" and val not in BUCKETS:
                raise ValueError(f"{key}: expected one of {', '.join(BUCKETS)}, got {val!r}")
            if name == "open" and val is not True:
                raise ValueError("open: expected true")
            out[name] = val
        else:
            raise ValueError(f"unknown field {key!r}; allowed: {', '.join(ALLOWED)}")
    return out, uninstall



def _device_api(testbed: Any) -> Any:
    """device_sim's per-install control, where this build has it (set_state / open_app)."""
    for name in ("devices", "sim", "device_sim"):
        api = getattr(testbed, name, None)
        if api is not None and hasattr(api, "set_state"):
            return api
    return None


def add_routes(app: web.Application, sim: Any) -> None:
    testbed = sim.testbed
    faults = testbed.faults

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
        index = testbed.fleet.resolve(token)
        if index is None:
            return _bad(f"unknown device token {token!r}", 404)
        try:
            change, uninstall = parse_state_change(await _json(request))
        except ValueError as e:
            return _bad(str(e))
        api = _device_api(testbed)
        if change:
            if api is None:
                return _bad(f"this build cannot change {', '.join(sorted(change))} yet (only uninstall)", 501)
            try:
                api.set_state(index, **change)
            except (ValueError, TypeError) as e:
                return _bad(str(e))
        if uninstall:
            testbed.fleet.uninstall(index, int(testbed.now() * 1000))
        applied = {**change, "uninstall": True} if uninstall else change
        out: dict[str, Any] = {**testbed.fleet.describe(index), "applied": applied}
        if api is not None and hasattr(api, "describe"):
            out["os"] = api.describe(index)
        return web.json_response(out)

    async def post_open(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        index = testbed.fleet.resolve(token)
        if index is None:
            return _bad(f"unknown device token {token!r}", 404)
        api = _device_api(testbed)
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
