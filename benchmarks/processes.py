"""The servers a benchmark starts (pushsim serve, nghttpd) and what they cost in CPU and memory.

Every server is started in its own session by this harness and stopped by PID; with
`pushsim serve --workers N` its worker processes are found as children of that PID.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PUSHSIM = str(Path(sys.executable).with_name("pushsim"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixed_free_port(taken: set[int] | None = None) -> int:
    """A free port to name on a command line before the process that binds it starts (`--peers` needs
    every instance's control-API port up front). free_port()'s answer lies in the kernel's ephemeral
    range, where another process's port-0 listener can take it first; this one lies below it."""
    import random
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    taken = taken if taken is not None else set()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of the process and every descendant, by PID."""
    out = {}
    for p in _tree(pid):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the tree spent between two snapshots; a worker started in between counts from 0.
    (A process that exited in between is lost: the workers live as long as the server.)"""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def tree_rss(pid: int) -> int:
    """Resident bytes of the process and every descendant (shared pages counted once per process)."""
    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, grace: float = 15.0) -> None:
    """Ask the server to stop; if it does not, kill it and whatever it started, each by PID."""
    kids = _tree(proc.pid)[1:]
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for k in kids:
        try:
            k.wait(2)
        except psutil.TimeoutExpired:
            k.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class Pushsim:
    proc: subprocess.Popen
    endpoints: dict
    ready_s: float                 # spawn to the "pushsim ready:" line
    workers: int
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def warnings(self) -> list[str]:
        return [w for w in self.stderr.read_text().splitlines() if "warning" in w]


def start_pushsim(state: Path, devices: str, engine: str = "fast", workers: int = 1,
                  extra: list[str] | None = None, timeout: float = 60.0) -> Pushsim:
    """`pushsim serve` on ephemeral ports, ready when it prints `pushsim ready: <endpoints.json>`."""
    cmd = [PUSHSIM, "serve", "--state-dir", str(state), "--apns-port", "0", "--apns-h2c-port", "0",
           "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", "0", "--devices", devices,
           "--engine", engine, "--workers", str(workers), *(extra or [])]
    t0 = time.monotonic()
    state.parent.mkdir(parents=True, exist_ok=True)
    out_path = state.parent / f"serve-{state.name}.stdout"
    err_path = state.parent / f"serve-{state.name}.stderr"
    # files, not pipes: nobody has to keep reading them while the benchmark runs
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, start_new_session=True)
    try:
        end = t0 + timeout
        while time.monotonic() < end:
            ready = [ln for ln in out_path.read_text().splitlines() if ln.startswith("pushsim ready:")]
            if ready:
                took = time.monotonic() - t0
                endpoints = json.loads(Path(ready[0].split(":", 1)[1].strip()).read_text())
                return Pushsim(proc, endpoints, took, workers, err_path)
            if proc.poll() is not None:
                raise RuntimeError(f"pushsim serve exited with {proc.returncode} before ready: "
                                   f"{err_path.read_text()[-800:]}")
            time.sleep(0.02)
        raise RuntimeError("pushsim serve never printed 'pushsim ready:'")
    except BaseException:
        stop(proc)
        raise


@dataclass
class Nghttpd:
    proc: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_nghttpd(docroot: Path, tls: tuple[Path, Path] | None = None) -> Nghttpd:
    """nghttpd serving empty files from docroot (it reads and discards POST bodies); tls = (key, cert)."""
    port = free_port()
    cmd = ["nghttpd", "-d", str(docroot), "-a", "127.0.0.1", str(port)]
    cmd += [str(tls[0]), str(tls[1])] if tls else ["--no-tls"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
    except BaseException:
        stop(proc, signal.SIGTERM)
        raise
    return Nghttpd(proc, f"{'https' if tls else 'http'}://127.0.0.1:{port}")
