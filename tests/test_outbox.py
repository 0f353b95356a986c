"""The store-and-forward outbox: drop rule, persistence, corruption, the sender thread, and the publisher with it."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, sample_body

from edge.config import IdentityConfig, MqttConfig, parse_config
from edge.events import EventFactory, validate
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.transport.courier import Courier
from edge.transport.outbox import DB_NAME, MemoryStore, Outbox, Row, SqliteStore
from edge.transport.outbox_open import open_store

STATUS = {"version": "0.1.0", "counter_name": "C", "models": {}, "degraded": []}
IDENT = IdentityConfig(site_id="site-o", kiosk_id="k-o")
FACTORY = EventFactory(IDENT)


def until(pred: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def stores(tmp_path: Path, **kw: Any) -> list[Any]:
    args = {"max_rows": 10, "max_bytes": 10**6, "max_age_s": 3600.0, **kw}
    out = [MemoryStore(**args), SqliteStore(tmp_path / DB_NAME, **args)]
    if "clock" in kw:  # a test's own wall clock that never steps: the steady clock runs with it
        for store in out:
            store.steady = kw["clock"]
    return out


def add(store: Any, kind: str, i: int) -> int:
    return int(store.add(kind, f"t/{kind}", json.dumps({"i": i, "kind": kind}), False))


def kinds_left(store: Any) -> list[tuple[str, int]]:
    return [(r.kind, json.loads(r.payload)["i"]) for r in store.after(0, 1000)]


def test_drop_rule_emotion_and_health_first_then_visit_alerts_last(tmp_path: Path) -> None:
    for store in stores(tmp_path):
        plan = ["alert", "emotion", "visit", "health", "alert", "visit", "emotion", "emotion", "alert", "visit"]
        for i, kind in enumerate(plan):
            add(store, kind, i)
        assert store.rows == 10 and sum(store.drops.values()) == 0
        for i in range(10, 14):  # 4 more alerts: the 4 emotion/health rows go, oldest first
            add(store, "alert", i)
        assert store.drops == {"emotion": 3, "health": 1, "visit": 0, "configstate": 0, "current": 0,
                               "cue": 0, "alert": 0}
        assert [k for k, _ in kinds_left(store)].count("visit") == 3
        for i in range(14, 18):  # then the visits, oldest first, then the oldest alert
            add(store, "alert", i)
        assert store.drops == {"emotion": 3, "health": 1, "visit": 3, "configstate": 0, "current": 0,
                               "cue": 0, "alert": 1}
        left = kinds_left(store)
        assert left == [("alert", i) for i in (4, 8, 10, 11, 12, 13, 14, 15, 16, 17)]
        add(store, "emotion", 18)  # a new low-priority row in a store full of alerts is itself the one dropped
        assert store.drops["emotion"] == 4 and kinds_left(store) == left
        store.close()


def test_byte_limit_and_age_limit(tmp_path: Path) -> None:
    now = [1000.0]
    for store in stores(tmp_path, max_rows=1000, max_bytes=100, clock=lambda: now[0]):
        for i in range(5):  # each payload is 29-30 bytes: at most 3 fit in 100 bytes
            add(store, "emotion", i)
        assert store.rows == 3 and store.nbytes <= 100 and store.drops["emotion"] == 2
        assert [i for _, i in kinds_left(store)] == [2, 3, 4]
        now[0] += 3599.5
        add(store, "visit", 5)  # rows 2..4 are 3599.5 s old: kept; bytes push out the oldest emotion
        now[0] += 1.0  # now rows 3, 4 are 3600.5 s old: expired when the next row comes
        add(store, "alert", 6)
        assert kinds_left(store) == [("visit", 5), ("alert", 6)]
        assert store.drops == {"emotion": 5, "health": 0, "visit": 0, "configstate": 0, "current": 0,
                               "cue": 0, "alert": 0}
        assert store.rows == 2 and store.nbytes == sum(len(r.payload) for r in store.after(0, 10))
        store.close()


def test_a_wall_clock_step_keeps_queued_rows_ages(tmp_path: Path) -> None:
    """A Pi without a battery clock boots with its last shutdown's time and jumps days ahead at NTP sync: rows queued
    before the jump are minutes old, not days (kept); a clock set back does not keep old rows past the limit."""
    wall, steady = [0.0], [0.0]
    for fwd in (True, False):
        (tmp_path / str(fwd)).mkdir()
        for store in stores(tmp_path / str(fwd), max_rows=1000, max_age_s=3600.0, clock=lambda: wall[0]):
            store.steady = lambda: steady[0]
            wall[0], steady[0] = 1000.0, 50.0
            add(store, "alert", 0)
            wall[0] += 60.0
            steady[0] += 60.0
            add(store, "alert", 1)
            step = 3 * 86400.0 if fwd else -3 * 86400.0  # NTP sync after a weekend off / a clock that ran ahead
            wall[0] += 120.0 + step
            steady[0] += 120.0
            add(store, "alert", 2)
            assert [i for _, i in kinds_left(store)] == [0, 1, 2] and store.drops["alert"] == 0
            wall[0] += 3600.0 - 170.0  # row 0 is 3,610 s old by the steady clock, row 1 3,550 s
            steady[0] += 3600.0 - 170.0
            add(store, "alert", 3)
            assert [i for _, i in kinds_left(store)] == [1, 2, 3] and store.drops["alert"] == 1
            store.close()


def _clocked_store(path: Path, wall: list[float], steady: list[float]) -> SqliteStore:
    store = SqliteStore(path, 100, 10**6, 3600.0, clock=lambda: wall[0])
    store.steady = lambda: steady[0]
    return store


def test_a_clock_step_while_the_database_failed_keeps_this_process_rows(tmp_path: Path) -> None:
    """This run's rows left in a failed file move with a step seen meanwhile (applied when the file is adopted
    again); a row an earlier run stamped with a right clock keeps its time and expires by it."""
    wall, steady, mono = [1000.0], [0.0], [0.0]
    s = _clocked_store(tmp_path / DB_NAME, wall, steady)
    s.add("alert", "t", json.dumps({"i": 0}), False)  # an earlier run's row
    s.close()
    wall[0] = 1100.0  # the next boot: the clock starts where the last run stopped; really 3 days later
    store = _clocked_store(tmp_path / DB_NAME, wall, steady)
    box = Outbox(store, clock=lambda: mono[0])
    box.add("alert", "t", json.dumps({"i": 1}), False)
    store.con.close()  # the database fails: the next rows wait in memory
    box.add("alert", "t", json.dumps({"i": 2}), False)
    assert not box.persistent
    wall[0] += 3 * 86400.0 + 10.0  # NTP sync
    steady[0] += 10.0
    box.add("alert", "t", json.dumps({"i": 3}), False)
    mono[0] = Outbox.RETRY_S + 1
    wall[0] += 3000.0
    steady[0] += 3000.0
    box.add("alert", "t", json.dumps({"i": 4}), False)  # the file is adopted again, then the age limit applies
    assert box.persistent
    assert [json.loads(r.payload)["i"] for r in box.after(0, 10)] == [1, 2, 3, 4]  # row 0: 3 days old
    box.close()


def test_a_failed_add_takes_back_the_clock_step_it_saw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step's row update is rolled back with the failed add, so the next add sees the step again."""
    wall, steady = [1000.0], [0.0]
    store = _clocked_store(tmp_path / DB_NAME, wall, steady)
    store.add("alert", "t", json.dumps({"i": 0}), False)
    wall[0] += 86400.0 + 60.0
    steady[0] += 60.0

    def fail(*_a: Any, **_k: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_insert", fail)
    with pytest.raises(sqlite3.OperationalError):
        store.add("alert", "t", json.dumps({"i": 1}), False)
    assert store.offset == 1000.0 and store.con.execute("SELECT created FROM outbox").fetchall() == [(1000.0,)]
    monkeypatch.undo()
    store.add("alert", "t", json.dumps({"i": 2}), False)
    assert [i for _, i in kinds_left(store)] == [0, 2]  # 60 s old by the steady clock: kept
    store.close()


def test_sqlite_outbox_survives_reopen_in_order_with_same_bytes(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    payloads = [json.dumps({"n": i, "text": "é" * i}, ensure_ascii=False) for i in range(6)]
    seqs = [s.add("emotion", "a/b", p, i == 2) for i, p in enumerate(payloads)]
    s.delete([seqs[1], seqs[4], 99999])
    s.close()  # as after kill -9, nothing else is needed: every add is committed
    s2 = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    rows = s2.after(0, 100)
    assert [r.payload for r in rows] == [payloads[i] for i in (0, 2, 3, 5)]
    assert [r.retain for r in rows] == [False, True, False, False] and s2.rows == 4
    assert s2.nbytes == sum(len(p.encode()) for p in (payloads[i] for i in (0, 2, 3, 5)))
    assert s2.add("emotion", "a/b", "{}", False) > seqs[-1]  # numbering never goes back
    assert [r.seq for r in s2.after(seqs[2], 2)] == [seqs[3], seqs[5]]
    s2.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_table"])
def test_corrupt_outbox_is_moved_aside_and_started_empty(tmp_path: Path, damage: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "state" / DB_NAME
    db.parent.mkdir()
    if damage == "garbage":
        db.write_bytes(b"this is not a database at all" * 300)
    elif damage == "wrong_table":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE outbox (x INTEGER)")
        con.commit()
        con.close()
    else:
        s = SqliteStore(db, 10**5, 10**8, 3600.0)
        for i in range(3000):
            s.add("emotion", "t", json.dumps({"i": i, "pad": "x" * 200}), False)
        s.close()
        data = db.read_bytes()
        db.write_bytes(data[:100] + b"\xff" * 4000 + data[4100:len(data) // 2])
    before = db.read_bytes()
    store = open_store(db.parent, 100, 10**6, 3600.0, memory_rows=10)
    assert isinstance(store, SqliteStore) and store.rows == 0
    moved = db.parent / f"{DB_NAME}.corrupt"
    if damage == "wrong_table":  # a valid SQLite file of another shape: kept whole (now in WAL mode)
        with sqlite3.connect(moved) as con:
            assert con.execute("SELECT name FROM pragma_table_info('outbox')").fetchall() == [("x",)]
    else:
        assert moved.read_bytes() == before
    assert "is unreadable" in caplog.text and ".corrupt" in caplog.text
    assert store.add("alert", "t", "{}", False) >= 1
    store.close()


def test_unusable_state_folder_falls_back_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    store = open_store(blocker, 100, 10**6, 3600.0, memory_rows=7)
    assert isinstance(store, MemoryStore) and store.max_rows == 7
    assert "cannot be used" in caplog.text and "in memory only" in caplog.text
    assert isinstance(open_store(None, 100, 10**6, 3600.0, memory_rows=5), MemoryStore)


def test_database_failure_at_run_time_switches_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    box = Outbox(store)
    first = box.add("emotion", "t", "{}", False)
    store.con.close()  # every later statement fails like an I/O error would
    second = box.add("alert", "t", '{"a":1}', False)
    assert not box.persistent and second > first and box.stats()["errors"] == 1
    assert [r.payload for r in box.after(0, 10)] == ['{"a":1}']
    assert box.stats()["stranded"] == 1 and box.problem is not None and "closed database" in box.problem
    assert "new events are kept in memory" in caplog.text


class FakeClient:
    """Collects what the courier hands over; acknowledges on request."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Row]] = []
        self.refuse = False
        self._mid = 0
        self.lock = threading.Lock()

    def send(self, row: Row) -> int | None:
        with self.lock:
            if self.refuse:
                return None
            self._mid += 1
            self.sent.append((self._mid, row))
            return self._mid


def test_courier_sends_in_order_within_a_window_and_deletes_on_ack(tmp_path: Path) -> None:
    box = Outbox(SqliteStore(tmp_path / DB_NAME, 1000, 10**6, 3600.0))
    client = FakeClient()
    courier = Courier(box, client.send, window=4)
    courier.start()
    try:
        for i in range(10):
            box.add("emotion", "t", str(i), False)
            courier.notify()
        time.sleep(0.2)
        assert client.sent == [], "nothing is handed over while disconnected"
        courier.up()
        until(lambda: len(client.sent) == 4)
        time.sleep(0.1)
        assert [r.payload for _, r in client.sent] == ["0", "1", "2", "3"]  # window of 4 unacknowledged
        for mid, _ in client.sent[:2]:
            courier.acked(mid)
        until(lambda: len(client.sent) == 6)
        assert len(box) == 8
        courier.down()  # connection lost with 4 in flight: after `up` all 8 queued rows go again, oldest first
        courier.up()
        until(lambda: len(client.sent) == 10)
        assert [r.payload for _, r in client.sent[6:]] == ["2", "3", "4", "5"]
        client.refuse = True  # paho's queue full: rows stay, retried later
        for mid, _ in client.sent[6:]:
            courier.acked(mid)
        until(lambda: len(box) == 4)
        client.refuse = False
        until(lambda: len(client.sent) == 14, timeout=3)  # the sender retries on its own within ~1 s
        for mid, _ in client.sent[10:]:
            courier.acked(mid)
        assert courier.wait_idle(3) and len(box) == 0
        assert [r.payload for _, r in client.sent[10:]] == ["6", "7", "8", "9"]
    finally:
        courier.stop()
        box.close()


def make_pub(port: int, state: Path | None, **mqtt: Any) -> Any:
    from edge.transport.mqtt import MqttPublisher

    cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=5,
                     **{"reconnect_min_s": 0.1, "reconnect_max_s": 0.3, **mqtt})
    return MqttPublisher(cfg, IDENT, FACTORY, lambda: dict(STATUS), state_dir=state)


def test_events_queued_while_the_broker_is_down_survive_a_restart(mosquitto: Broker, subscribe: Any,
                                                                  tmp_path: Path) -> None:
    mosquitto.stop()
    state = tmp_path / "state"
    pub = make_pub(mosquitto.port, state)
    pub.start()
    sent = [FACTORY.make(k, **sample_body(k)) for k in ("visit", "emotion", "alert", "emotion", "health")]
    for p in sent:
        assert pub.publish(p["schema"].split("/")[1], p)
    assert pub.publish("status", FACTORY.make("status", **sample_body("status")))  # never queued
    pub.stop()  # like a power cut: nothing was delivered
    assert sorted(p.name for p in state.iterdir()) == [DB_NAME]  # WAL files are removed on a clean close
    with sqlite3.connect(state / DB_NAME) as con:
        assert con.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'status'").fetchone()[0] == 0
    mosquitto.start()
    sub2 = subscribe(mosquitto, "edge-emotion/site-o/k-o/+")
    pub2 = make_pub(mosquitto.port, state)
    pub2.start()
    try:
        until(lambda: sum(not m.topic.endswith("/status") for m in sub2.messages) >= len(sent))
        got = [m.payload.decode() for m in sub2.messages if not m.topic.endswith("/status")]
        assert got == [json.dumps(p, separators=(",", ":"), ensure_ascii=False) for p in sent]  # same bytes, order
        until(lambda: len(pub2.outbox) == 0)
        assert pub2.outbox_stats()["rows"] == 0
    finally:
        pub2.stop()


def test_nothing_lost_when_the_broker_dies_mid_stream(mosquitto: Broker, subscribe: Any, tmp_path: Path) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got: set[str] = set()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="outbox-sub", protocol=paho.MQTTv311,
                      clean_session=False)
    sub.on_connect = lambda c, *_: c.subscribe("edge-emotion/site-o/k-o/emotion", 1)
    sub.on_message = lambda _c, _u, m: got.add(json.loads(m.payload)["event_id"])
    sub.reconnect_delay_set(0.05, 0.2)
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    pub = make_pub(mosquitto.port, tmp_path / "state", reconnect_min_s=1.0, reconnect_max_s=1.0)  # after `sub`
    pub.start()
    ids: list[str] = []
    try:
        until(lambda: pub.connected)
        for i in range(300):
            p = FACTORY.make("emotion", **sample_body("emotion"))
            ids.append(p["event_id"])
            pub.publish("emotion", p)
            if i == 150:
                mosquitto.stop()  # kill -9 with messages in flight; the subscriber's session dies with it
                mosquitto.start()
                until(lambda: sub.is_connected())
            time.sleep(0.002)
        until(lambda: set(ids) <= got, timeout=15)
        until(lambda: len(pub.outbox) == 0)
    finally:
        pub.stop()
        sub.loop_stop()
        sub.disconnect()


def test_health_reports_outbox_drops_and_depth(tmp_path: Path) -> None:
    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "state": {"dir": str(tmp_path / "st")},
                        "mqtt": {"host": "127.0.0.1", "port": 1, "outbox_max_rows": 100}})
    svc = Service(cfg, Analyzers())
    for _ in range(104):  # never started: every event stays queued
        svc.emit("emotion", sample_body("emotion"))
    svc.emit("alert", sample_body("alert"))
    body = svc.health_body()
    assert body["drops"]["outbox_emotion"] == 5 and body["drops"]["outbox_alert"] == 0
    assert body["queue_depth"]["outbox"] == 100 and body["mqtt"]["dropped"] == 5
    validate("health", svc.factory.make("health", **body))
    assert (tmp_path / "st" / DB_NAME).exists()
    svc.publisher.stop()


def test_no_state_folder_keeps_the_memory_outbox(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.transport.mqtt")
    pub = make_pub(1, None, max_queued=10)
    for _ in range(12):
        pub.publish("emotion", FACTORY.make("emotion", **sample_body("emotion")))
    assert pub.outbox is not None and not pub.outbox.persistent
    assert pub.outbox_stats()["rows"] == 10 and pub.stats()["dropped"] == 2
    assert "queued emotion event" in caplog.text


def test_a_full_disk_at_start_leaves_the_outbox_alone_and_retries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Disk full or an I/O error while opening is not corruption: the file is kept (not moved aside as .corrupt),
    events wait in memory, the service shows the problem, and the file is adopted again once it opens."""
    import edge.transport.outbox_open as oo

    s = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    for i in range(5):
        s.add("alert", "t", json.dumps({"i": i}), False)
    s.close()
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]

    def refuse(*_a: Any, **_k: Any) -> SqliteStore:
        raise full

    monkeypatch.setattr(oo, "SqliteStore", refuse)
    store = open_store(tmp_path, 100, 10**6, 3600.0, memory_rows=10)
    assert isinstance(store, MemoryStore) and not (tmp_path / f"{DB_NAME}.corrupt").exists()
    assert "tried again" in caplog.text
    now = [0.0]
    box = Outbox(store, clock=lambda: now[0])
    assert not box.persistent and box.problem and "full" in box.problem and box.stranded == 5
    box.add("alert", "t", json.dumps({"i": 5}), False)  # kept in memory meanwhile
    now[0] = Outbox.RETRY_S + 1  # space freed: the next event adopts the file again
    box.add("alert", "t", json.dumps({"i": 6}), False)
    assert box.persistent and box.problem is None and len(box) == 7
    box.close()


def test_a_stranded_retained_state_is_not_resent_after_a_newer_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`current` queued in the file before it failed, a newer `current` sent from memory meanwhile: when the file
    works again the older one is left out, or it would become the broker's retained copy."""
    import edge.transport.outbox_open as oo

    s = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    s.add("current", "k/current", '{"paused": true}', True)
    s.add("alert", "k/alert", '{"i": 0}', False)
    s.close()
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorname = "SQLITE_IOERR"  # type: ignore[attr-defined]
    monkeypatch.setattr(oo, "SqliteStore", lambda *a, **k: (_ for _ in ()).throw(io))
    now = [0.0]
    box = Outbox(open_store(tmp_path, 100, 10**6, 3600.0, memory_rows=10), clock=lambda: now[0])
    newer = box.add("current", "k/current", '{"paused": false}', True)
    box.delete([newer])  # sent from memory and acknowledged
    now[0] = Outbox.RETRY_S + 1
    box.add("health", "k/health", "{}", False)
    assert box.persistent
    queued = [(r.topic, r.payload) for r in box.after(0, 10)]
    assert ("k/current", '{"paused": true}') not in queued and ("k/alert", '{"i": 0}') in queued
    box.close()


def test_a_second_failed_start_numbers_memory_rows_above_the_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """After one recovery the file holds rows numbered from the memory range; a second start on a full disk must
    number its memory rows above those, or adopting them fails for good (a UNIQUE clash) and events stay stranded."""
    import edge.transport.outbox_open as oo

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    real = oo.SqliteStore
    for boot in range(2):
        monkeypatch.setattr(oo, "SqliteStore", lambda *a, **k: (_ for _ in ()).throw(full))
        now = [0.0]
        box = Outbox(open_store(tmp_path, 100, 10**6, 3600.0, memory_rows=10), clock=lambda now=now: now[0])
        box.add("alert", "k/alert", json.dumps({"boot": boot, "i": 0}), False)
        monkeypatch.setattr(oo, "SqliteStore", real)
        now[0] = Outbox.RETRY_S + 1  # space freed: the memory rows move into the file
        box.add("alert", "k/alert", json.dumps({"boot": boot, "i": 1}), False)
        assert box.persistent and box.problem is None, f"boot {boot}: {box.problem}"
        box.close()
    s = real(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    assert len(s.after(0, 100)) == 4  # both boots' events, none lost
    s.close()


def test_adopting_memory_rows_is_all_or_nothing(tmp_path: Path) -> None:
    """Rows moved back from memory and the superseded retained rows they replace go in one transaction: a failure
    half-way leaves the file as it was, so the next retry can succeed."""
    s = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    s.add("current", "k/current", '{"paused": true}', True)
    mem = MemoryStore(10, 10**6, 3600.0, first_seq=s.last_seq() + 1)
    newer = mem.add("current", "k/current", '{"paused": false}', True)
    mem.add("alert", "k/alert", "{}", False)
    rows = mem.queued()
    broken = rows + [rows[-1]]  # the same sequence number twice: the insert fails half-way
    with pytest.raises(sqlite3.IntegrityError):
        s.adopt(broken, {"k/current": newer})
    assert [r.payload for r in s.after(0, 10)] == ['{"paused": true}'] and s.rows == 1
    assert s.adopt(rows, {"k/current": newer}) == 1  # the stale retained row goes, both memory rows come in
    assert [r.payload for r in s.after(0, 10)] == ['{"paused": false}', "{}"] and s.rows == 2
    s.close()


def test_a_stale_retained_row_numbered_higher_is_still_superseded(tmp_path: Path) -> None:
    """Memory rows numbered from a clock that ran behind the previous start's (a kiosk without a real-time clock)
    can sit below an older retained row of the file: the newer state wins all the same."""
    s = SqliteStore(tmp_path / DB_NAME, 100, 10**6, 3600.0)
    mem = MemoryStore(10, 10**6, 3600.0, first_seq=1000)
    newer = mem.add("current", "k/current", '{"paused": false}', True)
    s.adopt([], None)
    s.con.execute("INSERT INTO outbox (seq, kind, prio, topic, payload, retain, size, created) "
                  "VALUES (5000, 'current', 0, 'k/current', '{\"paused\": true}', 1, 17, 0)")
    s.rows, s.nbytes = 1, 17
    assert s.adopt(mem.queued(), {"k/current": newer}) == 1
    assert [r.payload for r in s.after(0, 10)] == ['{"paused": false}']
    s.close()


def test_a_damaged_row_is_dropped_and_counted_not_a_block_for_the_rows_behind_it(tmp_path: Path) -> None:
    """One row whose payload bytes no longer decode (a flipped bit; the file check passes) made every read fail,
    and one whose topic the client refuses (a '/' turned '+') was retried for ever: nothing behind either was sent."""
    db = tmp_path / DB_NAME
    store = SqliteStore(db, 1000, 10**6, 3600.0)
    for i in range(4):
        store.add("alert", "edge-emotion/s/k/alert", json.dumps({"n": i}), False)
    store.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE outbox SET payload = CAST(? AS TEXT) WHERE seq = 1", (b'{"n":\xa2}',))
    con.execute("UPDATE outbox SET topic = 'edge-emotion/s+k/alert' WHERE seq = 3")
    con.commit()
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    con.close()
    box = Outbox(SqliteStore(db, 1000, 10**6, 3600.0))
    client = FakeClient()

    def send(row: Row) -> int | None:
        if "+" in row.topic:
            raise ValueError("Publish topic cannot contain wildcards.")  # what paho raises
        return client.send(row)

    courier = Courier(box, send, window=4)
    courier.start()
    try:
        courier.up()
        until(lambda: len(client.sent) == 2)
        assert [json.loads(r.payload)["n"] for _, r in client.sent] == [1, 3]
        for mid, _ in client.sent:
            courier.acked(mid)
        assert courier.wait_idle(3) and len(box) == 0
        assert box.stats()["corrupt"] == 2 and box.persistent and box.stats()["errors"] == 0
    finally:
        courier.stop()
        box.close()


def test_a_damaged_index_keeps_the_rows_that_still_read_back(tmp_path: Path) -> None:
    """One damaged page of a secondary index set aside every queued event though the table read back whole, and
    the loss was counted as 1 (COUNT(*) went through the broken index)."""
    db = tmp_path / "state" / DB_NAME
    db.parent.mkdir()
    s = SqliteStore(db, 10**5, 32 * 2**20, 86400.0)
    for i in range(3000):
        s.add("alert" if i % 10 == 0 else "visit", "edge-emotion/s/k/alert", json.dumps({"n": i, "pad": "y" * 200}),
              False)
    s.close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=DELETE")  # the WAL folded into the file
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox_created'").fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(db, "r+b") as f:  # the index's root page scribbled over, the table left alone
        f.seek((root - 1) * size + 8)
        f.write(b"\xff" * 64)
    store = open_store(db.parent, 10**5, 32 * 2**20, 86400.0, memory_rows=10)
    assert isinstance(store, SqliteStore) and store.rows == 3000 and store.drops.get("corrupt", 0) == 0
    rows = store.after(0, 5000)
    assert [json.loads(r.payload)["n"] for r in rows] == list(range(3000))  # in order, all of them
    assert (db.parent / f"{DB_NAME}.corrupt").exists()
    store.close()
