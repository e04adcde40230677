"""`pushsim run SCENARIO --seed S [--json]`: run a scenario TOML in virtual time."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a scenario (TOML) in virtual time",
                              description="Run a fleet scenario in virtual time; print the funnel, "
                                          "metrics and the outcome digest (same seed, same digest).")
    p.add_argument("scenario", help="scenario TOML file, e.g. scenarios/ios-silent-hourly.toml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from device_sim.scenario import run_virtual
    try:
        summary = run_virtual(args.scenario, args.seed)
    except (OSError, ValueError, KeyError) as e:
        print(f"pushsim run: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_json(), indent=2, sort_keys=True) if args.json else summary.format())
    return 0
