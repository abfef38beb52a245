"""The DigitalMicrograph sender against a stand-in DigitalMicrograph module (we cannot run DM): frames
reach a real daemon with the right pixel size, the unit conversions and copies are right, and a camera
or daemon that goes away ends the script with a message instead of hanging DigitalMicrograph."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from lptem.clients.camera import dm_sender
from lptem.clients.camera.dm_sender import Settings, main, pixel_size_nm, wire_pixels
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.keys import KeyFolder
from lptem.service.mailbox import Policy
from lptem.service.protocol import TrackMessage
from lptem.service.protocol.curve import ClientKeys
from tests.clients.camera.dm_standin import DigitalMicrograph as standin
from tests.conftest import free_port, wait_until

STANDIN_DIR = Path(standin.__file__).parent


@pytest.fixture(autouse=True)
def fresh_standin() -> Iterator[None]:
    saved = dict(standin.CONFIG)
    standin.CALLS.clear()
    yield
    standin.CONFIG.clear()
    standin.CONFIG.update(saved)


def _collect(publish: str, count: int, received: list[TrackMessage], ready: threading.Event) -> None:
    with Subscriber(publish, topics=("track",)) as sub:
        sub.wait_connected(5.0)
        ready.set()
        while len(received) < count:
            got = sub.recv(10.0)
            if got is None:
                return
            if isinstance(got.message, TrackMessage):
                received.append(got.message)


def _tracks_of(daemon_endpoints: dict[str, str], count: int, run: object) -> list[TrackMessage]:
    received: list[TrackMessage] = []
    ready = threading.Event()
    thread = threading.Thread(target=_collect, args=(daemon_endpoints["publish"], count, received, ready))
    thread.start()
    assert ready.wait(10.0)
    try:
        assert callable(run)
        run()
    finally:
        thread.join(30.0)
    return received


@pytest.mark.e2e
def test_frames_reach_the_daemon_with_the_pixel_size_from_the_calibration(make_daemon) -> None:
    ep = make_daemon(engine="passthrough", policy=Policy.QUEUE).endpoints
    standin.CONFIG.update(frames=25, scale=0.0012, unit="µm")
    settings = Settings(endpoint=ep["ingest"], exposure_s=0.01, frames=25, series="dm-test")
    sent: list[int] = []
    tracks = _tracks_of(ep, 25, lambda: sent.append(main(standin, settings, log=lambda _text: None)))
    assert sent == [25]
    assert [t.frame for t in tracks] == list(range(25))
    assert [t.pixel_size_nm for t in tracks] == [pytest.approx(1.2)] * 25
    assert {t.shape for t in tracks} == {(128, 160)}
    assert {t.series for t in tracks} == {"dm-test"}
    assert standin.CALLS == [
        "CreateImageForAcquire(1, 1, 1)",
        "StartContinuousAcquisition(0.01, 1, 1, 1)",
        "StopContinuousAcquisition()",
    ]


@pytest.mark.e2e
def test_the_script_runs_inside_digitalmicrograph_as_a_file_the_user_edited(
    make_daemon, tmp_path: Path
) -> None:
    """What DigitalMicrograph does: execute the file with its ``DigitalMicrograph`` module importable."""
    ep = make_daemon(engine="passthrough", policy=Policy.QUEUE).endpoints
    script = tmp_path / "lptem_dm_sender.py"
    text = Path(dm_sender.__file__).read_text(encoding="utf-8")
    default = 'SETTINGS = Settings(endpoint="tcp://127.0.0.1:5555", exposure_s=0.025)'
    assert default in text
    script.write_text(text.replace(default, f'SETTINGS = Settings(endpoint="{ep["ingest"]}", frames=12)'))
    env = {**os.environ, "PYTHONPATH": str(STANDIN_DIR), "STANDIN_FRAMES": "12", "STANDIN_UNIT_BYTES": "1"}
    runs: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        runs.append(
            subprocess.run(
                [sys.executable, str(script)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        )

    tracks = _tracks_of(ep, 12, run)
    assert runs[0].returncode == 0, runs[0].stderr
    assert "lptem: sent 12 frames" in runs[0].stdout
    assert len(tracks) == 12
    assert [t.pixel_size_nm for t in tracks] == [pytest.approx(1.2)] * 12  # b"\xb5m" is µm


@pytest.mark.e2e
def test_frames_reach_a_daemon_that_requires_curve_keys(make_daemon, tmp_path: Path) -> None:
    folder = KeyFolder(tmp_path / "keys")
    folder.init()
    folder.add("dm-pc", "camera")
    folder.add("olga", "operator")
    ep = make_daemon(engine="passthrough", policy=Policy.QUEUE, keys=folder.path).endpoints
    standin.CONFIG.update(frames=5)
    settings = Settings(
        endpoint=ep["ingest"],
        frames=5,
        key_file=str(folder.path / "clients" / "dm-pc.key_secret"),
        server_key_file=str(folder.path / "server.key"),
    )
    assert main(standin, settings, log=lambda _text: None) == 5
    with ControlClient(ep["control"], keys=_operator(folder)) as control:
        assert wait_until(lambda: control.status().frames_processed == 5)


def _operator(folder: KeyFolder) -> ClientKeys:
    return ClientKeys.load(folder.path / "clients" / "olga.key_secret", folder.path / "server.key")


def test_a_camera_that_stops_delivering_ends_the_stream() -> None:
    port = free_port()
    received: list[list[bytes]] = []
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{port}")
    try:
        standin.CONFIG.update(frames=4)
        messages: list[str] = []
        settings = Settings(endpoint=f"tcp://127.0.0.1:{port}", frame_wait_s=0.01, duration_s=30.0)
        assert main(standin, settings, log=messages.append) == 4
        assert "no frame from the camera within 0.01 s (3 of 3)" in messages[-2]
        assert standin.CALLS[-1] == "StopContinuousAcquisition()"
        while pull.poll(1000):
            received.append(pull.recv_multipart())
        kinds = [msgpack.unpackb(parts[0])["type"] for parts in received]
        assert kinds == ["start", "frame", "frame", "frame", "frame", "end"]
    finally:
        pull.close()
        context.term()


def test_a_daemon_that_takes_nothing_stops_the_script_with_a_message() -> None:
    messages: list[str] = []
    settings = Settings(endpoint=f"tcp://127.0.0.1:{free_port()}", send_timeout_s=0.3, duration_s=30.0)
    assert main(standin, settings, log=messages.append) == 0
    assert "took nothing for 0.3 s: stopped" in messages[-2]
    assert standin.CALLS == []  # the start marker found no daemon: the camera was never started


def test_a_daemon_that_goes_away_mid_stream_stops_the_camera() -> None:
    port = free_port()
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    pull.bind(f"tcp://127.0.0.1:{port}")
    try:
        standin.CONFIG.update(frames=10_000)
        messages: list[str] = []
        settings = Settings(endpoint=f"tcp://127.0.0.1:{port}", send_timeout_s=0.3, duration_s=30.0)
        sent = main(standin, settings, log=messages.append)  # nothing is read: the queues fill up
        assert 0 < sent < 10_000
        assert "took nothing for 0.3 s: stopped" in messages[-2]
        assert standin.CALLS[-1] == "StopContinuousAcquisition()"
    finally:
        pull.close()
        context.term()


class _Image:
    def __init__(self, scale: float, unit: object) -> None:
        self.calibration = (0.0, scale, unit)

    def GetDimensionCalibration(self, dimension: int, display: int) -> tuple[float, float, object]:
        return self.calibration


@pytest.mark.parametrize(
    ("scale", "unit", "nm"),
    [
        (0.25, "nm", 0.25),
        (0.0012, "µm", 1.2),
        (0.0012, b"\xb5m", 1.2),
        (2.5, "Å", 0.25),
        (250.0, "pm", 0.25),
        (1.0, "pixels", None),
        (1.0, "", None),
        (0.0, "nm", None),
        (float("nan"), "nm", None),
    ],
)
def test_pixel_size_from_the_calibration(scale: float, unit: object, nm: float | None) -> None:
    found = pixel_size_nm(_Image(scale, unit))
    assert found == (None if nm is None else pytest.approx(nm))


def test_pixels_are_copied_and_carried_in_a_v1_dtype() -> None:
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4)
    sent = wire_pixels(frame)
    frame[...] = 0  # DigitalMicrograph writes the next frame into the same memory
    assert sent.sum() == 66
    signed = wire_pixels(np.array([[-3, 5]], dtype=np.int16))
    assert signed.dtype == np.dtype("<f4")
    assert signed.tolist() == [[-3.0, 5.0]]
    big_endian = wire_pixels(np.array([[1, 2]], dtype=">u2"))
    assert big_endian.dtype == np.dtype("<u2")
    assert big_endian.tolist() == [[1, 2]]


def test_the_sender_module_needs_nothing_from_lptem() -> None:
    """It runs inside DigitalMicrograph, where lptem is not installed."""
    text = Path(dm_sender.__file__).read_text(encoding="utf-8")
    assert "import lptem" not in text
    assert "from lptem" not in text
