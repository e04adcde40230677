"""The cluster's routing + snapshot logic under random interleavings: N workers with real Routers and
Ledgers, in-memory FIFO channels, partial channel deliveries, random settles, and snapshots (hub
requests and peer markers arriving in any order).

Properties: every completed snapshot balances (accepted = delivered + dropped + pending) with a
non-negative in-transit count, and counts exactly the notifications each worker had accepted from
senders before its own snapshot; at quiescence every notification is in exactly one ledger, its
owner's.
"""
from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from device_sim.ledger import Ledger
from device_sim.notification import Notification, Outcome
from pushsim.cluster.routing import Router, Snapshot, combine, owner_of

INSTALLS = 17


class World:
    def __init__(self, n: int) -> None:
        self.n = n
        self.ledgers = [Ledger() for _ in range(n)]
        self.pending: list[list[int]] = [[] for _ in range(n)]      # seqs the "OS policy" still holds
        self.chan: dict[tuple[int, int], deque] = {(i, j): deque() for i in range(n) for j in range(n) if i != j}
        self.submitted = [0] * n             # notifications accepted from senders at each worker
        self.at_snapshot: dict[int, dict[int, int]] = {}       # k → worker → submitted[worker] then
        self.snaps: dict[int, dict[int, Snapshot]] = {}
        self.hub_asked: dict[int, set[int]] = {}
        self.k = 0
        self.ids: dict[str, int] = {}        # message id → install
        self.routers = [self._router(i) for i in range(n)]

    def _router(self, i: int) -> Router:
        ledger = self.ledgers[i]

        def submit_local(note: Notification) -> int:
            seq = ledger.accept(note)
            self.pending[i].append(seq)
            return seq

        def on_snapshot(s: Snapshot) -> None:
            self.snaps.setdefault(s.k, {})[i] = s
            self.at_snapshot.setdefault(s.k, {})[i] = self.submitted[i]

        return Router(i, self.n, submit_local, ledger.stats, on_snapshot=on_snapshot)

    # steps ------------------------------------------------------------------------------------
    def submit(self, at: int, install: int) -> None:
        mid = f"m{len(self.ids)}"
        self.ids[mid] = install
        self.submitted[at] += 1
        self.routers[at].submit(Notification("apns", "t", install, mid, 0.0, "alert", 10, b"{}"))

    def flush(self, i: int) -> None:
        for peer, msgs in self.routers[i].take_outbox():
            self.chan[(i, peer)].append(list(msgs))     # one frame per peer per tick

    def deliver(self, src: int, dst: int, frames: int) -> None:
        q = self.chan[(src, dst)]
        for _ in range(min(frames, len(q))):
            self.routers[dst].receive(src, q.popleft())

    def settle(self, i: int, count: int, drop: bool) -> None:
        for _ in range(min(count, len(self.pending[i]))):
            seq = self.pending[i].pop(0)
            if drop:
                self.ledgers[i].drop(seq, "Expired", 1.0)
            else:
                self.ledgers[i].deliver(seq, 1.0)

    def start_snapshot(self) -> None:
        if self.k and len(self.snaps.get(self.k, {})) < self.n:
            return                           # the hub runs one snapshot at a time
        self.k += 1
        self.hub_asked[self.k] = set()

    def hub_request(self, i: int) -> None:
        if self.k and i not in self.hub_asked[self.k]:
            self.hub_asked[self.k].add(i)
            self.routers[i].request_snapshot(self.k)

    def check_complete_snapshots(self) -> None:
        for k, snaps in self.snaps.items():
            if len(snaps) < self.n:
                continue
            stats = combine(list(snaps.values()))
            total = stats["delivered"] + sum(stats["dropped"].values()) + sum(stats["pending"].values())
            assert stats["accepted"] == total, (k, stats)
            assert stats["pending"].get("in-transit", 0) >= 0
            assert stats["accepted"] == sum(self.at_snapshot[k].values()), (k, stats, self.at_snapshot[k])

    def quiesce(self) -> None:
        for _ in range(self.n + 2):          # markers can cause one more round of flushes
            for i in range(self.n):
                self.flush(i)
            for (src, dst), q in self.chan.items():
                self.deliver(src, dst, len(q))
        assert all(not q for q in self.chan.values())


step = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 3), st.integers(0, INSTALLS - 1)),
    st.tuples(st.just("flush"), st.integers(0, 3)),
    st.tuples(st.just("deliver"), st.integers(0, 3), st.integers(0, 3), st.integers(1, 3)),
    st.tuples(st.just("settle"), st.integers(0, 3), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("hub"), st.integers(0, 3)),
)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 4), st.lists(step, min_size=30, max_size=150))
def test_snapshots_balance_and_nothing_is_lost_or_counted_twice(n, steps):
    w = World(n)
    for s in steps:
        op, args = s[0], [a % n if isinstance(a, int) and not isinstance(a, bool) else a for a in s[1:]]
        if op == "submit":
            w.submit(args[0], s[2])
        elif op == "flush":
            w.flush(args[0])
        elif op == "deliver":
            if args[0] != args[1]:
                w.deliver(args[0], args[1], s[3])
        elif op == "settle":
            w.settle(args[0], s[2], s[3])
        elif op == "snapshot":
            w.start_snapshot()
        else:
            w.hub_request(args[0])
        w.check_complete_snapshots()
        for led in w.ledgers:
            led.check()
    # Finish any snapshot in progress, then drain every channel.
    for i in range(n):
        w.hub_request(i)
    w.quiesce()
    w.check_complete_snapshots()
    assert all(len(w.snaps[k]) == n for k in w.snaps)
    seen: dict[str, int] = {}
    for i, led in enumerate(w.ledgers):
        for rec in led.records.values():
            mid = rec.note.message_id
            assert mid not in seen, f"{mid} in ledgers {seen[mid]} and {i}"
            seen[mid] = i
            assert owner_of(rec.note.install, n) == i
    assert seen.keys() == w.ids.keys()
    assert sum(sum(r.sent) for r in w.routers) == sum(sum(r.recv) for r in w.routers)
    final = combine([Snapshot(0, i, w.ledgers[i].stats(), w.routers[i].sent, w.routers[i].recv, {})
                     for i in range(n)])
    assert final["accepted"] == len(w.ids) and "in-transit" not in final["pending"]
    assert sum(1 for led in w.ledgers for r in led.records.values() if r.outcome is Outcome.PENDING) == \
        sum(final["pending"].values())
