"""Control API handlers for fault rules and per-install control (routes: `pushsim.control.ROUTES`).

    POST   /faults              one rule, a list of rules, or {"rules": [...]}  → 201 {"faults": [...]}
    GET    /faults              → {"faults": [...]} with per-rule matched/fired counters
    DELETE /faults/{id}         → 200, or 404 {"error": ...}
    DELETE /faults              → remove every rule
    POST   /devices/{token}/state   change app state, connectivity, power, BAR, standby bucket, uninstall
    POST   /devices/{token}/open    the user opens the app

Bad JSON or a bad rule → 400 {"error": "<what and where>"}; nothing is half-applied. At most
MAX_RULES rules are held.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from pushsim.faults import RuleError

from .control_input import BadRequest, choice, integer, json_body, quote

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


def parse_state_change(raw: Any) -> tuple[dict[str, Any], bool]:
    """Validate a state change → (device_sim set_state keywords, uninstall?). BadRequest says what is wrong."""
    if not isinstance(raw, dict) or not raw:
        raise BadRequest("expected a non-empty JSON object such as {\"app_state\": \"background\"}")
    out: dict[str, Any] = {}
    uninstall = False
    for key, val in raw.items():
        if key in ("uninstall", "installed"):
            wanted = key == "uninstall"          # {"uninstall": true} or {"installed": false}
            if val is not wanted:
                raise BadRequest(f"{key}: only {str(wanted).lower()} is supported (reinstalling is not)")
            uninstall = True
        elif key == "power":
            out.update(POWER[choice("power", val, POWER)])
        elif key == "connectivity":
            out["online"] = choice("connectivity", val, ("online", "offline")) == "online"
        elif key in STATE_FIELDS:
            name, kind = STATE_FIELDS[key]
            if not isinstance(val, kind) or (kind is int and isinstance(val, bool)):
                raise BadRequest(f"{key}: expected {kind.__name__}, got {quote(val)}")
            if name == "app_state":
                choice(key, val, APP_STATES)
            if name == "bucket":
                choice(key, val, BUCKETS)
            if name == "os_version":
                integer(key, val, 0, 1000)
            if name == "open" and val is not True:
                raise BadRequest("open: expected true")
            out[name] = val
        else:
            raise BadRequest(f"unknown field {quote(key)}; allowed: {', '.join(ALLOWED)}")
    return out, uninstall



MAX_RULES = 1000   # fault rules held at once: each is matched against every request while any is set


async def post_faults(request: web.Request, sim: Any) -> web.Response:
    faults = sim.testbed.faults
    body = await json_body(request)
    specs = body.get("rules") if isinstance(body, dict) and "rules" in body else body
    specs = specs if isinstance(specs, list) else [specs]
    if not specs:
        raise BadRequest("no rules given")
    if len(faults.list()) + len(specs) > MAX_RULES:
        raise BadRequest(f"at most {MAX_RULES} fault rules at once; delete some first")
    try:
        rules = faults.add_many(specs)
    except RuleError as e:
        raise BadRequest(str(e)) from None
    return web.json_response({"faults": [r.to_json() for r in rules]}, status=201)


async def get_faults(request: web.Request, sim: Any) -> web.Response:
    return web.json_response({"faults": [r.to_json() for r in sim.testbed.faults.list()]})


async def delete_fault(request: web.Request, sim: Any) -> web.Response:
    rid = request.match_info["id"]
    if not sim.testbed.faults.remove(rid):
        return _bad(f"no fault rule {quote(rid)}", 404)
    return web.json_response({"deleted": rid})


async def delete_all(request: web.Request, sim: Any) -> web.Response:
    faults = sim.testbed.faults
    n = len(faults.list())
    faults.clear()
    return web.json_response({"deleted": n})


def changes_every_worker(body: Any) -> bool:
    """An uninstall is seen by every worker (each answers 410 for the token from then on)."""
    return isinstance(body, dict) and ("uninstall" in body or "installed" in body)


async def post_state(request: web.Request, sim: Any) -> web.Response:
    testbed = sim.testbed
    token = request.match_info["token"]
    index = testbed.fleet.resolve(token)
    if index is None:
        return _bad(f"unknown device token {quote(token)}", 404)
    change, uninstall = parse_state_change(await json_body(request))
    api = testbed.device_sim         # per-install OS-side control: set_state, open_app, describe
    if change:
        try:
            api.set_state(index, **change)
        except (ValueError, TypeError) as e:
            raise BadRequest(str(e)) from None
    if uninstall:
        testbed.fleet.uninstall(index, int(testbed.now() * 1000))
    applied = {**change, "uninstall": True} if uninstall else change
    out: dict[str, Any] = {**testbed.fleet.describe(index), "applied": applied}
    out["os"] = api.describe(index)
    return web.json_response(out)


async def post_open(request: web.Request, sim: Any) -> web.Response:
    testbed = sim.testbed
    token = request.match_info["token"]
    index = testbed.fleet.resolve(token)
    if index is None:
        return _bad(f"unknown device token {quote(token)}", 404)
    testbed.device_sim.open_app(index)
    return web.json_response({"token": token, "opened": True})
