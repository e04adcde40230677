from device_sim.fleet import Fleet
from device_sim.profile import FleetMix, PlatformMix, DEFAULT_IOS, mix64, unit
from device_sim.testing import push, virtual_world


def test_an_install_profile_depends_only_on_seed_and_index():
    mix = FleetMix()
    assert mix.profile(7, 123, True) == mix.profile(7, 123, True)
    assert [mix.profile(7, i, True) for i in range(50)] != [mix.profile(8, i, True) for i in range(50)]


def test_profile_mix_follows_the_distribution():
    mix = FleetMix(ios=PlatformMix.from_dict({"low_power": 0.3, "app_state": {"background": 0.5,
                                                                                "force_quit": 0.5}}, DEFAULT_IOS))
    profs = [mix.profile(1, i, True) for i in range(4000)]
    lpm = sum(p.low_power for p in profs) / len(profs)
    stopped = sum(p.app_state == "stopped" for p in profs) / len(profs)
    assert 0.26 < lpm < 0.34 and 0.46 < stopped < 0.54


def test_traffic_to_one_install_does_not_change_another_installs_outcomes():
    def run(noise: bool):
        b = virtual_world("ios=3", seed=4, profile={"ios": {"opens_per_day": 5.0, "offline": 0.3}})
        out = []
        t0 = b.sched.now
        for k in range(60):
            if noise:
                push(b, 2, at=t0 + 600 * k + 7)
            n = push(b, 0, at=t0 + 600 * (k + 1))
            out.append(n.seq)
        b.sched.run_until(b.sched.now + 86_400)
        return [(b.ledger.records[s].outcome, b.ledger.records[s].reason, b.ledger.records[s].settled_at)
                for s in out]
    assert run(False) == run(True)


def test_hash_helpers_are_stable():
    assert mix64(1, 2) == mix64(1, 2) != mix64(2, 1)
    assert 0.0 <= unit(3, 4) < 1.0


def test_million_install_fleet_creates_no_device_state_until_traffic():
    f = Fleet(seed=1)
    f.add("ios", 1000)
    b = virtual_world("ios=1000")
    assert b.device_sim.devices == {}
    push(b, 999)
    assert list(b.device_sim.devices) == [999]
