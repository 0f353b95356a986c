"""The outbox's sender: one thread hands queued rows to the MQTT client in order and forgets them on PUBACK."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from edge.lograte import RateLimitedLog
from edge.transport.outbox import Outbox, Row

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # a row or a client error retried every turn: a few lines a minute


class Courier:
    """One thread moves outbox rows to the client in order, at most ``window`` unacknowledged at a time.

    Other threads only post commands: ``notify`` (new row), ``acked(mid)`` (PUBACK), ``up``/``down`` (connection).
    On every ``up`` all queued rows are (re)sent from the oldest; a PUBACK deletes its row. ``send`` returns the
    client's message id, or None if the client refused the message (it is retried later).
    """

    def __init__(self, outbox: Outbox, send: Callable[[Row], int | None], window: int = 64) -> None:
        """Nothing runs until start()."""
        self.outbox, self.send, self.window = outbox, send, max(1, window)
        self._cmds: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._online = False
        self._cursor = 0  # highest seq handed to the client on this connection
        self._mids: dict[int, int] = {}  # message id -> seq, this connection
        self._gen = outbox.generation  # the outbox's store changed: start again from the oldest row
        self._idle = threading.Event()
        if len(outbox) == 0:
            self._idle.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sender thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """A row was added."""
        self._idle.clear()
        self._cmds.put(("new", 0))

    def acked(self, mid: int) -> None:
        """The broker acknowledged (or rejected) message ``mid``: its row is done."""
        self._cmds.put(("ack", mid))

    def up(self) -> None:
        """Connected: resend everything queued, oldest first."""
        self._cmds.put(("up", 0))

    def down(self) -> None:
        """Disconnected: hand nothing more to the client."""
        self._cmds.put(("down", 0))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or unacknowledged; False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread."""
        if self._thread is not None:
            self._cmds.put(("stop", 0))
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                cmds = [self._cmds.get(timeout=1.0)]  # timeout: retry rows the client refused earlier
            except queue.Empty:
                cmds = []
            while True:
                try:
                    cmds.append(self._cmds.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._handle(cmds):
                    return
            except Exception:  # noqa: BLE001 - the sender must survive anything; rows stay queued
                _warn.exception("sender", "outbox sender error; continuing")

    def _handle(self, cmds: list[tuple[str, int]]) -> bool:
        done: list[int] = []
        stop = False
        for name, mid in cmds:
            if name == "ack":
                seq = self._mids.pop(mid, None)
                if seq is not None:
                    done.append(seq)
            elif name == "up":
                self._online, self._cursor = True, 0
                self._mids.clear()
            elif name == "down":
                self._online = False
            elif name == "stop":
                stop = True
        if done:
            self.outbox.delete(done)
        if self.outbox.generation != self._gen:  # the database failed or works again: resend from the oldest
            self._gen, self._cursor = self.outbox.generation, 0
            self._mids.clear()
        while self._online and not stop and len(self._mids) < self.window:
            rows = self.outbox.after(self._cursor, self.window - len(self._mids))
            if not rows or not self._send(rows):
                break
        if len(self.outbox) == 0 and not self._mids:
            self._idle.set()
        return stop

    def _send(self, rows: list[Row]) -> bool:
        for row in rows:
            try:
                mid = self.send(row)
            except (ValueError, TypeError) as exc:  # the client refuses the row itself (e.g. a damaged topic)
                _warn.warning("refused", "outbox row %d (%s) cannot be sent (%s); dropped and counted as corrupt",
                              row.seq, row.kind, exc)
                self.outbox.discard(row, "refused by the MQTT client")
                self._cursor = row.seq
                continue
            if mid is None:
                return False
            self._mids[mid] = row.seq
            self._cursor = row.seq
        return True
