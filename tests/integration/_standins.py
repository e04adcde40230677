"""Test-only stand-ins for modules other helpers build (edge listener/TLS, fake APNs).

`install()` puts them in sys.modules only where the real module is missing, so the serve tests run
before those branches land and use the real code once they have. Never imported by product code.
"""
from __future__ import annotations

import asyncio
import importlib
import ssl
import sys
import types
import uuid
from typing import Any

import h2.config
import h2.connection
import h2.events

from device_sim.notification import Notification
from pushsim.edge.types import ConnInfo, Reply


class _H2(asyncio.Protocol):
    def __init__(self, service: Any, conns: set[Any]) -> None:
        self.service, self.conns = service, conns
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.streams: dict[int, tuple[list[tuple[bytes, bytes]], bytearray]] = {}
        self.transport: Any = None
        self.closing = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sslobj = transport.get_extra_info("ssl_object")
        self.conn = ConnInfo(tls=sslobj is not None, alpn=sslobj.selected_alpn_protocol() if sslobj else None,
                             http2=True, peer_cert_der=sslobj.getpeercert(binary_form=True) if sslobj else None)
        self.conn.state = self.service.open(self.conn)
        self.conns.add(self)
        self.h2.initiate_connection()
        transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except Exception:
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = (list(ev.headers), bytearray())
            elif isinstance(ev, h2.events.DataReceived):
                self.streams[ev.stream_id][1].extend(ev.data)
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                headers, body = self.streams.pop(ev.stream_id)
                hd = dict(headers)
                reply = self.service.handle(self.conn, hd[b":method"], hd[b":path"], headers, bytes(body))
                self.h2.send_headers(ev.stream_id, [(b":status", str(reply.status).encode()), *reply.headers],
                                     end_stream=not reply.body)
                if reply.body:
                    self.h2.send_data(ev.stream_id, reply.body, end_stream=True)
        self.transport.write(self.h2.data_to_send())
        if self.closing and not self.streams:
            self.transport.close()

    def shutdown(self, debug: bytes) -> None:
        self.closing = True
        self.h2.close_connection(additional_data=debug, last_stream_id=self.h2.highest_inbound_stream_id)
        self.transport.write(self.h2.data_to_send())
        if not self.streams:
            self.transport.close()


async def start_listener(host: str, port: int, *, service: Any, ssl_context: ssl.SSLContext | None,
                         engine: str = "h2", http1: bool = False, conns: set[Any] | None = None) -> asyncio.Server:
    live: set[Any] = set() if conns is None else conns
    return await asyncio.get_running_loop().create_server(lambda: _H2(service, live), host, port, ssl=ssl_context)


def server_context(cert_file: str, key_file: str, alpn: list[str], client_ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(alpn)
    if client_ca_file:
        ctx.load_verify_locations(client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class KeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    def add(self, key_id: str, team_id: str, public_key: Any, environments: Any = None, topics: Any = None) -> None:
        self.keys[key_id] = (team_id, public_key)


class ApnsService:
    """Just enough APNs to exercise the server: token shape check, accept, journal, dispatch."""

    def __init__(self, bench: Any, keys: KeyStore) -> None:
        self.bench, self.keys = bench, keys

    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return None

    def closing_reason(self) -> bytes:
        return b'{"reason":"Shutdown"}'

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
               body: bytes) -> Reply:
        h = dict(headers)
        apns_id = (h.get(b"apns-id") or str(uuid.uuid4()).upper().encode()).decode()
        token = path.decode().rpartition("/")[2]
        bench = self.bench
        install = bench.fleet.resolve_apns(token)
        if install is None:
            bench.ledger.reject("BadDeviceToken")
            bench.journal.add(bench.now(), "apns", "POST", path.decode(), token, 400, "BadDeviceToken", apns_id)
            return Reply(400, [(b"apns-id", apns_id.encode())], b'{"reason":"BadDeviceToken"}')
        note = Notification("apns", token, install, apns_id, bench.now(), "alert", 10, body)
        bench.dispatcher.submit(note)
        bench.journal.add(bench.now(), "apns", "POST", path.decode(), token, 200, None, apns_id, note)
        return Reply(200, [(b"apns-id", apns_id.encode())])


def _missing(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return True
    return False


def install() -> list[str]:
    """Register stand-ins for whichever real modules are absent; return the names stood in for."""
    me = sys.modules[__name__]
    plan = {
        "pushsim.edge.listener": {"start_listener": start_listener},
        "pushsim.edge.tls": {"server_context": server_context},
        "fake_apns.auth": {"KeyStore": KeyStore},
        "pushsim.services.apns": {"ApnsService": ApnsService},
    }
    used = []
    for name, attrs in plan.items():
        if hasattr(sys.modules.get(name), "__standin__"):   # installed by an earlier test module
            used.append(name)
            continue
        if not _missing(name):
            continue
        parent, _, leaf = name.rpartition(".")
        if _missing(parent):
            sys.modules[parent] = types.ModuleType(parent)
            sys.modules[parent].__path__ = []  # type: ignore[attr-defined]
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mod.__standin__ = me  # type: ignore[attr-defined]
        sys.modules[name] = mod
        setattr(sys.modules[parent], leaf, mod)
        used.append(name)
    return used
