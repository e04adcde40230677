"""Is an HTTP/2 request well-formed? RFC 9113 §8.1.1, §8.2 and §8.3 in one pass over its fields.

Both HTTP/2 engines call `check_request` on every request's decoded header list and
`check_trailers` on trailers, and answer a malformed one with RST_STREAM(PROTOCOL_ERROR): a stream
error, as §8.1.1 asks, so one bad request never costs a client its other streams (h2's own
validation would make it a connection error, and it is off in the h2 engine for speed).

The pass replaces the one the engines already made to find `:method` and `:path`, so the added
cost per request is a set lookup per regular field (names seen are memoised: a bounded set of
short names) and three byte searches per value.
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
_MAX_LENGTH_DIGITS = 18                 # a content-length beyond 10**18 bytes is not a real body
_NAMES_MAX = 4096                       # memo bound: a client inventing names only slows itself
_NAME_MEMO_LEN = 64                     # longer names are checked every time, never kept

# Regular field names that passed the name rules (and are neither `te` nor `content-length`,
# whose values matter): clients send the same few names on every request.
_good_names: set[bytes] = set()


def _value_ok(value: bytes) -> bool:
    """RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing space or tab.

    `13 in value` (an int) is a plain memchr; `b"\\r" in value` first tries the argument as an
    int, fails, clears the exception and then searches: several times slower per field.
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
    method = scheme = path = authority = None
    length: int | None = None
    regular = False                     # a regular field was seen: no pseudo-header may follow
    good = _good_names
    edge = _EDGE_SPACE
    for name, value in headers:
        # _value_ok, inlined: this runs for every field of every request
        if 13 in value or 10 in value or 0 in value or (value and (value[0] in edge or value[-1] in edge)):
            return None
        if name in good:
            regular = True
            continue
        if name[:1] == b":":
            if regular:
                return None
            if name == b":method":
                if method is not None:
                    return None
                method = value
            elif name == b":path":
                if path is not None:
                    return None
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    return None
                scheme = value
            elif name == b":authority":
                if authority is not None:
                    return None
                authority = value
            else:
                return None
            continue
        regular = True
        if name == b"content-length":
            n = _content_length(value)
            if n is None or (length is not None and n != length):
                return None
            length = n
        elif name == b"te":
            if value != b"trailers":
                return None
        elif name in CONNECTION_SPECIFIC or not _name_ok(name):
            return None
        elif len(good) < _NAMES_MAX and len(name) <= _NAME_MEMO_LEN:
            good.add(name)
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
    good = _good_names
    for name, value in headers:
        if not _value_ok(value):
            return False
        if name in good:
            continue
        if name[:1] == b":" or name in CONNECTION_SPECIFIC or not _name_ok(name):
            return False
        if name == b"te" and value != b"trailers":
            return False
    return True


def body_fits(line: RequestLine, body_length: int) -> bool:
    """RFC 9113 §8.1.1: a content-length that differs from the DATA received is malformed."""
    return line[2] is None or line[2] == body_length
