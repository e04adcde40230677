"""Helpers that make APNs credentials for tests and demos: ES256 keys, provider JWTs, push certificates."""
from __future__ import annotations

import base64
import datetime

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from .certs import push_cert_extensions


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_jwt(key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, iat: float,
             alg: str = "ES256") -> bytes:
    """A provider token as APNs clients build it: ES256 over header.claims, raw r||s signature."""
    signing_input = (_b64(orjson.dumps({"alg": alg, "kid": key_id})) + b"."
                     + _b64(orjson.dumps({"iss": team_id, "iat": iat})))
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input + b"." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def make_push_cert(topics: list[str], environments: tuple[str, ...] = ("sandbox", "production"),
                   *, uid: str | None = None, with_topic_extension: bool = True) -> bytes:
    """DER of a self-signed APNs-style client certificate."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.USER_ID, uid or (topics[0] if topics else "none")),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Apple Push Services: fake")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
               .not_valid_after(datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc)))
    exts = push_cert_extensions(topics, environments)
    for ext in exts if with_topic_extension else exts[1:]:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
