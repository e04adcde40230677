"""Delivery metrics in the terms users already know, per sender, push type, priority and label.

- Apple's Push Notifications Console delivery-log categories (received, delivered, delivered from
  storage, stored – device offline, stored – power considerations, discarded – token
  unregistered, discarded – expired, ...), from the ledger's outcomes and reasons;
- the FCM Data API's `messageOutcomePercents`, `deliveryPerformancePercents` and
  `messageInsightPercents`, the same numbers `GET .../androidApps/{app}/deliveryData` serves;
- the silent-push primer's §11 metrics beside them: receipt rate and landing readiness per group,
  background processing success, task duration and content freshness at open for the fleet.

The mapping from pushsim's reasons to each vendor's category is in docs/report.md.
"""
from __future__ import annotations

import datetime as _dt
from collections import Counter, defaultdict
from typing import Iterable

from .records import Accepted, Inputs

STORED_OFFLINE = frozenset({"stored-offline"})
STORED_POWER = frozenset({"held-low-power", "held-budget", "held-background-refresh-off", "deferred-doze"})
EXPIRED = frozenset({"expired", "ttl-expired", "ttl-zero"})
COLLAPSED = frozenset({"collapsed"})

# FCM Data API outcome fields ← pushsim drop reasons
FCM_DROPS = {"too-many-pending": "droppedTooManyPendingMessages", "force-stopped": "droppedAppForceStopped",
             "never-launched": "droppedDeviceInactive", "ttl-expired": "droppedTtlExpired",
             "ttl-zero": "droppedTtlExpired", "collapse-key-limit": "droppedTooManyPendingMessages"}
FCM_DELAYS = {"stored-offline": "delayedDeviceOffline", "deferred-doze": "delayedDeviceDoze",
              "held-budget": "delayedMessageThrottled"}


def _pct(n: int, total: int) -> float:
    return round(100.0 * n / total, 4) if total else 0.0


def apple_categories(notes: Iterable[Accepted], unregistered: int) -> dict[str, object]:
    c: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for a in notes:
        c["received"] += 1
        if a.outcome == "delivered":
            c["delivered_from_storage" if a.held else "delivered"] += 1
        elif a.outcome == "pending":
            if a.reason in STORED_OFFLINE:
                c["stored_device_offline"] += 1
            elif a.reason in STORED_POWER:
                c["stored_power_considerations"] += 1
            else:
                c["pending_other"] += 1
        else:
            if a.reason in EXPIRED:
                c["discarded_expired"] += 1
            elif a.reason in COLLAPSED:
                c["discarded_collapsed"] += 1
            else:
                c["discarded_other"] += 1
                other[a.reason or "unknown"] += 1
    keys = ("received", "delivered", "delivered_from_storage", "stored_device_offline",
            "stored_power_considerations", "pending_other", "discarded_expired", "discarded_collapsed",
            "discarded_other")
    out: dict[str, object] = {k: c[k] for k in keys}
    out["discarded_token_unregistered"] = unregistered
    out["discarded_other_reasons"] = dict(sorted(other.items()))
    return out


def fcm_data(notes: list[Accepted]) -> dict[str, object]:
    """One FCM Data API `Data` object (countMessagesAccepted and the three percent breakdowns)."""
    total = len(notes)
    outcome: Counter[str] = Counter()
    perf: Counter[str] = Counter()
    high = lowered = 0
    delivered = 0
    for a in notes:
        if a.outcome == "delivered":
            delivered += 1
            outcome["delivered"] += 1
            perf[FCM_DELAYS.get(a.held or "", "deliveredNoDelay") if a.held else "deliveredNoDelay"] += 1
        elif a.outcome == "pending":
            outcome["pending"] += 1
        elif a.reason == "collapsed":
            outcome["collapsed"] += 1
        elif a.reason in FCM_DROPS:
            outcome[FCM_DROPS[a.reason]] += 1
        if a.priority >= 10:
            high += 1
            # A high-priority message Doze held was evidently treated as normal priority.
            if a.held == "deferred-doze" or a.reason == "deferred-doze":
                lowered += 1
    outcome_keys = ("delivered", "pending", "collapsed", "droppedTooManyPendingMessages",
                    "droppedAppForceStopped", "droppedDeviceInactive", "droppedTtlExpired")
    perf_keys = ("deliveredNoDelay", "delayedDeviceOffline", "delayedDeviceDoze", "delayedMessageThrottled",
                 "delayedUserStopped")
    return {
        "countMessagesAccepted": str(total),    # int64 fields are JSON strings in Google's APIs
        "messageOutcomePercents": {k: _pct(outcome[k], total) for k in outcome_keys},
        "deliveryPerformancePercents": {k: _pct(perf[k], delivered) for k in perf_keys},
        "messageInsightPercents": {"priorityLowered": _pct(lowered, high)},
    }


def _primer(notes: list[Accepted]) -> dict[str, object]:
    total = len(notes)
    delivered = sum(1 for a in notes if a.outcome == "delivered")
    landed = [a for a in notes if a.visible and a.outcome == "delivered" and a.ready is not None]
    ready = sum(1 for a in landed if a.ready)
    return {"receipt_rate": round(delivered / total, 6) if total else None,
            "landing_readiness": round(ready / len(landed), 6) if landed else None,
            "visible_landed": len(landed)}


def group_metrics(inp: Inputs) -> list[dict[str, object]]:
    groups: dict[tuple[str, str, str, int, str], list[Accepted]] = defaultdict(list)
    for a in inp.accepted:
        groups[(a.service, a.sender, a.push_type, a.priority, a.label or "")].append(a)
    unreg: Counter[tuple[str, str]] = Counter()
    for r in inp.requests:
        if (r.service == "apns" and r.status == 410) or (r.service == "fcm" and r.reason == "UNREGISTERED"):
            unreg[(r.service, r.sender)] += 1
    out: list[dict[str, object]] = []
    for (service, sender, push_type, priority, label), notes in sorted(groups.items()):
        g: dict[str, object] = {"service": service, "sender": sender, "push_type": push_type,
                                "priority": priority, "analytics_label": label or None}
        g["apple" if service == "apns" else "fcm"] = (
            apple_categories(notes, unreg.pop((service, sender), 0)) if service == "apns" else fcm_data(notes))
        g["primer"] = _primer(notes)
        out.append(g)
    for (service, sender), n in sorted(unreg.items()):     # senders whose every request was refused
        g = {"service": service, "sender": sender, "push_type": None, "priority": None, "analytics_label": None,
             "primer": _primer([])}
        g["apple" if service == "apns" else "fcm"] = apple_categories([], n) if service == "apns" else fcm_data([])
        out.append(g)
    return out


def fleet_metrics(sim_metrics: dict[str, object] | None) -> dict[str, object]:
    """The primer's fleet-wide metrics, from the device sim's counters (None when not known)."""
    m = sim_metrics or {}
    bg = m.get("background") if isinstance(m.get("background"), dict) else {}
    dur = m.get("task_duration") if isinstance(m.get("task_duration"), dict) else {}
    fresh = m.get("freshness") if isinstance(m.get("freshness"), dict) else {}
    assert isinstance(bg, dict) and isinstance(dur, dict) and isinstance(fresh, dict)
    return {"receipt_rate": m.get("receipt_rate"), "background_success_rate": bg.get("success_rate"),
            "task_duration": dur or None, "content_freshness_at_open": fresh.get("fresh_rate"),
            "mean_staleness_seconds": fresh.get("mean_staleness")}


def delivery_data(inp: Inputs, app_id: str) -> list[dict[str, object]]:
    """FCM Data API `androidDeliveryData`: one entry per (app, day, analytics label), days by the
    device clock in UTC, newest first."""
    groups: dict[tuple[_dt.date, str], list[Accepted]] = defaultdict(list)
    for a in inp.accepted:
        if a.service != "fcm":
            continue
        day = _dt.datetime.fromtimestamp(min(max(0.0, a.at), 253402300799.0), _dt.timezone.utc).date()
        groups[(day, a.label or "")].append(a)
    out: list[dict[str, object]] = []
    for (day, label), notes in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]), reverse=True):
        entry: dict[str, object] = {"appId": app_id, "date": {"year": day.year, "month": day.month, "day": day.day}}
        if label:
            entry["analyticsLabel"] = label
        entry["data"] = fcm_data(notes)
        out.append(entry)
    return out
