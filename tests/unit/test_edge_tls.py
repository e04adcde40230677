"""server_context: the TLS settings APNs clients depend on."""
from __future__ import annotations

import ssl
from pathlib import Path

import trustme

from pushsim.edge.tls import server_context


def _files(tmp_path: Path) -> tuple[str, str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), str(tmp_path / "ca.pem")


def test_token_auth_context_asks_for_no_client_certificate(tmp_path: Path) -> None:
    cert, key, _ = _files(tmp_path)
    ctx = server_context(cert, key, ["h2"])
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE


def test_certificate_auth_context_accepts_but_does_not_require_one(tmp_path: Path) -> None:
    cert, key, ca = _files(tmp_path)
    ctx = server_context(cert, key, ["h2", "http/1.1"], ca)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.cert_store_stats()["x509_ca"] == 1
    # every TLS 1.2 suite offered is ECDHE + AEAD (RFC 9113 §9.2.2)
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all("ECDHE" in n and ("GCM" in n or "CHACHA20" in n) for n in tls12)
