"""The control API (JSON over HTTP on the admin port): fleet, journal, stats, reset, metrics, events.

Every error is a JSON body `{"error": "..."}` with a 4xx status; nothing here touches the hot path
except `/events`, which subscribes to the ledger only while a client is listening.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from aiohttp import web

from device_sim.fleet import PLATFORMS
from device_sim.journal import FILTERS as JOURNAL_FILTERS
from device_sim.ledger import Record

from . import control_faults
from .metrics import CONTENT_TYPE
from .report import DEFAULTS as REPORT_RULES
from .report import parse_policy
from .report.live import report_of_world

if TYPE_CHECKING:
    from .server import PushSim

log = logging.getLogger("pushsim.control")
SIM: web.AppKey[Any] = web.AppKey("sim", object)
STREAMS: web.AppKey[set[Callable[[], None]]] = web.AppKey("streams", set)
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
MAX_REGISTER = 10_000
EVENT_BACKLOG = 100_000   # per /events client; a client that falls this far behind is cut off


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


class BadRequest(Exception):
    pass


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be >= {lo}")
    return value


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        return _json({"error": str(e)}, 400)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":   # redirects; bodies already JSON
            raise
        return _json({"error": e.reason}, e.status)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:   # a bug here must not look like a hang or an HTML page to a script
        log.exception("control API %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500)


# handlers ------------------------------------------------------------------------------------
def _sim(request: web.Request) -> PushSim:
    return request.app[SIM]


async def health(request: web.Request) -> web.Response:
    sim = _sim(request)
    return _json({"status": "ok", "devices": len(sim.testbed.fleet), "services": [p.name for p in sim.plans]})


async def endpoints(request: web.Request) -> web.Response:
    return _json(_sim(request).endpoints)


def _platform_indices(platform: bytearray, code: int, offset: int, limit: int) -> list[int]:
    """Indices of the offset-th.. (offset+limit-1)-th installs of one platform, without a Python loop
    over the fleet: a binary search on C-speed `count` finds where the page starts."""
    needle = bytes([code])
    lo, hi = 0, len(platform)          # smallest end with `offset` matches before it
    while lo < hi:
        mid = (lo + hi) // 2
        if platform.count(needle, 0, mid) < offset:
            lo = mid + 1
        else:
            hi = mid
    out: list[int] = []
    i = lo - 1
    while len(out) < limit:
        i = platform.find(needle, i + 1)
        if i < 0:
            break
        out.append(i)
    return out


async def list_devices(request: web.Request) -> web.Response:
    fleet = _sim(request).testbed.fleet
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0)
    platform = request.query.get("platform") or None
    if platform is None:
        total = len(fleet)
        indices: Any = range(offset, min(total, offset + limit))
    elif platform in PLATFORMS:
        code = PLATFORMS[platform]
        total = fleet.platform.count(code)
        indices = _platform_indices(fleet.platform, code, offset, limit) if offset < total else []
    else:
        raise BadRequest(f"platform must be one of {sorted(PLATFORMS)}, got {platform!r}")
    return _json({"devices": [fleet.describe(i) for i in indices], "total": total,
                  "offset": offset, "limit": limit})


async def register_devices(request: web.Request) -> web.Response:
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError:
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    fleet = _sim(request).testbed.fleet
    platform = body.get("platform", "ios")
    count = body.get("count", 1)
    app = body.get("app")
    environment = body.get("environment")
    if platform not in PLATFORMS:
        raise BadRequest(f"platform must be one of {sorted(PLATFORMS)}")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_REGISTER:
        raise BadRequest(f"count must be an integer between 1 and {MAX_REGISTER}")
    if environment is not None and environment not in ("sandbox", "production"):
        raise BadRequest("environment must be sandbox or production")
    if app is not None and (not isinstance(app, str) or not app):
        raise BadRequest("app must be a bundle id / package name")
    app_index = 0 if app is None else fleet.app_index(platform, app)
    added = fleet.add(platform, count, app=app_index, environment=environment)
    return _json({"devices": [fleet.describe(i) for i in added], "total": len(fleet)}, 201)



async def get_device(request: web.Request) -> web.Response:
    testbed = _sim(request).testbed
    token = request.match_info["token"]
    i = testbed.fleet.resolve(token)
    if i is None:
        return _json({"error": "unknown device token", "token": token}, 404)
    out = {**testbed.fleet.describe(i), "deliveries": testbed.ledger.deliveries(i)}
    out["os"] = testbed.device_sim.describe(i)
    return _json(out)


async def fleet_stats(request: web.Request) -> web.Response:
    return _json(_sim(request).testbed.stats())


_PAGING = ("since", "limit", "format", "detail")


def _journal_filters(request: web.Request) -> dict[str, str | None]:
    """The filter query parameters; an unknown name is a 400 listing the known ones (a typo must
    not silently return the whole journal)."""
    filters = {k: v for k, v in request.query.items() if k not in _PAGING}
    unknown = sorted(set(filters) - set(JOURNAL_FILTERS))
    if unknown:
        raise BadRequest(f"unknown journal filter(s): {', '.join(unknown)}; known: "
                         f"{', '.join(JOURNAL_FILTERS + _PAGING)}")
    for name in ("status", "connection"):
        if filters.get(name) and not filters[name].lstrip("-").isdigit():  # type: ignore[union-attr]
            raise BadRequest(f"{name} must be an integer, got {filters[name]!r}")
    return filters  # type: ignore[return-value]


async def journal(request: web.Request) -> web.StreamResponse:
    if request.query.get("format") == "jsonl":
        return await _journal_jsonl(request)
    j = _sim(request).testbed.journal
    filters = _journal_filters(request)
    since = _int_param(request, "since", 0, 0)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    detail = request.query.get("detail", "") in ("1", "true", "yes")
    entries = j.query(since=since, limit=limit, **filters)
    # A short page means the whole journal was scanned, so the next poll can start at its end.
    nxt = entries[-1].id + 1 if len(entries) >= limit else max(since, j.next_id)
    return _json({"entries": [e.to_json(detail) for e in entries], "next_since": nxt})


async def journal_count(request: web.Request) -> web.Response:
    filters = _journal_filters(request)
    j = _sim(request).testbed.journal
    return _json({"count": j.count(since=_int_param(request, "since", 0, 0), **filters)})


async def report(request: web.Request) -> web.Response:
    """The conformance report (pushsim/report): findings and delivery metrics, as `pushsim report --format json`."""
    ignore = [r for r in request.query.get("ignore", "").split(",") if r]
    unknown = sorted(set(request.query) - {"ignore"})
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}; known: ignore")
    try:
        policy = parse_policy({"ignore": ignore}, REPORT_RULES)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return _json(report_of_world(_sim(request).testbed.world, policy))


async def _journal_jsonl(request: web.Request) -> web.StreamResponse:
    """The replayable export (`pushsim replay FILE`): header, state changes, accepted notifications."""
    try:
        from device_sim.replay import export_jsonl
    except ModuleNotFoundError:
        return _json({"error": "journal export needs device_sim.replay"}, 501)
    lines = list(export_jsonl(_sim(request).testbed.world))   # a snapshot: traffic goes on while we write
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 2000:
            await resp.write("".join(chunk).encode())
            chunk.clear()
    if chunk:
        await resp.write("".join(chunk).encode())
    await resp.write_eof()
    return resp


async def stats(request: web.Request) -> web.Response:
    return _json(_sim(request).testbed.ledger.stats())


async def reset(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.testbed.reset()
    sim.metrics.reset()
    return _json({"status": "reset"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=_sim(request).metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _event(rec: Record, at: float | None) -> dict[str, Any]:
    n = rec.note
    return {"seq": n.seq, "service": n.service, "token": n.token, "install": n.install,
            "message_id": n.message_id, "outcome": rec.outcome.value, "reason": rec.reason,
            "t": at if at is not None else time.time()}


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `data: {json}` per settled or re-pended notification."""
    sim = _sim(request)
    want_token = request.query.get("token") or None
    want_service = request.query.get("service") or None
    pending: list[bytes] = []
    wake = asyncio.Event()
    closed = False

    def close() -> None:
        nonlocal closed
        closed = True
        wake.set()

    def on_event(rec: Record, at: float | None) -> None:
        n = rec.note
        if (want_token and n.token != want_token) or (want_service and n.service != want_service):
            return
        if len(pending) >= EVENT_BACKLOG:   # the client cannot keep up: end its stream, spare our memory
            unsubscribe()
            close()
            return
        pending.append(b"data: " + orjson.dumps(_event(rec, at)) + b"\n\n")
        wake.set()

    # Subscribe before the first byte goes out: a client that saw the response headers sees every
    # event after them.
    unsubscribe = sim.testbed.ledger.subscribe(on_event)
    closers = request.app[STREAMS]
    closers.add(close)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await resp.prepare(request)
        await resp.write(b": pushsim events\n\n")
        while not closed:
            await wake.wait()
            wake.clear()
            if pending:                       # one write per burst, not one per event
                data = b"".join(pending)
                pending.clear()
                await resp.write(data)
    except ConnectionResetError:   # the client went away
        pass
    finally:
        unsubscribe()
        closers.discard(close)
    return resp


async def _end_streams(app: web.Application) -> None:
    for close in list(app[STREAMS]):
        close()


def make_app(sim: PushSim) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[SIM] = sim
    app[STREAMS] = set()
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/health", health)
    app.router.add_get("/endpoints", endpoints)
    app.router.add_get("/devices", list_devices)
    app.router.add_post("/devices", register_devices)
    app.router.add_get("/devices/{token}", get_device)
    app.router.add_get("/journal", journal)
    app.router.add_get("/journal/count", journal_count)
    app.router.add_get("/report", report)
    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/fleet", fleet_stats)
    app.router.add_post("/reset", reset)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/events", events)
    control_faults.add_routes(app, sim)   # /faults, /devices/{token}/state and /open
    return app
