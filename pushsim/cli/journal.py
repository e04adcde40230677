"""`pushsim journal`: the journal of a running server, or of several merged: one page of
`GET /journal` as JSON (`--since` the previous page's `next_since` to read on), or the whole JSONL
export (`--format jsonl`) that `pushsim report FILE` and `pushsim replay` read.

With several `--admin` URLs each entry carries its `instance` (its `id` is that instance's), and
`next_since` is one cursor per instance (`NAME=ID,...`); the export is renumbered so ids, connections
and seqs are unique across instances (docs/multi-instance.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from pushsim.multi_instance import format_cursor, instance_names, merge_exports, merge_journal_pages, parse_cursor

from .instances import add_admin_flags, admin_urls, ask_all, merged, read_json, read_jsonl, read_lines
from .options import UsageError, add_server_flags, load_endpoints, option

MAX_LIMIT = 10_000     # the control API's own bound on a page


def register(sub: Any) -> None:
    p = sub.add_parser("journal", help="the journal (a page, or the JSONL export) of one or several servers",
                       description=__doc__)
    add_admin_flags(p, "journal", "control API URL of a running server")
    option(p, "journal", "--format", "json: one page of entries; jsonl: the whole export", default="json",
           choices=("json", "jsonl"))
    option(p, "journal", "--since", "read on from this cursor: a page's next_since (one instance: a number)")
    option(p, "journal", "--limit", "entries per page (json)", default=100, type=int)
    option(p, "journal", "--where", "GET /journal filters as a query string, e.g. 'service=apns&status=410' "
           "(token, service, status, reason, push_type, sender, connection)")
    option(p, "journal", "--output", "write to this file instead of stdout")
    add_server_flags(p, "journal")
    p.set_defaults(func=run)


def _query(args: argparse.Namespace, since: int | None) -> str:
    try:
        params = urllib.parse.parse_qsl(args.where or "", keep_blank_values=True, strict_parsing=bool(args.where))
    except ValueError:
        raise UsageError(f"--where: expected NAME=VALUE&NAME=VALUE..., got {args.where!r}") from None
    if args.format == "jsonl":
        return "/journal?" + urllib.parse.urlencode([("format", "jsonl"), *params])
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit: expected 1 to {MAX_LIMIT}, got {args.limit}")
    return "/journal?" + urllib.parse.urlencode([*params, ("since", str(since or 0)), ("limit", str(args.limit))])


def run(args: argparse.Namespace) -> int:
    urls = admin_urls(args)
    if len(urls) <= 1:
        if urls:
            args.admin_url = urls[0]
        urls = [load_endpoints(args)["admin"]["url"]]
    if args.format == "jsonl":
        if len(urls) == 1:          # the server's export as it is
            raw = ask_all("journal", urls, _query(args, None), read_lines, partial=False, timeout=60)[0][1]
            _write(args, b"".join(ln + b"\n" for ln in raw if ln.strip()))
        else:
            exports = ask_all("journal", urls, _query(args, None), read_jsonl, partial=args.partial, timeout=60)
            _write(args, b"".join(ln + b"\n" for ln in merged(merge_exports, exports)))
        return 0
    if len(urls) == 1:
        since = args.since or "0"
        if not since.isdigit():
            raise UsageError(f"--since: expected a number (a page's next_since), got {since!r}")
        page = ask_all("journal", urls, _query(args, int(since)), read_json, partial=False)[0][1]
        _write(args, (json.dumps(page, indent=2) + "\n").encode())
        return 0
    return _merged_page(args, urls)


def _merged_page(args: argparse.Namespace, urls: list[str]) -> int:
    names = instance_names(urls)
    try:
        cursor = parse_cursor(args.since, names)
    except ValueError as e:
        raise UsageError(str(e)) from None
    pages = ask_all("journal", urls, [_query(args, cursor[n]) for n in names], read_json, partial=args.partial)
    page = merged(merge_journal_pages, pages, cursor, args.limit)
    asked = {name for name, _ in pages}
    # an instance that did not answer (--partial) is asked again from where it was next time
    page["cursor"] = {n: page["cursor"].get(n, cursor[n]) if n in asked else cursor[n] for n in names}
    page["next_since"] = format_cursor(page["cursor"])
    _write(args, (json.dumps(page, indent=2) + "\n").encode())
    return 0


def _write(args: argparse.Namespace, data: bytes) -> None:
    if args.output:
        try:
            Path(args.output).write_bytes(data)
        except OSError as e:
            raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None
    else:
        sys.stdout.buffer.write(data)
