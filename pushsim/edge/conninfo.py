"""Helpers shared by every engine: ConnInfo from a transport, a hard TCP reset, the 500 reply,
and the optional parts of the Service contract (body limit, too-large reply, idle GOAWAY, GOAWAY
notes)."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from .limits import EdgeLimits
from .types import ConnInfo, Headers, Reply, Service

log = logging.getLogger(__name__)

INTERNAL_ERROR_BODY = b'{"reason":"InternalServerError"}'
TOO_LARGE_BODY = b'{"reason":"PayloadTooLarge"}'
IDLE_BODY = b'{"reason":"IdleTimeout"}'
_LINGER_ZERO = struct.pack("ii", 1, 0)


def conn_info(transport: asyncio.BaseTransport, *, http2: bool) -> ConnInfo:
    """What a service may know about this connection (TLS, ALPN, client certificate, peer)."""
    peername = transport.get_extra_info("peername")
    peer = (peername[0], peername[1]) if peername else None   # IPv6 peernames carry 4 fields
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ConnInfo(tls=False, alpn=None, http2=http2, peer=peer)
    return ConnInfo(
        tls=True,
        alpn=ssl_object.selected_alpn_protocol(),
        http2=http2,
        peer_cert_der=ssl_object.getpeercert(binary_form=True),
        peer=peer,
    )


def internal_error_reply() -> Reply:
    """What an engine answers when `Service.handle` raises (a service bug, never the client's)."""
    return Reply(500, [(b"content-type", b"application/json")], INTERNAL_ERROR_BODY)


def reset_connection(transport: asyncio.BaseTransport) -> None:
    """Drop the connection with a TCP RST (fault "tcp_reset"), not a FIN.

    SO_LINGER with a zero timeout makes close() discard unsent data and send RST, which is what a
    crashed or firewalled server looks like to the client.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:   # already closed by the peer: nothing left to reset
            log.debug("SO_LINGER failed", exc_info=True)
    transport.abort()


def body_limit(service: Service, conn: ConnInfo, limits: EdgeLimits) -> int:
    """The largest request body this connection may send: the service's, else the edge default."""
    limit_of = getattr(service, "request_body_limit", None)
    limit = limit_of(conn) if limit_of is not None else None
    return limits.max_body if limit is None else min(limit, limits.max_body)


def too_large_reply(service: Service, conn: ConnInfo, method: bytes, path: bytes, headers: Headers,
                    prefix: bytes) -> Reply:
    """The service's answer to a body past its limit (`prefix`: what arrived, already too long)."""
    answer = getattr(service, "body_too_large", None)
    if answer is not None:
        try:
            return answer(conn, method, path, headers, prefix)
        except Exception:
            log.exception("body_too_large raised for %r %r", method, path)
            return internal_error_reply()
    return Reply(413, [(b"content-type", b"application/json")], TOO_LARGE_BODY)


def idle_goaway_debug(service: Service) -> bytes:
    """GOAWAY debug data when a connection idles out (APNs: {"reason":"IdleTimeout"})."""
    debug_of = getattr(service, "idle_reason", None)
    return debug_of() if debug_of is not None else IDLE_BODY


def tell_goaway(service: Service, conn: ConnInfo | None, last_stream_id: int, code: int, debug: bytes) -> None:
    """Tell the service (its optional `goaway_sent`) that we sent GOAWAY on this connection.
    Called for every GOAWAY an engine writes: rare, so the lookup costs nothing that matters."""
    hook = getattr(service, "goaway_sent", None)
    if hook is None or conn is None:
        return
    try:
        hook(conn, last_stream_id, int(code), debug)
    except Exception:       # a note for the report must never break the connection
        log.exception("goaway_sent raised")


def tell_stream_after_goaway(service: Service, conn: ConnInfo | None, stream_id: int) -> None:
    """Tell the service (its optional `stream_after_goaway`) that the peer opened a stream above
    our GOAWAY's last-stream-id, which the engine ignores (RFC 9113 §6.8)."""
    hook = getattr(service, "stream_after_goaway", None)
    if hook is None or conn is None:
        return
    try:
        hook(conn, stream_id)
    except Exception:
        log.exception("stream_after_goaway raised")
