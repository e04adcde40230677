"""`pushsim stats`: the funnel of a running pushsim (accepted → delivered / dropped / pending, rejected)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from pushsim.multi_instance import merge_fleet, merge_stats, unbalanced

from .instances import add_admin_flags, admin_urls, ask_all, merged, read_json
from .options import add_server_flags, admin_get, load_endpoints, option


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="print the accounting funnel of a running server", description=__doc__)
    option(p, "stats", "--json", "print the raw JSON", action="store_true")
    option(p, "stats", "--fleet", "the fleet's side too (GET /stats/fleet): background tasks, opens, "
           "freshness, Android throttling", action="store_true")
    add_server_flags(p, "stats")
    add_admin_flags(p, "stats", "control API URL of a running server (like --admin-url, whose variable may "
                    "also be a comma list)")
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


def table(rows: list[tuple[str, object]], indent: str = "  ") -> list[str]:
    """Two aligned columns: name, value (numbers right-aligned)."""
    if not rows:
        return []
    w = max(len(k) for k, _ in rows)
    shown = [(k, "-" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
             for k, v in rows]
    vw = max(len(v) for _, v in shown)
    return [f"{indent}{k:<{w}}  {v:>{vw}}" for k, v in shown]


def metrics_rows(m: dict[str, Any]) -> list[tuple[str, object]]:
    """The device sim's app metrics (DeviceSim.stats()) as readable rows."""
    bg, dur, fresh = m.get("background") or {}, m.get("task_duration") or {}, m.get("freshness") or {}
    rows: list[tuple[str, object]] = [
        ("receipt rate", m.get("receipt_rate")),
        ("background tasks started", bg.get("started")), ("  succeeded", bg.get("succeeded")),
        ("  failed", bg.get("failed")), ("  killed (over the OS window)", bg.get("killed")),
        ("  success rate", bg.get("success_rate")),
        ("task duration p50 / p90 / p99 s", f"{dur.get('p50')} / {dur.get('p90')} / {dur.get('p99')}"),
        ("app opens", fresh.get("opens")), ("  found fresh content", fresh.get("fresh")),
        ("  fresh rate", fresh.get("fresh_rate")), ("  mean staleness s", fresh.get("mean_staleness"))]
    android, ios = m.get("android") or {}, m.get("ios") or {}
    rows += [(f"android {k.replace('_', ' ')}", v) for k, v in android.items() if v]
    rows += [(f"ios {k.replace('_', ' ')}", v) for k, v in ios.items() if v]
    return rows


def instances_table(merged: dict[str, Any]) -> list[str]:
    """One row per instance of a merged /stats, and whether the sum balances."""
    def label(p: dict[str, Any]) -> str:
        part = (p.get("handoff") or {}).get("partition")
        return f"{p['instance']} ({part})" if part else str(p["instance"])
    rows = [(label(p), f"accepted {p.get('accepted', 0):,}  delivered {p.get('delivered', 0):,}  "
             f"dropped {sum((p.get('dropped') or {}).values()):,}  pending {sum((p.get('pending') or {}).values()):,}  "
             f"rejected {sum((p.get('rejected') or {}).values()):,}") for p in merged["per_instance"]]
    off = unbalanced(merged)
    w = max(len(name) for name, _ in rows)
    out = [f"instances ({len(rows)})", *(f"  {name:<{w}}  {text}" for name, text in rows),
           "accounting: balanced (accepted = delivered + dropped + pending)" if off == 0 else
           f"accounting: NOT balanced: accepted - delivered - dropped - pending = {off}"]
    h = merged.get("handoff")
    if isinstance(h, dict):      # partitions: topic messages and subscriptions posted to peers
        out.append(f"hand-offs to peers: sent {h['sent']:,}, failed {h['failed']:,}, queued {h['queued']:,}")
    return out


def _fleet_text(fleet: dict[str, Any]) -> str:
    return "\n".join(["funnel", *("  " + ln for ln in funnel_table(fleet.get("funnel") or {}).splitlines()),
                      "", "fleet", *table(metrics_rows(fleet)),
                      *table([("active installs", fleet.get("active_installs")), ("events", fleet.get("events"))])])


def run(args: argparse.Namespace) -> int:
    urls = admin_urls(args)
    if len(urls) > 1:
        return run_merged(args, urls)
    if urls:
        args.admin_url = urls[0]
    ep = load_endpoints(args)
    if args.fleet:
        fleet = admin_get(ep, "/stats/fleet")
        print(json.dumps(fleet, indent=2) if args.json else _fleet_text(fleet))
        return 0
    stats = admin_get(ep, "/stats")
    print(json.dumps(stats, indent=2) if args.json else funnel_table(stats))
    return 0


def run_merged(args: argparse.Namespace, urls: list[str]) -> int:
    """Several instances: their answers merged (pushsim/multi_instance.py)."""
    if args.fleet:
        fleet = merged(merge_fleet, ask_all("stats", urls, "/stats/fleet", read_json, partial=args.partial))
        print(json.dumps(fleet, indent=2) if args.json else
              _fleet_text(fleet) + f"\n\ninstances ({len(fleet['instances'])}): {', '.join(fleet['instances'])}")
        return 0
    stats = merged(merge_stats, ask_all("stats", urls, "/stats", read_json, partial=args.partial))
    print(json.dumps(stats, indent=2) if args.json else "\n".join([funnel_table(stats), "", *instances_table(stats)]))
    return 0
