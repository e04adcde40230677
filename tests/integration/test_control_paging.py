"""Paging /devices by platform: the pure index finder (hypothesis) and the endpoint on a mixed fleet."""
from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from _serve_helpers import ephemeral_config
from pushsim.control import _platform_indices
from pushsim.server import run_in_thread



@given(st.binary(max_size=200).map(lambda b: bytearray(x & 1 for x in b)), st.sampled_from([0, 1]),
       st.integers(0, 210), st.integers(1, 20))
def test_platform_page_matches_a_plain_filter(arr, code, offset, limit):
    every = [i for i, b in enumerate(arr) if b == code]
    assert _platform_indices(arr, code, offset, limit) == every[offset:offset + limit]


def test_platform_pages_over_an_interleaved_fleet(tmp_path):
    sim, stop = run_in_thread(ephemeral_config(tmp_path, devices="ios=300,android=200"))
    try:
        admin = httpx.Client(base_url=sim.endpoints["admin"]["url"], timeout=10)
        # Interleave: more iOS installs after the Android block.
        assert admin.post("/devices", json={"platform": "ios", "count": 50}).status_code == 201
        seen: list[int] = []
        for offset in range(0, 400, 70):
            page = admin.get("/devices", params={"platform": "ios", "offset": offset, "limit": 70}).json()
            assert page["total"] == 350
            seen += [d["index"] for d in page["devices"]]
        assert seen == list(range(300)) + list(range(500, 550))
        admin.close()
    finally:
        stop()
