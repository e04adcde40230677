"""`pushsim push TOKEN FILE`: send one push to a running pushsim, print status and reason.

FILE is an `.apns` file in the `xcrun simctl push` format (a JSON object with `aps`, optionally
`"Simulator Target Bundle"` naming the app) for an APNs device token, or an FCM message JSON
(`{"message": {...}}` or the bare message) for a registration token. `-` reads stdin.
The service follows from the token: 64 hex characters is APNs, anything else FCM (`--service` overrides).
"""
from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import uuid
from typing import Any

from . import sender_auth
from .options import UsageError, add_server_flags, load_endpoints, option

SIM_BUNDLE = "Simulator Target Bundle"
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def register(sub: Any) -> None:
    p = sub.add_parser("push", help="send an .apns (simctl format) or FCM message JSON file to a token",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("token", help="device token (APNs) or registration token (FCM)")
    p.add_argument("file", help=".apns / .json file, or - for stdin")
    option(p, "push", "--service", "apns | fcm (default: from the token)", choices=("apns", "fcm"))
    option(p, "push", "--bundle", "APNs topic; wins over the file's Simulator Target Bundle")
    option(p, "push", "--push-type", "apns-push-type (default: background for content-available only, "
           "else alert)")
    option(p, "push", "--priority", "apns-priority (default: 5 for background, else 10)")
    option(p, "push", "--cleartext", "use the h2c URL instead of TLS", action="store_true")
    option(p, "push", "--timeout", "seconds to wait for the answer", default="10")
    option(p, "push", "--json", "print the result as JSON", action="store_true")
    option(p, "push", "--wait", "after a 200, wait (at most --wait-timeout) for what the device did: delivered, "
           "dropped (reason) or still pending (reason)", action="store_true")
    option(p, "push", "--wait-timeout", "seconds --wait waits for the notification to settle", default="5")
    add_server_flags(p, "push")
    p.set_defaults(func=run)


def _read_json(name: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{name}: cannot read: {e}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(f"{name}: not valid JSON: {e}") from None


def apns_request(doc: Any, bundle: str | None, default_topic: str, push_type: str | None,
                 priority: str | None) -> tuple[str, bytes, str, str]:
    """simctl rules: a top-level object with `aps`; returns topic, payload, push type, priority."""
    if not isinstance(doc, dict) or not isinstance(doc.get("aps"), dict):
        raise UsageError("an .apns payload must be a JSON object with an \"aps\" object")
    doc = dict(doc)
    topic = bundle or doc.pop(SIM_BUNDLE, None) or default_topic
    doc.pop(SIM_BUNDLE, None)
    aps = doc["aps"]
    silent = aps.get("content-available") == 1 and not ({"alert", "sound", "badge"} & set(aps))
    ptype = push_type or ("background" if silent else "alert")
    prio = priority or ("5" if ptype == "background" else "10")
    return str(topic), json.dumps(doc, separators=(",", ":")).encode(), ptype, str(prio)


def fcm_body(doc: Any, token: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise UsageError("an FCM message file must be a JSON object")
    msg = doc.get("message", doc)
    if not isinstance(msg, dict):
        raise UsageError("\"message\" must be a JSON object")
    msg = {k: v for k, v in msg.items() if k not in ("token", "topic", "condition", "fid")}
    msg["token"] = token
    out = {"message": msg}
    if doc.get("validate_only"):
        out["validate_only"] = True
    return out


def reason_of(service: str, status: int, body: bytes) -> str | None:
    if status == 200 or not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if service == "apns":
        return doc.get("reason")
    err = doc.get("error") or {}
    for d in err.get("details") or ():
        if isinstance(d, dict) and (d.get("errorCode") or d.get("reason")):
            return str(d.get("errorCode") or d.get("reason"))
    return err.get("status")


def _authorization(service: str, ep: dict[str, Any]) -> str:
    if service == "apns":
        return "bearer " + sender_auth.apns_provider_token(ep["apns"])
    try:
        return "Bearer " + sender_auth.fcm_access_token(ep)
    except sender_auth.TokenEndpointError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    import httpx

    try:
        timeout = float(args.timeout)
    except ValueError:
        raise UsageError(f"--timeout must be a number of seconds, got {args.timeout!r}") from None
    try:
        wait_timeout = float(args.wait_timeout)
        if not 0 <= wait_timeout <= 3600:
            raise ValueError
    except ValueError:
        raise UsageError(f"--wait-timeout must be 0..3600 seconds, got {args.wait_timeout!r}") from None
    service = args.service or ("apns" if HEX64.fullmatch(args.token) else "fcm")
    doc = _read_json(args.file)
    ep = load_endpoints(args, need=service)
    base = ep[service]["h2c_url" if args.cleartext else "url"].rstrip("/")
    verify: Any = ssl.create_default_context(cafile=ep["ca_file"]) if ep.get("ca_file") else True
    # Cleartext APNs is h2 with prior knowledge only; httpx needs HTTP/1.1 switched off for that.
    http1 = not (args.cleartext and service == "apns")
    with httpx.Client(http1=http1, http2=True, verify=verify, timeout=timeout) as client:
        try:
            auth = _authorization(service, ep)
            if service == "apns":
                topic, payload, ptype, prio = apns_request(doc, args.bundle, ep["apns"].get("topic", ""),
                                                           args.push_type, args.priority)
                apns_id = str(uuid.uuid4())
                r = client.post(f"{base}/3/device/{args.token}", content=payload, headers={
                    "authorization": auth, "apns-topic": topic, "apns-push-type": ptype,
                    "apns-priority": prio, "apns-id": apns_id})
                ident = r.headers.get("apns-id", apns_id)
            else:
                body = fcm_body(doc, args.token)
                url = f"{base}/v1/projects/{ep['fcm']['project_id']}/messages:send"
                r = client.post(url, json=body, headers={"authorization": auth})
                ident = (r.json().get("name") if r.status_code == 200 else None)
        except httpx.HTTPError as e:
            print(f"pushsim push: error: {type(e).__name__}: {e or 'connection failed'}", file=sys.stderr)
            return 1
    reason = reason_of(service, r.status_code, r.content)
    result: dict[str, Any] = {"service": service, "token": args.token, "status": r.status_code, "reason": reason,
                              "id": ident, "retry_after": r.headers.get("retry-after")}
    if args.wait and r.status_code == 200:
        result["device"] = wait_for_outcome(ep, args.token, str(ident or ""), wait_timeout)
    if args.json:
        print(json.dumps(result))
    else:
        line = f"{service} {r.status_code}" + (f" {reason}" if reason else " OK") + (f" id={ident}" if ident else "")
        if result["retry_after"]:
            line += f" retry-after={result['retry_after']}"
        print(line)
        if "device" in result:
            print(device_line(result["device"]))
    return 0 if r.status_code == 200 else 1


def _same_id(delivery_id: object, ident: str) -> bool:
    """APNs: the apns-id; FCM: the ledger keeps the id part of `projects/<p>/messages/<id>`."""
    d = str(delivery_id)
    return bool(ident) and (d == ident or ident.rsplit("/", 1)[-1] == d or d.rsplit("/", 1)[-1] == ident.rsplit("/", 1)[-1])


def wait_for_outcome(ep: dict[str, Any], token: str, ident: str, timeout: float) -> dict[str, Any]:
    """Poll the control API's /devices/{token} until the notification settles or `timeout` passes."""
    import time
    import urllib.parse
    from .options import admin_get
    deadline = time.monotonic() + timeout
    path = f"/devices/{urllib.parse.quote(token, safe='')}"
    seen: dict[str, Any] | None = None
    while True:
        found = [d for d in admin_get(ep, path).get("deliveries", []) if _same_id(d.get("id"), ident)]
        if found:
            seen = found[-1]
            if seen.get("outcome") != "pending":
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if seen is None:
        return {"outcome": "unknown", "reason": f"not in /devices/{token[:16]}… after {timeout:g} s"}
    out = {k: seen.get(k) for k in ("seq", "outcome", "reason", "received_at", "settled_at")}
    out["waited_s"] = timeout if seen.get("outcome") == "pending" else None
    return out


def device_line(d: dict[str, Any]) -> str:
    if d["outcome"] == "delivered":
        return "device: delivered"
    if d["outcome"] == "dropped":
        return f"device: dropped ({d.get('reason')})"
    if d["outcome"] == "pending":
        return f"device: still pending ({d.get('reason')}) after {d.get('waited_s'):g} s"
    return f"device: {d['outcome']} ({d.get('reason')})"
