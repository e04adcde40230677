"""The conformance rules: what a sender did that Apple's or Google's guidance, or the silent-push
primer's guardrails, say it should not. Sans-IO: `analyse(inputs, policy)` → findings.

Each rule yields offences (one request or notification each); `analyse` groups them per rule and
sender into findings with a count, the tokens involved and bounded evidence (journal ids and times).
Frequency rules count in device time (`at`), so a `--clock scaled:N` run shows hours in minutes;
retry rules measure the sender's backoff in wall time (`t`), which is what its timers run on.
Sources are summarised, with the public URLs, in docs/report.md under each rule's id.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from device_sim.cohorts import Experiment

from .policy import LEVELS, Policy
from .records import Accepted, Inputs, Request

EVIDENCE_LIMIT = 20      # journal references per finding (the count says how many there were)
TOKEN_LIMIT = 20
HOUR, DAY = 3600.0, 86400.0

APNS_RETRYABLE = frozenset({429, 500, 503})
FCM_RETRYABLE = frozenset({429, 500, 503})
# 4xx reasons a resend of the same request cannot cure (the token, topic, headers or body are wrong).
APNS_FINAL = frozenset({
    "BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority", "BadTopic",
    "DeviceTokenNotForTopic", "DuplicateHeaders", "InvalidPushType", "MissingDeviceToken", "MissingTopic",
    "PayloadEmpty", "TopicDisallowed", "BadPath", "MethodNotAllowed", "PayloadTooLarge", "BadCertificate",
    "BadCertificateEnvironment"})
FCM_FINAL = frozenset({"INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR"})
APNS_GONE = frozenset({"Unregistered", "ExpiredToken"})


@dataclass(slots=True)
class Offence:
    sender: str
    token: str | None
    at: float
    t: float | None = None
    request: int | None = None      # journal id
    seq: int | None = None          # accepted notification, when the rule reads those
    note: float | None = None       # a number the finding's detail summarises (e.g. seconds)
    conn: int | None = None         # the connection, when the offence is not a journal request
    weight: int = 1                 # how many offences this one stands for (all alike, times unkept)


def _of_request(r: Request, note: float | None = None) -> Offence:
    return Offence(r.sender, r.token, r.at, r.t, r.id, r.seq, note)


def _of_note(a: Accepted) -> Offence:
    return Offence(a.sender, a.token, a.at, None, a.journal_id, a.seq)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str
    title: str
    advice: str
    source: str
    params: dict[str, float]
    check: Callable[[Inputs, Callable[[str], float]], Iterable[Offence]]
    detail: Callable[[list[Offence]], str] = lambda offs: ""


# helpers --------------------------------------------------------------------------------------------
def _beyond(items: list[tuple[float, object]], window: float, limit: float) -> Iterator[object]:
    """Items (time-sorted) that are more than `limit` within a sliding `window` ending at them."""
    q: deque[float] = deque()
    for at, item in items:
        q.append(at)
        while q and q[0] <= at - window:
            q.popleft()
        if len(q) > limit:
            yield item


def _per_install(notes: Iterable[Accepted]) -> dict[int, list[tuple[float, object]]]:
    out: dict[int, list[tuple[float, object]]] = defaultdict(list)
    for a in notes:
        out[a.install].append((a.at, a))
    for items in out.values():
        items.sort(key=lambda x: x[0])
    return out


# rules: tokens -----------------------------------------------------------------------------------------
def _after_gone(inp: Inputs, service: str, gone: Callable[[Request], bool]) -> Iterator[Offence]:
    first: dict[str, float] = {}
    for r in inp.requests:
        if r.service != service or r.token is None:
            continue
        since = first.get(r.token)
        if since is not None:
            yield _of_request(r, r.at - since)
        elif gone(r):
            first[r.token] = r.at


def apns_after_unregistered(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return _after_gone(inp, "apns", lambda r: r.status == 410 and r.reason in APNS_GONE)


def fcm_after_unregistered(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return _after_gone(inp, "fcm", lambda r: r.status == 404 and r.reason == "UNREGISTERED")


def _gone_detail(offs: list[Offence]) -> str:
    longest = max((o.note or 0.0) for o in offs)
    return f"{len(offs)} send(s) after the token was reported gone, up to {longest:.0f} s (device time) later"


# rules: retries -------------------------------------------------------------------------------------------
def _retries(inp: Inputs, service: str, retryable: frozenset[int], wait_of: Callable[[Request], float]
             ) -> Iterator[Offence]:
    failed: dict[tuple[object, ...], tuple[Request, float]] = {}
    for r in inp.requests:
        if r.service != service or r.token is None:
            continue
        key = r.key
        prev = failed.pop(key, None)
        if prev is not None:
            f, wait = prev
            if r.t - f.t < wait:
                yield _of_request(r, r.t - f.t)
        if r.status in retryable:
            failed[key] = (r, wait_of(r))


def apns_retry_too_soon(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    least = p("min_backoff")
    return _retries(inp, "apns", APNS_RETRYABLE, lambda r: max(least, r.retry_after or 0.0))


def fcm_retry_after_ignored(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    least = p("min_backoff")
    return _retries(inp, "fcm", FCM_RETRYABLE,
                    lambda r: r.retry_after if r.retry_after is not None else least)


def _retry_detail(offs: list[Offence]) -> str:
    soonest = min((o.note or 0.0) for o in offs)
    return f"{len(offs)} resend(s) too soon, the soonest {soonest:.3f} s after the failure"


def _non_retryable(inp: Inputs, service: str, final: Callable[[Request], bool]) -> Iterator[Offence]:
    dead: set[tuple[object, ...]] = set()
    for r in inp.requests:
        if r.service != service or r.token is None:
            continue
        key = r.key
        if key in dead:
            yield _of_request(r)
        elif final(r):
            dead.add(key)


def apns_retry_non_retryable(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return _non_retryable(inp, "apns", lambda r: 400 <= r.status < 500 and r.reason in APNS_FINAL)


def fcm_retry_non_retryable(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return _non_retryable(inp, "fcm", lambda r: 400 <= r.status < 500 and r.reason in FCM_FINAL)


# rules: APNs connections and tokens ---------------------------------------------------------------------------
def apns_token_expired(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return (_of_request(r) for r in inp.requests if r.service == "apns" and r.reason == "ExpiredProviderToken")


def apns_token_refresh(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return (_of_request(r) for r in inp.requests
            if r.service == "apns" and r.reason == "TooManyProviderTokenUpdates")


def apns_connection_churn(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    by_sender: dict[str, dict[int, list[Request]]] = defaultdict(lambda: defaultdict(list))
    for r in inp.requests:
        if r.service == "apns" and r.conn is not None:
            by_sender[r.sender][r.conn].append(r)
    least_conns, per_conn = p("min_connections"), p("min_requests_per_connection")
    for conns in by_sender.values():
        total = sum(len(v) for v in conns.values())
        if len(conns) >= least_conns and total / len(conns) < per_conn:
            for reqs in conns.values():
                yield _of_request(reqs[0], float(len(reqs)))


def apns_goaway_ignored(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    """Streams the client opened above a GOAWAY's last-stream-id, more than `grace` seconds after
    it (sooner, they may have been on the wire before the GOAWAY reached the client). The server
    ignores them (RFC 9113 §6.8), so they are not journal requests: the GOAWAY record counts them
    and keeps the times of the first few; past those, the later ones count if the last kept was late."""
    grace = p("grace")
    for g in inp.goaways:
        if g.service != "apns" or g.late <= 0:
            continue
        late = [(t, at) for t, at in zip(g.late_t, g.late_at) if t - g.t >= grace]
        for t, at in late:
            yield Offence(g.sender, None, at, t, note=t - g.t, conn=g.conn)
        if g.late > len(g.late_t) and g.late_t and g.late_t[-1] - g.t >= grace:
            # the rest, whose times were not kept, in one offence that counts for them all
            t, at = g.late_t[-1], g.late_at[-1]
            yield Offence(g.sender, None, at, t, note=t - g.t, conn=g.conn, weight=g.late - len(g.late_t))


def _goaway_detail(offs: list[Offence]) -> str:
    conns = {o.conn for o in offs}
    first = min((o.note or 0.0) for o in offs)
    return (f"{sum(o.weight for o in offs)} stream(s) opened after the server's GOAWAY on {len(conns)} connection(s), "
            f"the first {first:.3f} s after it; the server ignored them (never answered)")


# rules: payloads and priorities ------------------------------------------------------------------------------
def silent_payload_large(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    limit = p("max_bytes")
    for a in inp.accepted:
        if a.background and a.size > limit:
            o = _of_note(a)
            o.note = float(a.size)
            yield o


def fcm_high_priority_silent(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return (_of_note(a) for a in inp.accepted if a.service == "fcm" and a.push_type == "data" and a.priority >= 10)


def apns_background_frequency(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    notes = (a for a in inp.accepted if a.service == "apns" and a.background)
    for items in _per_install(notes).values():
        for a in _beyond(items, HOUR, p("max_per_hour")):
            assert isinstance(a, Accepted)
            yield _of_note(a)


def fcm_device_rate(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    per_token: dict[str, list[tuple[float, object]]] = defaultdict(list)
    for r in inp.requests:
        if r.service == "fcm" and r.token is not None:
            per_token[r.token].append((r.at, r))
    for items in per_token.values():
        items.sort(key=lambda x: x[0])
        over = {id(x): x for x in _beyond(items, 60.0, p("max_per_minute"))}
        over.update({id(x): x for x in _beyond(items, HOUR, p("max_per_hour"))})
        for r in sorted(over.values(), key=lambda x: x.id):   # type: ignore[attr-defined]
            assert isinstance(r, Request)
            yield _of_request(r)


def _dropped(reason: str) -> Callable[[Inputs, Callable[[str], float]], Iterator[Offence]]:
    def check(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
        return (_of_note(a) for a in inp.accepted
                if a.service == "fcm" and a.outcome == "dropped" and a.reason == reason)
    return check


# the primer's guardrails ---------------------------------------------------------------------------------------
def guardrail_frequency_cap(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    for items in _per_install(a for a in inp.accepted if a.background).values():
        for a in _beyond(items, p("window"), p("max")):
            assert isinstance(a, Accepted)
            yield _of_note(a)


def guardrail_micro_batching(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    for items in _per_install(a for a in inp.accepted if a.background).values():
        for a in _beyond(items, p("window"), p("pushes") - 1):
            assert isinstance(a, Accepted)
            yield _of_note(a)


def guardrail_quiet_hours(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    start, end = p("start_hour") % 24, p("end_hour") % 24
    for a in inp.accepted:
        if not a.visible:
            continue
        inst = inp.installs.get(a.install)
        local = a.at + (inst.tz_minutes if inst else 0) * 60.0
        hour = (local % DAY) / HOUR
        quiet = (start <= hour < end) if start <= end else (hour >= start or hour < end)
        if quiet:
            o = _of_note(a)
            o.note = hour
            yield o


def guardrail_inactive_install(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    idle = p("days") * DAY
    first: dict[int, float] = {}
    for a in inp.accepted:
        # Active since its last open, or (never opened) since the first push it got.
        since = first.setdefault(a.install, a.at)
        inst = inp.installs.get(a.install)
        if inst is not None and inst.opened_at is not None and inst.opened_at <= a.at:
            since = inst.opened_at
        if a.at - since > idle:
            yield _of_note(a)
    for r in inp.requests:
        if (r.service == "apns" and r.status == 410) or (r.service == "fcm" and r.reason == "UNREGISTERED"):
            yield _of_request(r)


def guardrail_visible_before_ready(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    return (_of_note(a) for a in inp.accepted if a.visible and a.outcome == "delivered" and a.ready is False)


def guardrail_no_effect(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    newest: dict[int, int] = {}
    for a in inp.accepted:       # seq order = the order the installs saw them announced
        if a.version <= 0:
            continue             # never reached the device: nothing to judge
        before = newest.get(a.install, 0)
        if a.background and a.version <= before:
            yield _of_note(a)
        if a.version > before:
            newest[a.install] = a.version


# experiments -------------------------------------------------------------------------------------------------------
def experiment_send_to_holdout(inp: Inputs, p: Callable[[str], float]) -> Iterator[Offence]:
    """An advertised holdout: the sender was told which installs to skip (GET /experiment/assignments)."""
    desc = inp.experiment
    if desc is None or desc.get("mode") != "advertised":
        return iter(())
    try:
        exp = Experiment.from_description(desc)
    except (KeyError, TypeError, ValueError):
        return iter(())           # a header from elsewhere we cannot read: no finding, not a crash
    silent_only = exp.withhold == "silent"
    return (_of_note(a) for a in inp.accepted
            if (a.background or not silent_only) and exp.arm_of(a.install) == exp.holdout)


# the catalogue ----------------------------------------------------------------------------------------------------
_ADOC = "https://developer.apple.com/documentation/usernotifications/"
_FCM = "https://firebase.google.com/docs/"
_APNS_ERR = f"Apple, Handling notification responses from APNs, {_ADOC}handling-notification-responses-from-apns"
_APNS_TOKEN = f"Apple, Establishing a token-based connection to APNs, {_ADOC}establishing-a-token-based-connection-to-apns"
_APNS_SEND = f"Apple, Sending notification requests to APNs, {_ADOC}sending-notification-requests-to-apns"
_FCM_ERR = f"Google, FCM error codes, {_FCM}reference/fcm/rest/v1/ErrorCode"
_PRIMER = "silent-push primer §9 (docs/report.md#the-silent-push-primers-guardrails)"
RULES: tuple[Rule, ...] = (
    Rule("apns.send-after-unregistered", "error", "Sends to an APNs token after 410 Unregistered",
         "Stop sending to a token once APNs answers 410; remove it from your store.",
         f"{_APNS_ERR} (410 Unregistered / ExpiredToken)", {}, apns_after_unregistered, _gone_detail),
    Rule("fcm.send-after-unregistered", "error", "Sends to an FCM token after 404 UNREGISTERED",
         "Delete a registration token when FCM answers UNREGISTERED; it will never work again.",
         f"{_FCM_ERR} (UNREGISTERED)", {}, fcm_after_unregistered, _gone_detail),
    Rule("apns.retry-too-soon", "error", "APNs retries without backoff after 429/500/503",
         "Back off (exponentially, with jitter) before resending after 429, 500 or 503.",
         f"{_APNS_ERR} (429 TooManyRequests, 500, 503)", {"min_backoff": 0.1}, apns_retry_too_soon, _retry_detail),
    Rule("fcm.retry-after-ignored", "error", "FCM retries before the Retry-After",
         "Wait at least Retry-After seconds (or back off exponentially from 1 s) before resending.",
         f"Google, FCM error codes, {_FCM}cloud-messaging/error-codes (UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED: retry with backoff)",
         {"min_backoff": 0.1}, fcm_retry_after_ignored, _retry_detail),
    Rule("apns.retry-non-retryable", "error", "APNs request resent unchanged after a final 4xx",
         "Fix the request (token, topic, headers, payload) instead of resending it.",
         f"{_APNS_ERR} (400/403/413 reasons)", {}, apns_retry_non_retryable),
    Rule("fcm.retry-non-retryable", "error", "FCM message resent unchanged after a final 4xx",
         "INVALID_ARGUMENT and SENDER_ID_MISMATCH do not go away on retry; fix the message or the credentials.",
         f"{_FCM_ERR} (INVALID_ARGUMENT, SENDER_ID_MISMATCH)", {}, fcm_retry_non_retryable),
    Rule("apns.background-too-frequent", "warning", "More background pushes per install per hour than Apple advises",
         "Send at most two or three background pushes an hour to one device; batch the rest.",
         f"Apple, Pushing background updates to your app, {_ADOC}pushing-background-updates-to-your-app (\"two or three per hour\")", {"max_per_hour": 3.0},
         apns_background_frequency),
    Rule("apns.token-refresh-too-often", "error", "New provider token within 20 min on a connection",
         "Refresh the provider token no more than once every 20 minutes per connection.",
         f"{_APNS_TOKEN} (429 TooManyProviderTokenUpdates)", {},
         apns_token_refresh),
    Rule("apns.token-expired", "error", "Provider token older than one hour",
         "Refresh the provider token at least once every 60 minutes.",
         f"{_APNS_TOKEN} (403 ExpiredProviderToken)", {}, apns_token_expired),
    Rule("apns.connection-churn", "warning", "A connection per push: no reuse or multiplexing",
         "Keep connections to APNs open for hours and send many notifications on each.",
         f"{_APNS_SEND} (reuse connections)",
         {"min_connections": 10.0, "min_requests_per_connection": 2.0}, apns_connection_churn),
    Rule("apns.goaway-ignored", "warning", "Requests on a connection after the server's GOAWAY",
         "After GOAWAY, finish in-flight streams and open a new connection for new requests.",
         f"{_APNS_SEND} (GOAWAY with a reason); RFC 9113 §6.8", {"grace": 0.05}, apns_goaway_ignored,
         _goaway_detail),
    Rule("silent.payload-large", "warning", "Background payload over the signal size",
         "Keep silent pushes small: send a signal and let the app fetch the content.",
         f"{_PRIMER}: \"keep payloads minimal – use the push as a signal\"", {"max_bytes": 2048.0},
         silent_payload_large),
    Rule("fcm.high-priority-without-notification", "warning", "High-priority data messages that show nothing",
         "Use high priority only for messages that show a notification; Android lowers the others.",
         f"Google, Android message priority, {_FCM}cloud-messaging/android/message-priority", {}, fcm_high_priority_silent),
    Rule("fcm.device-rate", "error", "Over FCM's per-device rate (240/min or 5,000/h)",
         "Stay under 240 messages a minute and 5,000 an hour to one device; collapse bursts.",
         f"Google, Throttling and scaling, {_FCM}cloud-messaging/concept-options#throttling-and-scaling",
         {"max_per_minute": 240.0, "max_per_hour": 5000.0}, fcm_device_rate),
    Rule("fcm.too-many-pending", "warning", "Sends that made FCM discard an offline device's messages",
         "Use collapse keys or fewer messages for offline devices: over 100 pending, FCM deletes them all.",
         f"Google, Collapsible and non-collapsible messages, {_FCM}cloud-messaging/customize-messages/collapsible-message-types (100 pending)", {}, _dropped("too-many-pending")),
    Rule("fcm.collapse-key-limit", "warning", "More than four collapse keys pending for one device",
         "Use at most four collapse keys per device; FCM discards one when a fifth arrives.",
         f"Google, Collapsible and non-collapsible messages, {_FCM}cloud-messaging/customize-messages/collapsible-message-types (four collapse keys)", {}, _dropped("collapse-key-limit")),
    Rule("guardrail.frequency-cap", "warning", "Silent pushes over the per-install frequency cap",
         "Cap background pushes per install per window; combine updates.",
         f"{_PRIMER}: \"frequency caps per user/device\"", {"max": 24.0, "window": DAY},
         guardrail_frequency_cap),
    Rule("guardrail.quiet-hours", "warning", "Visible pushes in an install's local quiet hours",
         "Hold visible pushes until the install's local quiet hours end.",
         f"{_PRIMER}: \"quiet hours where appropriate\"", {"start_hour": 22.0, "end_hour": 7.0},
         guardrail_quiet_hours),
    Rule("guardrail.inactive-install", "warning", "Sends to inactive or uninstalled installs",
         "Suppress sends to installs not opened for a long time, and to uninstalled ones.",
         f"{_PRIMER}: \"suppression rules for inactive or uninstalled users\"", {"days": 30.0},
         guardrail_inactive_install),
    Rule("guardrail.micro-batching", "warning", "Background pushes in bursts that could have been one",
         "Combine background updates sent within a short window into one push.",
         f"{_PRIMER}: \"use restraint and batching … avoid frequent micro-updates\"",
         {"pushes": 3.0, "window": 60.0}, guardrail_micro_batching),
    Rule("guardrail.visible-before-ready", "warning", "Visible push landed before its content was ready",
         "Send the silent push first, and the visible one once the app has the content.",
         f"{_PRIMER}: \"send Silent Push first to prepare the landing\"", {},
         guardrail_visible_before_ready),
    Rule("experiment.send-to-holdout", "warning", "Pushes sent to installs of the advertised holdout",
         "Skip the holdout's installs (GET /experiment/assignments?arm=holdout): every push to them blurs the lift.",
         "pushsim experiments, docs/experiments.md (advertised holdout)", {}, experiment_send_to_holdout),
    Rule("guardrail.no-effect", "info", "Background updates that changed nothing on the device",
         "Send a background update only when there is something new for the app.",
         f"{_PRIMER}: \"tie every background update to user value\"", {}, guardrail_no_effect),
)
BY_ID = {r.id: r for r in RULES}
DEFAULTS: dict[str, dict[str, float]] = {r.id: dict(r.params) for r in RULES}


def _finding(rule: Rule, severity: str, sender: str, offs: list[Offence]) -> dict[str, object]:
    tokens = sorted({o.token for o in offs if o.token is not None})
    evidence: list[dict[str, object]] = []
    for o in offs[:EVIDENCE_LIMIT]:
        ev: dict[str, object] = {"at": o.at}
        if o.request is not None:
            ev["id"] = o.request
        if o.t is not None:
            ev["t"] = o.t
        if o.seq is not None:
            ev["seq"] = o.seq
        if o.conn is not None:
            ev["conn"] = o.conn
        evidence.append(ev)
    return {"rule": rule.id, "severity": severity, "title": rule.title, "sender": sender,
            "tokens": tokens[:TOKEN_LIMIT], "tokens_total": len(tokens), "count": sum(o.weight for o in offs),
            "evidence": evidence, "detail": rule.detail(offs) if offs else "", "advice": rule.advice,
            "source": rule.source}


def analyse(inp: Inputs, policy: Policy | None = None) -> list[dict[str, object]]:
    """Every finding, most severe first, then by rule id and sender."""
    policy = policy or Policy()
    out: list[dict[str, object]] = []
    for rule in RULES:
        if rule.id in policy.ignore:
            continue
        params = {**rule.params, **policy.params.get(rule.id, {})}
        by_sender: dict[str, list[Offence]] = defaultdict(list)
        for o in rule.check(inp, params.__getitem__):
            by_sender[o.sender].append(o)
        severity = policy.severity.get(rule.id, rule.severity)
        out.extend(_finding(rule, severity, s, offs) for s, offs in sorted(by_sender.items()))
    out.sort(key=lambda f: (-LEVELS[str(f["severity"])], str(f["rule"]), str(f["sender"])))
    return out


def failing(findings: list[dict[str, object]], fail_on: str) -> list[dict[str, object]]:
    """The findings at or above `fail_on` ("error" | "warning" | "info" | "never")."""
    if fail_on not in LEVELS:
        raise ValueError(f"fail_on must be one of {', '.join(LEVELS)}, not {fail_on!r}")
    level = LEVELS[fail_on]
    return [f for f in findings if LEVELS[str(f["severity"])] >= level]
