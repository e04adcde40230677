"""The 11 documented apns-push-type values, the topic suffix each needs, and payload/type checks."""
from __future__ import annotations

# push type → topic suffix after the bundle id (None: the topic is not derived from a bundle id).
SUFFIX: dict[bytes, str | None] = {
    b"alert": "", b"background": "", b"location": ".location-query", b"voip": ".voip",
    b"complication": ".complication", b"fileprovider": ".pushkit.fileprovider",
    b"liveactivity": ".push-type.liveactivity", b"pushtotalk": ".voip-ptt",
    b"widgets": ".push-type.widgets", b"controls": ".push-type.controls", b"mdm": None,
}
PUSH_TYPES: frozenset[bytes] = frozenset(SUFFIX)
BY_SUFFIX: dict[str, str] = {s: t.decode() for t, s in SUFFIX.items() if s}
TOPIC_SUFFIXES: tuple[str, ...] = tuple(sorted(BY_SUFFIX, key=len, reverse=True))

PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120
_VISIBLE = ("alert", "sound", "badge")


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


def is_silent(aps: dict[str, object]) -> bool:
    return aps.get("content-available") == 1 and not any(k in aps for k in _VISIBLE)


def payload_fits(push_type: str, aps: dict[str, object]) -> bool:
    """Whether the payload matches its declared push type (Apple: the header "must accurately
    reflect the contents of your notification's payload")."""
    if push_type == "background":
        return is_silent(aps)
    if push_type == "alert":
        return any(k in aps for k in _VISIBLE)
    return True
