"""Received JSON whose strings no UTF-8 text can hold (``"\\ud800"``) is refused with a clear reason: echoed in a
reply (configstate errors, an ack's ``by``) it could not be queued, and it stopped the main loop."""

from __future__ import annotations

import threading
import time

import pytest

from edge.policy.alerts import AckError, parse_ack
from edge.privacy.pause import PauseError, parse_pause
from edge.transport.remote_config import RemoteConfigError, parse_message

LONE = b'"\\ud800"'


@pytest.mark.parametrize("payload", [b'{' + LONE + b': 1}', b'{"fusion": {"x": ' + LONE + b'}}'])
def test_config_with_a_lone_surrogate_is_refused_by_name(payload: bytes) -> None:
    with pytest.raises(RemoteConfigError) as err:
        parse_message(payload)
    assert "lone" in str(err.value.errors)


def test_ack_and_pause_with_a_lone_surrogate_are_refused() -> None:
    with pytest.raises(AckError, match="lone"):
        parse_ack(b'{"alert_id": "a-1", "by": ' + LONE + b'}')
    with pytest.raises(PauseError, match="lone"):
        parse_pause(b'{"action": "pause", "by": ' + LONE + b'}')
    from edge.events.inbound import decode_json

    assert decode_json('{"hint": "Zoë 张"}'.encode()) == {"hint": "Zoë 张"}  # real text still passes
    assert parse_ack(b'{"alert_id": "a-1", "by": "tablet-2"}').by == "tablet-2"


def test_the_service_keeps_running_after_such_a_config_message() -> None:
    from edge.config import parse_config
    from edge.pipeline.analyzers import Analyzers
    from edge.pipeline.service import Service

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"},
                        "mqtt": {"host": "127.0.0.1", "port": 9, "reconnect_min_s": 5, "reconnect_max_s": 10}})
    svc = Service(cfg, Analyzers())
    died: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            died.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        svc.handle_message(svc.config_topic, b'{' + LONE + b': 1}')
        deadline = time.monotonic() + 5
        while svc.remote.rejected == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert svc.remote.rejected == 1 and t.is_alive() and not died
    finally:
        svc.stop.set()
        t.join(5)


def test_a_reply_that_cannot_be_queued_stays_counted() -> None:
    """Counted once, then overwritten by the next main-loop turn's sum of refusals and drops."""
    from types import SimpleNamespace

    from edge.config import parse_config
    from edge.events import EventFactory
    from edge.pipeline.remote_apply import process_config
    from edge.transport.remote_config import RemoteConfig

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False}})

    class Pub:
        def stats(self) -> dict[str, int]:
            return {"connects": 1}

        def publish(self, kind: str, payload: object, retain: bool = False) -> bool:
            raise RuntimeError("cannot queue")

    svc = SimpleNamespace(remote=RemoteConfig(cfg, None), errors={"config": 0, "schema": 0}, publisher=Pub(),
                          factory=EventFactory(cfg.identity))
    process_config(svc)  # type: ignore[arg-type]
    process_config(svc)  # type: ignore[arg-type]
    assert svc.errors["config"] == 1
