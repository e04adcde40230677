"""The control API (JSON over HTTP on the admin port): fleet, journal, stats, reset, metrics, events,
and (control_faults) fault rules and per-install control, (control_peers) the partitions' hand-offs.

`ROUTES` is the one table of the API: each route names its handler, the query parameters it takes
and how it behaves under `serve --workers N` (`Cluster`); the single process and the cluster hub
(pushsim/cluster/control_proxy.py) both serve from it, so a new endpoint is one entry here.

Every error is a JSON body `{"error": "..."}` with a 4xx status (control_input turns bad input into
400); nothing here touches the hot path except `/events`, which subscribes to the ledger only while
a client is listening.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from aiohttp import web

from device_sim.fleet import PLATFORMS
from device_sim.journal import FILTERS as JOURNAL_FILTERS
from device_sim.replay import export_lines, snapshot

from . import control_faults, control_peers, dashboard
from .event_log import EventLog
from .control_input import MAX_BODY, BadRequest, check_query, choice, int_param, integer, json_object, quote
from .metrics import CONTENT_TYPE
from .report import DEFAULTS as REPORT_RULES
from .report import build_report, parse_policy
from .report.live import records_of_snapshot

if TYPE_CHECKING:
    from .server import PushSim

log = logging.getLogger("pushsim.control")
SIM: web.AppKey[Any] = web.AppKey("sim", object)
Handler = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]
STREAMS: web.AppKey[set[Callable[[], None]]] = web.AppKey("streams", set)
EVENTS: web.AppKey[EventLog] = web.AppKey("events", EventLog)
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
MAX_REGISTER = 10_000
EVENT_BACKLOG = 100_000   # per /events client; a client that falls this far behind is cut off


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


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
        if e.status == 413:   # aiohttp's client_max_size
            return _json({"error": f"body larger than {MAX_BODY} bytes"}, 413)
        return _json({"error": e.reason}, e.status)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:   # a bug here must not look like a hang or an HTML page to a script
        log.exception("control API %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500)


# handlers ------------------------------------------------------------------------------------
async def health(request: web.Request, sim: PushSim) -> web.Response:
    fleet = sim.testbed.fleet
    out: dict[str, Any] = {"status": "ok", "devices": fleet.owned_count, "services": [p.name for p in sim.plans]}
    if fleet.partition is not None:
        out["partition"] = {"k": fleet.part_k, "n": fleet.part_n, "fleet_devices": len(fleet)}
    return _json(out)


async def endpoints(request: web.Request, sim: PushSim) -> web.Response:
    return _json(sim.endpoints)


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


async def list_devices(request: web.Request, sim: PushSim) -> web.Response:
    fleet = sim.testbed.fleet
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0)
    platform = request.query.get("platform") or None
    # Pages run over the installs this instance owns (all of them unless partitioned), by slot.
    if platform is None:
        total = fleet.owned_count
        slots: Any = range(offset, min(total, offset + limit))
    elif platform in PLATFORMS:
        code = PLATFORMS[platform]
        total = fleet.platform.count(code)
        slots = _platform_indices(fleet.platform, code, offset, limit) if offset < total else []
    else:
        raise BadRequest(f"platform must be one of {sorted(PLATFORMS)}, got {quote(platform)}")
    return _json({"devices": [fleet.describe(fleet.slot_to_index(s)) for s in slots], "total": total,
                  "offset": offset, "limit": limit})


REGISTER_FIELDS = ("platform", "count", "app", "environment")


async def register_devices(request: web.Request, sim: PushSim) -> web.Response:
    body = await json_object(request)
    unknown = sorted(set(body) - set(REGISTER_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(quote, unknown))}; allowed: {', '.join(REGISTER_FIELDS)}")
    fleet = sim.testbed.fleet
    if fleet.partition is not None:
        # Every partition must number installs alike; one instance adding alone would shift them.
        raise web.HTTPConflict(reason="a partitioned fleet cannot grow: size it with --devices on every "
                                      "instance (docs/serve.md, Partitions and peers)")
    platform = choice("platform", body.get("platform", "ios"), PLATFORMS)
    count = integer("count", body.get("count", 1), 1, MAX_REGISTER)
    app = body.get("app")
    environment = body.get("environment")
    if environment is not None:
        choice("environment", environment, ("sandbox", "production"))
    if app is not None and (not isinstance(app, str) or not app or len(app) > 255):
        raise BadRequest(f"app: expected a bundle id / package name, got {quote(app)}")
    app_index = 0 if app is None else fleet.app_index(platform, app)
    added = fleet.add(platform, count, app=app_index, environment=environment)
    return _json({"devices": [fleet.describe(i) for i in added], "total": len(fleet)}, 201)



async def get_device(request: web.Request, sim: PushSim) -> web.Response:
    testbed = sim.testbed
    token = request.match_info["token"]
    fleet = testbed.fleet
    i = fleet.resolve(token)
    if i is None:
        owner = fleet.owner_of_token(token) if fleet.partition is not None else None
        if owner is not None:
            return _json({"error": f"device token of partition {owner}/{fleet.part_n}, not of this instance "
                                   f"({fleet.part_k}/{fleet.part_n}): ask that partition's instance",
                          "token": token, "partition": owner}, 404)
        return _json({"error": "unknown device token", "token": token}, 404)
    out = {**testbed.fleet.describe(i), "deliveries": testbed.ledger.deliveries(i)}
    out["os"] = testbed.device_sim.describe(i)
    if testbed.experiment is not None:
        out["arm"] = testbed.experiment.arm_of(i)
    return _json(out)


def _experiment_of(sim: PushSim) -> Any:
    exp = sim.testbed.experiment
    if exp is None:
        raise web.HTTPConflict(reason="no experiment: start the server with --experiment FILE")
    return exp


async def experiment(request: web.Request, sim: PushSim) -> web.Response:
    """Per-arm outcomes and lifts since start or the last reset (device_sim.lift)."""
    _experiment_of(sim)
    return _json({"experiment": sim.testbed.device_sim.experiment_outcomes()})


async def experiment_assignments(request: web.Request, sim: PushSim) -> web.Response:
    """Each install's arm, paged (`offset`, `limit`), optionally of one `arm`: what an advertised
    holdout's sender reads to skip the holdout."""
    from device_sim.lift import arm_indices

    exp = _experiment_of(sim)
    fleet = sim.testbed.fleet
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0)
    arm = request.query.get("arm") or None
    if arm is None:
        total = len(fleet)
        indices: Any = range(offset, min(total, offset + limit))
    else:
        choice("arm", arm, exp.names)
        members = (arm_indices(exp, len(fleet)) == exp.names.index(arm)).nonzero()[0]
        total = len(members)
        indices = [int(i) for i in members[offset:offset + limit]]
    items = []
    for i in indices:
        d = fleet.describe(i)
        items.append({"index": i, "platform": d["platform"], "token": d["token"], "fcm_token": d["fcm_token"],
                      "arm": exp.arm_of(i)})
    return _json({"assignments": items, "total": total, "offset": offset, "limit": limit,
                  "experiment": exp.describe()})


async def fleet_stats(request: web.Request, sim: PushSim) -> web.Response:
    out = sim.testbed.stats()
    out["states"] = sim.testbed.device_sim.census()
    return _json(out)


async def journal(request: web.Request, sim: PushSim) -> web.StreamResponse:
    fmt = request.query.get("format")
    if fmt is not None and fmt != "json":
        choice("format", fmt, ("json", "jsonl"))
        return await _journal_jsonl(request, sim)
    j = sim.testbed.journal
    since = int_param(request, "since", 0, 0)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    detail = choice("detail", request.query.get("detail", "0"), ("0", "1")) == "1"
    entries = j.query(since=since, limit=limit, **_journal_filters(request))
    # A short page means the whole journal was scanned, so the next poll can start at its end.
    nxt = entries[-1].id + 1 if len(entries) >= limit else max(since, j.next_id)
    return _json({"entries": [e.to_json(detail) for e in entries], "next_since": nxt})


def _journal_filters(request: web.Request) -> dict[str, str | None]:
    """The journal's filters (the route table already refused unknown names, listing the known ones)."""
    filters = {k: request.query.get(k) for k in JOURNAL_FILTERS}
    for name in ("status", "connection"):
        if filters[name]:
            int_param(request, name, 0, 0)      # a 400 unless it is an integer
    return filters


async def journal_count(request: web.Request, sim: PushSim) -> web.Response:
    j = sim.testbed.journal
    return _json({"count": j.count(since=int_param(request, "since", 0, 0), **_journal_filters(request))})


async def report(request: web.Request, sim: PushSim) -> web.Response:
    """The conformance report (pushsim/report): findings and delivery metrics, as `pushsim report --format json`."""
    ignore = [r for r in request.query.get("ignore", "").split(",") if r]
    try:
        policy = parse_policy({"ignore": ignore}, REPORT_RULES)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    snap = snapshot(sim.testbed.world)      # copied on the loop (the world is not thread-safe): cheap
    # serializing it and the analysis run in a thread, so the fakes keep answering meanwhile
    return _json(await asyncio.to_thread(lambda: build_report(records_of_snapshot(snap), policy)))


async def _journal_jsonl(request: web.Request, sim: PushSim) -> web.StreamResponse:
    """The replayable export (`pushsim replay FILE`): header, state changes, accepted notifications."""
    snap = snapshot(sim.testbed.world)      # copied on the loop; serialized in a thread (traffic goes on)
    lines = await asyncio.to_thread(lambda: list(export_lines(snap)))
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


async def stats(request: web.Request, sim: PushSim) -> web.Response:
    out = sim.testbed.ledger.stats()
    if sim.partition is not None:       # hand-offs to the other partitions: failures must show
        out["handoff"] = sim.partition.stats()
    return _json(out)


async def reset(request: web.Request, sim: PushSim) -> web.Response:
    sim.testbed.reset()
    sim.metrics.reset()
    return _json({"status": "reset"})


async def metrics(request: web.Request, sim: PushSim) -> web.Response:
    return web.Response(text=sim.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"Last-Event-ID: expected an id this stream sent (an integer), got {quote(raw)}")
    return int(raw)


SUMMARY_EVERY = 1.0   # seconds between two `/events?summary=1` events


async def summary_events(request: web.Request, funnel: Callable[[], Awaitable[dict[str, Any]]],
                         stopped: Callable[[], bool]) -> web.StreamResponse:
    """`/events?summary=1`: the /stats funnel as one `event: stats` per SUMMARY_EVERY, however
    busy the fakes are: what a dashboard follows at 30k requests/s (no per-notification work at
    all). Each event is a whole snapshot, so a reconnecting client needs no replay."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(b": pushsim summary\nretry: 2000\n\n")
    n = 0
    try:
        while not stopped():
            n += 1
            await resp.write(b"id: %d\nevent: stats\ndata: " % n
                             + orjson.dumps(await funnel(), option=orjson.OPT_NON_STR_KEYS) + b"\n\n")
            await asyncio.sleep(SUMMARY_EVERY)
    except ConnectionResetError:
        pass
    return resp


def summary_wanted(request: web.Request) -> bool:
    return choice("summary", request.query.get("summary", "0"), ("0", "1")) == "1"


async def events(request: web.Request, sim: PushSim) -> web.StreamResponse:
    """Server-sent events: one `id: N` + `data: {json}` per settled or re-pended notification. A
    client that comes back with `Last-Event-ID` first gets the kept events it missed (event_log).
    With `summary=1`: the funnel once a second instead (summary_events)."""
    if summary_wanted(request):
        ended = asyncio.Event()
        request.app[STREAMS].add(ended.set)

        async def funnel() -> dict[str, Any]:
            return sim.testbed.ledger.stats()
        try:
            return await summary_events(request, funnel, ended.is_set)
        finally:
            request.app[STREAMS].discard(ended.set)
    want_token = request.query.get("token") or None
    want_service = request.query.get("service") or None
    last_id = _last_event_id(request)
    log_ = request.app[EVENTS]
    pending: list[bytes] = []
    wake = asyncio.Event()
    closed = False

    def close() -> None:
        nonlocal closed
        closed = True
        wake.set()

    def wanted(service: str, token: str | None) -> bool:
        return not ((want_token and token != want_token) or (want_service and service != want_service))

    def on_event(i: int, service: str, token: str | None, frame: bytes) -> None:
        if not wanted(service, token):
            return
        if len(pending) >= EVENT_BACKLOG:   # the client cannot keep up: end its stream, spare our memory
            log_.detach(on_event)
            close()
            return
        pending.append(frame)
        wake.set()

    # Attach before the first byte goes out: a client that saw the response headers sees every
    # event after them.
    if last_id is not None:
        missed, gap = log_.since(last_id)
        if gap:
            pending.append(b": some events after id %d are no longer kept\n\n" % last_id)
        pending.extend(frame for _, service, token, frame in missed if wanted(service, token))
    log_.attach(on_event)
    closers = request.app[STREAMS]
    closers.add(close)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await resp.prepare(request)
        await resp.write(b": pushsim events\n\n")
        wake.set()
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
        log_.detach(on_event)
        closers.discard(close)
    return resp


async def _end_streams(app: web.Application) -> None:
    for close in list(app[STREAMS]):
        close()
    app[EVENTS].close()


# the table ---------------------------------------------------------------------------------------
class Mode(enum.Enum):
    """How a route is answered under `serve --workers N` (pushsim/cluster/control_proxy.py)."""
    HUB = "hub"          # the hub answers itself (`Cluster.hub` names its answer in control_proxy)
    ANY = "any"          # any one worker's answer is the cluster's: every worker holds the same fleet and rules
    OWNER = "owner"      # the worker that owns the install `{token}`
    ALL = "all"          # a change every worker makes, one change at a time in one order
    MERGE = "merge"      # every worker answers; `Cluster.merge` names the function in cluster/merge.py
    STREAM = "stream"    # every worker's event stream, interleaved


@dataclass(frozen=True)
class Cluster:
    mode: Mode
    merge: str = ""     # MERGE: the function of pushsim.cluster.merge that combines the answers
    hub: str = ""       # HUB: the hub's own answer (a method of control_proxy.Proxy)
    then: str = ""      # ALL: a hub-side step after every worker said 2xx (a Proxy method, given the body)
    everywhere: Callable[[Any], bool] | None = None   # OWNER: true for a body every worker must apply


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    cluster: Cluster
    query: tuple[str, ...] = ()          # the query parameters it takes; any other is a 400


ANY, OWNER, ALL, STREAM = Cluster(Mode.ANY), Cluster(Mode.OWNER), Cluster(Mode.ALL), Cluster(Mode.STREAM)
ROUTES: tuple[Route, ...] = (
    Route("GET", "/", dashboard.index, Cluster(Mode.HUB, hub="dashboard")),
    Route("GET", "/dashboard.js", dashboard.script, Cluster(Mode.HUB, hub="dashboard_script")),
    Route("GET", "/dashboard.css", dashboard.style, Cluster(Mode.HUB, hub="dashboard_style")),
    Route("GET", "/health", health, Cluster(Mode.HUB, hub="health")),
    Route("GET", "/endpoints", endpoints, Cluster(Mode.HUB, hub="endpoints")),
    Route("GET", "/devices", list_devices, ANY, query=("limit", "offset", "platform")),
    Route("POST", "/devices", register_devices, Cluster(Mode.ALL, then="mirror_registration")),
    Route("GET", "/devices/{token}", get_device, OWNER),
    Route("POST", "/devices/{token}/state", control_faults.post_state,
          Cluster(Mode.OWNER, everywhere=control_faults.changes_every_worker)),
    Route("POST", "/devices/{token}/open", control_faults.post_open, OWNER),
    Route("GET", "/journal", journal, Cluster(Mode.MERGE, merge="journal"),
          query=("format", "since", "limit", "detail") + JOURNAL_FILTERS),
    Route("GET", "/journal/count", journal_count, Cluster(Mode.MERGE, merge="journal_count"),
          query=("since",) + JOURNAL_FILTERS),
    Route("GET", "/report", report, Cluster(Mode.HUB, hub="report"), query=("ignore",)),
    Route("GET", "/stats", stats, Cluster(Mode.HUB, hub="stats")),
    Route("GET", "/stats/fleet", fleet_stats, Cluster(Mode.MERGE, merge="fleet_stats")),
    # serve --partition K/N only (it refuses --workers): the partitions' instances talk here
    Route("POST", "/peer/topic-message", control_peers.peer_topic_message, ALL),
    Route("POST", "/peer/subscriptions", control_peers.peer_subscriptions, ALL),
    Route("PUT", "/peer/peers", control_peers.peer_set_peers, ALL),
    Route("GET", "/peer/status", control_peers.peer_status, ANY),
    # each worker summarises the installs it owns; the hub pools their moments (exact, not averaged)
    Route("GET", "/experiment", experiment, Cluster(Mode.MERGE, merge="experiment")),
    # arms are a pure function of the install index: any worker's page is the cluster's
    Route("GET", "/experiment/assignments", experiment_assignments, ANY, query=("limit", "offset", "arm")),
    Route("POST", "/reset", reset, ALL),
    Route("GET", "/metrics", metrics, Cluster(Mode.MERGE, merge="metrics")),
    Route("GET", "/events", events, STREAM, query=("token", "service", "summary")),
    Route("POST", "/faults", control_faults.post_faults, ALL),
    Route("GET", "/faults", control_faults.get_faults, ANY),
    Route("DELETE", "/faults", control_faults.delete_all, ALL),
    Route("DELETE", "/faults/{id}", control_faults.delete_fault, ALL),
)


def _bind(route: Route, sim: Any) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        check_query(request.query, route.query)
        return await route.handler(request, sim)
    return handle


def add_route(app: web.Application, route: Route, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
              ) -> None:
    if route.method == "GET":
        app.router.add_get(route.path, handler)   # and HEAD, as aiohttp does for GET
    else:
        app.router.add_route(route.method, route.path, handler)


def make_app(sim: PushSim, routes: tuple[Route, ...] = ROUTES) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[SIM] = sim
    app[STREAMS] = set()
    app[EVENTS] = EventLog(sim.testbed.ledger)
    app.on_shutdown.append(_end_streams)
    for route in routes:
        add_route(app, route, _bind(route, sim))
    return app
