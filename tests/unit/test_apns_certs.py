"""Certificate auth: the extensions we write, what we read back, and how requests are judged by them."""
from __future__ import annotations

import pytest
from cryptography import x509

from fake_apns.certs import DEVELOPMENT_OID, PRODUCTION_OID, TOPICS_OID, cert_auth_from_der, push_cert_extensions
from fake_apns.testing import make_push_cert
from test_apns_world import TOPIC, World, reason_of


def test_extensions_carry_topics_and_environments():
    exts = push_cert_extensions([TOPIC, TOPIC + ".voip"], ("sandbox", "production"))
    assert [e.oid for e in exts] == [TOPICS_OID, DEVELOPMENT_OID, PRODUCTION_OID]
    assert all(isinstance(e, x509.UnrecognizedExtension) for e in exts)
    assert exts[1].value == b"\x05\x00"
    # Apple's layout: topic, then the SEQUENCE of its kinds
    assert b"\x0c\x0fcom.example.app\x30\x05\x0c\x03app" in exts[0].value
    assert b"\x0c\x04voip" in exts[0].value
    with pytest.raises(ValueError):
        push_cert_extensions([TOPIC], ("staging",))


@pytest.mark.parametrize("envs", [("sandbox",), ("production",), ("sandbox", "production")])
def test_round_trip(envs):
    topics = [TOPIC, TOPIC + ".voip", TOPIC + ".complication"] + [f"com.example.app{i}" for i in range(20)]
    auth = cert_auth_from_der(make_push_cert(topics, envs))
    assert auth is not None
    assert auth.topics == frozenset(topics)          # long-form DER lengths survive
    assert auth.environments == frozenset(envs)
    assert auth.default_topic is None


def test_single_topic_cert_supplies_the_default_topic():
    auth = cert_auth_from_der(make_push_cert([TOPIC], ("sandbox",)))
    assert auth is not None and auth.default_topic == TOPIC
    w = World()
    reply = w.send(w.conn(make_push_cert([TOPIC], ("sandbox",))), headers=w.headers(topic=None))
    assert reply.status == 200
    assert w.testbed.ledger.records[0].note.push_type == "alert"


def test_legacy_cert_without_topic_extension_uses_the_subject_uid():
    auth = cert_auth_from_der(make_push_cert([TOPIC], (), uid=TOPIC, with_topic_extension=False))
    assert auth is not None
    assert auth.topics == {TOPIC} and auth.environments == {"sandbox", "production"}


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"not a certificate", b"\x30\x82\xff\xff" + b"\x00" * 10])
def test_unparseable_certificates_give_none(der):
    assert cert_auth_from_der(der) is None


def test_wrong_environment_and_uncovered_topic():
    w = World(environment="production")
    assert reason_of(w.send(w.cert_conn(envs=("sandbox",)))) == "BadCertificateEnvironment"
    assert w.send(w.cert_conn(envs=("production",))).status == 200
    assert reason_of(w.send(w.cert_conn(["com.example.other"], ("production",)))) == "TopicDisallowed"


def test_voip_topic_from_cert_accepted_with_voip_push_type():
    w = World()
    reply = w.send(w.cert_conn(), topic=TOPIC + ".voip", push_type="voip", body=b'{"call":1}')
    assert reply.status == 200
    note = w.testbed.ledger.records[0].note
    assert (note.push_type, note.drop_reason) == ("voip", None)
