"""The fleet exporter (issue 22): kiosk health as Prometheus metrics, scraped by a real Prometheus (Debian's
``prometheus``) with the shipped alert rules; the example Grafana dashboard asks only for metrics it exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, sample_body, wait_port
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.config import IdentityConfig
from edge.events import EventFactory, topic
from edge.ops.fleet_exporter import CLOSED, FleetCollector, serve, subscribe

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "edge-emotion-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "edge-emotion-fleet.json"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")


def _ev(kind: str, kiosk: str, site: str = "s1", **over: Any) -> dict[str, Any]:
    return EventFactory(IdentityConfig(site_id=site, kiosk_id=kiosk)).make(kind, **{**sample_body(kind), **over})


def _health(kiosk: str, fps: float, outbox: int, **over: Any) -> dict[str, Any]:
    return _ev("health", kiosk, fps_in=30.0, fps_analysed=fps, queue_depth={"readings": 1, "outbox": outbox},
               drops={"frames": 3, "outbox_emotion": 2}, latency_ms={"face": {"p50": 9.5, "p95": 14.0, "n": 96}},
               **over)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _scrape(c: FleetCollector) -> str:
    reg = CollectorRegistry()
    reg.register(c)
    return generate_latest(reg).decode()


def test_collector_turns_status_and_health_into_metrics() -> None:
    now = [1000.0]
    c = FleetCollector(clock=lambda: now[0])
    c.update("s1", "k1", "status", _ev("status", "k1"))
    c.update("s1", "k1", "health", _health("k1", 7.5, 12))
    c.update("s1", "k2", "status", _ev("status", "k2", state="offline", degraded=[CLOSED], paused=True))
    c.update("s1", "k3", "health", {"fps_in": 1})  # not a health message
    now[0] = 1004.0
    s = _samples(_scrape(c))
    k1, k2 = (("kiosk", "k1"), ("site", "s1")), (("kiosk", "k2"), ("site", "s1"))

    def lab(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((*k1, *extra)))

    assert s[("edge_emotion_kiosk_up", k1)] == 1 and s[("edge_emotion_kiosk_up", k2)] == 0
    assert s[("edge_emotion_kiosk_fps_analysed", k1)] == 7.5 and s[("edge_emotion_kiosk_fps_in", k1)] == 30
    assert s[("edge_emotion_kiosk_health_age_seconds", k1)] == 4.0
    assert s[("edge_emotion_kiosk_queue_depth", lab(("queue", "outbox")))] == 12
    assert s[("edge_emotion_kiosk_drops_total", lab(("queue", "frames")))] == 3
    assert s[("edge_emotion_kiosk_latency_ms", lab(("quantile", "0.95"), ("stage", "face")))] == 14.0
    assert s[("edge_emotion_kiosk_source_ok", lab(("source", "microphone"), ("state", "reopening")))] == 0
    assert s[("edge_emotion_kiosk_paused", k2)] == 1 and s[("edge_emotion_kiosk_closed", k2)] == 1
    assert ("edge_emotion_kiosk_fps_in", k2) not in s  # no health from k2 yet: no made-up zero
    assert s[("edge_emotion_exporter_messages_total", (("outcome", "invalid"),))] == 1


def test_one_huge_number_is_refused_not_a_broken_scrape_for_the_fleet() -> None:
    """A schema-valid 400-digit integer made float() raise in every scrape, for every kiosk, until the next health;
    arrivals are stamped with a monotonic clock (a wall-clock step is not an age)."""
    c = FleetCollector()
    c.update("s1", "k1", "health", _health("k1", 7.5, 12))
    c.update("s1", "k2", "health", _health("k2", 7.5, 12, uptime_s=int("9" * 400)))
    s = _samples(_scrape(c))
    assert s[("edge_emotion_kiosk_fps_analysed", (("kiosk", "k1"), ("site", "s1")))] == 7.5
    assert ("edge_emotion_kiosk_fps_in", (("kiosk", "k2"), ("site", "s1"))) not in s
    assert s[("edge_emotion_exporter_messages_total", (("outcome", "invalid"),))] == 1
    import time as _time

    assert FleetCollector().clock is _time.monotonic


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (apt-get install prometheus; "
                    "scripts/setup does)")
def test_a_real_prometheus_scrapes_the_exporter_and_evaluates_the_rules(mosquitto: Any, subscribe: Any,
                                                                         tmp_path: Path) -> None:
    pub = subscribe(mosquitto, "nothing/#")
    for kiosk, body in (("k1", _ev("status", "k1")), ("k2", _ev("status", "k2")),
                        ("k3", _ev("status", "k3", paused=True))):
        pub.client.publish(topic("edge-emotion", "s1", kiosk, "status"), json.dumps(body), qos=1,
                           retain=True).wait_for_publish(5)
    collector = FleetCollector()
    client = subscribe_to(collector, mosquitto)
    server = serve(collector, "127.0.0.1", 0)
    port, prom_port = server.server_address[1], free_port()
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\n"
        f"scrape_configs: [{{job_name: edge, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n")
    prom = subprocess.Popen([str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for kiosk, fps in (("k1", 7.5), ("k2", 0.2), ("k3", 0.0)):
            pub.client.publish(topic("edge-emotion", "s1", kiosk, "health"), json.dumps(_health(kiosk, fps, 150)),
                               qos=1).wait_for_publish(5)
        assert wait_port("127.0.0.1", prom_port, timeout=30)
        deadline, got = time.monotonic() + 30, []
        while time.monotonic() < deadline and len(got) < 3:
            time.sleep(0.5)
            got = _query(prom_port, "edge_emotion_kiosk_fps_analysed")
        assert {r["metric"]["kiosk"]: float(r["value"][1]) for r in got} == {"k1": 7.5, "k2": 0.2, "k3": 0.0}
        assert _query(prom_port, 'up{job="edge"}')[0]["value"][1] == "1"
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5) as r:
            rules = [x["name"] for g in json.load(r)["data"]["groups"] for x in g["rules"]]
        assert rules == ["EdgeEmotionKioskOffline", "EdgeEmotionOutboxGrowing", "EdgeEmotionFpsCollapsed"]
        exprs = {r["alert"]: r["expr"] for r in _rules()}
        collapsed = _query(prom_port, exprs["EdgeEmotionFpsCollapsed"])  # k2; k3 is paused, k1 is fine
        assert [r["metric"]["kiosk"] for r in collapsed] == ["k2"]
        assert _query(prom_port, exprs["EdgeEmotionKioskOffline"]) == []
        gone = json.dumps(_ev("status", "k1", state="offline"))
        pub.client.publish(topic("edge-emotion", "s1", "k1", "status"), gone, qos=1, retain=True).wait_for_publish(5)
        deadline, offline = time.monotonic() + 15, []
        while time.monotonic() < deadline and not offline:
            time.sleep(0.5)
            offline = _query(prom_port, exprs["EdgeEmotionKioskOffline"])
        assert [r["metric"]["kiosk"] for r in offline] == ["k1"]
    finally:
        prom.terminate()
        prom.wait(10)
        client.disconnect()
        client.loop_stop()
        server.shutdown()


def subscribe_to(collector: FleetCollector, broker: Any) -> Any:
    from edge.ops.broker_client import Broker

    return subscribe(collector, Broker(broker.host, broker.port), "edge-emotion", "s1")


def _rules() -> list[dict[str, Any]]:
    import yaml

    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_the_rules_and_the_example_config() -> None:
    r = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "3 rules found" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(PROMTOOL), "check", "config", "prometheus.example.yml"], cwd=RULES.parent,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_and_rules_ask_only_for_exported_metrics() -> None:
    c = FleetCollector()
    c.update("s1", "k1", "status", _ev("status", "k1"))
    c.update("s1", "k1", "health", _health("k1", 7.5, 1, cpu_temp_c=48.0))
    exported = {s.name for fam in text_string_to_metric_families(_scrape(c)) for s in fam.samples}
    dash = json.loads(DASHBOARD.read_text())
    assert dash["__inputs"][0]["pluginId"] == "prometheus" and dash["uid"] == "edge-emotion-fleet"
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]] + [r["expr"] for r in _rules()]
    assert len(exprs) >= 12
    for expr in exprs:
        for name in re.findall(r"\bedge_emotion_\w+", expr):
            assert name in exported, f"{name} (in {expr!r}) is not exported"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in dash["panels"])


def test_an_online_kiosk_without_health_ages_and_a_cleared_one_is_forgotten() -> None:
    """A kiosk that died while the broker was down keeps a retained `online` and sends no health: it had no health
    age, so neither the offline alert nor the dashboard ever caught it. A retired kiosk (retained status cleared)
    stayed reported offline for ever."""
    now = [1000.0]
    c = FleetCollector(clock=lambda: now[0])
    c.update("s1", "k1", "status", _ev("status", "k1"))
    c.update("s1", "k2", "status", _ev("status", "k2", state="offline"))
    now[0] = 1090.0
    s = _samples(_scrape(c))
    assert s[("edge_emotion_kiosk_health_age_seconds", (("kiosk", "k1"), ("site", "s1")))] == 90.0
    assert ("edge_emotion_kiosk_health_age_seconds", (("kiosk", "k2"), ("site", "s1"))) not in s  # offline: up=0
    c.forget("s1", "k2")
    assert ("edge_emotion_kiosk_up", (("kiosk", "k2"), ("site", "s1"))) not in _samples(_scrape(c))


def test_the_fps_rule_leaves_out_kiosks_without_a_camera() -> None:
    """A voice-only kiosk (camera disabled) analyses no frames by design: it alerted for ever."""
    rule = next(r for r in _rules() if r["alert"] == "EdgeEmotionFpsCollapsed")
    assert 'edge_emotion_kiosk_source_ok{source="camera", state="disabled"}' in rule["expr"]
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"] if "source_ok" in t["expr"]]
    assert exprs and all('state!="disabled"' in e for e in exprs), exprs
