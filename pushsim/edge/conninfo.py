"""Helpers shared by every engine: ConnInfo from a transport, a hard TCP reset, the 500 reply."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from .types import ConnInfo, Reply

log = logging.getLogger(__name__)

INTERNAL_ERROR_BODY = b'{"reason":"InternalServerError"}'
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
