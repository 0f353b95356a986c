"""Pipeline liveness for systemd: READY=1 once sources are up, WATCHDOG=1 only while every thread progresses.

The main loop calls ``tick`` on every turn, so a hung main loop stops the pings by itself. Worker threads call
``beat(name)`` once per loop iteration; capture threads are judged by their counters (frames/blocks in, reopen
attempts). When any of them makes no progress within its allowance the pings stop, STATUS= says why, and
systemd (WatchdogSec=) kills and restarts the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edge.ops.sdnotify import Notifier, watchdog_interval

log = logging.getLogger(__name__)

ACTIVE_STATES = ("starting", "ok", "reopening")  # any other state (ended, failed, disabled, ...) expects no progress
DEFAULT_STALE_S = 15.0  # without a systemd watchdog: only used for STATUS=
STATUS_EVERY_S = 5.0


@dataclass(frozen=True)
class Progress:
    """When a thread last made progress, how long it may go without, and whether it is still running."""

    last_t: float
    allowed_s: float
    alive: bool = True


def _what(problem: str) -> str:
    """A problem line without its growing number of seconds ("analyse-face stalled 2.1 s" -> "analyse-face stalled")."""
    return problem.rsplit(" ", 2)[0] if problem.endswith(" s") else problem


def stalled(now: float, progress: Mapping[str, Progress]) -> list[str]:
    """The problems (empty when healthy): every thread that died or made no progress within its allowance."""
    out = []
    for name, p in sorted(progress.items()):
        if not p.alive:
            out.append(f"{name} thread died")
        elif now - p.last_t > p.allowed_s:
            out.append(f"{name} stalled {now - p.last_t:.1f} s")
    return out


class Source(Protocol):
    """What the watchdog reads from a capture thread (VideoSource, AudioSource)."""

    def stats(self) -> dict[str, Any]:
        """Snapshot with "state" and the counters ("frames_in" or "blocks_in", "reopens")."""
        ...

    def is_alive(self) -> bool:
        """Whether the thread is running."""
        ...


@dataclass
class _Track:
    source: Source
    reopen_max_s: float
    counter: int = -1
    last_t: float = 0.0


def analysis_stale_s(face_fps: float, voice_hop_s: float) -> float:
    """The shortest silence of an analysis worker that counts as stalled: two of its slowest turns, at least 2 s."""
    return max(2.0, 2.0 / face_fps, 2.0 * voice_hop_s)


class PipelineWatchdog:
    """Decides and sends READY=1, WATCHDOG=1 (only while healthy), STATUS= and STOPPING=1."""

    def __init__(self, status: Callable[[], str], notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.monotonic, min_stale_s: float = 2.0,
                 env: Mapping[str, str] | None = None) -> None:
        """``status()`` gives the STATUS= line; the watchdog interval comes from $WATCHDOG_USEC (or ``env``)."""
        self.sd = notifier or Notifier(env=env)
        self.clock = clock
        self.status = status
        self.interval = watchdog_interval(env)
        self.ping_every = self.interval / 2 if self.interval else None
        self.stale_s = max(min_stale_s, self.ping_every or DEFAULT_STALE_S)
        self.base_stale_s = self.ping_every or DEFAULT_STALE_S
        self.ready_sent = False
        self.pings = 0
        self._beats: dict[str, float] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._tracks: dict[str, _Track] = {}
        self._next_ping = 0.0
        self._next_status = 0.0
        self._problems: list[str] = []


    def set_min_stale(self, min_stale_s: float) -> None:
        """A new shortest silence that counts as stalled (the workers' cadence changed): up or down."""
        self.stale_s = max(min_stale_s, self.base_stale_s)
    def start(self, sources: Mapping[str, Source | None], reopen_max_s: Mapping[str, float],
              workers: Iterable[threading.Thread] = ()) -> None:
        """Begin watching the started capture sources and worker threads (each worker must ``beat`` its name)."""
        now = self.clock()
        self._tracks = {name: _Track(src, reopen_max_s.get(name, 0.0), last_t=now)
                        for name, src in sources.items() if src is not None}
        self._threads = {th.name: th for th in workers}
        for name in self._threads:
            self._beats.setdefault(name, now)
        self._next_ping = now

    def beat(self, name: str) -> None:
        """Worker ``name`` made progress (call once per loop iteration, not inside a blocking call)."""
        self._beats[name] = self.clock()

    def progress(self, now: float) -> dict[str, Progress]:
        """Progress of every watched thread, updating the capture counters."""
        out = {name: Progress(t, self.stale_s, self._threads[name].is_alive() if name in self._threads else True)
               for name, t in dict(self._beats).items()}
        for name, tr in self._tracks.items():
            st = tr.source.stats()
            if st.get("state") not in ACTIVE_STATES:
                continue
            counter = int(st.get("frames_in", st.get("blocks_in", 0))) + int(st.get("reopens", 0))
            if counter != tr.counter:
                tr.counter, tr.last_t = counter, now
            allowed = self.stale_s + (tr.reopen_max_s if st["state"] == "reopening" else 0.0)
            out[name] = Progress(tr.last_t, allowed, tr.source.is_alive())
        return out

    def problems(self, now: float | None = None) -> list[str]:
        """Why the pipeline is unhealthy right now (empty when healthy)."""
        now = self.clock() if now is None else now
        return stalled(now, self.progress(now))

    def stuck_workers(self, now: float | None = None) -> list[str]:
        """Names of the analysis workers that are running but made no progress within their allowance (for the
        retained status: a hung model call shows to fleet monitoring, not only in systemd's STATUS=)."""
        now = self.clock() if now is None else now
        return sorted(name for name, t in dict(self._beats).items()
                      if name in self._threads and self._threads[name].is_alive() and now - t > self.stale_s)

    def sources_known(self) -> bool:
        """Every capture source has left "starting" (delivered data, is reopening, or ended)."""
        return all(tr.source.stats().get("state") != "starting" for tr in self._tracks.values())

    def tick(self, now: float | None = None) -> None:
        """Main-loop turn: READY once sources are known, a ping when due and healthy, STATUS= when it changed."""
        if not self.sd.enabled:
            return
        now = self.clock() if now is None else now
        if not self.ready_sent and self.sources_known():
            self.ready_sent = True
            self._next_status = now + STATUS_EVERY_S
            self.sd.ready(self._status_line())
            log.info("start-up complete (READY=1 sent)")
        if self.ping_every is not None and now >= self._next_ping:
            self._next_ping = now + self.ping_every
            problems = self.problems(now)
            # compared by what is wrong, not by the seconds in the text (which grow at every check)
            if [_what(p) for p in problems] != [_what(p) for p in self._problems]:
                if problems:
                    log.error("pipeline unhealthy, withholding watchdog pings: %s", "; ".join(problems))
                else:
                    log.info("pipeline healthy again; watchdog pings resume")
                self._next_status = now
            self._problems = problems
            if not problems:
                self.sd.watchdog()
                self.pings += 1
        if self.ready_sent and now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            text = self._status_line()
            self.sd.status(f"UNHEALTHY ({'; '.join(self._problems)}) {text}" if self._problems else text)

    def _status_line(self) -> str:
        """The STATUS= text on one line (a status callback that fails must not stop the main loop)."""
        try:
            return " ".join(self.status().split())
        except Exception:  # noqa: BLE001
            log.exception("status line failed")
            return "running"

    def stopping(self) -> None:
        """STOPPING=1 (shutdown has begun)."""
        self.sd.notify(STOPPING=1, STATUS="stopping")
