"""Durable, append-only record of a session (its exports: exports.py).

``DIR/record.msgpack`` is a stream of msgpack arrays ``[kind, payload]``: ``kind`` is ``"session"``,
``"track"``, ``"event"`` (control commands that changed state, series markers) or another topic name, and
``payload`` is the msgpack bytes exactly as published on the wire. The writer flushes to the OS after
every batch and fsyncs at least once a second, so a daemon killed with SIGKILL leaves a file readable up
to its last second; a torn last entry is ignored by the reader. This module needs neither pandas nor
pyarrow, so a client that records (``lptem record``) loads them only to export when it stops.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgpack

from lptem.service.logutil import RateLimitedLog

log = logging.getLogger(__name__)

RECORD_FILE = "record.msgpack"
FSYNC_INTERVAL_S = 1.0
RETRY_INTERVAL_S = 1.0
"""While writing fails, how often it is tried again."""
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Entries not yet on disk are held up to this many bytes; beyond it new entries are dropped (counted,
and the record says which frames it lost)."""


class RecordExistsError(FileExistsError):
    """The record folder already holds a session (a record is never appended to or overwritten)."""


@dataclass(slots=True)
class RecordHealth:
    """What the record is doing, for status and metrics."""

    state: Literal["ok", "failing", "closed"] = "ok"
    error: str | None = None
    """The last write error while failing (e.g. "[Errno 28] No space left on device")."""
    failures: int = 0
    """Times writing failed (each failing spell counts once)."""
    lost_entries: int = 0
    """Entries dropped because the disk did not take them in time (MAX_PENDING_BYTES)."""
    pending_bytes: int = 0
    gaps: int = 0
    """``record_gap`` events written so far (one per failing spell that lost entries or time)."""


@dataclass(slots=True)
class _Spell:
    """One failing spell: since when, and which track frames it lost."""

    since_ns: int
    lost_entries: int = 0
    first_frame: int | None = None
    last_frame: int | None = None


class RecordWriter:
    """Appends entries from any thread; a background thread writes, flushes and fsyncs them.

    A write that fails (disk full, read-only, gone) leaves the file as it was before the batch (the torn
    part is truncated away), and the entries wait in memory, up to ``MAX_PENDING_BYTES``, while writing is
    retried every ``RETRY_INTERVAL_S``; when it works again, a ``record_gap`` event says what was lost.
    Tracking and publishing never wait for the disk.
    """

    def __init__(self, directory: Path, session: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / RECORD_FILE
        try:
            self._file: BinaryIO = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in close()
        except FileExistsError as exc:
            raise RecordExistsError(f"{path} already holds a session; record into a new folder") from exc
        self._queue: queue.SimpleQueue[tuple[str, bytes, bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.health = RecordHealth()
        self._spell: _Spell | None = None
        self._errors = RateLimitedLog(log)
        self._session = session
        self.write("session", msgpack.packb(session, use_bin_type=True))
        self._thread = threading.Thread(target=self._run, name="lptem-record", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, kind: str, payload: bytes) -> None:
        """Queue one entry; ``payload`` is msgpack bytes (e.g. the published message)."""
        entry = msgpack.packb([kind, payload], use_bin_type=True)
        with self._lock:
            if self.health.pending_bytes + len(entry) > MAX_PENDING_BYTES:
                self._lose(kind, payload)
                return
            self.health.pending_bytes += len(entry)
        self._queue.put((kind, payload, entry))

    def event(self, payload: dict[str, Any]) -> None:
        self.write("event", msgpack.packb(payload, use_bin_type=True))

    def close(self) -> None:
        """Write what is queued, fsync and close (exports: :func:`lptem.service.exports.export_record`).
        If the disk still refuses, what it refused is lost, said in the log, and close returns normally."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        try:
            self._file.close()
        except OSError as exc:  # the last flush of a file on a full or vanished disk
            log.warning("record %s: closing failed: %s", self.directory, exc)
        self.health.state = "closed"

    # ---------------------------------------------------------------------------- the writer thread

    def _run(self) -> None:
        backlog: list[tuple[str, bytes, bytes]] = []
        last_sync = last_try = time.monotonic()
        unsynced = False
        while True:
            closing = self._take_into(backlog)
            now = time.monotonic()
            failing = self.health.state == "failing"
            if backlog and (not failing or closing or now - last_try >= RETRY_INTERVAL_S):
                last_try = now
                if self._write_out(backlog):
                    backlog.clear()
                    unsynced = True
            if unsynced and self.health.state == "ok" and (closing or now - last_sync >= FSYNC_INTERVAL_S):
                unsynced = not self._synced()
                last_sync = now
            if closing:
                if backlog:  # the disk still refuses: what it refused is lost, and the log says which
                    with self._lock:
                        for kind, payload, entry in backlog:
                            self._lose(kind, payload)
                            self.health.pending_bytes -= len(entry)
                        spell = self._spell
                    frames = (
                        "" if spell is None else f" (track frames {spell.first_frame} to {spell.last_frame})"
                    )
                    log.warning("record %s: %s; %d entries not written at shutdown%s", self.directory,
                                self.health.error, len(backlog), frames)  # fmt: skip
                return

    def _take_into(self, backlog: list[tuple[str, bytes, bytes]]) -> bool:
        """Move queued entries to ``backlog`` (waiting up to half the fsync interval for the first);
        True once close() was called."""
        try:
            entry = self._queue.get(timeout=FSYNC_INTERVAL_S / 2)
            while entry is not None:
                backlog.append(entry)
                entry = self._queue.get_nowait()
        except queue.Empty:
            return False
        return True

    def _write_out(self, backlog: list[tuple[str, bytes, bytes]]) -> bool:
        """Write a gap event (after a failing spell) and ``backlog``; on failure put the file back as it
        was and start (or continue) a failing spell."""
        start = self._file.tell()
        entries = [e for _, _, e in backlog]
        with self._lock:  # entries lost from here on belong to the next gap
            spell, self._spell = self._spell, None
        try:  # unbuffered: on return the bytes are the OS's, and survive SIGKILL of this process
            self._write_all(b"".join(entries if spell is None else [self._gap_entry(spell), *entries]))
        except OSError as exc:
            with self._lock:
                self._spell = _merged(spell, self._spell) if self._spell is not None else spell
            self._failed(exc, start)
            return False
        with self._lock:
            self.health.pending_bytes -= sum(len(e) for e in entries)
            if spell is not None:
                self.health.gaps += 1
            self.health.state, self.health.error = "ok", None
        if spell is not None:
            log.warning("record %s: writing again; %d entries were lost (a record_gap event says which)",
                        self.directory, spell.lost_entries)  # fmt: skip
        return True

    def _write_all(self, data: bytes) -> None:
        """Write all of ``data`` (an unbuffered write may take only part of it)."""
        view, done = memoryview(data), 0
        while done < len(view):
            done += self._file.write(view[done:])

    def _synced(self) -> bool:
        try:
            os.fsync(self._file.fileno())  # to the disk: survives a crash of the machine
        except OSError as exc:
            self._failed(exc, None)
            return False
        return True

    def _failed(self, exc: OSError, start: int | None) -> None:
        if start is not None:
            try:  # the torn part of the batch goes; what was written before stays readable
                self._file.seek(start)
                self._file.truncate()
            except OSError as again:
                log.error("record %s: cannot truncate a torn write: %s", self.directory, again)
        with self._lock:
            if self._spell is None:
                self._spell = _Spell(time.time_ns())
            if self.health.state != "failing":
                self.health.failures += 1
            self.health.state, self.health.error = "failing", str(exc)
        self._errors.warning(
            f"record {self.directory}: cannot write ({exc}); tracking goes on, retrying every "
            f"{RETRY_INTERVAL_S:g} s, holding up to {MAX_PENDING_BYTES // 2**20} MiB"
        )

    def _gap_entry(self, spell: _Spell) -> bytes:
        """The ``record_gap`` event of a failing spell that ends now."""
        gap = {
            "event": "record_gap",
            "from_ns": spell.since_ns,
            "to_ns": time.time_ns(),
            "error": self.health.error,
            "lost_entries": spell.lost_entries,
            "first_lost_frame": spell.first_frame,
            "last_lost_frame": spell.last_frame,
        }
        return bytes(msgpack.packb(["event", msgpack.packb(gap, use_bin_type=True)], use_bin_type=True))

    def _lose(self, kind: str, payload: bytes) -> None:
        """Count an entry dropped for want of room (caller holds the lock)."""
        self.health.lost_entries += 1
        if self._spell is None:  # the disk is slow rather than failing: still a gap in the record
            self._spell = _Spell(time.time_ns())
        self._spell.lost_entries += 1
        if kind == "track":
            frame = _frame_of(payload)
            if frame is not None:
                if self._spell.first_frame is None:
                    self._spell.first_frame = frame
                self._spell.last_frame = frame


def _merged(older: _Spell | None, newer: _Spell) -> _Spell:
    if older is None:
        return newer
    first = older.first_frame if older.first_frame is not None else newer.first_frame
    last = newer.last_frame if newer.last_frame is not None else older.last_frame
    return _Spell(older.since_ns, older.lost_entries + newer.lost_entries, first, last)


def _frame_of(payload: bytes) -> int | None:
    """The frame number of a track message we published (None if it has none)."""
    try:
        message = msgpack.unpackb(payload, raw=False)
    except ValueError:  # msgpack's decode errors are ValueErrors
        return None
    frame = message.get("frame") if isinstance(message, dict) else None
    return frame if isinstance(frame, int) else None


# ------------------------------------------------------------------------------------------ reading


def iter_entries(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(kind, payload)`` from a record, ignoring a torn final entry (after SIGKILL)."""
    with open(Path(directory) / RECORD_FILE, "rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=256 * 1024 * 1024)
        for entry in unpacker:
            kind, payload = entry
            yield kind, msgpack.unpackb(payload, raw=False)


class RecordFolderError(ValueError):
    """A record folder template with a field other than ``{start}``."""


def record_folder(template: Path | None, now: datetime | None = None) -> Path | None:
    """``template`` with ``{start}`` replaced by the start time (UTC, basic ISO 8601), so that each start of
    a service records into a new folder."""
    if template is None:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    text = str(template)
    try:
        return Path(text.format(start=stamp)) if "{" in text else template
    except (KeyError, IndexError, ValueError) as exc:
        raise RecordFolderError(f"--record {text}: only {{start}} may be filled in ({exc})") from exc
