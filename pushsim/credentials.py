"""Test credentials in the state dir: a CA, the server certificate, APNs and FCM client credentials.

Made once on first start and reused after, so a sender configured against one run keeps working on
the next. Files look like the real ones (an Apple `.p8` auth key, an APNs push certificate whose
subject UID is the bundle id, a Google service-account JSON) so senders load them unmodified.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import json
import os
import secrets
import string
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fake_apns.certs import ENV_OIDS, push_cert_extensions

SERVER_NAMES = (
    "localhost", "api.push.apple.com", "api.sandbox.push.apple.com", "api.development.push.apple.com",
    "fcm.googleapis.com", "oauth2.googleapis.com", "iid.googleapis.com",
)
SERVER_IPS = ("127.0.0.1", "::1")
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_ALNUM = string.ascii_uppercase + string.digits
_VALID = dt.timedelta(days=3650)
_META = "credentials.json"


@dataclass(slots=True, frozen=True)
class Credentials:
    state_dir: Path
    ca_file: Path
    ca_key_file: Path
    server_cert: Path
    server_key: Path
    apns_key_file: Path          # PKCS#8 P-256 PEM, like Apple's AuthKey_XXXXXXXXXX.p8
    key_id: str
    team_id: str
    client_cert: Path            # APNs push certificate (certificate auth), signed by our CA
    client_key: Path
    client_bundle: Path          # certificate + key in one PEM (what aioapns' client_cert expects)
    bundle_id: str
    fcm_service_account: Path
    project_id: str
    client_email: str
    # 32 random bytes that seal FCM OAuth access tokens, so every instance sharing (or copying) this
    # state dir accepts the tokens any of them issued (serve --partition; pushsim/partition.py).
    grant_seal_file: Path | None = None

    def grant_seal(self) -> bytes:
        assert self.grant_seal_file is not None
        return self.grant_seal_file.read_bytes()

    def apns_public_key(self) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_private_key(self.apns_key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.public_key()

    def as_dict(self) -> dict[str, str]:
        return {
            "ca_file": str(self.ca_file), "server_cert": str(self.server_cert), "server_key": str(self.server_key),
            "apns_key_file": str(self.apns_key_file), "key_id": self.key_id, "team_id": self.team_id,
            "client_cert": str(self.client_cert), "client_key": str(self.client_key),
            "client_bundle": str(self.client_bundle), "bundle_id": self.bundle_id, "fcm_service_account": str(self.fcm_service_account),
            "project_id": self.project_id, "client_email": self.client_email,
        }


# files ---------------------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Readers never see a half-written file: write a sibling temp file, then rename over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    # Two processes starting on one state dir (e.g. parallel test sessions) must not mint two CAs.
    with open(state_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _random_id(n: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


# certificates --------------------------------------------------------------------------------
def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)   # tolerate small clock skew
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + _VALID))


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pushsim"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "pushsim test CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: CertificateIssuerPrivateKeyTypes, ca: x509.Certificate, subject: x509.Name, public_key: Any,
          usage: x509.ObjectIdentifier, extra: Sequence[x509.ExtensionType] = ()) -> x509.Certificate:
    b = (_builder(subject, ca.subject, public_key)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False))  # type: ignore[arg-type]
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return b.sign(ca_key, hashes.SHA256())


def _make_server_cert(ca_key: Any, ca: x509.Certificate,
                      extra: Sequence[str] = ()) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ips, names = [*SERVER_IPS], [*SERVER_NAMES]
    for name in extra:
        (ips if _is_ip(name) else names).append(name)
    san = x509.SubjectAlternativeName([*(x509.DNSName(n) for n in dict.fromkeys(names)),
                                       *(x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ips))])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushsim")])
    return key, _leaf(ca_key, ca, subject, key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, [san])


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def server_pem_with_key(state_dir: Path, extra_names: Sequence[str] = ()) -> bytes:
    """The state dir's server certificate and its key in one PEM (what HAProxy's `crt` reads). With
    `extra_names` (host names or IPs a proxy in front of the instances is reached by), a fresh
    certificate is signed by the state dir's CA carrying those beside the usual names; the state
    dir's own files are left as they are. Reads only: a missing file raises FileNotFoundError."""
    d = Path(state_dir)
    if not extra_names:
        return (d / "server.pem").read_bytes() + (d / "server.key").read_bytes()
    ca_key = _load_key(d / "ca.key")
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    key, cert = _make_server_cert(ca_key, ca, extra_names)
    return cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key)


def push_topics(bundle_id: str) -> list[str]:
    """Topics of a universal APNs push certificate: the app, its VoIP and complication topics."""
    return [bundle_id, f"{bundle_id}.voip", f"{bundle_id}.complication"]


def _push_extensions(bundle_id: str) -> list[x509.ExtensionType]:
    # A universal certificate: valid in both environments, its topics named the way fake_apns reads them.
    return list(push_cert_extensions(push_topics(bundle_id), tuple(ENV_OIDS)))


def _make_client_cert(ca_key: Any, ca: x509.Certificate, bundle_id: str,
                      key: rsa.RSAPrivateKey) -> tuple[x509.Certificate, bool]:
    subject = x509.Name([x509.NameAttribute(NameOID.USER_ID, bundle_id),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"Apple Push Services: {bundle_id}"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "PUSHSIMTM1"),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])
    exts = _push_extensions(bundle_id)
    return _leaf(ca_key, ca, subject, key.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, exts or []), exts is not None


# FCM service account -------------------------------------------------------------------------
def _service_account(project_id: str, key: rsa.RSAPrivateKey, key_id: str, client_id: str,
                     token_uri: str) -> dict[str, str]:
    email = f"firebase-adminsdk-{key_id[:5].lower()}@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": _pem_key(key).decode(),
        "client_email": email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }


def set_token_uri(creds: Credentials, token_uri: str) -> None:
    """Point the service account at this run's token endpoint (ports change between runs)."""
    info = json.loads(creds.fcm_service_account.read_text())
    if info.get("token_uri") != token_uri:
        info["token_uri"] = token_uri
        write_atomic(creds.fcm_service_account, json.dumps(info, indent=2).encode() + b"\n", 0o600)


# entry point ---------------------------------------------------------------------------------
def ensure_credentials(state_dir: Path, config: Any = None) -> Credentials:
    """Create whatever is missing in `state_dir`, reuse the rest, and describe the result."""
    bundle_id = getattr(config, "bundle_id", "com.example.app")
    project_id = getattr(config, "project_id", "pushsim-project")
    d = Path(state_dir).absolute()
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d):
        return _ensure(d, bundle_id, project_id)


def _ensure(d: Path, bundle_id: str, project_id: str) -> Credentials:
    p = {name: d / name for name in ("ca.pem", "ca.key", "server.pem", "server.key", "apns_auth_key.p8",
                                     "apns_client.pem", "apns_client.key", "fcm_service_account.json")}
    meta_path = d / _META
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    changed = False

    if p["ca.pem"].exists() and p["ca.key"].exists():
        ca_key = _load_key(p["ca.key"])
        ca = x509.load_pem_x509_certificate(p["ca.pem"].read_bytes())
        new_ca = False
    else:
        ca_key, ca = _make_ca()
        write_atomic(p["ca.key"], _pem_key(ca_key), 0o600)
        write_atomic(p["ca.pem"], ca.public_bytes(serialization.Encoding.PEM))
        new_ca = True

    if new_ca or not (p["server.pem"].exists() and p["server.key"].exists()):
        skey, scert = _make_server_cert(ca_key, ca)
        write_atomic(p["server.key"], _pem_key(skey), 0o600)
        write_atomic(p["server.pem"], scert.public_bytes(serialization.Encoding.PEM))

    if not p["apns_auth_key.p8"].exists() or "key_id" not in meta:
        write_atomic(p["apns_auth_key.p8"], _pem_key(ec.generate_private_key(ec.SECP256R1())), 0o600)
        meta["key_id"], meta["team_id"] = _random_id(), meta.get("team_id") or _random_id()
        changed = True

    # The push certificate is re-issued (same key) when the CA, the bundle id or the topic extensions
    # it should carry changed, so an old state dir upgrades itself.
    if p["apns_client.key"].exists():
        ckey = _load_key(p["apns_client.key"])
    else:
        ckey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_atomic(p["apns_client.key"], _pem_key(ckey), 0o600)
        meta.pop("client_bundle_id", None)
    wants_ext = _push_extensions(bundle_id) is not None
    if (new_ca or not p["apns_client.pem"].exists() or meta.get("client_bundle_id") != bundle_id
            or meta.get("client_cert_topics", False) != wants_ext):
        ccert, has_ext = _make_client_cert(ca_key, ca, bundle_id, ckey)
        write_atomic(p["apns_client.pem"], ccert.public_bytes(serialization.Encoding.PEM))
        meta["client_bundle_id"], meta["client_cert_topics"] = bundle_id, has_ext
        changed = True
    bundle = d / "apns_client_bundle.pem"
    bundle_bytes = p["apns_client.pem"].read_bytes() + p["apns_client.key"].read_bytes()
    if not bundle.exists() or bundle.read_bytes() != bundle_bytes:
        write_atomic(bundle, bundle_bytes, 0o600)

    sa_path = p["fcm_service_account.json"]
    info = json.loads(sa_path.read_text()) if sa_path.exists() else None
    if info is None or info.get("project_id") != project_id:
        if info is not None:   # keep the key across a project rename; only the names change
            fkey, fkid, cid = _load_key_text(info["private_key"]), info["private_key_id"], info["client_id"]
        else:
            fkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            fkid, cid = secrets.token_hex(20), str(secrets.randbelow(9 * 10**20) + 10**20)
        info = _service_account(project_id, fkey, fkid, cid, (info or {}).get("token_uri", GOOGLE_TOKEN_URI))
        write_atomic(sa_path, json.dumps(info, indent=2).encode() + b"\n", 0o600)

    seal = d / "oauth_grant_seal.key"
    if not seal.exists() or len(seal.read_bytes()) != 32:
        write_atomic(seal, secrets.token_bytes(32), 0o600)

    if changed or not meta_path.exists():
        write_atomic(meta_path, json.dumps(meta, indent=2).encode() + b"\n")
    return Credentials(
        state_dir=d, ca_file=p["ca.pem"], ca_key_file=p["ca.key"], server_cert=p["server.pem"],
        server_key=p["server.key"], apns_key_file=p["apns_auth_key.p8"], key_id=meta["key_id"],
        team_id=meta["team_id"], client_cert=p["apns_client.pem"], client_key=p["apns_client.key"],
        client_bundle=bundle, bundle_id=bundle_id, fcm_service_account=sa_path, project_id=project_id,
        client_email=info["client_email"], grant_seal_file=seal,
    )


def _load_key_text(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode(), password=None)
