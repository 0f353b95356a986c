"""Operator tools as a new user meets them (issue 22): listen and fleet share connection options, one-line errors,
readable lines for every kind, the same fps order, an automatic fleet wait, a complete ``--help``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from conftest import MOSQUITTO, free_port, sample_body, wait_port
from paho.mqtt.enums import CallbackAPIVersion
from test_fleet import _certs, _publish, _start

from edge.cli import _parser, main
from edge.config import IdentityConfig
from edge.events import EventFactory
from edge.ops.fleet import Broker, collect, format_line
from edge.ops.listen import summarize

ROOT = Path(__file__).resolve().parents[1]


def test_listen_against_an_unreachable_broker_is_one_line() -> None:
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "edge", "listen", "--port", str(port), "--count", "1"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert f"listen: cannot connect to 127.0.0.1:{port}" in r.stderr


def _ev(kind: str, **over: Any) -> bytes:
    body = {**sample_body(kind), **over}
    return json.dumps(EventFactory(IdentityConfig(site_id="s1", kiosk_id="k1")).make(kind, **body)).encode()


def test_listen_prints_every_kind_readably() -> None:
    alert = summarize("edge-emotion/s1/k1/alert", _ev("alert"))
    assert " s1/k1 alert " in alert and "alert " in alert and "reason=sustained" in alert
    assert "escalation=0.8 for 6.0 s via face+voice" in alert and '"Acknowledge the wait' in alert
    assert '"schema"' not in alert  # not the raw JSON
    cs = summarize("edge-emotion/s1/k1/configstate", _ev("configstate"))
    assert "accepted (message) changed=['alerts.alert_threshold']" in cs and "overlay=['alerts']" in cs
    assert '"config"' not in cs and "identity" not in cs  # the whole config is not dumped
    refused = summarize("edge-emotion/s1/k1/configstate", _ev("configstate", accepted=False, changed=[],
                                                               errors=["alerts.alert_threshold: too big"]))
    assert "REFUSED" in refused and "too big" in refused
    ack = summarize("edge-emotion/s1/k1/ack", b'{"alert_id": "a-1", "by": "tablet"}')
    assert "s1/k1 ack" in ack and "alert=a-1 by=tablet" in ack and "?/?" not in ack
    assert "s1/k1 pause" in summarize("a/b/edge-emotion/s1/k1/pause", b'{"action": "pause"}')  # a deeper prefix
    assert "change of alerts, fusion" in summarize("edge-emotion/s1/k1/config", b'{"fusion": {}, "alerts": {}}')
    assert "not an object" in summarize("edge-emotion/s1/k1/ack", b"[1]")


def test_fps_is_in_slash_analysed_in_listen_and_fleet() -> None:
    health = summarize("edge-emotion/s1/k1/health", _ev("health", fps_in=25.0, fps_analysed=7.5))
    assert "fps in/analysed=25.0/7.5" in health
    row = {"site_id": "s1", "kiosk_id": "k1", "counter_name": None, "state": "online", "version": "0.1.0",
           "models": {}, "fps_in": 25.0, "fps_analysed": 7.5, "drops_total": 0, "last_alert_ts": None,
           "last_alert_level": None, "paused": False, "degraded": [], "stale": False}
    assert "fps in/analysed 25.0/7.5" in format_line(row)


def test_help_lists_every_command() -> None:
    p = _parser()
    sub = next(a for a in p._actions if a.dest == "cmd")
    described = p.description or ""  # the usage line lists the choices anyway; the description did not
    assert "Commands: run, check-config" in " ".join(p.format_help().split())
    helped = {a.dest for a in sub._choices_actions if a.help}  # type: ignore[attr-defined]
    for name in sub.choices:  # type: ignore[union-attr]
        assert name in described, f"{name} missing from the top-level description"
        assert name in helped, f"{name} has no help line"
    assert len(sub.choices) >= 12  # type: ignore[arg-type]


def test_fleet_waits_for_health_by_itself(mosquitto: Any, subscribe: Any) -> None:
    """Without --wait, fleet status waits for every online kiosk's health (fps shown), or calls it STALE."""
    pub = subscribe(mosquitto, "nothing/#")
    cs = sample_body("configstate")
    cs["config"]["mqtt"] = {"health_interval_s": 2.0}  # type: ignore[index]
    for k in ("k1", "k2"):
        _publish(pub, "site-w", k, "status", retain=True)
        _publish(pub, "site-w", k, "configstate", retain=True, config=cs["config"])
    threading.Timer(1.5, lambda: _publish(pub, "site-w", "k1", "health", fps_in=25.0, fps_analysed=7.5)).start()
    t0 = time.monotonic()
    kiosks = collect(Broker(mosquitto.host, mosquitto.port), site="site-w", wait_s=None)
    waited = time.monotonic() - t0
    k1, k2 = kiosks[("site-w", "k1")], kiosks[("site-w", "k2")]
    assert k1.row(waited)["fps_in"] == 25.0 and k2.health is None
    assert 1.5 * 2.0 + 1.0 <= waited < 8.0 and k2.stale(waited) is True


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    """A mosquitto with TLS, client certificates required and password accounts (as the Ansible role builds)."""
    if MOSQUITTO is None or shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    c = _certs(tmp_path)
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "ops", "s3cret-ops"], check=True, capture_output=True)
    port = free_port()
    proc = _start(tmp_path, [f"listener {port} 127.0.0.1", f"cafile {c['ca.crt']}", f"certfile {c['server.crt']}",
                             f"keyfile {c['server.key']}", "require_certificate true", "allow_anonymous false",
                             f"password_file {pw}"])
    try:
        assert wait_port("127.0.0.1", port)
        yield port, c
    finally:
        proc.kill()
        proc.wait(5)


def test_listen_and_fleet_reach_a_tls_broker_with_the_same_options(secured: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    port, c = secured
    opts = ["--host", "127.0.0.1", "--port", str(port), "--ca-file", str(c["ca.crt"]), "--cert-file",
            str(c["bridge.crt"]), "--key-file", str(c["bridge.key"]), "--username", "ops"]
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.username_pw_set("ops", "s3cret-ops")
    pub.tls_set(ca_certs=str(c["ca.crt"]), certfile=str(c["bridge.crt"]), keyfile=str(c["bridge.key"]))
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        pub.publish("edge-emotion/s1/k1/status", _ev("status", state="offline"), qos=1, retain=True).wait_for_publish(5)
        good, bad = c["ca.crt"].parent / "ops.pw", c["ca.crt"].parent / "wrong.pw"
        good.write_text("s3cret-ops\n")
        bad.write_text("wrong\n")
        assert main(["listen", *opts, "--password-file", str(good), "--count", "1"]) == 0
        assert "s1/k1 status  offline v0.1.0" in capsys.readouterr().out
        assert main(["fleet", "status", *opts, "--password-file", str(good), "--wait", "0.3"]) == 0
        assert "s1/k1" in capsys.readouterr().out
        with pytest.raises(SystemExit):  # a password on the command line is refused, not used
            main(["listen", *opts, "--password", "s3cret-ops", "--count", "1"])
        assert "--password is not accepted" in capsys.readouterr().err
        for cmd in (["listen", *opts, "--password-file", str(bad), "--count", "1"],
                    ["fleet", "status", *opts, "--password-file", str(bad), "--wait", "0.2"]):
            assert main(cmd) == 1
            err = capsys.readouterr().err.strip()
            assert "refused the connection" in err and "\n" not in err and "wrong" not in err, err
        assert main(["listen", "--port", str(port), "--ca-file", str(tmp := c["ca.crt"].parent / "nope.crt"),
                     "--count", "1"]) == 1
        assert "TLS files" in capsys.readouterr().err and not tmp.exists()
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_operator_tools_survive_hostile_messages() -> None:
    """Deep nesting or a huge payload is a ValueError (not a RecursionError that ends paho's thread); a health
    message cannot create unbounded metric series; a configstate cannot stretch fleet status's wait."""
    from edge.ops.broker_client import MAX_PAYLOAD_BYTES, decode_json
    from edge.ops.fleet import DEFAULT_HEALTH_S, Kiosk
    from edge.ops.fleet_exporter import MAX_LABELS, FleetCollector

    for bad in (b"[" * 100_000, b" " * (MAX_PAYLOAD_BYTES + 1), b"\xff\xfe"):
        with pytest.raises(ValueError):
            decode_json(bad)
    health = json.loads(_ev("health"))
    health["drops"] = {f"q{i}": 1 for i in range(5000)} | {"bad label\n": 1}
    col = FleetCollector()
    col.update("s1", "k1", "health", health)
    assert len(col.kiosks[("s1", "k1")].health["drops"]) == MAX_LABELS  # type: ignore[index]
    assert col.counts["ignored"] == 5001 - MAX_LABELS
    for value in (1e12, float("nan"), -5, "x"):
        k = Kiosk("s", "k", configstate={"config": {"mqtt": {"health_interval_s": value}}})
        assert k.health_interval_s() == DEFAULT_HEALTH_S
    assert Kiosk("s", "k", configstate={"config": {"mqtt": {"health_interval_s": 30}}}).health_interval_s() == 30


def test_listen_refuses_a_bad_filter_and_hides_an_abbreviated_password(capsys: pytest.CaptureFixture[str]) -> None:
    """A filter with '#' inside was subscribed inside paho's thread and ended as "no answer within 10 s"; argparse
    quoted ``--pass=secret`` whole in its "ambiguous option" error."""
    from edge.ops.listen import filter_problem

    assert filter_problem("edge-emotion/#") is None and filter_problem("edge-emotion/+/k/status") is None
    assert filter_problem("edge-emotion/#/status") and filter_problem("a/b+") and filter_problem("")
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "edge", "listen", "--port", str(port), "--topic", "x/#/y"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a valid MQTT filter" in r.stderr and "Traceback" not in r.stderr
    for argv in (["listen", "--pass=hunter2"], ["listen", "--pass=hunter2 and more"],
                 ["listen", "--pasword", "hunter2"], ["fleet", "status", "--passw=hunter2"]):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert "hunter2" not in err and "more" not in err and "***" in err, argv
    assert filter_problem("edge-emotion/\udcff")  # not UTF-8 text: paho would fail inside its thread
    from edge.ops.broker_client import make_client

    client = make_client(Broker())  # a failing callback is caught by paho and logged, not silent
    assert client.suppress_exceptions and client.logger is not None and client.logger.name == "edge.ops.paho"


def test_listen_ends_when_its_reader_goes_away(mosquitto: Any, subscribe: Any) -> None:
    """``listen | head -n 1``: once the pipe closes, listen exits (paho's thread died on the BrokenPipeError and
    listen waited for ever); a message a non-UTF-8 terminal cannot show is escaped, not fatal."""
    proc = subprocess.Popen([sys.executable, "-m", "edge", "listen", "--host", mosquitto.host, "--port",
                             str(mosquitto.port), "--topic", "edge-emotion/#"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "ascii"})
    try:
        pub = subscribe(mosquitto, "nothing/#")
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        line = b""
        while not line and time.monotonic() < deadline:
            _publish(pub, "s", "k", "alert", hint={"text": "请先处理情绪", "key": "watch", "lang": "zh-CN"})
            time.sleep(0.3)
            if proc.poll() is not None:
                break
            import select

            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr and proc.poll() is not None else "no line"
        proc.stdout.close()
        for _ in range(5):
            _publish(pub, "s", "k", "alert")
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_control_characters_from_the_broker_never_reach_the_terminal() -> None:
    """A counter name or degraded note with escape sequences (set the window title, clear the screen) was printed
    raw by listen and fleet status: any publisher could drive the installer's terminal."""
    ev = {**json.loads(_ev("status")), "state": "online\x1b]0;pwned\x07\x1b[2J"}  # listen shows what comes
    line = summarize("edge-emotion/s/k/status", json.dumps(ev).encode())
    assert "\x1b" not in line and "\x07" not in line and "\\x1b[2J" in line, line
    row = {"site_id": "s", "kiosk_id": "k", "counter_name": "C\x1b[2J", "state": "online", "version": "1",
           "fps_in": 1.0, "fps_analysed": 1.0, "drops_total": 0, "last_alert_level": None, "last_alert_ts": None,
           "paused": False, "degraded": ["d\x1b[2J"], "models": {}}
    out = format_line(row)
    assert "\x1b" not in out and "\\x1b[2J" in out, out
