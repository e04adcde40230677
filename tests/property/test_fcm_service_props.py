"""FcmService under arbitrary requests: always a well-formed answer, and the ledger always balances."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_fcm.oauth import TokenAuthority
from pushsim.config import Config
from pushsim.edge.types import ConnInfo
from pushsim.services.fcm import FcmService
from pushsim.testbed import Testbed

BENCH = Testbed(Config(devices="ios=2,android=3", fcm_project_quota=50), now=lambda: 1_800_000_000.0)
AUTH = TokenAuthority()
SVC = FcmService(BENCH, AUTH)
GOOD = AUTH.issue("p@x", True, 1_800_000_000.0, ttl=10**9)
TOKENS = [BENCH.fleet.fcm_token(i) for i in range(5)] + [SVC.foreign_token(0), "x", "a" * 30 + ":" + "b" * 40]
CONN = ConnInfo(tls=True, alpn="h2", http2=True)

paths = st.sampled_from([b"/v1/projects/pushsim-project/messages:send", b"/v1/projects/123456789012/messages:send",
                         b"/v1/projects/zzz/messages:send", b"/token", b"/iid/v1:batchAdd", b"/iid/v1:batchRemove",
                         b"/v1/projects/pushsim-project/registrations/x/topicSubscriptions?topic_name=t", b"/",
                         b"/v1/projects/pushsim-project/messages:send?x=1"])
messages = st.fixed_dictionaries({}, optional={
    "token": st.sampled_from(TOKENS), "topic": st.sampled_from(["news", "bad topic", ""]),
    "condition": st.sampled_from(["'news' in topics", "!('a' in topics)", "((", "'a' in topics && 'b' in topics"]),
    "data": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(-1000, 1000), max_size=3),
    "notification": st.fixed_dictionaries({}, optional={"title": st.text(max_size=10)}),
    "android": st.fixed_dictionaries({}, optional={
        "priority": st.sampled_from(["high", "NORMAL", "x", 1]), "ttl": st.sampled_from(["0s", "3.5s", "-1s", "9"]),
        "restricted_package_name": st.sampled_from(["com.example.app", "other"])}),
    "apns": st.fixed_dictionaries({}, optional={"headers": st.dictionaries(
        st.sampled_from(["apns-priority", "apns-push-type", "apns-expiration"]), st.sampled_from(["5", "10", "x", "0"]))}),
})
bodies = st.one_of(
    messages.map(lambda m: orjson.dumps({"message": m})),
    st.fixed_dictionaries({"to": st.sampled_from(["/topics/news", "bad"]),
                           "registration_tokens": st.lists(st.sampled_from(TOKENS), max_size=3)}).map(orjson.dumps),
    st.binary(max_size=40))


@settings(max_examples=300, deadline=None)
@given(paths, st.sampled_from([b"POST", b"GET", b"DELETE"]), bodies,
       st.sampled_from([None, b"Bearer " + GOOD.encode(), b"Bearer nope", b"junk"]), st.booleans())
def test_any_request(path: bytes, method: bytes, body: bytes, auth: bytes | None, iid: bool) -> None:
    headers = [(b":method", method), (b":path", path)]
    if auth is not None:
        headers.append((b"authorization", auth))
    if iid:
        headers.append((b"access_token_auth", b"true"))
    r = SVC.handle(CONN, method, path, headers, body)
    assert r.status in (200, 400, 401, 403, 404, 405, 409, 429), r.body
    ctype = dict(r.headers).get(b"content-type", b"")
    if ctype.startswith(b"application/json"):
        doc = orjson.loads(r.body)
        if r.status != 200 and isinstance(doc.get("error"), dict):
            assert doc["error"]["code"] == r.status and doc["error"]["status"]
    else:
        assert ctype.startswith(b"text/html")
    if r.status == 429:
        assert int(dict(r.headers)[b"retry-after"]) >= 1
    BENCH.ledger.check()
