"""`pushsim serve --workers N`: the supervising process (hub).

Before any event loop or thread exists, the hub makes the credentials, claims the state dir,
reserves every service port (bound with SO_REUSEPORT but never listening, so the kernel spreads
connections over the workers only), makes the socketpairs (a full mesh between workers, one to
each worker) and forks the workers. Then it runs the public control API (control_proxy), writes
endpoints.json once every worker listens, and supervises: SIGINT/SIGTERM → every worker stops
(GOAWAY "Shutdown" on its connections) and the hub exits 0; a worker that dies → the hub says which
and why, stops the others and exits 1.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pushsim.config import Config
from pushsim.credentials import ensure_credentials, set_token_uri, write_atomic

from .channel import Channel, open_channel
from .routing import Snapshot, combine

SERVICE_PORTS = ("apns_port", "apns_h2c_port", "fcm_port", "fcm_h2c_port")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SNAPSHOT_TIMEOUT = 10.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind host:port with SO_REUSEPORT and do not listen: the port is ours, workers join it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class WorkerLink:
    index: int
    pid: int
    channel: Channel | None = None
    admin_port: int = 0
    endpoints: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Future[None] | None = None
    gone: bool = False


class Hub:
    def __init__(self, config: Config, workers: list[WorkerLink]) -> None:
        self.config = config
        self.n = len(workers)
        self.workers = workers
        self.stop = asyncio.Event()
        self.failure: str | None = None
        self.exit_code = 0
        self.stopping = False
        self.endpoints: dict[str, Any] = {}
        self._snap_k = 0
        self._snaps: dict[int, dict[int, Snapshot]] = {}
        self._snap_waiters: dict[int, asyncio.Future[None]] = {}
        self._snap_lock = asyncio.Lock()

    # worker messages ------------------------------------------------------------------------
    def on_message(self, w: WorkerLink, msg: Any) -> None:
        kind = msg[0]
        if kind == "snap":
            snap: Snapshot = msg[1]
            got = self._snaps.setdefault(snap.k, {})
            got[w.index] = snap
            fut = self._snap_waiters.get(snap.k)
            if fut is not None and len(got) == self.n and not fut.done():
                fut.set_result(None)
        elif kind == "ready":
            info = msg[1]
            w.admin_port, w.endpoints = info["admin_port"], info["endpoints"]
            if w.ready is not None and not w.ready.done():
                w.ready.set_result(None)
        elif kind == "error":
            self.fail(msg[1], code=2)

    def on_close(self, w: WorkerLink) -> None:
        w.gone = True
        if not self.stopping:
            asyncio.get_running_loop().create_task(self._worker_died(w))

    async def _worker_died(self, w: WorkerLink) -> None:
        status = await _reap(w.pid, 2.0)
        self.fail(f"worker {w.index} (pid {w.pid}) exited unexpectedly: {_describe_status(status)}", code=1)

    def fail(self, message: str, code: int) -> None:
        if self.failure is None:
            self.failure, self.exit_code = message, code
            print(f"pushsim: {message}", file=sys.stderr, flush=True)
        for w in self.workers:
            if w.ready is not None and not w.ready.done():
                w.ready.cancel()
        self.stop.set()

    # snapshots --------------------------------------------------------------------------------
    async def snapshot(self) -> list[Snapshot]:
        """One consistent cut: every worker's snapshot k (Chandy-Lamport, see routing)."""
        async with self._snap_lock:
            self._snap_k += 1
            k = self._snap_k
            fut = self._snap_waiters[k] = asyncio.get_running_loop().create_future()
            if len(self._snaps.get(k, {})) == self.n:
                fut.set_result(None)
            for w in self.workers:
                if w.channel is not None:
                    w.channel.send(("snap", k))
            try:
                await asyncio.wait_for(fut, SNAPSHOT_TIMEOUT)
            finally:
                self._snap_waiters.pop(k, None)
            got = self._snaps.pop(k)
            for old in [j for j in self._snaps if j < k]:
                del self._snaps[old]
            return [got[i] for i in range(self.n)]

    async def stats(self) -> dict[str, Any]:
        snaps = await self.snapshot()
        out = combine(snaps)
        out["workers"] = self.n
        out["per_worker"] = [{"worker": s.worker, **s.extra, "owned": s.ledger,
                              "accepted_here": s.ledger["accepted"] - sum(s.recv) + sum(s.sent),
                              "sent": s.sent, "recv": s.recv} for s in snaps]
        return out

    # shutdown ---------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        self.stopping = True
        for w in self.workers:
            if w.channel is not None and not w.gone:
                w.channel.send(("stop",))
        deadline = time.monotonic() + STOP_TIMEOUT
        for w in self.workers:
            status = await _reap(w.pid, max(0.1, deadline - time.monotonic()))
            if status is None:           # stuck: no orphans, ever
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                status = await _reap(w.pid, 2.0)
            if status is not None and self.failure is None and os.waitstatus_to_exitcode(status) != 0:
                self.fail(f"worker {w.index} (pid {w.pid}) stopped with {_describe_status(status)}", code=1)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "still running"
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


async def _reap(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


# the process ------------------------------------------------------------------------------------
def run_cluster(config: Config, out: Any = None) -> int:
    """Called with no event loop and no thread running: everything that forks happens here."""
    from pushsim.server import ListenError, PushSim, StartError, new_event_loop

    out = out or sys.stdout
    n = config.workers
    state_dir = Path(config.state_dir)
    try:
        creds = ensure_credentials(state_dir, config)
        PushSim(config)._claim_state_dir()
    except OSError as e:
        print(f"pushsim: state dir {state_dir.absolute()} is not usable ({e.strerror or e}); choose another "
              f"with --state-dir or {Config.env_name('state_dir')}", file=sys.stderr, flush=True)
        return 2
    except StartError as e:
        print(f"pushsim: {e}", file=sys.stderr, flush=True)
        return 2
    reserved: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in SERVICE_PORTS:
            port = int(getattr(config, name))
            try:
                sock = reserve_port(config.host, port)
            except OSError as e:
                what = {"apns_port": "APNS TLS", "apns_h2c_port": "APNS cleartext", "fcm_port": "FCM TLS",
                        "fcm_h2c_port": "FCM cleartext"}[name]
                raise ListenError(what, config.host, port, name, e) from None
            reserved.append(sock)
            ports[name] = sock.getsockname()[1]
    except StartError as e:
        for s in reserved:
            s.close()
        print(f"pushsim: {e}", file=sys.stderr, flush=True)
        return 2
    # Each worker gets an even share of the FCM project quota (documented in docs/serve.md).
    worker_config = replace(config, **ports, fcm_project_quota=max(1, config.fcm_project_quota // n))
    secret = os.urandom(32)
    hub_pairs = [socket.socketpair() for _ in range(n)]
    mesh = {(i, j): socket.socketpair() for i in range(n) for j in range(i + 1, n)}
    hub_pid = os.getpid()
    # Signals wait until the hub's loop handles them (and a worker has chosen to ignore SIGINT).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.stdout.flush()
    sys.stderr.flush()
    links: list[WorkerLink] = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for s in reserved:
                    s.close()
                for k, (a, b) in enumerate(hub_pairs):
                    a.close()
                    if k != i:
                        b.close()
                peers: dict[int, socket.socket] = {}
                for (a_i, b_i), (a, b) in mesh.items():
                    if a_i == i:
                        peers[b_i] = a
                        b.close()
                    elif b_i == i:
                        peers[a_i] = b
                        a.close()
                    else:
                        a.close()
                        b.close()
                from .worker import run_worker
                code = run_worker(i, n, worker_config, secret, hub_pairs[i][1], peers, hub_pid)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        links.append(WorkerLink(i, pid))
    for _, b in hub_pairs:
        b.close()
    for a, b in mesh.values():
        a.close()
        b.close()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(_hub_main(config, creds, links, [a for a, _ in hub_pairs], out))
    finally:
        for s in reserved:
            s.close()
        for w in links:                  # whatever happened above, leave no child behind
            try:
                if os.waitpid(w.pid, os.WNOHANG)[0] == 0:
                    os.kill(w.pid, signal.SIGKILL)
                    os.waitpid(w.pid, 0)
            except ChildProcessError:
                pass


async def _hub_main(config: Config, creds: Any, links: list[WorkerLink], socks: list[socket.socket],
                    out: Any) -> int:
    from aiohttp import web

    from pushsim.server import ENDPOINTS_FILE, ListenError, endpoint_url, tune_gc

    from .control_proxy import make_hub_app

    loop = asyncio.get_running_loop()
    hub = Hub(config, links)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, hub.stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    runner: web.AppRunner | None = None
    endpoints_file = Path(config.state_dir).absolute() / ENDPOINTS_FILE
    wrote = False

    async def serve() -> None:
        nonlocal runner, wrote
        for w, sock in zip(links, socks):
            w.ready = loop.create_future()
            w.channel = await open_channel(sock, lambda m, w=w: hub.on_message(w, m), lambda e, w=w: hub.on_close(w))
        ready = asyncio.gather(*(w.ready for w in links if w.ready is not None))
        stop_wait = loop.create_task(hub.stop.wait())
        done, _ = await asyncio.wait({ready, stop_wait}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            hub.fail(f"workers did not start within {READY_TIMEOUT:.0f}s", code=1)
        if hub.stop.is_set():
            ready.cancel()
            stop_wait.cancel()
            return
        stop_wait.cancel()
        runner = web.AppRunner(make_hub_app(hub), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.admin_port)
        try:
            await site.start()
        except OSError as e:
            hub.fail(str(ListenError("admin", config.host, config.admin_port, "admin_port", e)), code=2)
            return
        admin_port = int(runner.addresses[0][1])
        endpoints = dict(links[0].endpoints)
        endpoints["admin"] = {"url": endpoint_url("http", config.host, admin_port)}
        endpoints["pid"] = os.getpid()
        endpoints["workers"] = len(links)
        hub.endpoints = endpoints
        if "fcm" in endpoints:
            set_token_uri(creds, endpoints["fcm"]["token_uri"])
        write_atomic(endpoints_file, json.dumps(endpoints, indent=2).encode() + b"\n")
        wrote = True
        tune_gc()
        print(f"pushsim ready: {endpoints_file}", file=out, flush=True)
        await hub.stop.wait()
        return
    try:
        await serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await hub.shutdown()
        if runner is not None:
            await runner.cleanup()
        if wrote:
            try:
                if json.loads(endpoints_file.read_text()).get("pid") == os.getpid():
                    endpoints_file.unlink(missing_ok=True)
            except (OSError, ValueError):
                pass
    if hub.exit_code == 0 and hub.failure is not None:
        hub.exit_code = 1
    return hub.exit_code
