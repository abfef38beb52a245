"""Durable, append-only record of a session, and its exports.

``DIR/record.msgpack`` is a stream of msgpack arrays ``[kind, payload]``: ``kind`` is ``"session"``,
``"track"``, ``"event"`` (control commands that changed state, series markers) or another topic name, and
``payload`` is the msgpack bytes exactly as published on the wire. The writer flushes to the OS after
every batch and fsyncs at least once a second, so a daemon killed with SIGKILL leaves a file readable up
to its last second; a torn last entry is ignored by the reader. On a clean close the writer also exports
``trajectories.parquet``, ``trajectories.csv`` (SAM-EM layout: frame, particle_id, x, y, angle),
``trajectories_trackpy.csv`` (frame, particle, x, y), ``frames.parquet`` and ``session.json``. Exports are
streamed in chunks, so closing a long session does not need memory proportional to its length (beyond
the frame-time list in session.json).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

RECORD_FILE = "record.msgpack"
FSYNC_INTERVAL_S = 1.0
_CHUNK_FRAMES = 5000

TRACK_COLUMNS = [
    "frame", "epoch", "t_ns", "particle", "x", "y", "theta_deg", "area_px", "score", "visible",
    "x_nm", "y_nm", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
]  # fmt: skip
FRAME_COLUMNS = ["frame", "epoch", "t_ns", "t_recv_ns", "t_done_ns", "dropped_total", "n_objects"]


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

    def close(self, export: bool = True) -> None:
        """Write what is queued, fsync, close, and (by default) write the exports."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if export:
            export_record(self.directory)


# ------------------------------------------------------------------------------------------ reading


def iter_entries(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(kind, payload)`` from a record, ignoring a torn final entry (after SIGKILL)."""
    with open(Path(directory) / RECORD_FILE, "rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=256 * 1024 * 1024)
        for entry in unpacker:
            kind, payload = entry
            yield kind, msgpack.unpackb(payload, raw=False)


def _track_rows(msg: dict[str, Any]) -> Iterator[list[Any]]:
    for o in msg["objects"]:
        yield [
            msg["frame"], msg["epoch"], msg["t_ns"], o["id"], o["x"], o["y"], o["theta_deg"],
            o["area_px"], o["score"], o["visible"], o.get("x_nm"), o.get("y_nm"), *o["bbox"],
        ]  # fmt: skip


def _frame_row(msg: dict[str, Any]) -> list[Any]:
    return [
        msg["frame"], msg["epoch"], msg["t_ns"], msg["t_recv_ns"], msg["t_done_ns"],
        msg["dropped_total"], len(msg["objects"]),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Record:
    """A whole record in memory (for analysis and tests; exports stream instead)."""

    session: dict[str, Any]
    tracks: pd.DataFrame
    frames: pd.DataFrame
    events: list[dict[str, Any]]


def read_record(directory: Path) -> Record:
    session: dict[str, Any] = {}
    rows: list[list[Any]] = []
    frames: list[list[Any]] = []
    events: list[dict[str, Any]] = []
    for kind, payload in iter_entries(directory):
        if kind == "session":
            session = payload
        elif kind == "track":
            rows.extend(_track_rows(payload))
            frames.append(_frame_row(payload))
        elif kind == "event":
            events.append(payload)
    return Record(
        session,
        _typed(pd.DataFrame(rows, columns=TRACK_COLUMNS)),
        pd.DataFrame(frames, columns=FRAME_COLUMNS, dtype="int64"),
        events,
    )


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    ints = ["frame", "epoch", "t_ns", "particle", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]
    floats = ["x", "y", "theta_deg", "area_px", "score", "x_nm", "y_nm"]
    return df.astype({**dict.fromkeys(ints, "int64"), **dict.fromkeys(floats, "float64"), "visible": bool})


# ------------------------------------------------------------------------------------------ exports


def _epoch_offsets(directory: Path) -> dict[int, int]:
    """Frame-number offset per epoch so exported frame numbers keep increasing across camera restarts."""
    last_frame: dict[int, int] = {}
    for kind, payload in iter_entries(directory):
        if kind == "track":
            epoch = payload["epoch"]
            last_frame[epoch] = max(last_frame.get(epoch, -1), payload["frame"])
    offsets, total = {}, 0
    for epoch in sorted(last_frame):
        offsets[epoch] = total
        total += last_frame[epoch] + 1
    return offsets


def export_record(directory: Path) -> None:
    """Write the Parquet / CSV / JSON exports next to ``record.msgpack`` (streamed in chunks)."""
    directory = Path(directory)
    offsets = _epoch_offsets(directory)
    session: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    frame_times: dict[str, list[int]] = {"frame": [], "epoch": [], "t_ns": []}
    writer = _ExportWriter(directory)
    rows: list[list[Any]] = []
    frames: list[list[Any]] = []
    for kind, payload in iter_entries(directory):
        if kind == "session":
            session = payload
        elif kind == "event":
            events.append(payload)
        elif kind == "track":
            rows.extend(_track_rows(payload))
            frames.append(_frame_row(payload))
            frame_times["frame"].append(payload["frame"])
            frame_times["epoch"].append(payload["epoch"])
            frame_times["t_ns"].append(payload["t_ns"])
            if len(frames) >= _CHUNK_FRAMES:
                writer.add(rows, frames, offsets)
                rows, frames = [], []
    writer.add(rows, frames, offsets)
    writer.close()
    summary = {**session, "events": events, "frame_times": frame_times, "exports": writer.files}
    (directory / "session.json").write_text(json.dumps(summary, indent=1, default=str))
    log.info("record exported to %s (%d frames)", directory, len(frame_times["frame"]))


class _ExportWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = {
            "trajectories_parquet": "trajectories.parquet",
            "frames_parquet": "frames.parquet",
            "samem_csv": "trajectories.csv",
            "trackpy_csv": "trajectories_trackpy.csv",
        }
        self._tracks: pq.ParquetWriter | None = None
        self._frames: pq.ParquetWriter | None = None
        self._first_csv_chunk = True

    def add(self, rows: list[list[Any]], frames: list[list[Any]], offsets: dict[int, int]) -> None:
        tracks = _typed(pd.DataFrame(rows, columns=TRACK_COLUMNS))
        frame_df = pd.DataFrame(frames, columns=FRAME_COLUMNS, dtype="int64")
        self._tracks = _append_parquet(
            self._tracks, self.directory / self.files["trajectories_parquet"], tracks
        )
        self._frames = _append_parquet(self._frames, self.directory / self.files["frames_parquet"], frame_df)
        seen = tracks[tracks["visible"]]
        continuous = seen["frame"] + seen["epoch"].map(offsets).fillna(0).astype("int64")
        samem = pd.DataFrame(
            {"frame": continuous, "particle_id": seen["particle"], "x": seen["x"], "y": seen["y"],
             "angle": seen["theta_deg"]}
        )  # fmt: skip
        trackpy = pd.DataFrame(
            {"frame": continuous, "particle": seen["particle"], "x": seen["x"], "y": seen["y"]}
        )
        mode, header = ("w", True) if self._first_csv_chunk else ("a", False)
        samem.to_csv(self.directory / self.files["samem_csv"], mode=mode, header=header, index=False)
        trackpy.to_csv(self.directory / self.files["trackpy_csv"], mode=mode, header=header, index=False)
        self._first_csv_chunk = False

    def close(self) -> None:
        for writer in (self._tracks, self._frames):
            if writer is not None:
                writer.close()


def _append_parquet(writer: pq.ParquetWriter | None, path: Path, df: pd.DataFrame) -> pq.ParquetWriter:
    table = pa.Table.from_pandas(df, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer
