"""The `pushsim` command: one module per subcommand (serve, creds, push, stats, run, replay, report), each
with `register(subparsers)` giving its parser a `func(args) -> int` default.

Every flag has an environment variable, shown in `--help` with the flag's default (options.py).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .config_flags import add_config_arguments, config_from_args, validate
from .options import UsageError

__all__ = ["COMMAND_MODULES", "UsageError", "add_config_arguments", "build_parser", "config_from_args",
           "main", "validate"]

COMMAND_MODULES = ("pushsim.cli.serve", "pushsim.cli.creds", "pushsim.cli.replay", "pushsim.cli.run",
                   "pushsim.cli.push", "pushsim.cli.stats", "pushsim.cli.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushsim", description="Push-notification test bench: fake APNs, "
                                     "fake FCM, a simulated device fleet.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:   # a command that fails to import is a broken build: let it raise
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except UsageError as e:
        print(f"pushsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
