"""The explicit seams the cluster extends the world through: a dispatcher route, journal id
allocation, a topic-subscription observer, and the public positions it reads."""
from __future__ import annotations

from device_sim.journal import Journal
from device_sim.notification import Notification
from device_sim.testing import outcome, push, virtual_world
from device_sim.world import World, WorldSettings
from fake_fcm.topics import MAX_TOPICS_PER_INSTALL, TopicRegistry


class CountingRoute:
    def __init__(self, world: World) -> None:
        self.local, self.seen = world.local_dispatcher, 0

    def submit(self, note: Notification) -> int:
        self.seen += 1
        return self.local.submit(note)


def test_the_route_sees_every_accepted_notification_and_hands_it_on() -> None:
    routes: list[CountingRoute] = []

    def route(w: World) -> CountingRoute:
        routes.append(CountingRoute(w))
        return routes[-1]

    world = World(WorldSettings(devices="ios=1", clock="virtual"), route=route)
    assert world.dispatcher is routes[0] and world.dispatcher is not world.local_dispatcher
    n = push(world, 0, "alert", priority=10)
    assert routes[0].seen == 1 and outcome(world, n) == ("delivered", None)
    assert world.ledger.next_seq == 1


def test_without_a_route_the_local_dispatcher_takes_submissions() -> None:
    world = virtual_world("ios=1")
    assert world.dispatcher is world.local_dispatcher


def test_journal_ids_come_from_the_allocator_and_stay_increasing() -> None:
    j = Journal()
    asked: list[tuple[float, int]] = []

    def ids(t: float, next_free: int) -> int:
        asked.append((t, next_free))
        return max(next_free, int(t) * 10)

    j.allocate_ids(ids)
    for t in (5.0, 5.0, 7.0):
        j.add(t, "apns", "POST", "/3/device/x", None, 200, None, None)
    assert [e.id for e in j.entries] == [50, 51, 70] and j.next_id == 71
    assert asked == [(5.0, 0), (5.0, 51), (7.0, 52)]


def test_the_topic_observer_hears_local_changes_only() -> None:
    reg = TopicRegistry()
    heard: list[tuple[str, str, int]] = []
    reg.observe(lambda op, topic, install: heard.append((op, topic, install)))
    assert reg.subscribe("news", 1)
    reg.subscribe("sport", 2, notify=False)            # a replica applying a peer's change
    reg.unsubscribe("news", 1)
    reg.unsubscribe("sport", 2, notify=False)
    assert heard == [("add", "news", 1), ("remove", "news", 1)]
    assert reg.subscribers("sport") == set()
    for k in range(MAX_TOPICS_PER_INSTALL):
        reg.subscribe(f"t{k}", 9, notify=False)
    assert not reg.subscribe("one-too-many", 9)         # refused: nothing to replicate
    assert heard[-1] == ("remove", "news", 1)


def test_annotations_are_not_created_by_looking() -> None:
    n = Notification("apns", "tok", 0, "m", 0.0, "alert", 10, b"{}")
    assert n.extra_or_none is None
    n.extra["k"] = 1
    assert n.extra_or_none == {"k": 1}
