"""``check-config`` in one pass: field errors, then the cross-field and profile rules, then the model files."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.config import ConfigError, KioskConfig, _expand_env, format_error, load_config, read_toml

log = logging.getLogger(__name__)
MAX_ROUNDS = 5  # each round sets the keys the last one refused aside; nesting is at most this deep


def _remove(data: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    """Delete the value at ``loc`` (a dict key or a list item); False when there is none."""
    node: Any = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        del node[last]
        return True
    return False


def _set_aside(data: dict[str, Any], loc: tuple[Any, ...], missing: bool,
               aside: set[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """Take the value at ``loc`` out of the way, and say where: a missing identity value is filled with a
    placeholder; a value is removed; one set aside before that is still a problem (a required key, removed) takes
    its enclosing item or section with it. None when nothing could be set aside (e.g. a rule on a default)."""
    if loc in aside:
        cand = loc[:-1]
        while cand:
            if cand not in aside and _remove(data, cand):
                return cand
            cand = cand[:-1]
        return None
    if missing and len(loc) <= 2 and loc[0] == "identity":
        node: Any = data
        for part in loc[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[loc[-1]] = {} if loc[-1] == "identity" else "x"  # identity's ids are the only required strings
            return loc
    if _remove(data, loc):
        return loc
    last = loc[-1]
    if isinstance(last, str) and "max" in last:  # a longest-wait rule on a default: the file's shortest wait
        pair = (*loc[:-1], last.replace("max", "min"))
        if pair not in aside and _remove(data, pair):
            return pair
    return None


def config_problems(path: Path) -> tuple[list[str], KioskConfig | None]:
    """Every problem of a config file, and a config for the model check (bad keys at their defaults) when one exists."""
    try:
        return [], load_config(path)
    except ConfigError as exc:
        errors = list(exc.errors)
    try:
        raw = read_toml(path)
    except ConfigError:
        return errors, None  # unreadable: nothing more to find
    data = _expand_env(copy.deepcopy(raw), "", [])  # missing variables are already among the errors
    base = path.resolve().parent
    aside: set[tuple[Any, ...]] = set()  # keys removed or filled with a placeholder: not the file's own errors
    containers: set[tuple[Any, ...]] = set()  # list items or sections removed whole (a key in them stayed bad)
    for _ in range(MAX_ROUNDS):
        try:
            return errors, KioskConfig.model_validate({**data, "base_dir": base})
        except ValidationError as exc:
            paths = [".".join(map(str, a)) for a in aside]
            wider = [".".join(map(str, a)) for a in containers]  # items/sections taken out whole
            for err in exc.errors():
                loc = tuple(err["loc"])
                if any(loc[:len(a)] == a for a in aside):
                    continue  # "Field required" or a placeholder's error where a bad value was set aside
                for line in format_error(err):  # whole-config rules name their key path first
                    key = line.split(":", 1)[0]
                    if any(key == p or key.startswith(p + ".") for p in paths) or \
                            any(p.startswith(key + ".") for p in wider):
                        continue  # a rule that misses a section set aside above, or sees it with an item less
                    if not line.startswith("base_dir") and line not in errors:
                        errors.append(line)
            locs = [(tuple(e["loc"]), e["type"] == "missing") for e in exc.errors() if e["loc"]]
            moved = [(loc, m) for loc, m in ((loc, _set_aside(data, loc, missing, aside)) for loc, missing in locs)
                     if m is not None]
            containers.update(m for loc, m in moved if m != loc)
            aside.update(m for _, m in moved)
            if not moved:  # only whole-config rules (the privacy profile) are left
                if data.get("privacy") == {"profile": "custom"}:
                    return errors, None
                data["privacy"] = {"profile": "custom"}  # reported above; the model files can still be checked
    return errors, None


def machine_problems(cfg: KioskConfig) -> list[str]:
    """What this machine cannot do of the config, by key path (check-config): a GStreamer camera source without
    GStreamer (``run`` starts all the same: the camera is reported failing, voice goes on)."""
    out: list[str] = []
    if cfg.camera.enabled:
        import cv2

        from edge.capture.media import classify_video_source

        if classify_video_source(cfg.camera.source, cfg.camera.kind, cfg.resolve) == "gstreamer" and \
                not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
            out.append("camera.source: a GStreamer pipeline, but this OpenCV build has no GStreamer support (use a "
                       "/dev/videoN device, an RTSP URL or a file, or an OpenCV built with GStreamer)")
    return out


def tls_problems(cfg: KioskConfig) -> list[str]:
    """The MQTT TLS files the config names but this machine cannot read, by key path (checked before connecting,
    so the error names the key, not a bare errno)."""
    out: list[str] = []
    tls = cfg.mqtt.tls if cfg.mqtt.enabled else None
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(tls, key, None) if tls is not None else None
        if value is None or "${" in value:
            continue
        path = cfg.resolve(value)
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            out.append(f"mqtt.tls.{key}: cannot read {path} ({exc.strerror or exc})")
    return out


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a systemd EnvironmentFile (``#``/``;`` comments, blank lines, values optionally in
    single or double quotes), as the unit reads them; nothing is expanded or executed. A missing or unreadable
    file gives nothing (the config's ${VAR} errors then say what is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace('\\"', '"').replace("\\\\", "\\")
        if key.replace("_", "").isalnum():
            out[key] = value
    return out
