"""Frame-level behaviour of the h2 engine, seen by a raw h2 client over a real socket (h2c)."""
from __future__ import annotations

import asyncio
import json

import pytest
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, PingAckReceived, RemoteSettingsChanged
from h2.settings import SettingCodes

from edge_support import SHUTDOWN, MAX_STREAMS, RawClient, ScriptedService, serving

pytestmark = pytest.mark.timeout(10)


def _settings(client: RawClient) -> dict[int, int]:
    first = client.of(RemoteSettingsChanged)[0]
    return {int(k): v.new_value for k, v in first.changed_settings.items()}


async def test_initial_settings_are_the_apns_ones() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        assert await c.wait(lambda c: c.of(RemoteSettingsChanged))
        assert _settings(c) == {
            SettingCodes.HEADER_TABLE_SIZE: 4096, SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
            SettingCodes.INITIAL_WINDOW_SIZE: 65535, SettingCodes.MAX_FRAME_SIZE: 16384,
            SettingCodes.MAX_HEADER_LIST_SIZE: 8000}
        await c.close()


async def test_initial_max_streams_comes_from_the_service() -> None:
    async with serving(ScriptedService(initial_max_streams=1)) as s:
        c = await RawClient.connect(s.port)
        assert await c.wait(lambda c: c.of(RemoteSettingsChanged))
        assert _settings(c)[MAX_STREAMS] == 1
        await c.close()


async def test_ping_is_acknowledged_with_its_payload() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        c.conn.ping(b"12345678")
        assert await c.wait(lambda c: c.of(PingAckReceived))
        assert c.of(PingAckReceived)[0].ping_data == b"12345678"
        await c.close()


async def test_streams_over_the_limit_are_refused_not_the_connection() -> None:
    async with serving(ScriptedService(initial_max_streams=2)) as s:
        c = await RawClient.connect(s.port, limitless=True)
        # the limit binds once the client has seen it: our SETTINGS ack precedes these streams
        assert await c.wait(lambda c: c.of(RemoteSettingsChanged))
        stalled = [c.request("/fault/stall") for _ in range(2)]
        refused = c.request("/echo")
        assert await c.wait(lambda c: c.responses[refused].reset is not None)
        assert c.responses[refused].reset == ErrorCodes.REFUSED_STREAM
        assert all(c.responses[sid].status is None and c.responses[sid].reset is None for sid in stalled)
        assert not c.of(ConnectionTerminated)
        # a stalled stream freed by the client makes room for a new one
        c.conn.reset_stream(stalled[0], ErrorCodes.CANCEL)
        again = c.request("/echo")
        assert await c.wait(c.done(again))
        assert c.responses[again].status == 200
        await c.close()


async def test_max_streams_reply_announces_and_enforces_new_limit() -> None:
    async with serving(ScriptedService(initial_max_streams=1)) as s:
        c = await RawClient.connect(s.port, limitless=True)
        first = c.request("/max/3")
        assert await c.wait(lambda c: len(c.of(RemoteSettingsChanged)) >= 2 and c.done(first)(c))
        assert c.of(RemoteSettingsChanged)[1].changed_settings[MAX_STREAMS].new_value == 3
        # our SETTINGS ack goes out before these streams, so the server enforces 3 now
        sids = [c.request("/fault/stall") for _ in range(4)]
        assert await c.wait(lambda c: c.responses[sids[3]].reset is not None)
        assert c.responses[sids[3]].reset == ErrorCodes.REFUSED_STREAM
        assert [c.responses[x].reset for x in sids[:3]] == [None, None, None]
        await c.close()


async def test_stream_limit_swings_like_apns_after_reject_and_accept() -> None:
    async with serving(ScriptedService(initial_max_streams=500)) as s:
        c = await RawClient.connect(s.port)
        rejected = c.request("/reject/1")
        assert await c.wait(lambda c: c.done(rejected)(c) and len(c.of(RemoteSettingsChanged)) >= 2)
        assert c.responses[rejected].status == 400
        accepted = c.request("/max/500")
        assert await c.wait(lambda c: c.done(accepted)(c) and len(c.of(RemoteSettingsChanged)) >= 3)
        limits = [e.changed_settings[MAX_STREAMS].new_value for e in c.of(RemoteSettingsChanged)]
        assert limits == [500, 1, 500]
        await c.close()


async def test_repeated_max_streams_sends_one_settings_frame() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        sids = [c.request("/max/5") for _ in range(3)]
        assert await c.wait(c.done(*sids))
        c.conn.ping(b"fence!!!")   # the server answers frames in order: all it sent before is read by the ACK
        assert await c.wait(lambda c: any(p.ping_data == b"fence!!!" for p in c.of(PingAckReceived)))
        assert len(c.of(RemoteSettingsChanged)) == 2
        await c.close()


async def test_error_body_is_one_data_frame_with_end_stream() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        sid = c.request("/status/400")
        assert await c.wait(c.done(sid))
        r = c.responses[sid]
        assert r.status == 400 and r.data_frames == [b'{"reason":"Status 400"}']
        assert (b"content-type", b"application/json") in r.headers
        await c.close()


async def test_empty_body_ends_the_stream_on_headers() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        sid = c.request("/anything", b"{}")
        assert await c.wait(c.done(sid))
        assert c.responses[sid].status == 200 and c.responses[sid].data_frames == []
        await c.close()


async def test_host_header_replaces_authority_and_missing_path_is_malformed() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        ok = c.request("/echo", authority=False, headers=[(b"host", b"api.push.apple.com")])
        assert await c.wait(c.done(ok))
        assert json.loads(c.responses[ok].body)["host"] == "api.push.apple.com"
        bad = c.conn.get_next_available_stream_id()
        c.conn.send_headers(bad, [(b":method", b"POST"), (b":scheme", b"http")], end_stream=True)
        assert await c.wait(c.done(bad))
        assert c.responses[bad].reset == ErrorCodes.PROTOCOL_ERROR
        await c.close()


async def test_service_exception_is_a_500_for_that_stream_only() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        bad, good = c.request("/raise"), c.request("/echo")
        assert await c.wait(c.done(bad, good))
        assert c.responses[bad].status == 500
        assert json.loads(c.responses[bad].body) == {"reason": "InternalServerError"}
        assert c.responses[good].status == 200
        await c.close()


async def test_shutdown_sends_goaway_and_finishes_in_flight_streams() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        slow = c.request("/delay/0.3")
        assert await c.wait(lambda c: bool(s.conns) and s.service.handled)
        (proto,) = s.conns
        proto.shutdown(SHUTDOWN)
        assert await c.wait(lambda c: c.of(ConnectionTerminated))
        goaway = c.of(ConnectionTerminated)[0]
        assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.NO_ERROR, slow)
        assert goaway.additional_data == SHUTDOWN
        assert await c.wait(lambda c: c.closed)
        assert c.responses[slow].status == 200 and c.responses[slow].ended
        await c.close()


async def test_reply_goaway_comes_after_the_reply_then_closes() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        sid = c.request("/goaway")
        assert await c.wait(lambda c: c.closed)
        assert c.responses[sid].status == 200
        goaway = c.of(ConnectionTerminated)[0]
        assert json.loads(goaway.additional_data) == {"reason": "IdleTimeout"}
        assert goaway.last_stream_id == sid
        await c.close()


async def test_fault_rst_stream_refuses_the_stream() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        sid, other = c.request("/fault/rst_stream"), c.request("/echo")
        assert await c.wait(c.done(sid, other))
        assert c.responses[sid].reset == ErrorCodes.REFUSED_STREAM
        assert c.responses[other].status == 200
        await c.close()


async def test_fault_stall_never_answers_but_others_proceed() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        stalled, other = c.request("/fault/stall"), c.request("/echo")
        assert await c.wait(c.done(other))
        assert not await c.wait(c.done(stalled), timeout=0.3)
        await c.close()


async def test_fault_tcp_reset_resets_the_connection() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        c.request("/fault/tcp_reset")
        assert await c.wait(lambda c: c.closed)
        assert c.reset_by_peer and not c.of(ConnectionTerminated)
        await c.close()


async def test_fault_goaway_declares_the_stream_unprocessed() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        before = c.request("/delay/0.2")
        faulted = c.request('/fault/goaway?{"reason":"Shutdown"}')
        assert await c.wait(lambda c: c.closed)
        goaway = c.of(ConnectionTerminated)[0]
        assert goaway.last_stream_id == faulted - 2 == before
        assert goaway.additional_data == SHUTDOWN
        assert c.responses[before].status == 200     # in-flight below last-stream-id finishes
        assert c.responses[faulted].status is None
        await c.close()


async def test_delay_holds_one_reply_without_blocking_others() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        slow, fast = c.request("/delay/0.5"), c.request("/echo")
        assert await c.wait(c.done(fast))
        assert c.responses[slow].status is None and loop.time() - t0 < 0.5
        assert await c.wait(c.done(slow))
        assert loop.time() - t0 >= 0.5 and c.responses[slow].status == 200
        await c.close()


async def test_response_body_respects_a_tiny_client_window() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 10})
        sid = c.request("/big/100")
        assert await c.wait(c.done(sid))
        r = c.responses[sid]
        assert r.body == b"b" * 100 and max(map(len, r.data_frames)) <= 10
        await c.close()


async def test_garbage_gets_goaway_protocol_error() -> None:
    async with serving() as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 3)   # server closes after its GOAWAY
        # the last frame is GOAWAY (type 7) with error code PROTOCOL_ERROR (1)
        goaway = data[-17:]
        assert goaway[3] == 0x7 and int.from_bytes(goaway[13:17], "big") == ErrorCodes.PROTOCOL_ERROR
        writer.close()


async def test_oversized_frame_gets_goaway_frame_size_error() -> None:
    async with serving() as s:
        c = await RawClient.connect(s.port)
        assert await c.wait(lambda c: c.of(RemoteSettingsChanged))
        # a 20000-byte DATA frame (> MAX_FRAME_SIZE 16384) on stream 1
        await c.send_raw((20000).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
                         + bytes(20000))
        assert await c.wait(lambda c: c.of(ConnectionTerminated))
        assert c.of(ConnectionTerminated)[0].error_code == ErrorCodes.FRAME_SIZE_ERROR
        await c.close()


async def test_header_list_over_64k_is_a_connection_error() -> None:
    # MAX_HEADER_LIST_SIZE 8000 is announced (as APNs does) but advisory (RFC 9113 §6.5.2; h2spec
    # sends 8260 bytes and expects an answer); 64 KiB is what both engines enforce.
    async with serving() as s:
        c = await RawClient.connect(s.port)
        assert await c.wait(lambda c: c.of(RemoteSettingsChanged))   # our ACK precedes the request
        small = c.request("/echo", headers=[(b"x-pad", b"p" * 9000)])
        assert await c.wait(c.done(small)) and c.responses[small].status == 200
        c.request("/echo", headers=[(b"x-pad", b"p" * 66000)])
        assert await c.wait(lambda c: c.of(ConnectionTerminated))
        assert c.of(ConnectionTerminated)[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
        await c.close()


# -- the first flight: streams a client opens before it has seen (and acknowledged) the limit ----

@pytest.mark.parametrize("engine", ["h2", "fast"])
async def test_first_flight_before_the_settings_ack_is_served_in_order(engine: str) -> None:
    """APNs allows one stream until a valid token; a client that sends six at once on a new
    connection cannot have seen that limit yet (RFC 9113 §6.5.3), so all six are answered: the first
    at once, the rest held until its reply raises the limit."""
    async with serving(ScriptedService(initial_max_streams=1), engine=engine) as s:
        c = await RawClient.connect(s.port, limitless=True)
        sids = c.open_streams(["/max/1000"] + [f"/echo?{i}" for i in range(5)])
        assert await c.wait(lambda c: all(c.done(x)(c) for x in sids))
        assert [c.responses[x].status for x in sids] == [200] * 6
        assert [p for _, p, _ in s.service.handled] == [b"/max/1000"] + [b"/echo?%d" % i for i in range(5)]
        assert not c.of(ConnectionTerminated)
        await c.close()


@pytest.mark.parametrize("engine", ["h2", "fast"])
async def test_first_flight_waits_its_turn_while_the_limit_stays_at_one(engine: str) -> None:
    """No token has raised the limit: the held streams are still answered, one at a time, in order."""
    async with serving(ScriptedService(initial_max_streams=1), engine=engine) as s:
        c = await RawClient.connect(s.port, limitless=True)
        sids = c.open_streams(["/delay/0.05"] + [f"/echo?{i}" for i in range(3)])
        assert await c.wait(lambda c: all(c.done(x)(c) for x in sids))
        assert [c.responses[x].status for x in sids] == [200] * 4
        assert [p for _, p, _ in s.service.handled] == [b"/delay/0.05"] + [b"/echo?%d" % i for i in range(3)]
        # once the client has acknowledged the limit of 1, a stream beyond it is refused
        stalled = c.request("/fault/stall")
        refused = c.request("/echo")
        assert await c.wait(lambda c: c.responses[refused].reset is not None)
        assert c.responses[refused].reset == ErrorCodes.REFUSED_STREAM
        assert c.responses[stalled].reset is None and c.responses[stalled].status is None
        await c.close()


@pytest.mark.parametrize("engine", ["h2", "fast"])
async def test_streams_in_flight_when_the_limit_drops_are_served(engine: str) -> None:
    """The drop to 1 after a rejection binds only once acknowledged: streams the client sent with
    the rejected one, before it could see the new SETTINGS, are answered, not refused."""
    async with serving(ScriptedService(initial_max_streams=1), engine=engine) as s:
        c = await RawClient.connect(s.port, limitless=True)
        first = c.request("/max/100")
        assert await c.wait(lambda c: c.done(first)(c) and len(c.of(RemoteSettingsChanged)) >= 2)
        burst = c.open_streams(["/reject/1"] + ["/delay/0.02"] * 4)
        assert await c.wait(lambda c: all(c.done(x)(c) for x in burst))
        assert [c.responses[x].status for x in burst] == [400] + [200] * 4
        assert all(c.responses[x].reset is None for x in burst)
        await c.close()
