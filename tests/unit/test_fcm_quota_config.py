"""The FCM per-device quota comes from Config (`--fcm-device-quota-minute/-hour`); 0 = no limit."""
from __future__ import annotations

import orjson
import pytest

from fake_fcm.quota import DeviceLimits, Quotas
from pushsim.cli import UsageError, build_parser, config_from_args, validate
from tests.unit.test_fcm_service import World


@pytest.fixture(scope="module")
def info() -> dict[str, str]:
    from fake_fcm.testing import make_service_account
    return make_service_account()


def _status(r) -> str:
    return orjson.loads(r.body)["error"]["status"]


def test_default_is_240_per_minute(info: dict) -> None:
    w = World(info)
    assert (w.testbed.config.fcm_device_quota_minute, w.testbed.config.fcm_device_quota_hour) == (240, 5000)
    tok = w.fleet.fcm_token(w.android(0))
    for _ in range(240):
        assert w.send({"token": tok}).status == 200
    r = w.send({"token": tok})
    assert r.status == 429 and _status(r) == "RESOURCE_EXHAUSTED"
    assert b"QUOTA_EXCEEDED" in r.body


def test_custom_minute_quota(info: dict) -> None:
    w = World(info, fcm_device_quota_minute=3)
    a, b = w.fleet.fcm_token(w.android(0)), w.fleet.fcm_token(w.android(1))
    assert [w.send({"token": a}).status for _ in range(4)] == [200, 200, 200, 429]
    assert b"QUOTA_EXCEEDED" in w.send({"token": a}).body
    assert w.send({"token": b}).status == 200
    w.clock.t += 61
    assert w.send({"token": a}).status == 200


def test_custom_hour_quota(info: dict) -> None:
    w = World(info, fcm_device_quota_minute=0, fcm_device_quota_hour=5)
    a = w.fleet.fcm_token(w.android(0))
    assert [w.send({"token": a}).status for _ in range(6)] == [200] * 5 + [429]


def test_zero_is_unlimited(info: dict) -> None:
    w = World(info, fcm_device_quota_minute=0, fcm_device_quota_hour=0)
    tok = w.fleet.fcm_token(w.android(0))
    assert all(w.send({"token": tok}).status == 200 for _ in range(6000))
    assert not w.svc.quotas.devices.minute and not w.svc.quotas.devices.hour   # nothing tracked
    w.svc.reset()
    assert w.send({"token": tok}).status == 200


def test_quotas_unit() -> None:
    q = Quotas(10**9, 0, 0)
    assert all(q.device_admit(1, 100.0) is None for _ in range(10_000))
    q.reset()
    assert q.device_admit(1, 100.0) is None
    d = DeviceLimits(per_minute=2, per_hour=0)
    assert [d.admit(7, 10.0) is None for _ in range(3)] == [True, True, False]
    assert not d.hour
    with pytest.raises(ValueError):
        Quotas(10, -1, 0)


def test_cli_flags_and_env() -> None:
    args = build_parser().parse_args(["serve", "--fcm-device-quota-minute", "0", "--fcm-device-quota-hour", "7"])
    cfg = config_from_args(args, {})
    assert (cfg.fcm_device_quota_minute, cfg.fcm_device_quota_hour) == (0, 7)
    validate(cfg)
    cfg = config_from_args(build_parser().parse_args(["serve"]), {"PUSHSIM_FCM_DEVICE_QUOTA_MINUTE": "3"})
    assert cfg.fcm_device_quota_minute == 3
    with pytest.raises(UsageError):
        validate(config_from_args(build_parser().parse_args(["serve", "--fcm-device-quota-hour", "-1"]), {}))
