"""h2, adapted to answer as APNs does: the configuration, settings, stream and connection classes
the h2 engine (`pushsim.edge.h2_engine`) drives.

Three of these lean on private hooks of h2 (`H2Connection._begin_new_stream`, `._open_streams`,
`H2Stream._initialize_content_length`): h2 is pinned to the minor release they were written for
(pyproject.toml), and tests/unit/test_h2_hooks.py fails first if a release moves them.
"""
from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream

from .fast_frames import APNS_SETTINGS, DEFAULT_MAX_STREAMS

__all__ = ["CONFIG", "DEFAULT_MAX_STREAMS", "MAX_STREAMS", "Connection", "LenientStream", "ServerSettings"]

MAX_STREAMS = SettingCodes.MAX_CONCURRENT_STREAMS
# What real APNs announces (the same list the fast engine sends); MAX_CONCURRENT_STREAMS comes
# from the service.
_ANNOUNCED: dict[SettingCodes, int] = {SettingCodes(code): value for code, value in APNS_SETTINGS}

# Validation/normalisation cost ~19% (perf-notes trick 2), and h2 makes a malformed request a
# connection error; `fields.check_request` (shared with the fast engine) makes it a stream error.
CONFIG = H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)



class ServerSettings(Settings):
    """Announces what APNs announces, and moves stream-limit enforcement out of h2.

    h2 answers a stream over the limit with a connection-wide GOAWAY; APNs (and RFC 9113 §5.1.2)
    refuse just that stream, so h2's own check is disabled and the engine sends REFUSED_STREAM.
    """

    def __init__(self, max_streams: int) -> None:
        super().__init__(client=False, initial_values={**_ANNOUNCED, MAX_STREAMS: max_streams})
        # A server has no business announcing these; APNs sends only the five values of APNS_SETTINGS plus the stream limit.
        del self[SettingCodes.ENABLE_PUSH]
        del self[SettingCodes.ENABLE_CONNECT_PROTOCOL]

    @property
    def enable_push(self) -> int:  # type: ignore[override]
        return 0

    @property
    def max_concurrent_streams(self) -> int:  # type: ignore[override]
        return 2**31


class LenientStream(H2Stream):
    """h2's stream without its content-length check, which is a connection error in h2.

    RFC 9113 §8.1.1 makes a content-length that does not match the body a stream error; the
    engine checks it with `fields.body_fits` once the body is in, as the fast engine does.
    """

    def _initialize_content_length(self, headers: object) -> None:
        self._expected_content_length = None


class Connection(H2Connection):
    """h2 with its per-new-stream count made O(1), and streams without h2's content-length check.

    h2 counts open inbound streams by scanning every stream it holds each time one opens (and
    purges closed ones on the way): 16k streams opened in one read took 8-16 s. Its limit check is
    disabled anyway (`ServerSettings`), so the count is only needed for the purge, which is done
    when the table has doubled since the last one: amortised O(1) per stream.
    """

    _purge_at = 64

    @property
    def open_inbound_streams(self) -> int:  # type: ignore[override]
        if len(self.streams) > self._purge_at:
            self._open_streams(1)
            self._purge_at = max(64, 2 * len(self.streams))
        return 0

    def _begin_new_stream(self, stream_id, allowed_ids):  # type: ignore[no-untyped-def]
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = LenientStream   # before h2 hands it the request's headers
        return stream
