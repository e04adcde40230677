import json
import re
import ssl
import stat

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pushsim.config import Config
from pushsim.credentials import SERVER_NAMES, ensure_credentials, set_token_uri

ID_RE = re.compile(r"^[A-Z0-9]{10}$")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("state")
    return d, ensure_credentials(d, Config(state_dir=d))


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_exist_and_private_keys_are_owner_only(made):
    d, c = made
    for p in (c.ca_file, c.server_cert, c.client_cert):
        assert p.is_file() and p.parent == d
    for p in (c.ca_key_file, c.server_key, c.apns_key_file, c.client_key, c.client_bundle, c.fcm_service_account):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert not list(d.glob(".*.tmp"))


def test_apns_auth_key_is_like_apples(made):
    _, c = made
    text = c.apns_key_file.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")   # PKCS#8, as Apple ships .p8 files
    assert ID_RE.match(c.key_id) and ID_RE.match(c.team_id)
    assert isinstance(c.apns_public_key().curve, ec.SECP256R1)
    token = jwt.encode({"iss": c.team_id, "iat": 1}, text, algorithm="ES256", headers={"kid": c.key_id})
    claims = jwt.decode(token, c.apns_public_key(), algorithms=["ES256"], options={"verify_iat": False})
    assert claims["iss"] == c.team_id


def test_server_cert_is_issued_by_ca_and_names_every_host(made):
    _, c = made
    ca, server = _cert(c.ca_file), _cert(c.server_cert)
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(SERVER_NAMES) <= set(san.get_values_for_type(x509.DNSName))
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    # Python's own verifier accepts the pair (what every TLS client will do).
    ctx = ssl.create_default_context(cafile=str(c.ca_file))
    assert ctx.get_ca_certs()[0]["subject"]


def test_client_cert_names_the_bundle(made):
    _, c = made
    cert = _cert(c.client_cert)
    cert.verify_directly_issued_by(_cert(c.ca_file))
    assert cert.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == "com.example.app"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(str(c.client_cert), str(c.client_key))   # cert and key match
    ctx.load_cert_chain(str(c.client_bundle))                     # one-file form, for aioapns


def test_client_cert_carries_topics_when_fake_apns_is_there(made):
    _, c = made
    oids = {e.oid.dotted_string for e in _cert(c.client_cert).extensions}
    assert "1.2.840.113635.100.6.3.6" in oids


def test_service_account_loads_in_google_auth_and_firebase_admin(made):
    from firebase_admin import credentials as fb_credentials
    from google.oauth2 import service_account

    _, c = made
    info = json.loads(c.fcm_service_account.read_text())
    assert info["type"] == "service_account" and info["project_id"] == "pushsim-project"
    sa = service_account.Credentials.from_service_account_info(info)
    assert sa.service_account_email == c.client_email
    assert sa.signer_email == c.client_email and sa.signer.key_id == info["private_key_id"]
    key = serialization.load_pem_private_key(info["private_key"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    fb_credentials.Certificate(str(c.fcm_service_account))


def test_second_start_reuses_everything(tmp_path):
    c1 = ensure_credentials(tmp_path, Config())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    c2 = ensure_credentials(tmp_path, Config())
    assert (c2.key_id, c2.team_id) == (c1.key_id, c1.team_id)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_token_uri_rewrite_keeps_the_key(tmp_path):
    c = ensure_credentials(tmp_path, Config())
    key = json.loads(c.fcm_service_account.read_text())["private_key"]
    set_token_uri(c, "https://127.0.0.1:5555/token")
    info = json.loads(c.fcm_service_account.read_text())
    assert info["token_uri"] == "https://127.0.0.1:5555/token" and info["private_key"] == key
    ensure_credentials(tmp_path, Config())   # a restart keeps the file until the server rewrites it
    assert json.loads(c.fcm_service_account.read_text())["private_key"] == key


def test_bundle_change_reissues_client_cert_only(tmp_path):
    c1 = ensure_credentials(tmp_path, Config())
    ca = c1.ca_file.read_bytes()
    c2 = ensure_credentials(tmp_path, Config(bundle_id="org.other.app"))
    assert c2.ca_file.read_bytes() == ca and c2.key_id == c1.key_id
    assert _cert(c2.client_cert).subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == "org.other.app"
