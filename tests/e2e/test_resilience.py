"""Crashes, clean shutdowns and restarts, with the real daemon process."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.exports import export_record, read_record
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e

MOVIE = BlobMovie(BlobMovieConfig(shape=(256, 256), n_blobs=2, radius_px=6.0), 8)
FRAMES = [MOVIE.frame(i) for i in range(8)]


def stream(endpoint, stop, fps=100.0):
    """Send frames at ``fps`` until ``stop`` is set (a camera that does not care about the daemon)."""
    with FrameSender(endpoint) as camera:
        t0, i = time.perf_counter(), 0
        while not stop.is_set():
            camera.send(FRAMES[i % 8])
            i += 1
            time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))


def test_record_survives_sigkill_up_to_the_last_second(tmp_path):
    record = tmp_path / "rec"
    daemon = DaemonProcess("--record", str(record), "-E", "particle_radius_px=6", "--auto-detect").start()
    seen: list[tuple[int, int]] = []  # (frame, t_done_ns) as published
    try:
        with Subscriber(daemon.publish) as sub:
            assert sub.wait_connected()
            stop = threading.Event()
            camera = threading.Thread(target=stream, args=(daemon.ingest, stop))
            camera.start()
            t_end = time.monotonic() + 3.0
            while time.monotonic() < t_end:
                if (r := sub.recv(0.5)) is not None:
                    seen.append((r.message.frame, r.message.t_done_ns))
            kill_ns = time.time_ns()
            assert daemon.kill() == -9
            stop.set()
            camera.join()
    finally:
        daemon.kill()
    rec = read_record(record)  # a torn last entry, if any, is skipped
    recorded = set(rec.frames["frame"])
    due = {frame for frame, t_done in seen if t_done < kill_ns - 1_000_000_000}
    assert len(due) > 100
    assert due <= recorded
    assert rec.session["engine"] == "classical"
    export_record(record)  # a crashed session can still be exported afterwards
    assert len(pd.read_csv(record / "trajectories.csv")) > 0


def test_sigterm_finishes_flushes_exports_and_exits_zero(tmp_path):
    record = tmp_path / "rec"
    with DaemonProcess("--record", str(record), "--policy", "queue", "-E", "particle_radius_px=6") as daemon:
        with ControlClient(daemon.control) as control:
            control.add_object(
                box=[MOVIE.box(0, 0).x0, MOVIE.box(0, 0).y0, MOVIE.box(0, 0).x1, MOVIE.box(0, 0).y1]
            )
            with FrameSender(daemon.ingest) as camera:
                for frame in FRAMES:
                    camera.send(frame)
            assert wait_until(lambda: control.status().frames_processed == 8)
        assert daemon.stop() == 0
        assert "received SIGTERM" in daemon.log_text()
    for name in (
        "trajectories.parquet",
        "trajectories.csv",
        "trajectories_trackpy.csv",
        "session.json",
        "frames.parquet",
    ):
        assert (record / name).exists(), name
    rec = read_record(record)
    assert list(rec.frames["frame"]) == list(range(8))
    assert [e["event"] for e in rec.events] == ["add_object"]


def test_subscriber_reconnects_after_a_daemon_restart():
    ports = [free_port() for _ in range(3)]
    endpoints = [f"tcp://127.0.0.1:{p}" for p in ports]
    args = (
        "--ingest",
        endpoints[0],
        "--publish",
        endpoints[1],
        "--control",
        endpoints[2],
        "--policy",
        "queue",
    )
    with Subscriber(endpoints[1], heartbeat_timeout_s=1.5) as sub:
        frames_seen: list[int] = []
        for run in range(2):
            with DaemonProcess(*args) as daemon:
                assert sub.wait_connected(10.0)
                assert sub.connected
                with FrameSender(daemon.ingest) as camera:
                    for frame in FRAMES[:3]:
                        camera.send(frame)
                while len(frames_seen) < 3 * (run + 1) and (r := sub.recv(5.0)) is not None:
                    frames_seen.append(r.message.frame)
            if run == 0:
                assert sub.recv(2.5) is None  # daemon gone: nothing arrives, heartbeat times out
                assert not sub.connected
    assert frames_seen == [0, 1, 2, 0, 1, 2]
    assert sub.daemon_restarts == 1
