"""The hub's /metrics merge (cluster/merge.py merge_metrics) over real prometheus_client expositions:
for any split of counts over workers, every series is the sum of the workers' and sits under its
own family's HELP/TYPE lines (what promtool checks), whichever worker is the first to have it."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from pushsim.cluster.merge import merge_metrics

REASONS = ("Expired", "Superseded", "BadDeviceToken")
BOUNDS = ("0.1", "1.0", "+Inf")


class _Worker(Collector):
    def __init__(self, counts: dict[str, int], buckets: list[int] | None) -> None:
        self.counts, self.buckets = counts, buckets

    def collect(self):
        c = CounterMetricFamily("pushsim_dropped", "Dropped.", labels=("reason",))
        for r, n in self.counts.items():
            c.add_metric([r], n)
        yield c
        h = HistogramMetricFamily("pushsim_delay_seconds", "Delay.", labels=("service",))
        if self.buckets is not None:
            cum, total = [], 0
            for b, n in zip(BOUNDS, self.buckets):
                total += n
                cum.append((b, total))
            h.add_metric(["apns"], cum, float(total))
        yield h


def _exposition(counts: dict[str, int], buckets: list[int] | None) -> str:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Worker(counts, buckets))
    return generate_latest(reg).decode()


workers = st.lists(st.tuples(st.dictionaries(st.sampled_from(REASONS), st.integers(0, 10**6), max_size=3),
                             st.none() | st.lists(st.integers(0, 1000), min_size=3, max_size=3)),
                   min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@example([({}, None), ({"Expired": 2}, [1, 2, 3])])   # the second worker is the first with any series
@given(workers)
def test_merged_series_are_sums_under_their_own_family(parts):
    merged = merge_metrics([_exposition(c, b) for c, b in parts])
    want: dict[tuple[str, tuple], float] = {}
    for c, b in parts:
        for fam in text_string_to_metric_families(_exposition(c, b)):
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                want[key] = want.get(key, 0.0) + s.value
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(merged) for s in fam.samples}
    assert got == want
    family = None
    for line in merged.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif line and not line.startswith("#"):
            assert family is not None and line.startswith(family), (family, line)
