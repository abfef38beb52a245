"""The engine thread's inbox: frames under a backpressure policy, and control commands.

``latest`` (live): at most ``capacity`` frames wait; a new frame pushes out the oldest, and every such
drop is reported to the caller. ``queue`` (replay / offline): lossless; a full inbox blocks the ingest
thread, which stops reading the socket, so ZeroMQ's high-water mark blocks the sender. Commands are never
dropped and are served before frames. Memory is bounded by ``capacity`` either way.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lptem.service.protocol import Command, IngestFrame
from lptem.service.protocol.shm import SlotLease


class Policy(StrEnum):
    LATEST = "latest"
    QUEUE = "queue"


@dataclass(slots=True)
class QueuedFrame:
    frame: IngestFrame
    t_recv_ns: int
    """Daemon clock at receipt, ns since the Unix epoch."""
    epoch: int
    pixel_size_nm: float | None
    """From the frame header, else the series' ``start`` message, else the daemon's default."""
    series: str | int | None
    dropped_before: int = 0
    """Frames the policy dropped between the previously delivered frame and this one (set by the
    mailbox, under its lock), so each result can say exactly which gap precedes it."""
    lease: SlotLease | None = None
    """For a frame read in place from a shared-memory slot: the slot, held until ``release``."""

    def release(self) -> bool:
        """Let go of the pixels' shared-memory slot, if any; False when it was rewritten meanwhile (the
        pixels were torn while the engine read them)."""
        return self.lease.release() if self.lease is not None else True


@dataclass(slots=True)
class PendingCommand:
    command: Command
    reply: Future[dict[str, Any]] = field(default_factory=Future)


class MailboxClosed(Exception):
    """The daemon is shutting down."""


class Mailbox:
    def __init__(self, policy: Policy, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.policy = policy
        self.capacity = capacity
        self._frames: deque[QueuedFrame] = deque()
        self._commands: deque[PendingCommand] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put_frame(self, item: QueuedFrame) -> list[QueuedFrame]:
        """Enqueue a frame; return the frames dropped to make room (``latest`` only)."""
        with self._cond:
            if self.policy is Policy.QUEUE:
                self._cond.wait_for(lambda: self._closed or len(self._frames) < self.capacity)
            if self._closed:
                raise MailboxClosed
            self._frames.append(item)
            dropped = []
            while len(self._frames) > self.capacity:
                oldest = self._frames.popleft()
                self._frames[0].dropped_before += oldest.dropped_before + 1
                dropped.append(oldest)
            self._cond.notify_all()
            return dropped

    def put_command(self, command: Command) -> Future[dict[str, Any]]:
        pending = PendingCommand(command)
        with self._cond:
            if self._closed:
                raise MailboxClosed
            self._commands.append(pending)
            self._cond.notify_all()
        return pending.reply

    def get(self, timeout: float) -> PendingCommand | QueuedFrame | None:
        """Next command, else next frame; None after ``timeout`` s with nothing to do."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._commands or self._frames, timeout)
            if self._commands:
                return self._commands.popleft()
            if self._frames:
                item = self._frames.popleft()
                self._cond.notify_all()  # room for a blocked ``queue`` producer
                return item
            return None

    def close(self) -> tuple[list[QueuedFrame], list[PendingCommand]]:
        """Refuse new work and hand back what was still waiting."""
        with self._cond:
            self._closed = True
            frames, commands = list(self._frames), list(self._commands)
            self._frames.clear()
            self._commands.clear()
            self._cond.notify_all()
            return frames, commands

    @property
    def depth(self) -> int:
        return len(self._frames)
