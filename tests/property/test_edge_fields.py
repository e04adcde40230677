"""`pushsim.edge.fields`: any well-formed request passes with its request line, and any single
RFC 9113 violation (§8.2.1 field syntax, §8.2.2 connection-specific fields, §8.3 pseudo-headers,
content-length syntax) anywhere in it makes it malformed."""
from __future__ import annotations

from hypothesis import example, given, strategies as st

from pushsim.edge import fields
from pushsim.edge.fields import body_fits, check_request, check_trailers

NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~"
names = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(NAME_BYTES[x % len(NAME_BYTES)] for x in b)).filter(
    lambda n: n not in (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                        b"upgrade", b"te", b"content-length"))
# any byte but NUL, CR, LF; no SP or HTAB at either end
values = st.binary(max_size=20).map(lambda b: bytes(x for x in b if x not in (0, 10, 13))).map(
    lambda b: b.strip(b" \t"))
regular = st.lists(st.tuples(names, values), max_size=6)
methods = st.sampled_from([b"POST", b"GET", b"HEAD", b"OPTIONS", b"PUT"])
paths = st.binary(min_size=1, max_size=20).map(lambda b: b"/" + b.hex().encode())


@st.composite
def requests(draw: st.DrawFn) -> tuple[list, bytes, bytes, int | None]:
    method, path = draw(methods), draw(paths)
    pseudo = [(b":method", method), (b":scheme", draw(st.sampled_from([b"https", b"http"]))),
              (b":path", path)]
    if draw(st.booleans()):
        pseudo.append((b":authority", b"api.push.apple.com"))
    pseudo = draw(st.permutations(pseudo))
    fields = draw(regular)
    length = draw(st.none() | st.integers(0, 10**12))
    if length is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"content-length", b"%d" % length))
    if draw(st.booleans()):
        fields.append((b"te", b"trailers"))
    return list(pseudo) + fields, method, path, length


def _break(headers: list, kind: int, at: int) -> list:
    """One violation of RFC 9113 inserted or applied at position `at`."""
    h = list(headers)
    at %= len(h) + 1
    npseudo = sum(1 for n, _ in h if n[:1] == b":")
    bad_fields = [(b"X-Upper", b"1"), (b"sp ace", b"1"), (b"co:lon", b"1"), (b"", b"1"),
                  (b"x-v", b"a\r\nb"), (b"x-v", b"\0"), (b"x-v", b" lead"), (b"x-v", b"trail\t"),
                  (b"connection", b"close"), (b"upgrade", b"h2c"), (b"transfer-encoding", b"chunked"),
                  (b"keep-alive", b"1"), (b"proxy-connection", b"1"), (b"te", b"gzip"),
                  (b":unknown", b"1"), (b":status", b"200"), (b"content-length", b"12a"),
                  (b"x-\x7f", b"1")]
    if kind < len(bad_fields):
        name, value = bad_fields[kind]
        if name[:1] == b":":
            at = min(at, npseudo)        # a pseudo-header where pseudo-headers may stand
        h.insert(at, (name, value))
    elif kind == len(bad_fields):        # a pseudo-header duplicated
        h.insert(min(at, npseudo), h[at % npseudo])
    elif kind == len(bad_fields) + 1:    # a required pseudo-header dropped
        needed = [i for i, (n, _) in enumerate(h) if n in (b":method", b":scheme", b":path")]
        del h[needed[at % len(needed)]]
    elif kind == len(bad_fields) + 2:    # a pseudo-header moved after a regular field
        if npseudo == len(h):
            h.append((b"x-regular", b"1"))
        h.append(h.pop(at % npseudo))
    elif kind == len(bad_fields) + 3:    # :path emptied
        h = [(n, b"" if n == b":path" else v) for n, v in h]
    else:                                # a second, different content-length
        cl = [v for n, v in h if n == b"content-length"]
        h += [(b"content-length", b"%d" % (int(cl[0]) + 1))] if cl else [
            (b"content-length", b"0"), (b"content-length", b"1")]
    return h


KINDS = 18 + 5


@given(requests())
@example(([(b":method", b"CONNECT"), (b":authority", b"a")], b"CONNECT", b"", None))
def test_well_formed_requests_pass(req: tuple) -> None:
    headers, method, path, length = req
    assert check_request(headers) == (method, path, length)
    assert body_fits(check_request(headers), 0 if length is None else length)
    assert body_fits(check_request(headers), 5) is (length is None or length == 5)


@given(requests(), st.integers(0, KINDS - 1), st.integers(0, 20))
@example(([(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/")], b"", b"", None), 19, 0)
def test_any_single_violation_is_malformed(req: tuple, kind: int, at: int) -> None:
    assert check_request(_break(req[0], kind, at)) is None


@given(regular)
def test_trailers_take_regular_fields_only(fields: list) -> None:
    assert check_trailers(fields)
    assert not check_trailers(fields + [(b":path", b"/")])
    assert not check_trailers([(b"Upper", b"1")] + fields)
    assert not check_trailers(fields + [(b"x-v", b"a\nb")])


def test_the_field_memo_is_bounded_and_never_hides_a_rule() -> None:
    """A sender inventing fields only refills the memo; a remembered field still counts for the
    pseudo-header order and duplicate rules, and long fields are never kept."""
    base = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/")]
    for i in range(fields._MEMO_MAX + 500):
        assert check_request(base + [(b"x-id", b"%d" % i), (b"x-long", b"v" * 2000)]) is not None
        assert len(fields._known) <= fields._MEMO_MAX
    assert all(len(n) + len(v) <= fields._MEMO_FIELD_MAX for n, v in fields._known)
    check_request(base + [(b"apns-topic", b"t")])                      # now remembered, all four
    assert check_request([(b"apns-topic", b"t")] + base) is None       # pseudo after regular
    assert check_request(base + [(b":method", b"POST")]) is None       # a remembered duplicate
    assert check_request(base[:2] + [(b"apns-topic", b"t")]) is None   # :path missing
