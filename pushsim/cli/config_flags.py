"""`serve`'s settings as flags: every `Config` field is a flag (`--apns-port`) and an environment
variable (`PUSHSIM_APNS_PORT`); a flag wins over the variable, the variable over the default."""
from __future__ import annotations

import argparse
import os
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from pushsim.config import Config

from .options import UsageError, help_text

HELP = {
    "host": "address every listener binds",
    "apns_port": "fake APNs, TLS (ALPN h2); 0 = any free port",
    "apns_h2c_port": "fake APNs, cleartext HTTP/2 (prior knowledge); 0 = any free port",
    "fcm_port": "fake FCM + OAuth2 token endpoint, TLS (h2 or http/1.1); 0 = any free port",
    "fcm_h2c_port": "fake FCM, cleartext HTTP/1.1 or h2c; 0 = any free port",
    "admin_port": "control API (JSON over HTTP); 0 = any free port",
    "state_dir": "credentials and endpoints.json live here, reused across runs",
    "devices": "fleet size: N (the usual platform mix) or ios=N,android=M",
    "seed": "seed for tokens and every random choice",
    "clock": "device-side OS time: real | scaled:FACTOR",
    "environment": "APNs environment this server plays: sandbox | production",
    "bundle_id": "the simulated app's bundle id / package name (APNs topic)",
    "project_id": "FCM project id",
    "project_number": "FCM project number (sender id)",
    "engine": "HTTP/2 engine: fast | h2",
    "max_streams": "APNs SETTINGS_MAX_CONCURRENT_STREAMS after the first valid token",
    "throttle_on_reject": "APNs: drop MAX_CONCURRENT_STREAMS to 1 after a rejection",
    "mismatch_mode": "APNs push-type/priority mismatches: reject | drop",
    "access_token_ttl": "FCM OAuth access-token lifetime, seconds",
    "fcm_project_quota": "FCM messages per project per sliding minute",
    "fcm_device_quota_minute": "FCM messages per device per sliding minute; 0 = no limit",
    "fcm_device_quota_hour": "FCM messages per device per sliding hour; 0 = no limit",
    "workers": "worker processes sharing the ports (N or auto = one per CPU); 1 = a single process",
    "partition": "own only partition K of a fleet split N ways (installs i with i %% N == K); "
                 "every instance gets the same --devices and --seed",
    "peers": "control-API base URLs of all N instances in partition order (own entry ignored), "
             "for topic messages and subscriptions of other partitions",
    "max_connections": "live connections per listener; one more is closed at once",
    "idle_timeout": "seconds a connection may stay with no frames read and nothing owed, then GOAWAY",
    "handshake_timeout": "seconds for the TLS handshake, and for the client's preface + first SETTINGS",
}
# Settings that live in Config.extra (read by the modules that own them), also flag + env var.
EXTRA = {"scenario": "scenario TOML: the fleet's device profile and OS rule settings (device_sim)",
         "experiment": "TOML with an [experiment] table: arms, holdout and its mode (docs/experiments.md)"}
CHOICES = {"environment": ("sandbox", "production"), "engine": ("fast", "h2"), "mismatch_mode": ("reject", "drop")}
PORT_FIELDS = ("apns_port", "apns_h2c_port", "fcm_port", "fcm_h2c_port", "admin_port")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def add_config_arguments(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """Add `--<field>` for each Config field (all by default); values default to 'unset'."""
    types = _types()
    for name in names or Config.field_names():
        kind = types[name]
        extra: dict[str, Any] = {}
        if kind is bool:
            extra["action"] = argparse.BooleanOptionalAction
        else:
            extra["metavar"] = "|".join(CHOICES[name]) if name in CHOICES else \
                "N|auto" if name == "workers" else "K/N" if name == "partition" else \
                "URL,..." if name == "peers" else name.split("_")[-1].upper()
        default = getattr(Config(), name)
        parser.add_argument(_flag(name), dest=name, default=None,
                            help=help_text(HELP.get(name, name), Config.env_name(name), default), **extra)


def add_extra_arguments(parser: argparse.ArgumentParser) -> None:
    for name, text in EXTRA.items():
        parser.add_argument(_flag(name), dest=name, default=None, metavar="FILE",
                            help=help_text(text, Config.env_name(name), None))


def _convert(name: str, raw: Any, kind: Any, source: str) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise UsageError(f"{source} must be true or false, got {raw!r}")
    if kind is int:
        if name == "workers" and str(raw).strip().lower() == "auto":
            return os.cpu_count() or 1
        try:
            return int(str(raw).strip())
        except ValueError:
            also = " or auto" if name == "workers" else ""
            raise UsageError(f"{source} must be an integer{also}, got {raw!r}") from None
    if kind is float:
        try:
            return float(str(raw).strip())
        except ValueError:
            raise UsageError(f"{source} must be a number, got {raw!r}") from None
    if kind is Path:
        return Path(str(raw)).expanduser()
    return str(raw).strip()


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Flag, else PUSHSIM_* variable, else the default; then validate the whole config."""
    env = os.environ if environ is None else environ
    types = _types()
    values: dict[str, Any] = {}
    for name in Config.field_names():
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            values[name] = _convert(name, flag_value, types[name], _flag(name))
        elif Config.env_name(name) in env:
            values[name] = _convert(name, env[Config.env_name(name)], types[name], Config.env_name(name))
    for name in EXTRA:
        raw = getattr(args, name, None) or env.get(Config.env_name(name))
        if raw:
            values.setdefault("extra", {})[name] = str(raw)
    config = Config(**values)
    validate(config)
    return config


def validate(config: Config) -> None:
    from device_sim.fleet import parse_device_mix

    def where(name: str) -> str:
        return f"{_flag(name)} / {Config.env_name(name)}"

    for name in PORT_FIELDS:
        if not 0 <= getattr(config, name) <= 65535:
            raise UsageError(f"{where(name)} must be a port number 0..65535 (0 = any free port)")
    try:
        mix = parse_device_mix(config.devices)
    except ValueError:
        raise UsageError(f"{where('devices')}: bad value {config.devices!r}; use N or ios=N,android=M") from None
    if sum(mix.values()) > 50_000_000:
        raise UsageError(f"{where('devices')}: at most 50000000 devices")
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise UsageError(f"{where(name)} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")
    clock = config.clock
    if clock != "real":
        kind, _, factor = clock.partition(":")
        try:
            ok = kind == "scaled" and float(factor) > 0
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(f"{where('clock')} must be real or scaled:FACTOR (FACTOR > 0), got {clock!r}")
    for name in ("idle_timeout", "handshake_timeout"):
        if not 0 < getattr(config, name) < 1e9:       # NaN fails too
            raise UsageError(f"{where(name)} must be a positive number of seconds")
    for name in ("max_streams", "workers", "access_token_ttl", "fcm_project_quota", "max_connections"):
        if getattr(config, name) < 1:
            raise UsageError(f"{where(name)} must be at least 1")
    for name in ("fcm_device_quota_minute", "fcm_device_quota_hour"):
        if getattr(config, name) < 0:
            raise UsageError(f"{where(name)} must be at least 0 (0 = no per-device limit)")
    scenario = config.extra.get("scenario")
    if scenario is not None and not Path(scenario).is_file():
        raise UsageError(f"{where('scenario')}: no such file {scenario!r}")
    experiment = config.extra.get("experiment")
    if experiment is not None:
        from device_sim.cohorts import Experiment
        try:
            Experiment.from_file(experiment)
        except OSError as e:
            raise UsageError(f"{where('experiment')}: cannot read {experiment!r}: {e.strerror or e}") from None
        except ValueError as e:
            raise UsageError(f"{where('experiment')}: {e}") from None
    _validate_partition(config, where)
    if not config.bundle_id or not config.project_id:
        raise UsageError("--bundle-id and --project-id must not be empty")


def _validate_partition(config: Config, where: Callable[[str], str]) -> None:
    peers = config.peer_urls()
    if not config.partition:
        if peers:
            raise UsageError(f"{where('peers')} needs {where('partition')} K/N")
        return
    try:
        k, n = config.partition_of() or (0, 1)
    except ValueError as e:
        raise UsageError(f"{where('partition')}: {e}") from None
    if config.workers > 1:
        # Worker ownership (i % workers) inside a partition (i % N) is not built: one process per partition.
        raise UsageError(f"{where('partition')} runs one process per partition: drop --workers "
                         f"(or start more partitions instead)")
    if "experiment" in config.extra:
        raise UsageError(f"{where('partition')} and --experiment do not mix yet: "
                         "the experiment's per-arm totals would count the whole fleet on every instance")
    if peers and len(peers) != n:
        raise UsageError(f"{where('peers')}: expected {n} URLs (one per partition, this one's included), "
                         f"got {len(peers)}")
    for url in peers:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"{where('peers')}: expected http(s)://HOST:PORT URLs, got {url!r}")
