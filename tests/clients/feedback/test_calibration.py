"""The actuator map: fitted from moves and the image displacements they cause, read back from its file,
and measured end to end on a simulated stage that is rotated, mirrored and scaled against the camera."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.camera.sim_microscope import StageGeometry
from lptem.clients.feedback.calibrate import CalibrationPlan
from lptem.clients.feedback.calibration import ActuatorMap, CalibrationError, fit_map
from lptem.clients.feedback.sim_loop import (
    PIXEL_NM,
    DriftScenario,
    daemon_arguments,
    run_calibration,
    run_centring,
)
from lptem.clients.ops.daemon_process import DaemonProcess
from tests.conftest import free_port

LPTEM = str(Path(sys.executable).with_name("lptem"))
TILTED = StageGeometry(rotation_deg=127.0, mirrored=True, scale=1.08)


def _true_map(stage: StageGeometry, pixel_nm: float) -> np.ndarray:
    """Objects move opposite to the field of view: Δp = -(field shift per stage nm) u."""
    columns = [stage.field_shift_px(1.0, 0.0, pixel_nm), stage.field_shift_px(0.0, 1.0, pixel_nm)]
    return -np.array(columns).T


def test_fit_recovers_a_rotated_mirrored_scaled_map_from_noisy_moves() -> None:
    rng = np.random.default_rng(3)
    truth = _true_map(TILTED, 0.5)
    moves = np.array(list(CalibrationPlan(step_nm=15.0).moves()))
    shifts = moves @ truth.T + rng.normal(0.0, 0.2, moves.shape)
    fit = fit_map(moves, shifts)
    assert fit.map.array == pytest.approx(truth, abs=0.02)
    assert fit.map.rotation_deg == pytest.approx(127.0, abs=0.5)
    assert fit.map.mirrored
    assert np.array(fit.map.px_per_nm) * 0.5 == pytest.approx([1.08, 1.08], rel=0.01)
    assert fit.residual_px == pytest.approx(0.2 * math.sqrt(2), rel=0.4)


def test_map_moves_are_the_inverse_of_its_image_shifts() -> None:
    m = ActuatorMap(tuple(map(tuple, _true_map(TILTED, 0.5))))  # type: ignore[arg-type]
    ux, uy = m.move_for(7.0, -3.0)
    assert m.image_shift_px(ux, uy) == pytest.approx((7.0, -3.0))
    aligned = ActuatorMap.aligned(0.5)
    assert aligned.move_for(-2.0, 4.0) == pytest.approx((1.0, -2.0))  # the field follows the particle
    assert aligned.rotation_deg == pytest.approx(0.0)
    assert not aligned.mirrored


def test_map_file_round_trip(tmp_path: Path) -> None:
    m = fit_map([[10, 0], [0, 10], [-10, 0]], [[1, 2], [3, -4], [-1, -2]], "image-shift", step_nm=10.0).map
    m.save(tmp_path / "map.toml")
    again = ActuatorMap.load(tmp_path / "map.toml")
    assert again.matrix == m.matrix
    assert again.actuator == "image-shift"
    assert again.measured["step_nm"] == 10.0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("px_per_unit = [[1, 0], [0]]", "2 × 2"),
        ('px_per_unit = [[1, 0], [0, "a"]]', "2 × 2"),
        ("px_per_unit = [[1, 2], [2, 4]]", "singular"),
        ('actuator = "goniometer"\npx_per_unit = [[1, 0], [0, 1]]', "unknown actuator"),
        ("px_per_unit = [[1, 0], [0, 1]", "cannot read"),
    ],
)
def test_bad_map_files_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=reason):
        ActuatorMap.load(path)


def test_moves_along_one_direction_cannot_be_fitted() -> None:
    with pytest.raises(CalibrationError, match="two directions"):
        fit_map([[10, 0], [-10, 0]], [[1, 1], [-1, -1]])


@pytest.mark.e2e
def test_calibration_of_a_tilted_stage_then_centring_converges_where_the_aligned_map_diverges() -> None:
    still = DriftScenario(seconds=120.0, drift_px=(0.0, 0.0), sigma_px=0.05, send_fps=60.0)
    with DaemonProcess(*daemon_arguments()) as daemon:
        fit = run_calibration(still, daemon.ingest, daemon.publish, TILTED, CalibrationPlan(step_nm=15.0))
    sx, sy = fit.map.px_per_nm
    print(f"{fit.map.describe(PIXEL_NM)}; residual {fit.residual_px:.3f} px")
    assert fit.map.rotation_deg == pytest.approx(127.0, abs=1.0)
    assert fit.map.mirrored
    assert sx * PIXEL_NM == pytest.approx(1.08, rel=0.02)
    assert sy * PIXEL_NM == pytest.approx(1.08, rel=0.02)

    drifting = DriftScenario(seconds=15.0)  # 300 frames, 0.5 px/frame of drift
    with DaemonProcess(*daemon_arguments()) as daemon:
        held = run_centring(
            drifting, daemon.ingest, daemon.publish, controlled=True, stage=TILTED, stage_map=fit.map
        )
    with DaemonProcess(*daemon_arguments()) as daemon:
        lost = run_centring(
            drifting, daemon.ingest, daemon.publish, controlled=True, stage=TILTED, stop_beyond_px=60.0
        )
    print(
        f"calibrated: at most {held.max_offset_px:.1f} px off centre over {len(held.offsets_px)} frames; "
        f"aligned axes assumed: {lost.max_offset_px:.1f} px after {len(lost.offsets_px)} frames"
    )
    assert len(held.offsets_px) == drifting.frames
    assert held.max_offset_px < 20.0
    assert lost.max_offset_px > 60.0
    assert len(lost.offsets_px) < drifting.frames


@pytest.mark.slow
@pytest.mark.e2e
def test_lptem_calibrate_measures_the_stage_of_lptem_sim_and_control_uses_the_file(tmp_path: Path) -> None:
    """Seed 4 puts the particle at (151, 101) px of 256: the 30 px moves keep all of it in the frame (a
    particle cut by the edge biases its centroid, and so the map)."""
    sim_control = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "stage.toml"
    with (
        DaemonProcess(*daemon_arguments()) as daemon,
        (tmp_path / "sim.log").open("w") as sim_log,
    ):
        sim = subprocess.Popen(
            [LPTEM, "sim", "--ingest", daemon.ingest, "--microscope", sim_control, "--size", "256",
             "--pixel-size-nm", "0.5", "--particles", "1", "--width-nm", "20", "--liquid-nm", "5",
             "--diffusion", "0.05", "--fps", "50", "--frames", "6000", "--no-progress", "--seed", "4",
             "--stage-rotation-deg", "-35", "--stage-mirrored", "--stage-scale", "0.95"],
            stdout=subprocess.DEVNULL, stderr=sim_log,
        )  # fmt: skip
        try:
            calibrate = subprocess.run(
                [LPTEM, "calibrate", "--microscope", sim_control, "--publish", daemon.publish,
                 "--step-nm", "16", "--repeats", "3", "--frames-per-point", "9", "--out", str(out)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert calibrate.returncode == 0, calibrate.stderr
            centre = subprocess.run(
                [LPTEM, "control", "centre", "--microscope", sim_control, "--publish", daemon.publish,
                 "--calibration", str(out), "--duration", "2"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert centre.returncode == 0, centre.stderr
            assert "moves through the calibrated map" in centre.stderr
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    print(calibrate.stdout)
    stage_map = ActuatorMap.load(out)
    assert stage_map.rotation_deg == pytest.approx(-35.0, abs=1.0)
    assert stage_map.mirrored
    assert np.array(stage_map.px_per_nm) * 0.5 == pytest.approx([0.95, 0.95], rel=0.02)
    assert stage_map.measured["pixel_size_nm"] == 0.5
    assert "x axis at -35" in calibrate.stdout
