"""The aggregates as Prometheus metrics: counters per site (and per counter where allowed), read from the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.aggregates.fold import FIELDS, SITE
from edge.aggregates.store import Store

HELP = {
    "visits": "Customer visits that ended (by the hour they started).",
    "visit_seconds": "Summed duration of those visits in seconds.",
    "care_cues": "Visits in which sad + fear held at least the care share.",
    "episodes": "Alert episodes (cards): watches, possibly raised to alerts.",
    "alerts": "Episodes that reached the alert level.",
    "acknowledged": "Episodes staff acknowledged on a tablet (at the level shown then: a watch, or the alert).",
    "alerts_acknowledged": "Episodes whose alert level itself staff acknowledged (an ack of its watch does not count).",
    "alerts_ack_base": "Alerts counted since alert acknowledgements are (the base of the alerts-acknowledged share).",
    "ack_seconds": "Summed time from an episode's first message to its acknowledgement, in seconds.",
    "recovered": "Episodes that ended calm (recovered).",
    "calm_seconds": "Summed time from an episode's first message to recovered, in seconds.",
}


class AggregatesCollector(Collector):
    """Reads the store's totals at every scrape; subscriber counters (drops, duplicates, …) from ``stats``."""

    def __init__(self, store: Store, per_counter: bool, stats: Callable[[], dict[str, int]],
                 min_visits: int = 1) -> None:
        """``per_counter``: also export per-counter families (never under the eu profile); a counter (or the
        site) with fewer than ``min_visits`` visits in all is left out until it has that many."""
        self.store, self.per_counter, self.stats, self.min_visits = store, per_counter, stats, min_visits

    def collect(self) -> Iterator[Metric]:
        """One counter family per figure (and per counter, where allowed), and the subscriber's own counters."""
        totals = self.store.totals()
        site = self.store.site
        shown = {c: r for c, r in totals.items() if float(r.get("visits") or 0.0) >= self.min_visits}
        for field in FIELDS:
            fam = CounterMetricFamily(f"edge_emotion_site_{field}", HELP[field], labels=["site"])
            fam.add_metric([site], float(shown.get(SITE, {}).get(field) or 0.0))
            yield fam
            if self.per_counter:
                per = CounterMetricFamily(f"edge_emotion_counter_{field}", HELP[field], labels=["site", "counter"])
                for counter, row in sorted(shown.items()):
                    if counter != SITE:
                        per.add_metric([site, counter], float(row.get(field) or 0.0))
                yield per
        fam = CounterMetricFamily("edge_emotion_aggregates_messages", "Messages the aggregates subscriber handled, "
                                  "by outcome.", labels=["site", "outcome"])
        for outcome, n in sorted(self.stats().items()):
            fam.add_metric([site, outcome], float(n))
        yield fam
