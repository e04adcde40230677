"""Hand-offs to the other partitions' instances (`serve --partition K/N --peers URL,...`).

A topic or condition message, and a subscription change for a token another partition owns, is
posted as JSON to that instance's control API (`POST /peer/topic-message`, `POST
/peer/subscriptions`). Plain HTTP to the control APIs the instances already have: no broker to
deploy, and the same URLs the merged views (`pushsim stats --admin ...`) read.

The fake services answer synchronously, so a hand-off is queued and sent by one task per peer,
in order (a subscription change sent before a message reaches that peer before it). Everything
is bounded: `MAX_QUEUED` hand-offs waiting per peer (more fail at once), `TIMEOUT` seconds per
attempt, `ATTEMPTS` tries. A hand-off that fails is never silent: it is counted (`stats()`, shown
under "handoff" in /stats of a partitioned instance), journaled (service "peer", reason
PeerUnavailable / PeerQueueFull / NoPeerURL) and logged.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

log = logging.getLogger("pushsim.peers")

TOPIC_MESSAGE = "/peer/topic-message"
SUBSCRIPTIONS = "/peer/subscriptions"
MAX_QUEUED = 10_000        # hand-offs waiting for one peer; a down peer must not grow memory
TIMEOUT = 5.0              # seconds per attempt (connect + answer)
ATTEMPTS = 3
RETRY_PAUSE = 0.2          # seconds before the 2nd attempt, doubling

# on_failure(route, message id or None, the peer's URL, reason)
Failure = Callable[[str, str | None, str, str], None]


@dataclass
class _Link:
    url: str | None
    queue: deque[tuple[str, bytes, str | None]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    down: bool = False           # the last attempt failed (logged once per change)


class Peers:
    """This instance's links to the other N-1 instances."""

    def __init__(self, me: int, n: int, urls: list[str], on_failure: Failure, *,
                 timeout: float = TIMEOUT, max_queued: int = MAX_QUEUED, attempts: int = ATTEMPTS) -> None:
        self.me, self.n = me, n
        self.on_failure = on_failure
        self.timeout, self.max_queued, self.attempts = timeout, max_queued, attempts
        self.links: dict[int, _Link] = {k: _Link(None) for k in range(n) if k != me}
        self._session: Any = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.set_urls(urls)

    def set_urls(self, urls: list[str]) -> None:
        """The control-API base URLs of all N instances in partition order (own entry ignored); []
        forgets them. Queued hand-offs go to the new URLs."""
        if urls and len(urls) != self.n:
            raise ValueError(f"expected {self.n} peer URLs (one per partition, this one's included), got {len(urls)}")
        for k, link in self.links.items():
            link.url = urls[k].rstrip("/") if urls else None

    def urls(self) -> list[str | None]:
        return [None if k == self.me else self.links[k].url for k in range(self.n)]

    # sending ----------------------------------------------------------------------------------
    def broadcast(self, route: str, doc: dict[str, Any], message_id: str | None = None) -> None:
        body = orjson.dumps({**doc, "from": self.me})
        for k in self.links:
            self._enqueue(k, route, body, message_id)

    def send(self, peer: int, route: str, doc: dict[str, Any]) -> None:
        self._enqueue(peer, route, orjson.dumps({**doc, "from": self.me}), None)

    def _enqueue(self, peer: int, route: str, body: bytes, message_id: str | None) -> None:
        link = self.links[peer]
        if link.url is None:
            self._fail(link, route, message_id, "NoPeerURL", f"no URL for partition {peer}: set --peers")
            return
        if len(link.queue) >= self.max_queued:
            self._fail(link, route, message_id, "PeerQueueFull",
                       f"{self.max_queued} hand-offs already wait for {link.url}")
            return
        link.queue.append((route, body, message_id))
        self._idle.clear()
        if link.task is None or link.task.done():
            link.task = asyncio.get_running_loop().create_task(self._drain(peer, link))

    async def _drain(self, peer: int, link: _Link) -> None:
        try:
            while link.queue:
                route, body, message_id = link.queue[0]
                error = await self._post(link, route, body)
                link.queue.popleft()
                if error is None:
                    link.sent += 1
                    if link.down:
                        link.down = False
                        log.warning("peer %d (%s) answers again", peer, link.url)
                else:
                    self._fail(link, route, message_id, "PeerUnavailable", f"{link.url}{route}: {error}")
        finally:
            if all(not lk.queue for lk in self.links.values()):
                self._idle.set()

    async def _post(self, link: _Link, route: str, body: bytes) -> str | None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        pause = RETRY_PAUSE
        error = "not tried"
        for attempt in range(self.attempts):
            if link.url is None:
                return "no URL (peers were unset)"
            try:
                async with self._session.post(link.url + route, data=body,
                                              headers={"Content-Type": "application/json"}) as resp:
                    text = await resp.read()
                    if resp.status < 300:
                        return None
                    error = f"HTTP {resp.status}: {text[:200].decode('utf-8', 'replace')}"
                    if resp.status < 500:
                        return error          # the peer refused it: trying again cannot help
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt + 1 < self.attempts:
                await asyncio.sleep(pause)
                pause *= 2
        return error

    def _fail(self, link: _Link, route: str, message_id: str | None, reason: str, detail: str) -> None:
        link.failed += 1
        link.last_error = detail
        if not link.down:
            link.down = True
            log.warning("hand-off to a peer failed (%s): %s", reason, detail)
        self.on_failure(route, message_id, link.url or "", reason)

    # status -----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        links = self.links.values()
        return {"sent": sum(lk.sent for lk in links), "failed": sum(lk.failed for lk in links),
                "queued": sum(len(lk.queue) for lk in links),
                "peers": {str(k): {"url": lk.url, "sent": lk.sent, "failed": lk.failed, "queued": len(lk.queue),
                                   "last_error": lk.last_error} for k, lk in self.links.items()}}

    async def idle(self, timeout: float) -> bool:
        """Wait until nothing is queued for any peer (True), or `timeout` seconds (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop sending. What is still queued is counted failed (reason PeerShutdown), not dropped unseen."""
        tasks = [lk.task for lk in self.links.values() if lk.task is not None and not lk.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self.links.values():
            while link.queue:
                route, _, message_id = link.queue.popleft()
                self._fail(link, route, message_id, "PeerShutdown", "this instance stopped before handing it off")
        if self._session is not None:
            await self._session.close()
            self._session = None
