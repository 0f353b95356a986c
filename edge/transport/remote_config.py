"""Remote config over MQTT: merge-patch overlays checked with the config's models, applied live, persisted, redacted."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from edge.config import CREDENTIAL_KEYS, KioskConfig, config_hash, format_errors
from edge.events import SchemaError, iso, validate_inbound
from edge.events.inbound import InboundJsonError, decode_json
from edge.lograte import RateLimitedLog
from edge.privacy.floor import weakened
from edge.queues import DropQueue
from edge.redact import URL_SCHEME
from edge.redact import redact as redact_text

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # refused messages: a few lines a minute; each counted and answered in configstate

CONFIG_MAX_BYTES = 32 * 1024  # 16 staff polygons of 64 points fit in ~20 KiB
OVERLAY_MAX_BYTES = 4 * CONFIG_MAX_BYTES  # the stored overlay, merged from several messages (written compact)
MAX_DEPTH = 8  # config sections nest 4 deep (privacy.staff_zones[i].points[j]); deeper input is refused
OVERLAY_FILE = "remote-config.json"
# What operators may change at run time: a section name -> its changeable fields (None: every field). Everything
# else (identity, camera, microphone, models, mqtt, logging, state, privacy.profile/notice_text, queue sizes) is
# the TOML file's, changed by redeploying it.
REMOTE_FIELDS: dict[str, frozenset[str] | None] = {
    "alerts": None,
    "fusion": None,
    "analysis": frozenset({"face_fps", "voice_hop_s", "min_speech_ratio", "vad_aggressiveness", "customer_zone",
                           "min_face_frac"}),
    "privacy": frozenset({"staff_zones", "pause_max_s", "staff_voice_margin_db", "staff_voice_max_share",
                          "customer_voice_min_share"}),
    "schedule": None,  # read by the main loop every second
}


class RemoteConfigError(ValueError):
    """A config message or stored overlay is refused; ``errors`` holds one ``key.path: problem`` line each."""

    def __init__(self, errors: list[str]) -> None:
        """Build from the error lines."""
        self.errors = errors
        super().__init__("; ".join(errors))



def _too_deep(obj: Any, limit: int) -> bool:
    """Whether JSON containers nest more than ``limit`` levels (iterative: no recursion on hostile input)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return False


def parse_message(data: bytes, limit: int = CONFIG_MAX_BYTES) -> dict[str, Any]:
    """Decode a config message: UTF-8 JSON object of at most ``limit`` bytes and MAX_DEPTH levels; raise
    RemoteConfigError."""
    if len(data) > limit:
        raise RemoteConfigError([f"(message): too large ({len(data)} bytes > {limit})"])
    try:
        obj = decode_json(data)
    except InboundJsonError as exc:
        raise RemoteConfigError([f"(message): {exc}"]) from None
    if not isinstance(obj, dict):
        raise RemoteConfigError([f"(message): must be a JSON object of config sections, not {type(obj).__name__}"])
    if _too_deep(obj, MAX_DEPTH):
        raise RemoteConfigError([f"(message): nested deeper than {MAX_DEPTH} levels (no config section is)"])
    return obj


def overlay_json(overlay: dict[str, Any], now: float) -> str:
    """The stored overlay file's text (compact: what ``load_overlay`` reads back within OVERLAY_MAX_BYTES)."""
    return json.dumps({"format": 1, "saved_at": iso(now), "overlay": overlay}, separators=(",", ":"),
                      ensure_ascii=False)


def check_keys(patch: dict[str, Any]) -> list[str]:
    """Errors for sections/fields that do not exist or are not remotely changeable (unknown fields: pydantic)."""
    changeable = ", ".join(s if f is None else f"{s}.{{{', '.join(sorted(f))}}}" for s, f in REMOTE_FIELDS.items())
    errors: list[str] = []
    for section, value in patch.items():
        if section not in REMOTE_FIELDS:
            known = section in KioskConfig.model_fields and section != "base_dir"
            errors.append(f"{section}: " + ("not remotely changeable" if known else "unknown section")
                          + f" (remotely changeable: {changeable})")
        elif value is not None and not isinstance(value, dict):
            errors.append(f"{section}: must be an object (or null to revert it to the TOML file)")
        elif value is not None and (allowed := REMOTE_FIELDS[section]) is not None:
            model = KioskConfig.model_fields[section].annotation
            fields = getattr(model, "model_fields", {})
            errors += [f"{section}.{k}: not remotely changeable (remotely changeable: {changeable})"
                       for k in value if k in fields and k not in allowed]
    if not errors:
        try:
            validate_inbound("config", patch)  # the published contract agrees with REMOTE_FIELDS (tested)
        except SchemaError as exc:
            errors += [f"{path}: {msg}"[:300] for path, msg in exc.errors]
    return errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return {k: v for k, v in out.items() if v != {}}  # a section emptied by nulls disappears from the overlay


def effective(base: KioskConfig, overlay: dict[str, Any]) -> KioskConfig:
    """The base config with ``overlay`` merged over it, validated as a whole (profile rules, privacy baseline)."""
    data = merge_patch(base.model_dump(mode="json"), overlay)
    try:
        new = KioskConfig.model_validate({**data, "base_dir": base.base_dir})
    except ValidationError as exc:  # no ${ENV} expansion here: an overlay cannot read the environment
        raise RemoteConfigError([e for e in format_errors(exc) if not e.startswith("base_dir")]) from None
    errors = weakened(base, new)  # the TOML file is the privacy baseline: remote changes only tighten
    if errors:
        raise RemoteConfigError(errors)
    return new


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s!\"']+")  # a URL inside a GStreamer pipeline


def _shown_url(url: str) -> str:
    """A URL by scheme, host and port only (``***@`` where it had a user, ``/***`` where it had more)."""
    try:
        u = urlsplit(url)
        host = u.hostname or ""
        port = f":{u.port}" if u.port is not None else ""
    except ValueError:  # an unparsable port or host: show the scheme alone
        return f"{url.split(':', 1)[0]}://***"
    host = f"[{host}]" if ":" in host else host
    rest = "/***" if (u.path not in ("", "/") or u.query or u.fragment) else ""
    return f"{u.scheme}://{'***@' if '@' in u.netloc else ''}{host}{port}{rest}"


def published_source(source: str) -> str:
    """A camera/microphone source as ``configstate`` shows it: every network URL in it (the whole source, or one
    inside a GStreamer pipeline's ``location=``/``uri=``) by scheme, host and port only (its user, path and query
    can hold a secret no key-name rule recognises: a token in the path, ``?p=...``); the rest (device names, files,
    pipeline elements) with any credential hidden (edge.redact)."""
    if URL_SCHEME.match(source):
        return _shown_url(source.strip())
    return redact_text(_URL_IN_TEXT.sub(lambda m: _shown_url(m.group(0)), source))


def redact(cfg: KioskConfig) -> dict[str, Any]:
    """The config as JSON without secrets: every credential key (``CREDENTIAL_KEYS``: MQTT user and password, TLS
    files) ``***``, sources as ``published_source`` shows them."""
    out = cfg.model_dump(mode="json")
    for key in sorted(CREDENTIAL_KEYS):
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.get(p) or {}
        if node.get(leaf) is not None:
            node[leaf] = "***"
    for section in ("camera", "microphone"):
        out[section]["source"] = published_source(out[section]["source"])
    return out


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Key paths whose values differ between two JSON trees."""
    if isinstance(old, dict | None) and isinstance(new, dict | None) and (old or new):  # a key added or removed
        old, new, out = old or {}, new or {}, []
        for k in sorted(set(old) | set(new), key=str):
            out += changed_paths(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [prefix]


def save_overlay(path: Path, overlay: dict[str, Any], now: float) -> None:
    """Write the overlay atomically (temporary file, fsync, rename, fsync of the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    data = overlay_json(overlay, now)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_overlay(path: Path) -> dict[str, Any]:
    """The stored overlay ({} when there is none); RemoteConfigError when it is unreadable or malformed."""
    try:
        doc = parse_message(path.read_bytes(), OVERLAY_MAX_BYTES)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RemoteConfigError([f"{path}: cannot read: {exc}"]) from None
    overlay = doc.get("overlay")
    if doc.get("format") != 1 or not isinstance(overlay, dict):
        raise RemoteConfigError([f"{path}: not an overlay file (format 1 with an `overlay` object)"])
    return overlay


class RemoteConfig:
    """The overlay in force over the TOML config: start-up re-application, queued messages, state bodies."""

    def __init__(self, base: KioskConfig, state_dir: Path | None, clock: Callable[[], float] = time.time) -> None:
        """Re-apply the stored overlay (one that no longer validates is set aside and logged); no publishing."""
        self.base = base
        self.clock = clock
        self.path = state_dir / OVERLAY_FILE if state_dir is not None else None
        self.cfg, self.rejected = base, 0
        self.reply_failures = 0  # configstate replies that could not be queued (counted in health's config errors)
        self.overlay: dict[str, Any] = {}
        self.persisted = self.path is not None  # the overlay in force is what the state folder holds
        self.pending: DropQueue[tuple[int, bytes]] = DropQueue(8)  # paho's thread -> main loop; oldest dropped
        self.connects_seen = -1  # publisher connects when configstate was last sent; -1: not yet sent
        errors, note = self._startup()
        self.body = self._body(not errors, "startup", errors, [], note)

    def _startup(self) -> tuple[list[str], str | None]:
        if self.path is None:
            return [], "no state folder (state.dir / $STATE_DIRECTORY): remote changes are not persisted"
        try:
            overlay = load_overlay(self.path)
            errs = check_keys(overlay)
            if errs:
                raise RemoteConfigError(errs)
            self.cfg, self.overlay = effective(self.base, overlay), overlay
        except RemoteConfigError as exc:
            aside = self.path.with_name(self.path.name + ".rejected")
            try:
                os.replace(self.path, aside)
            except OSError as err:
                aside = Path(f"(could not be moved: {err})")
            log.error("stored remote config %s no longer validates against the config file and is ignored (moved "
                      "to %s); running with the config file: %s", self.path, aside, "; ".join(exc.errors))
            return exc.errors[:50], f"stored overlay ignored and moved to {aside.name}"[:300]
        if not overlay:
            return [], f"no remote overlay yet; changes will be stored in {self.path}"[:300]
        log.info("remote config overlay re-applied from %s: %s", self.path, json.dumps(overlay)[:500])
        return [], f"overlay stored in {self.path}"[:300]

    def _body(self, accepted: bool, trigger: str, errors: list[str], changed: list[str],
              note: str | None) -> dict[str, Any]:
        return {"accepted": accepted, "trigger": trigger, "errors": [e[:300] for e in errors[:50]],
                "changed": [c[:120] for c in changed[:200]], "persisted": self.persisted, "note": note,
                "overlay": copy.deepcopy(self.overlay), "config_hash": config_hash(self.cfg),
                "config": redact(self.cfg)}

    def receive(self, payload: bytes) -> None:
        """Queue a config message (any thread; never raises); an oversized one is queued empty, to be refused."""
        self.pending.put((len(payload), payload if len(payload) <= CONFIG_MAX_BYTES else b""))

    def handle(self, data: bytes, apply: Callable[[KioskConfig], None], size: int | None = None) -> dict[str, Any]:
        """Check, apply (``apply``: live objects), persist one message; the configstate body of the outcome."""
        try:
            if (size or len(data)) > CONFIG_MAX_BYTES:
                raise RemoteConfigError([f"(message): too large ({size or len(data)} bytes > {CONFIG_MAX_BYTES})"])
            patch = parse_message(data)
            errors = check_keys(patch)
            if errors:
                raise RemoteConfigError(errors)
            overlay = merge_patch(self.overlay, patch)
            stored = len(overlay_json(overlay, self.clock()).encode("utf-8"))
            if stored > OVERLAY_MAX_BYTES:  # it could not be read back at the next start
                raise RemoteConfigError([f"(overlay): the merged overlay would be too large to store ({stored} "
                                         f"bytes > {OVERLAY_MAX_BYTES}); revert sections with null first"])
            new = effective(self.base, overlay)
        except Exception as exc:  # noqa: BLE001 - any fault in checking a message refuses it; nothing changes
            if not isinstance(exc, RemoteConfigError):
                log.exception("remote config check failed; message refused")
                exc = RemoteConfigError([f"(message): could not be checked ({type(exc).__name__})"])
            self.rejected += 1
            _warn.warning("config", "remote config refused, nothing changed: %s", "; ".join(exc.errors)[:1000])
            self.body = self._body(False, "message", exc.errors, [], "refused: the effective config is unchanged")
            return self.body
        old = self.cfg
        try:
            apply(new)
        except Exception as exc:  # noqa: BLE001 - roll back to the old config; the service keeps running
            log.exception("remote config could not be applied; restoring the previous config")
            apply(old)
            self.rejected += 1
            self.body = self._body(False, "message", [f"(apply): {exc}"[:300]], [], "refused: not applied")
            return self.body
        self.cfg, self.overlay = new, overlay
        changed = changed_paths(redact(old), redact(new))
        self.persisted = False
        note = "applied but not persisted: no state folder (state.dir / $STATE_DIRECTORY); lost on restart"
        if self.path is not None:
            try:
                save_overlay(self.path, overlay, self.clock())
                self.persisted, note = True, f"overlay stored in {self.path}"[:300]
            except OSError as exc:
                log.error("remote config applied but could not be persisted to %s: %s", self.path, exc)
                note = f"applied but not persisted: {exc}"[:300]
        log.info("remote config applied (%s)", ", ".join(changed) or "no change")
        self.body = self._body(True, "message", [], changed, note)
        return self.body

    def process(self, apply: Callable[[KioskConfig], None]) -> list[dict[str, Any]]:
        """Handle every queued message (main loop); the configstate bodies to publish, in order."""
        out = []
        while (item := self.pending.get(timeout=0)) is not None:
            out.append(self.handle(item[1], apply, size=item[0]))
        return out
