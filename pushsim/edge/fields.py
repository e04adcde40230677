"""Is an HTTP/2 request well-formed? RFC 9113 §8.1.1, §8.2 and §8.3 in one pass over its fields.

Both HTTP/2 engines call `check_request` on every request's decoded header list and
`check_trailers` on trailers, and answer a malformed one with RST_STREAM(PROTOCOL_ERROR): a stream
error, as §8.1.1 asks, so one bad request never costs a client its other streams (h2's own
validation would make it a connection error, and it is off in the h2 engine for speed).

The pass replaces the one the engines already made to find `:method` and `:path`; a field already
seen costs one dict lookup (a bounded memo), any other field three memchr and a few compares.
"""
from __future__ import annotations

from .types import Headers

# (:method, :path, content-length or None when absent): a plain tuple, built once per request
RequestLine = tuple[bytes, bytes, "int | None"]

# Decoded header list bytes (RFC 9113 §6.5.2 sizes) either engine accepts; more is a connection
# error (ENHANCE_YOUR_CALM). The MAX_HEADER_LIST_SIZE 8000 we announce, as APNs does, is advisory.
MAX_HEADER_LIST = 65536

# RFC 9113 §8.2.2: meaningless in HTTP/2, so their presence makes a request malformed.
CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                 b"transfer-encoding", b"upgrade"})
# RFC 9113 §8.2.1: a name holds none of 0x00-0x20, A-Z, 0x7F-0xFF, and no ':' outside the
# pseudo-header prefix. `bytes.translate(None, these)` drops them, so a change in length = bad.
_BAD_NAME_BYTES = bytes(range(0x21)) + bytes(range(0x41, 0x5B)) + b":" + bytes(range(0x7F, 0x100))
_EDGE_SPACE = (0x20, 0x09)              # SP, HTAB
_PSEUDO = {b":method": 0, b":scheme": 1, b":path": 2, b":authority": 3}   # RFC 9113 §8.3.1
_PATH = _PSEUDO[b":path"]
_REGULAR = -1
_MAX_LENGTH_DIGITS = 18                 # a content-length beyond 10**18 bytes is not a real body
_MEMO_MAX = 4096                        # fields remembered; the memo is emptied when full
_MEMO_FIELD_MAX = 1024                  # bytes of name + value; longer fields are never kept

# Fields (name, value) that passed every rule → their _PSEUDO slot, or _REGULAR; never
# content-length or :path. Senders repeat most fields on every request (authorization with the
# same JWT, apns-topic, :method...), and HPACK hands them back as the same objects, so one dict
# lookup replaces a field's checks. A sender varying its values (apns-id) only refills the memo;
# its bounds hold for any input.
_known: dict[tuple[bytes, bytes], int] = {}


def _remember(field: tuple[bytes, bytes], slot: int) -> None:
    if len(field[0]) + len(field[1]) <= _MEMO_FIELD_MAX:
        if len(_known) >= _MEMO_MAX:
            _known.clear()
        _known[field] = slot


def value_ok(value: bytes) -> bool:
    """RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing SP or HTAB.

    `13 in value` (an int) is a plain memchr; `b"\\r" in value` would first try the argument as
    an int, fail and clear the exception: several times slower, on every field of every request.
    """
    if 13 in value or 10 in value or 0 in value:
        return False
    return not value or (value[0] not in _EDGE_SPACE and value[-1] not in _EDGE_SPACE)


def _name_ok(name: bytes) -> bool:
    return bool(name) and len(name.translate(None, _BAD_NAME_BYTES)) == len(name)


def _content_length(value: bytes) -> int | None:
    """RFC 9110 §8.6: 1*DIGIT (bytes.isdigit is ASCII-only); None when invalid."""
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        return None
    return int(value)


def check_request(headers: Headers) -> RequestLine | None:
    """The request line of a well-formed request, or None for a malformed one.

    Malformed (RFC 9113): a field name or value breaking §8.2.1; a connection-specific field or
    `te` other than "trailers" (§8.2.2); a pseudo-header after a regular field, an unknown one
    (`:status`, `:protocol` — extended CONNECT is not offered — included), a duplicated one, a
    missing `:method`, `:scheme` or `:path`, or an empty `:path` (§8.3); an invalid or conflicting
    `content-length` (its match with the body is checked once the body is in: `body_fits`).
    CONNECT (§8.5) takes `:authority` and no `:scheme` / `:path`; its path is reported as b"".
    `host` in place of `:authority` is fine (§8.3.1), and neither is required.
    """
    pseudo: list[bytes | None] = [None, None, None, None]   # indexed by _PSEUDO
    length: int | None = None
    regular = False                     # a regular field was seen: no pseudo-header may follow
    known = _known
    edge = _EDGE_SPACE
    for field in headers:
        slot = known.get(field)
        if slot is None:                # not seen before (or forgotten): the full rules
            name, value = field
            # value_ok, inlined
            if 13 in value or 10 in value or 0 in value or (value and (value[0] in edge or value[-1] in edge)):
                return None
            slot = _PSEUDO.get(name)
            if slot is None:
                if name[:1] == b":":
                    return None         # unknown, or a response pseudo-header
                if name == b"content-length":   # never remembered: its value is needed
                    regular = True
                    n = _content_length(value)
                    if n is None or (length is not None and n != length):
                        return None
                    length = n
                    continue
                if name in CONNECTION_SPECIFIC or not _name_ok(name) or (name == b"te" and value != b"trailers"):
                    return None
                slot = _REGULAR
            if slot != _PATH:           # paths name one device each: too many to keep
                _remember(field, slot)
        if slot == _REGULAR:
            regular = True
        elif regular or pseudo[slot] is not None:
            return None                 # a pseudo-header after a regular field, or twice
        else:
            pseudo[slot] = field[1]
    method, scheme, path, authority = pseudo
    if method is None:
        return None
    if method == b"CONNECT":
        if authority is None or scheme is not None or path is not None:
            return None
        return method, b"", length
    if scheme is None or not path:
        return None
    return method, path, length


def check_trailers(headers: Headers) -> bool:
    """Trailers (RFC 9113 §8.1): the field rules of `check_request` and no pseudo-header at all."""
    known = _known
    for field in headers:
        if known.get(field) == _REGULAR:
            continue
        name, value = field
        if not value_ok(value):
            return False
        if name[:1] == b":" or name in CONNECTION_SPECIFIC or not _name_ok(name):
            return False
        if name == b"te" and value != b"trailers":
            return False
    return True


def body_fits(line: RequestLine, body_length: int) -> bool:
    """RFC 9113 §8.1.1: a content-length that differs from the DATA received is malformed."""
    return line[2] is None or line[2] == body_length
