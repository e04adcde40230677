"""Several running servers for one command (`stats`, `report`, `journal`): `--admin URL` repeated
and/or comma-separated, each instance asked in parallel; the merging is pushsim/multi_instance.py.

An instance that does not answer is a usage error naming it (exit 2), unless `--partial`: then the
others are merged and stderr says which did not answer (docs/multi-instance.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from pushsim.multi_instance import instance_names

from .options import TRUE, UsageError, env_name, help_text

T = TypeVar("T")
MAX_PARALLEL = 16           # instances asked at once (more are queued)
ERROR_BODY_LIMIT = 4096     # bytes of an error answer shown


class _Urls(argparse.Action):
    """`--admin A --admin B,C` → ["A", "B", "C"]."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        got = list(getattr(ns, self.dest, None) or [])
        got.extend(split_urls(str(values)))
        setattr(ns, self.dest, got)


def split_urls(text: str | None) -> list[str]:
    return [u.strip() for u in (text or "").split(",") if u.strip()]


def add_admin_flags(parser: argparse.ArgumentParser, command: str, help: str) -> None:
    """`--admin URL` (repeatable, comma lists; its variable PUSHSIM_<COMMAND>_ADMIN) and `--partial`."""
    env = env_name(command, "--admin")
    parser.add_argument("--admin", action=_Urls, dest="admin", metavar="URL", default=None, help=help_text(
        help + "; repeat it or give a comma list to merge several instances (docs/multi-instance.md)", env, None))
    parser.set_defaults(admin_env=split_urls(os.environ.get(env)))
    partial_env = env_name(command, "--partial")
    parser.add_argument("--partial", action="store_true",
                        default=os.environ.get(partial_env, "").strip().lower() in TRUE,
                        help=help_text("with several --admin URLs: merge the instances that answered, naming "
                                       "the others on stderr, instead of failing", partial_env, None))


def admin_urls(args: argparse.Namespace) -> list[str]:
    """The instances asked for: the `--admin` flags; else, unless --endpoints was given, `--admin`'s
    variable, else a comma list in `--admin-url` (PUSHSIM_ADMIN_URL). Empty: find the one server as
    before (options.load_endpoints)."""
    if getattr(args, "admin", None):
        return list(args.admin)
    if getattr(args, "endpoints", None):
        return []
    return list(getattr(args, "admin_env", None) or []) or split_urls(getattr(args, "admin_url", None))


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:      # the control API's own message (400 + reason)
        body = e.read(ERROR_BODY_LIMIT).decode("utf-8", "replace").strip()
        raise OSError(f"HTTP {e.code}{': ' + body if body else ''}") from None
    except (urllib.error.URLError, OSError) as e:
        raise OSError(str(getattr(e, "reason", None) or e)) from None


def ask_all(command: str, urls: list[str], path: str | list[str], read: Callable[[bytes], Any], *,
            partial: bool, timeout: float = 10.0) -> list[tuple[str, Any]]:
    """GET `path` (or each instance its own, a list) on every instance at once → [(instance name,
    read(body))] in the order given.

    A failure (no answer, an error status, a body `read` refuses) is a UsageError naming the
    instance; with `partial`, a warning on stderr, and the rest is returned (not when none answered)."""
    names = instance_names(urls)
    targets = [u.rstrip("/") + p for u, p in zip(urls, path if isinstance(path, list) else [path] * len(urls))]
    results: list[tuple[str, Any]] = []
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(urls))) as pool:
        futures = [pool.submit(lambda t: read(_get(t, timeout)), t) for t in targets]
        for name, target, fut in zip(names, targets, futures):
            try:
                results.append((name, fut.result()))
            except OSError as e:
                failed.append(f"instance {name} ({target}) did not answer: {e}")
            except ValueError as e:
                failed.append(f"instance {name} ({target}) answered, but not in JSON: {e}")
    if failed and not (partial and results):
        hint = "" if partial else "; --partial merges the instances that answered"
        raise UsageError("; ".join(failed) + hint)
    for message in failed:
        print(f"pushsim {command}: warning: {message}", file=sys.stderr)
    if failed:
        print(f"pushsim {command}: warning: merged {len(results)} of {len(urls)} instances "
              f"({', '.join(n for n, _ in results)})", file=sys.stderr)
    return results


def merged(merge: Callable[..., T], *parts: Any) -> T:
    """`merge(*parts)`, where an answer of the wrong shape (not a pushsim's) is a usage error, not a traceback."""
    try:
        return merge(*parts)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"the instances' answers do not merge (is every URL a pushsim control API?): "
                         f"{type(e).__name__}: {e}") from None


def read_json(body: bytes) -> Any:
    return json.loads(body)


def read_lines(body: bytes) -> list[bytes]:
    return body.splitlines()


def read_jsonl(body: bytes) -> list[Any]:
    """A JSONL export's records; a line that is not JSON makes the instance's answer unusable."""
    import orjson
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]
