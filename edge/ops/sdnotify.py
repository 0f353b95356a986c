"""The sd_notify protocol: newline-separated KEY=VALUE datagrams to ``$NOTIFY_SOCKET`` (see sd_notify(3)).

Without ``$NOTIFY_SOCKET`` (not started by systemd with Type=notify) every call is a no-op that returns False.
A path starting with '@' is in the abstract namespace. Errors are logged, never raised: a notification
problem must not stop the kiosk.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    """The AF_UNIX address of a NOTIFY_SOCKET value ('@name' -> abstract namespace)."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class Notifier:
    """Sends notifications to one socket (default: ``$NOTIFY_SOCKET`` at construction)."""

    def __init__(self, socket_path: str | None = None, env: Mapping[str, str] | None = None) -> None:
        """Use ``socket_path`` or the environment's NOTIFY_SOCKET; neither means every call is a no-op."""
        env = os.environ if env is None else env
        self.path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify."""
        return self.path is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (e.g. ``notify(READY=1, STATUS="ok")``) in one datagram; True when sent."""
        if self.path is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value)
            if "\n" in text or "=" in key:
                raise ValueError(f"invalid sd_notify field {key}={text!r}")
            lines.append(f"{key}={text}")
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, _address(self.path))
            except OSError as exc:
                if not self._warned:
                    log.warning("sd_notify to %s failed: %s", self.path, exc)
                    self._warned = True
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (start-up finished), optionally with a STATUS line."""
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """STATUS=text: the one-line state shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """WATCHDOG=1: keep-alive ping for WatchdogSec=."""
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        """STOPPING=1: the service is shutting down."""
        return self.notify(STOPPING=1)

    def close(self) -> None:
        """Close the socket (a later call reopens it)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog timeout in seconds from $WATCHDOG_USEC, or None (unset, invalid, or meant for another PID)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring invalid WATCHDOG_USEC=%r", usec)
        return None
    return value / 1e6 if value > 0 else None
