"""Keeping secrets out of logs, errors and published config: credentials in source strings, secret-looking keys."""

from __future__ import annotations

import re
from typing import Any

# rtsp://user:password@host -> rtsp://***@host; up to the *last* @ before the path: FFmpeg and urllib split there,
# so a password holding "@" works as a source and must be hidden whole
# A URL that went through pathlib ("rtmp:/user:pw@host": Path folds "//") is hidden the same way.
_URL_CREDENTIALS = re.compile(r"(?<=[A-Za-z0-9]:/)(/?)[^/?#\s]+@")
# A network source (rtsp, http, rtmp, srt, udp, ...): a scheme and "//"; never a file name.
URL_SCHEME = re.compile(r"^\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# key=value pairs: GStreamer properties (user-pw=...), URL query parameters (?password=...&token=...)
_KEY_VALUE = re.compile(r"(?<![\w.-])([A-Za-z][\w.-]*)(\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,!\"']+)")
# Parts of key names that mark a secret, misspellings included ("pasword"); hiding too much here costs nothing.
SECRET_HINTS = ("pas", "pw", "secret", "token", "cred", "auth", "sig", "cookie", "session")
_KEY_NAME = re.compile(r"key($|[-_.]?file)")  # api-key, private_key, key_file; not key-int-max


def is_secret_key(name: str) -> bool:
    """Whether a config key or parameter name looks like it holds a secret (password, token, key, ...)."""
    low = name.lower()
    return any(h in low for h in SECRET_HINTS) or _KEY_NAME.search(low) is not None


def _hide_value(m: re.Match[str]) -> str:
    if is_secret_key(m.group(1)):
        return f"{m.group(1)}{m.group(2)}***"
    return m.group(1) + m.group(2) + _KEY_VALUE.sub(_hide_value, m.group(3))  # e.g. location="https://…?token=…"


def redact(text: str) -> str:
    """``text`` with URL credentials as ``***@`` and the values of secret-looking ``key=value`` pairs as ``***``."""
    return _KEY_VALUE.sub(_hide_value, _URL_CREDENTIALS.sub(r"\1***@", text))


def redact_value(value: Any) -> Any:
    """A copy of a parsed value (dicts, lists, strings) with secret-looking keys' values as ``***`` at any depth
    and every string passed through ``redact``: safe to show in an error."""
    if isinstance(value, dict):
        return {k: "***" if is_secret_key(str(k)) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
