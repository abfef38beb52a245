"""Exports of a record: ``trajectories.parquet``, ``trajectories.csv`` (SAM-EM's format),
``trajectories_trackpy.csv`` (frame, particle, x, y), ``frames.parquet`` and ``session.json``, and the
whole record as tables (:func:`read_record`).

``trajectories.csv`` is SAM-EM's file exactly: columns ``frame, particle_id, x, y, angle``, with ``angle``
in SAM-EM's convention (``numpy.degrees(skimage.measure.regionprops(mask).orientation)``, see
:func:`samem_angle_deg`). SAM-EM's analysis ignores ``frame`` and takes consecutive rows of a particle as
one frame apart, so a track with a gap (the particle not visible, or frames the daemon dropped) is split
there: its first stretch keeps the particle's id, stretch k >= 1 gets ``particle + k * 100000`` (ids are
at most 65535, so ``particle_id % 100000`` is always the particle). The trackpy table and the Parquet
file keep one id per particle and the true frame numbers.

Exports are streamed in chunks, so exporting a long session does not need memory proportional to its
length (beyond the frame-time list in session.json).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lptem.service.record import iter_entries

log = logging.getLogger(__name__)

_CHUNK_FRAMES = 5000
SAMEM_SEGMENT_STRIDE = 100_000
"""``particle_id`` of a track's k-th stretch in trajectories.csv: particle + k * SAMEM_SEGMENT_STRIDE."""

TRACK_COLUMNS = [
    "frame", "epoch", "t_ns", "particle", "x", "y", "theta_deg", "area_px", "score", "visible",
    "x_nm", "y_nm", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
]  # fmt: skip
FRAME_COLUMNS = ["frame", "epoch", "t_ns", "t_recv_ns", "t_done_ns", "dropped_total", "n_objects"]


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
    carried: set[float] = set()
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
            if payload.get("pixel_size_nm") is not None:
                carried.add(float(payload["pixel_size_nm"]))
            if len(frames) >= _CHUNK_FRAMES:
                writer.add(rows, frames, offsets)
                rows, frames = [], []
    writer.add(rows, frames, offsets)
    writer.close()
    gaps = [e for e in events if e.get("event") == "record_gap"]  # frames the disk did not take (record.py)
    summary = {**session, **_pixel_size(session, carried), "events": events, "frame_times": frame_times,
               "record_gaps": gaps, "exports": writer.files}  # fmt: skip
    (directory / "session.json").write_text(json.dumps(summary, indent=1, default=str))
    log.info("record exported to %s (%d frames)", directory, len(frame_times["frame"]))
    for gap in gaps:
        lost = f"track frames {gap['first_lost_frame']} to {gap['last_lost_frame']}"
        log.warning("the record lacks %d entries (%s) that the disk refused: %s", gap["lost_entries"], lost,
                    gap["error"])  # fmt: skip


def samem_angle_deg(theta_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Our orientation θ (major axis from +x towards +y, (−90°, 90°], lptem.engine.measure) in SAM-EM's
    convention: skimage's ``regionprops(...).orientation`` in degrees (major axis from the row axis),
    ``90° − θ`` wrapped into (−90°, 90°]. A shape with no preferred axis has no defined angle in either."""
    omega = 90.0 - np.asarray(theta_deg, dtype=np.float64)
    return np.where(omega > 90.0, omega - 180.0, omega)


def _pixel_size(session: dict[str, Any], carried: set[float]) -> dict[str, Any]:
    """session.json's pixel size: the one the frames carried (else the daemon's default); all of them
    under ``pixel_sizes_nm`` when it changed during the session."""
    if not carried:
        return {}
    if len(carried) == 1:
        return {"pixel_size_nm": next(iter(carried))}
    return {"pixel_size_nm": session.get("pixel_size_nm"), "pixel_sizes_nm": sorted(carried)}


class _SamemSegments:
    """Assigns trajectories.csv ids chunk by chunk: a new stretch wherever a particle's frames skip."""

    def __init__(self) -> None:
        self._last_frame: dict[int, int] = {}
        self._stretch: dict[int, int] = {}

    def ids(self, particle: npt.NDArray[np.int64], frame: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out = np.empty_like(particle)
        for p in np.unique(particle):
            rows = np.flatnonzero(particle == p)
            rows = rows[np.argsort(frame[rows], kind="stable")]
            frames = frame[rows]
            last = self._last_frame.get(int(p))
            starts = np.empty(len(frames), dtype=bool)
            starts[0] = last is not None and frames[0] != last + 1
            starts[1:] = np.diff(frames) != 1
            stretch = self._stretch.get(int(p), 0) + np.cumsum(starts)
            out[rows] = p + stretch * SAMEM_SEGMENT_STRIDE
            self._last_frame[int(p)] = int(frames[-1])
            self._stretch[int(p)] = int(stretch[-1])
        return out


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
        self._segments = _SamemSegments()

    def add(self, rows: list[list[Any]], frames: list[list[Any]], offsets: dict[int, int]) -> None:
        tracks = _typed(pd.DataFrame(rows, columns=TRACK_COLUMNS))
        frame_df = pd.DataFrame(frames, columns=FRAME_COLUMNS, dtype="int64")
        self._tracks = _append_parquet(
            self._tracks, self.directory / self.files["trajectories_parquet"], tracks
        )
        self._frames = _append_parquet(self._frames, self.directory / self.files["frames_parquet"], frame_df)
        seen = tracks[tracks["visible"]]
        continuous = seen["frame"] + seen["epoch"].map(offsets).fillna(0).astype("int64")
        samem_ids = self._segments.ids(seen["particle"].to_numpy(), continuous.to_numpy())
        samem = pd.DataFrame(
            {"frame": continuous, "particle_id": samem_ids, "x": seen["x"], "y": seen["y"],
             "angle": samem_angle_deg(seen["theta_deg"].to_numpy())}
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
