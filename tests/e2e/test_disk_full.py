"""``lptem serve --record`` onto a disk that fills up, as users run it: tracking goes on, status says so,
recording resumes when space returns, SIGTERM exits 0, and the exports name the lost frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.service.exports import read_record
from tests.conftest import fill, wait_until

pytestmark = pytest.mark.e2e


def test_a_full_disk_costs_the_record_not_the_tracking(small_disk):
    filler = fill(small_disk, leave_bytes=60_000)
    record = small_disk / "rec"
    frame = np.zeros((64, 64), dtype=np.uint16)
    with (
        DaemonProcess("--engine", "passthrough", "--policy", "queue", "--record", str(record)) as daemon,
        ControlClient(daemon.control) as control,
        FrameSender(daemon.ingest) as camera,
    ):
        sent = 0

        def send(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                camera.send(frame)
                sent += 1

        while control.status().extra["record"]["state"] == "ok" and sent < 5000:
            send(50)
        failing = control.status()
        assert failing.extra["record"]["state"] == "failing"
        assert "No space left" in failing.extra["record"]["error"]
        send(100)
        assert wait_until(lambda: control.status().frames_processed == sent)  # tracking goes on
        filler.unlink()
        assert wait_until(lambda: control.status().extra["record"]["state"] == "ok", timeout_s=10.0)
        send(20)
        assert wait_until(lambda: control.status().frames_processed == sent)
        log_text = daemon.log_text()
    assert daemon.process is not None
    assert daemon.process.returncode == 0
    assert "Traceback" not in daemon.log_text()
    assert "cannot write" in log_text
    frames = read_record(record).frames
    assert list(frames["frame"]) == list(range(sent))  # held in memory while the disk was full: none lost
    (gap,) = json.loads((record / "session.json").read_text())["record_gaps"]
    assert gap["lost_entries"] == 0
    assert "No space left" in gap["error"]
    assert gap["from_ns"] < gap["to_ns"]
