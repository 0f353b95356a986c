"""Privacy report of one kiosk config: what is processed and published, zones, profile, models; Markdown and HTML."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge import __version__
from edge.config import CREDENTIAL_KEYS, KioskConfig
from edge.events import INBOUND, KINDS, RETAINED, load_schema, topic
from edge.privacy import zone_pixels
from edge.privacy_config import COMMON_RULES, PROFILE_RULES
from edge.runtime import Manifest, ModelError

log = logging.getLogger(__name__)

Block = tuple[Any, ...]  # ("h", level, text) | ("p", text) | ("ul", items) | ("check", items) | ("table", head, rows)
NOTICES = ("notice.en.md", "notice.zh-CN.md")
_RETAINED_WHAT = {"status": "presence, software and model versions",
                  "configstate": "the effective configuration without secrets: thresholds, zones, broker address, "
                                 "state folder; no personal data"}


def config_hash(cfg: KioskConfig) -> str:
    """SHA-256 of the effective settings as canonical JSON, broker credentials (CREDENTIAL_KEYS) left out."""
    data = cfg.model_dump(mode="json")
    for key in CREDENTIAL_KEYS:
        *parents, leaf = key.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def notice_template(name: str) -> str:
    """A shipped signage template (``notice.en.md`` or ``notice.zh-CN.md``) from ``edge/notices/``."""
    return resources.files("edge").joinpath("notices", name).read_text(encoding="utf-8")


def _type(node: dict[str, Any]) -> str:
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in node or "oneOf" in node:
        return " or ".join(dict.fromkeys(_type(n) for n in node.get("anyOf", node.get("oneOf", []))))
    t = node.get("type", "any")
    return " or ".join(t) if isinstance(t, list) else str(t)


def schema_fields(node: dict[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, type, meaning) for every field of a JSON Schema object, from its ``description``s."""
    rows: list[tuple[str, str, str]] = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        desc = str(sub.get("description", ""))
        kids = sub.get("properties", {})
        if kids and len({_type(k) for k in kids.values()}) == 1 and not any("description" in k for k in kids.values()):
            rows.append((f"{path}.{{{', '.join(kids)}}}", _type(next(iter(kids.values()))), desc))
        elif kids:
            rows.append((path, "object", desc))
            rows += schema_fields(sub, f"{path}.")
        elif isinstance(sub.get("additionalProperties"), dict):
            rows.append((f"{path}.*", _type(sub["additionalProperties"]), desc))
            rows += schema_fields(sub["additionalProperties"], f"{path}.*.")
        elif sub.get("type") == "array" and isinstance(sub.get("items"), dict):
            rows.append((f"{path}[]", f"array of {_type(sub['items'])}", desc))
            rows += schema_fields(sub["items"], f"{path}[].")
        else:
            rows.append((path, _type(sub), desc))
            for alt in sub.get("anyOf", sub.get("oneOf", [])):  # e.g. summary: object or null
                rows += schema_fields(alt, f"{path}.")
    return rows


def draw_zones(cfg: KioskConfig, width: int | None = None, height: int | None = None) -> np.ndarray:
    """A blank frame outline with the staff polygons hatched red and the customer zone drawn green (BGR)."""
    w, h = width or cfg.camera.width or 640, height or cfg.camera.height or 480
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (60, 60, 60), 2)
    hatch = np.full_like(img, 255)
    for k in range(-h, w, 14):
        cv2.line(hatch, (k, h), (k + h, 0), (40, 40, 200), 2)
    for zone in cfg.privacy.staff_zones:
        pts = zone_pixels(zone, w, h)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [pts], 255)
        img[mask > 0] = hatch[mask > 0]
        cv2.polylines(img, [pts], True, (40, 40, 200), 3)
        x, y = pts.mean(axis=0).astype(int)
        _label(img, "STAFF: masked", (int(x) - 60, int(y)), (40, 40, 200))
    x0, y0, x1, y1 = cfg.analysis.customer_zone
    p0, p1 = (int(x0 * (w - 1)), int(y0 * (h - 1))), (int(x1 * (w - 1)), int(y1 * (h - 1)))
    cv2.rectangle(img, p0, p1, (40, 150, 40), 3)
    _label(img, "CUSTOMER ZONE: faces analysed", (p0[0] + 8, p1[1] - 12), (40, 150, 40))
    return img


def _label(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = max(2, org[0]), max(th + 4, org[1])
    cv2.rectangle(img, (x - 3, y - th - 4), (x + tw + 3, y + 4), (255, 255, 255), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def build_report(cfg: KioskConfig, manifest: Manifest | None) -> list[Block]:
    """The report's content as blocks (rendered by ``to_markdown`` / ``to_html``)."""
    ident, p, m = cfg.identity, cfg.privacy, cfg.mqtt
    t = lambda kind: topic(m.topic_prefix, ident.site_id, ident.kiosk_id, kind)  # noqa: E731
    b: list[Block] = [
        ("h", 1, f"Privacy report: {ident.site_id} / {ident.kiosk_id} ({ident.counter_name or 'unnamed counter'})"),
        ("p", f"Generated by edge-emotion {__version__} from the kiosk configuration. Privacy profile: "
              f"**{p.profile}**. Every statement below is derived from the configuration, the shipped JSON "
              f"Schemas and the model manifest of this software version."),
        ("p", f"Configuration hash (SHA-256 of the effective settings, broker credentials left out): "
              f"`{config_hash(cfg)}`. A report is valid for the configuration with this hash only."),
        ("h", 2, "What the kiosk processes"),
        ("ul", [
            f"Camera frames of the counter (`camera.source`, analysed at most {cfg.analysis.face_fps:g} frames/s): "
            "a face detector finds faces, the largest face centred in the customer zone is cropped to 48x48 grey "
            "pixels and classified into 7 expression probabilities." if cfg.analysis.face and cfg.camera.enabled
            else "Camera: not analysed (disabled in this configuration).",
            f"Microphone audio (16 kHz mono): every {cfg.analysis.voice_hop_s:g} s a voice-activity detector checks "
            "the last window; windows with speech are turned into log-mel features and classified into the same 7 "
            "classes. No speech is transcribed." if cfg.analysis.voice and cfg.microphone.enabled
            else "Microphone: not analysed (disabled in this configuration).",
            f"Staff exclusion: {len(p.staff_zones)} staff polygon(s) are filled black in a copy of every frame "
            "before the face detector sees it; faces are analysed only when centred in the customer zone "
            f"{list(cfg.analysis.customer_zone)}. See `zones.png`.",
            ("Staff voice: channel "
             f"{p.staff_audio_channel} is the staff microphone; windows where it is {p.staff_voice_margin_db:g} dB "
             "louder than the customer channel are not analysed (gating function `edge.privacy.gate_voice`; the "
             "live microphone capture is mono in this version, so wire a 2-channel device before relying on it)."
             if p.staff_audio_channel is not None else
             "Staff voice: no staff microphone channel configured; a single microphone hears both sides."),
            "No face embedding, identity, re-identification, recording or transcript exists anywhere in the code.",
        ]),
        ("h", 2, "Retention"),
        ("ul", [
            f"On the kiosk: none. Frames live in a {cfg.camera.buffer_frames}-frame in-memory queue, audio in a "
            f"{cfg.microphone.buffer_s:g} s in-memory ring that overwrites itself; both are dropped after analysis. "
            "No frame, crop, audio or tensor is ever written to disk (proven by `tests/test_privacy_e2e.py`).",
            "The kiosk's own state, only when a state folder is set (`state.dir`, or systemd's StateDirectory "
            "`/var/lib/edge-emotion` under the shipped unit): `outbox.db` holds the anonymous event payloads listed "
            "below, exactly as published, until the broker acknowledges them (store-and-forward across network "
            f"outages), at most {cfg.mqtt.outbox_max_age_s / 3600:g} h, {cfg.mqtt.outbox_max_rows} events and "
            f"{cfg.mqtt.outbox_max_mb:g} MB; `remote-config.json` holds settings changed remotely by an operator "
            "(thresholds, zones), no personal data. Without a state folder nothing at all is written.",
            "Visits carry a fresh random id (UUID4) and end after "
            f"{cfg.fusion.visit_end_s:g} s without a face or speech; nothing links two visits.",
            "On the broker, retained (the broker keeps the last one per kiosk until it is replaced): "
            + "; ".join(f"`{k}` ({_RETAINED_WHAT[k]})" for k in RETAINED) + ". Retention of events by subscribers "
            "or back-office systems is the deployer's decision and belongs in the impact assessment.",
        ]),
        ("h", 2, "Zones"),
        ("p", "![Staff zones (hatched, masked before detection) and customer zone](zones.png)"),
        ("table", ("zone", "normalised points"),
         [(f"staff {i + 1}", ", ".join(f"({x:g}, {y:g})" for x, y in z)) for i, z in enumerate(p.staff_zones)]
         + [("customer", "x0, y0, x1, y1 = " + ", ".join(f"{v:g}" for v in cfg.analysis.customer_zone))]),
        ("h", 2, f"Privacy profile `{p.profile}`"),
        ("p", "Enforced when the configuration is validated (the service refuses to start otherwise):"),
        ("ul", [*PROFILE_RULES[p.profile], *COMMON_RULES]),
        ("p", f"Emotion events at most every {cfg.fusion.emit_interval_s:g} s, smoothed with a "
              f"{cfg.fusion.half_life_s:g} s half-life (voice readings, each over a 2 s window: "
              f"{cfg.fusion.voice_half_life_s:g} s). Notice text configured for: "
              f"{', '.join(p.notice_text) or 'no language'} (templates: `edge/notices/notice.en.md`, "
              "`edge/notices/notice.zh-CN.md`)."),
        *[("p", f"Notice ({lang}): {text}") for lang, text in p.notice_text.items()],
        ("h", 2, "Pause / opt-out"),
        ("p", f"Staff publish `{{\"action\": \"pause\"}}` to `{t('pause')}` when a customer objects: the current "
              "visit ends, frames and audio are discarded unread, no emotion or alert events are sent and the "
              "retained status shows `paused: true`. Analysis resumes on `{\"action\": \"resume\"}` or after "
              f"{p.pause_max_s:g} s (`privacy.pause_max_s`)."),
        ("h", 2, "What leaves the kiosk"),
        ("p", f"Only these MQTT messages, to {m.host}:{m.port} ({'TLS' if m.tls else 'no TLS'}), each validated "
              "against its JSON Schema (`additionalProperties: false`) before sending; anything else is refused."
              if m.enabled else "MQTT is disabled: events are only logged to stderr (same schemas)."),
        ("table", ("kind", "topic", "QoS", "meaning"),
         [(k, f"`{t(k)}`", "1, retained" if k in RETAINED else "1", str(load_schema(k).get("description", "")))
          for k in KINDS]),
    ]
    for k in KINDS:
        b += [("h", 3, f"`{k}` fields"), ("table", ("field", "type", "meaning"), schema_fields(load_schema(k)))]
    b += [("h", 2, "What the kiosk receives"),
          ("table", ("kind", "topic", "meaning"),
           [(k, f"`{t(k)}`", str(load_schema(k).get("description", ""))) for k in INBOUND])]
    for k in INBOUND:
        b += [("h", 3, f"`{k}` fields"), ("table", ("field", "type", "meaning"), schema_fields(load_schema(k)))]
    b += [("h", 2, "Models"), _models(manifest),
          ("p", "Model cards (training data, metrics, licence limits): `models/README.md`. Models are verified by "
                "sha256 at start-up; nothing is downloaded at run time."),
          ("h", 2, "Checklist for the impact assessment (DPIA / PIPIA) and signage"),
          ("check", [
              "Lawful basis / purpose recorded (staff support for upset customers; no profiling, no identification).",
              "Staff zones checked on the live camera image: no staff face visible outside the hatched area.",
              "Customer zone covers only the customer side of the counter.",
              "Notice signage (EU AI Act Art. 50(3); PIPL Art. 26) posted at the counter, in every language used, "
              "before the customer enters the camera's view.",
              "Staff informed and trained: alerts are hints, never a judgement of the customer; how to pause.",
              "Broker access restricted (TLS, per-kiosk credentials, ACL per site); subscribers' retention set.",
              "Model licences checked for commercial use (research-only weights must be retrained).",
              "Works council / staff representatives consulted where required.",
              "Report regenerated and re-signed after every configuration change.",
          ])]
    return b


def _models(manifest: Manifest | None) -> Block:
    if manifest is None:
        return ("p", "Model manifest not available.")
    rows = [(name, s.version, s.task, s.licence or "not declared") for name, s in sorted(manifest.models.items())]
    return ("table", ("model", "version", "task", "licence"), rows)


def _cell(s: str) -> str:
    return s.replace("\n", " ").replace("|", "\\|").replace("\\\\|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind in ("ul", "check"):
            out.append("\n".join(("- [ ] " if kind == "check" else "- ") + i for i in blk[1]))
        elif kind == "table":
            lines = ["| " + " | ".join(blk[1]) + " |", "|" + "---|" * len(blk[1])]
            lines += ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in blk[2]]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _inline(s: str, image: str | None) -> str:
    s = html.escape(s.replace("\\|", "|"), quote=False)
    if image is not None:
        s = re.sub(r"!\[([^\]]*)\]\(zones\.png\)", lambda mm: f'<img alt="{mm.group(1)}" src="{image}">', s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)


def to_html(blocks: list[Block], png: bytes | None = None) -> str:
    """Render blocks as one standalone, print-ready HTML page (the zones PNG embedded)."""
    img = "data:image/png;base64," + base64.b64encode(png).decode() if png else None
    body: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{_inline(blk[2], img)}</h{blk[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(blk[1], img)}</p>")
        elif kind in ("ul", "check"):
            box = "&#9744; " if kind == "check" else ""
            body.append("<ul>" + "".join(f"<li>{box}{_inline(i, img)}</li>" for i in blk[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in blk[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c), img)}</td>" for c in r) + "</tr>" for r in blk[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font:14px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #bbb;padding:.25em .5em;"
             "vertical-align:top;text-align:left}th{background:#eee}code{font-size:90%;background:#f4f4f4}"
             "ul{padding-left:1.4em}img{max-width:100%;border:1px solid #ccc}"
             "@media print{h2{page-break-before:auto}table{page-break-inside:auto}}")
    title = html.escape(blocks[0][2]) if blocks and blocks[0][0] == "h" else "Privacy report"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) +
            f"\n<p><small>Generated {datetime.now(UTC):%Y-%m-%d}.</small></p></body></html>\n")


def write_report(cfg: KioskConfig, out_dir: Path, manifest: Manifest | None = None) -> str:
    """Write ``report.md``, ``report.html`` and ``zones.png`` into ``out_dir``; return the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_report(cfg, manifest)
    ok, png = cv2.imencode(".png", draw_zones(cfg))
    if not ok:
        raise RuntimeError("cannot encode zones.png")
    (out_dir / "zones.png").write_bytes(png.tobytes())
    md = to_markdown(blocks)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(to_html(blocks, png.tobytes()), encoding="utf-8")
    log.info("privacy report written to %s", out_dir)
    return md


def load_manifest_or_none(cfg: KioskConfig) -> Manifest | None:
    """The config's model manifest, or None (logged) when it cannot be read."""
    from edge.analyzers import models_manifest

    try:
        return models_manifest(cfg)
    except ModelError as exc:
        log.warning("model manifest unavailable: %s", exc)
        return None
