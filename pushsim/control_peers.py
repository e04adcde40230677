"""Control API handlers between the instances of a partitioned deployment (`serve --partition K/N`,
pushsim/partition.py; routes: `pushsim.control.ROUTES`).

    POST /peer/topic-message   another partition accepted a topic/condition message: deliver it here
    POST /peer/subscriptions   another partition took a subscription change for tokens owned here
    PUT  /peer/peers           the control-API URLs of all N instances (when known only after start)
    GET  /peer/status          hand-off counters per peer

All are 409 on an instance started without --partition; bad bodies are 400 with what was wrong.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from .control_input import BadRequest, choice, integer, json_object, quote

MAX_HANDOFF_TOKENS = 1000      # one IID batch


def _partition_of(sim: Any) -> Any:
    part = getattr(sim, "partition", None)
    if part is None or part.fcm is None:
        raise web.HTTPConflict(reason="not a partitioned instance with fake FCM: start it with --partition K/N")
    return part


def _sender(body: dict[str, Any], part: Any) -> int:
    k = integer("from", body.get("from"), 0, part.n - 1)
    if k == part.k:
        raise BadRequest(f"from: {k} is this instance's own partition")
    return k


async def peer_topic_message(request: web.Request, sim: Any) -> web.Response:
    """Another partition accepted a topic/condition message: deliver it to this instance's subscribers."""
    part = _partition_of(sim)
    body = await json_object(request)
    _sender(body, part)
    name, t, message = body.get("name"), body.get("t"), body.get("body")
    if not isinstance(name, str) or not name or len(name) > 512:
        raise BadRequest(f"name: expected the message name, got {quote(name)}")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t < 1e11:
        raise BadRequest(f"t: expected the accepting instance's time in seconds, got {quote(t)}")
    if not isinstance(message, str):
        raise BadRequest(f"body: expected the message request body as a string, got {quote(message)}")
    try:
        reached = part.receive_message(name, float(t), message.encode())
    except ValueError as e:
        raise BadRequest(f"body: {e}") from None
    return web.json_response({"installs": reached})


async def peer_subscriptions(request: web.Request, sim: Any) -> web.Response:
    """Another partition took a subscription change for tokens this one owns: apply it here."""
    part = _partition_of(sim)
    body = await json_object(request)
    _sender(body, part)
    op = choice("op", body.get("op"), ("add", "remove"))
    topic, tokens = body.get("topic"), body.get("tokens")
    from fake_fcm.topics import valid_topic
    if not isinstance(topic, str) or not valid_topic(topic):
        raise BadRequest(f"topic: expected a topic name, got {quote(topic)}")
    if not isinstance(tokens, list) or not tokens or len(tokens) > MAX_HANDOFF_TOKENS \
            or not all(isinstance(x, str) and len(x) <= 4096 for x in tokens):
        raise BadRequest(f"tokens: expected 1..{MAX_HANDOFF_TOKENS} registration tokens")
    return web.json_response({"results": part.receive_subscriptions(op, topic, tokens)})


async def peer_set_peers(request: web.Request, sim: Any) -> web.Response:
    """`{"peers": [URL, ...]}`: the control-API URLs of all N instances in partition order, as
    --peers gives them at start (for instances on ephemeral ports, known only once all are up)."""
    part = _partition_of(sim)
    body = await json_object(request)
    urls = body.get("peers")
    if not isinstance(urls, list) or len(urls) != part.n or not all(
            isinstance(u, str) and u.startswith(("http://", "https://")) and len(u) < 2048 for u in urls):
        raise BadRequest(f"peers: expected {part.n} http(s):// URLs, one per partition in order (this one's included)")
    part.peers.set_urls(urls)
    return web.json_response({"peers": part.peers.urls()})


async def peer_status(request: web.Request, sim: Any) -> web.Response:
    part = _partition_of(sim)
    return web.json_response(part.stats())
