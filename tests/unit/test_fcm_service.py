"""FcmService without sockets: routing, auth, token resolution, quotas, fan-out, notifications."""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest

from device_sim.notification import Outcome
from fake_fcm.oauth import JWT_BEARER, ServiceAccount, TokenAuthority
from fake_fcm.testing import make_service_account, sign_assertion
from pushsim.config import Config
from pushsim.edge.types import ConnInfo, Reply
from pushsim.faults import FaultingService
from pushsim.services.fcm import FcmService
from pushsim.testbed import Testbed

CONN = ConnInfo(tls=True, alpn="h2", http2=True)
SEND = b"/v1/projects/pushsim-project/messages:send"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def info() -> dict[str, str]:
    return make_service_account()


class World:
    def __init__(self, info: dict[str, str], **cfg: object) -> None:
        self.clock = Clock()
        self.testbed = Testbed(Config(devices="ios=4,android=6", **cfg), now=self.clock)
        self.authority = TokenAuthority(ttl=lambda: self.testbed.config.access_token_ttl)
        self.authority.add_account(ServiceAccount.from_info(info))
        self.svc = FcmService(self.testbed, self.authority)
        self.token = self.authority.issue(info["client_email"], True, self.clock())
        self.fleet = self.testbed.fleet

    def post(self, path: bytes, body: bytes, token: str | None = "default", extra: list | None = None) -> Reply:
        token = self.token if token == "default" else token
        headers = [(b":method", b"POST"), (b":path", path), (b":scheme", b"https"), (b":authority", b"fcm.test")]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        return self.svc.handle(CONN, b"POST", path, headers + (extra or []), body)

    def send(self, msg: dict, **kw: object) -> Reply:
        return self.post(SEND, orjson.dumps({"message": msg, **kw}))

    def iid(self, op: str, topic: str, tokens: list[str]) -> Reply:
        return self.post(f"/iid/v1:{op}".encode(), orjson.dumps({"to": f"/topics/{topic}",
                                                                  "registration_tokens": tokens}),
                         extra=[(b"access_token_auth", b"true")])

    def android(self, k: int = 0) -> int:
        return [i for i in range(len(self.fleet)) if self.fleet.platform_of(i) == "android"][k]

    def ios(self, k: int = 0) -> int:
        return [i for i in range(len(self.fleet)) if self.fleet.platform_of(i) == "ios"][k]


@pytest.fixture
def w(info: dict[str, str]) -> World:
    return World(info)


def error_of(r: Reply) -> dict:
    return orjson.loads(r.body)["error"]


def test_send_to_fleet_token_reaches_the_install(w: World) -> None:
    i = w.android()
    r = w.send({"token": w.fleet.fcm_token(i), "data": {"a": "b"}})
    assert r.status == 200
    name = orjson.loads(r.body)["name"]
    assert name.startswith("projects/pushsim-project/messages/0:")
    mid = name.rsplit("/", 1)[1]
    assert len(mid.split(":")[1].split("%")[0]) == 16 and len(mid.split("%")[1]) == 16
    [d] = w.testbed.ledger.deliveries(i)
    # The OS policy decides when it is delivered; the service's part is one accepted notification.
    assert d["outcome"] in {o.value for o in Outcome} and d["id"] == name and d["push_type"] == "data"
    assert d["priority"] == 5
    w.testbed.ledger.check()
    assert w.testbed.journal.entries[-1].status == 200


def test_message_names_are_unique(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    names = {orjson.loads(w.send({"token": tok}).body)["name"] for _ in range(50)}
    assert len(names) == 50


def test_validate_only_sends_nothing(w: World) -> None:
    i = w.android()
    assert w.send({"token": w.fleet.fcm_token(i)}, validate_only=True).status == 200
    assert w.testbed.ledger.accepted == 0


def test_numeric_project_and_wrong_project(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    assert w.post(b"/v1/projects/123456789012/messages:send", orjson.dumps({"message": {"token": tok}})).status == 200
    r = w.post(b"/v1/projects/other/messages:send", orjson.dumps({"message": {"token": tok}}))
    assert r.status == 403 and error_of(r)["status"] == "PERMISSION_DENIED"


def test_uninstalled_unknown_foreign_and_garbage_tokens(w: World) -> None:
    i = w.android()
    w.fleet.uninstall(i, 0)
    r = w.send({"token": w.fleet.fcm_token(i)})
    assert r.status == 404 and error_of(r) == {
        "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}
    assert w.send({"token": w.fleet.codec.fcm_token(10_000)}).status == 404        # never issued
    r = w.send({"token": w.svc.foreign_token(1)})
    assert r.status == 403 and error_of(r)["details"][0]["errorCode"] == "SENDER_ID_MISMATCH"
    r = w.send({"token": "not-a-token"})
    assert r.status == 400 and error_of(r)["message"] == "The registration token is not a valid FCM registration token"
    assert w.testbed.ledger.accepted == 0
    assert w.testbed.ledger.rejected["UNREGISTERED"] == 2


def test_restricted_package_name(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    assert w.send({"token": tok, "android": {"restricted_package_name": "com.example.app"}}).status == 200
    r = w.send({"token": tok, "android": {"restricted_package_name": "com.other"}})
    assert r.status == 400
    assert error_of(r)["details"][1]["fieldViolations"][0]["field"] == "message.android.restricted_package_name"


def test_auth_failures_and_expiry(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    assert w.post(SEND, orjson.dumps({"message": {"token": tok}}), token=None).status == 401
    w.clock.t += 3600
    r = w.send({"token": tok})
    assert r.status == 401 and error_of(r)["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    assert (b"www-authenticate", b'Bearer realm="https://accounts.google.com/"') in r.headers


def test_token_endpoint_on_the_same_service(w: World, info: dict) -> None:
    jwt = sign_assertion(info, w.clock(), aud="https://fcm.test/token")
    r = w.post(b"/token", urlencode({"grant_type": JWT_BEARER, "assertion": jwt}).encode(), token=None)
    assert r.status == 200
    access = orjson.loads(r.body)["access_token"]
    assert w.post(SEND, orjson.dumps({"message": {"token": w.fleet.fcm_token(0)}}), token=access).status == 200


def test_unknown_path_and_method(w: World) -> None:
    r = w.post(b"/v1/nope", b"{}")
    assert r.status == 404 and b"Error 404" in r.body
    r = w.svc.handle(CONN, b"GET", SEND, [], b"")
    assert r.status == 405


def test_project_quota_counts_client_errors(info: dict) -> None:
    w = World(info, fcm_project_quota=5)
    tok = w.fleet.fcm_token(w.android())
    for _ in range(3):
        assert w.send({"token": tok}).status == 200
    for _ in range(2):
        assert w.send({"token": "bad"}).status == 400
    r = w.send({"token": tok})
    assert r.status == 429
    e = error_of(r)
    assert e["status"] == "RESOURCE_EXHAUSTED" and e["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    assert e["details"][1]["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"
    retry = int(dict(r.headers)[b"retry-after"])
    assert 1 <= retry <= 60
    w.clock.t += 61
    assert w.send({"token": tok}).status == 200


def test_per_device_quota(w: World) -> None:
    a, b = w.fleet.fcm_token(w.android(0)), w.fleet.fcm_token(w.android(1))
    for _ in range(240):
        assert w.send({"token": a}).status == 200
    r = w.send({"token": a})
    assert r.status == 429 and int(dict(r.headers)[b"retry-after"]) >= 1
    assert w.send({"token": b}).status == 200          # other devices are unaffected
    w.clock.t += 30                                    # a sliding minute: still full half a minute on
    r = w.send({"token": a})
    assert r.status == 429 and int(dict(r.headers)[b"retry-after"]) == 30
    w.clock.t += 30
    assert sum(w.send({"token": a}).status == 200 for _ in range(300)) == 240


def test_topic_fan_out_reaches_exactly_the_subscribers(w: World) -> None:
    subs = [w.android(0), w.ios(1), w.android(3)]
    r = w.iid("batchAdd", "news", [w.fleet.fcm_token(i) for i in subs] + ["junk", w.svc.foreign_token(0)])
    assert r.status == 200
    assert orjson.loads(r.body)["results"] == [{}, {}, {}, {"error": "INVALID_ARGUMENT"},
                                              {"error": "PERMISSION_DENIED"}]
    assert w.send({"topic": "news", "notification": {"title": "t"}}).status == 200
    reached = {i for i in range(len(w.fleet)) if w.testbed.ledger.deliveries(i)}
    assert reached == set(subs)
    w.iid("batchRemove", "news", [w.fleet.fcm_token(subs[0])])
    w.send({"topic": "news"})
    assert len(w.testbed.ledger.deliveries(subs[0])) == 1 and len(w.testbed.ledger.deliveries(subs[1])) == 2
    w.testbed.ledger.check()


def test_condition_fan_out(w: World) -> None:
    a, b, c = w.android(0), w.android(1), w.android(2)
    w.iid("batchAdd", "A", [w.fleet.fcm_token(a), w.fleet.fcm_token(b)])
    w.iid("batchAdd", "B", [w.fleet.fcm_token(b), w.fleet.fcm_token(c)])
    assert w.send({"condition": "'A' in topics && !('B' in topics)"}).status == 200
    assert [bool(w.testbed.ledger.deliveries(i)) for i in (a, b, c)] == [True, False, False]
    assert w.send({"condition": "'A' in topics || 'B' in topics"}).status == 200
    assert [len(w.testbed.ledger.deliveries(i)) for i in (a, b, c)] == [2, 1, 1]


def test_iid_needs_access_token_auth(w: World) -> None:
    body = orjson.dumps({"to": "/topics/x", "registration_tokens": [w.fleet.fcm_token(0)]})
    assert w.post(b"/iid/v1:batchAdd", body).status == 401          # no access_token_auth: true
    r = w.post(b"/iid/v1:batchAdd", orjson.dumps({"to": "/topics/x", "registration_tokens": ["t"] * 1001}),
               extra=[(b"access_token_auth", b"true")])
    assert r.status == 400 and orjson.loads(r.body) == {"error": "TooManyTokens"}


def test_fid_target(w: World) -> None:
    i = w.android(2)
    fid = w.fleet.fcm_token(i).split(":")[0]
    assert w.send({"fid": fid}).status == 200
    assert len(w.testbed.ledger.deliveries(i)) == 1
    assert w.send({"fid": "AAAAAAAAAAAAAAAAAAAAAA"}).status == 404


def notes(w: World) -> list:
    return [rec.note for rec in w.testbed.ledger.records.values()]


def test_android_delivery_fields(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    w.send({"token": tok, "notification": {"title": "t"}})
    w.send({"token": tok, "data": {"a": "b"}, "android": {"priority": "high", "ttl": "0s", "collapse_key": "ck"}})
    w.send({"token": tok, "android": {"ttl": "60.5s"}})
    n1, n2, n3 = notes(w)
    assert (n1.push_type, n1.priority, n1.content_available, n1.expiration) == ("notification", 10, False, None)
    assert (n2.push_type, n2.priority, n2.content_available, n2.expiration, n2.collapse_id) == \
        ("data", 10, True, 0.0, "ck")
    assert n3.expiration == w.clock() + 60 and n3.priority == 5


def test_ios_install_honours_apns_overrides(w: World) -> None:
    tok = w.fleet.fcm_token(w.ios())
    w.send({"token": tok, "notification": {"title": "t"}})
    w.send({"token": tok, "data": {"a": "b"}})
    w.send({"token": tok, "apns": {"headers": {"apns-priority": "5", "apns-push-type": "background",
                                                "apns-expiration": "0", "apns-collapse-id": "c"},
                                   "payload": {"aps": {"content-available": 1}}}})
    n1, n2, n3 = notes(w)
    assert (n1.push_type, n1.priority, n1.content_available) == ("alert", 10, False)
    assert (n2.push_type, n2.priority, n2.content_available) == ("background", 5, True)
    assert (n3.push_type, n3.priority, n3.content_available, n3.expiration, n3.collapse_id) == \
        ("background", 5, True, 0.0, "c")


def test_ios_install_not_registered_with_fcm_is_unregistered(w: World) -> None:
    i = w.ios()
    w.fleet.fcm_ios[i] = 0
    assert w.send({"token": w.fleet.fcm_token(i)}).status == 404


def test_v1_topic_subscriptions(w: World) -> None:
    from urllib.parse import quote

    i = w.android(1)
    base = f"/v1/projects/pushsim-project/registrations/{quote(w.fleet.fcm_token(i), safe='')}/topicSubscriptions"
    hdr = [(b"authorization", f"Bearer {w.token}".encode())]

    def call(method: bytes, path: str, auth: list | None = None) -> Reply:
        p = path.encode()
        return w.svc.handle(CONN, method, p, [(b":method", method), (b":path", p)] + (hdr if auth is None else auth),
                            b"{}" if method == b"POST" else b"")

    r = call(b"POST", base + "?topic_name=weather")
    assert r.status == 200 and orjson.loads(r.body)["name"].endswith("/topicSubscriptions/weather")
    r = call(b"POST", base + "?topic_name=weather")
    assert r.status == 409 and error_of(r)["status"] == "ALREADY_EXISTS"
    assert w.svc.topics.subscribers("weather") == {i}
    assert call(b"POST", base + "?topic_name=bad%20name").status == 400
    assert call(b"POST", base + "?topic_name=weather", auth=[]).status == 401
    r = call(b"POST", "/v1/projects/pushsim-project/registrations/junk/topicSubscriptions?topic_name=x")
    assert r.status == 400
    stranger = quote(w.fleet.codec.fcm_token(5000), safe="")
    r = call(b"POST", f"/v1/projects/pushsim-project/registrations/{stranger}/topicSubscriptions?topic_name=x")
    assert r.status == 404 and error_of(r)["details"][0]["errorCode"] == "UNREGISTERED"
    assert call(b"DELETE", base + "/weather").status == 200
    assert w.svc.topics.subscribers("weather") == set()
    assert call(b"DELETE", base + "/weather").status == 404                     # gone, and missing not allowed
    assert call(b"DELETE", base + "/weather?allow_missing=true").status == 200
    assert call(b"GET", base).status == 405


async def test_large_fan_out_is_spread_over_loop_turns(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import pushsim.services.fcm as fcm_module

    monkeypatch.setattr(fcm_module, "FANOUT_CHUNK", 3)
    subs = list(range(len(w.fleet)))
    w.iid("batchAdd", "all", [w.fleet.fcm_token(i) for i in subs])
    assert w.send({"topic": "all"}).status == 200
    assert w.testbed.ledger.accepted == 3                     # the first chunk only, so far
    for _ in range(5):
        await asyncio.sleep(0)
    assert w.testbed.ledger.accepted == len(subs)
    assert all(len(w.testbed.ledger.deliveries(i)) == 1 for i in subs)
    w.testbed.ledger.check()


def test_fault_hook_is_consulted(w: World) -> None:
    class Hook:
        active = True

        def __init__(self) -> None:
            self.seen: list[bytes] = []

        def consult(self, name: str, method: bytes, path: bytes, headers: list, body: bytes,
                    conn: object = None) -> Reply | None:
            assert name == "fcm"
            self.seen.append(path)
            return Reply(503, [], b"injected") if b"messages:send" in path else None

    hook = Hook()
    w.svc = FaultingService(w.svc, "fcm", hook)   # type: ignore[assignment,arg-type]  # as the server serves it
    assert w.send({"token": w.fleet.fcm_token(0)}).status == 503
    assert w.post(b"/nope", b"").status == 404                       # the hook passed: the service answered
    assert hook.seen == [SEND, b"/nope"] and w.testbed.ledger.accepted == 0


def test_bench_reset_clears_quotas_and_subscriptions(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    w.iid("batchAdd", "t", [tok])
    for _ in range(240):
        w.send({"token": tok})
    assert w.send({"token": tok}).status == 429
    w.testbed.reset()
    assert w.svc.topics.subscribers("t") == set()      # at reset time, not at the next request
    assert w.send({"token": tok}).status == 200


def test_rejected_sends_are_journaled_under_their_token(w: World) -> None:
    tok = w.fleet.fcm_token(w.android())
    assert w.send({"token": tok, "data": {"from": "x"}}).status == 400
    [e] = w.testbed.journal.query(token=tok)
    assert (e.status, e.reason, e.message_id) == (400, "INVALID_ARGUMENT", None)


def test_iid_info_lists_topics(w: World) -> None:
    i = w.android(1)
    tok = w.fleet.fcm_token(i)
    w.iid("batchAdd", "b", [tok])
    w.iid("batchAdd", "a", [tok])
    hdrs = [(b"authorization", f"Bearer {w.token}".encode()), (b"access_token_auth", b"true")]
    r = w.svc.handle(CONN, b"GET", f"/iid/info/{tok}?details=true".encode(), hdrs, b"")
    doc = orjson.loads(r.body)
    assert r.status == 200 and doc["platform"] == "ANDROID" and doc["application"] == "com.example.app"
    assert list(doc["rel"]["topics"]) == ["a", "b"]
    assert "rel" not in orjson.loads(w.svc.handle(CONN, b"GET", f"/iid/info/{tok}".encode(), hdrs, b"").body)
    r = w.svc.handle(CONN, b"GET", f"/iid/info/{w.fleet.codec.fcm_token(9999)}".encode(), hdrs, b"")
    assert r.status == 404
    assert w.svc.handle(CONN, b"GET", f"/iid/info/{tok}".encode(), hdrs[:1], b"").status == 401


def test_remembered_send_paths_answer_like_the_first_time(w: World) -> None:
    """The send-path memo (raw :path → project) must not change any answer on the second request."""
    tok = w.fleet.fcm_token(w.android())
    body = orjson.dumps({"message": {"token": tok}})
    for path in (SEND, SEND + b"?alt=json", b"/v1/projects/123456789012/messages:send",
                 b"/v1/projects/other/messages:send"):
        first, again = w.post(path, body), w.post(path, body)
        assert first.status == again.status and first.headers == again.headers
        if first.status != 200:
            assert first.body == again.body
        get = w.svc.handle(CONN, b"GET", path, [(b"authorization", f"Bearer {w.token}".encode())], b"")
        assert get.status == 405                            # the memo serves POST only
    assert w.post(SEND, body, token=None).status == 401     # auth is still checked on a remembered path
    assert [e.path for e in w.testbed.journal.entries if e.method == "POST"][:2] == [SEND.decode()] * 2


def test_message_names_keep_sixteen_digits_before_2001(info: dict[str, str]) -> None:
    w = World(info)
    w.clock.t = 999_999_999.5                               # 15-digit microsecond count: zero-padded
    w.token = w.authority.issue(info["client_email"], True, w.clock())
    name = orjson.loads(w.send({"token": w.fleet.fcm_token(w.android())}).body)["name"]
    assert name.split(":")[1].split("%")[0] == "0999999999500000"
