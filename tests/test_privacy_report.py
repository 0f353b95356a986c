"""The privacy report: every published field documented, zones drawn, standalone HTML, committed copy current."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import pytest

from edge.cli import main
from edge.config import load_config
from edge.events import INBOUND, KINDS, load_schema
from edge.privacy.config import PROFILE_RULES
from edge.privacy.report import build_report, load_manifest_or_none, notice_template, schema_fields, to_markdown

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "kiosk.example.toml"
DOCS = ROOT / "docs" / "privacy"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_EMOTION_MQTT_PASSWORD", "not-printed-secret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/edge-emotion")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("data:"):
                self.external.append(v)
        if tag not in ("meta", "img", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_cli_writes_markdown_html_and_zones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["privacy-report", "--config", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert printed == md
    assert "not-printed-secret" not in md
    for kind in KINDS + INBOUND:
        assert f"`edge-emotion/branch-0042/counter-03/{kind}`" in md
        for path, _, _desc in schema_fields(load_schema(kind)):
            assert f"| {path} |" in md, f"{kind}.{path} missing from the report"
        for name, prop in load_schema(kind)["properties"].items():
            if "description" in prop:
                assert prop["description"].replace("|", "\\|") in md, f"{kind}.{name} meaning missing"
    for rule in PROFILE_RULES["eu"]:
        assert rule in md
    assert "## Retention" in md and "On the kiosk: none" in md and "- [ ] " in md
    assert "voice_emotion" in md  # models come from the manifest
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(page)
    assert tags.stack == [] and tags.external == [], (tags.stack, tags.external)
    assert 'src="data:image/png;base64,' in page and "<table>" in page
    img = cv2.imread(str(tmp_path / "zones.png"))
    assert img is not None and img.shape == (480, 640, 3)
    staff = img[20:460, 5:100].reshape(-1, 3)  # inside the example's staff polygon: red hatching on white
    assert ((staff[:, 2] > 150) & (staff[:, 0] < 100)).mean() > 0.2
    assert ((img[:, 300:] == 255).all(axis=2)).mean() > 0.9  # the customer side is a blank outline
    assert img[240, 638, 1] > 120 and img[240, 638, 2] < 100  # green customer-zone border on the right edge


def test_report_follows_the_config() -> None:
    cfg = load_config(EXAMPLE)
    cfg.privacy.profile = "custom"
    cfg.microphone.channels = 2
    cfg.privacy.staff_voice_gate = "channel"
    cfg.privacy.staff_audio_channel = 1
    md = to_markdown(build_report(cfg, None))
    assert "Privacy profile `custom`" in md and PROFILE_RULES["custom"][0] in md
    assert "Staff voice, gate `channel`: of 2 captured channels, channel 1 is the staff microphone" in md
    assert "Model manifest not available." in md
    cfg.privacy.staff_voice_gate = "none"
    assert "Staff voice: **no staff-voice gate**" in to_markdown(build_report(cfg, None))


def test_config_text_cannot_leave_the_image_alt_attribute() -> None:
    """A counter name written as an image link to zones.png stays text inside ``alt``, not a live attribute."""
    from edge.config import parse_config
    from edge.privacy.render import to_html

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k",
                                     "counter_name": '![" onerror="alert(1)](zones.png)'}})
    page = to_html(build_report(cfg, None), png=b"\x89PNG")
    assert 'onerror="' not in page and "&quot; onerror=&quot;" in page


def test_notice_templates_ship_in_both_languages() -> None:
    en, zh = notice_template("notice.en.md"), notice_template("notice.zh-CN.md")
    assert "Art. 50" in en and "Ask the staff to pause" in en
    assert "第二十六条" in zh and "暂停" in zh


def test_committed_report_is_current() -> None:
    """docs/privacy/ holds the report of deploy/kiosk.example.toml; regenerate it after changing either."""
    cfg = load_config(EXAMPLE)
    want = to_markdown(build_report(cfg, load_manifest_or_none(cfg)))
    got = (DOCS / "report.md").read_text(encoding="utf-8")
    assert got == want, ("docs/privacy/report.md is stale: run `edge-emotion privacy-report --config "
                         "deploy/kiosk.example.toml --out docs/privacy` (with the two env vars it references set)")
    assert (DOCS / "zones.png").is_file() and re.search(r"<h1>Privacy report", (DOCS / "report.html").read_text())


# --- issue 22: runs without the credentials it does not use, every retained topic, a config hash ----------------
_CRED_TOML = """
[identity]
site_id = "s1"
kiosk_id = "k1"
[mqtt]
username = "kiosk-k1"
password = "${PR_TEST_MQTT_PASSWORD}"
[mqtt.tls]
ca_file = "${PR_TEST_CREDS}/ca.crt"
cert_file = "${PR_TEST_CREDS}/kiosk.crt"
key_file = "${PR_TEST_CREDS}/kiosk.key"
"""


def test_report_runs_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The report never uses the broker password or TLS files, so it does not need their ${ENV} variables."""
    monkeypatch.delenv("PR_TEST_MQTT_PASSWORD", raising=False)
    monkeypatch.delenv("PR_TEST_CREDS", raising=False)
    path = tmp_path / "kiosk.toml"
    path.write_text(_CRED_TOML, encoding="utf-8")
    assert main(["privacy-report", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# Privacy report: s1 / k1" in out and "(TLS)" in out
    assert main(["check-config", "--no-models", str(path)]) == 2  # the service itself still needs them
    err = capsys.readouterr().err
    assert "mqtt.password: environment variable PR_TEST_MQTT_PASSWORD is not set" in err
    assert "mqtt.tls.key_file: environment variable PR_TEST_CREDS is not set" in err
    path.write_text(_CRED_TOML.replace('kiosk_id = "k1"', 'kiosk_id = "k1"\ncounter_nmae = "x"'), encoding="utf-8")
    assert main(["privacy-report", "--config", str(path)]) == 2  # other problems are still errors


def test_report_lists_every_retained_topic() -> None:
    """``configstate`` (the whole effective config) is retained on the broker as well as ``status``."""
    md = to_markdown(build_report(load_config(EXAMPLE), None))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    for kind in ("status", "configstate"):
        assert "retained" in rows[kind].split(" | ")[2], rows[kind]
    for kind in ("health", "emotion", "visit", "alert"):
        assert "retained" not in rows[kind].split(" | ")[2]
    retention = md.split("## Retention", 1)[1].split("\n## ", 1)[0]
    assert "`status`" in retention and "`configstate`" in retention


def test_report_carries_a_config_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checklist asks for re-signing after a config change: the hash changes with the settings, not secrets."""
    from edge.privacy.report import config_hash

    cfg = load_config(EXAMPLE)
    digest = config_hash(cfg)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert f"`{digest}`" in to_markdown(build_report(cfg, None))
    assert config_hash(load_config(EXAMPLE)) == digest  # stable
    cfg.alerts.alert_threshold = 0.9
    assert config_hash(cfg) != digest
    monkeypatch.setenv("PR_TEST_MQTT_PASSWORD", "one")
    monkeypatch.setenv("PR_TEST_CREDS", "/run/a")
    path = tmp_path / "kiosk.toml"
    path.write_text(_CRED_TOML, encoding="utf-8")
    a = config_hash(load_config(path))
    monkeypatch.setenv("PR_TEST_MQTT_PASSWORD", "two")
    monkeypatch.setenv("PR_TEST_CREDS", "/run/b")
    assert config_hash(load_config(path)) == a  # rotating credentials needs no new report
