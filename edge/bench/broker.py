"""A private mosquitto on free loopback ports for benchmarks (TCP, optionally websockets); never a system broker."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class LocalBroker:
    """``with LocalBroker(websockets=True) as b: b.port, b.ws_port``: mosquitto on 127.0.0.1, killed on exit."""

    def __init__(self, websockets: bool = False) -> None:
        """Pick free ports; nothing starts until ``start``."""
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto; scripts/setup does)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = free_port()
        self.ws_port = free_port() if websockets else None
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-bench-broker-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalBroker:
        """Start mosquitto and wait until its listeners accept connections."""
        import getpass

        lines = [f"user {getpass.getuser()}", "persistence false", "log_dest none",
                 f"listener {self.port} {self.host}", "protocol mqtt", "allow_anonymous true"]
        if self.ws_port is not None:
            lines += [f"listener {self.ws_port} {self.host}", "protocol websockets"]
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ports = [self.port] + ([self.ws_port] if self.ws_port is not None else [])
        if not all(_wait_port(p) for p in ports):
            self.stop()
            raise RuntimeError("mosquitto did not start on loopback")
        return self

    def stop(self) -> None:
        """Kill the broker and remove its folder."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None
        self._tmp.cleanup()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
