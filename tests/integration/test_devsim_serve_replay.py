"""End to end: a live `pushsim serve` (PushSim) on a scaled clock takes background pushes over
HTTP/2 from a real client; its journal export replays in virtual time to the same outcome digest.
"""
import asyncio
import json
import time

import httpx
import jwt

from device_sim.replay import export_jsonl, replay
from pushsim.config import Config
from pushsim.server import PushSim
from tests.waiting import until


async def test_journal_from_a_live_server_replays_to_the_same_outcomes(tmp_path):
    cfg = Config(apns_port=0, apns_h2c_port=0, fcm_port=0, fcm_h2c_port=0, admin_port=0, state_dir=tmp_path,
                 devices="ios=4", seed=9, clock="scaled:600")
    sim = PushSim(cfg)
    ep = await sim.start()
    try:
        apns = ep["apns"]
        key = open(apns["key_file"]).read()
        bearer = jwt.encode({"iss": apns["team_id"], "iat": int(time.time())}, key, algorithm="ES256",
                            headers={"kid": apns["key_id"]})
        testbed = sim.testbed
        for i in range(4):   # make the fleet predictable: background, online, no power saving
            testbed.device_sim.set_state(i, app_state="background", online=True, low_power=False, bar=True)
        testbed.device_sim.set_state(3, online=False)
        tokens = [testbed.fleet.apns_token(i) for i in range(4)]
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            for k in range(24):
                i = k % 4
                r = await client.post(f"{apns['h2c_url']}/3/device/{tokens[i]}",
                                      headers={"authorization": f"bearer {bearer}", "apns-topic": apns["topic"],
                                               "apns-push-type": "background", "apns-priority": "5"},
                                      content=json.dumps({"aps": {"content-available": 1}, "k": k}))
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.02)   # spread over device time (12 s at 600x): some coalesce, some not
        await until(lambda: set(testbed.ledger.pending) <= {"stored-offline"},
                    "every push to an online install settled")
        testbed.device_sim.set_state(3, online=True)
        await until(lambda: not testbed.ledger.pending, "the stored pushes delivered once online")
        live = testbed.ledger.stats()
        assert live["accepted"] == 24
        assert live["dropped"].get("coalesced", 0) + live["dropped"].get("superseded", 0) > 0
        res = replay(list(export_jsonl(testbed.world)))
        assert res.matches, (res.funnel, live)
        assert res.funnel == testbed.ledger.stats()
    finally:
        await sim.stop()
