"""Live traffic for `pushsim run`: the scenario's `[[traffic]]` sent over the wire to in-process fakes.

Each traffic rule becomes real HTTP/2 requests (APNs with a provider JWT, FCM with an OAuth token),
bounded in count (`max_requests`) and concurrency, so the run exercises the same edge, services,
faults and fleet a sender under test would. `[[events]]` are applied when the share of requests sent
reaches `at / duration`; `[[faults]]` (the control API's rule JSON) are installed before traffic starts.
"""
from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_PAYLOAD = {"background": {"aps": {"content-available": 1}}, "alert": {"aps": {"alert": "hello"}}}


@dataclass
class Job:
    service: str
    token: str
    push_type: str
    priority: int
    body: bytes
    collapse_id: str | None = None
    expiration: int | None = None
    due: float = 0.0              # device seconds after the scenario's start it is scheduled at


@dataclass
class LiveResult:
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)   # "200", "429 TooManyRequests", "error ..."
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0


def plan_jobs(doc: dict[str, Any], fleet: Any, max_requests: int) -> tuple[list[Job], int]:
    """The scenario's traffic, interleaved in time order across rules, cut at `max_requests`; and
    how many requests the whole scenario has (more than were kept = the run is truncated)."""
    duration = float(doc.get("duration", 86_400))
    timed: list[tuple[float, int, Job]] = []
    planned = 0
    for rule_no, rule in enumerate(doc.get("traffic", [])):
        platform = rule.get("platform", "ios")
        want = 0 if platform == "ios" else 1
        sel = rule.get("installs", "all")
        every = fleet.owned_of(want)
        targets = [int(i) for i in sel] if isinstance(sel, list) else every if sel == "all" else every[: int(sel)]
        service = rule.get("service", "apns" if platform == "ios" else "fcm")
        push_type = rule.get("push_type", "background" if platform == "ios" else "data")
        priority = int(rule.get("priority", 5 if push_type == "background" else 10))
        interval = 3600.0 / float(rule.get("per_hour", 1))
        ticks = max(1, math.ceil(duration / interval) - 1)   # sends at interval, 2×interval, … before the end
        tokens = sum(1 for i in targets if (fleet.apns_token(i) if service == "apns" else fleet.fcm_token(i)))
        planned += ticks * tokens
        made = 0
        for k in range(ticks):
            if made >= max_requests:     # the earliest max_requests of each rule are all that can be kept
                break
            for i in targets:
                token = fleet.apns_token(i) if service == "apns" else fleet.fcm_token(i)
                if token is None:
                    continue
                body = _body(rule, service, push_type, priority, k)
                exp = rule.get("expiration")
                job = Job(service, token, push_type, priority, body, rule.get("collapse_id"),
                          None if exp is None else (0 if float(exp) == 0 else int(time.time() + float(exp))))
                job.due = (k + 1) * interval
                timed.append((job.due, rule_no, job))
                made += 1
    timed.sort(key=lambda x: (x[0], x[1]))
    return [j for _, _, j in timed[:max_requests]], planned


def _body(rule: dict[str, Any], service: str, push_type: str, priority: int, k: int) -> bytes:
    payload = rule.get("payload")
    if service == "apns":
        if isinstance(payload, str):
            return payload.encode()
        return json.dumps(DEFAULT_PAYLOAD.get(push_type, DEFAULT_PAYLOAD["alert"])).encode()
    if isinstance(payload, str):
        msg = json.loads(payload).get("message", {})
    elif push_type == "notification":
        msg = {"notification": {"title": "hello"}}
    else:
        msg = {"data": {"k": str(k)}}
    msg.setdefault("android", {})["priority"] = "high" if priority >= 10 else "normal"
    return json.dumps({"message": msg}).encode()


async def send_all(ep: dict[str, Any], jobs: list[Job], *, concurrency: int, timeout: float,
                   progress: Callable[[int], None], at_share: Callable[[float], None],
                   pace: float | None = None, duration: float | None = None) -> LiveResult:
    """`pace`: device seconds per wall second (the server's `scaled:N` clock) — each job waits for
    its `due` time on that clock, and `at_share` gets the share of `duration` reached (so
    `[[events]]` land at their device time); None = as fast as the server answers, and `at_share`
    gets the share of requests sent."""
    import httpx

    from . import sender_auth

    res = LiveResult()
    verify: Any = ssl.create_default_context(cafile=ep["ca_file"]) if ep.get("ca_file") else True
    apns_auth, fcm_auth = "", ""
    if "apns" in ep and any(j.service == "apns" for j in jobs):
        apns_auth = sender_auth.apns_provider_token(ep["apns"])
    if "fcm" in ep and any(j.service == "fcm" for j in jobs):
        fcm_auth = sender_auth.fcm_access_token(ep, timeout)
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    queue = iter(enumerate(jobs))
    total = len(jobs)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(http2=True, verify=verify, timeout=timeout, limits=limits) as client:
        async def worker() -> None:
            for n, job in queue:
                if pace is not None:
                    wait = t0 + job.due / pace - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                at_share(job.due / duration if pace is not None and duration else n / total if total else 1.0)
                t = time.perf_counter()
                try:
                    r = await _send(client, ep, job, apns_auth, fcm_auth)
                    key = str(r.status_code) + ("" if r.status_code == 200 else f" {_reason(job.service, r)}")
                except httpx.HTTPError as e:
                    key = f"error {type(e).__name__}"
                res.latencies.append(time.perf_counter() - t)
                res.statuses[key] = res.statuses.get(key, 0) + 1
                res.sent += 1
                progress(res.sent)
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, total)))))
    res.elapsed = time.perf_counter() - t0
    return res


async def _send(client: Any, ep: dict[str, Any], job: Job, apns_auth: str, fcm_auth: str) -> Any:
    if job.service == "apns":
        headers = {"authorization": f"bearer {apns_auth}", "apns-topic": ep["apns"]["topic"],
                   "apns-push-type": job.push_type, "apns-priority": str(job.priority), "apns-id": str(uuid.uuid4())}
        if job.collapse_id:
            headers["apns-collapse-id"] = job.collapse_id
        if job.expiration is not None:
            headers["apns-expiration"] = str(job.expiration)
        return await client.post(f"{ep['apns']['url']}/3/device/{job.token}", content=job.body, headers=headers)
    doc = json.loads(job.body)
    doc["message"]["token"] = job.token
    url = f"{ep['fcm']['url']}/v1/projects/{ep['fcm']['project_id']}/messages:send"
    return await client.post(url, json=doc, headers={"authorization": f"Bearer {fcm_auth}"})


def _reason(service: str, r: Any) -> str:
    from .push import reason_of
    return reason_of(service, r.status_code, r.content) or ""
