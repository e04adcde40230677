"""Any edge `Service` with the fault rules in front of it.

The wrapped service knows nothing of faults: the wrapper consults the rules once per request and
either answers instead of the service, or lets it answer and changes the reply. It never calls the
service twice, and with no rule active it costs one attribute read.
"""
from __future__ import annotations

from pushsim.edge.conninfo import idle_goaway_debug, tell_goaway, tell_stream_after_goaway, too_large_reply
from pushsim.edge.types import ConnInfo, Headers, Reply, Service

from .hook import Faults


class FaultingService:
    def __init__(self, service: Service, name: str, faults: Faults) -> None:
        """`name` is the service as rules scope it ("apns" | "fcm")."""
        self.service, self.name, self.faults = service, name, faults

    def open(self, conn: ConnInfo) -> object:
        return self.service.open(conn)

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return self.service.initial_max_streams(conn)

    def closing_reason(self) -> bytes:
        return self.service.closing_reason()

    # The optional parts of the contract pass through (the engines' defaults when the service has none).
    def request_body_limit(self, conn: ConnInfo) -> int | None:
        limit_of = getattr(self.service, "request_body_limit", None)
        return limit_of(conn) if limit_of is not None else None

    def body_too_large(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                       prefix: bytes) -> Reply:
        return too_large_reply(self.service, conn, method, path, headers, prefix)

    def idle_reason(self) -> bytes:
        return idle_goaway_debug(self.service)

    def goaway_sent(self, conn: ConnInfo, last_stream_id: int, code: int, debug: bytes) -> None:
        tell_goaway(self.service, conn, last_stream_id, code, debug)

    def stream_after_goaway(self, conn: ConnInfo, stream_id: int) -> None:
        tell_stream_after_goaway(self.service, conn, stream_id)

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: Headers, body: bytes) -> Reply:
        faults = self.faults
        if faults.active:
            verdict = faults.consult(self.name, method, path, headers, body, conn)
            if verdict is not None:
                if isinstance(verdict, Reply):
                    return verdict
                reply = verdict(self.service.handle(conn, method, path, headers, body))
                if reply.goaway is not None:
                    faults.mark_goaway()
                return reply
        return self.service.handle(conn, method, path, headers, body)
