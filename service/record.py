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
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

log = logging.getLogger(__name__)

RECORD_FILE = "record.msgpack"
FSYNC_INTERVAL_S = 1.0


class RecordExistsError(FileExistsError):
    """The record folder already holds a session (a record is never appended to or overwritten)."""


class RecordWriter:
    """Appends entries from any thread; a background thread writes, flushes and fsyncs them."""

    def __init__(self, directory: Path, session: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / RECORD_FILE
        try:
            self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed in close()
        except FileExistsError as exc:
            raise RecordExistsError(f"{path} already holds a session; record into a new folder") from exc
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._session = session
        self.write("session", msgpack.packb(session, use_bin_type=True))
        self._thread = threading.Thread(target=self._run, name="lptem-record", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, kind: str, payload: bytes) -> None:
        """Queue one entry; ``payload`` is msgpack bytes (e.g. the published message)."""
        self._queue.put(msgpack.packb([kind, payload], use_bin_type=True))

    def event(self, payload: dict[str, Any]) -> None:
        self.write("event", msgpack.packb(payload, use_bin_type=True))

    def _run(self) -> None:
        last_sync = time.monotonic()
        unsynced = False
        while True:
            batch, closing = self._take_batch()
            if batch:
                self._file.writelines(batch)
                self._file.flush()  # to the OS: survives SIGKILL of this process
                unsynced = True
            if unsynced and (closing or time.monotonic() - last_sync >= FSYNC_INTERVAL_S):
                os.fsync(self._file.fileno())  # to the disk: survives a crash of the machine
                last_sync, unsynced = time.monotonic(), False
            if closing:
                return

    def _take_batch(self) -> tuple[list[bytes], bool]:
        """Wait up to half the fsync interval for entries; return them and whether close() was called."""
        batch: list[bytes] = []
        try:
            entry = self._queue.get(timeout=FSYNC_INTERVAL_S / 2)
            while entry is not None:
                batch.append(entry)
                entry = self._queue.get_nowait()
        except queue.Empty:
            return batch, False
        return batch, True

    def close(self) -> None:
        """Write what is queued, fsync and close (exports: :func:`lptem.service.exports.export_record`)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._file.close()


# ------------------------------------------------------------------------------------------ reading


def iter_entries(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(kind, payload)`` from a record, ignoring a torn final entry (after SIGKILL)."""
    with open(Path(directory) / RECORD_FILE, "rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=256 * 1024 * 1024)
        for entry in unpacker:
            kind, payload = entry
            yield kind, msgpack.unpackb(payload, raw=False)
