"""FCM v1 message validation: what passes, and the exact google.rpc.Status for what does not."""
from __future__ import annotations

import orjson
import pytest

from fake_fcm.errors import BAD_REQUEST, FCM_ERROR, FcmFailure
from fake_fcm.message import MAX_PAYLOAD, MAX_TOPIC_PAYLOAD, SendRequest, validate

TOKEN = "abcdefghijk:APA91bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


def send(msg: dict, **top: object) -> SendRequest | FcmFailure:
    return validate(orjson.dumps({"message": msg, **top}))


def err(result: SendRequest | FcmFailure) -> dict:
    assert isinstance(result, FcmFailure), result
    body = orjson.loads(result.body)["error"]
    assert body["code"] == result.status
    return body


def test_minimal_token_message() -> None:
    r = send({"token": TOKEN, "data": {"k": "v"}})
    assert isinstance(r, SendRequest)
    assert (r.target, r.value, r.validate_only, r.has_notification) == ("token", TOKEN, False, False)


@pytest.mark.parametrize("target", ["token", "topic", "condition", "fid"])
def test_each_target_kind_accepted(target: str) -> None:
    value = {"condition": "'a' in topics"}.get(target, "abc_DEF-1.~%")
    r = send({target: value})
    assert isinstance(r, SendRequest) and r.target == target


def test_non_string_data_value_is_a_parse_error_naming_the_entry() -> None:
    body = err(send({"token": TOKEN, "data": {"a": "x", "b": 1}}))
    msg = "Invalid value at 'message.data[1].value' (TYPE_STRING), 1"
    assert body == {"code": 400, "message": msg, "status": "INVALID_ARGUMENT",
                    "details": [{"@type": BAD_REQUEST,
                                 "fieldViolations": [{"field": "message.data[1].value", "description": msg}]}]}


def test_two_targets_is_a_oneof_error() -> None:
    body = err(send({"token": TOKEN, "topic": "news"}))
    assert body["message"] == ("Invalid value at 'message' (oneof), oneof field 'target' is already set. "
                               "Cannot set 'topic'")


def test_no_target_is_invalid_argument_with_fcm_error() -> None:
    body = err(send({"data": {"a": "b"}}))
    assert body["status"] == "INVALID_ARGUMENT"
    assert body["details"][0] == {"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}
    assert body["details"][1]["fieldViolations"][0]["field"] == "message"


def test_unknown_field_rejected_and_camel_case_accepted() -> None:
    body = err(send({"token": TOKEN, "colour": "x"}))
    assert body["message"] == "Invalid JSON payload received. Unknown name \"colour\" at 'message': Cannot find field."
    r = send({"token": TOKEN, "android": {"collapseKey": "c", "restrictedPackageName": "p"}})
    assert isinstance(r, SendRequest) and (r.collapse_key, r.restricted_package) == ("c", "p")


@pytest.mark.parametrize("key", ["from", "gcm", "google", "google.c.a", "googlefoo"])
def test_reserved_data_keys(key: str) -> None:
    body = err(send({"token": TOKEN, "data": {key: "v"}}))
    assert body["details"][1]["fieldViolations"] == [{"field": "message.data",
                                                      "description": f"Invalid data payload key: {key}"}]


def test_collapse_key_is_allowed_as_a_data_key() -> None:
    assert isinstance(send({"token": TOKEN, "data": {"collapse_key": "v", "from_x": "y"}}), SendRequest)


@pytest.mark.parametrize("ttl,secs", [("0s", 0), ("3s", 3), ("3.000000001s", 3), ("2419200s", 2419200),
                                      ("2419199.999999999s", 2419199)])
def test_ttl_forms(ttl: str, secs: int) -> None:
    r = send({"token": TOKEN, "android": {"ttl": ttl}})
    assert isinstance(r, SendRequest) and r.ttl == secs


@pytest.mark.parametrize("ttl", ["-1s", "2419201s", "2419200.5s"])
def test_ttl_out_of_range(ttl: str) -> None:
    body = err(send({"token": TOKEN, "android": {"ttl": ttl}}))
    assert body["details"][1]["fieldViolations"][0]["field"] == "message.android.ttl"


@pytest.mark.parametrize("ttl", ["3", "abc", "1.0000000001s", 3])
def test_ttl_not_a_duration_is_a_parse_error(ttl: object) -> None:
    body = err(send({"token": TOKEN, "android": {"ttl": ttl}}))
    assert body["message"].startswith("Invalid value at 'message.android.ttl' "
                                      "(type.googleapis.com/google.protobuf.Duration)")
    assert body["details"][0]["@type"] == BAD_REQUEST


@pytest.mark.parametrize("prio,expected", [("high", "HIGH"), ("HIGH", "HIGH"), ("Normal", "NORMAL"), (1, "HIGH"),
                                           (0, "NORMAL")])
def test_priority_enum_any_case(prio: object, expected: str) -> None:
    r = send({"token": TOKEN, "android": {"priority": prio}})
    assert isinstance(r, SendRequest) and r.android_priority == expected


def test_bad_priority() -> None:
    body = err(send({"token": TOKEN, "android": {"priority": "urgent"}}))
    assert body["message"] == ("Invalid value at 'message.android.priority' "
                               "(type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), \"urgent\"")


@pytest.mark.parametrize("topic", ["a b", "/topics/news", "news!", "ünïcode"])
def test_bad_topic_names(topic: str) -> None:
    body = err(send({"topic": topic}))
    assert body["details"][1]["fieldViolations"][0]["field"] == "message.topic"


@pytest.mark.parametrize("cond", ["'a' in topics &&", "a in topics", "('a' in topics", "'a' in topic",
                                  " || ".join(f"'t{i}' in topics" for i in range(6))])
def test_bad_conditions(cond: str) -> None:
    body = err(send({"condition": cond}))
    assert body["details"][1]["fieldViolations"][0]["field"] == "message.condition"


@pytest.mark.parametrize("label,ok", [("a" * 50, True), ("a" * 51, False), ("x y", False), ("a-b_c.d~e%f", True)])
def test_analytics_label(label: str, ok: bool) -> None:
    for msg in ({"fcm_options": {"analytics_label": label}},
                {"android": {"fcm_options": {"analytics_label": label}}},
                {"apns": {"fcm_options": {"analytics_label": label}}}):
        r = send({"token": TOKEN, **msg})
        assert isinstance(r, SendRequest) is ok


def _data_of_size(n: int) -> dict[str, str]:
    return {"k": "v" * (n - 1)}


@pytest.mark.parametrize("target,limit", [("token", MAX_PAYLOAD), ("topic", MAX_TOPIC_PAYLOAD)])
def test_payload_limit_is_exact(target: str, limit: int) -> None:
    assert isinstance(send({target: "news" if target == "topic" else TOKEN, "data": _data_of_size(limit)}),
                      SendRequest)
    body = err(send({target: "news" if target == "topic" else TOKEN, "data": _data_of_size(limit + 1)}))
    assert body["message"] == "Message is too big"


def test_validate_only_and_notification_flags() -> None:
    r = send({"token": TOKEN, "notification": {"title": "hi"}}, validate_only=True)
    assert isinstance(r, SendRequest) and r.validate_only and r.has_notification


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff", b'{"message": "x"}', b'{"validate_only": "yes"}',
                                 b'{"message": {"token": null}}', b"[" * 10000])
def test_garbage_bodies_answer_400(raw: bytes) -> None:
    body = err(validate(raw))
    assert body["code"] == 400 and body["status"] == "INVALID_ARGUMENT"


def test_bad_color() -> None:
    body = err(send({"token": TOKEN, "android": {"notification": {"color": "red"}}}))
    assert body["details"][1]["fieldViolations"][0]["field"] == "message.android.notification.color"
