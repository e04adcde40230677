"""`pushsim push TOKEN FILE`: send one push to a running pushsim, print status and reason.

FILE is an `.apns` file in the `xcrun simctl push` format (a JSON object with `aps`, optionally
`"Simulator Target Bundle"` naming the app) for an APNs device token, or an FCM message JSON
(`{"message": {...}}` or the bare message) for a registration token. `-` reads stdin.
The service follows from the token: 64 hex characters is APNs, anything else FCM (`--service` overrides).
"""
from __future__ import annotations

import argparse
import base64
import json
import ssl
import re
import sys
import time
import uuid
from typing import Any

from .cli import UsageError
from .cmd_common import add_server_flags, env_flag, load_endpoints

SIM_BUNDLE = "Simulator Target Bundle"
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def register(sub: Any) -> None:
    p = sub.add_parser("push", help="send an .apns (simctl format) or FCM message JSON file to a token",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("token", help="device token (APNs) or registration token (FCM)")
    p.add_argument("file", help=".apns / .json file, or - for stdin")
    env_flag(p, "--service", "PUSHSIM_PUSH_SERVICE", "apns | fcm (default: from the token)", choices=("apns", "fcm"))
    env_flag(p, "--bundle", "PUSHSIM_PUSH_BUNDLE", "APNs topic; wins over the file's Simulator Target Bundle")
    env_flag(p, "--push-type", "PUSHSIM_PUSH_TYPE", "apns-push-type (default: background for content-available "
             "only, else alert)")
    env_flag(p, "--priority", "PUSHSIM_PUSH_PRIORITY", "apns-priority (default 5 for background, else 10)")
    env_flag(p, "--cleartext", "PUSHSIM_PUSH_CLEARTEXT", "use the h2c URL instead of TLS", action="store_true")
    env_flag(p, "--timeout", "PUSHSIM_PUSH_TIMEOUT", "seconds to wait for the answer", default="10")
    env_flag(p, "--json", "PUSHSIM_PUSH_JSON", "print the result as JSON", action="store_true")
    add_server_flags(p)
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


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def apns_jwt(ep: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from fake_apns.testing import make_jwt

    a = ep["apns"]
    with open(a["key_file"], "rb") as f:
        key = load_pem_private_key(f.read(), None)
    return make_jwt(key, a["key_id"], a["team_id"], int(time.time())).decode()


def fcm_access_token(client: Any, ep: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    with open(ep["fcm"]["service_account_file"]) as f:
        sa = json.load(f)
    now = int(time.time())
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": sa["private_key_id"]}).encode())
    claims = _b64(json.dumps({"iss": sa["client_email"], "aud": sa["token_uri"], "iat": now, "exp": now + 3600,
                              "scope": "https://www.googleapis.com/auth/firebase.messaging"}).encode())
    key = load_pem_private_key(sa["private_key"].encode(), None)
    sig = key.sign(f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    r = client.post(sa["token_uri"], data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                           "assertion": f"{head}.{claims}.{_b64(sig)}"})
    if r.status_code != 200:
        raise UsageError(f"token endpoint said {r.status_code}: {r.text[:200]}")
    return str(r.json()["access_token"])


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


def run(args: argparse.Namespace) -> int:
    import httpx

    try:
        timeout = float(args.timeout)
    except ValueError:
        raise UsageError(f"--timeout must be a number of seconds, got {args.timeout!r}") from None
    service = args.service or ("apns" if HEX64.fullmatch(args.token) else "fcm")
    doc = _read_json(args.file)
    ep = load_endpoints(args, need=service)
    base = ep[service]["h2c_url" if args.cleartext else "url"].rstrip("/")
    verify: Any = ssl.create_default_context(cafile=ep["ca_file"]) if ep.get("ca_file") else True
    # Cleartext APNs is h2 with prior knowledge only; httpx needs HTTP/1.1 switched off for that.
    http1 = not (args.cleartext and service == "apns")
    with httpx.Client(http1=http1, http2=True, verify=verify, timeout=timeout) as client:
        try:
            if service == "apns":
                topic, payload, ptype, prio = apns_request(doc, args.bundle, ep["apns"].get("topic", ""),
                                                           args.push_type, args.priority)
                apns_id = str(uuid.uuid4())
                r = client.post(f"{base}/3/device/{args.token}", content=payload, headers={
                    "authorization": f"bearer {apns_jwt(ep)}", "apns-topic": topic, "apns-push-type": ptype,
                    "apns-priority": prio, "apns-id": apns_id})
                ident = r.headers.get("apns-id", apns_id)
            else:
                body = fcm_body(doc, args.token)
                url = f"{base}/v1/projects/{ep['fcm']['project_id']}/messages:send"
                r = client.post(url, json=body, headers={"authorization": f"Bearer {fcm_access_token(client, ep)}"})
                ident = (r.json().get("name") if r.status_code == 200 else None)
        except httpx.HTTPError as e:
            print(f"pushsim push: error: {type(e).__name__}: {e or 'connection failed'}", file=sys.stderr)
            return 1
    reason = reason_of(service, r.status_code, r.content)
    result = {"service": service, "token": args.token, "status": r.status_code, "reason": reason, "id": ident,
              "retry_after": r.headers.get("retry-after")}
    if args.json:
        print(json.dumps(result))
    else:
        line = f"{service} {r.status_code}" + (f" {reason}" if reason else " OK") + (f" id={ident}" if ident else "")
        if result["retry_after"]:
            line += f" retry-after={result['retry_after']}"
        print(line)
    return 0 if r.status_code == 200 else 1
