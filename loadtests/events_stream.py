"""One reader per process of pushsim's `/events` stream, fanning delivery events out to waiters.

Server-sent events: one `data: {json}` line per settled or re-pended notification, with at least
`token`, `outcome` and `reason`. A waiter registers its token *before* triggering the sender, so
no event can slip between trigger and wait.
"""
from __future__ import annotations

import logging
from typing import Any

import gevent
import gevent.event
import httpx
import orjson

log = logging.getLogger("pushsim.loadtests")

FINAL = frozenset({"delivered", "dropped"})


def parse_sse_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a `data:` line; None for comments, other fields, blank lines, bad JSON."""
    if not line.startswith("data:"):
        return None
    try:
        event = orjson.loads(line[5:].strip())
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


class Waiters:
    """token -> pending AsyncResults; resolved with the first final event for that token."""

    def __init__(self) -> None:
        self._by_token: dict[str, list[gevent.event.AsyncResult]] = {}

    def add(self, token: str) -> gevent.event.AsyncResult:
        result = gevent.event.AsyncResult()
        self._by_token.setdefault(token, []).append(result)
        return result

    def discard(self, token: str, result: gevent.event.AsyncResult) -> None:
        waiting = self._by_token.get(token)
        if waiting and result in waiting:
            waiting.remove(result)
            if not waiting:
                del self._by_token[token]

    def busy(self, token: str) -> bool:
        return token in self._by_token

    def dispatch(self, event: dict[str, Any]) -> bool:
        if event.get("outcome") not in FINAL:
            return False                       # re-pended: keep waiting for its final outcome
        waiting = self._by_token.pop(str(event.get("token")), None)
        for result in waiting or ():
            result.set(event)
        return bool(waiting)


class EventStream:
    def __init__(self, url: str) -> None:
        self.url = url
        self.waiters = Waiters()
        self.connected = gevent.event.Event()
        self.events_seen = 0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as http, \
                        http.stream("GET", self.url, headers={"accept": "text/event-stream"}) as resp:
                    resp.raise_for_status()
                    self.connected.set()
                    backoff = 0.2
                    for line in resp.iter_lines():
                        event = parse_sse_line(line)
                        if event is not None:
                            self.events_seen += 1
                            self.waiters.dispatch(event)
            except (httpx.HTTPError, OSError) as exc:
                log.warning("pushsim /events stream lost (%r); reconnecting", exc)
            self.connected.clear()
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        self._greenlet.kill(block=False)
