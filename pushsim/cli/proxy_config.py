"""`pushsim proxy-config`: the HAProxy and Prometheus configuration for N partitioned instances.

  pushsim proxy-config --partitions 3 --instances 10.0.0.1,10.0.0.2,10.0.0.3 --out proxy/

writes proxy/haproxy.cfg, proxy/apns.map, proxy/fcm.map, proxy/tls.pem (the state dir's server
certificate and key, signed by its test CA) and proxy/prometheus.yml. Instance K (K-th in the list)
must run `pushsim serve --partition K/N`. An instance is
  HOST                          default ports (2198 APNs h2c, 4480 FCM h2c, 2199 control API)
  HOST:APNS_H2C/FCM_H2C/ADMIN   explicit cleartext ports (several instances on one machine)
  @PATH                         the instance's endpoints.json
  http://HOST:PORT              the instance's control API (its /endpoints is read now)
Then: `haproxy -f proxy/haproxy.cfg` and `prometheus --config.file=proxy/prometheus.yml`
(docs/scale-out.md).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pushsim.credentials import server_pem_with_key, write_atomic
from pushsim.scaleout.haproxy import (CONFIG, HTTP_REUSE, TLS_PEM, ProxySettings, check_partitions, haproxy_config,
                                      map_files)
from pushsim.scaleout.instances import Instance, InstanceSpecError, check_host, from_endpoints, parse_spec
from pushsim.scaleout.prometheus import PROMETHEUS, prometheus_config

from .options import UsageError, option

_CMD = "proxy_config"
_DEFAULTS = ProxySettings()


def register(sub: Any) -> None:
    p = sub.add_parser("proxy-config", help="write the HAProxy + Prometheus config for N partitioned instances",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    option(p, _CMD, "--partitions", "number of partitions N (each instance runs serve --partition K/N)",
           type=int)
    option(p, _CMD, "--instances", "the N instances, comma-separated, in partition order (see above)")
    option(p, _CMD, "--out", "directory to write the files into (created)")
    option(p, _CMD, "--files-dir", "absolute path HAProxy will read the map files and tls.pem from, "
           "when the files are copied elsewhere (default: --out, made absolute)")
    option(p, _CMD, "--state-dir", "the deployment's state dir: its CA-signed server certificate goes "
           "into tls.pem", env="PUSHSIM_STATE_DIR", default=".pushsim")
    option(p, _CMD, "--tls-name", "extra host names / IPs for the proxy's certificate, comma-separated "
           "(a new one signed by the state dir's CA; without: the state dir's server certificate as is)")
    option(p, _CMD, "--bind", "address the proxy listens on (0.0.0.0 for senders on other machines)",
           default=_DEFAULTS.bind)
    for flag, field, what in (("--apns-port", "apns_port", "APNs TLS (h2)"),
                              ("--apns-h2c-port", "apns_h2c_port", "APNs cleartext h2"),
                              ("--fcm-port", "fcm_port", "FCM TLS (h2, http/1.1)"),
                              ("--fcm-h2c-port", "fcm_h2c_port", "FCM cleartext (HTTP/1.1, h2c)"),
                              ("--stats-port", "stats_port", "HAProxy's own /metrics and /stats")):
        option(p, _CMD, flag, f"proxy port: {what}", type=int, default=getattr(_DEFAULTS, field))
    option(p, _CMD, "--http-reuse", "HAProxy's connection sharing towards the instances: never keeps each "
           "sender's APNs connection rules intact; safe/always cost less CPU with a single sender",
           choices=HTTP_REUSE, default=_DEFAULTS.http_reuse)
    option(p, _CMD, "--maxconn", "client connections the proxy holds at once (default: what fits 16000 "
           "descriptors: 16000 / (N + 1) with --http-reuse never, 8000 otherwise)", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.partitions is None or not args.instances or not args.out:
        raise UsageError("--partitions, --instances and --out are required")
    instances = [resolve(spec) for spec in _split(args.instances)]
    settings = _settings(args)
    try:
        check_partitions(instances, args.partitions)
    except ValueError as e:
        raise UsageError(str(e)) from None
    state_dir = Path(args.state_dir)
    names = _split(args.tls_name or "")
    for name in names:
        try:
            check_host(name, name)
        except InstanceSpecError:
            raise UsageError(f"--tls-name: {name!r} is not a host name or IP address") from None
    try:
        pem = server_pem_with_key(state_dir, names)
    except FileNotFoundError as e:
        raise UsageError(f"{state_dir} has no credentials ({Path(e.filename).name} missing): run `pushsim "
                         "creds --state-dir DIR` once and give every instance a copy of DIR") from None
    except ValueError as e:
        raise UsageError(f"--tls-name: {e}") from None
    out = Path(args.out)
    try:
        config = haproxy_config(instances, args.files_dir or str(out.absolute()), settings)
    except ValueError as e:
        raise UsageError(f"--files-dir: {e}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {CONFIG: config, **map_files(args.partitions),
                 PROMETHEUS: prometheus_config(instances, _stats_target(settings))}
        for name, text in files.items():
            write_atomic(out / name, text.encode())
        write_atomic(out / TLS_PEM, pem, 0o600)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e}") from None
    for name in (*files, TLS_PEM):           # stdout: the files, one a line (scripts read them)
        print(out / name)
    print(f"next: haproxy -c -f {out / CONFIG} && haproxy -f {out / CONFIG}; "
          f"prometheus --config.file={out / PROMETHEUS} (docs/scale-out.md)", file=sys.stderr)
    return 0


def resolve(spec: str) -> Instance:
    """One instance spec → its ports; `@PATH` and URLs are read here (the parsing is sans-IO)."""
    try:
        if spec.startswith("@"):
            path = Path(spec[1:])
            try:
                ep = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise UsageError(f"--instances {spec}: cannot read {path}: {e}") from None
            return from_endpoints(ep, spec)
        if spec.startswith(("http://", "https://")):
            url = spec.rstrip("/")
            try:
                with urllib.request.urlopen(url + "/endpoints", timeout=10) as r:
                    ep = json.loads(r.read())
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise UsageError(f"--instances {spec}: cannot read {url}/endpoints: "
                                 f"{getattr(e, 'reason', e)}") from None
            return from_endpoints(ep, spec, host=urlsplit(url).hostname)
        return parse_spec(spec)
    except InstanceSpecError as e:
        raise UsageError(f"--instances: {e}") from None


def _split(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _settings(args: argparse.Namespace) -> ProxySettings:
    ports = {f: getattr(args, f) for f in ("apns_port", "apns_h2c_port", "fcm_port", "fcm_h2c_port", "stats_port")}
    for field, port in ports.items():
        if not 1 <= port <= 65535:
            raise UsageError(f"--{field.replace('_', '-')} must be in 1..65535, got {port}")
    if len(set(ports.values())) != len(ports):
        raise UsageError(f"the proxy's ports must differ: {ports}")
    try:
        ipaddress.ip_address(args.bind)
    except ValueError:
        raise UsageError(f"--bind must be an IP address, got {args.bind!r}") from None
    if args.maxconn is not None and args.maxconn < 1:
        raise UsageError(f"--maxconn must be at least 1, got {args.maxconn}")
    return ProxySettings(bind=args.bind, maxconn=args.maxconn, http_reuse=args.http_reuse, **ports)


def _stats_target(settings: ProxySettings) -> str:
    # Prometheus beside HAProxy reaches a wildcard bind on loopback
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.bind, settings.bind)
    return f"[{host}]:{settings.stats_port}" if ":" in host else f"{host}:{settings.stats_port}"
