"""`pushsim token apns|fcm`: print a sender credential for curl and other hand-made requests.

apns  an ES256 provider token from the state dir's auth key (`authorization: bearer <token>`;
      APNs accepts it for an hour)
fcm   an OAuth access token from the running server's token endpoint, got with the service
      account's JWT-bearer grant (`authorization: Bearer <token>`)
"""
from __future__ import annotations

import argparse
from typing import Any

from . import sender_auth
from .options import UsageError, add_server_flags, load_endpoints


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="print an APNs provider token or an FCM access token (for curl)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", choices=("apns", "fcm"))
    add_server_flags(p, "token")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ep = load_endpoints(args, need=args.service)
    try:
        if args.service == "apns":
            print(sender_auth.apns_provider_token(ep["apns"]))
        else:
            print(sender_auth.fcm_access_token(ep))
    except (OSError, KeyError, ValueError, sender_auth.TokenEndpointError) as e:
        raise UsageError(f"cannot make a {args.service} token: {e}") from None
    return 0
