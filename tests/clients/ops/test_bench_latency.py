"""`lptem bench latency` against a running daemon: every stage's distribution, and the frames lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.wire.sender import FrameSender
from lptem.service.mailbox import Policy

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


def start_bench(publish: str, *args: str) -> subprocess.Popen[str]:
    """Start `lptem bench latency` and return once it listens (results before that are not seen)."""
    bench = subprocess.Popen(
        [LPTEM, "bench", "latency", "--publish", publish, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert bench.stderr is not None
    for line in bench.stderr:
        if "listening to" in line:
            return bench
    raise AssertionError("lptem bench latency never listened")


def test_latency_table_and_losses(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)  # lossless: exact counts
    ep = daemon.endpoints
    bench = start_bench(ep["publish"], "--frames", "150", "--duration", "30", "--json")
    frame = np.zeros((64, 64), np.uint16)
    with FrameSender(ep["ingest"]) as camera:
        for number in range(160):
            if number % 10 == 5:
                continue  # the camera skips every tenth frame number: 16 missed of 160 numbered
            camera.send(frame, frame_number=number)
            time.sleep(0.005)
    out, err = bench.communicate(timeout=60)
    assert bench.returncode == 0, err
    result = json.loads(out)
    assert result["frames_received"] == 144
    assert result["frames_numbered"] == 160
    assert result["dropped_by_daemon"] == 0
    assert result["missed_otherwise"] == 16
    assert result["missed_share"] == pytest.approx(0.1)
    for stage in ("camera_to_daemon", "processing", "daemon_to_client", "total"):
        d = result["latency_ms"][stage]
        assert d["n"] == 144
        assert 0 <= d["p50"] <= d["p90"] <= d["p99"] <= d["max"]
    total, parts = result["latency_ms"]["total"]["p50"], result["latency_ms"]["processing"]["p50"]
    assert total >= parts


def test_table_output_and_no_daemon(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough", policy=Policy.QUEUE)  # lossless: exact counts
    ep = daemon.endpoints
    bench = start_bench(ep["publish"], "--frames", "20")
    with FrameSender(ep["ingest"]) as camera:
        for _ in range(20):
            camera.send(np.zeros((32, 32), np.uint8))
            time.sleep(0.005)
    out, err = bench.communicate(timeout=60)
    assert bench.returncode == 0, err
    assert out.splitlines()[0].split() == ["stage", "/", "ms", "n", "p50", "p90", "p99", "max"]
    assert "frames: 20 received of 20 numbered; dropped by the daemon 0 (0.00%)" in out
    silent = subprocess.run(
        [LPTEM, "bench", "latency", "--publish", "tcp://127.0.0.1:9", "--duration", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert silent.returncode == 1
    assert "no track message" in silent.stderr
