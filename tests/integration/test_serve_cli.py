"""`pushsim serve` as a subprocess: ready line, endpoints.json, GOAWAY + exit 0 on signals, exit 2 on errors."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
LAUNCH = "import sys; from pushsim.cli import main; sys.exit(main(sys.argv[1:]))"
EPHEMERAL = ["--apns-port", "0", "--apns-h2c-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0",
             "--admin-port", "0", "--devices", "ios=2,android=2"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHSIM_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _start(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, *args], cwd=ROOT, env=_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _ready_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    timer = threading.Timer(timeout, proc.kill)   # a hung start fails the test instead of hanging it
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    return line.rstrip("\n")


def _open_h2(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    conn.receive_data(sock.recv(65536))   # the server's SETTINGS: the connection is up
    sock.sendall(conn.data_to_send())
    return sock, conn


def _goaway(sock: socket.socket, conn: h2.connection.H2Connection) -> h2.events.ConnectionTerminated | None:
    while data := sock.recv(65536):
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ConnectionTerminated):
                return ev
    return None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_ready_then_signal_sends_goaway_and_exits_0(tmp_path, sig):
    proc = _start(["serve", "--state-dir", str(tmp_path), *EPHEMERAL])
    try:
        line = _ready_line(proc)
        path = tmp_path / "endpoints.json"
        assert line == f"pushsim ready: {path}", proc.stderr.read() if proc.poll() is not None else line
        endpoints = json.loads(path.read_text())
        assert endpoints["pid"] == proc.pid
        sock, conn = _open_h2(int(endpoints["apns"]["h2c_url"].rsplit(":", 1)[1]))
        proc.send_signal(sig)
        ev = _goaway(sock, conn)
        sock.close()
        assert ev is not None and ev.error_code == 0
        assert json.loads(ev.additional_data) == {"reason": "Shutdown"}
        assert proc.wait(15) == 0
        assert "Traceback" not in proc.stderr.read()
        assert not path.exists()
    finally:
        proc.kill()
        proc.wait()


def test_env_vars_configure_serve_and_flags_win(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()   # free again; the server should bind exactly this port from the env var
    proc = _start(["serve", "--apns-port", "0", "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0"],
                  PUSHSIM_STATE_DIR=str(tmp_path), PUSHSIM_APNS_H2C_PORT=str(port), PUSHSIM_ADMIN_PORT="1",
                  PUSHSIM_DEVICES="ios=1,android=0")
    try:
        assert _ready_line(proc).startswith("pushsim ready: ")
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        assert endpoints["apns"]["h2c_url"] == f"http://127.0.0.1:{port}"
        assert not endpoints["admin"]["url"].endswith(":1")   # the flag beat PUSHSIM_ADMIN_PORT=1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait()


def test_busy_port_exits_2_with_a_one_line_message(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        proc = _start(["serve", "--state-dir", str(tmp_path), *EPHEMERAL, "--admin-port", str(busy)])
        out, err = proc.communicate(timeout=30)
    finally:
        holder.close()
    assert proc.returncode == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("pushsim")]
    assert len(lines) == 1 and "Traceback" not in err
    assert str(busy) in lines[0] and "--admin-port" in lines[0] and "PUSHSIM_ADMIN_PORT" in lines[0]


def test_unusable_state_dir_exits_2_without_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _start(["serve", "--state-dir", str(blocker / "state"), *EPHEMERAL])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--state-dir" in err and "Traceback" not in err


@pytest.mark.parametrize("args, env, needle", [
    (["--devices", "bad"], {}, "--devices"),
    (["--clock", "fast"], {}, "--clock"),
    ([], {"PUSHSIM_SEED": "abc"}, "PUSHSIM_SEED"),
    (["--engine", "turbo"], {}, "--engine"),
])
def test_bad_settings_exit_2_before_binding_anything(tmp_path, args, env, needle):
    proc = _start(["serve", "--state-dir", str(tmp_path), *EPHEMERAL, *args], **env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "endpoints.json").exists()


def test_python_dash_m_and_creds_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pushsim", "creds", "--state-dir", str(tmp_path)], cwd=ROOT,
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert Path(info["ca_file"]).is_file() and len(info["key_id"]) == 10
    again = subprocess.run([sys.executable, "-m", "pushsim", "creds"], cwd=ROOT, capture_output=True, text=True,
                           env=_env(PUSHSIM_STATE_DIR=str(tmp_path)), timeout=60)
    assert json.loads(again.stdout)["key_id"] == info["key_id"]


def test_partitions_share_one_state_dir_each_with_its_own_endpoints_file(tmp_path):
    """`serve --partition K/N` from the command line (env var for one of them): each instance
    names its own endpoints file on the ready line, and one OAuth seal serves both."""
    procs = [_start(["serve", "--state-dir", str(tmp_path), "--partition", "0/2", *EPHEMERAL]),
             _start(["serve", "--state-dir", str(tmp_path), *EPHEMERAL], PUSHSIM_PARTITION="1/2")]
    try:
        lines = [_ready_line(p) for p in procs]
        for k, line in enumerate(lines):
            path = tmp_path / f"endpoints.partition-{k}-of-2.json"
            assert line == f"pushsim ready: {path}", procs[k].stderr.read() if procs[k].poll() is not None else line
            assert json.loads(path.read_text())["partition"]["spec"] == f"{k}/2"
        assert not (tmp_path / "endpoints.json").exists()
        assert len((tmp_path / "oauth_grant_seal.key").read_bytes()) == 32
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                assert p.wait(timeout=15) == 0
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
