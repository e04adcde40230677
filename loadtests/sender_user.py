"""Locust user that load-tests a sender end to end: trigger it, then wait for the device receipt.

Each iteration registers a waiter for one install's token, calls the sender's trigger endpoint
(`--sut-url`, body `--sut-body` with `{token}`/`{platform}` substituted) and waits for that token's
final event on pushsim's `/events` stream. Locust stats get two request types: TRIGGER (the
sender's own HTTP answer) and E2E (trigger sent → delivery event received); a drop or no event
within `--e2e-timeout` is an E2E failure.
"""
from __future__ import annotations

import time
from typing import Any

import gevent
import httpx
from locust import User, constant, events, task

from . import common
from .events_stream import EventStream


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    g = parser.add_argument_group("pushsim sender under test")
    g.add_argument("--sut-url", env_var="PUSHSIM_SUT_URL", default="",
                   help="the sender's trigger endpoint, e.g. http://127.0.0.1:8000/notify")
    g.add_argument("--sut-method", env_var="PUSHSIM_SUT_METHOD", default="POST")
    g.add_argument("--sut-body", env_var="PUSHSIM_SUT_BODY", default='{"token": "{token}"}',
                   help="request body template; {token} and {platform} are substituted")
    g.add_argument("--sut-content-type", env_var="PUSHSIM_SUT_CONTENT_TYPE", default="application/json")
    g.add_argument("--sut-platform", env_var="PUSHSIM_SUT_PLATFORM", choices=["ios", "android"], default="ios")
    g.add_argument("--e2e-timeout", env_var="PUSHSIM_E2E_TIMEOUT", type=float, default=10.0,
                   help="seconds to wait for the delivery event before counting a failure")


def render(template: str, token: str, platform: str) -> str:
    # Plain replacement, not str.format: JSON templates are full of braces.
    return template.replace("{token}", token).replace("{platform}", platform)


class E2EFailure(Exception):
    pass


_stream: EventStream | None = None


def _event_stream(environment: Any) -> EventStream:
    global _stream
    if _stream is None:
        _stream = EventStream(common.endpoints(environment)["admin"]["url"].rstrip("/") + "/events")
    return _stream


class SenderUser(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        o = common.options(self.environment)
        if not o.sut_url:
            raise RuntimeError("SenderUser needs --sut-url (the sender's trigger endpoint)")
        self._stream = _event_stream(self.environment)
        if not self._stream.connected.wait(10):
            raise RuntimeError("could not connect to pushsim's /events stream")
        self._pool = common.token_pool(self.environment, o.sut_platform)
        self._http = httpx.Client(timeout=o.request_timeout)

    def on_stop(self) -> None:
        self._http.close()

    def _free_token(self) -> str:
        # A token already awaited by another user would make the two deliveries indistinguishable.
        for _ in range(len(self._pool.tokens)):
            token = self._pool.next()
            if not self._stream.waiters.busy(token):
                return token
        raise RuntimeError("more concurrent users than tokens in this process's range")

    @task
    def trigger_and_wait(self) -> None:
        o = common.options(self.environment)
        platform = o.sut_platform
        token = self._free_token()
        waiter = self._stream.waiters.add(token)
        started = time.perf_counter()
        common.sent_by_platform[platform] += 1
        try:
            resp = self._http.request(o.sut_method, o.sut_url, content=render(o.sut_body, token, platform).encode(),
                                      headers={"content-type": o.sut_content_type})
            failure = None if resp.status_code < 400 else E2EFailure(f"trigger HTTP {resp.status_code}")
        except httpx.HTTPError as exc:
            failure = E2EFailure(f"trigger failed: {exc!r}")
        common.report(self.environment, "TRIGGER", platform, started, 0, failure)
        if failure is not None:
            self._stream.waiters.discard(token, waiter)
            return
        try:
            event = waiter.get(timeout=o.e2e_timeout)
        except gevent.Timeout:
            self._stream.waiters.discard(token, waiter)
            common.report(self.environment, "E2E", platform, started, 0,
                          E2EFailure(f"no delivery within {o.e2e_timeout:g}s"))
            return
        if event.get("outcome") == "delivered":
            common.report(self.environment, "E2E", platform, started, 0, None)
        else:
            common.report(self.environment, "E2E", platform, started, 0,
                          E2EFailure(f"dropped: {event.get('reason') or 'no reason'}"))
