"""One instance of a partitioned deployment (`serve --partition K/N`): what it changes in a server.

Every instance builds the same fleet from the same seed and `--devices`, but owns only installs
i % N == K (device_sim.fleet); tokens say their partition in clear (device_sim.tokens), so a proxy
routes sends to their owner. What one instance cannot do alone is wired here:

- ids that stay unique across instances: journal ids (time-ordered, ≡ K mod N, as cluster workers
  do, so merged journals page with one cursor), connection ids, FCM message names;
- OAuth access tokens sealed with the state dir's key, so a token from any instance works on all;
- topic and condition messages handed to every other instance, which fans them out to its own
  subscribers; subscription changes for another partition's tokens forwarded to their owner
  (pushsim.peers does the bounded sending; the routes are in pushsim.control).
"""
from __future__ import annotations

from typing import Any

from .cluster.shared_auth import share_tokens
from .peers import SUBSCRIPTIONS, TOPIC_MESSAGE, Peers
from .testbed import Testbed


def lane_ids(me: int, n: int) -> Any:
    """Journal ids = arrival time in µs × N + K, kept increasing: unique and time-ordered across instances."""
    def next_id(t: float, next_free: int) -> int:
        nid = max(next_free, int(t * 1_000_000) * n)
        return nid + (me - nid) % n
    return next_id


class Partition:
    def __init__(self, k: int, n: int, peer_urls: list[str]) -> None:
        self.k, self.n = k, n
        self._urls = peer_urls
        self.peers: Peers | None = None
        self.fcm: Any = None
        self.testbed: Testbed | None = None
        self.received = {"messages": 0, "message_installs": 0, "subscriptions": 0}

    # PushSim hooks ----------------------------------------------------------------------------
    def testbed_ready(self, testbed: Testbed) -> None:
        self.testbed = testbed
        testbed.journal.allocate_ids(lane_ids(self.k, self.n))
        self.peers = Peers(self.k, self.n, self._urls, self._failed)

    def plans_ready(self, plans: list[Any], grant_seal: bytes) -> None:
        for plan in plans:
            service = plan.service
            service.number_connections(self.k, self.n)
            if plan.name == "fcm":
                self.fcm = service
                share_tokens(service.authority, grant_seal)
                service.set_name_lane(self.k, self.n)
                service.hand_off = self._hand_off_message
                service.topic_api.elsewhere = self._owner_elsewhere
                service.topic_api.forward = self._forward_subscriptions

    async def close(self) -> None:
        if self.peers is not None:
            await self.peers.close()

    # outgoing ---------------------------------------------------------------------------------
    def _hand_off_message(self, body: bytes, name: str, now: float) -> None:
        assert self.peers is not None
        self.peers.broadcast(TOPIC_MESSAGE, {"name": name, "t": now, "body": body.decode("utf-8", "replace")},
                             message_id=name)

    def _owner_elsewhere(self, token: str) -> int | None:
        assert self.testbed is not None
        owner = self.testbed.fleet.owner_of_token(token)
        return owner if owner is not None and owner != self.k else None

    def _forward_subscriptions(self, owner: int, op: str, topic: str, tokens: list[str]) -> None:
        assert self.peers is not None
        self.peers.send(owner, SUBSCRIPTIONS, {"op": op, "topic": topic, "tokens": tokens})

    def _failed(self, route: str, message_id: str | None, url: str, reason: str) -> None:
        tb = self.testbed
        if tb is not None:
            tb.journal.add(tb.now(), "peer", "POST", route, url or None, 503, reason, message_id)

    # incoming (pushsim.control's /peer routes) -------------------------------------------------------
    def receive_message(self, name: str, t: float, body: bytes) -> int:
        n = self.fcm.deliver_handed_off(body, name, t)
        self.received["messages"] += 1
        self.received["message_installs"] += n
        return n

    def receive_subscriptions(self, op: str, topic: str, tokens: list[str]) -> list[str | None]:
        self.received["subscriptions"] += len(tokens)
        return list(self.fcm.topic_api.apply(op, topic, tokens))

    def stats(self) -> dict[str, Any]:
        """The hand-off counters /stats shows under "handoff" (partitioned instances only)."""
        out = self.peers.stats() if self.peers is not None else {}
        return {"partition": f"{self.k}/{self.n}", **out, "received": dict(self.received)}

