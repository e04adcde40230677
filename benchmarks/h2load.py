"""Running h2load and reading what it reports: the summary on stdout and the per-request --log-file.

The parsers are pure functions over text so they can be tested on captured output.
"""
from __future__ import annotations

import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout")
_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


class H2loadOutputError(ValueError):
    """h2load printed no summary we understand (it crashed, or its output format changed)."""


@dataclass(frozen=True)
class Summary:
    """The numbers of h2load's final summary that the benchmark uses."""
    seconds: float
    req_s: float
    total: int
    started: int
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    codes: tuple[int, int, int, int]        # 2xx, 3xx, 4xx, 5xx

    @property
    def ok2xx(self) -> int:
        return self.codes[0]

    @property
    def non2xx(self) -> int:
        return sum(self.codes[1:])

    def clean(self, n: int) -> bool:
        """Every one of the n requests got a 2xx: nothing failed, errored, timed out or was refused."""
        return self.ok2xx == n and self.failed == 0 and self.non2xx == 0


def parse_summary(text: str) -> Summary:
    fin, req, codes = _FINISHED.search(text), _REQUESTS.search(text), _CODES.search(text)
    if not (fin and req and codes):
        raise H2loadOutputError(f"no h2load summary in output: {text[-400:]!r}")
    r = [int(g) for g in req.groups()]
    return Summary(seconds=float(fin.group(1)) * _UNIT[fin.group(2)], req_s=float(fin.group(3)),
                   total=r[0], started=r[1], done=r[2], succeeded=r[3], failed=r[4], errored=r[5],
                   timeout=r[6], codes=tuple(int(g) for g in codes.groups()))  # type: ignore[arg-type]


@dataclass
class LogStats:
    """From --log-file: one latency (µs from request start to end of response) per finished request."""
    latencies_us: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)    # status -> count; -1 = failed stream
    first_start_us: int | None = None
    last_start_us: int | None = None
    last_end_us: int | None = None
    failed_starts_us: list[int] = field(default_factory=list)
    ok_starts_us: list[int] = field(default_factory=list)    # 2xx responses only
    ok_ends_us: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    def rate(self, skip_us: int = 0) -> float:
        """2xx responses per second, from the first start at or after first_start + skip_us to the last
        end among them (skip_us leaves out a first_then_all gap)."""
        if self.first_start_us is None:
            return 0.0
        lo = self.first_start_us + skip_us
        pairs = [(s, e) for s, e in zip(self.ok_starts_us, self.ok_ends_us) if s >= lo]
        if len(pairs) < 2:
            return 0.0
        span = max(e for _, e in pairs) - min(s for s, _ in pairs)
        return len(pairs) / (span / 1e6) if span > 0 else 0.0

    def start_rate(self, skip_us: int = 0) -> float:
        """Starts of 2xx requests per second (what a paced run really offered), after skip_us."""
        if self.first_start_us is None:
            return 0.0
        starts = [s for s in self.ok_starts_us if s >= self.first_start_us + skip_us]
        if len(starts) < 2 or max(starts) == min(starts):
            return 0.0
        return (len(starts) - 1) / ((max(starts) - min(starts)) / 1e6)

    @property
    def span_s(self) -> float:
        """Wall time from the first request's start to the last response's end."""
        if self.first_start_us is None or self.last_end_us is None:
            return 0.0
        return (self.last_end_us - self.first_start_us) / 1e6


def parse_log(lines: Iterable[str]) -> LogStats:
    """Rows are `start_us<TAB>status<TAB>duration_us[<TAB>more columns]`; failed streams have status -1."""
    st = LogStats()
    lat, statuses = st.latencies_us, st.statuses
    first = last_start = last_end = None
    for line in lines:
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            raise H2loadOutputError(f"bad --log-file row: {line!r}")
        start, status, dur = int(cols[0]), int(cols[1]), int(cols[2])
        statuses[status] = statuses.get(status, 0) + 1
        first = start if first is None or start < first else first
        last_start = start if last_start is None or start > last_start else last_start
        if status == -1:               # the duration of a failed stream says nothing about the server
            st.failed_starts_us.append(start)
            continue
        lat.append(dur)
        end = start + dur
        if 200 <= status < 300:
            st.ok_starts_us.append(start)
            st.ok_ends_us.append(end)
        last_end = end if last_end is None or end > last_end else last_end
    st.first_start_us, st.last_start_us, st.last_end_us = first, last_start, last_end
    return st


def first_flight_refusals(s: Summary, log: LogStats, n: int, clients: int, streams: int,
                          window_us: int = 200_000) -> bool:
    """True when the only failures are streams refused right at connection start: a token-auth APNs
    connection starts at SETTINGS_MAX_CONCURRENT_STREAMS 1, and streams h2load opened before that
    SETTINGS arrived are reset with REFUSED_STREAM (never processed; RFC 9113 lets a client retry them).
    Then every failure is an `errored` stream that started within window_us of the run's first request,
    at most streams - 1 per connection, and every other request got a 2xx."""
    if s.non2xx or s.timeout or not s.errored or s.failed != s.errored or s.ok2xx + s.errored != n:
        return False
    if s.errored > clients * (streams - 1) or len(log.failed_starts_us) != s.errored or log.first_start_us is None:
        return False
    return max(log.failed_starts_us) - log.first_start_us <= window_us


def read_log(path: Path) -> LogStats:
    with path.open() as f:
        return parse_log(f)


@dataclass(frozen=True)
class Load:
    """What h2load sends: the same for the pushsim row and its nghttpd reference."""
    uris: Path                       # one URI per line (h2load -i)
    body: Path                       # POST body (h2load -d)
    headers: tuple[str, ...]
    clients: int
    streams: int                     # streams in flight per connection (1 for HTTP/1.1)
    h1: bool = False
    rps: float | None = None         # per client (h2load --rps); None = as fast as possible
    script: Path | None = None       # --timing-script-file instead of -i: every client replays it
    duration_s: float | None = None  # timing-based run (-D) instead of -n, after warmup_s of
    warmup_s: float = 1.0            # h2load warm-up that its counts and --log-file leave out


def timing_script(path: Path, urls: list[str], offsets_ms: list[float]) -> Path:
    """A --timing-script-file: request k starts offsets_ms[k] after its client connected, URLs in turn.
    Every client replays the whole script; lines with the same offset go out together."""
    path.write_text("".join(f"{t:.3f}\t{urls[k % len(urls)]}\n" for k, t in enumerate(offsets_ms)))
    return path


def evenly(count: int, per_client_rate: float, start_ms: float = 0.0, first_alone_ms: float | None = None) -> list[float]:
    """count starts spaced 1/per_client_rate apart (optionally one lone request first, then a gap).

    A token-auth APNs connection starts at SETTINGS_MAX_CONCURRENT_STREAMS 1 and raises it after the
    first valid JWT: first_alone_ms leaves room for that. (h2load submits a script's requests when they
    are due, whatever -m says, so a script that makes everything due at once is not a max-throughput run.)

    h2load's --rps releases a tick's worth of requests at once every 10 ms (measured: 20-request bursts
    at --rps 1000 -c 2): at half load the server then spends half of every tick on one burst, and the
    burst's queue alone puts p99 near 5 ms. A timing script spaces each client's requests evenly."""
    step = 1000.0 / per_client_rate
    if first_alone_ms is None:
        return [start_ms + k * step for k in range(count)]
    return [0.0] + [first_alone_ms + k * step for k in range(count - 1)]


def command(load: Load, n: int, log_file: Path | None = None, rps: float | None = None) -> list[str]:
    rps = rps if rps is not None else load.rps
    count = (["-D", f"{round(load.duration_s * 1000)}ms", "--warm-up-time", f"{round(load.warmup_s * 1000)}ms"]
             if load.duration_s and not load.script else ["-n", str(n)])
    cmd = ["h2load", *count, "-c", str(load.clients), "-m", str(load.streams), "-d", str(load.body),
           *[a for h in load.headers for a in ("-H", h)]]
    # with a timing script, -n counts each client's requests
    cmd += ["--timing-script-file", str(load.script)] if load.script else ["-i", str(load.uris)]
    if load.h1:
        cmd.append("--h1")
    if rps and not load.script:
        cmd += ["--rps", f"{rps:.3f}"]
    if log_file is not None:
        cmd += ["--log-file", str(log_file)]
    return cmd


@dataclass(frozen=True)
class Run:
    summary: Summary
    wall_s: float
    client_cpu_s: float              # h2load's user + system CPU
    stdout: str


def run(load: Load, n: int, log_file: Path | None = None, rps: float | None = None,
        timeout: float = 600) -> Run:
    """One bounded h2load run. Its CPU comes from RUSAGE_CHILDREN: the harness waits for no other child
    while h2load runs, so the difference is h2load's alone."""
    if log_file is not None and log_file.exists():
        log_file.unlink()              # h2load appends to an existing log file
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(command(load, n, log_file, rps), capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(parse_summary(out.stdout), wall, cpu, out.stdout)
