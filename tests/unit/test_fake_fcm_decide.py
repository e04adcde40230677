"""fake_fcm.send.decide() driven directly: send + clock reading → decision, with a dict for the
registry of installs. No pushsim, no fleet, no sockets."""
from __future__ import annotations

import orjson
import pytest

from fake_fcm.oauth import TokenAuthority
from fake_fcm.quota import Quotas
from fake_fcm.send import MessageNamer, SendDecision, SendRules, decide
from fake_fcm.topic_api import SUBSCRIPTIONS_RE, TopicAnswer, TopicApi
from fake_fcm.topics import TopicRegistry

NOW = 1_800_000_000.0
# token → (install, android package or None for iOS); install 3 is uninstalled
REGISTRY = {"tok-android": (0, "com.example.app"), "tok-ios": (1, None), "tok-gone": (3, "com.example.app")}
FOREIGN = {"tok-other-project"}


class FakeFcm:
    def __init__(self, project_quota: int = 1000, device_per_minute: int = 0) -> None:
        self.authority = TokenAuthority()
        self.bearer = b"Bearer " + self.authority.issue("sa@example.iam.gserviceaccount.com", True, NOW).encode()
        self.topics = TopicRegistry()
        self.quotas = Quotas(project_quota, device_per_minute, 0)
        self.rules = SendRules(self.authority, "proj", "1234", self.quotas, self.topics, MessageNamer("proj"),
                               self.lookup, lambda fid: None, lambda i: i != 3,
                               lambda i: next(p for k, (j, p) in REGISTRY.items() if j == i))

    @staticmethod
    def lookup(token: str) -> int | str:
        if token in REGISTRY:
            return REGISTRY[token][0]
        return "SENDER_ID_MISMATCH" if token in FOREIGN else "INVALID_ARGUMENT"

    def send(self, message: dict[str, object], project: str = "proj", auth: bytes | None = b"",
             now: float = NOW) -> SendDecision:
        return decide(self.rules, project, self.bearer if auth == b"" else auth,
                      orjson.dumps({"message": message}), now)


@pytest.fixture
def w() -> FakeFcm:
    return FakeFcm()


def _code(d: SendDecision) -> tuple[int, str]:
    assert d.failure is not None
    return d.failure.status, d.failure.reason


def test_a_token_send_is_accepted_and_named(w: FakeFcm) -> None:
    d = w.send({"token": "tok-android", "data": {"k": "v"}})
    assert d.failure is None and d.install == 0 and d.token == "tok-android"
    assert d.name is not None and d.name.startswith("projects/proj/messages/0:1800000000000000%")
    assert w.quotas.project.total(NOW) == 1


def test_the_check_order_auth_project_quota_validate_resolve(w: FakeFcm) -> None:
    bad = {"token": "tok-android", "android": {"priority": "urgent"}}
    assert _code(w.send(bad, auth=None)) == (401, "CREDENTIALS_MISSING")             # auth first
    assert _code(w.send(bad, project="other")) == (403, "PERMISSION_DENIED")          # then the project
    assert _code(w.send(bad)) == (400, "INVALID_ARGUMENT")                            # then the message
    assert _code(w.send({"token": "tok-gone"})) == (404, "UNREGISTERED")               # then the target
    assert _code(w.send({"token": "tok-other-project"})) == (403, "SENDER_ID_MISMATCH")
    assert _code(w.send({"token": "not a token"})) == (400, "INVALID_ARGUMENT")
    assert w.quotas.project.total(NOW) == 4     # client errors after auth and project count; 401/403 project do not


def test_the_project_quota_answers_429_before_validation() -> None:
    w = FakeFcm(project_quota=1)
    assert w.send({"token": "tok-android"}).failure is None
    d = w.send({"token": "tok-android", "android": {"priority": "urgent"}})
    assert _code(d) == (429, "QUOTA_EXCEEDED")
    assert any(k == b"retry-after" for k, _ in d.failure.headers)   # type: ignore[union-attr]


def test_the_device_quota_comes_after_resolution() -> None:
    w = FakeFcm(device_per_minute=1)
    assert w.send({"token": "tok-android"}).failure is None
    assert _code(w.send({"token": "tok-android"})) == (429, "QUOTA_EXCEEDED")
    assert w.send({"token": "tok-ios"}).failure is None                                  # another device


def test_restricted_package_is_checked_on_android_only(w: FakeFcm) -> None:
    wrong = {"android": {"restricted_package_name": "com.other"}}
    assert _code(w.send({"token": "tok-android", **wrong})) == (400, "INVALID_ARGUMENT")
    assert w.send({"token": "tok-ios", **wrong}).failure is None


def test_a_topic_send_names_its_subscribers(w: FakeFcm) -> None:
    w.topics.subscribe("news", 0)
    w.topics.subscribe("news", 1)
    d = w.send({"topic": "news", "data": {"k": "v"}})
    assert d.failure is None and d.installs == [0, 1] and d.token == "/topics/news" and d.install == -1
    assert w.send({"topic": "empty"}).installs == []


def test_message_names_increase_and_keep_to_their_lane() -> None:
    namer = MessageNamer("proj")
    namer.set_lane(1, 3)
    names = [namer.name("proj", NOW) for _ in range(5)]
    micros = [int(n.split(":")[1].split("%")[0]) for n in names]
    assert micros == sorted(set(micros)) and all(m % 3 == 1 for m in micros)
    with pytest.raises(ValueError):
        namer.set_lane(3, 3)


# topic management (fake_fcm.topic_api) --------------------------------------------------------

def _topic_api(w: FakeFcm) -> TopicApi:
    return TopicApi(w.authority, w.topics, FakeFcm.lookup, lambda i: (i == 1, "com.example.app"), ("proj", "1234"))


def _v1(api: TopicApi, w: FakeFcm, method: bytes, path: bytes) -> TopicAnswer:
    m = SUBSCRIPTIONS_RE.fullmatch(path.split(b"?", 1)[0])
    assert m is not None
    return api.subscription(m, method, path, w.bearer, NOW)


def test_v1_registrations_subscribe_once_and_unsubscribe(w: FakeFcm) -> None:
    api = _topic_api(w)
    sub = b"/v1/projects/proj/registrations/tok-android/topicSubscriptions"
    first = _v1(api, w, b"POST", sub + b"?topic_name=news")
    assert (first.status, first.reason, first.token) == (200, None, "tok-android")
    assert orjson.loads(first.body)["name"].endswith("/topicSubscriptions/news") and w.topics.subscribers("news") == {0}
    again = _v1(api, w, b"POST", sub + b"?topic_name=news")
    assert (again.status, again.reason) == (409, "ALREADY_EXISTS")
    assert _v1(api, w, b"DELETE", sub + b"/news").status == 200 and w.topics.subscribers("news") == set()
    assert _v1(api, w, b"DELETE", sub + b"/news").reason == "NOT_FOUND"
    assert _v1(api, w, b"DELETE", sub + b"/news?allow_missing=true").status == 200
    other = b"/v1/projects/other/registrations/tok-android/topicSubscriptions?topic_name=news"
    assert _v1(api, w, b"POST", other).reason == "PERMISSION_DENIED"


def test_iid_needs_access_token_auth_and_answers_per_token(w: FakeFcm) -> None:
    api = _topic_api(w)
    body = orjson.dumps({"to": "/topics/news", "registration_tokens": ["tok-android", "tok-other-project", "junk"]})
    denied = api.iid("add", [(b"authorization", w.bearer)], body, NOW)
    assert (denied.status, denied.reason, denied.service) == (401, "Unauthorized", "iid")
    ok = api.iid("add", [(b"authorization", w.bearer), (b"access_token_auth", b"true")], body, NOW)
    assert ok.status == 200 and ok.token == "/topics/news"
    assert orjson.loads(ok.body) == {"results": [{}, {"error": "PERMISSION_DENIED"}, {"error": "INVALID_ARGUMENT"}]}
    info = api.info(b"/iid/info/tok-ios?details=true", [(b"authorization", w.bearer), (b"access_token_auth", b"true")], NOW)
    assert orjson.loads(info.body)["platform"] == "IOS" and orjson.loads(info.body)["rel"] == {"topics": {}}
