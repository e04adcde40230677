"""The FCM Data API on the fake FCM port: `GET /v1beta1/projects/{project}/androidApps/{app}/deliveryData`.

Google's aggregate delivery data (one entry per app, day and analytics label, in Google's JSON
shape: `androidDeliveryData[]` with `messageOutcomePercents`, `deliveryPerformancePercents`,
`messageInsightPercents`), computed from the fleet's ledger by pushsim/report/metrics.py, so a tool
written for Google's API reads the fake fleet. Same OAuth access tokens as sends.
"""
from __future__ import annotations

import re
import urllib.parse

import orjson

from fake_fcm import errors
from fake_fcm.oauth import AccessToken, TokenAuthority
from pushsim.edge.types import Headers, Reply
from pushsim.report.live import fcm_accepted, ledger_version
from pushsim.report.metrics import delivery_data
from pushsim.report.records import Inputs
from pushsim.testbed import Testbed

from .fcm_tokens import reply

PATH_RE = re.compile(rb"/v1beta1/projects/([^/?#]+)/androidApps/([^/?#]+)/deliveryData")
DEFAULT_PAGE, MAX_PAGE = 1000, 10_000     # Google's documented page sizes
CACHED_APPS = 16                          # app ids whose answer is kept until the ledger moves
_JSON = (b"content-type", b"application/json; charset=UTF-8")


def _bad(message: str) -> Reply:
    return Reply(400, [_JSON], errors.status_body(400, message))


class FcmDataApi:
    def __init__(self, testbed: Testbed, authority: TokenAuthority, project_ids: tuple[str, str]) -> None:
        self.testbed, self.authority, self.project_ids = testbed, authority, project_ids
        # app id → (ledger version, entries). The answer is computed on the event loop (services
        # are synchronous), in O(retained FCM notifications): a tool polling an unchanged fleet
        # gets the same answer for free, and a changed one costs one pass over the ledger.
        self._cache: dict[str, tuple[tuple[object, ...], list[dict[str, object]]]] = {}

    def handle(self, m: re.Match[bytes], method: bytes, path: bytes, headers: Headers) -> Reply:
        if method != b"GET":
            return reply(errors.method_not_allowed(method.decode("latin-1")))
        auth = next((v for k, v in headers if k == b"authorization"), None)
        grant = self.authority.check(auth, self.testbed.now())
        if not isinstance(grant, AccessToken):
            return reply(grant)
        project = urllib.parse.unquote(m.group(1).decode("latin-1"))
        app_id = urllib.parse.unquote(m.group(2).decode("latin-1"))
        if project not in self.project_ids:
            return Reply(403, [_JSON], errors.status_body(403, f"Permission denied on project {project}."))
        query = urllib.parse.parse_qs(path.partition(b"?")[2].decode("latin-1"))
        try:
            size = int(query.get("pageSize", [str(DEFAULT_PAGE)])[0])
            start = int(query.get("pageToken", ["0"])[0] or 0)
        except ValueError:
            return _bad("Invalid pageSize or pageToken.")
        if size < 0 or start < 0:
            return _bad("pageSize and pageToken must not be negative.")
        size = min(size or DEFAULT_PAGE, MAX_PAGE)
        entries = self._entries(app_id)
        page = entries[start:start + size]
        body: dict[str, object] = {"androidDeliveryData": page}
        if start + size < len(entries):
            body["nextPageToken"] = str(start + size)
        return Reply(200, [_JSON], orjson.dumps(body))

    def _entries(self, app_id: str) -> list[dict[str, object]]:
        world = self.testbed.world
        version = ledger_version(world)
        hit = self._cache.get(app_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        entries = delivery_data(Inputs(accepted=fcm_accepted(world)), app_id)
        if len(self._cache) >= CACHED_APPS:
            self._cache.clear()
        self._cache[app_id] = (version, entries)
        return entries
