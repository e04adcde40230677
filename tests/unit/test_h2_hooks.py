"""The h2 engine subclasses three private hooks of h2 (pinned in pyproject.toml): if a release moves
or renames them, these fail before the engine quietly loses its behaviour."""
from __future__ import annotations

import inspect

from h2.config import H2Configuration
from h2.connection import AllowedStreamIDs, H2Connection
from h2.stream import H2Stream

from pushsim.edge import h2_adapted


def test_the_private_hooks_exist_with_the_signatures_the_engine_overrides() -> None:
    assert list(inspect.signature(H2Connection._begin_new_stream).parameters) == ["self", "stream_id", "allowed_ids"]
    assert list(inspect.signature(H2Connection._open_streams).parameters)[:2] == ["self", "remainder"]
    assert list(inspect.signature(H2Stream._initialize_content_length).parameters) == ["self", "headers"]
    assert isinstance(H2Connection.open_inbound_streams, property)


def test_new_streams_are_lenient_and_the_stream_count_is_not_a_scan() -> None:
    conn = h2_adapted.Connection(H2Configuration(client_side=False))
    conn.initiate_connection()
    stream = conn._begin_new_stream(1, AllowedStreamIDs.ODD)
    assert type(stream) is h2_adapted.LenientStream
    stream._initialize_content_length([(b"content-length", b"5")])
    assert stream._expected_content_length is None           # h2's own check is off
    assert conn.open_inbound_streams == 0                     # the O(1) override, not h2's scan
