"""``edge-emotion fleet status`` against a real broker with fake kiosks publishing retained status and health."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import MOSQUITTO, free_port, sample_body, wait_port

from edge.cli import main
from edge.config import IdentityConfig
from edge.events import EventFactory, topic
from edge.ops.fleet import Broker, collect, format_line

ROOT = Path(__file__).resolve().parents[1]


def _publish(sub: Any, site: str, kiosk: str, kind: str, retain: bool = False, **over: Any) -> None:
    body = {**sample_body(kind), **over}
    payload = EventFactory(IdentityConfig(site_id=site, kiosk_id=kiosk)).make(kind, **body)
    info = sub.client.publish(topic("edge-emotion", site, kiosk, kind), json.dumps(payload), qos=1, retain=retain)
    info.wait_for_publish(5)


@pytest.fixture
def fleet(mosquitto: Any, subscribe: Any) -> Any:
    pub = subscribe(mosquitto, "nothing/#")
    _publish(pub, "site-f", "k1", "status", retain=True, counter_name="Counter 1", paused=False,
             models={"face_expression": "0.1.0", "voice_emotion": "0.1.0"})
    _publish(pub, "site-f", "k2", "status", retain=True, state="offline", counter_name="Counter 2",
             degraded=["camera: reopening (no device)"], paused=True)
    _publish(pub, "site-g", "k9", "status", retain=True, counter_name="Elsewhere")
    return mosquitto, pub


def test_fleet_status_lists_every_kiosk_of_a_site(fleet: Any, capsys: pytest.CaptureFixture[str]) -> None:
    mosquitto, pub = fleet

    def later() -> None:  # health and alerts are not retained: they arrive during the wait
        _publish(pub, "site-f", "k1", "health", fps_in=25.0, fps_analysed=7.5, drops={"frames": 3, "errors_ack": 2})
        _publish(pub, "site-f", "k1", "alert", level="watch", reason="rising")

    threading.Timer(0.3, later).start()
    kiosks = collect(Broker(mosquitto.host, mosquitto.port), site="site-f", wait_s=1.2)
    assert list(kiosks) == [("site-f", "k1"), ("site-f", "k2")]
    k1, k2 = (k.row() for k in kiosks.values())
    assert (k1["state"], k1["counter_name"], k1["version"]) == ("online", "Counter 1", "0.1.0")
    assert k1["models"] == {"face_expression": "0.1.0", "voice_emotion": "0.1.0"}
    assert (k1["fps_analysed"], k1["fps_in"], k1["drops_total"]) == (7.5, 25.0, 5)
    assert k1["last_alert_level"] == "watch" and k1["last_alert_ts"] and k1["paused"] is False
    assert (k2["state"], k2["paused"], k2["fps_in"], k2["last_alert_ts"]) == ("offline", True, None, None)
    line = format_line(k2)
    assert "site-f/k2" in line and "offline" in line and "paused yes" in line and "camera: reopening" in line
    assert "fps in/analysed -/-" in line and "alert -" in line

    assert main(["fleet", "status", "--host", mosquitto.host, "--port", str(mosquitto.port), "--wait", "0.3",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["site_id"], r["kiosk_id"]) for r in rows] == [("site-f", "k1"), ("site-f", "k2"), ("site-g", "k9")]
    assert main(["fleet", "status", "--port", str(mosquitto.port), "--site", "site-f", "--wait", "0.2"]) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") == 2 and "Counter 1" in out.out and "2 kiosk(s), 1 online" in out.err


def test_a_last_will_older_than_the_online_status_still_wins(mosquitto: Any, subscribe: Any) -> None:
    """The will ("offline") is made before the online status it replaces: by timestamp the dead kiosk stayed online
    in the fleet view; the last message to arrive on a topic is its state."""
    pub = subscribe(mosquitto, "nothing/#")
    ident = IdentityConfig(site_id="site-w", kiosk_id="k1")
    will = EventFactory(ident, clock=lambda: 1_800_000_000.0).make("status", **{**sample_body("status"),
                                                                                  "state": "offline"})
    online = EventFactory(ident, clock=lambda: 1_800_000_100.0).make("status", **sample_body("status"))
    t = topic("edge-emotion", "site-w", "k1", "status")
    pub.client.publish(t, json.dumps(online), qos=1, retain=True).wait_for_publish(5)
    got: dict[Any, Any] = {}
    watcher = threading.Thread(target=lambda: got.update(collect(Broker(host=mosquitto.host, port=mosquitto.port),
                                                                 site="site-w", wait_s=2.0)))
    watcher.start()
    time.sleep(1.0)  # the fleet view holds the retained online status; the kiosk dies now, live
    pub.client.publish(t, json.dumps(will), qos=1, retain=True).wait_for_publish(5)
    watcher.join(10)
    assert got[("site-w", "k1")].status["state"] == "offline"


def test_fleet_status_without_kiosks_or_broker(mosquitto: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "status", "--port", str(mosquitto.port), "--site", "empty", "--wait", "0.2"]) == 1
    assert "no kiosk found under edge-emotion/empty/" in capsys.readouterr().err
    port = mosquitto.port
    mosquitto.stop()
    assert main(["fleet", "status", "--port", str(port), "--wait", "0.1"]) == 1
    assert "cannot connect" in capsys.readouterr().err


def _bridge_block() -> str:
    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```conf\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def _certs(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the bridge (EC P-256)."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "2", "-subj", "/CN=test fleet CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("bridge", "extendedKeyUsage=clientAuth")):
        ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(ext + "\n")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "bridge.crt", "bridge.key")}


def _start(d: Path, lines: list[str]) -> subprocess.Popen[bytes]:
    conf = d / "mosquitto.conf"
    conf.write_text("\n".join([f"user {pwd.getpwuid(os.getuid()).pw_name}", "persistence false",
                               f"log_dest file {d / 'log.txt'}", "log_type all", *lines]) + "\n")
    return subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_bridge_config_in_scaling_doc_remaps_topics_over_tls(tmp_path: Path, subscribe: Any) -> None:
    if MOSQUITTO is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    c = _certs(tmp_path)
    tls_port, plain_port, site_port = free_port(), free_port(), free_port()
    (tmp_path / "central").mkdir()
    (tmp_path / "site").mkdir()
    procs = [_start(tmp_path / "central", [
        f"listener {tls_port} 127.0.0.1", f"cafile {c['ca.crt']}", f"certfile {c['server.crt']}",
        f"keyfile {c['server.key']}", "require_certificate true", "allow_anonymous true",
        f"listener {plain_port} 127.0.0.1", "allow_anonymous true"])]
    block = _bridge_block().replace("mqtt.fleet.example.net:8883", f"127.0.0.1:{tls_port}")
    for key, name in (("bridge_cafile", "ca.crt"), ("bridge_certfile", "bridge.crt"), ("bridge_keyfile", "bridge.key")):
        block = re.sub(rf"^{key} .*$", f"{key} {c[name]}", block, flags=re.M)
    procs.append(_start(tmp_path / "site", [f"listener {site_port} 127.0.0.1", "allow_anonymous true", block]))
    try:
        assert wait_port("127.0.0.1", plain_port) and wait_port("127.0.0.1", site_port)
        central = SimpleNamespace(host="127.0.0.1", port=plain_port)
        site = SimpleNamespace(host="127.0.0.1", port=site_port)
        up = subscribe(central, "fleet/#")
        up.wait_for(lambda m: m.topic == "fleet/bridges/branch-0042/state" and m.payload == b"1", timeout=10)
        down = subscribe(site, "edge-emotion/#")
        _publish(down, "branch-0042", "counter-03", "status", retain=True, counter_name="Counter 3")
        for kind in ("emotion", "health", "alert"):
            _publish(down, "branch-0042", "counter-03", kind)
        got = up.wait_for(lambda m: m.topic == "fleet/eu/branch-0042/counter-03/alert", timeout=5)
        assert json.loads(got.payload)["site_id"] == "branch-0042" and got.qos == 1
        topics = {m.topic for m in up.messages}
        assert {"fleet/eu/branch-0042/counter-03/status", "fleet/eu/branch-0042/counter-03/health"} <= topics
        assert not any(t.endswith("/emotion") for t in topics)  # emotion stays on the site (sent before the alert)
        kiosks = collect(Broker("127.0.0.1", plain_port), prefix="fleet/eu", wait_s=0.3)  # retained status bridged
        assert kiosks[("branch-0042", "counter-03")].status["counter_name"] == "Counter 3"  # type: ignore[index]
        up.client.publish("fleet/eu/branch-0042/counter-03/config", b'{"alerts": {"alert_threshold": 0.7}}', qos=1)
        cfg = down.wait_for(lambda m: m.topic == "edge-emotion/branch-0042/counter-03/config", timeout=5)
        assert json.loads(cfg.payload) == {"alerts": {"alert_threshold": 0.7}}
        up.client.publish("fleet/eu/branch-0099/k1/config", b"{}", qos=1)  # another site's: not bridged here
        up.client.publish("fleet/eu/branch-0042/counter-03/pause", b'{"action": "pause"}', qos=1)
        time.sleep(0.5)
        assert not any(m.topic.endswith(("/pause", "branch-0099/k1/config")) for m in down.messages)
    finally:
        for p in procs:
            p.kill()
            p.wait(5)


def test_loadtest_script_smoke(tmp_path: Path) -> None:
    """deploy/loadtest.py end to end at toy size (the real run is a documented command: docs/bench/fleet.md)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "loadtest.py"), "--kiosks", "6", "--sites", "2",
                    "--duration", "1.5", "--json", str(out)], check=True, capture_output=True, timeout=120)
    r = json.loads(out.read_text())
    assert r["published"] >= 6 and r["acked"] >= r["published"] and r["tablets"] == 4
    assert r["expected_deliveries"] == 2 * r["published"] and r["lost"] == 0 and r["duplicates"] == 0
    assert 0 < r["latency_ms"]["p50"] < 5000 and r["probe_latency_ms"]["n"] > 0
    assert set(r["cpu_percent_of_one_core"]) == {"broker", "kiosk_generators", "tablets"}
