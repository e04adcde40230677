"""`pushsim replay JOURNAL --seed S [--json] [--trace SEQ]`: re-run an exported journal in virtual time."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("replay", help="re-run an exported journal (JSONL) in virtual time",
                              description="Re-run the accepted notifications of a journal export "
                                          "(GET /journal?format=jsonl) in virtual time and print the "
                                          "funnel and the outcome digest.")
    p.add_argument("journal", help="JSONL export; - for stdin")
    option(p, "replay", "--seed", "fleet seed (default: the one in the export)", type=int)
    option(p, "replay", "--json", "print one JSON document", action="store_true")
    option(p, "replay", "--trace", "print every transition of notification SEQ (device times relative to "
           "its arrival)", type=int, metavar="SEQ")
    option(p, "replay", "--html", "also write a self-contained HTML report with plots to FILE", metavar="FILE")
    p.set_defaults(func=run)


def trace_lines(steps: list[dict[str, Any]]) -> list[str]:
    """One line per transition: +seconds since arrival, outcome, reason, and the notification that
    replaced a coalesced / superseded / collapsed one."""
    if not steps:
        return []
    t0 = float(steps[0]["t"])
    out = []
    for st in steps:
        line = f"+{float(st['t']) - t0:10.3f} s  {st['outcome']:<9} {st.get('reason') or ''}".rstrip()
        if st.get("superseded_by") is not None:
            line += f"  (replaced by notification {st['superseded_by']})"
        out.append(line)
    return out


def run(args: argparse.Namespace) -> int:
    from device_sim.replay import replay
    try:
        if args.journal == "-":
            result = replay(sys.stdin, args.seed, args.trace)
        else:
            with open(args.journal, encoding="utf-8") as f:
                result = replay(f, args.seed, args.trace)
    except LookupError as e:        # an unknown --trace SEQ (KeyError is a LookupError too: same exit)
        print(f"pushsim replay: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"pushsim replay: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        f = result.funnel
        print(f"replayed {result.notifications} notifications in {result.wall_seconds:.3f} s")
        print(f"  accepted {f['accepted']}  delivered {f['delivered']}")
        print(f"  dropped  {f['dropped']}")
        print(f"  pending  {f['pending']}")
        if result.trace:
            print(f"trace of notification {args.trace} (install {result.trace[0].get('install')}, "
                  f"arrived at device time {float(result.trace[0]['t']):.3f}):")
        for line in trace_lines(result.trace):
            print("  " + line)
        print(f"digest      {result.digest}")
        if result.live_digest is not None:
            print(f"live digest {result.live_digest}  {'MATCH' if result.matches else 'DIFFERENT'}")
        if not result.complete:
            print("note: the live ledger had forgotten old records; the digests cannot match", file=sys.stderr)
    if args.html and result.world is not None:
        import orjson

        from device_sim.replay import export_jsonl
        from pushsim.report.html import PageInputs

        from .run import write_html
        records = [orjson.loads(line) for line in export_jsonl(result.world)]
        write_html(args.html, PageInputs(
            "pushsim replay", records, trace_seq=args.trace, trace_steps=result.trace or None,
            facts=[("journal", args.journal), ("notifications", f"{result.notifications:,}"),
                   ("digest", result.digest),
                   ("live digest", f"{result.live_digest} ({'MATCH' if result.matches else 'DIFFERENT'})")]))
    return 0 if result.live_digest is None or result.matches else 1
