"""`lptem replay` of vendor-written EM files into `lptem serve`, as users run both: every frame arrives,
the pixel size (converted to nm) and the frame time come from the file into the frame headers and so into
the daemon's record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from tests.clients.camera.test_em_formats import EM_DATA, VENDOR_FILES, needs_data

pytestmark = [pytest.mark.e2e, needs_data]
pytest.importorskip("rsciio", reason="RosettaSciIO (lptem-live[formats]) is not installed")
LPTEM = str(Path(sys.executable).with_name("lptem"))


def replay_into_daemon(movie: Path, record: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    with DaemonProcess("--engine", "passthrough", "--policy", "queue", "--record", str(record)) as daemon:
        replay = subprocess.run(
            [
                LPTEM,
                "replay",
                str(movie),
                "--ingest",
                daemon.ingest,
                "--control",
                daemon.control,
                "--drain",
                "30",
                "--no-progress",
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return replay


@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
def test_every_frame_and_the_files_calibration_reach_the_daemon(name: str, tmp_path: Path) -> None:
    frames, _shape, _dtype, pixel_nm, frame_s = VENDOR_FILES[name]
    replay = replay_into_daemon(EM_DATA / name, tmp_path / "rec")
    assert replay.returncode == 0, replay.stderr
    assert f"drained: {frames} processed, 0 dropped" in replay.stdout
    session = json.loads((tmp_path / "rec" / "session.json").read_text())
    assert session["frame_times"]["frame"] == list(range(frames))
    if pixel_nm is None:
        assert session["pixel_size_nm"] is None
        assert "carries no pixel size" in replay.stderr
    else:
        assert session["pixel_size_nm"] == pytest.approx(pixel_nm, rel=1e-9)
    gaps_s = np.diff(session["frame_times"]["t_ns"]) / 1e9
    if frame_s is not None:  # the movie's clock, not the replay's (which runs far faster)
        np.testing.assert_allclose(gaps_s, frame_s, rtol=1e-9)


@pytest.mark.parametrize("name", ["mrc/Custom_movie.mrc", "tia/old/64x64x5_TEM_preview.emi"])
def test_pixel_size_nm_fills_in_or_overrides_the_file(name: str, tmp_path: Path) -> None:
    replay = replay_into_daemon(EM_DATA / name, tmp_path / "rec", "--pixel-size-nm", "0.25")
    assert replay.returncode == 0, replay.stderr
    assert json.loads((tmp_path / "rec" / "session.json").read_text())["pixel_size_nm"] == 0.25
    if VENDOR_FILES[name][3] is not None:
        assert "--pixel-size-nm 0.25 overrides the file's 6.28183 nm/px" in replay.stderr


def test_a_corrupt_file_stops_replay_before_anything_is_sent(tmp_path: Path) -> None:
    bad = tmp_path / "movie.emd"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with DaemonProcess("--engine", "passthrough") as daemon:
        replay = subprocess.run(
            [LPTEM, "replay", str(bad), "--ingest", daemon.ingest],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with ControlClient(daemon.control) as client:
            assert client.status().frames_received == 0
    assert replay.returncode == 2
    assert "movie.emd: not a readable .emd file" in replay.stderr
    assert "Traceback" not in replay.stderr
