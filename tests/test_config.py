"""Config validation: every error reported with its key path, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
MIN = {"identity": {"site_id": "s1", "kiosk_id": "k1"}}


def test_minimal_config_has_defaults() -> None:
    cfg = parse_config(MIN)
    assert cfg.mqtt.port == 1883 and cfg.camera.buffer_frames == 2 and cfg.analysis.face_fps == 8.0


def test_all_errors_reported_at_once_with_key_paths() -> None:
    bad = {
        "identity": {"site_id": "has space", "kiosk_id": "k1"},
        "camera": {"buffer_frames": 0, "fps": 30},
        "analysis": {"customer_zone": [0.8, 0.0, 0.2, 1.0]},
        "mqtt": {"port": 70000, "tls": {"cert_file": "a.pem"}},
        "bogus": 1,
    }
    with pytest.raises(ConfigError) as ei:
        parse_config(bad)
    text = "\n".join(ei.value.errors)
    for path in ("identity.site_id", "camera.buffer_frames", "camera.fps", "analysis.customer_zone",
                 "mqtt.port", "mqtt.tls", "bogus"):
        assert path in text, f"{path} missing from:\n{text}"
    assert len(ei.value.errors) >= 7


def test_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "s3cret")
    cfg = parse_config({**MIN, "mqtt": {"password": "${PW}"}})
    assert cfg.mqtt.password == "s3cret"
    monkeypatch.delenv("PW")
    with pytest.raises(ConfigError, match=r"mqtt.password: environment variable PW is not set"):
        parse_config({**MIN, "mqtt": {"password": "${PW}"}})


def test_env_number_is_coerced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PORT", "18830")
    assert parse_config({**MIN, "mqtt": {"port": "${EDGE_PORT}"}}).mqtt.port == 18830


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    f = tmp_path / "k.toml"
    f.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nsource = "media/v.mp4"\n')
    cfg = load_config(f)
    assert cfg.resolve(cfg.camera.source) == tmp_path / "media" / "v.mp4"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[identity\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_example_configs_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_EMOTION_MQTT_PASSWORD", "x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/edge-emotion.service")
    monkeypatch.setenv("EDGE_EMOTION_DEMO_PORT", "1883")
    assert load_config(ROOT / "deploy" / "kiosk.example.toml").identity.kiosk_id == "counter-03"
    assert load_config(ROOT / "deploy" / "demo.toml").camera.loop


def test_check_config_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "k.toml"
    f.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nbuffer_frames = -1\n[mqtt]\nport = 0\n')
    assert main(["check-config", str(f), "--no-models"]) == 2
    err = capsys.readouterr().err
    assert "camera.buffer_frames" in err and "mqtt.port" in err and "2 configuration error(s)" in err
    f.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n')
    assert main(["check-config", str(f), "--no-models"]) == 0
