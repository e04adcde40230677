"""pushsim.peers: hand-offs to other partitions are ordered, bounded, and never lost unseen."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from pushsim.peers import SUBSCRIPTIONS, TOPIC_MESSAGE, Peers
from tests.waiting import until


class Recorder:
    def __init__(self) -> None:
        self.failures: list[tuple[str, str | None, str, str]] = []

    def __call__(self, route: str, message_id: str | None, url: str, reason: str) -> None:
        self.failures.append((route, message_id, url, reason))


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, list[Any], dict[str, Any]]]:
    """A control API stand-in: records bodies; `mode["status"]` picks its answer, `mode["hang"]` never answers."""
    got: list[Any] = []
    mode: dict[str, Any] = {"status": 200, "hang": False, "calls": 0}

    async def handle(request: web.Request) -> web.Response:
        mode["calls"] += 1
        if mode["hang"]:
            await asyncio.Event().wait()
        got.append((request.path, await request.json()))
        return web.json_response({}, status=mode["status"])

    app = web.Application()
    app.router.add_post("/peer/{what}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", got, mode
    await runner.cleanup()


def _balance(p: Peers, enqueued: int) -> bool:
    s = p.stats()
    return bool(s["sent"] + s["failed"] + s["queued"] == enqueued)


async def test_hand_offs_arrive_in_order(peer: Any) -> None:
    url, got, _ = peer
    rec = Recorder()
    p = Peers(1, 2, [url, "http://ignored:1"], rec)
    for n in range(5):
        p.broadcast(TOPIC_MESSAGE, {"name": f"m{n}"}, message_id=f"m{n}")
    p.send(0, SUBSCRIPTIONS, {"op": "add"})
    assert await p.idle(5)
    assert [b.get("name", b.get("op")) for _, b in got] == ["m0", "m1", "m2", "m3", "m4", "add"]
    assert all(b["from"] == 1 for _, b in got) and got[-1][0] == SUBSCRIPTIONS
    assert p.stats()["sent"] == 6 and not rec.failures
    await p.close()


async def test_no_url_fails_at_once() -> None:
    rec = Recorder()
    p = Peers(0, 3, [], rec)
    p.broadcast(TOPIC_MESSAGE, {"name": "m"}, message_id="m")
    assert [f[3] for f in rec.failures] == ["NoPeerURL", "NoPeerURL"] and _balance(p, 2)
    assert p.stats()["peers"]["1"]["last_error"].startswith("no URL for partition 1")
    await p.close()


async def test_refusal_is_not_retried_and_shows(peer: Any) -> None:
    url, _, mode = peer
    mode["status"] = 400
    rec = Recorder()
    p = Peers(1, 2, [url, url], rec)
    p.broadcast(TOPIC_MESSAGE, {"name": "m"}, message_id="m")
    assert await p.idle(5)
    assert mode["calls"] == 1 and rec.failures == [(TOPIC_MESSAGE, "m", url, "PeerUnavailable")]
    assert "HTTP 400" in p.stats()["peers"]["0"]["last_error"]
    await p.close()


async def test_a_hung_peer_is_bounded_in_time_and_queue(peer: Any) -> None:
    url, _, mode = peer
    mode["hang"] = True
    rec = Recorder()
    p = Peers(0, 2, [url, url], rec, timeout=0.2, max_queued=3, attempts=2)
    for n in range(5):
        p.broadcast(TOPIC_MESSAGE, {"name": f"m{n}"}, message_id=f"m{n}")
    assert [f[1:] for f in rec.failures] == [("m3", url, "PeerQueueFull"), ("m4", url, "PeerQueueFull")]
    assert _balance(p, 5)
    await until(lambda: any(f[3] == "PeerUnavailable" for f in rec.failures), "the first hand-off timed out", 5)
    assert rec.failures[2][1:] == ("m0", url, "PeerUnavailable") and _balance(p, 5)
    await p.close()                         # what still waits is counted, not dropped unseen
    assert p.stats()["queued"] == 0 and _balance(p, 5)
    assert [f[1] for f in rec.failures if f[3] == "PeerShutdown"] == ["m1", "m2"]


async def test_set_urls_wants_one_per_partition() -> None:
    p = Peers(0, 3, [], Recorder())
    with pytest.raises(ValueError):
        p.set_urls(["http://a:1"])
    p.set_urls(["http://a:1/", "http://b:2/", "http://c:3"])
    assert p.urls() == [None, "http://b:2", "http://c:3"]
    await p.close()
