"""``lptem analyze`` on records, SAM-EM trajectories.csv and trackpy tables, against theory and trackpy."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lptem.clients.analysis.inputs import load
from lptem.clients.analysis.report import analyze
from lptem.clients.cli import main
from lptem.engine.msd import msd
from lptem.service.exports import export_record
from lptem.service.protocol import TOPIC_TRACK, TrackedObject, TrackMessage, encode_result
from lptem.service.record import RecordWriter

trackpy = pytest.importorskip("trackpy")

PIXEL_NM = 0.25
FRAME_NS = 20_000_000  # 50 frames/s
SIGMA_PX = 1.0  # per axis per frame: D = σ² / (2 Δt) = 0.5 px²/frame = 1.5625 nm²/s
D_NM2_S = SIGMA_PX**2 * PIXEL_NM**2 / (2 * FRAME_NS / 1e9)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def walks(n_particles: int, n_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, SIGMA_PX, size=(n_particles, n_frames, 2))
    return 300.0 + 100.0 * np.arange(n_particles)[:, None, None] + np.cumsum(steps, axis=1)


def track_message(frame: int, epoch: int, xy: np.ndarray, hidden: set[int]) -> TrackMessage:
    objects = tuple(
        TrackedObject(p + 1, float(x), float(y), 10.0 * p, 80.0, 0.9, p not in hidden, (0, 0, 4, 4),
                      float(x) * PIXEL_NM, float(y) * PIXEL_NM)
        for p, (x, y) in enumerate(xy)
    )  # fmt: skip
    t_ns = 1_700_000_000_000_000_000 + (epoch * 10_000 + frame) * FRAME_NS
    return TrackMessage(frame, epoch, t_ns, t_ns + 1, t_ns + 2, "classical", 0, objects, PIXEL_NM)


def write_record(folder: Path, epochs: list[np.ndarray], hidden_every: int = 7) -> None:
    """One epoch per array (particles, frames, 2); particle p is hidden in frames f % hidden_every == p."""
    writer = RecordWriter(folder, {"engine": "classical", "pixel_size_nm": PIXEL_NM})
    for epoch, positions in enumerate(epochs):
        for frame in range(positions.shape[1]):
            hidden = {p for p in range(len(positions)) if frame % hidden_every == p}
            message = track_message(frame, epoch, positions[:, frame], hidden)
            writer.write("track", encode_result(TOPIC_TRACK, message)[1])
    writer.close()


def visible_positions(positions: np.ndarray, particle: int, hidden_every: int = 7) -> np.ndarray:
    xy: np.ndarray = positions[particle] * PIXEL_NM
    xy[np.arange(len(xy)) % hidden_every == particle] = np.nan
    return xy


def test_record_units_gaps_and_camera_restarts(tmp_path: Path) -> None:
    first, second = walks(3, 600, seed=1), walks(3, 500, seed=2) + 400.0  # far away after the restart
    write_record(tmp_path / "rec", [first, second])
    data = load(tmp_path / "rec")
    assert data.pixel_size_nm == pytest.approx(PIXEL_NM)
    assert data.frame_time_s == pytest.approx(FRAME_NS / 1e9)
    result = analyze(data, max_lag=30)
    for particle in range(3):
        # no pair spans the restart: the pooled pairs of the two epochs, each with its gaps
        a, b = msd(visible_positions(first, particle), 30), msd(visible_positions(second, particle), 30)
        expected = (a.msd * a.pairs + b.msd * b.pairs) / (a.pairs + b.pairs)
        rows = result.per_particle[result.per_particle["particle"] == particle + 1]
        np.testing.assert_allclose(rows["msd"], expected, rtol=1e-12)
        np.testing.assert_array_equal(rows["pairs"], a.pairs + b.pairs)
    # free α: D is MSD / 4 extrapolated to τ = 1 s (50 frames), so an error δα scales it by 50^δα
    assert result.fits["alpha"].to_numpy() == pytest.approx(1.0, abs=0.1)
    assert result.fits["D"].to_numpy() == pytest.approx(D_NM2_S, rel=0.4)
    assert result.ensemble_fit.diffusion == pytest.approx(D_NM2_S, rel=0.15)  # ~3 s.d. (5 seeds: 9 % at most)
    assert result.ensemble_fit.alpha == pytest.approx(1.0, abs=0.05)


def test_exported_record_reads_like_the_raw_record(tmp_path: Path) -> None:
    write_record(tmp_path / "rec", [walks(2, 300, seed=3), walks(2, 200, seed=4), walks(2, 100, seed=5)])
    raw = analyze(load(tmp_path / "rec"), max_lag=20)
    export_record(tmp_path / "rec")
    exported = analyze(load(tmp_path / "rec"), max_lag=20)
    pd.testing.assert_frame_equal(raw.per_particle, exported.per_particle)


def test_cli_writes_tables_and_figures_for_a_samem_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    positions = walks(3, 400, seed=4)
    rows = [
        {"frame": f, "particle_id": p, "x": x, "y": y, "angle": (5.0 * f) % 180 - 90}
        for p in range(3)
        for f, (x, y) in enumerate(positions[p])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "trajectories.csv", index=False)
    out = tmp_path / "analysis"
    argv = ["analyze", str(tmp_path / "trajectories.csv"), "--out", str(out), "--fps", "50",
            "--pixel-size-nm", str(PIXEL_NM), "--max-lag", "40"]  # fmt: skip
    assert main(argv) == 0
    names = ("msd", "ensemble_msd", "vacf", "displacements", "trajectories", "angles")
    for name in names:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    fits = pd.read_csv(out / "fits.csv")
    assert fits["D_nm2_per_s_alpha"].to_numpy() == pytest.approx(D_NM2_S, rel=0.4)
    assert fits["alpha"].to_numpy() == pytest.approx(1.0, abs=0.1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["length_unit"] == "nm"
    assert summary["time_unit"] == "s"
    assert summary["D_unit"] == "nm^2/s^alpha"
    vacf = pd.read_csv(out / "vacf.csv")
    assert vacf["lag_s"].iloc[1] == pytest.approx(0.02)
    assert abs(vacf["vacf"].iloc[1]) < 0.1  # independent steps
    displacement = pd.read_csv(out / "displacements.csv")
    assert displacement["sd_x_nm"].iloc[0] == pytest.approx(SIGMA_PX * PIXEL_NM, rel=0.1)
    assert displacement["sd_y_nm"].iloc[1] == pytest.approx(2 * SIGMA_PX * PIXEL_NM, rel=0.1)  # lag 4
    printed = capsys.readouterr().out
    assert "3 trajectories" in printed
    assert "nm²/s^α" in printed


def test_trackpy_table_ensemble_equals_trackpy_emsd(tmp_path: Path) -> None:
    positions = walks(4, 300, seed=5)
    rng = np.random.default_rng(6)
    frames = []
    for p in range(4):
        keep = np.flatnonzero(rng.random(300) > 0.15)  # gaps
        frames.append(pd.DataFrame({"frame": keep, "particle": p, "x": positions[p, keep, 0],
                                    "y": positions[p, keep, 1]}))  # fmt: skip
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(tmp_path / "tracks.parquet")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "tracks.parquet"), "--out", str(out), "--fps", "50",
                 "--pixel-size-nm", str(PIXEL_NM), "--max-lag", "25", "--no-figures"]) == 0  # fmt: skip
    assert not list(out.glob("*.png"))
    ours = pd.read_csv(out / "ensemble_msd.csv")
    # trackpy starts every trajectory at its first frame; ours too (the dense array starts there)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trackpy's own pandas deprecation chatter
        theirs = trackpy.motion.emsd(table, mpp=PIXEL_NM, fps=50.0, max_lagtime=25)
    np.testing.assert_allclose(ours["weighted_nm2"], theirs.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours["lag_s"], theirs.index.to_numpy(), rtol=1e-12)


def test_without_pixel_size_or_frame_rate_units_are_px_and_frames(tmp_path: Path) -> None:
    positions = walks(1, 500, seed=7)[0]
    path = tmp_path / "t.csv"
    pd.DataFrame({"frame": np.arange(500), "particle": 9, "x": positions[:, 0], "y": positions[:, 1]}).to_csv(
        path
    )
    result = analyze(load(path))
    assert (result.data.length_unit, result.data.time_unit) == ("px", "frame")
    assert result.fits["D"].iloc[0] == pytest.approx(SIGMA_PX**2 / 2, rel=0.2)  # px²/frame


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("frame,particle,x\n0,1,2.0\n", "missing columns ['y']"),
        ("frame,particle,x,y\n0,1,2.0,3.0\n0,1,2.5,3.0\n", "appears twice"),
        ("frame,particle,x,y\n0,1,2.0,3.0\n1,1,2.5,3.0\n", "no trajectory has 20 frames"),
        (b"PAR1\x00\x01garbage", "unreadable"),
        ("frame,particle,x,y\n0,a,2.0,3.0\n", "non-numeric values"),
        ("frame,particle,x,y\n0.5,1,2.0,3.0\n", "'frame' holds non-integer values"),
        ("frame,particle,x,y\n0,1,inf,3.0\n", "infinite values"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / ("bad.parquet" if isinstance(content, bytes) else "bad.csv")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert main(["analyze", str(path), "--out", str(out)]) == 2
    assert message in caplog.text
    assert not out.exists()


def test_a_folder_that_is_not_a_record_and_bad_options(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["analyze", str(tmp_path)]) == 2
        assert main(["analyze", str(tmp_path), "--fps", "-50"]) == 2
        assert main(["analyze", str(tmp_path), "--max-lag", "0"]) == 2
        assert main(["analyze", str(tmp_path), "--max-lag", "20000"]) == 2
    assert "not an lptem record" in caplog.text
    assert "--fps must be a positive number" in caplog.text
    assert "--max-lag must be 1..10000" in caplog.text


def test_without_units_the_columns_say_px_and_frames(tmp_path: Path) -> None:
    positions = walks(2, 200, seed=8)
    rows = [
        {"frame": f, "particle": p, "x": x, "y": y} for p in range(2) for f, (x, y) in enumerate(positions[p])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    assert main(["analyze", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    assert list(pd.read_csv(tmp_path / "o" / "msd_per_particle.csv").columns) == [
        "particle", "lag", "lag_frames", "msd_px2", "pairs"
    ]  # fmt: skip
    assert "D_px2_per_frame_alpha" in pd.read_csv(tmp_path / "o" / "fits.csv").columns


def test_short_tracks_give_valid_json_and_figures(tmp_path: Path) -> None:
    """Fits without enough lags are null in summary.json (JSON has no NaN); sparse figures still draw."""
    positions = walks(3, 12, seed=9)
    rows = [
        {"frame": f, "particle": p, "x": x, "y": y} for p in range(3) for f, (x, y) in enumerate(positions[p])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "short.csv", index=False)
    out = tmp_path / "o"
    assert main(["analyze", str(tmp_path / "short.csv"), "--out", str(out), "--min-frames", "5"]) == 0
    summary = json.loads((out / "summary.json").read_text(), parse_constant=pytest.fail)
    assert all(fit["D"] is None for fit in summary["fits"])  # lags of 12 frames have < 10 pairs past lag 2
    assert summary["ensemble"]["D"] is not None  # 3 particles pool enough pairs
    assert (out / "displacements.png").read_bytes()[:8] == PNG_MAGIC  # lag 16 > 12 frames: no pairs


def test_an_export_next_to_its_record_warns_about_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_record(tmp_path / "rec", [walks(2, 100, seed=10), walks(2, 100, seed=11)])
    export_record(tmp_path / "rec")
    with caplog.at_level(logging.WARNING):
        load(tmp_path / "rec" / "trajectories.csv")
    assert "analyse the folder instead" in caplog.text


def test_a_samem_angle_is_read_in_our_convention(tmp_path):
    """SAM-EM's angle is skimage's orientation (from the row axis); analyze shows θ from +x, like records."""
    path = tmp_path / "trajectories.csv"
    pd.DataFrame(
        {"frame": [0, 1, 2], "particle_id": [1, 1, 1], "x": [1.0, 2.0, 3.0], "y": [1.0, 1.0, 1.0],
         "angle": [90.0, 60.0, -30.0]}
    ).to_csv(path, index=False)  # fmt: skip
    assert load(path, None, None).table["angle"].tolist() == [0.0, 30.0, -60.0]


def test_rotational_diffusion_of_cubes_from_a_record(tmp_path: Path) -> None:
    """Two cubes turning freely (2° s.d. per frame at 50 fps: D_r = 0.0609 rad²/s), recorded by a daemon
    run with -E symmetry=4, so θ is modulo 90°: `lptem analyze` unwraps it and recovers D_r."""
    rng = np.random.default_rng(8)
    sigma, box = np.radians(2.0), (0, 0, 4, 4)
    turns = np.cumsum(rng.normal(0.0, sigma, size=(2, 3000)), axis=1)
    theta = (np.degrees(turns) + 45.0) % 90.0 - 45.0
    writer = RecordWriter(tmp_path / "rec", {"engine": "classical", "engine_options": {"symmetry": "4"}})
    for frame in range(turns.shape[1]):
        t_ns = 1_700_000_000_000_000_000 + frame * FRAME_NS
        objects = tuple(
            TrackedObject(p + 1, 100.0 + 50 * p, 100.0, float(theta[p, frame]), 400.0, 1.0, True, box)
            for p in range(2)
        )
        message = TrackMessage(frame, 0, t_ns, t_ns, t_ns, "classical", 0, objects)
        writer.write("track", encode_result(TOPIC_TRACK, message)[1])
    writer.close()
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "rec"), "--out", str(out), "--no-figures"]) == 0
    fits = pd.read_csv(out / "rotation_fits.csv")
    expected = sigma**2 / (2 * FRAME_NS / 1e9)
    assert fits["D_r_rad2_per_s_alpha"].to_numpy() == pytest.approx(expected, rel=0.1)
    assert fits["alpha"].to_numpy() == pytest.approx(1.0, abs=0.05)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rotation"]["symmetry"] == 4
    assert list(pd.read_csv(out / "rotational_msd.csv").columns) == [
        "particle",
        "lag",
        "lag_s",
        "msd_rad2",
        "pairs",
    ]


def test_cubes_held_at_sites_give_spring_constant_and_rotational_diffusion(tmp_path: Path) -> None:
    """Three cubes trapped at sites (1 px s.d. per axis, 0.8 kept per frame; rocking 10° s.d., 0.9 kept)
    seen with 0.6 px of localisation noise, recorded by a daemon run with -E symmetry=4: `lptem analyze
    --trapped` gives k = kT/σ² with the noise taken out, and D_r of the rocking."""
    rng = np.random.default_rng(9)
    frames, pixel_nm, fps = 4000, 0.5, 50.0

    def trapped(sd: float, keep: float, shape: tuple[int, ...]) -> np.ndarray:
        x = np.zeros((frames, *shape))
        x[0] = rng.normal(0, sd, shape)
        for i in range(1, frames):
            x[i] = keep * x[i - 1] + rng.normal(0, sd * np.sqrt(1 - keep**2), shape)
        return x

    offsets = trapped(1.0, 0.8, (3, 2)) + rng.normal(0, 0.6, (frames, 3, 2))
    turns = trapped(10.0, 0.9, (3,))
    table = pd.DataFrame(
        [(f, p, 100.0 + 40 * p + offsets[f, p, 0], 100.0 + offsets[f, p, 1], (turns[f, p] + 45) % 90 - 45)
         for f in range(frames) for p in range(3)],
        columns=["frame", "particle_id", "x", "y", "angle"],
    )  # fmt: skip
    table.to_csv(tmp_path / "trajectories.csv", index=False)
    out = tmp_path / "out"
    args = ["analyze", str(tmp_path / "trajectories.csv"), "--out", str(out), "--no-figures", "--trapped",
            "--symmetry", "4", "--pixel-size-nm", str(pixel_nm), "--fps", str(fps)]  # fmt: skip
    assert main(args) == 0
    fits = pd.read_csv(out / "trap_fits.csv")
    assert len(fits) == 3
    k_true = 1.0 / pixel_nm**2  # kT/nm²: σ = 1 px = 0.5 nm
    assert fits["k_kT_per_nm2"].median() == pytest.approx(k_true, rel=0.1)
    assert fits["noise_sd_nm"].median() == pytest.approx(0.6 * pixel_nm, rel=0.15)
    d_r = np.radians(10.0) ** 2 * (1 - 0.9**2) / (2 / fps)
    assert fits["D_r_rad2_per_s"].median() == pytest.approx(d_r, rel=0.1)
    assert fits["sd_theta_deg"].median() == pytest.approx(10.0, rel=0.1)
