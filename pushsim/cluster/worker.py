"""One worker process: a full PushSim on the shared ports, plus routing to its peers and the hub.

It owns installs i with i % N == me. Its services accept any request; the routing dispatcher hands
foreign notifications to their owner. Topic subscriptions are replicated to every peer; OAuth
tokens verify anywhere (shared_auth). It talks to the hub over one channel:
    hub → worker: ("snap", k) | ("stop",)
    worker → hub: ("ready", info) | ("error", message) | ("snap", Snapshot)
and exits when told to stop, on SIGTERM, or when the hub goes away.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from device_sim.world import World
from pushsim.config import Config
from pushsim.testbed import Testbed

from .channel import Channel, open_channel
from .routing import Router, Snapshot
from .shared_auth import share_tokens

log = logging.getLogger("pushsim.cluster.worker")
TOPIC = "topic"
PR_SET_PDEATHSIG = 1


@dataclass
class WorkerRole:
    """The hooks PushSim calls in cluster mode, and this worker's links."""
    me: int
    workers: int
    secret: bytes
    hub: Channel | None = None
    peers: dict[int, Channel] = field(default_factory=dict)
    router: Router | None = None
    backlog: list[tuple[int, list[Any]]] = field(default_factory=list)
    server: Any = None          # this worker's PushSim
    live: bool = False
    requests: int = 0           # journal entries made here: requests this worker answered
    _fcm: Any = None

    # PushSim hooks ----------------------------------------------------------------------------
    def route(self, world: World) -> Router:
        """The world's dispatcher seam: accepted notifications go through the router, which keeps
        this worker's installs (for the local dispatcher) and queues the others for their owner."""
        loop = asyncio.get_running_loop()
        self.router = Router(self.me, self.workers, world.local_dispatcher.submit, world.ledger.stats,
                             request_flush=lambda: loop.call_soon(self.flush),
                             on_snapshot=self._send_snapshot, on_control=self._on_control,
                             snapshot_extra=self._extra)
        return self.router

    def testbed_ready(self, testbed: Testbed) -> None:
        testbed.journal.allocate_ids(self.journal_id)
        testbed.device_sim.shard = (self.me, self.workers)
        if testbed.device_sim.cohorts is not None:        # tally only the installs this worker owns
            testbed.device_sim.cohorts.shard = (self.me, self.workers)

    def plans_ready(self, plans: list[Any]) -> None:
        for plan in plans:
            service = plan.service
            service.number_connections(self.me, self.workers)   # connection ids unique cluster-wide
            if plan.name == "fcm":
                share_tokens(service.authority, self.secret)
                self._fcm = service
                service.topics.observe(self._on_topic_change)
                service.set_name_lane(self.me, self.workers)
        self.live = True
        for peer, msgs in self.backlog:
            self.on_peer(peer, msgs)
        self.backlog.clear()

    # routing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        assert self.router is not None
        for peer, msgs in self.router.take_outbox():
            ch = self.peers.get(peer)
            if ch is not None:
                ch.send(msgs)

    def on_peer(self, peer: int, msgs: list[Any]) -> None:
        if not self.live:                       # a peer serves before our services exist: keep it
            self.backlog.append((peer, msgs))
        else:
            self.router.receive(peer, msgs)     # type: ignore[union-attr]

    def _on_topic_change(self, op: str, topic: str, install: int) -> None:
        """Subscriptions are shared state: a change made here goes to every peer (eventually consistent)."""
        if self.router is not None:
            self.router.broadcast((TOPIC, op, topic, install))

    def journal_id(self, t: float, next_free: int) -> int:
        """Journal ids that one cursor can page through across workers: the entry's arrival time in
        microseconds × N + this worker (kept increasing). Ids stay unique and follow time across the
        cluster, so `since` means the same moment on every worker (see merge.merge_journal)."""
        self.requests += 1
        nid = max(next_free, int(t * 1_000_000) * self.workers)
        return nid + (self.me - nid) % self.workers

    def _on_control(self, peer: int, msg: tuple[Any, ...]) -> None:
        if msg[0] == TOPIC and self._fcm is not None:
            topics = self._fcm.topics      # a peer's change: apply it, do not tell it back
            if msg[1] == "add":
                topics.subscribe(msg[2], msg[3], notify=False)
            else:
                topics.unsubscribe(msg[2], msg[3], notify=False)
        else:
            log.warning("worker %d: unknown message %r from worker %d", self.me, msg[0], peer)

    # snapshots --------------------------------------------------------------------------------
    def _extra(self) -> dict[str, Any]:
        conns = self.server.connection_count() if self.server is not None else 0
        # subscriptions this worker knows of: equal on every worker once replication has caught up
        subs = sum(len(s) for s in self._fcm.topics.by_topic.values()) if self._fcm is not None else 0
        return {"pid": os.getpid(), "requests": self.requests, "connections": conns, "topic_subscriptions": subs}

    def _send_snapshot(self, snap: Snapshot) -> None:
        if self.hub is not None:
            self.hub.send(("snap", snap))


def _die_with_parent(hub_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):   # not Linux: EOF on the hub channel still stops us
        pass
    if os.getppid() != hub_pid:
        os._exit(1)


def run_worker(me: int, workers: int, config: Config, secret: bytes, hub_sock: socket.socket,
               peer_socks: dict[int, socket.socket], hub_pid: int) -> int:
    """The forked child's main: no event loop exists yet in this process."""
    from pushsim.server import new_event_loop

    _die_with_parent(hub_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: the hub decides
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_amain(me, workers, config, secret, hub_sock, peer_socks))


async def _amain(me: int, workers: int, config: Config, secret: bytes, hub_sock: socket.socket,
                 peer_socks: dict[int, socket.socket]) -> int:
    from pushsim.server import PushSim, StartError, tune_gc

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    role = WorkerRole(me, workers, secret)

    def on_hub(msg: Any) -> None:
        if msg[0] == "snap":
            if role.router is not None:
                role.router.request_snapshot(msg[1])
        elif msg[0] == "stop":
            stop.set()

    role.hub = await open_channel(hub_sock, on_hub, lambda exc: stop.set())
    for peer, sock in peer_socks.items():
        role.peers[peer] = await open_channel(sock, lambda msgs, p=peer: role.on_peer(p, msgs),
                                              lambda exc: None)   # the hub notices a dead peer
    server = role.server = PushSim(config, worker=role)
    try:
        endpoints = await server.start()
    except StartError as e:
        role.hub.send(("error", str(e)))
        await asyncio.sleep(0.05)
        return 2
    tune_gc()
    admin_port = int(endpoints["admin"]["url"].rsplit(":", 1)[1])
    role.hub.send(("ready", {"worker": me, "pid": os.getpid(), "admin_port": admin_port, "endpoints": endpoints}))
    await stop.wait()
    await server.stop()
    return 0
