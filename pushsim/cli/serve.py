"""`pushsim serve`: fake APNs, fake FCM, the fleet and the control API until interrupted."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from pushsim.config import Config

from .config_flags import add_config_arguments, add_extra_arguments, config_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run fake APNs, fake FCM, the fleet and the control API until interrupted",
                       description=__doc__)
    add_config_arguments(p)
    add_extra_arguments(p)
    p.set_defaults(func=run)


async def serve(config: Config, out: Any = None) -> int:
    from pushsim.server import PushSim, StartError, tune_gc

    out = out or sys.stdout
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers go in before anything binds: a signal that arrives right after the ready line (or
    # during start-up) must still mean a clean shutdown, not a KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = PushSim(config)
    try:
        try:
            await sim.start()
        except StartError as e:
            print(f"pushsim: {e}", file=sys.stderr, flush=True)
            return 2
        tune_gc()
        print(f"pushsim ready: {sim.endpoints_file}", file=out, flush=True)
        await stop.wait()
        await sim.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run(args: argparse.Namespace) -> int:
    from pushsim.server import new_event_loop, raise_fd_limit

    config = config_from_args(args)
    raise_fd_limit()               # before any worker forks: they inherit it
    if config.workers > 1:
        from pushsim.cluster.hub import run_cluster   # forks before any event loop or thread exists
        return run_cluster(config)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(serve(config))
