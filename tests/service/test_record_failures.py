"""The record on a disk that fills up: nothing torn, the state reported, writing resumed with a gap event."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from lptem.service import record as record_module
from lptem.service.daemon import Daemon, DaemonConfig
from lptem.service.record import RecordWriter, iter_entries
from tests.conftest import ANY_PORT, fill, wait_until


def track(frame: int) -> bytes:
    message = {"v": 1, "frame": frame, "objects": [], "pad": b"x" * 2000}
    return bytes(msgpack.packb(message, use_bin_type=True))


def test_a_full_disk_is_survived_reported_and_marked_as_a_gap(small_disk, monkeypatch):
    monkeypatch.setattr(record_module, "RETRY_INTERVAL_S", 0.1)
    monkeypatch.setattr(record_module, "MAX_PENDING_BYTES", 100_000)  # about 50 frames held in memory
    filler = fill(small_disk, leave_bytes=50_000)
    writer = RecordWriter(small_disk / "rec", {"engine": "test"})
    frame = 0
    while writer.health.state == "ok" and frame < 1000:  # about 25 frames fit
        writer.write("track", track(frame))
        frame += 1
        wait_until(lambda: writer.health.pending_bytes == 0 or writer.health.state != "ok", timeout_s=2.0)
    assert writer.health.state == "failing"
    assert "No space left" in (writer.health.error or "")
    full_at = frame
    for _ in range(200):  # the disk stays full: held up to the limit, then lost (counted)
        writer.write("track", track(frame))
        frame += 1
    assert writer.health.lost_entries > 0
    assert writer.health.pending_bytes <= 100_000
    filler.unlink()
    assert wait_until(lambda: writer.health.state == "ok", timeout_s=5.0)
    writer.write("track", track(frame))
    writer.close()
    entries = list(iter_entries(small_disk / "rec"))  # the whole file reads back: no torn entry inside it
    frames = [p["frame"] for k, p in entries if k == "track"]
    (gap,) = [p for k, p in entries if k == "event"]
    assert gap["event"] == "record_gap"
    assert gap["lost_entries"] == writer.health.lost_entries
    lost = set(range(gap["first_lost_frame"], gap["last_lost_frame"] + 1))
    assert set(frames) | lost == set(range(frame + 1))  # every frame is either written or said lost
    assert not set(frames) & lost
    assert frames == sorted(frames)
    assert full_at <= gap["first_lost_frame"]
    assert writer.health.gaps == 1


def test_closing_on_a_full_disk_returns_and_says_what_was_lost(small_disk, monkeypatch, caplog):
    monkeypatch.setattr(record_module, "RETRY_INTERVAL_S", 0.1)
    fill(small_disk, leave_bytes=20_000)
    writer = RecordWriter(small_disk / "rec", {"engine": "test"})
    for frame in range(100):
        writer.write("track", track(frame))
    assert wait_until(lambda: writer.health.state == "failing", timeout_s=5.0)
    writer.close()  # no exception, no traceback
    assert writer.health.state == "closed"
    assert "not written at shutdown" in caplog.text
    assert next(k for k, _ in iter_entries(small_disk / "rec")) == "session"


def test_a_daemon_that_cannot_bind_leaves_no_record_behind(tmp_path):
    with zmq.Context() as context, context.socket(zmq.REP) as taken:
        taken.bind("tcp://127.0.0.1:*")
        busy = taken.getsockopt_string(zmq.LAST_ENDPOINT)
        config = DaemonConfig(ingest=ANY_PORT, publish=ANY_PORT, control=busy, record=tmp_path / "rec")
        with pytest.raises(zmq.ZMQError):
            Daemon(config)
    assert not (tmp_path / "rec").exists()  # so the next run can record there
