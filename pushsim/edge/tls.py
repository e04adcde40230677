"""Server TLS contexts for the fake services (APNs: TLS 1.2+, ALPN h2, optional client certificate)."""
from __future__ import annotations

import ssl


def server_context(cert_file: str, key_file: str, alpn: list[str],
                   client_ca_file: str | None = None) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context offering `alpn` (in preference order).

    With `client_ca_file`, a client certificate is requested but not required (CERT_OPTIONAL):
    APNs serves token-auth clients, which send none, and certificate-auth clients on one port.
    A certificate that is sent must chain to that CA, or the handshake fails, as with APNs.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # RFC 9113 §9.2.2: HTTP/2 over TLS 1.2 needs an ephemeral key exchange and an AEAD cipher.
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.load_cert_chain(cert_file, key_file)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if client_ca_file is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=client_ca_file)
    return ctx
