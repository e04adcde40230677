"""The fleet census: exact on small fleets, a scaled sample on large ones, per shard, and read-only."""
from __future__ import annotations

from device_sim.census import census
from device_sim.sim import outcome_digest
from device_sim.testing import push, virtual_world
from device_sim.world import World, WorldSettings


def test_a_small_fleet_is_counted_exactly_and_follows_state_changes() -> None:
    w = virtual_world("ios=6,android=4")
    sim = w.device_sim
    before = sim.census()
    assert before["exact"] is True and before["sampled"] == 10 and before["installs"] == 10
    assert before["ios"]["installs"] == 6 and before["android"]["installs"] == 4
    assert before["ios"]["online"] == 6 and before["ios"]["offline"] == 0 and before["ios"]["throttled"] == 0

    sim.set_state(0, online=False)
    sim.set_state(1, app_state="force_quit")
    sim.set_state(2, low_power=True)
    assert [w.fleet.platform_of(i) for i in (0, 6)] == ["ios", "android"]
    sim.set_state(7, doze=True)            # Android install 7, background and not charging → in Doze
    after = sim.census()
    assert after["ios"]["offline"] == 1 and after["ios"]["connectivity_pinned"] == 1
    assert after["ios"]["force_quit"] == 1 and after["ios"]["low_power"] == 1
    assert sim.android.dozing(sim.devices[7], sim.sched.now)   # outside its 30 s maintenance window now
    assert after["android"]["dozing"] == 1
    assert after["android"]["bucket_active"] == 4


def test_a_spent_background_budget_shows_as_throttled() -> None:
    w = virtual_world("ios=2", ios={"budget_per_hour": 1.0, "budget_burst": 1.0})
    assert w.device_sim.census()["ios"]["throttled"] == 0
    push(w, 0)
    w.sched.run_until(w.sched.now + 1)       # the wake spent the only token
    states = w.device_sim.census()
    assert states["ios"]["throttled"] == 1
    assert states["ios_budget_tokens"] < 2.0


def test_a_large_fleet_is_sampled_and_scaled_to_its_size() -> None:
    w = World(WorldSettings(devices="ios=60000,android=40000", seed=3, clock="virtual"))
    states = census(w.device_sim, sample=1000)
    assert states["exact"] is False and states["sampled"] == 1000 and states["installs"] == 100_000
    ios, android = states["ios"], states["android"]
    assert abs(ios["installs"] + android["installs"] - 100_000) <= 2          # rounding of two scaled counts
    assert ios["online"] + ios["offline"] == ios["installs"]
    assert 50_000 < ios["installs"] < 70_000                                    # the sample follows the mix
    assert not w.device_sim.devices                                             # looking created no install


def test_shards_add_up_to_the_whole_fleet() -> None:
    w = virtual_world("ios=9,android=8")
    whole = census(w.device_sim)
    parts = [census(w.device_sim, shard=(k, 3)) for k in range(3)]
    assert sum(p["installs"] for p in parts) == whole["installs"] == 17
    for platform in ("ios", "android"):
        for key, n in whole[platform].items():
            assert sum(p[platform][key] for p in parts) == n, (platform, key)


def test_looking_at_the_fleet_changes_nothing_it_does() -> None:
    def run(look: bool) -> str:
        w = World(WorldSettings(devices="ios=30,android=30", seed=11, clock="virtual"))
        for k in range(200):
            push(w, k % 60, at=w.sched.now + 37.0)
            if look and k % 7 == 0:
                census(w.device_sim)
        w.sched.run_until(w.sched.now + 86_400)
        return outcome_digest(w.ledger)

    assert run(look=True) == run(look=False)


def test_a_partition_counts_only_the_installs_it_owns() -> None:
    whole = World(WorldSettings(devices="ios=10,android=11", seed=5, clock="virtual"))
    parts = [World(WorldSettings(devices="ios=10,android=11", seed=5, clock="virtual", partition=(k, 3)))
             for k in range(3)]
    counts = [p.device_sim.census() for p in parts]
    assert [c["installs"] for c in counts] == [7, 7, 7]
    for platform in ("ios", "android"):
        for key, n in whole.device_sim.census()[platform].items():
            assert sum(c[platform][key] for c in counts) == n, (platform, key)
