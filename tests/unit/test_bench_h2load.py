"""benchmarks.h2load: the summary and --log-file parsers on output captured from real h2load runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import h2load

# h2load 1.52 against `pushsim serve` over TLS, -c 2 -m 100 -n 1000, unpaced: one connection's first
# flight was refused (99 streams, REFUSED_STREAM) before the server's SETTINGS arrived.
TLS_REFUSED = """starting benchmark...
spawning thread #0: 2 total client(s). 1000 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2
progress: 10% done
progress: 100% done

finished in 176.66ms, 5100.16 req/s, 550.84KB/s
requests: 1000 total, 1000 started, 1000 done, 901 succeeded, 99 failed, 99 errored, 0 timeout
status codes: 901 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 97.31KB (99648) total, 87.99KB (90100) headers (space savings 2.91%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:     1.32ms     38.32ms     29.05ms      8.34ms    66.48%
time for connect:    10.46ms     27.87ms     19.16ms     12.32ms   100.00%
time to 1st byte:    29.86ms     39.96ms     34.91ms      7.14ms   100.00%
req/s           :    2329.94     2970.28     2650.11      452.79   100.00%
"""

# nghttpd h2c, 20 GETs of a missing file
NOT_FOUND = """finished in 3.92s, 5.10 req/s, 1.53KB/s
requests: 20 total, 20 started, 20 done, 20 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 20 4xx, 0 5xx
"""

CLEAN_SECONDS = """finished in 12.07s, 8285.12 req/s, 1.10MB/s
requests: 100000 total, 100000 started, 100000 done, 100000 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 100000 2xx, 0 3xx, 0 4xx, 0 5xx
"""

# the same TLS run's --log-file (start µs since the epoch, status, µs to the end of the response)
LOG = """1795657741636308\t200\t1319
1795657741636358\t200\t11723
1795657741636361\t-1\t11425
1795657741636363\t-1\t11455
1795657741636587\t-1\t11462
1795657741748248\t200\t31835
1795657741748249\t200\t31836
"""


def test_summary_with_refused_streams():
    s = h2load.parse_summary(TLS_REFUSED)
    assert (s.seconds, s.req_s) == (pytest.approx(0.17666), 5100.16)
    assert (s.total, s.done, s.succeeded, s.failed, s.errored, s.timeout) == (1000, 1000, 901, 99, 99, 0)
    assert s.codes == (901, 0, 0, 0) and s.ok2xx == 901 and s.non2xx == 0
    assert not s.clean(1000)


def test_summary_non2xx_is_not_clean_even_when_nothing_failed():
    s = h2load.parse_summary(NOT_FOUND)
    assert s.seconds == pytest.approx(3.92) and s.non2xx == 20 and s.failed == 0
    assert not s.clean(20)


def test_summary_clean_and_seconds_unit():
    s = h2load.parse_summary(CLEAN_SECONDS)
    assert s.seconds == pytest.approx(12.07) and s.clean(100000)
    assert not s.clean(100001)          # fewer 2xx than asked for is not clean


def test_summary_missing_is_an_error():
    with pytest.raises(h2load.H2loadOutputError):
        h2load.parse_summary("h2load: could not connect\n")


def test_log_rows():
    st = h2load.parse_log(LOG.splitlines(keepends=True))
    assert st.count == 7 and st.statuses == {200: 4, -1: 3}
    assert st.latencies_us == [1319, 11723, 31835, 31836]          # failed streams carry no latency
    assert st.failed_starts_us == [1795657741636361, 1795657741636363, 1795657741636587]
    assert st.first_start_us == 1795657741636308
    assert st.last_end_us == 1795657741748249 + 31836
    assert st.span_s == pytest.approx((1795657741748249 + 31836 - 1795657741636308) / 1e6)
    # 4 x 2xx from the first start to the last end
    assert st.rate() == pytest.approx(4 / st.span_s)
    # skipping the first 100 ms leaves the two late responses
    assert st.rate(100_000) == pytest.approx(2 / ((1795657741748249 + 31836 - 1795657741748248) / 1e6))


def test_log_extra_columns_and_blank_lines_are_fine_short_rows_are_not():
    st = h2load.parse_log(["1\t200\t5\tfuture\n", "\n", "3\t503\t7\n"])
    assert st.statuses == {200: 1, 503: 1} and st.latencies_us == [5, 7]
    assert st.ok_starts_us == [1]                                    # 2xx only
    with pytest.raises(h2load.H2loadOutputError):
        h2load.parse_log(["1\t200\n"])


def test_first_flight_refusals_recognised():
    s = h2load.parse_summary(TLS_REFUSED)
    log = h2load.parse_log([f"{1000 + i}\t-1\t5\n" for i in range(99)] + [f"{2000 + i}\t200\t5\n" for i in range(901)])
    assert h2load.first_flight_refusals(s, log, 1000, clients=2, streams=100)
    # more refusals than streams - 1 per connection: not a first flight
    assert not h2load.first_flight_refusals(s, log, 1000, clients=1, streams=50)
    # a refusal long after the start is something else
    late = h2load.parse_log([f"{1000 + i}\t-1\t5\n" for i in range(98)] + ["900000\t-1\t5\n"]
                            + [f"{2000 + i}\t200\t5\n" for i in range(901)])
    assert not h2load.first_flight_refusals(s, late, 1000, clients=2, streams=100)
    # any non-2xx is never excused
    assert not h2load.first_flight_refusals(h2load.parse_summary(NOT_FOUND), log, 20, 2, 100)


def test_command_shapes(tmp_path: Path):
    load = h2load.Load(tmp_path / "u", tmp_path / "b", ("a: 1", "b: 2"), 8, 100)
    cmd = h2load.command(load, 500, tmp_path / "log")
    assert cmd[:7] == ["h2load", "-n", "500", "-c", "8", "-m", "100"]
    assert cmd[cmd.index("-i") + 1] == str(tmp_path / "u") and "--h1" not in cmd and "--rps" not in cmd
    assert cmd.count("-H") == 2 and cmd[-2:] == ["--log-file", str(tmp_path / "log")]
    paced = h2load.command(load, 500, rps=12.5)
    assert paced[paced.index("--rps") + 1] == "12.500"
    from dataclasses import replace
    scripted = h2load.command(replace(load, script=tmp_path / "s", h1=True), 10, rps=3)
    assert "-i" not in scripted and "--rps" not in scripted and "--h1" in scripted
    assert scripted[scripted.index("--timing-script-file") + 1] == str(tmp_path / "s")


def test_timing_script(tmp_path: Path):
    offsets = h2load.evenly(5, 500.0, first_alone_ms=50)
    assert offsets == [0.0, 50.0, 52.0, 54.0, 56.0]
    assert h2load.evenly(3, 1000.0, start_ms=1) == [1.0, 2.0, 3.0]
    path = h2load.timing_script(tmp_path / "s", ["http://a/1", "http://a/2"], offsets)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert [r[1] for r in rows] == ["http://a/1", "http://a/2", "http://a/1", "http://a/2", "http://a/1"]
    assert [float(r[0]) for r in rows] == offsets


def test_timed_command_replaces_n(tmp_path: Path):
    from dataclasses import replace
    load = h2load.Load(tmp_path / "u", tmp_path / "b", (), 8, 100, duration_s=2.5, warmup_s=0.5)
    cmd = h2load.command(load, 500)
    assert "-n" not in cmd and cmd[1:5] == ["-D", "2500ms", "--warm-up-time", "500ms"]
    # a paced (script) run of the same row counts requests again
    assert "-D" not in h2load.command(replace(load, script=tmp_path / "s"), 10)
