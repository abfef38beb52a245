"""Shared-memory ingest through the daemon: the pixels a camera writes into its ring are the pixels the
engine tracks; a torn slot and bad shm headers are rejected with a reason and disturb nothing else; the
ring of a camera killed with kill -9 is removed once the daemon notices; a restarted daemon reads the live
camera's ring again."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.mailbox import Policy
from lptem.service.protocol import TrackMessage, encode_header
from lptem.service.protocol.shm import SHM_DIR, RingWriter, ShmRef
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e
SHAPE = (96, 128)


def disc_at(x: float) -> np.ndarray:
    """A bright disc of radius 8 px centred at (x, 48) on a dim background (uint16)."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return np.where((xx - x) ** 2 + (yy - 48) ** 2 <= 64, 3000, 200).astype(np.uint16)


def test_the_engine_tracks_the_pixels_written_into_the_ring(make_daemon) -> None:
    daemon = make_daemon(
        policy=Policy.QUEUE,
        auto_detect=True,
        engine_options={"particle_radius_px": "8", "polarity": "bright", "confirm_frames": "1"},
    )
    ep = daemon.endpoints
    xs = [30.0 + 2 * k for k in range(20)]
    with Subscriber(ep["publish"], topics=("track",)) as sub:
        assert sub.wait_connected(5.0)
        with FrameSender(ep["ingest"], shm_slots=4) as camera:
            for x in xs:
                camera.send(disc_at(x))
            ring = camera.ring
            assert ring is not None
        tracks: list[TrackMessage] = []
        while len(tracks) < len(xs) and (got := sub.recv(10.0)) is not None:
            if isinstance(got.message, TrackMessage):
                tracks.append(got.message)
    assert daemon.stats.processed == len(xs)
    assert sum(daemon.stats.rejected.values()) == 0
    seen = {t.frame: t.objects[0].x for t in tracks if t.objects and t.objects[0].visible}
    assert len(seen) >= len(xs) - 2  # the first frames may confirm the detection
    for frame, x in seen.items():
        assert x == pytest.approx(xs[frame], abs=0.3)
    assert not (SHM_DIR / ring.name).exists()  # unlinked when the camera closed


def _push(endpoint: str) -> tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 1000)
    socket.connect(endpoint)
    return context, socket


def test_a_torn_slot_and_bad_shm_headers_are_rejected_and_disturb_nothing(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    context, push = _push(daemon.endpoints["ingest"])
    ring = RingWriter(2, SHAPE[0] * SHAPE[1] * 2, reclaim_s=0.0)
    try:
        first = ring.write(disc_at(40))
        ring.write(disc_at(41))
        again = ring.write(disc_at(42))  # slot 0 rewritten before frame 0 was read

        def header(n: int, ref: ShmRef, shape: tuple[int, int] = SHAPE) -> bytes:
            return encode_header(n, time.time_ns(), shape, "uint16", shm=ref)

        push.send(header(0, first))  # torn
        push.send(header(1, ShmRef(ring.name, 7, 2)))  # wrong slot
        push.send(header(2, again, (960, 1280)))  # wrong size: larger than a slot
        push.send(header(3, ShmRef("lptem-1-0badc0de", 0, 2)))  # unknown ring
        push.send_multipart([header(4, again), b"pixels too"])  # a shm frame has one part
        push.send(header(5, again))  # fine
        assert wait_until(lambda: daemon.stats.processed == 1 and sum(daemon.stats.rejected.values()) == 5)
    finally:
        push.close()
        context.term()
        ring.close()
    rejected = daemon.stats.rejected
    assert (rejected["torn"], rejected["shm"], rejected["parts"]) == (1, 3, 1)
    assert daemon.stats.last_frame == 5


def test_a_slot_rewritten_while_the_engine_reads_it_gives_no_result(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    ring = RingWriter(2, SHAPE[0] * SHAPE[1] * 2, reclaim_s=0.0)  # a camera that does not wait
    tracker = daemon.engine.tracker
    step = tracker.step

    def step_while_the_camera_rewrites(pixels: np.ndarray, **kwargs: bool):
        if ring.reclaimed == 0:
            ring.write(disc_at(60))  # slot 1
            ring.write(disc_at(70))  # slot 0, held by the engine: reclaimed at once and rewritten
        return step(pixels, **kwargs)

    tracker.step = step_while_the_camera_rewrites
    context, push = _push(daemon.endpoints["ingest"])
    try:
        push.send(encode_header(0, time.time_ns(), SHAPE, "uint16", shm=ring.write(disc_at(40))))
        assert wait_until(lambda: daemon.stats.rejected["torn"] == 1)
        push.send(encode_header(1, time.time_ns(), SHAPE, "uint16", shm=ring.write(disc_at(80))))
        assert wait_until(lambda: daemon.stats.processed == 1)
    finally:
        push.close()
        context.term()
        ring.close()
    assert ring.reclaimed == 2  # slot 0 under the engine; slot 1, whose frame was never sent
    assert daemon.stats.last_frame == 1  # frame 0's result was discarded; the daemon went on


CAMERA = """
import sys, time, numpy as np
from lptem.clients.wire.sender import FrameSender
camera = FrameSender(sys.argv[1], shm_slots=4)
frame = np.zeros((96, 128), np.uint16)
for _ in range(int(sys.argv[2])):
    camera.send(frame)
    time.sleep(0.01)
print(camera.ring.name, flush=True)
time.sleep(60)
"""


def test_a_camera_killed_with_kill_9_leaves_no_shared_memory_behind(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)
    camera = subprocess.Popen(
        [sys.executable, "-c", CAMERA, daemon.endpoints["ingest"], "20"], stdout=subprocess.PIPE, text=True
    )
    assert camera.stdout is not None
    name = camera.stdout.readline().strip()
    assert wait_until(lambda: daemon.stats.processed == 20)
    assert (SHM_DIR / name).exists()
    camera.kill()
    camera.wait()
    camera.stdout.close()
    assert wait_until(lambda: not (SHM_DIR / name).exists(), timeout_s=10.0)


def test_a_restarted_daemon_reads_the_live_cameras_ring_again(tmp_path: Path) -> None:
    ingest, control = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    serve = ("--engine", "passthrough", "--policy", "queue", "--ingest", ingest, "--control", control)
    with FrameSender(ingest, shm_slots=4) as camera:
        with DaemonProcess(*serve):
            for _ in range(10):
                camera.send(np.zeros(SHAPE, np.uint16))
            with ControlClient(control) as c:
                assert wait_until(lambda: c.status().frames_processed == 10)
        with DaemonProcess(*serve):  # a new daemon; the camera and its ring go on
            camera.start()  # a new series: numbering may restart
            for _ in range(10):
                camera.send(np.zeros(SHAPE, np.uint16))
            with ControlClient(control) as c:
                assert wait_until(lambda: c.status().frames_processed == 10)
                status = c.status()
        assert sum(status.frames_rejected.values()) == 0
