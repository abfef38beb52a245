"""A subscriber that stops reading costs the daemon a bounded amount of memory (docs/protocol.md §4), and
the others still receive every result: 60 s of 1024² uint16 frames at 100 fps, previews on."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECONDS = 60.0
FPS = 100.0
BOUND_MIB = 40
"""Stated bound on the daemon's growth for one stalled subscriber: 1000 held results (about 1 kB each
here) and 2 held previews (about 0.2 MB each), plus the allocator's slack (docs/protocol.md §4)."""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def camera(endpoint: str, stop: threading.Event, sent: list[int]) -> None:
    movie = BlobMovie(BlobMovieConfig(shape=(1024, 1024), n_blobs=4, radius_px=8.0), 50)
    frames = [frame for _, frame in movie.frames()]
    with FrameSender(endpoint) as sender:
        start = time.monotonic()
        while not stop.is_set():
            sender.send(frames[sent[0] % len(frames)])
            sent[0] += 1
            time.sleep(max(0.0, start + sent[0] / FPS - time.monotonic()))


def test_a_stalled_subscriber_costs_bounded_memory_and_no_one_else_anything():
    args = ("--engine", "classical", "--auto-detect", "-E", "particle_radius_px=8", "--preview-hz", "10")
    with (
        DaemonProcess(*args) as daemon,
        zmq.Context() as context,
        Subscriber(daemon.publish, ("track",)) as reader,
    ):
        stalled = []
        for endpoint in (daemon.publish, daemon.preview):  # subscribes to everything, never reads
            sock = context.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVBUF, 65536)
            sock.setsockopt(zmq.RCVHWM, 1)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(endpoint)
            stalled.append(sock)
        assert reader.wait_connected(10)
        stop, sent = threading.Event(), [0]
        thread = threading.Thread(target=camera, args=(daemon.ingest, stop, sent), daemon=True)
        thread.start()
        time.sleep(5.0)  # warm up: engine state, scale estimate, allocator
        before = rss_mib(daemon.pid)
        frames, deadline = [], time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            received = reader.recv(1.0)
            if received is not None:
                frames.append(received.message.frame)
        growth = rss_mib(daemon.pid) - before
        stop.set()
        thread.join()
        while (received := reader.recv(1.0)) is not None:
            frames.append(received.message.frame)
        with ControlClient(daemon.control) as control:
            status = control.status()
        for sock in stalled:
            sock.close(linger=0)
    assert sent[0] > 0.8 * FPS * SECONDS  # the camera kept its rate
    assert growth < BOUND_MIB, f"daemon RSS grew {growth:.1f} MiB with a stalled subscriber"
    published = status.frames_processed
    assert len(frames) == published  # every track the daemon published reached the reader
    assert frames == sorted(frames)
    assert len(set(frames)) == len(frames)
    print(f"RSS growth {growth:.1f} MiB over {SECONDS:g} s; {len(frames)} of {published} tracks received")
