"""Site aggregates (issue 22): a replayed day through a real mosquitto into SQLite, read on the page, in the CSV
and as Prometheus metrics; folding rules, duplicates and the eu profile's missing per-counter figures."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import sample_body
from day_events import SITE, TZ, replay_day
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from screenshots import shot_path

from edge.aggregates.config import AggregatesConfig
from edge.aggregates.fold import Folder, parse_ts
from edge.aggregates.page import EU_NOTE
from edge.aggregates.service import AggregatesService
from edge.config import IdentityConfig
from edge.events import EventFactory, topic
from edge.ops.broker_client import Broker

CARE = ("sad", "fear")
SCREENSHOT = shot_path("aggregates.png")


def _expected(events: list[tuple[float, str, str, dict[str, Any]]]) -> dict[str, Counter[str]]:
    """What the figures must be, counted straight from the published events (per counter and '' for the site)."""
    exp: dict[str, Counter[str]] = defaultdict(Counter)
    levels: dict[str, set[str]] = defaultdict(set)
    owner: dict[str, str] = {}
    acked: set[str] = set()
    for _t, kiosk, kind, p in events:
        for who in ("", kiosk):
            if kind == "visit" and p["phase"] == "end":
                exp[who]["visits"] += 1
                exp[who]["care_cues"] += sum(p["summary"]["state_share"].get(k, 0) for k in CARE) >= 0.3
                hour = datetime.fromtimestamp(parse_ts(p["started_at"]), TZ).hour
                exp[who][f"hour{hour:02d}"] += 1
        if kind == "alert":
            levels[p["alert_id"]].add(p["level"])
            owner[p["alert_id"]] = kiosk
        if kind == "ack":
            acked.add(p["alert_id"])
    for aid, lv in levels.items():
        for who in ("", owner[aid]):
            exp[who]["episodes"] += 1
            exp[who]["alerts"] += "alert" in lv
            exp[who]["recovered"] += "recovered" in lv
            exp[who]["acknowledged"] += aid in acked
    return exp


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_replayed_day_through_the_broker(mosquitto: Any, subscribe: Any, tmp_path: Path) -> None:
    day = replay_day()
    assert day.customers["sad"] > 10 and day.customers["upset-left"] > 10
    exp = _expected(day.events)
    assert exp[""]["visits"] == sum(day.customers.values())  # the core made one visit per scripted customer
    assert exp[""]["care_cues"] == day.customers["sad"] and exp[""]["acknowledged"] > 20
    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "agg.db", timezone="Europe/Berlin", http_port=0)
    svc = AggregatesService(cfg, Broker(mosquitto.host, mosquitto.port), clock=lambda: day.events[-1][0] + 3600)
    svc.start()
    try:
        pub = subscribe(mosquitto, "nothing/#")
        last = None
        for n, (_t, kiosk, kind, payload) in enumerate(day.events):
            last = pub.client.publish(topic("edge-emotion", SITE, kiosk, kind), json.dumps(payload), qos=1)
            if n % 200 == 199:  # a day compressed into seconds: paced so mosquitto's per-client queue (1000) holds
                last.wait_for_publish(10)
                while svc.stats()["received"] < n - 400:
                    time.sleep(0.01)
        pub.client.publish(topic("edge-emotion", "other-site", "k1", "visit"), b"{}", qos=1)  # not this site
        assert last is not None
        last.wait_for_publish(30)
        deadline = time.monotonic() + 60
        while svc.stats()["folded"] < len(day.events) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert svc.stats()["folded"] == len(day.events), svc.stats()
        assert svc.stats()["dropped"] == 0 and svc.stats()["invalid"] == 0 and svc.stats()["duplicates"] == 0
        time.sleep(0.3)  # the writer commits its last batch
        totals = svc.store.totals()
        for who in ("", "k1", "k2"):
            got = totals[who]
            for f in ("visits", "care_cues", "episodes", "alerts", "recovered", "acknowledged"):
                assert got[f] == exp[who][f], (who, f, got[f], exp[who][f])
        site = totals[""]
        assert 3.5 <= site["ack_seconds"] / site["acknowledged"] <= 7.5  # staff took 4 or 6 s (kiosk clock ±1 s)
        assert 0 < site["calm_seconds"] / site["recovered"] < 120
        hours = {int(r["hour"]): r["visits"] for r in svc.store.by_hour_of_day()}
        assert hours == {int(k[4:]): v for k, v in exp[""].items() if k.startswith("hour")}
        assert [r["day"] for r in svc.store.by_day()] == ["2026-11-23"]

        base = f"http://127.0.0.1:{svc.web.port}"
        code, page = _get(base + "/")
        assert code == 200 and page.count("<svg") == 3 and "Hour of day" in page and "Trend over days" in page
        assert f"<b>{exp['']['visits']}</b><span>visits</span>" in page
        assert "Per counter (alphabetical, not a ranking)" in page and ">k2<" in page
        code, text = _get(base + "/aggregates.csv?by=hour")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert code == 200 and sum(float(r["visits"]) for r in rows if r["counter"] == "") == exp[""]["visits"]
        assert {r["counter"] for r in rows} == {"", "k1", "k2"} and "acknowledged_share" in rows[0]
        code, text = _get(base + "/aggregates.csv?by=day")
        (row,) = list(csv.DictReader(io.StringIO(text)))
        e = exp[""]
        assert float(row["alerts"]) == e["alerts"] and float(row["watches"]) == e["episodes"] - e["alerts"]
        code, text = _get(base + "/metrics")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert samples[("edge_emotion_site_visits_total", (("site", SITE),))] == exp[""]["visits"]
        k2 = (("counter", "k2"), ("site", SITE))
        assert samples[("edge_emotion_counter_alerts_total", k2)] == exp["k2"]["alerts"]
        assert _get(base + "/?days=soon")[0] == 400 and "days:" in _get(base + "/?days=soon")[1]
        assert _get(base + "/?days=7")[0] == 200 and _get(base + "/nope")[0] == 404
        _read_in_chromium(base + "/", exp[""]["visits"], tmp_path)
    finally:
        svc.stop()


def _read_in_chromium(url: str, visits: int, tmp_path: Path) -> None:
    """What a manager sees: the figures render in a real browser (screenshot via shot_path)."""
    from test_tablet_browser import CHROME_FLAGS, CHROMEDRIVER, CHROMIUM

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return  # the page itself was checked over HTTP above; the browser view needs Debian's chromium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,1500"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        drv.get(url)
        figs = {e.find_element(By.TAG_NAME, "span").text: e.find_element(By.TAG_NAME, "b").text
                for e in drv.find_elements(By.CSS_SELECTOR, ".fig")}
        assert figs["visits"] == str(visits) and figs["acknowledged"].endswith("%"), figs
        assert all(svg.size["height"] > 100 for svg in drv.find_elements(By.TAG_NAME, "svg"))
        drv.save_screenshot(str(SCREENSHOT))
    finally:
        drv.quit()


def _ev(kind: str, kiosk: str = "k1", ts: float = 1_800_000_000.0, **over: Any) -> dict[str, Any]:
    f = EventFactory(IdentityConfig(site_id=SITE, kiosk_id=kiosk), clock=lambda: ts)
    body = {**sample_body(kind), **over}
    if kind == "visit" and "phase" not in over:  # a visit's end carries its summary
        body.update(phase="end", ended_at="2026-11-22T10:03:00.000Z", summary={
            "duration_s": 180.0, "state_share": {"neutral": 0.9, "angry": 0.1}, "peak_escalation": 0.5,
            "alert_raised": False, "acknowledged": False, "calmed_down": False})
    return f.make(kind, **body)


def test_folding_rules() -> None:
    f = Folder(TZ, per_counter=True, wall=lambda: 1_800_000_000.0)
    w = _ev("alert", level="watch", reason="rising", alert_id="a-1")
    assert {i.field for i in f.fold("alert", "k1", w)} == {"episodes"}
    assert f.fold("alert", "k1", w) == [] and f.counts["duplicates"] == 1  # QoS 1 duplicate
    up = f.fold("alert", "k1", _ev("alert", ts=1_800_000_004.0, level="alert", alert_id="a-1"))
    assert {(i.counter, i.field) for i in up} == {(c, f) for c in ("", "k1") for f in ("alerts", "alerts_ack_base")}
    f.fold("emotion", "k1", _ev("emotion", ts=1_800_000_009.0))  # the kiosk's clock moves on
    ack = f.fold("ack", "k1", {"alert_id": "a-1", "by": "tablet"})
    assert [(i.field, i.amount) for i in ack if i.counter == ""] == [("alerts_acknowledged", 1.0),
                                                                     ("acknowledged", 1.0), ("ack_seconds", 9.0)]
    assert f.fold("ack", "k1", {"alert_id": "a-1"}) == []  # a second tablet
    assert f.fold("ack", "k2", {"alert_id": "a-1"}) == [] and f.counts["unmatched"] == 1  # not k2's alert
    assert f.fold("alert", "k1", _ev("alert", level="recovered", reason="recovered", alert_id="zz")) == []
    assert f.fold("visit", "k1", {"schema": "edge-emotion/visit/1"}) == [] and f.counts["invalid"] == 1
    assert "care_cues" not in {i.field for i in f.fold("visit", "k1", _ev("visit"))}
    visit = _ev("visit", ts=1_800_000_001.0)
    visit["summary"]["state_share"] = {"neutral": 0.7, "sad": 0.2, "fear": 0.1}
    assert "care_cues" in {i.field for i in f.fold("visit", "k1", visit)}
    small = Folder(TZ, per_counter=False, max_episodes=2, wall=lambda: 1_800_000_000.0)
    for n in range(3):
        out = small.fold("alert", "k1", _ev("alert", level="watch", reason="rising", alert_id=f"b-{n}"))
        assert all(i.counter == "" for i in out)  # no per-counter rows at all
    assert small.counts["episodes_forgotten"] == 1 and list(small.episodes) == ["b-1", "b-2"]


def test_a_visit_resent_after_a_long_outage_is_still_a_duplicate() -> None:
    """Emotion and health traffic (one a second per kiosk) does not push a visit's id out of the duplicate window:
    the outbox may resend an unacknowledged visit hours later."""
    f = Folder(TZ, per_counter=False, max_ids=100, wall=lambda: 1_800_000_000.0)
    end = _ev("visit")
    assert {i.field for i in f.fold("visit", "k1", end)} >= {"visits"}
    for n in range(500):
        f.fold("emotion", "k2", _ev("emotion", ts=1_800_000_000.0 + n))
    assert f.fold("visit", "k1", end) == [] and f.counts["duplicates"] == 1


def test_a_kiosk_time_far_in_the_future_does_not_become_its_clock() -> None:
    """One glitch ahead (a clock stepped back afterwards) would inflate every later time to acknowledge."""
    f = Folder(TZ, per_counter=False, wall=lambda: 1_800_000_010.0)
    f.fold("alert", "k1", _ev("alert", level="alert", alert_id="a-9"))
    f.fold("health", "k1", _ev("health", ts=1_800_000_000.0 + 1e8))
    f.fold("emotion", "k1", _ev("emotion", ts=1_800_000_005.0))
    ack = f.fold("ack", "k1", {"alert_id": "a-9"})
    assert [(i.field, i.amount) for i in ack][-2:] == [("acknowledged", 1.0), ("ack_seconds", 5.0)]


SITE_ROW = ""  # the whole-site row of totals()


def test_an_alert_needs_its_own_ack_as_on_the_kiosk() -> None:
    """A watch acknowledged before the episode became an alert counts as acknowledged (staff answered what they
    were shown) but not as an acknowledged alert; the watch's card acknowledged after the alert counts for nothing
    (the kiosk keeps ringing); the alert's own ack counts once. Every counter only grows (Prometheus counters)."""
    f = Folder(TZ, per_counter=False, wall=lambda: 1_800_000_100.0)

    def site(out: list[Any]) -> list[tuple[str, float]]:
        return [(i.field, i.amount) for i in out]

    f.fold("alert", "k1", _ev("alert", level="watch", reason="rising", alert_id="w-1"))
    f.fold("emotion", "k1", _ev("emotion", ts=1_800_000_003.0))
    assert site(f.fold("ack", "k1", {"alert_id": "w-1", "level": "watch"})) == [("acknowledged", 1.0),
                                                                                ("ack_seconds", 3.0)]
    assert site(f.fold("alert", "k1", _ev("alert", ts=1_800_000_006.0, level="alert", alert_id="w-1"))) == [
        ("alerts", 1.0), ("alerts_ack_base", 1.0)]
    assert site(f.fold("ack", "k1", {"alert_id": "w-1", "level": "watch"})) == []  # the old card, late
    assert f.counts["stale_acks"] == 1
    assert site(f.fold("ack", "k1", {"alert_id": "w-1", "level": "alert"})) == [("alerts_acknowledged", 1.0)]
    assert site(f.fold("ack", "k1", {"alert_id": "w-1"})) == []  # a second tablet
    f.fold("alert", "k1", _ev("alert", level="alert", alert_id="a-2"))
    assert site(f.fold("ack", "k1", {"alert_id": "a-2"})) == [("alerts_acknowledged", 1.0), ("acknowledged", 1.0),
                                                              ("ack_seconds", 6.0)]
    f.fold("alert", "k1", _ev("alert", level="alert", alert_id="a-3"))
    assert site(f.fold("ack", "k1", {"alert_id": "a-3", "level": "watch"})) == [] and f.counts["stale_acks"] == 2


def test_an_ack_after_a_restart_and_in_an_older_database(tmp_path: Path) -> None:
    """A database from before alert acks were counted gains the columns (the share counts only alerts since); an
    episode acknowledged at its watch, then calm, is kept while its alert is unacknowledged (a late ack of it still
    counts) and forgotten after; an old acknowledged alert closes when calm."""
    import sqlite3

    db = tmp_path / "a.db"
    old = sqlite3.connect(db)
    cols = ", ".join(f"{f} REAL NOT NULL DEFAULT 0" for f in ("visits", "visit_seconds", "care_cues", "episodes",
                                                              "alerts", "acknowledged", "ack_seconds", "recovered",
                                                              "calm_seconds"))
    old.execute(f"CREATE TABLE hourly (site TEXT NOT NULL, day TEXT NOT NULL, hour INTEGER NOT NULL, counter TEXT "
                f"NOT NULL, {cols}, PRIMARY KEY (site, day, hour, counter))")
    old.execute("INSERT INTO hourly (site, day, hour, counter, visits, alerts) VALUES (?, '2026-11-20', 9, '', 4, 1)",
                (SITE,))
    old.execute("CREATE TABLE episodes (alert_id TEXT PRIMARY KEY, day TEXT NOT NULL, hour INTEGER NOT NULL, "
                "kiosk TEXT NOT NULL, start REAL NOT NULL, alert INTEGER NOT NULL, acked INTEGER NOT NULL, "
                "recovered INTEGER NOT NULL)")
    old.execute("INSERT INTO episodes VALUES ('a-0', '2026-11-20', 9, 'k1', 1800000000.0, 1, 1, 0)")  # acked before
    old.commit()
    old.close()
    cfg = AggregatesConfig(site_id=SITE, db=db, http_port=0)
    clock = lambda: 1_800_000_100.0  # noqa: E731
    first = AggregatesService(cfg, Broker(), clock=clock)
    for msg in (("alert", "k1", _ev("alert", level="watch", reason="rising", alert_id="a-8"), None),
                ("ack", "k1", {"alert_id": "a-8", "level": "watch"}, None),
                ("alert", "k1", _ev("alert", ts=1_800_000_004.0, level="alert", alert_id="a-8"), None),
                ("alert", "k1", _ev("alert", ts=1_800_000_020.0, level="recovered", reason="recovered",
                                    alert_id="a-8"), None)):
        first.queue.put(msg)
    first.drain()
    first.store.close()
    second = AggregatesService(cfg, Broker(), clock=clock)
    try:
        ep = second.store.episodes()["a-8"]
        assert ep.acked and ep.alert and not ep.alert_acked
        second.queue.put(("ack", "k1", {"alert_id": "a-8", "level": "alert"}, None))
        second.drain()
        site = second.store.totals()[SITE_ROW]
        assert (site["visits"], site["alerts"], site["acknowledged"], site["alerts_acknowledged"]) == (4, 2, 1, 1)
        from edge.aggregates.store import derived

        assert derived(site)["alerts_acknowledged_share"] == 1.0  # over the alert counted since, not the old day's
        assert set(second.store.episodes()) == {"a-0"}
        second.queue.put(("alert", "k1", _ev("alert", level="recovered", reason="recovered", alert_id="a-0"), None))
        second.drain()
        assert second.store.episodes() == {}  # an old episode acknowledged under the old rule closes when calm
    finally:
        second.store.close()


def test_an_episode_open_across_a_restart_is_counted_once(tmp_path: Path) -> None:
    """The aggregator restarts while an alert episode is open: its next message continues it (alert, ack, calm
    counted against the first hour), and an episode closed on both counts is no longer kept."""
    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "a.db", http_port=0)
    clock = lambda: 1_800_000_100.0  # noqa: E731
    first = AggregatesService(cfg, Broker(), clock=clock)
    first.queue.put(("alert", "k1", _ev("alert", level="watch", reason="rising", alert_id="a-7"), None))
    first.drain()
    first.store.close()
    second = AggregatesService(cfg, Broker(), clock=clock)
    try:
        second.queue.put(("alert", "k1", _ev("alert", ts=1_800_000_004.0, level="alert", alert_id="a-7"), None))
        second.queue.put(("ack", "k1", {"alert_id": "a-7"}, None))
        second.queue.put(("alert", "k1", _ev("alert", ts=1_800_000_030.0, level="recovered", reason="recovered",
                                              alert_id="a-7"), None))
        second.drain()
        site = second.store.totals()[SITE_ROW]
        assert (site["episodes"], site["alerts"], site["acknowledged"], site["recovered"]) == (1, 1, 1, 1)
        assert second.store.episodes() == {}  # acknowledged and calm: nothing more can count for it
    finally:
        second.store.close()


def test_eu_profile_has_no_per_counter_figures(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="would rate individual employees"):
        AggregatesConfig(site_id=SITE, profile="eu", per_counter=True)
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        AggregatesConfig(site_id=SITE, timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown IANA time zone .Europe."):  # a folder: IsADirectoryError
        AggregatesConfig(site_id=SITE, timezone="Europe")
    cfg = AggregatesConfig(site_id=SITE, profile="eu", db=tmp_path / "a.db", http_port=0)
    assert cfg.per_counter is False
    svc = AggregatesService(cfg, Broker(), clock=lambda: 1_800_090_000.0)
    svc.web.start()
    try:
        svc.queue.put(("visit", "k1", _ev("visit"), None))
        svc.drain()
        assert list(svc.store.totals()) == [""]
        page = _get(f"http://127.0.0.1:{svc.web.port}/")[1]
        assert EU_NOTE in page and "Per counter" not in page
        metrics = _get(f"http://127.0.0.1:{svc.web.port}/metrics")[1]
        assert "edge_emotion_site_visits_total" in metrics and "edge_emotion_counter_" not in metrics
    finally:
        svc.web.stop()
        svc.store.close()


def test_odd_messages_are_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    """An impossible date (schema-valid in form), a hostile nesting depth and an odd ?days= never stop the service."""
    from types import SimpleNamespace

    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "a.db", http_port=0)
    svc = AggregatesService(cfg, Broker(), clock=lambda: 1_800_090_000.0)
    svc.web.start()
    try:
        bad = _ev("visit", ts=1_800_000_002.0)
        bad["ts"] = "2026-02-30T10:00:00.000Z"
        svc.queue.put(("visit", "k1", bad, None))
        svc.queue.put(("visit", "k1", _ev("visit", ts=1_800_000_003.0), None))
        assert svc.drain() == 2 and svc.folder.counts["invalid"] == 1
        assert svc.store.totals()[""]["visits"] == 1  # the good visit after it is stored
        deep = SimpleNamespace(topic=f"{cfg.topic_prefix}/{SITE}/k1/visit", payload=b"[" * 100_000, qos=0, mid=0)
        svc._on_message(None, None, deep)  # type: ignore[arg-type]
        assert svc.not_json == 1
        for kiosk in ("", "-x", "a b"):  # no kiosk level (it would land in the whole-site rows twice), or no id
            odd = SimpleNamespace(topic=f"{cfg.topic_prefix}/{SITE}/{kiosk}/visit", payload=b"{}", qos=0, mid=0)
            svc._on_message(None, None, odd)  # type: ignore[arg-type]
        assert svc.received == 1 and svc.queue.qsize() == 0
        status, text = _get(f"http://127.0.0.1:{svc.web.port}/?days=%C2%B2")
        assert status == 400 and "days" in text
    finally:
        svc.web.stop()
        svc.store.close()


def test_a_backlog_after_a_restart_is_stored_whole(mosquitto: Any, subscribe: Any, tmp_path: Path) -> None:
    """Messages published while the aggregator was down arrive at once when it is back: paho acknowledged each on
    arrival and the queue dropped the oldest, so visits were lost for good. Now the broker holds the backlog
    (at most receive_maximum unacknowledged) and a message is acknowledged once stored."""
    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "agg.db", http_port=0, queue_size=100)
    first = AggregatesService(cfg, Broker(mosquitto.host, mosquitto.port), clock=lambda: 1_800_010_000.0)
    first.start()
    first.stop()  # its session stays on the broker
    pub = subscribe(mosquitto, "nothing/#")
    n = 600
    last = None
    for i in range(n):
        ev = _ev("visit", kiosk=f"k{i % 3}", ts=1_800_000_000.0 + i)
        last = pub.client.publish(topic("edge-emotion", SITE, f"k{i % 3}", "visit"), json.dumps(ev), qos=1)
    assert last is not None
    last.wait_for_publish(30)
    second = AggregatesService(cfg, Broker(mosquitto.host, mosquitto.port), clock=lambda: 1_800_010_000.0)
    second.start()
    try:
        deadline = time.monotonic() + 60
        while second.stats()["folded"] < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert second.stats()["folded"] == n and second.stats()["dropped"] == 0, second.stats()
    finally:
        second.stop()
    store = AggregatesService(cfg, Broker(), clock=lambda: 1_800_010_000.0).store
    try:
        assert store.totals()[""]["visits"] == n
    finally:
        store.close()


def test_a_resend_after_a_restart_is_still_a_duplicate_and_an_ack_is_timed(tmp_path: Path) -> None:
    """Counted event ids and the kiosks' clocks lived in memory only: after a restart a resent visit or alert
    counted again (a finished episode reopened) and an ack arriving first was timed 0 s."""
    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "a.db", http_port=0)
    clock = lambda: 1_800_000_100.0  # noqa: E731
    visit = _ev("visit", ts=1_800_000_001.0)
    watch = _ev("alert", level="watch", reason="rising", alert_id="a-8")
    seen_later = _ev("emotion", ts=1_800_000_009.0)
    first = AggregatesService(cfg, Broker(), clock=clock)
    for ev, kind in ((visit, "visit"), (watch, "alert"), (seen_later, "emotion")):
        first.queue.put((kind, "k1", ev, None))
    first.drain()
    first.store.close()
    second = AggregatesService(cfg, Broker(), clock=clock)
    try:
        second.queue.put(("visit", "k1", visit, None))
        second.queue.put(("ack", "k1", {"alert_id": "a-8"}, None))
        second.queue.put(("alert", "k1", watch, None))
        second.drain()
        site = second.store.totals()[SITE_ROW]
        assert (site["visits"], site["episodes"], site["acknowledged"]) == (1, 1, 1), site
        assert site["ack_seconds"] == 9.0  # the kiosk's clock (its emotion at +9 s) from before the restart
        assert second.folder.counts["duplicates"] == 2
    finally:
        second.store.close()


def test_small_counts_are_withheld_in_the_page_the_csv_and_the_metrics(tmp_path: Path) -> None:
    """An hour with one visit at a counter showed that customer's visit length and care cue (and one employee's
    time to acknowledge) in the hourly CSV, the page and /metrics: rows of fewer than min_visits are withheld."""
    cfg = AggregatesConfig(site_id=SITE, db=tmp_path / "a.db", http_port=0, min_visits=3)
    svc = AggregatesService(cfg, Broker(), clock=lambda: 1_800_090_000.0)
    svc.web.start()
    try:
        for i in range(4):  # k1: four visits in one hour; k2: one
            svc.queue.put(("visit", "k1", _ev("visit", ts=1_800_000_000.0 + i), None))
        svc.queue.put(("visit", "k2", _ev("visit", kiosk="k2", ts=1_800_000_010.0), None))
        svc.queue.put(("alert", "k1", _ev("alert", ts=1_795_341_700.0, level="watch", reason="rising",
                                          alert_id="a-9"), None))  # the visits' hour (their started_at)
        svc.queue.put(("ack", "k1", {"alert_id": "a-9"}, None))
        svc.drain()
        base = f"http://127.0.0.1:{svc.web.port}"
        rows = list(csv.DictReader(io.StringIO(_get(base + "/aggregates.csv?by=hour")[1])))
        by_counter = {r["counter"]: r for r in rows}
        assert by_counter["k2"]["withheld"] == "1" and by_counter["k2"]["visits"] == "" and \
            by_counter["k2"]["mean_visit_s"] == "", by_counter["k2"]
        assert by_counter["k1"]["withheld"] == "0" and by_counter["k1"]["visits"] == "4"
        assert by_counter["k1"]["episodes"] == "1" and by_counter["k1"]["mean_ack_s"] == ""  # one episode: no mean
        assert by_counter[""]["visits"] == "5"
        page = _get(base + "/")[1]
        assert "fewer than 3 visits: withheld" in page
        metrics = _get(base + "/metrics")[1]
        assert 'counter="k1"' in metrics and 'counter="k2"' not in metrics
    finally:
        svc.web.stop()
        svc.store.close()


def test_a_visit_from_the_future_or_of_absurd_length_is_not_counted() -> None:
    """A visit stamped ten years ahead was stored on that day (and shown in every "last N days"); one schema-valid
    duration of 1e308 made the site's visit time infinite for ever."""
    f = Folder(TZ, per_counter=True, wall=lambda: 1_800_000_000.0)
    ahead = _ev("visit", ts=1_800_000_000.0 + 10 * 365 * 86_400)
    huge = _ev("visit", ts=1_800_000_001.0)
    huge["summary"]["duration_s"] = 1e308
    assert f.fold("visit", "k1", ahead) == [] and f.fold("visit", "k1", huge) == []
    assert f.counts["invalid"] == 2
    assert f.fold("visit", "k1", _ev("visit", ts=1_800_000_002.0))  # an ordinary one still counts
