"""Certificate-based provider auth: which topics and environments an APNs client certificate covers.

Apple's push certificates list their topics in extension 1.2.840.113635.100.6.3.6 as a DER
SEQUENCE of (UTF8String topic, SEQUENCE of UTF8String kinds) pairs, e.g. the app's bundle id
followed by ("app"), then `<bundle>.voip` followed by ("voip"). Environment extensions .3.1
(development = sandbox) and .3.2 (production) carry an ASN.1 NULL. cryptography has no generic
DER encoder, so the few TLVs involved are written and read here.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

TOPICS_OID = ObjectIdentifier("1.2.840.113635.100.6.3.6")
DEVELOPMENT_OID = ObjectIdentifier("1.2.840.113635.100.6.3.1")
PRODUCTION_OID = ObjectIdentifier("1.2.840.113635.100.6.3.2")
ENV_OIDS = {"sandbox": DEVELOPMENT_OID, "production": PRODUCTION_OID}
_NULL = b"\x05\x00"
_UTF8, _SEQ = 0x0C, 0x30

# The kind Apple writes after each topic, by topic suffix.
_KINDS = {".voip": "voip", ".complication": "complication", ".pushkit.fileprovider": "fileprovider",
          ".location-query": "location", ".voip-ptt": "pushtotalk"}


@dataclass(frozen=True, slots=True)
class CertAuth:
    topics: frozenset[str]
    environments: frozenset[str]
    default_topic: str | None      # used when apns-topic is omitted: only if the cert covers one topic


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _read_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """Split DER content into (tag, value) pairs; raises ValueError on truncation."""
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("truncated TLV")
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or i + k > len(data):
                raise ValueError("bad length")
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        if i + n > len(data):
            raise ValueError("truncated value")
        out.append((tag, data[i:i + n]))
        i += n
    return out


def _kind(topic: str, base: str) -> str:
    return _KINDS.get(topic[len(base):], "app") if topic.startswith(base) else "app"


def push_cert_extensions(topics: list[str], environments: tuple[str, ...]) -> list[x509.UnrecognizedExtension]:
    """Extensions for a fake APNs client certificate: its topics and its environments."""
    base = min(topics, key=len) if topics else ""
    items = b"".join(_tlv(_UTF8, t.encode()) + _tlv(_SEQ, _tlv(_UTF8, _kind(t, base).encode())) for t in topics)
    exts = [x509.UnrecognizedExtension(TOPICS_OID, _tlv(_SEQ, items))]
    for env in environments:
        if env not in ENV_OIDS:
            raise ValueError(f"unknown APNs environment {env!r}")
        exts.append(x509.UnrecognizedExtension(ENV_OIDS[env], _NULL))
    return exts


def _topics_from(value: bytes) -> list[str]:
    [(tag, content)] = _read_tlvs(value)
    if tag != _SEQ:
        raise ValueError("topic list is not a SEQUENCE")
    return [v.decode() for t, v in _read_tlvs(content) if t == _UTF8]


def cert_auth_from_der(der: bytes) -> CertAuth | None:
    """What a client certificate allows; None when it is unparseable or names no topic (BadCertificate)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        topics: list[str] = []
        envs: set[str] = set()
        for ext in cert.extensions:
            oid = ext.oid
            if oid == TOPICS_OID:
                topics = _topics_from(ext.value.value)
            elif oid == DEVELOPMENT_OID:
                envs.add("sandbox")
            elif oid == PRODUCTION_OID:
                envs.add("production")
        if not topics:
            # Older push certificates name their single topic (the bundle id) only in the subject UID.
            topics = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.USER_ID)]
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not topics:
        return None
    # A certificate without environment extensions predates them; such certificates were accepted by
    # both hosts, so treat it as universal rather than rejecting it.
    environments = frozenset(envs or ("sandbox", "production"))
    unique = frozenset(topics)
    return CertAuth(unique, environments, topics[0] if len(unique) == 1 else None)
