"""Flags every subcommand shares the style of: each has an environment variable and shows its
default once, as `HELP [env PUSHSIM_..., default X]`; and finding a running server (push, stats).

Variables: a `serve` setting is `PUSHSIM_<SETTING>` (config_flags.py); the server lookup flags are
`PUSHSIM_ENDPOINTS`, `PUSHSIM_ADMIN_URL`, `PUSHSIM_STATE_DIR`; every other flag is
`PUSHSIM_<COMMAND>_<FLAG>`, the command not repeated when the flag starts with it (push --push-type:
`PUSHSIM_PUSH_TYPE`). A flag wins over its variable, the variable over the default.
"""
from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TRUE = ("1", "true", "yes", "on")


class UsageError(Exception):
    """A mistake of the user's: one line on stderr, exit code 2."""


def env_name(command: str, flag: str) -> str:
    words = flag.lstrip("-").upper().replace("-", "_")
    prefix = command.upper() + "_"
    return "PUSHSIM_" + (words if words.startswith(prefix) else prefix + words)


def help_text(text: str, env: str, default: Any) -> str:
    shown = "" if default is None or default is False or default == "" else f", default {default}"
    return f"{text} [env {env}{shown}]"


def option(parser: argparse.ArgumentParser, command: str, flag: str, help: str, *,
           env: str | None = None, **kw: Any) -> None:
    """`flag` on `command`'s parser, its default taken from its environment variable when set."""
    env = env or env_name(command, flag)
    default = kw.pop("default", None)
    value: Any = os.environ.get(env, default)
    if kw.get("action") == "store_true":
        value = str(value or "").strip().lower() in TRUE
    parser.add_argument(flag, default=value, help=help_text(help, env, default), **kw)


def add_server_flags(parser: argparse.ArgumentParser, command: str) -> None:
    option(parser, command, "--endpoints", "endpoints.json of a running server", env="PUSHSIM_ENDPOINTS")
    option(parser, command, "--state-dir", "state dir of a running server (its endpoints.json)",
           env="PUSHSIM_STATE_DIR", default=".pushsim")
    option(parser, command, "--admin-url", "control API URL of a running server", env="PUSHSIM_ADMIN_URL")

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
