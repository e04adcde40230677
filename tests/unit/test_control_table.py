"""The control-API table (pushsim.control.ROUTES) is consistent with the cluster proxy that reads it:
a wrong name fails here, before any cluster is started."""
from __future__ import annotations

from pushsim.cluster import merge
from pushsim.cluster.control_proxy import Proxy
from pushsim.control import ROUTES, Mode


def test_every_route_names_what_exists_and_is_unique() -> None:
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    for r in ROUTES:
        c = r.cluster
        assert c.merge == "" or c.mode is Mode.MERGE, r
        assert c.hub == "" or c.mode is Mode.HUB, r
        assert c.then == "" or c.mode is Mode.ALL, r
        assert c.everywhere is None or c.mode is Mode.OWNER, r
        if c.mode is Mode.MERGE:
            assert callable(getattr(merge, c.merge)), r
            assert r.method == "GET", r          # merged answers are reads
        if c.mode is Mode.HUB:
            assert callable(getattr(Proxy, c.hub)), r
        if c.then:
            assert callable(getattr(Proxy, c.then)), r
        if c.mode is Mode.OWNER:
            assert "{token}" in r.path, r
        if r.method != "GET":
            assert c.mode in (Mode.ALL, Mode.OWNER), f"a change must reach every worker or the owner: {r}"
