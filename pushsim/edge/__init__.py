"""The edge: sockets, TLS/ALPN, HTTP/2 (h2 reference engine and a fast engine) and HTTP/1.1.

Engines turn bytes into `(method, path, headers, body)` and call a `Service`; the service answers
with a `Reply` synchronously. Engines own framing, flow control and connection management only.
"""
