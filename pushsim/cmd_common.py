"""Shared bits of the client-side subcommands (push, stats, run): finding a running server, env-backed flags."""
from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .cli import UsageError


def env_flag(parser: argparse.ArgumentParser, flag: str, env: str, help: str, **kw: Any) -> None:
    """A flag whose default comes from an environment variable (the flag wins)."""
    default = kw.pop("default", None)
    value: Any = os.environ.get(env, default)
    if kw.get("action") == "store_true":
        value = str(value or "").strip().lower() in ("1", "true", "yes", "on")
    parser.add_argument(flag, default=value, help=f"{help} [env {env}]", **kw)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    env_flag(parser, "--endpoints", "PUSHSIM_ENDPOINTS", "endpoints.json of a running server")
    env_flag(parser, "--state-dir", "PUSHSIM_STATE_DIR", "state dir of a running server (its endpoints.json)",
             default=".pushsim")
    env_flag(parser, "--admin-url", "PUSHSIM_ADMIN_URL", "control API URL of a running server")


def load_endpoints(args: argparse.Namespace, need: str | None = None) -> dict[str, Any]:
    """endpoints.json from --endpoints, else --admin-url's /endpoints, else STATE_DIR/endpoints.json."""
    if args.endpoints:
        return _read(Path(args.endpoints), "--endpoints")
    if args.admin_url:
        url = args.admin_url.rstrip("/")
        try:
            with urllib.request.urlopen(url + "/endpoints", timeout=10) as r:
                ep = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UsageError(f"cannot reach the control API at {url}: {getattr(e, 'reason', e)}") from None
        ep.setdefault("admin", {"url": url})
        return ep
    path = Path(args.state_dir) / "endpoints.json"
    ep = _read(path, "--state-dir", hint="is `pushsim serve` running with this --state-dir?")
    if need and need not in ep:
        raise UsageError(f"{path} has no {need} endpoint")
    return ep


def _read(path: Path, flag: str, hint: str = "") -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} not found ({flag}){'; ' + hint if hint else ''}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path} ({flag}): {e}") from None
    if not isinstance(data, dict) or "admin" not in data:
        raise UsageError(f"{path} is not a pushsim endpoints.json")
    return data


def admin_get(ep: dict[str, Any], path: str) -> Any:
    url = ep["admin"]["url"].rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise UsageError(f"cannot reach the control API at {url}: {getattr(e, 'reason', e)}") from None
