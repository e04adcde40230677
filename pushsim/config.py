"""Settings for `pushsim serve`: every field is a flag and a PUSHSIM_* environment variable."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass(slots=True)
class Config:
    host: str = "127.0.0.1"
    apns_port: int = 2197          # TLS, ALPN h2 (or no ALPN). 0 = ephemeral
    apns_h2c_port: int = 2198      # cleartext h2 (prior knowledge)
    fcm_port: int = 4433           # TLS, ALPN h2 or http/1.1
    fcm_h2c_port: int = 4480       # cleartext: HTTP/1.1, or h2 detected by its preface
    admin_port: int = 2199         # next to APNs 2197/2198; 8089 is locust's web UI
    state_dir: Path = Path(".pushsim")
    devices: str = "1000"          # N (default mix) or ios=N,android=M
    seed: int = 0
    clock: str = "real"            # real | scaled:FACTOR
    environment: str = "sandbox"   # APNs environment this server plays: sandbox | production
    bundle_id: str = "com.example.app"
    project_id: str = "pushsim-project"
    project_number: str = "123456789012"
    engine: str = "fast"           # HTTP/2 engine: fast | h2
    max_streams: int = 1000        # APNs MAX_CONCURRENT_STREAMS after the first valid token
    throttle_on_reject: bool = False   # APNs: drop MAX_CONCURRENT_STREAMS to 1 after a rejection
    mismatch_mode: str = "reject"  # APNs background+priority-10 / push-type mismatches: reject | drop
    access_token_ttl: int = 3599   # FCM OAuth access-token lifetime, seconds
    fcm_project_quota: int = 600_000  # messages per sliding minute
    fcm_device_quota_minute: int = 240  # FCM messages per device per sliding minute; 0 = no per-device limit
    fcm_device_quota_hour: int = 5000   # FCM messages per device per sliding hour; 0 = no per-device limit
    workers: int = 1
    # Scale-out (docs/serve.md "Partitions and peers"): own partition K of N of the fleet; the peers'
    # control-API base URLs, in partition order, for topic messages and subscriptions.
    partition: str = ""            # K/N; "" = the whole fleet
    peers: str = ""                # URL,URL,... (one per partition; this instance's own entry is ignored)
    # Edge bounds against hostile clients (pushsim.edge.limits.EdgeLimits holds the rest).
    max_connections: int = 10_000  # per listener
    idle_timeout: float = 3900.0   # seconds with no frames and nothing owed → GOAWAY and close
    handshake_timeout: float = 10.0   # seconds for the TLS handshake, and for the client preface
    extra: dict[str, str] = field(default_factory=dict)

    def partition_of(self) -> tuple[int, int] | None:
        """(K, N) of `--partition K/N`, or None when this instance serves the whole fleet."""
        if not self.partition:
            return None
        from device_sim.fleet import parse_partition
        return parse_partition(self.partition)

    def peer_urls(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.peers.split(",") if u.strip()]

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    @staticmethod
    def env_name(name: str) -> str:
        return "PUSHSIM_" + name.upper()
