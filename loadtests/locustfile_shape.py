"""Add-on: a load shape selected by `--shape ramp|spike|soak`. Combine with a user locustfile:
`locust -f loadtests/locustfile_apns.py,loadtests/locustfile_shape.py --shape spike -u 100 -t 5m`.

Peak users come from `-u`, duration from `-t` (the shape reads them: use_common_options).
"""
from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events

from loadtests.shapes import SHAPES, Plan, make_plan


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    g = parser.add_argument_group("pushsim load shape")
    g.add_argument("--shape", env_var="PUSHSIM_SHAPE", choices=SHAPES, default="ramp")
    g.add_argument("--shape-ramp", env_var="PUSHSIM_SHAPE_RAMP", type=float, default=None,
                   help="ramp/soak: seconds to reach the peak (ramp: half the run; soak: warm-up)")
    g.add_argument("--shape-steps", env_var="PUSHSIM_SHAPE_STEPS", type=int, default=10,
                   help="ramp: number of stairs")
    g.add_argument("--spike-base", env_var="PUSHSIM_SPIKE_BASE", type=int, default=None,
                   help="spike: users before and after the spike (default peak/10)")
    g.add_argument("--spike-at", env_var="PUSHSIM_SPIKE_AT", type=float, default=None,
                   help="spike: seconds into the run (default a third)")
    g.add_argument("--spike-length", env_var="PUSHSIM_SPIKE_LENGTH", type=float, default=None,
                   help="spike: seconds at the peak (default a third of the run)")


class PushsimShape(LoadTestShape):
    use_common_options = True
    _plan: Plan | None = None

    def plan(self) -> Plan:
        if self._plan is None:
            o = self.runner.environment.parsed_options
            self._plan = make_plan(o.shape, users=o.num_users or 10, duration=float(o.run_time or 60),
                                   ramp_s=o.shape_ramp, steps=o.shape_steps, spike_base=o.spike_base,
                                   spike_at=o.spike_at, spike_length=o.spike_length)
        return self._plan

    def tick(self) -> tuple[int, float] | None:
        return self.plan().tick(self.get_run_time())
