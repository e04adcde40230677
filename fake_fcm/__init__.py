"""FCM HTTP v1, OAuth2 token grant, IID topic management and quotas as pure functions (no sockets)."""
