"""`pushsim creds`: create (once) and print the test credentials kept in the state dir: the CA,
the APNs auth key and push certificate, the FCM service account."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .config_flags import add_config_arguments, config_from_args


def register(sub: Any) -> None:
    p = sub.add_parser("creds", help="create (once) and print the test credentials in the state dir",
                       description=__doc__)
    add_config_arguments(p, ["state_dir", "bundle_id", "project_id"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pushsim.credentials import ensure_credentials

    config = config_from_args(args)
    creds = ensure_credentials(Path(config.state_dir), config)
    print(json.dumps(creds.as_dict(), indent=2))
    return 0
