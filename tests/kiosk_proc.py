"""The kiosk service as a child process (``python -m edge run``) for tests against real components."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``pred()`` holds; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def write_toml(path: Path, data: dict[str, dict[str, Any]]) -> Path:
    """Write a kiosk config of ``section -> {key: value}`` (one level of sub-tables: ``section.sub``)."""
    lines = []
    for section, fields in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Kiosk:
    """``python -m edge [-v] run --config CFG`` with stdout and stderr in ``log``."""

    def __init__(self, cfg: Path, log: Path, verbose: bool = False, env: dict[str, str] | None = None) -> None:
        """Start the process (STATE_DIRECTORY of the test runner is not passed on)."""
        self.log = log
        base = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge", *(["-v"] if verbose else []), "run",
                                          "--config", str(cfg)], cwd=ROOT, stdout=fh, stderr=fh,
                                         env={**base, **(env or {})})

    def text(self) -> str:
        """The log so far."""
        return self.log.read_text(errors="replace")

    def memory_kb(self, field: str = "VmHWM") -> int:
        """A memory figure of the process in KiB from /proc (VmHWM: peak resident set size; VmRSS: current)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the process and wait for its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
