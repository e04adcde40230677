"""The fleet on a running event loop: the loop driver wakes it (scaled clock), the app's make-ready
fetch is a real HTTP request to a local server, and a journal export replays to the same digest."""
import asyncio

from aiohttp import web

from device_sim.notification import Notification
from device_sim.replay import export_jsonl, replay
from pushsim.config import Config
from pushsim.testbed import Testbed
from tests.waiting import until


async def _backend(handler):
    app = web.Application()
    app.router.add_get("/ready", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/ready"


def _note(testbed, i, k, push_type, payload=b"{}", priority=5):
    return Notification("apns" if testbed.fleet.platform[i] == 0 else "fcm", "t", i, f"m{k}", testbed.now(),
                        push_type, priority, payload, content_available=True)


async def test_live_scaled_run_is_woken_by_the_loop_and_replays_to_the_same_digest():
    loop = asyncio.get_running_loop()
    # 600x: the 20-minute iOS budget refill takes 2 s of wall time
    testbed = Testbed(Config(devices="ios=3,android=3", seed=5, clock="scaled:600"), schedule=loop.call_soon)
    for i in range(6):
        testbed.device_sim.set_state(i, app_state="background", online=True, low_power=False, bar=True, doze=False)
    k = 0
    for _ in range(4):                                   # four background pushes at once to install 0
        testbed.dispatcher.submit(_note(testbed, 0, k, "background"))
        k += 1
    for i in (3, 4):
        testbed.dispatcher.submit(_note(testbed, i, k, "data", priority=10))
        k += 1
    await until(lambda: testbed.ledger.pending == {"held-budget": 1},   # burst of 3 spent, the 4th is held
                "the fourth background push held for budget")
    held = [s for s, r in testbed.ledger.records.items() if r.reason == "held-budget"][0]
    await until(lambda: testbed.ledger.records[held].outcome.value != "pending", "the held push settled")
    assert testbed.ledger.records[held].outcome.value == "delivered"   # nobody called advance(): the driver did
    await until(lambda: not testbed.ledger.pending, "nothing pending")
    lines = list(export_jsonl(testbed.world))
    res = replay(lines)
    assert res.matches and res.funnel == testbed.ledger.stats()
    testbed.device_sim.driver.close()


async def test_make_ready_fetch_is_a_real_request_bounded_by_the_os_window():
    loop = asyncio.get_running_loop()
    hits = []

    async def ready(request):
        hits.append(request.headers.get("X-Pushsim-Install"))
        if request.query.get("slow"):
            await asyncio.sleep(1.6)
        return web.Response(text="ok")

    runner, url = await _backend(ready)
    try:
        # at 10x the 10 s onMessageReceived window is 1 s of wall time; the slow backend takes 1.6 s
        testbed = Testbed(Config(devices="android=2", seed=1, clock="scaled:10"), schedule=loop.call_soon)
        testbed.device_sim.params.app.failure_rate = 0.0
        for i in range(2):
            testbed.device_sim.set_state(i, app_state="background", online=True, doze=False)
        ok = f'{{"message":{{"data":{{"fetch_url":"{url}"}}}}}}'.encode()
        slow = f'{{"message":{{"data":{{"fetch_url":"{url}?slow=1"}}}}}}'.encode()
        testbed.dispatcher.submit(_note(testbed, 0, 0, "data", ok, priority=10))
        testbed.dispatcher.submit(_note(testbed, 1, 1, "data", slow, priority=10))
        deadline = loop.time() + 6.0
        m = testbed.device_sim.metrics
        while m.tasks_succeeded + m.tasks_failed + m.tasks_killed < 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert sorted(hits) == ["0", "1"]
        assert m.fetches == 2
        assert m.tasks_killed == 1                         # the slow backend overran onMessageReceived
        assert m.tasks_succeeded == 1
        assert testbed.device_sim.describe(0)["content_version"] == 1     # made ready by the fetch
        assert testbed.device_sim.describe(1)["content_version"] == 0     # killed: not ready
        await testbed.device_sim.fetcher.close()
        testbed.device_sim.driver.close()
    finally:
        await runner.cleanup()
