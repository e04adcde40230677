"""The public control API in cluster mode: the hub answers by asking the workers' private control
APIs (the same handlers as a single process) and merging.

- per-install routes go to the install's owner (the hub keeps its own copy of the deterministic
  fleet to map token → index → owner; an unknown token goes to worker 0, which answers 404);
- changes every worker must see (register, reset, fault rules, uninstall) go to every worker, one
  change at a time, in the same order;
- /stats is one consistent snapshot (routing.combine); /journal, /metrics, /stats/fleet and /events
  are merged (merge.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from pushsim.testbed import build_fleet, world_settings

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


def _reply(status: int, ctype: str, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": ctype})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:   # a worker stopped or stalled
        log.warning("control API %s %s: a worker did not answer: %r", request.method, request.path, e)
        return _json({"error": f"a worker did not answer ({type(e).__name__})"}, 503)
    except Exception as e:
        log.exception("control API %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500)


def make_hub_app(hub: Hub) -> web.Application:
    proxy = Proxy(hub)
    app = web.Application(middlewares=[_errors])
    app[HUB] = proxy

    async def startup(app: web.Application) -> None:
        proxy.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def cleanup(app: web.Application) -> None:
        if proxy.session is not None:
            await proxy.session.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)

    async def to_worker0(request: web.Request) -> web.Response:
        return _reply(*await proxy.call(0, request.method, request.path_qs, await request.read() or None,
                                        request.headers.get("Content-Type")))

    async def to_owner(request: web.Request) -> web.Response:
        w = proxy.owner(request.match_info["token"])
        return _reply(*await proxy.call(w, request.method, request.path_qs, await request.read() or None,
                                        request.headers.get("Content-Type")))

    async def to_all(request: web.Request, answer_from: int = 0) -> tuple[int, str, bytes]:
        body = await request.read() or None
        ctype = request.headers.get("Content-Type")
        async with proxy.lock:
            answers = [await proxy.call(w, request.method, request.path_qs, body, ctype) for w in range(proxy.n)]
        return answers[answer_from]

    async def broadcast(request: web.Request) -> web.Response:
        return _reply(*await to_all(request))

    async def health(request: web.Request) -> web.Response:
        data = await proxy.json(0, "/health")
        return _json({**data, "workers": proxy.n})

    async def endpoints(request: web.Request) -> web.Response:
        return _json(getattr(hub, "endpoints", {}))

    async def register(request: web.Request) -> web.Response:
        status, ctype, body = await to_all(request)
        if status == 201:   # mirror it: the hub's fleet maps new tokens to their owners
            spec = orjson.loads(await request.read())
            platform = spec.get("platform", "ios")
            app_name = spec.get("app")
            app_index = 0 if app_name is None else proxy.fleet.app_index(platform, app_name)
            proxy.fleet.add(platform, spec.get("count", 1), app=app_index, environment=spec.get("environment"))
        return _reply(status, ctype, body)

    async def state(request: web.Request) -> web.Response:
        w = proxy.owner(request.match_info["token"])
        try:
            spec = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            spec = None
        if isinstance(spec, dict) and ("uninstall" in spec or "installed" in spec):
            return _reply(*await to_all(request, answer_from=w))   # every worker answers 410 from now on
        return await to_owner(request)

    async def stats(request: web.Request) -> web.Response:
        return _json(await hub.stats())

    async def fleet_stats(request: web.Request) -> web.Response:
        parts = [await proxy.json(w, "/stats/fleet") for w in range(proxy.n)]
        funnel = await hub.stats()
        funnel = {k: funnel[k] for k in ("accepted", "rejected", "delivered", "dropped", "pending")}
        return _json(merge.merge_fleet_stats(parts, funnel))

    async def journal(request: web.Request) -> web.StreamResponse:
        q = dict(request.query)
        if q.get("format") == "jsonl":
            exports = []
            for w in range(proxy.n):
                _, _, body = await proxy.call(w, "GET", request.path_qs)
                exports.append(body.splitlines(keepends=True))
            return web.Response(body=b"".join(merge.merge_jsonl(exports)),
                                headers={"Content-Type": "application/x-ndjson"})
        try:
            since = int(q.get("since") or 0)
            limit = int(q.get("limit") or 100)
        except ValueError:
            return await to_worker0(request)      # the worker words the 400
        if since < 0 or not 1 <= limit <= 10_000:
            return await to_worker0(request)
        pages = []
        asked_at = time.time()
        for w in range(proxy.n):
            status, ctype, body = await proxy.call(w, "GET", request.path_qs)
            if status != 200:
                return _reply(status, ctype, body)
            pages.append(orjson.loads(body))
        return _json(merge.merge_journal(pages, since, limit, proxy.n, asked_at))

    async def metrics(request: web.Request) -> web.Response:
        texts = []
        ctype = "text/plain; version=0.0.4; charset=utf-8"
        for w in range(proxy.n):
            _, ctype, body = await proxy.call(w, "GET", "/metrics")
            texts.append(body.decode())
        return web.Response(body=merge.merge_metrics(texts).encode(), headers={"Content-Type": ctype})

    async def events(request: web.Request) -> web.StreamResponse:
        """Every worker's event stream, interleaved event by event (each worker's own order is kept)."""
        assert proxy.session is not None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        connected = asyncio.Semaphore(0)

        async def follow(w: int) -> None:
            try:
                async with proxy.session.get(proxy.url(w, request.path_qs),   # type: ignore[union-attr]
                                             timeout=aiohttp.ClientTimeout(total=None)) as r:
                    connected.release()
                    buf = b""
                    async for chunk in r.content.iter_any():
                        buf += chunk
                        *events_, buf = buf.split(b"\n\n")
                        for ev in events_:
                            if ev.startswith(b"data: "):
                                await queue.put(ev + b"\n\n")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            finally:
                await queue.put(None)

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
                out = [item]
                while not queue.empty():
                    nxt = queue.get_nowait()
                    if nxt is None:
                        ended += 1
                    else:
                        out.append(nxt)
                await resp.write(b"".join(out))
        except (ConnectionResetError, asyncio.TimeoutError):
            pass
        finally:
            for t in tasks:
                t.cancel()
        return resp

    app.router.add_get("/health", health)
    app.router.add_get("/endpoints", endpoints)
    app.router.add_get("/devices", to_worker0)
    app.router.add_post("/devices", register)
    app.router.add_get("/devices/{token}", to_owner)
    app.router.add_post("/devices/{token}/state", state)
    app.router.add_post("/devices/{token}/open", to_owner)
    app.router.add_get("/journal", journal)
    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/fleet", fleet_stats)
    app.router.add_post("/reset", broadcast)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/events", events)
    app.router.add_post("/faults", broadcast)
    app.router.add_get("/faults", to_worker0)
    app.router.add_delete("/faults", broadcast)
    app.router.add_delete("/faults/{id}", broadcast)
    return app
