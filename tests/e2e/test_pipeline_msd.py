"""Science through the whole pipeline: simulator -> wire -> `lptem serve` -> record -> MSD fit.

Brownian motion of known D must come back within 10 % and fractional Brownian motion with α = 0.5 within
0.1, from >= 1000 frames, with the classical engine finding the particles by itself.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lptem.clients.camera.simcam import SimulatedCamera
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.sender import FrameSender
from lptem.engine.msd import fit_power_law, msd, positions_by_frame
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator
from lptem.service.exports import read_record
from tests.conftest import wait_processed

pytestmark = pytest.mark.e2e

FRAMES = 1000
WIDTH_NM, PIXEL_NM = 20.0, 0.25  # 80 px gold spheres in 5 nm of liquid: CNR about 2.5


def track_through_daemon(motion: Motion, tmp_path, seed: int):
    config = SimConfig(
        shape=(768, 768),
        pixel_size_nm=PIXEL_NM,
        stack=Stack(liquid_thickness_nm=5.0),
        particles=Particles(count=3, width_nm=WIDTH_NM),
        motion=motion,
        collisions=False,
    )
    radius = WIDTH_NM / PIXEL_NM / 2
    args = (
        "--policy",
        "queue",
        "--auto-detect",
        "--record",
        str(tmp_path / "rec"),
        "-E",
        f"particle_radius_px={radius}",
        "-E",
        f"smoothing_px={0.3 * radius}",
        "-E",
        "gate_px=60",
    )
    with DaemonProcess(*args) as daemon, FrameSender(daemon.ingest) as sender:
        SimulatedCamera(Simulator(config, seed=seed), sender, fps=None).run(FRAMES, threading.Event())
        assert wait_processed(daemon.control, FRAMES)
        assert daemon.stop() == 0
    record = read_record(tmp_path / "rec")
    assert len(record.frames) == FRAMES
    seen = record.tracks[record.tracks["visible"]]
    fits = []
    for _, rows in seen.groupby("particle"):
        if len(rows) < 0.9 * FRAMES:
            continue  # a fragment (a particle leaving the field); the long trajectories carry the test
        _, dense = positions_by_frame(rows["frame"], rows[["x", "y"]].to_numpy())
        fits.append(fit_power_law(msd(dense, 10), 1.0))
    assert len(fits) >= 2
    return fits


@pytest.mark.slow
def test_brownian_diffusion_coefficient_is_recovered(tmp_path):
    motion = Motion("brownian", sigma_px=5.0)  # D = σ²/2 = 12.5 px²/frame
    fits = track_through_daemon(motion, tmp_path, seed=11)
    estimate = np.mean([f.diffusion for f in fits])
    assert estimate == pytest.approx(motion.diffusion_px2_per_frame, rel=0.10)
    assert np.mean([f.alpha for f in fits]) == pytest.approx(1.0, abs=0.1)


@pytest.mark.slow
def test_fractional_brownian_exponent_is_recovered(tmp_path):
    motion = Motion("fbm", sigma_px=5.0, alpha=0.5)
    fits = track_through_daemon(motion, tmp_path, seed=12)
    assert np.mean([f.alpha for f in fits]) == pytest.approx(0.5, abs=0.1)
