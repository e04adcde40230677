"""`pushsim stats`: the funnel of a running pushsim (accepted → delivered / dropped / pending, rejected)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from .options import add_server_flags, admin_get, load_endpoints, option


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="print the accounting funnel of a running server", description=__doc__)
    option(p, "stats", "--json", "print the raw /stats JSON", action="store_true")
    add_server_flags(p, "stats")
    p.set_defaults(func=run)


def funnel_table(stats: dict[str, Any], sent: int | None = None) -> str:
    """A readable funnel: one row per outcome, reasons indented under it, shares of accepted."""
    acc = int(stats.get("accepted", 0))
    rows: list[tuple[str, int, str]] = []

    def pct(n: int, of: int) -> str:
        return f"{100.0 * n / of:5.1f}%" if of else "     -"

    rejected = stats.get("rejected") or {}
    if sent is not None:
        rows.append(("sent", sent, ""))
    rows.append(("accepted", acc, pct(acc, sent) if sent else ""))
    rows.append(("rejected", sum(rejected.values()), ""))
    for r, n in sorted(rejected.items(), key=lambda kv: -kv[1]):
        rows.append((f"  {r}", n, ""))
    rows.append(("delivered", int(stats.get("delivered", 0)), pct(int(stats.get("delivered", 0)), acc)))
    for key in ("dropped", "pending"):
        d = stats.get(key) or {}
        total = sum(d.values())
        rows.append((key, total, pct(total, acc)))
        for r, n in sorted(d.items(), key=lambda kv: -kv[1]):
            rows.append((f"  {r}", n, pct(n, acc)))
    w = max(len(r[0]) for r in rows)
    nw = max(len(str(r[1])) for r in rows)
    return "\n".join(f"{name:<{w}}  {n:>{nw}}  {share}".rstrip() for name, n, share in rows)


def run(args: argparse.Namespace) -> int:
    ep = load_endpoints(args)
    stats = admin_get(ep, "/stats")
    print(json.dumps(stats, indent=2) if args.json else funnel_table(stats))
    return 0
