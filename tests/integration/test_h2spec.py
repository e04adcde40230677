"""h2spec 2.0.0 passes every case on every HTTP/2 port (APNs TLS + h2c, FCM TLS + h2c), both engines.

Runs when the binary is found (tests/conformance.py: $PUSHSIM_H2SPEC, PATH, ../shared/tools/h2spec);
otherwise skipped, saying where it looked. `./run.sh conformance` runs the same with a summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conformance import ENGINES, PORTS, find_h2spec, parse_junit, port_name, port_of, run_h2spec, serving

H2SPEC = find_h2spec()
needs_h2spec = pytest.mark.skipif(
    H2SPEC is None, reason="h2spec not found (set PUSHSIM_H2SPEC, put h2spec on PATH, or keep it at "
                           "../shared/tools/h2spec beside the repository)")


@pytest.fixture(scope="module", params=ENGINES)
def endpoints(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if H2SPEC is None:
        pytest.skip("h2spec not found")
    with serving(request.param, tmp_path_factory.mktemp(f"h2spec-{request.param}")) as eps:
        yield eps


@needs_h2spec
@pytest.mark.timeout(45)
@pytest.mark.parametrize("service, key, tls", PORTS, ids=[port_name(s, k) for s, k, _ in PORTS])
def test_h2spec_passes_every_case(endpoints: dict[str, Any], service: str, key: str, tls: bool) -> None:
    assert H2SPEC is not None
    outcome = run_h2spec(H2SPEC, port_of(endpoints, service, key), tls=tls)
    assert outcome.error is None, outcome.error
    assert outcome.failures == []
    assert outcome.total >= 146 and outcome.passed == outcome.total - outcome.skipped


def test_junit_report_failures_and_errors_are_counted(tmp_path: Path) -> None:
    """The parser the assertion above relies on: a failed or errored case is never a pass."""
    report = tmp_path / "r.xml"
    report.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><testsuites>'
        '<testsuite name="6.5" package="http2/6.5" tests="3">'
        '<testcase package="http2/6.5" classname="ok case" time="0.1"></testcase>'
        '<testcase package="http2/6.5" classname="bad case" time="0.1"><error>unexpected EOF</error></testcase>'
        '<testcase package="http2/6.5" classname="wrong case" time="0.1">'
        '<failure message="Expected: GOAWAY">detail</failure></testcase>'
        '</testsuite><testsuite name="7" package="http2/7" tests="1">'
        '<testcase package="http2/7" classname="skipped case"><skipped/></testcase></testsuite></testsuites>')
    out = parse_junit(report)
    assert (out.total, out.passed, out.skipped) == (4, 1, 1) and not out.ok
    assert out.failures == ["http2/6.5: bad case — unexpected EOF", "http2/6.5: wrong case — Expected: GOAWAY"]
