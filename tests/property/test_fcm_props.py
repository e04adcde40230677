"""Invariants: any body gets a success or a well-formed google.rpc.Status; conditions mean what they say."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_fcm.errors import CANONICAL, FcmFailure
from fake_fcm.message import SendRequest, validate
from fake_fcm.topics import ConditionError, parse_condition
from pushsim.edge.http1 import Http1Protocol
from pushsim.edge.types import ConnInfo, Reply

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
FIELDS = ["token", "topic", "condition", "fid", "data", "notification", "android", "apns", "webpush",
          "fcm_options", "name", "ttl", "priority", "collapse_key", "restricted_package_name", "analytics_label",
          "title", "body", "headers", "payload", "aps", "color", "validate_only", "message"]
# Bodies biased toward the real schema, so the search reaches deep validation paths.
schemaish = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["high", "3s", "-1s", "a", "'a' in topics", ""]),
    lambda inner: st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5), max_leaves=25)


def assert_well_formed(result: SendRequest | FcmFailure) -> None:
    if isinstance(result, SendRequest):
        assert result.target in ("token", "topic", "condition", "fid") and result.value
        return
    body = orjson.loads(result.body)
    err = body["error"]
    assert set(body) == {"error"} and err["code"] == result.status
    assert err["status"] == CANONICAL[result.status] and isinstance(err["message"], str) and err["message"]
    for d in err.get("details", []):
        assert d["@type"].startswith("type.googleapis.com/")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_body(value: object) -> None:
    assert_well_formed(validate(orjson.dumps(value)))


@settings(max_examples=250, deadline=None)
@given(schemaish)
def test_schema_shaped_bodies(value: object) -> None:
    assert_well_formed(validate(orjson.dumps({"message": value})))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(raw: bytes) -> None:
    assert_well_formed(validate(raw))


# Conditions: generate an expression tree, render it, parse it, and compare against direct evaluation.
topic_names = st.sampled_from(["A", "B", "C", "d-1", "e_2"])
exprs = st.recursive(topic_names.map(lambda t: ("t", t)),
                     lambda inner: st.tuples(st.just("not"), inner)
                     | st.tuples(st.sampled_from(["and", "or"]), inner, inner), max_leaves=5)


def render(e: tuple) -> str:
    if e[0] == "t":
        return f"'{e[1]}' in topics"
    if e[0] == "not":
        return f"!({render(e[1])})"
    return f"({render(e[1])} {'&&' if e[0] == 'and' else '||'} {render(e[2])})"


def evaluate(e: tuple, s: set[str]) -> bool:
    if e[0] == "t":
        return e[1] in s
    if e[0] == "not":
        return not evaluate(e[1], s)
    return (all if e[0] == "and" else any)(evaluate(x, s) for x in e[1:])


def count(e: tuple) -> int:
    return 1 if e[0] == "t" else sum(count(x) for x in e[1:])


@settings(max_examples=300, deadline=None)
@given(exprs, st.sets(st.sampled_from(["A", "B", "C", "d-1", "e_2"])))
def test_condition_semantics(e: tuple, subs: set[str]) -> None:
    cond = parse_condition(render(e))
    assert cond.test(subs) == evaluate(e, subs)
    assert len(cond.topics) == count(e) <= 5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="'\"!()&| intopcsAB", max_size=60))
def test_condition_parser_never_crashes(text: str) -> None:
    try:
        parse_condition(text)
    except ConditionError:
        pass


class _Svc:
    def open(self, conn: ConnInfo) -> object:
        return None

    def initial_max_streams(self, conn: ConnInfo) -> int | None:
        return None

    def closing_reason(self) -> bytes:
        return b""

    def handle(self, conn: ConnInfo, method: bytes, path: bytes, headers: list, body: bytes) -> Reply:
        return Reply(200, [], body)


class _T:
    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64) | st.sampled_from(
    [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
     b"Transfer-Encoding: chunked\r\n", b"\r\n", b"0\r\n\r\n"]), max_size=8))
def test_http1_engine_never_raises(chunks: list[bytes]) -> None:
    t = _T()
    p = Http1Protocol(_Svc(), set())
    p.connection_made(t)   # type: ignore[arg-type]
    for c in chunks:
        p.data_received(c)
    # Whatever came out is a sequence of complete HTTP/1.1 responses.
    assert t.out == b"" or t.out.startswith(b"HTTP/1.1 ")
