"""`pushsim report`: the verdict on the sender (conformance findings and delivery metrics).

From a running server (`--admin URL`, or the usual --endpoints / --state-dir), from several
(`--admin` repeated or a comma list: the union of their records, docs/multi-instance.md) or from a
saved journal export (`GET /journal?format=jsonl`, `pushsim journal --format jsonl`). Exit status 1
when there are findings at or above `--fail-on` (default error), so CI can gate on it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from pushsim.multi_instance import merge_exports, name_evidence
from pushsim.report import DEFAULTS, build_report, failing, load_policy
from pushsim.report.html import PageInputs, page
from pushsim.report.render import FORMATS, render

from .instances import add_admin_flags, admin_urls, ask_all, merged, read_jsonl
from .options import UsageError, add_server_flags, admin_get, load_endpoints, option


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="conformance findings and delivery metrics for the sender under test",
                       description=__doc__)
    p.add_argument("journal", nargs="?", help="a journal export (JSONL, from GET /journal?format=jsonl); "
                                              "default: ask the running server")
    add_admin_flags(p, "report", "control API URL of the running server to report on")
    option(p, "report", "--policy", "policy TOML: thresholds, severities, ignored rules (docs/report.md)")
    option(p, "report", "--format", "output format", default="text", choices=FORMATS)
    option(p, "report", "--fail-on", "exit 1 if findings at or above this level exist", default="error",
           choices=("error", "warning", "info", "never"))
    option(p, "report", "--output", "write the report to this file instead of stdout")
    add_server_flags(p, "report")
    p.set_defaults(func=run)


def _records_from_file(path: str) -> list[Any]:
    out: list[Any] = []
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError as e:
                    raise UsageError(f"{path}:{n}: not JSON ({e})") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    return out


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy, DEFAULTS)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    records: list[Any] | None = None
    urls = [] if args.journal else admin_urls(args)
    source = args.journal or "the running server"
    if args.journal:
        records = _records_from_file(args.journal)
        report = build_report(records, policy)
        if any(isinstance(r, dict) and r.get("type") == "header" and "instances" in r for r in records):
            report = name_evidence(report, [r for r in records if isinstance(r, dict)])   # a merged export
    elif len(urls) > 1:
        exports = ask_all("report", urls, "/journal?format=jsonl", read_jsonl, partial=args.partial, timeout=60)
        records = [orjson.loads(line) for line in merged(merge_exports, exports)]
        report = name_evidence(build_report(records, policy), records)
        source = f"{len(exports)} instances: {', '.join(name for name, _ in exports)}"
    else:
        if urls:
            args.admin_url = urls[0]
        ep = load_endpoints(args)
        if args.policy is None and args.format != "html":
            report = admin_get(ep, "/report")
        else:   # the policy's thresholds apply, or the plots need the records: analyse the export here
            records = _records_from_url(ep["admin"]["url"].rstrip("/") + "/journal?format=jsonl")
            report = build_report(records, policy)
    if args.format == "html":
        out = page(PageInputs("pushsim report", records or [], report=report,
                              facts=[("source", source)]))
    else:
        out = render(report, args.format, args.fail_on)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 1 if args.fail_on != "never" and failing(report["findings"], args.fail_on) else 0


def _records_from_url(url: str) -> list[Any]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return [orjson.loads(line) for line in r.read().splitlines() if line.strip()]
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise UsageError(f"cannot read the journal export at {url}: {getattr(e, 'reason', e)}") from None
