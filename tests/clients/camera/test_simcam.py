"""`lptem sim`, the simulated camera: streams over the wire like a camera, or writes a movie with truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lptem.clients.camera.movies import open_movie
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.service.exports import read_record
from tests.conftest import wait_processed

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))
SMALL = ["--size", "192", "--particles", "2", "--width-nm", "6", "--seed", "3", "--no-progress"]


def lptem(*args, timeout=120):
    return subprocess.run([LPTEM, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_sim_writes_a_movie_with_ground_truth_that_replay_reads(tmp_path):
    out = tmp_path / "movie"
    result = lptem("sim", "--out", str(out), "--frames", "12", "--labels", "--dtype", "uint16", *SMALL)
    assert result.returncode == 0, result.stderr
    truth = pd.read_parquet(out / "truth.parquet")
    assert len(truth) == 24
    assert set(truth.columns) >= {
        "frame",
        "particle",
        "x",
        "y",
        "theta_deg",
        "area_px",
        "visible",
        "inside_fraction",
    }
    meta = json.loads((out / "sim.json").read_text())
    assert meta["seed"] == 3
    assert meta["config"]["shape"] == [192, 192]
    with open_movie(out / "movie.tif") as movie, open_movie(out / "labels.tif") as labels:
        assert len(movie) == len(labels) == 12
        assert movie.frame(0).dtype == np.uint16
        first = labels.frame(0)
        for k in (1, 2):
            ys, xs = np.nonzero(first == k)
            row = truth[(truth.frame == 0) & (truth.particle == k - 1)].iloc[0]
            assert np.hypot(xs.mean() - row.x, ys.mean() - row.y) < 0.5


def test_sim_streams_to_the_daemon_like_a_camera(tmp_path):
    record = tmp_path / "rec"
    with DaemonProcess(
        "--policy", "queue", "--record", str(record), "--auto-detect", "-E", "particle_radius_px=12"
    ) as d:
        result = lptem(
            "sim", "--ingest", d.ingest, "--microscope", "none", "--frames", "40", "--fps", "200", *SMALL
        )
        assert result.returncode == 0, result.stderr
        assert "sent 40 frames" in result.stdout
        assert wait_processed(d.control, 40)
    rec = read_record(record)
    assert list(rec.frames["frame"]) == list(range(40))
    assert set(np.diff(rec.frames["t_ns"])) <= {4_999_999, 5_000_000, 5_000_001}  # exposures at 200 fps
    start = next(e for e in rec.events if e["event"] == "start")
    assert start["series"] == "sim-3"
    assert start["meta"]["simulator"]["seed"] == 3  # the simulator's parameters travel with the series
    assert rec.tracks["x_nm"].notna().all()  # the pixel size arrived with the frames


def test_sim_refuses_impossible_configurations():
    result = lptem("sim", "--out", "/tmp/never", "--size", "64", "--particles", "40", "--width-nm", "10")
    assert result.returncode == 2
    assert "cannot place" in result.stderr


def test_the_crystal_preset_writes_a_lattice_of_cubes_with_its_truth(tmp_path):
    out = tmp_path / "crystal"
    scene = ["--preset", "crystal", "--width-nm", "11", "--pixel-size-nm", "0.5", "--vacancies", "0.1"]
    result = lptem("sim", *scene, "--size", "256", "--out", str(out), "--frames", "3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "simulating 44 particles" in result.stderr
    truth = pd.read_parquet(out / "truth.parquet")
    first = truth[truth["frame"] == 0]
    assert len(first) == 44  # 7 x 7 sites, 5 left empty
    pitch = np.diff(np.unique(first["x"].round(0)))
    assert np.median(pitch) == pytest.approx(27.0, abs=1.5)  # 22 px cubes, 5 px gaps, ±1 px jiggle
    assert json.loads((out / "sim.json").read_text())["config"]["particles"]["shape"] == "cube"
