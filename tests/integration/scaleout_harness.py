"""N partitioned `pushsim serve` instances and HAProxy in front, on loopback (issue 16).

All instances share one state dir (same credentials, same OAuth seal; each writes its own
endpoints file), the same seed and fleet spec, `--partition K/N`, and `--peers` = every instance's
control API. The proxy's configuration is what `pushsim proxy-config` writes for the instances'
endpoints files.
Every process is started in its own session and stopped by PID.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.processes import fixed_free_port, stop   # stop: by PID, then its children
from pushsim.cli import main as pushsim_main

PUSHSIM = str(Path(sys.executable).with_name("pushsim"))


def _wait_port(port: int, deadline: float, proc: subprocess.Popen[bytes], what: str) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: port {port} never opened") from None
            time.sleep(0.02)


def _ready_line(out: Path) -> str | None:
    """The endpoints file named by `pushsim ready: PATH` (a partitioned instance names its own)."""
    for line in out.read_text().splitlines():
        if line.startswith("pushsim ready: "):
            return line.split(": ", 1)[1].strip()
    return None


@dataclass
class Deployment:
    root: Path
    instances: list[dict[str, Any]]                  # each instance's endpoints.json
    procs: list[subprocess.Popen[bytes]]
    proxy_dir: Path
    ports: dict[str, int]                            # the proxy's: apns, apns-h2c, fcm, fcm-h2c, stats
    haproxy: subprocess.Popen[bytes] | None = None
    endpoint_files: list[Path] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def ca_file(self) -> str:
        return str(self.instances[0]["ca_file"])

    @property
    def admin_urls(self) -> list[str]:
        return [ep["admin"]["url"] for ep in self.instances]

    def url(self, listener: str) -> str:
        scheme = "https" if listener in ("apns", "fcm") else "http"
        return f"{scheme}://127.0.0.1:{self.ports[listener]}"

    def admin(self, k: int) -> httpx.Client:
        while len(self.clients) <= k:
            self.clients.append(httpx.Client(base_url=self.admin_urls[len(self.clients)], timeout=10))
        return self.clients[k]

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.haproxy is not None:
            stop(self.haproxy, signal.SIGUSR1)        # HAProxy's graceful stop
        for p in self.procs:
            stop(p)


def start(root: Path, partitions: int = 3, devices: str = "ios=30,android=30", seed: int = 7,
          extra: tuple[str, ...] = (), haproxy: bool = True, timeout: float = 30.0) -> Deployment:
    state = root / "state"
    subprocess.run([PUSHSIM, "creds", "--state-dir", str(state)], check=True, capture_output=True, timeout=60)
    taken: set[int] = set()
    admin_ports = [fixed_free_port(taken) for _ in range(partitions)]
    peers = ",".join(f"http://127.0.0.1:{p}" for p in admin_ports)
    procs: list[subprocess.Popen[bytes]] = []
    dep = Deployment(root, [], procs, root / "proxy", {})
    try:
        for k in range(partitions):
            cmd = [PUSHSIM, "serve", "--state-dir", str(state), "--apns-port", "0", "--apns-h2c-port", "0",
                   "--fcm-port", "0", "--fcm-h2c-port", "0", "--admin-port", str(admin_ports[k]),
                   "--devices", devices, "--seed", str(seed), "--partition", f"{k}/{partitions}",
                   "--peers", peers, *extra]
            with (root / f"serve{k}.out").open("wb") as out, (root / f"serve{k}.err").open("wb") as err:
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True))
        deadline = time.monotonic() + timeout
        for k, p in enumerate(procs):
            while not (ready := _ready_line(root / f"serve{k}.out")):
                if p.poll() is not None or time.monotonic() > deadline:
                    err = (root / f"serve{k}.err").read_text()[-1500:]
                    raise RuntimeError(f"instance {k} not ready (exit {p.poll()}): {err}")
                time.sleep(0.02)
            dep.endpoint_files.append(Path(ready))
            dep.instances.append(json.loads(Path(ready).read_text()))
        if haproxy:
            start_proxy(dep, deadline)
        return dep
    except BaseException:
        dep.stop()
        raise


def start_proxy(dep: Deployment, deadline: float) -> None:
    taken = set(int(u.rsplit(":", 1)[1]) for u in dep.admin_urls)
    dep.ports = {name: fixed_free_port(taken) for name in ("apns", "apns-h2c", "fcm", "fcm-h2c", "stats")}
    specs = ",".join(f"@{f}" for f in dep.endpoint_files)
    code = pushsim_main(["proxy-config", "--partitions", str(len(dep.instances)), "--instances", specs,
                         "--out", str(dep.proxy_dir), "--state-dir", str(dep.root / "state"),
                         "--apns-port", str(dep.ports["apns"]), "--apns-h2c-port", str(dep.ports["apns-h2c"]),
                         "--fcm-port", str(dep.ports["fcm"]), "--fcm-h2c-port", str(dep.ports["fcm-h2c"]),
                         "--stats-port", str(dep.ports["stats"]),
                         "--maxconn", "200"])          # ulimit-n stays under 1024: any machine can run it
    if code != 0:
        raise RuntimeError(f"pushsim proxy-config exited {code}")
    with (dep.root / "haproxy.log").open("wb") as log:
        dep.haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(dep.proxy_dir / "haproxy.cfg")],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for name, port in dep.ports.items():
        _wait_port(port, deadline, dep.haproxy, f"haproxy ({name}; {dep.root / 'haproxy.log'})")
