"""Durable record: append-only, readable after a torn write, exports in SAM-EM and trackpy layouts."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pandas as pd
import pytest

import lptem.service.exports
from lptem.service.exports import export_record, read_record
from lptem.service.protocol import TOPIC_TRACK, TrackedObject, TrackMessage, encode_result
from lptem.service.record import RECORD_FILE, RecordExistsError, RecordWriter, iter_entries
from tests.conftest import wait_until


def track(frame, epoch=0, n=2, visible=True, dropped=0):
    objects = tuple(
        TrackedObject(
            i + 1,
            10.0 * i + frame,
            5.0 + frame,
            15.0,
            80.0,
            9.0,
            visible or i == 0,
            (0, 0, 4, 4),
            0.5 * (10.0 * i + frame),
            0.5 * (5.0 + frame),
        )
        for i in range(n)
    )
    return TrackMessage(
        frame, epoch, 1000 + frame, 1001 + frame, 1002 + frame, "classical", dropped, objects, 0.5
    )


def write_session(directory, messages, events=()):
    writer = RecordWriter(directory, {"engine": "classical", "pixel_size_nm": 0.5})
    for m in messages:
        writer.write("track", encode_result(TOPIC_TRACK, m)[1])
    for e in events:
        writer.event(e)
    return writer


def export_session(directory, messages, events=()):
    """A session written, closed and exported, as the daemon does when it stops."""
    write_session(directory, messages, events).close()
    export_record(directory)


def test_roundtrip_and_exports(record_dir):
    messages = [track(f, dropped=1 if f > 3 else 0) for f in (0, 1, 2, 3, 5)]
    export_session(record_dir, messages, [{"event": "add_object", "id": 1}])
    rec = read_record(record_dir)
    assert rec.session["engine"] == "classical"
    assert rec.events == [{"event": "add_object", "id": 1}]
    assert list(rec.frames["frame"]) == [0, 1, 2, 3, 5]
    assert rec.frames["dropped_total"].iloc[-1] == 1
    assert len(rec.tracks) == 10
    assert rec.tracks.loc[rec.tracks.frame == 5, "x"].tolist() == [5.0, 15.0]

    samem = pd.read_csv(record_dir / "trajectories.csv")
    assert list(samem.columns) == ["frame", "particle_id", "x", "y", "angle"]
    trackpy = pd.read_csv(record_dir / "trajectories_trackpy.csv")
    assert list(trackpy.columns) == ["frame", "particle", "x", "y"]
    parquet = pd.read_parquet(record_dir / "trajectories.parquet")
    pd.testing.assert_frame_equal(parquet, rec.tracks)
    frames = pd.read_parquet(record_dir / "frames.parquet")
    pd.testing.assert_frame_equal(frames, rec.frames)
    session = json.loads((record_dir / "session.json").read_text())
    assert session["pixel_size_nm"] == 0.5
    assert session["frame_times"]["t_ns"] == [1000, 1001, 1002, 1003, 1005]


def test_invisible_rows_stay_in_parquet_but_not_in_the_csvs(record_dir):
    export_session(record_dir, [track(0), track(1, visible=False)])
    samem = pd.read_csv(record_dir / "trajectories.csv")
    assert len(samem) == 3  # object 2 was not visible in frame 1
    assert len(pd.read_parquet(record_dir / "trajectories.parquet")) == 4


def test_exported_frame_numbers_keep_increasing_across_camera_restarts(record_dir):
    export_session(record_dir, [track(0), track(1), track(0, epoch=1), track(1, epoch=1)])
    trackpy = pd.read_csv(record_dir / "trajectories_trackpy.csv")
    assert sorted(set(trackpy["frame"])) == [0, 1, 2, 3]
    assert read_record(record_dir).tracks["epoch"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_torn_last_entry_is_ignored(record_dir):
    write_session(record_dir, [track(f) for f in range(5)]).close()
    path = record_dir / RECORD_FILE
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # a write cut short by SIGKILL or power loss
    kinds = [kind for kind, _ in iter_entries(record_dir)]
    assert kinds == ["session", "track", "track", "track", "track"]
    export_record(record_dir)
    assert len(pd.read_csv(record_dir / "trajectories.csv")) == 8


def test_entries_reach_the_file_without_close(record_dir):
    writer = write_session(record_dir, [track(0)])
    try:
        assert wait_until(lambda: len(list(iter_entries(record_dir))) == 2, timeout_s=2.0)
        assert [k for k, _ in iter_entries(record_dir)] == ["session", "track"]
    finally:
        writer.close()


def test_export_is_streamed_in_chunks(record_dir, monkeypatch):
    monkeypatch.setattr(lptem.service.exports, "_CHUNK_FRAMES", 3)
    export_session(record_dir, [track(f, n=1) for f in range(10)])
    out = pd.read_csv(record_dir / "trajectories.csv")
    assert out["frame"].tolist() == list(range(10))
    assert np.allclose(pd.read_parquet(record_dir / "trajectories.parquet")["x"], np.arange(10.0))


def test_payload_is_stored_exactly_as_published(record_dir):
    message = track(3)
    payload = encode_result(TOPIC_TRACK, message)[1]
    write_session(record_dir, [message]).close()
    with open(record_dir / RECORD_FILE, "rb") as fh:
        entries = list(msgpack.Unpacker(fh, raw=False))
    assert entries[1] == ["track", payload]


def test_a_record_folder_is_never_appended_to(record_dir):
    export_session(record_dir, [track(0)])
    before = (record_dir / RECORD_FILE).read_bytes()
    with pytest.raises(RecordExistsError, match="already holds a session"):
        RecordWriter(record_dir, {})
    assert (record_dir / RECORD_FILE).read_bytes() == before
