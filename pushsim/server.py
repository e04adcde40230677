"""`pushsim serve` in-process: the testbed, the fake services on their ports, and the control API.

`PushSim(config).start()` binds everything, writes `DIR/endpoints.json` and returns its content;
`stop()` sends GOAWAY {"reason":"Shutdown"} on every connection and closes. `run_in_thread` runs
one on its own event-loop thread for synchronous callers (pytest plugin, locust).
"""
from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import Config
from .credentials import Credentials, ensure_credentials, set_token_uri, write_atomic
from .edge.types import Service
from .faults.service import FaultingService
from .testbed import Testbed

log = logging.getLogger("pushsim.server")
SHUTDOWN_DEBUG = b'{"reason":"Shutdown"}'
ENDPOINTS_FILE = "endpoints.json"


class StartError(Exception):
    """Start-up failed for a reason the user can fix; the message says which and how."""


class ListenError(StartError):
    """A port could not be bound; the message names the port and how to choose another."""

    def __init__(self, what: str, host: str, port: int, port_field: str, cause: OSError) -> None:
        flag = "--" + port_field.replace("_", "-")
        why = "is already in use" if cause.errno == errno.EADDRINUSE else f"cannot be bound ({cause.strerror})"
        super().__init__(f"{what} port {host}:{port} {why}; choose another with {flag} "
                         f"or {Config.env_name(port_field)} (0 = any free port)")
        self.port = port


@dataclass(slots=True)
class ServicePlan:
    """One fake service and how it is exposed: a TLS port and a cleartext port."""
    name: str                       # endpoints.json section: "apns" | "fcm"
    service: Service
    tls_port_field: str             # Config field names, also the flag / env var names
    h2c_port_field: str
    http1: bool                     # also speak HTTP/1.1 (FCM); APNs is HTTP/2 only
    alpn: list[str]
    client_certs: bool              # ask for (but do not require) a client certificate signed by our CA
    describe: Callable[[dict[str, str]], dict[str, Any]] = lambda urls: {}


def build_plans(testbed: Testbed, creds: Credentials) -> list[ServicePlan]:
    """Every fake service the server runs. New services add themselves here."""
    return [_apns_plan(testbed, creds), _fcm_plan(testbed, creds)]


def _apns_plan(testbed: Testbed, creds: Credentials) -> ServicePlan:
    from fake_apns.auth import KeyStore
    from pushsim.services.apns import ApnsService

    keys = KeyStore()
    keys.add(creds.key_id, creds.team_id, creds.apns_public_key())
    return ServicePlan(
        "apns", ApnsService(testbed, keys), "apns_port", "apns_h2c_port", http1=False, alpn=["h2"],
        client_certs=True,
        describe=lambda urls: {
            "topic": creds.bundle_id, "environment": testbed.config.environment,
            "key_file": str(creds.apns_key_file), "key_id": creds.key_id, "team_id": creds.team_id,
            "client_cert": str(creds.client_cert), "client_key": str(creds.client_key),
            "client_bundle": str(creds.client_bundle)})


def _fcm_plan(testbed: Testbed, creds: Credentials) -> ServicePlan:
    """The fake FCM (+ OAuth2 token endpoint and IID on the same ports).

    The service account's token_uri is pointed at the bound TLS port by `PushSim.start`.
    """
    from pushsim.services.fcm import build_fcm_service

    return ServicePlan(
        "fcm", build_fcm_service(testbed, creds), "fcm_port", "fcm_h2c_port", http1=True,
        alpn=["h2", "http/1.1"], client_certs=False,
        describe=lambda urls: {
            "project_id": creds.project_id, "token_uri": urls["url"] + "/token",
            "service_account_file": str(creds.fcm_service_account), "client_email": creds.client_email})


def endpoint_url(scheme: str, host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"


@dataclass(slots=True)
class _Bound:
    plan: ServicePlan
    port_field: str
    server: asyncio.AbstractServer
    port: int
    conns: set[Any]


class PushSim:
    def __init__(self, config: Config, *, worker: Any = None) -> None:
        self.config = config
        # Cluster mode (pushsim.cluster.worker.WorkerRole): this process is one of N workers sharing
        # the service ports; the hub owns endpoints.json, the state dir claim and the public admin port.
        self.worker = worker
        self.testbed: Testbed | None = None           # made in start(): it schedules on the running loop
        self.creds: Credentials | None = None
        self.endpoints: dict[str, Any] = {}
        self.plans: list[ServicePlan] = []
        self.metrics: Any = None
        self._bound: list[_Bound] = []
        self._runner: Any = None
        self._stopping = False
        part = config.partition_of()
        # serve --partition K/N (pushsim/partition.py): ids, credentials and hand-offs across instances.
        self.partition: Any = None
        if part is not None:
            from .partition import Partition
            self.partition = Partition(part[0], part[1], config.peer_urls())

    @property
    def endpoints_file(self) -> Path:
        """DIR/endpoints.json; a partition's instance has its own (they may share one state dir)."""
        name = ENDPOINTS_FILE
        if self.partition is not None:
            name = f"endpoints.partition-{self.partition.k}-of-{self.partition.n}.json"
        return Path(self.config.state_dir).absolute() / name

    async def start(self) -> dict[str, Any]:
        from .edge.limits import EdgeLimits
        from .edge.listener import start_listener
        from .edge.tls import server_context
        from .metrics import Metrics

        loop = asyncio.get_running_loop()
        cfg = self.config
        # Key generation takes a moment on first start; keep the loop free meanwhile.
        try:
            self.creds = creds = await loop.run_in_executor(None, ensure_credentials, Path(cfg.state_dir), cfg)
        except OSError as e:
            raise StartError(f"state dir {Path(cfg.state_dir).absolute()} is not usable ({e.strerror or e}); "
                             f"choose another with --state-dir or {Config.env_name('state_dir')}") from None
        worker = self.worker
        if worker is None:
            self._claim_state_dir()
        self.testbed = testbed = Testbed(cfg, schedule=loop.call_soon,
                                         route=worker.route if worker is not None else None)
        if worker is not None:
            worker.testbed_ready(testbed)             # e.g. cluster-wide journal ids, before any request
        if self.partition is not None:
            self.partition.testbed_ready(testbed)
        self.metrics = Metrics(testbed)
        self.plans = build_plans(testbed, creds)
        if worker is not None:
            worker.plans_ready(self.plans)
        if self.partition is not None:
            self.partition.plans_ready(self.plans, creds.grant_seal())
            self.metrics.handoff = self.partition.stats
        limits = EdgeLimits(max_connections=cfg.max_connections, idle_timeout=cfg.idle_timeout,
                            handshake_timeout=cfg.handshake_timeout)   # one body budget for all
        try:
            for plan in self.plans:
                served = FaultingService(plan.service, plan.name, testbed.faults)   # fault rules go first
                ctx = server_context(str(creds.server_cert), str(creds.server_key), plan.alpn,
                                     str(creds.ca_file) if plan.client_certs else None)
                for port_field, ssl_ctx in ((plan.tls_port_field, ctx), (plan.h2c_port_field, None)):
                    port = int(getattr(cfg, port_field))
                    conns: set[Any] = set()   # the live engine protocols, for GOAWAY on stop
                    try:
                        server = await start_listener(cfg.host, port, service=served, ssl_context=ssl_ctx,
                                                      engine=cfg.engine, http1=plan.http1, conns=conns,
                                                      reuse_port=worker is not None, limits=limits)
                    except OSError as e:
                        raise ListenError(plan.name.upper() + (" TLS" if ssl_ctx else " cleartext"),
                                          cfg.host, port, port_field, e) from None
                    self._bound.append(_Bound(plan, port_field, server, server.sockets[0].getsockname()[1], conns))
            admin_port = await self._start_admin()
        except BaseException:
            await self._close(grace=0.0)
            raise
        self.endpoints = self._describe(admin_port)
        if worker is not None:
            return self.endpoints                 # the hub writes endpoints.json for the cluster
        if "fcm" in self.endpoints:
            set_token_uri(creds, self.endpoints["fcm"]["token_uri"])
        write_atomic(self.endpoints_file, json.dumps(self.endpoints, indent=2).encode() + b"\n")
        return self.endpoints

    def _claim_state_dir(self) -> None:
        """One live server per state dir: its endpoints.json must not be overwritten under its users.
        A file left by a process that is gone is stale and goes, so it never describes this run."""
        path = self.endpoints_file
        try:
            pid = int(json.loads(path.read_text()).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise StartError(f"state dir {path.parent} is in use by pushsim pid {pid}; stop it or choose "
                             f"another with --state-dir or {Config.env_name('state_dir')}")
        path.unlink(missing_ok=True)

    async def _start_admin(self) -> int:
        from aiohttp import web

        from .control import make_app

        cfg = self.config
        self._runner = web.AppRunner(make_app(self), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        # A worker's own control API is private to the hub: loopback, any free port.
        host, port = ("127.0.0.1", 0) if self.worker is not None else (cfg.host, cfg.admin_port)
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as e:
            raise ListenError("admin", host, port, "admin_port", e) from None
        return int(self._runner.addresses[0][1])

    def _describe(self, admin_port: int) -> dict[str, Any]:
        assert self.creds is not None
        host = self.config.host
        out: dict[str, Any] = {"ca_file": str(self.creds.ca_file)}
        for plan in self.plans:
            ports = {b.port_field: b.port for b in self._bound if b.plan is plan}
            urls = {"url": endpoint_url("https", host, ports[plan.tls_port_field]),
                    "h2c_url": endpoint_url("http", host, ports[plan.h2c_port_field])}
            out[plan.name] = {**urls, **plan.describe(urls)}
        out["admin"] = {"url": endpoint_url("http", host, admin_port)}
        if self.partition is not None:
            p = self.partition
            out["partition"] = {"k": p.k, "n": p.n, "spec": f"{p.k}/{p.n}",
                                "peers": p.peers.urls() if p.peers is not None else []}
        out["state_dir"] = str(self.creds.state_dir)
        out["pid"] = os.getpid()
        return out

    def connection_count(self) -> int:
        """Client connections open on the fake services' ports now."""
        return sum(len(b.conns) for b in self._bound)

    async def stop(self, grace: float = 5.0) -> None:
        """GOAWAY {"reason":"Shutdown"} on every connection, let in-flight streams finish, close."""
        if self._stopping:
            return
        self._stopping = True
        await self._close(grace)
        if self.endpoints and _read_json(self.endpoints_file).get("admin") == self.endpoints["admin"]:
            self.endpoints_file.unlink(missing_ok=True)   # only our own: another run may own it now

    async def _close(self, grace: float) -> None:
        conns_all: list[set[Any]] = []
        for b in self._bound:
            b.server.close()                      # stop accepting first
            conns_all.append(b.conns)
            reason = getattr(b.plan.service, "closing_reason", lambda: SHUTDOWN_DEBUG)()
            for proto in list(b.conns):
                try:
                    proto.shutdown(reason)
                except Exception:   # a connection dying mid-shutdown must not stop the others' GOAWAY
                    log.exception("GOAWAY failed on %r", proto)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(conns_all) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conns in conns_all:                   # whatever did not finish in time is cut off
            for proto in list(conns):
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.abort()
        for b in self._bound:
            await b.server.wait_closed()
        self._bound.clear()
        if self.partition is not None:
            await self.partition.close()
        if self._runner is not None:
            if self.metrics is not None:
                self.metrics.close()
            await self._runner.cleanup()
            self._runner = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# a server on its own thread ------------------------------------------------------------------
def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_in_thread(config: Config, timeout: float = 30.0) -> tuple[PushSim, Callable[[], None]]:
    """Start a PushSim on a daemon thread; return it (started) and an idempotent `stop()`."""
    sim = PushSim(config)
    loop = new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sim.start())
        except BaseException as e:   # handed to the caller's thread
            ready["error"] = e
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=main, name="pushsim", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError("pushsim did not start in time")
    if "error" in ready:
        thread.join()
        raise ready["error"]
    lock = threading.Lock()

    def stop() -> None:
        with lock:
            if not thread.is_alive():
                return
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    return sim, stop


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (connections are file descriptors; the
    connection cap, not a low default soft limit, should decide how many we hold). Returns it."""
    try:
        import resource
    except ImportError:          # not POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)
    return soft


def tune_gc() -> None:
    """Serve-process only (the setting is process-wide, so not for in-process users like the plugin).

    Every accepted push leaves long-lived objects behind (ledger record, journal entry, device
    state), so the default young-generation threshold of 700 triggers collections that mostly
    re-scan survivors: measured ~20% of the per-request CPU of the full APNs path. Freezing what
    start-up built and collecting young objects 70x less often removes most of that.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
