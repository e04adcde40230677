"""The public control API in cluster mode: the hub answers by asking the workers' private control
APIs (the same handlers as a single process) and merging.

Every route comes from the one table, pushsim.control.ROUTES; its `Cluster` says how it is served:
- HUB: the hub answers itself (a `Proxy` method named by the route: health, endpoints, stats — the
  last one consistent snapshot, routing.combine);
- ANY: worker 0 answers (every worker holds the same fleet and rules);
- OWNER: the install's owner answers (the hub keeps its own copy of the deterministic fleet to map
  token → index → owner; an unknown token goes to worker 0, which answers 404); a body the route's
  `everywhere` accepts (an uninstall) goes to every worker instead, answered by the owner;
- ALL: every worker, one change at a time in the same order (register, reset, fault rules), then
  an optional hub-side step (mirroring a registration into the hub's fleet);
- MERGE: every worker answers; the named function of merge.py combines them;
- STREAM: every worker's event stream, interleaved.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from pushsim.testbed import build_fleet, world_settings
from pushsim import dashboard
from pushsim.control import ROUTES, Mode, Route, summary_wanted, add_route, summary_events
from pushsim.control_input import MAX_BODY, BadRequest, check_query
from pushsim.report import DEFAULTS, build_report, parse_policy

from . import merge
from .routing import owner_of

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("pushsim.cluster.control")
HUB: web.AppKey[Any] = web.AppKey("hub", object)
_PASS_HEADERS = ("Content-Type",)


class Proxy:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.n = hub.n
        self.fleet = build_fleet(world_settings(hub.config))
        self.session: aiohttp.ClientSession | None = None
        self.lock = asyncio.Lock()          # changes reach every worker in one order

    def url(self, w: int, path_qs: str) -> str:
        return f"http://127.0.0.1:{self.hub.workers[w].admin_port}{path_qs}"

    async def call(self, w: int, method: str, path_qs: str, body: bytes | None = None,
                   content_type: str | None = None) -> tuple[int, str, bytes]:
        assert self.session is not None
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.session.request(method, self.url(w, path_qs), data=body, headers=headers) as r:
            return r.status, r.headers.get("Content-Type", "application/json"), await r.read()

    async def json(self, w: int, path_qs: str) -> Any:
        status, _, body = await self.call(w, "GET", path_qs)
        return orjson.loads(body)

    def owner(self, token: str) -> int:
        i = self.fleet.resolve(token)
        return 0 if i is None else owner_of(i, self.n)

    async def to_all(self, method: str, path_qs: str, body: bytes | None, ctype: str | None,
                     answer_from: int = 0) -> tuple[int, str, bytes]:
        async with self.lock:
            answers = [await self.call(w, method, path_qs, body, ctype) for w in range(self.n)]
        return answers[answer_from]

    # hub-side answers and steps, named by the table (Cluster.hub, Cluster.then) ----------------
    async def health(self, request: web.Request) -> web.Response:
        data = await self.json(0, "/health")
        return _json({**data, "workers": self.n})

    async def endpoints(self, request: web.Request) -> web.Response:
        return _json(getattr(self.hub, "endpoints", {}))

    async def dashboard(self, request: web.Request) -> web.Response:
        return await dashboard.index(request)   # the same page: it reads the hub's merged routes

    async def dashboard_script(self, request: web.Request) -> web.Response:
        return await dashboard.script(request)

    async def dashboard_style(self, request: web.Request) -> web.Response:
        return await dashboard.style(request)

    async def stats(self, request: web.Request) -> web.Response:
        return _json(await self.hub.stats())

    async def report(self, request: web.Request) -> web.Response:
        """The report over every worker's journal export, merged as one server's (merge.merge_jsonl)."""
        ignore = [r for r in request.query.get("ignore", "").split(",") if r]
        try:
            policy = parse_policy({"ignore": ignore}, DEFAULTS)
        except ValueError as e:
            return _json({"error": str(e)}, 400)
        exports = [(await self.call(w, "GET", "/journal?format=jsonl"))[2].splitlines(keepends=True)
                   for w in range(self.n)]
        records = [orjson.loads(line) for line in merge.merge_jsonl(exports)]
        return _json(build_report(records, policy))

    async def mirror_registration(self, body: bytes) -> None:
        """Every worker registered the devices: so does the hub's fleet, which maps new tokens to owners."""
        spec = orjson.loads(body)
        platform = spec.get("platform", "ios")
        app_name = spec.get("app")
        app_index = 0 if app_name is None else self.fleet.app_index(platform, app_name)
        self.fleet.add(platform, spec.get("count", 1), app=app_index, environment=spec.get("environment"))


def _reply(status: int, ctype: str, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": ctype})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        return _json({"error": str(e)}, 400)
    except web.HTTPException as e:
        if e.status == 413:   # aiohttp's client_max_size, worded as a worker would
            return _json({"error": f"body larger than {MAX_BODY} bytes"}, 413)
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:   # a worker stopped or stalled
        log.warning("control API %s %s: a worker did not answer: %r", request.method, request.path, e)
        return _json({"error": f"a worker did not answer ({type(e).__name__})"}, 503)
    except Exception as e:
        log.exception("control API %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _serve(proxy: Proxy, route: Route) -> Handler:
    """The hub's handler for one table route, by its cluster mode."""
    c = route.cluster
    mode = c.mode

    inner: Handler
    if mode is Mode.HUB:
        inner = getattr(proxy, c.hub)
    elif mode is Mode.ANY or mode is Mode.OWNER:
        everywhere = c.everywhere

        async def one(request: web.Request) -> web.StreamResponse:
            body = await request.read() or None
            ctype = request.headers.get("Content-Type")
            w = proxy.owner(request.match_info["token"]) if mode is Mode.OWNER else 0
            if everywhere is not None and body is not None and everywhere(_loads_or_none(body)):
                return _reply(*await proxy.to_all(request.method, request.path_qs, body, ctype, answer_from=w))
            return _reply(*await proxy.call(w, request.method, request.path_qs, body, ctype))
        inner = one
    elif mode is Mode.ALL:
        then = getattr(proxy, c.then) if c.then else None

        async def every(request: web.Request) -> web.StreamResponse:
            body = await request.read() or None
            status, ctype, out = await proxy.to_all(request.method, request.path_qs, body,
                                                    request.headers.get("Content-Type"))
            if then is not None and 200 <= status < 300:
                await then(body)
            return _reply(status, ctype, out)
        inner = every
    elif mode is Mode.MERGE:
        combine = getattr(merge, c.merge)
        needs_stats = c.merge in merge.NEEDS_STATS

        async def merged(request: web.Request) -> web.StreamResponse:
            asked_at = time.time()
            answers = [await proxy.call(w, "GET", request.path_qs) for w in range(proxy.n)]
            for status, ctype, out in answers:
                if status != 200:        # a worker's 400 (bad query) is the cluster's
                    return _reply(status, ctype, out)
            stats = await proxy.hub.stats() if needs_stats else None
            ctype, out = combine(merge.Answers([a[2] for a in answers], answers[0][1], request.query,
                                               proxy.n, asked_at, stats))
            return _reply(200, ctype, out)
        inner = merged
    elif mode is Mode.STREAM:
        async def streams(request: web.Request) -> web.StreamResponse:
            if summary_wanted(request):     # the hub's own consistent funnel, not N partial ones
                async def funnel() -> dict[str, Any]:
                    s = await proxy.hub.stats()
                    return {k: s[k] for k in ("accepted", "rejected", "delivered", "dropped", "pending")}
                return await summary_events(request, funnel, lambda: proxy.hub.stopping)
            return await _interleave_events(proxy, request)
        inner = streams
    else:
        raise AssertionError(f"no cluster behaviour for {mode}")

    async def handle(request: web.Request) -> web.StreamResponse:
        check_query(request.query, route.query)
        return await inner(request)
    return handle


def _loads_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None          # the owner words the 400


def _resume_ids(request: web.Request, n: int) -> list[str | None]:
    """The hub's `Last-Event-ID` is every worker's last id, dot-joined ("12.0.7"): one per worker."""
    raw = request.headers.get("Last-Event-ID")
    if not raw:
        return [None] * n
    parts = raw.split(".")
    if len(parts) != n or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise BadRequest(f"Last-Event-ID: expected an id this stream sent ({n} integers joined by dots), "
                         f"got {raw[:100]!r}")
    return list(parts)   # "0": nothing seen from that worker yet, so all it kept is news


async def _interleave_events(proxy: Proxy, request: web.Request) -> web.StreamResponse:
    """Every worker's event stream, interleaved event by event (each worker's own order is kept).
    Each event's `id:` is the vector of every worker's last id, so a browser's `Last-Event-ID`
    resumes each worker's stream where it was."""
    assert proxy.session is not None
    resume = _resume_ids(request, proxy.n)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    queue: asyncio.Queue[tuple[int, bytes, bytes] | None] = asyncio.Queue()
    connected = asyncio.Semaphore(0)
    last = [r or "0" for r in resume]

    async def follow(w: int) -> None:
        headers = {} if resume[w] is None else {"Last-Event-ID": resume[w]}
        try:
            async with proxy.session.get(proxy.url(w, request.path_qs), headers=headers,   # type: ignore[union-attr]
                                         timeout=aiohttp.ClientTimeout(total=None)) as r:
                connected.release()
                buf = b""
                async for chunk in r.content.iter_any():
                    buf += chunk
                    *events_, buf = buf.split(b"\n\n")
                    for ev in events_:
                        ident, data = b"", b""
                        for line in ev.split(b"\n"):
                            if line.startswith(b"id: "):
                                ident = line[4:]
                            elif line.startswith(b"data: "):
                                data = line
                        if data:
                            await queue.put((w, ident, data))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        finally:
            await queue.put(None)

    def frame(item: tuple[int, bytes, bytes]) -> bytes:
        w, ident, data = item
        if ident:
            last[w] = ident.decode()
        return b"id: " + ".".join(last).encode() + b"\n" + data + b"\n\n"

    tasks = [asyncio.create_task(follow(w)) for w in range(proxy.n)]
    try:
        for _ in range(proxy.n):      # every worker is listening before our first byte
            await asyncio.wait_for(connected.acquire(), 10)
        await resp.prepare(request)
        await resp.write(b": pushsim events\n\n")
        ended = 0
        while ended < proxy.n:
            item = await queue.get()
            if item is None:
                ended += 1
                continue
            out = [frame(item)]
            while not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    ended += 1
                else:
                    out.append(frame(nxt))
            await resp.write(b"".join(out))
    except (ConnectionResetError, asyncio.TimeoutError):
        pass
    finally:
        for t in tasks:
            t.cancel()
    return resp


def make_hub_app(hub: Hub, routes: tuple[Route, ...] = ROUTES) -> web.Application:
    proxy = Proxy(hub)
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[HUB] = proxy

    async def startup(app: web.Application) -> None:
        proxy.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def cleanup(app: web.Application) -> None:
        if proxy.session is not None:
            await proxy.session.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    for route in routes:
        add_route(app, route, _serve(proxy, route))
    return app
