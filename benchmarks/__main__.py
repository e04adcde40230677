"""`python -m benchmarks MODE`: h2load against `pushsim serve` (the full path) and nghttpd, in one run.

Modes: full (every row, latency at half load, memory, targets), quick (the one-minute regression
guard), apns and fcm (subsets of full with their earlier defaults), scaleout (HAProxy in front of
1-3 instances, issue 16). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import sys

from benchmarks import full, quick
from benchmarks.full import PUSHSIM_ROWS


def _rows(text: str) -> list[str]:
    rows = [r for r in text.split(",") if r]
    bad = [r for r in rows if r not in PUSHSIM_ROWS]
    if bad or not rows:
        raise argparse.ArgumentTypeError(f"rows are a comma list of {','.join(PUSHSIM_ROWS)}; got {text!r}")
    return rows


def _common(p: argparse.ArgumentParser, n: int, ref_n: int, runs: int, warmup: int) -> None:
    p.add_argument("-n", type=int, default=n, help=f"requests per pushsim run (default {n})")
    p.add_argument("--ref-n", type=int, default=ref_n, help=f"requests per nghttpd run (default {ref_n})")
    p.add_argument("--runs", type=int, default=runs, help=f"max-throughput runs (rounds) per row (default {runs})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"warm-up requests per row (default {warmup})")
    p.add_argument("--clients", "-c", type=int, default=8, help="HTTP/2 connections (default 8)")
    p.add_argument("--streams", "-m", type=int, default=100, help="HTTP/2 streams in flight per connection (default 100)")
    p.add_argument("--h1-clients", type=int, default=64, help="HTTP/1.1 connections, 1 request each in flight (default 64)")
    p.add_argument("--tokens", type=int, default=1000, help="distinct fleet iOS tokens the APNs rows spread over")
    p.add_argument("--devices", type=int, default=2000, help="fleet size per platform for pushsim serve")
    p.add_argument("--engine", choices=["fast", "h2"], default="fast")
    p.add_argument("--workers", type=int, default=1, help="passed to `pushsim serve --workers` (default 1)")
    p.add_argument("--apns-rps", "--tls-rps", dest="apns_rps", type=int, default=10_000,
                   help="with --apns-timed 0: h2load --rps per connection for the APNs rows, a cap far above their"
                        " rate that delays the first flight past the server's SETTINGS (0 = unpaced; see README)")
    p.add_argument("--apns-timed", type=float, default=1.0, metavar="WARMUP_S",
                   help="APNs rows: timing-based h2load runs (-D, lasting about -n requests) whose first WARMUP_S"
                        " seconds (where first-flight refusals land) are not counted (default 1; 0 = -n runs paced"
                        " by --apns-rps)")
    p.add_argument("--apns-gap-ms", type=float, default=50.0,
                   help="APNs paced (half-load) runs: one request per connection, the script after this gap")
    p.add_argument("--first-flight-retries", type=int, default=3,
                   help="repeat an APNs run whose only failures are streams refused at connection start (default 2)")
    p.add_argument("--tolerate-first-flight", action="store_true",
                   help="after the repeats, count an APNs run whose only failures are first-flight refusals as"
                        " clean (they are reported); for busy machines, off by default")
    p.add_argument("--json", metavar="PATH", help="write every number, machine-readable")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("full", help="every full-path row vs nghttpd, half-load latency, memory, targets")
    _common(f, 60_000, 200_000, 3, 10_000)
    f.add_argument("--rows", type=_rows, default=list(PUSHSIM_ROWS), help="comma list (default: all)")
    f.add_argument("--no-half-load", dest="half_load", action="store_false", help="skip the paced half-load runs")
    f.add_argument("--half-seconds", type=float, default=4.0, help="length of each half-load run (default 4 s)")
    f.add_argument("--half-pacing", choices=["script", "rps"], default="script",
                   help="evenly spaced starts (h2load --timing-script-file, default) or h2load --rps")
    f.add_argument("--no-memory", dest="memory", action="store_false", help="skip the 1M-install memory rows")
    f.add_argument("--memory-installs", type=int, default=1_000_000)
    f.add_argument("--memory-pushes", type=int, default=20_000, help="APNs pushes to the 1M-install serve")
    f.add_argument("--engine-only", action="store_true", help="add benchmarks/server.py (engine + stand-in service)")
    q = sub.add_parser("quick", help="regression guard (< 1 min): APNs h2c and FCM h2c vs nghttpd, ratios")
    _common(q, 15_000, 60_000, 5, 3_000)
    q.add_argument("--budget", type=float, default=50.0, help="start no round that would end after this many s")
    q.add_argument("--save", metavar="FILE", help="store the result (JSON) for a later --compare")
    q.add_argument("--compare", metavar="FILE", help="print the ratio change against a saved result")
    a = sub.add_parser("apns", help="= full --rows apns-h2c,apns-tls --engine-only, no half load, no memory")
    _common(a, 100_000, 200_000, 3, 10_000)
    a.add_argument("--no-tls", action="store_true")
    a.add_argument("--no-engine-only", dest="engine_only", action="store_false")
    c = sub.add_parser("fcm", help="= full --rows fcm-h2c,fcm-h1, no half load, no memory")
    _common(c, 60_000, 200_000, 3, 5_000)
    so = sub.add_parser("scaleout", help="APNs h2c through HAProxy in front of 1, 2, 3 instances vs one instance "
                        "direct (issue 16; needs haproxy)")
    so.add_argument("--runs", type=int, default=3, help="rounds; every row once per round (default 3)")
    so.add_argument("--seconds", type=float, default=3.0, help="length of each timed run after its 1 s warm-up")
    so.add_argument("--clients", "-c", type=int, default=8, help="HTTP/2 connections (default 8)")
    so.add_argument("--streams", "-m", type=int, default=100, help="streams in flight per connection (default 100)")
    so.add_argument("--tokens", type=int, default=300, help="distinct iOS tokens, taken round the partitions")
    so.add_argument("--devices", type=int, default=600, help="iOS installs of each deployment's fleet")
    so.add_argument("--http-reuse", choices=["never", "safe", "always"], default="never",
                    help="passed to `pushsim proxy-config --http-reuse` (default never)")
    so.add_argument("--tls", action="store_true", help="APNs over TLS (ALPN h2): HAProxy's TLS listener, the "
                    "instance's TLS port for the direct row")
    so.add_argument("--fcm", action="store_true", help="FCM messages:send instead of APNs: one install per row "
                    "(h2load sends one body), HAProxy reads its token from the body")
    so.add_argument("--json", metavar="PATH", help="write every number, machine-readable")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "quick":
        return quick.run(args)
    if args.cmd == "scaleout":
        from benchmarks import scaleout
        return scaleout.run(args)
    if args.cmd == "apns":
        args.rows = ["apns-h2c"] + ([] if args.no_tls else ["apns-tls"])
    elif args.cmd == "fcm":
        args.rows = ["fcm-h2c", "fcm-h1"]
    if args.cmd != "full":
        args.half_load = args.memory = False
    return full.run(args, args.cmd)


if __name__ == "__main__":
    sys.exit(main())
