"""The `pushsim` command: one module per subcommand (serve, creds, push, stats, run, replay, report, journal,
token, proxy-config), each with `register(subparsers)` giving its parser a `func(args) -> int` default.

Every flag has an environment variable, shown in `--help` with the flag's default (options.py).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .config_flags import add_config_arguments, config_from_args, validate
from .options import UsageError

__all__ = ["COMMAND_MODULES", "UsageError", "add_config_arguments", "build_parser", "config_from_args",
           "main", "validate"]

COMMAND_MODULES = ("pushsim.cli.serve", "pushsim.cli.creds", "pushsim.cli.replay", "pushsim.cli.run",
                   "pushsim.cli.push", "pushsim.cli.stats", "pushsim.cli.report", "pushsim.cli.journal",
                   "pushsim.cli.token", "pushsim.cli.proxy_config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushsim", description="Push-notification test bench: fake APNs, "
                                     "fake FCM, a simulated device fleet.")
    parser.add_argument("--version", action="version", version=f"pushsim {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:   # a command that fails to import is a broken build: let it raise
        importlib.import_module(name).register(sub)
    return parser


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("pushsim")
    except PackageNotFoundError:     # run from a checkout that was never installed
        return "0+unknown"


def _quiet_broken_pipe() -> int:
    """`pushsim ... | head`: the reader left. Point stdout at /dev/null so the interpreter's final flush
    cannot raise again, and exit like a shell pipeline would (128 + SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()     # a pipe closed early shows up here for short outputs
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: list[str] | None = None) -> int:
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
