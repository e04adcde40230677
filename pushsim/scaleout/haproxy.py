"""The HAProxy configuration in front of N partitioned pushsim instances, as text (sans-IO).

Routing (docs/scale-out.md has the why of each line):
- APNs `POST /3/device/<token>`: the token's first 4 hex characters name its partition
  (`device_sim.tokens.apns_partition_prefix`), looked up in `apns.map` → that partition's backend.
- FCM `…/messages:send`: the request body is buffered and `message.token` (or `message.fid`) read
  with `json_query`;
  the first 2 characters of its instance-id part name the partition (`fcm.map`). The per-token FCM
  paths (`/iid/info/<token>`, `…/registrations/<token>/topicSubscriptions`) route on the path.
- Everything else — topic and condition sends, OAuth `/token`, IID batchAdd/batchRemove, a token
  with no readable prefix — goes to any live instance, round robin: each instance answers them as
  well as any other (shared credentials; peers hand topic messages and subscriptions on), and an
  unknown token gets the answer the real service gives a token it does not know.
TLS ends at HAProxy (one PEM: pushsim's server certificate and key); instances are reached over
their cleartext h2 ports (`proto h2`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from device_sim.tokens import MAX_PARTITIONS, apns_partition_prefix, fcm_partition_prefix
from fake_fcm.errors import BY_CODE as FCM_ERRORS

from .instances import Instance

APNS_MAP = "apns.map"
FCM_MAP = "fcm.map"
TLS_PEM = "tls.pem"
CONFIG = "haproxy.cfg"
HTTP_REUSE = ("never", "safe", "aggressive", "always")
FD_BUDGET = 16_000                 # descriptors the default maxconn fits in (under a common 20k `ulimit -n`)
FD_OVERHEAD = 100                  # listeners, the stats socket, logs
FD_OVERHEAD_PER_INSTANCE = 4       # health checks in flight: 4 server lines per instance


def fds_per_connection(partitions: int, http_reuse: str) -> int:
    """Descriptors one sender connection can hold: its own, plus (http-reuse never) one private
    connection to every instance it reaches, or about one shared instance connection otherwise."""
    return 1 + (partitions if http_reuse == "never" else 1)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """What the proxy listens on and how long it waits. Ports default to pushsim's own, so a sender
    configured for one instance only changes the host."""
    bind: str = "127.0.0.1"
    apns_port: int = 2197          # TLS, h2 only (ALPN h2, or none: aioapns sends none)
    apns_h2c_port: int = 2198      # cleartext h2, prior knowledge
    fcm_port: int = 4433           # TLS, ALPN h2 or http/1.1
    fcm_h2c_port: int = 4480       # cleartext HTTP/1.1, or h2 detected by its preface
    stats_port: int = 8404         # HAProxy's own /metrics (Prometheus) and /stats page
    maxconn: int | None = None     # client connections at once, all frontends; None: what fits FD_BUDGET
    max_streams: int = 1000        # SETTINGS_MAX_CONCURRENT_STREAMS offered to each sender connection
    client_timeout: int = 3900     # seconds a sender connection may idle (pushsim's --idle-timeout)
    request_timeout: int = 10      # seconds for a request's headers and, for FCM, its buffered body
    server_timeout: int = 60       # seconds an instance may take to answer (fault rules can delay)
    connect_timeout: int = 5
    bufsize: int = 32768           # FCM: `message.token` must lie in the first bufsize bytes of the body
    # never: each sender connection gets its own connections to the instances, so pushsim's
    # per-connection APNs rules (provider-token binding, the 20-minute refresh rule) see one sender,
    # not a mix (docs/scale-out.md). safe/always share them: less CPU per request, one sender only.
    http_reuse: str = "never"


def check_partitions(instances: Sequence[Instance], partitions: int) -> None:
    """Instance K serves partition K: exactly one instance per partition. One partition is one
    unpartitioned instance (`serve` without `--partition`): its tokens carry no prefix, every request
    misses the maps and goes to the round-robin backend of that one instance."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"--partitions must be in 1..{MAX_PARTITIONS}, got {partitions}")
    if len(instances) != partitions:
        raise ValueError(f"--partitions {partitions} needs {partitions} instances (instance K serves "
                         f"partition K), got {len(instances)}")
    seen: dict[tuple[str, int], int] = {}
    for k, inst in enumerate(instances):
        for port in (inst.apns_h2c, inst.fcm_h2c, inst.admin):
            other = seen.setdefault((inst.host, port), k)
            if other != k:
                raise ValueError(f"instances {other} and {k} both use {inst.address(port)}")


def map_files(partitions: int) -> dict[str, str]:
    """Prefix → backend, one line per partition: what HAProxy's `map_str` reads."""
    apns = "".join(f"{apns_partition_prefix(k)} apns_p{k}\n" for k in range(partitions))
    fcm = "".join(f"{fcm_partition_prefix(k)} fcm_p{k}\n" for k in range(partitions))
    head = "# generated by `pushsim proxy-config`: token prefix -> backend of its partition\n"
    return {APNS_MAP: head + apns, FCM_MAP: head + fcm}


def haproxy_config(instances: Sequence[Instance], files_dir: str,
                   settings: ProxySettings = ProxySettings()) -> str:
    """haproxy.cfg. `files_dir` is where HAProxy will find the map files and the TLS PEM: an absolute
    path, because HAProxy 2.6 opens map files relative to its working directory, not the config's."""
    if settings.http_reuse not in HTTP_REUSE:
        raise ValueError(f"http_reuse must be one of {', '.join(HTTP_REUSE)}, got {settings.http_reuse!r}")
    if not files_dir.startswith("/"):
        raise ValueError(f"files_dir must be an absolute path, got {files_dir!r}")
    if any(c.isspace() or c in "#,()'\\\"" for c in files_dir):
        raise ValueError(f"files_dir must not hold spaces, quotes, commas, parentheses or '#': {files_dir!r}")
    check_partitions(instances, len(instances))
    s = settings
    per_conn = fds_per_connection(len(instances), s.http_reuse)
    maxconn = s.maxconn if s.maxconn is not None else max(100, FD_BUDGET // per_conn)
    d = files_dir.rstrip("/") or ""
    out = [
        "# generated by `pushsim proxy-config` (docs/scale-out.md); regenerate rather than edit",
        f"# {len(instances)} partitions; instance K serves the installs i with i % {len(instances)} == K",
        "global",
        f"    maxconn {maxconn}",
        # explicit, so HAProxy refuses to start rather than run out of descriptors under load
        f"    ulimit-n {maxconn * per_conn + FD_OVERHEAD_PER_INSTANCE * len(instances) + FD_OVERHEAD}",
        f"    tune.bufsize {s.bufsize}",
        f"    tune.h2.max-concurrent-streams {s.max_streams}",
        "    log stderr format raw local0 warning",
        "",
        "defaults",
        "    mode http",
        "    log global",
        f"    timeout connect {s.connect_timeout}s",
        f"    timeout client {s.client_timeout}s",
        f"    timeout http-request {s.request_timeout}s",
        f"    timeout server {s.server_timeout}s",
        # one more connect after a refused one (1 s later), not HAProxy's 3: an instance that is down
        # costs a sender ~1 s per request until its health check fails (~4 s), then 503 at once
        "    retries 1",
        f"    http-reuse {s.http_reuse}",
        "",
        "frontend apns",
        f"    bind {_bind(s.bind, s.apns_port)} ssl crt {d}/{TLS_PEM} alpn h2 proto h2",
        *_apns_rules(d),
        "",
        "frontend apns-h2c",
        f"    bind {_bind(s.bind, s.apns_h2c_port)} proto h2",
        *_apns_rules(d),
        "",
        "frontend fcm",
        f"    bind {_bind(s.bind, s.fcm_port)} ssl crt {d}/{TLS_PEM} alpn h2,http/1.1",
        *_fcm_rules(d, "https"),
        "",
        "frontend fcm-h2c",
        f"    bind {_bind(s.bind, s.fcm_h2c_port)}",
        *_fcm_rules(d, "http"),
        "",
        "frontend stats",
        f"    bind {_bind(s.bind, s.stats_port)}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
    ]
    for service, port_of in (("apns", lambda i: i.apns_h2c), ("fcm", lambda i: i.fcm_h2c)):
        for k, inst in enumerate(instances):
            out += [f"backend {service}_p{k}", _unavailable(service), _server(k, inst, port_of(inst)), ""]
        out += [f"backend {service}_any", "    balance roundrobin", _unavailable(service),
                *(_server(k, inst, port_of(inst)) for k, inst in enumerate(instances)), ""]
    return "\n".join(out)


def _apns_rules(d: str) -> list[str]:
    # /3/device/<token>: field 4 of the path split on '/'; APNs tokens are hex in either case
    return ["    # the token's first 4 hex characters are its partition: apns.map names that partition's backend",
            f"    use_backend %[path,field(4,/),bytes(0,4),lower,map_str({d}/{APNS_MAP},apns_any)] "
            "if { path_beg /3/device/ }",
            "    default_backend apns_any"]


def _fcm_rules(d: str, scheme: str) -> list[str]:
    owner = "txn.pushsim_owner"
    fcm_map = f"{d}/{FCM_MAP}"
    return [
        "    # the token is in the JSON body: wait for the body (bounded by timeout http-request and bufsize)",
        "    option http-buffer-request",
        # An HTTP/1.1 request reaches an h2 backend with `:scheme https` and no `:authority` unless
        # its URI is made absolute; the OAuth grant checks its JWT `aud` against the URL reached.
        "    # HTTP/1.1: give the instance the :scheme and :authority the sender used (OAuth checks the JWT aud)",
        f"    http-request set-uri {scheme}://%[req.hdr(host)]%[pathq] if !{{ req.ver 2.0 }} "
        "{ req.hdr(host) -m found }",
        "    # message.token (or fid) -> first 2 characters -> fcm.map; per-token paths likewise; else any",
        f"    http-request set-var({owner}) req.body,json_query('$.message.token'),bytes(0,2),"
        f"map_str({fcm_map}) if METH_POST {{ path_end /messages:send }}",
        # or `fid`, the token's instance-id part (what newer firebase-admin sends; Message.token is deprecated)
        f"    http-request set-var({owner}) req.body,json_query('$.message.fid'),bytes(0,2),"
        f"map_str({fcm_map}) if METH_POST {{ path_end /messages:send }} !{{ var({owner}) -m found }}",
        f"    http-request set-var({owner}) path,field(4,/),bytes(0,2),map_str({fcm_map}) "
        "if { path_beg /iid/info/ }",
        f"    http-request set-var({owner}) path,field(5,/),bytes(0,2),map_str({fcm_map}) "
        "if { path_reg ^/v1/projects/[^/]+/registrations/[^/]+/topicSubscriptions }",
        f"    use_backend %[var({owner})] if {{ var({owner}) -m found }}",
        "    default_backend fcm_any",
    ]


def _unavailable(service: str) -> str:
    # An instance that is down: the 503 the real service sends when it is unavailable, with its body
    # (APNs `ServiceUnavailable`, FCM's google.rpc.Status `UNAVAILABLE`), not HAProxy's HTML page.
    body = b'{"reason":"ServiceUnavailable"}' if service == "apns" else FCM_ERRORS["UNAVAILABLE"]().body
    return f"    http-error status 503 content-type application/json string '{body.decode()}'"


def _server(k: int, inst: Instance, port: int) -> str:
    # `check` on the admin port: a dead instance leaves the round robin within seconds
    return (f"    server p{k} {inst.address(port)} proto h2 check port {inst.admin} inter 2s "
            "fall 2 rise 1")


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
