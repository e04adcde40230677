"""Where the instances of a partitioned deployment listen: one `Instance` per partition, in order.

The spec of one instance (what `pushsim proxy-config --instances` takes, comma-separated):
- `HOST` — an instance on the default ports (each machine runs one `pushsim serve` with defaults);
- `HOST:APNS_H2C/FCM_H2C/ADMIN` — explicit cleartext ports (several instances on one machine);
- `@PATH` or `http://HOST:PORT` — read from the instance's endpoints.json, or from its control API's
  `/endpoints`; the CLI does that I/O and hands the document to `from_endpoints`.
HAProxy talks to the cleartext (h2c) ports only: TLS ends at the proxy.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pushsim.config import Config

_DEFAULTS = Config()
DEFAULT_APNS_H2C = _DEFAULTS.apns_h2c_port
DEFAULT_FCM_H2C = _DEFAULTS.fcm_h2c_port
DEFAULT_ADMIN = _DEFAULTS.admin_port
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


class InstanceSpecError(ValueError):
    """An instance spec that names no usable host and ports (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Instance:
    host: str
    apns_h2c: int
    fcm_h2c: int
    admin: int

    def address(self, port: int) -> str:
        """`host:port` as HAProxy and Prometheus write it (IPv6 literals in brackets)."""
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"


def parse_spec(spec: str) -> Instance:
    """`HOST` or `HOST:APNS_H2C/FCM_H2C/ADMIN` (the `@PATH` and URL forms are resolved by the caller)."""
    text = spec.strip()
    if not text:
        raise InstanceSpecError("empty instance spec")
    if text.startswith("["):                       # [v6]:a/f/m or [v6]
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InstanceSpecError(f"{spec!r}: expected [IPV6]:APNS_H2C/FCM_H2C/ADMIN")
        ports = rest[1:] if rest else ""
    elif text.count(":") > 1:                      # a bare IPv6 literal
        host, ports = text, ""
    else:
        host, _, ports = text.partition(":")
    host = check_host(host, spec)
    if not ports:
        return Instance(host, DEFAULT_APNS_H2C, DEFAULT_FCM_H2C, DEFAULT_ADMIN)
    parts = ports.split("/")
    if len(parts) != 3:
        raise InstanceSpecError(f"{spec!r}: ports are APNS_H2C/FCM_H2C/ADMIN (three, '/'-separated), "
                                f"got {ports!r}")
    apns, fcm, admin = (_port(p, spec) for p in parts)
    return Instance(host, apns, fcm, admin)


def from_endpoints(ep: Any, spec: str, host: str | None = None) -> Instance:
    """The instance an endpoints.json document describes; `host` (where the document was fetched
    from) wins over the host in its URLs, which may be a wildcard bind address."""
    try:
        urls = [ep["apns"]["h2c_url"], ep["fcm"]["h2c_url"], ep["admin"]["url"]]
    except (KeyError, TypeError):
        raise InstanceSpecError(f"{spec!r}: not an endpoints.json with apns.h2c_url, fcm.h2c_url and "
                                "admin.url (is the FCM service built in?)") from None
    parsed = []
    for url in urls:
        try:
            u = urlsplit(str(url))
            port = u.port
        except ValueError:
            port = None
            u = None
        if u is None or port is None or not u.hostname:
            raise InstanceSpecError(f"{spec!r}: {url!r} names no host and port")
        parsed.append((u.hostname, port))
    found = host or parsed[0][0]
    if found in ("0.0.0.0", "::"):               # bound on every address: loopback reaches it here
        found = "127.0.0.1" if found == "0.0.0.0" else "::1"
    return Instance(check_host(found, spec), parsed[0][1], parsed[1][1], parsed[2][1])


def check_host(host: str, spec: str) -> str:
    """`host` normalised (an IP address, or a lower-case DNS name), or InstanceSpecError naming `spec`."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise InstanceSpecError(f"{spec!r}: {host!r} is not a host name or IP address")
    return host.lower()


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InstanceSpecError(f"{spec!r}: {text!r} is not a port (1..65535)")
    return int(text)
