"""The 11 documented apns-push-type values, the topic suffix each needs, and payload/type checks."""
from __future__ import annotations

import orjson

# push type → topic suffix after the bundle id (None: the topic is not derived from a bundle id).
SUFFIX: dict[bytes, str | None] = {
    b"alert": "", b"background": "", b"location": ".location-query", b"voip": ".voip",
    b"complication": ".complication", b"fileprovider": ".pushkit.fileprovider",
    b"liveactivity": ".push-type.liveactivity", b"pushtotalk": ".voip-ptt",
    b"widgets": ".push-type.widgets", b"controls": ".push-type.controls", b"mdm": None,
}
PUSH_TYPES: frozenset[bytes] = frozenset(SUFFIX)
NAMES: dict[bytes, str] = {t: t.decode() for t in SUFFIX}
BY_SUFFIX: dict[str, str] = {s: t.decode() for t, s in SUFFIX.items() if s}
TOPIC_SUFFIXES: tuple[str, ...] = tuple(sorted(BY_SUFFIX, key=len, reverse=True))

PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120


def topic_suffix(topic: str, bundle_id: str) -> str | None:
    """The push-type suffix `topic` adds to `bundle_id`; None if the topic is not this app's."""
    if topic == bundle_id:
        return ""
    if topic.startswith(bundle_id):
        rest = topic[len(bundle_id):]
        if rest in BY_SUFFIX:
            return rest
    return None


def base_topic(topic: str) -> str:
    for s in TOPIC_SUFFIXES:
        if topic.endswith(s):
            return topic[: -len(s)]
    return topic


def _visible(aps: dict[str, object]) -> bool:
    return "alert" in aps or "sound" in aps or "badge" in aps      # any visible key; no generator per request


def payload_fits(push_type: str, aps: dict[str, object]) -> bool:
    """Whether the payload matches its declared push type (Apple: the header "must accurately
    reflect the contents of your notification's payload")."""
    return fits(push_type, aps.get("content-available") == 1, _visible(aps))


def fits(push_type: str, content_available: bool, visible: bool) -> bool:
    """`payload_fits` from the two facts it depends on."""
    if push_type == "background":
        return content_available and not visible
    if push_type == "alert":
        return visible
    return True


class BodyFacts:
    """What the rules need from a payload: parsed once per distinct small body (see `body_facts`)."""
    __slots__ = ("is_object", "content_available", "visible")

    def __init__(self, is_object: bool, content_available: bool, visible: bool) -> None:
        self.is_object, self.content_available, self.visible = is_object, content_available, visible


_FACTS: dict[bytes, BodyFacts] = {}
_FACTS_MAX = 4096          # distinct bodies remembered (cleared wholesale when full)
_FACTS_MAX_BODY = 1024     # larger bodies are parsed every time: the memo stays under ~4 MiB


def body_facts(body: bytes) -> BodyFacts:
    """Parse facts of a JSON body. Senders repeat bodies (one payload to many devices, load tests),
    so small bodies are memoised by their bytes: the result depends on nothing else."""
    hit = _FACTS.get(body)
    if hit is not None:
        return hit
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    aps = doc.get("aps") if isinstance(doc, dict) else None
    if not isinstance(aps, dict):
        aps = {}
    facts = BodyFacts(isinstance(doc, dict), aps.get("content-available") == 1, _visible(aps))
    if len(body) <= _FACTS_MAX_BODY:
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.clear()
        _FACTS[body] = facts
    return facts
