"""End to end: `lptem serve` as a subprocess on random loopback ports, as users run it."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig
from lptem.service.protocol import TrackMessage

pytestmark = pytest.mark.e2e


def collect_tracks(sub, n, quiet_s=3.0):
    """Track messages until ``n`` arrived or none came for ``quiet_s``."""
    tracks: list[TrackMessage] = []
    while len(tracks) < n:
        received = sub.recv(quiet_s)
        if received is None:
            break
        tracks.append(received.message)
    return tracks


def test_queue_policy_tracks_every_frame_with_stable_ids_and_subpixel_error():
    n_frames = 500
    movie = BlobMovie(BlobMovieConfig(shape=(1024, 1024), n_blobs=3, motion="orbit", step_px=2.0), n_frames)
    with (
        DaemonProcess("--policy", "queue", "--pixel-size-nm", "0.5") as daemon,
        Subscriber(daemon.publish) as sub,
        ControlClient(daemon.control) as control,
    ):
        assert sub.wait_connected()
        for blob in range(3):
            b = movie.box(0, blob)
            assert control.add_object(box=[b.x0, b.y0, b.x1, b.y1]) == blob + 1
        with FrameSender(daemon.ingest) as camera:
            for _, frame in movie.frames():
                camera.send(frame)
        tracks = collect_tracks(sub, n_frames)
        status = control.status()
    assert [t.frame for t in tracks] == list(range(n_frames))  # a track for every frame, in order
    assert (status.frames_processed, status.frames_dropped) == (n_frames, 0)
    errors = []
    for t in tracks:
        assert [o.id for o in t.objects] == [1, 2, 3]  # ids never change
        for o in t.objects:
            assert o.visible
            tx, ty = movie.positions[t.frame, o.id - 1]
            errors.append(np.hypot(o.x - tx, o.y - ty))
    assert max(errors) <= 1.0
    assert np.median(errors) < 0.3


def test_latest_policy_reports_exactly_the_frames_it_drops():
    n_frames = 300
    movie = BlobMovie(BlobMovieConfig(shape=(1024, 1024), n_blobs=3), 4)
    frames = [movie.frame(i) for i in range(4)]  # pre-rendered, so the camera outruns the engine
    with (
        DaemonProcess("--policy", "latest", "--auto-detect") as daemon,
        Subscriber(daemon.publish) as sub,
        ControlClient(daemon.control) as control,
    ):
        assert sub.wait_connected()
        with FrameSender(daemon.ingest) as camera:
            for i in range(n_frames):
                camera.send(frames[i % 4])
        tracks = collect_tracks(sub, n_frames)
        status = control.status()
    processed = [t.frame for t in tracks]
    dropped = status.frames_dropped
    assert dropped > 0, "the camera did not outrun the engine; this test exercises nothing"
    assert status.frames_received == n_frames
    assert len(processed) + dropped == n_frames
    assert status.frames_processed == len(processed)
    assert tracks[-1].dropped_total == dropped
    previous_frame, previous_total = -1, 0
    for t in tracks:  # each result says exactly how many frames were dropped just before it
        assert t.frame - previous_frame - 1 == t.dropped_total - previous_total
        previous_frame, previous_total = t.frame, t.dropped_total
