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
    option(p, "replay", "--trace", "print every transition of notification SEQ", type=int, metavar="SEQ")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from device_sim.replay import replay
    try:
        if args.journal == "-":
            result = replay(sys.stdin, args.seed, args.trace)
        else:
            with open(args.journal, encoding="utf-8") as f:
                result = replay(f, args.seed, args.trace)
    except (OSError, ValueError, KeyError) as e:
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
        for step in result.trace:
            print(f"  trace {args.trace}: t={step['t']:.3f} {step['outcome']} {step.get('reason') or ''}")
        print(f"digest      {result.digest}")
        if result.live_digest is not None:
            print(f"live digest {result.live_digest}  {'MATCH' if result.matches else 'DIFFERENT'}")
        if not result.complete:
            print("note: the live ledger had forgotten old records; the digests cannot match", file=sys.stderr)
    return 0 if result.live_digest is None or result.matches else 1
