"""Exports that claim another tool's format are that tool's format: SAM-EM's trajectories.csv read by
SAM-EM's own rules, the angle as skimage's regionprops gives it, and session.json's pixel size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from skimage.draw import ellipse
from skimage.measure import label, regionprops

from lptem.engine.measure import measure_mask
from lptem.service.exports import SAMEM_SEGMENT_STRIDE, export_record
from lptem.service.protocol import TOPIC_TRACK, TrackedObject, TrackMessage, encode_result
from lptem.service.record import RecordWriter


def tracked(obj_id: int, x: float, y: float, theta: float = 0.0, visible: bool = True) -> TrackedObject:
    return TrackedObject(obj_id, x, y, theta, 50.0, 1.0, visible, (0, 0, 4, 4))


def message(frame: int, objects: list[TrackedObject], pixel_size_nm: float | None = None) -> TrackMessage:
    return TrackMessage(frame, 0, 1000 * frame, 0, 0, "classical", 0, tuple(objects), pixel_size_nm)


def export(directory, messages, session=None):
    writer = RecordWriter(directory, session or {"engine": "classical"})
    for m in messages:
        writer.write("track", encode_result(TOPIC_TRACK, m)[1])
    writer.close()
    export_record(directory)
    return pd.read_csv(directory / "trajectories.csv")


@pytest.mark.parametrize("rotation_deg", [0, 20, 45, 70, 89, -30, -60, -89])
def test_angle_is_skimage_regionprops_orientation_in_degrees(record_dir, rotation_deg):
    """SAM-EM writes numpy.degrees(regionprops(mask).orientation); so do we, from our θ of the same mask."""
    mask = np.zeros((121, 121), dtype=bool)
    rows, cols = ellipse(60, 60, 12, 40, rotation=np.deg2rad(rotation_deg))
    mask[rows, cols] = True
    ours = measure_mask(mask)
    assert ours is not None
    samem = np.degrees(regionprops(label(mask))[0].orientation)
    table = export(record_dir, [message(0, [tracked(1, ours.x, ours.y, ours.theta_deg)])])
    assert list(table.columns) == ["frame", "particle_id", "x", "y", "angle"]
    assert table["angle"].iloc[0] == pytest.approx(samem, abs=0.01)
    assert -90 < table["angle"].iloc[0] <= 90


def samem_msd(table: pd.DataFrame, particle_id: int) -> np.ndarray:
    """SAM-EM's own rule: consecutive rows of a particle are one frame apart (the frame column unused)."""
    xy = table[table["particle_id"] == particle_id].sort_values("frame")[["x", "y"]].to_numpy()
    return np.array([np.mean(np.sum((xy[lag:] - xy[:-lag]) ** 2, axis=1)) for lag in range(1, len(xy))])


def test_gaps_split_a_track_so_samem_counts_true_lags(record_dir):
    """Particle 1 is invisible at frame 3 and frames 6-7 never arrived (dropped): three stretches."""
    frames = [0, 1, 2, 3, 4, 5, 8, 9, 10]
    positions = {f: (10.0 + f**2, 20.0 - 3 * f) for f in frames}
    messages = [
        message(f, [tracked(1, *positions[f], visible=f != 3), tracked(2, 50.0 + f, 60.0)]) for f in frames
    ]
    table = export(record_dir, messages)
    stretches = {
        pid: group["frame"].tolist() for pid, group in table.sort_values("frame").groupby("particle_id")
    }
    stride = SAMEM_SEGMENT_STRIDE
    assert stretches == {
        1: [0, 1, 2],
        1 + stride: [4, 5],
        1 + 2 * stride: [8, 9, 10],
        2: [0, 1, 2, 3, 4, 5],
        2 + stride: [8, 9, 10],
    }
    for pid, stretch in stretches.items():  # SAM-EM's lag 1 is one frame everywhere
        assert np.all(np.diff(stretch) == 1), pid
    lag1 = samem_msd(table, 1 + 2 * stride)[0]
    expected = np.mean([(positions[f + 1][0] - positions[f][0]) ** 2 + 9.0 for f in (8, 9)])
    assert lag1 == pytest.approx(expected)
    trackpy = pd.read_csv(record_dir / "trajectories_trackpy.csv")
    assert set(trackpy["particle"]) == {1, 2}  # trackpy's table keeps one id and the true frames


def test_stretches_continue_across_export_chunks(record_dir, monkeypatch):
    import lptem.service.exports  # noqa: PLC0415

    monkeypatch.setattr(lptem.service.exports, "_CHUNK_FRAMES", 2)
    frames = [0, 1, 2, 3, 5, 6, 7]
    table = export(record_dir, [message(f, [tracked(1, float(f), 0.0)]) for f in frames])
    ids = table.sort_values("frame")["particle_id"].tolist()
    assert ids == [1, 1, 1, 1, 1 + SAMEM_SEGMENT_STRIDE, 1 + SAMEM_SEGMENT_STRIDE, 1 + SAMEM_SEGMENT_STRIDE]


def test_session_json_carries_the_pixel_size_the_frames_carried(record_dir, tmp_path):
    export(record_dir, [message(f, [tracked(1, 1.0, 1.0)], pixel_size_nm=0.25) for f in range(3)],
           session={"engine": "classical", "pixel_size_nm": None})  # fmt: skip
    assert json.loads((record_dir / "session.json").read_text())["pixel_size_nm"] == 0.25
    changed = tmp_path / "changed"
    export(changed, [message(0, [], pixel_size_nm=0.25), message(1, [], pixel_size_nm=0.5)],
           session={"engine": "classical", "pixel_size_nm": None})  # fmt: skip
    session = json.loads((changed / "session.json").read_text())
    assert session["pixel_sizes_nm"] == [0.25, 0.5]
