"""PushSim in-process: endpoints.json, real bound ports, credential reuse, busy ports."""
from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from _serve_helpers import ephemeral_config
from pushsim.server import ListenError, PushSim, StartError, run_in_thread


APNS_KEYS = {"url", "h2c_url", "topic", "key_file", "key_id", "team_id", "client_cert", "client_key"}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _connects(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def test_start_writes_endpoints_json_with_the_documented_keys(tmp_path):
    sim, stop = run_in_thread(ephemeral_config(tmp_path))
    try:
        path = tmp_path / "endpoints.json"
        on_disk = json.loads(path.read_text())
        assert on_disk == sim.endpoints
        assert on_disk["ca_file"] == str(tmp_path / "ca.pem")
        assert APNS_KEYS <= set(on_disk["apns"])
        assert on_disk["apns"]["url"].startswith("https://127.0.0.1:")
        assert on_disk["apns"]["h2c_url"].startswith("http://127.0.0.1:")
        assert on_disk["admin"]["url"].startswith("http://127.0.0.1:")
        assert on_disk["apns"]["topic"] == "com.example.app"
        for key in ("key_file", "client_cert", "client_key"):
            assert Path(on_disk["apns"][key]).is_absolute() and Path(on_disk["apns"][key]).is_file()
        if "fcm" in on_disk:   # present once the FCM service is wired in
            fcm = on_disk["fcm"]
            assert fcm["token_uri"] == fcm["url"] + "/token"
            sa = json.loads(Path(fcm["service_account_file"]).read_text())
            assert sa["token_uri"] == fcm["token_uri"]
        ports = [_port(on_disk["apns"]["url"]), _port(on_disk["apns"]["h2c_url"]), _port(on_disk["admin"]["url"])]
        assert 0 not in ports and len(set(ports)) == len(ports)
        assert all(_connects(p) for p in ports)
    finally:
        stop()
    assert not (tmp_path / "endpoints.json").exists()   # a stopped server leaves no stale endpoints
    stop()   # idempotent


def test_restart_reuses_credentials(tmp_path):
    sim1, stop1 = run_in_thread(ephemeral_config(tmp_path))
    first = dict(sim1.endpoints["apns"])
    ca = (tmp_path / "ca.pem").read_bytes()
    stop1()
    sim2, stop2 = run_in_thread(ephemeral_config(tmp_path))
    try:
        second = sim2.endpoints["apns"]
        assert (second["key_id"], second["team_id"]) == (first["key_id"], first["team_id"])
        assert (tmp_path / "ca.pem").read_bytes() == ca
    finally:
        stop2()


def test_busy_port_is_a_clear_error_and_nothing_stays_bound(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        with pytest.raises(ListenError) as err:
            run_in_thread(ephemeral_config(tmp_path, apns_h2c_port=busy))
        msg = str(err.value)
        assert str(busy) in msg and "--apns-h2c-port" in msg and "PUSHSIM_APNS_H2C_PORT" in msg
        assert not (tmp_path / "endpoints.json").exists()
    finally:
        holder.close()


async def test_start_and_stop_on_the_callers_loop(tmp_path):
    sim = PushSim(ephemeral_config(tmp_path, devices="3"))
    endpoints = await sim.start()
    try:
        assert len(sim.testbed.fleet) == 3 and endpoints is sim.endpoints
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(endpoints["admin"]["url"]))
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await sim.stop()


def test_stop_ends_open_event_streams_promptly(tmp_path):
    import threading
    import time

    import httpx

    sim, stop = run_in_thread(ephemeral_config(tmp_path))
    opened, ended = threading.Event(), threading.Event()

    def listen() -> None:
        with httpx.stream("GET", sim.endpoints["admin"]["url"] + "/events", timeout=30) as r:
            opened.set()
            for _ in r.iter_lines():
                pass
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(5)
    t0 = time.monotonic()
    stop()
    assert time.monotonic() - t0 < 2 and ended.wait(3)


def test_state_dir_of_a_live_server_is_refused_and_a_stale_one_reclaimed(tmp_path):
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "endpoints.json").write_text(json.dumps({"pid": other.pid, "admin": {"url": "x"}}))
        with pytest.raises(StartError) as err:
            run_in_thread(ephemeral_config(tmp_path))
        assert str(other.pid) in str(err.value) and "--state-dir" in str(err.value)
        assert json.loads((tmp_path / "endpoints.json").read_text())["pid"] == other.pid   # untouched
    finally:
        other.kill()
        other.wait()
    sim, stop = run_in_thread(ephemeral_config(tmp_path))   # its owner is gone: the file is stale
    try:
        assert json.loads((tmp_path / "endpoints.json").read_text())["admin"] == sim.endpoints["admin"]
    finally:
        stop()
