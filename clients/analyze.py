"""``lptem analyze``: offline trajectory statistics with tables and figures.

Reads an lptem record folder, SAM-EM's ``trajectories.csv`` (frame, particle_id, x, y, angle) or a
trackpy table (frame, particle, x, y; CSV or Parquet). Writes into ``--out``:

    msd_per_particle.csv   particle, lag, lag_s, msd, pairs
    fits.csv               particle, frames, D, alpha, fitted lags, r² (MSD = 4 D τ^α)
    ensemble_msd.csv       lag, lag_s, mean over particles, trackpy-weighted mean (emsd), particles, pairs
    vacf.csv               lag, lag_s, velocity autocorrelation, pairs
    displacements.csv      lag, n, s.d. and excess kurtosis of the x and y displacement components
    summary.json           units, per-particle and ensemble fits
    *.png                  the same as figures, plus trajectories coloured by time and angle traces

Lengths are nm when the pixel size is known (records carry it when the camera sent it), else px; times
are s when the frame time is known (records carry frame timestamps), else frames. Definitions in
docs/statistics.md.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.analysis import Displacements, EnsembleMsd, displacements, ensemble_msd, velocity_autocorrelation
from engine.msd import PowerLawFit, fit_power_law, msd, positions_by_frame

log = logging.getLogger("lptem.analyze")

EPOCH_GAP_FRAMES = 100_000
"""Frames left empty between camera epochs of a record, so that no MSD pair spans a restart."""


class AnalyzeError(ValueError):
    """Input that cannot be analysed; the message says why."""


@dataclass(frozen=True)
class Trajectories:
    table: pd.DataFrame
    """Columns frame, particle, x, y (px) and, if known, angle (degrees). Records add shown_frame,
    the frame count for time axes without the gaps that separate camera epochs."""
    pixel_size_nm: float | None
    frame_time_s: float | None
    source: str

    @property
    def length_unit(self) -> str:
        return "nm" if self.pixel_size_nm else "px"

    @property
    def time_unit(self) -> str:
        return "s" if self.frame_time_s else "frame"

    def scale(self) -> float:
        """Length unit per pixel."""
        return self.pixel_size_nm or 1.0

    def dt(self) -> float:
        """Time unit per frame."""
        return self.frame_time_s or 1.0

    def times(self, rows: pd.DataFrame) -> np.ndarray:
        """Time of ``rows`` (time unit) for plotting."""
        frames = rows["shown_frame"] if "shown_frame" in rows.columns else rows["frame"]
        return np.asarray(frames.to_numpy(dtype=np.float64) * self.dt())

    def has_angles(self) -> bool:
        return "angle" in self.table.columns and bool(self.table["angle"].notna().any())

    def dense(self, min_frames: int) -> dict[int, np.ndarray]:
        """Per particle with at least ``min_frames`` positions: (n_frames, 2) positions in the length
        unit, NaN in gaps."""
        out = {}
        for particle, rows in self.table.groupby("particle"):
            if len(rows) >= min_frames:
                _, xy = positions_by_frame(rows["frame"], rows[["x", "y"]].to_numpy() * self.scale())
                out[int(particle)] = xy
        return out


# ---------------------------------------------------------------------------------------------- input


def load(path: Path, pixel_size_nm: float | None = None, fps: float | None = None) -> Trajectories:
    """Read a record folder or a trajectory table; ``pixel_size_nm`` / ``fps`` override what it carries."""
    if path.is_dir():
        return _load_record(path, pixel_size_nm, fps)
    if not path.exists():
        raise AnalyzeError(f"{path}: no such file or folder")
    table = _read_table(path)
    if "particle_id" in table.columns and "particle" not in table.columns:
        table = table.rename(columns={"particle_id": "particle"})  # SAM-EM's layout
    missing = {"frame", "particle", "x", "y"} - set(table.columns)
    if missing:
        raise AnalyzeError(f"{path}: missing columns {sorted(missing)} (has {list(table.columns)})")
    columns = ["frame", "particle", "x", "y"] + (["angle"] if "angle" in table.columns else [])
    table = table[columns].dropna(subset=["frame", "particle", "x", "y"])
    if table.duplicated(["frame", "particle"]).any():
        raise AnalyzeError(f"{path}: a particle appears twice in one frame")
    return Trajectories(
        table.astype({"frame": "int64", "particle": "int64"}),
        pixel_size_nm,
        1 / fps if fps else None,
        str(path),
    )


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:  # pandas' parser errors are ValueErrors
        raise AnalyzeError(f"{path}: unreadable ({exc})") from exc


def _load_record(folder: Path, pixel_size_nm: float | None, fps: float | None) -> Trajectories:
    from service.record import read_record  # noqa: PLC0415 - only for record folders

    if (folder / "trajectories.parquet").exists():
        tracks = pd.read_parquet(folder / "trajectories.parquet")
        frames = pd.read_parquet(folder / "frames.parquet")
    elif (folder / "record.msgpack").exists():
        record = read_record(folder)
        tracks, frames = record.tracks, record.frames
    else:
        raise AnalyzeError(f"{folder}: not an lptem record (no trajectories.parquet or record.msgpack)")
    seen = tracks[tracks["visible"]].rename(columns={"theta_deg": "angle"})
    if seen.empty:
        raise AnalyzeError(f"{folder}: the record holds no visible object")
    frames_per_epoch = int(tracks["frame"].max()) + 1
    epoch_rank = seen["epoch"].rank(method="dense").astype("int64") - 1
    seen = seen.assign(
        frame=seen["frame"] + epoch_rank * (frames_per_epoch + EPOCH_GAP_FRAMES),
        shown_frame=seen["frame"] + epoch_rank * frames_per_epoch,
    )
    if pixel_size_nm is None and seen["x_nm"].notna().any():
        pixel_size_nm = float((seen["x_nm"] / seen["x"]).replace([np.inf, -np.inf], np.nan).dropna().median())
    frame_time = 1 / fps if fps else _frame_time(frames)
    table = seen[["frame", "particle", "x", "y", "angle", "shown_frame"]].reset_index(drop=True)
    return Trajectories(table, pixel_size_nm, frame_time, str(folder))


def _frame_time(frames: pd.DataFrame) -> float | None:
    """Median camera time per frame (s) from the timestamps of the first epoch."""
    if len(frames) < 2:
        return None
    first = frames[frames["epoch"] == frames["epoch"].iloc[0]].sort_values("frame")
    steps = np.diff(first["frame"].to_numpy())
    if len(first) < 2 or not (steps > 0).any():
        return None
    per_frame = np.diff(first["t_ns"].to_numpy())[steps > 0] / steps[steps > 0] / 1e9
    value = float(np.median(per_frame))
    return value if value > 0 else None


# ---------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Analysis:
    data: Trajectories
    fits: pd.DataFrame
    """One row per particle: particle, frames, D, alpha, fit_first_lag, fit_last_lag, r_squared, note."""
    per_particle: pd.DataFrame
    ensemble: EnsembleMsd
    ensemble_fit: PowerLawFit
    vacf: np.ndarray
    vacf_pairs: np.ndarray
    displacements: list[Displacements]


def analyze(
    data: Trajectories,
    max_lag: int = 50,
    min_frames: int = 20,
    displacement_lags: tuple[int, ...] = (1, 4, 16),
) -> Analysis:
    trajectories = data.dense(min_frames)
    if not trajectories:
        raise AnalyzeError(f"no trajectory has {min_frames} frames or more (--min-frames)")
    dt = data.dt()
    curves, fits = [], []
    for particle, xy in trajectories.items():
        curve = msd(xy, max_lag)
        fit = fit_power_law(curve, dt)
        curves.append(
            pd.DataFrame(
                {
                    "particle": particle,
                    "lag": curve.lags,
                    "lag_s": curve.lags * dt,
                    "msd": curve.msd,
                    "pairs": curve.pairs,
                }
            )
        )
        fits.append(_fit_row(particle, int(np.isfinite(xy[:, 0]).sum()), fit))
    walks = list(trajectories.values())
    ensemble = ensemble_msd(walks, max_lag)
    vacf, vacf_pairs = velocity_autocorrelation(walks, min(max_lag, 20))
    return Analysis(
        data,
        pd.DataFrame(fits),
        pd.concat(curves, ignore_index=True),
        ensemble,
        fit_power_law(ensemble.weighted_curve(), dt),
        vacf,
        vacf_pairs,
        [displacements(walks, lag) for lag in displacement_lags],
    )


def _fit_row(particle: int, frames: int, fit: PowerLawFit) -> dict[str, object]:
    return {
        "particle": particle,
        "frames": frames,
        "D": fit.diffusion,
        "alpha": fit.alpha,
        "fit_first_lag": fit.lags_used[0],
        "fit_last_lag": fit.lags_used[1],
        "r_squared": fit.r_squared,
        "note": fit.reason or "",
    }


def write_tables(result: Analysis, out: Path) -> list[str]:
    """CSV tables and summary.json into ``out``; returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    dt = result.data.dt()
    e = result.ensemble
    lags = np.arange(len(result.vacf))
    tables = {
        "msd_per_particle.csv": result.per_particle,
        "fits.csv": result.fits,
        "ensemble_msd.csv": pd.DataFrame(
            {
                "lag": e.lags,
                "lag_s": e.lags * dt,
                "mean": e.mean,
                "weighted": e.weighted,
                "particles": e.particles,
                "pairs": e.pairs,
            }
        ),
        "vacf.csv": pd.DataFrame(
            {"lag": lags, "lag_s": lags * dt, "vacf": result.vacf, "pairs": result.vacf_pairs}
        ),
        "displacements.csv": pd.DataFrame([_displacement_row(m) for m in result.displacements]),
    }
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
    (out / "summary.json").write_text(json.dumps(_summary(result), indent=1, default=_json_number))
    return [*tables, "summary.json"]


def _displacement_row(m: Displacements) -> dict[str, float]:
    kx, ky = m.excess_kurtosis()
    return {
        "lag": m.lag,
        "n": len(m.dx),
        "sd_x": float(np.std(m.dx)) if len(m.dx) else np.nan,
        "sd_y": float(np.std(m.dy)) if len(m.dy) else np.nan,
        "kurtosis_x": kx,
        "kurtosis_y": ky,
    }


def _summary(result: Analysis) -> dict[str, object]:
    d = result.data
    fit = result.ensemble_fit
    return {
        "source": d.source,
        "particles": len(result.fits),
        "pixel_size_nm": d.pixel_size_nm,
        "frame_time_s": d.frame_time_s,
        "length_unit": d.length_unit,
        "time_unit": d.time_unit,
        "model": "MSD = 4 D tau^alpha",
        "D_unit": f"{d.length_unit}^2/{d.time_unit}^alpha",
        "ensemble": {
            "D": fit.diffusion,
            "alpha": fit.alpha,
            "lags": list(fit.lags_used),
            "r_squared": fit.r_squared,
            "note": fit.reason or "",
        },
        "fits": result.fits.to_dict(orient="records"),
    }


def _json_number(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------------------ CLI


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="record folder, SAM-EM trajectories.csv or a trackpy table")
    parser.add_argument("--out", type=Path, help="output folder (default: <path>-analysis next to the input)")
    parser.add_argument("--pixel-size-nm", type=float, help="nm/px (overrides what a record carries)")
    parser.add_argument("--fps", type=float, help="frames/s (overrides a record's frame timestamps)")
    parser.add_argument(
        "--max-lag", type=int, default=50, help="largest MSD lag, frames (default %(default)s)"
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=20,
        help="skip trajectories with fewer positions (default %(default)s)",
    )
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")


def run_analyze(args: argparse.Namespace) -> int:
    if args.max_lag < 1 or args.min_frames < 2:
        log.error("--max-lag must be >= 1 and --min-frames >= 2")
        return 2
    for name in ("pixel_size_nm", "fps"):
        value = getattr(args, name)
        if value is not None and not (np.isfinite(value) and value > 0):
            log.error("--%s must be a positive number", name.replace("_", "-"))
            return 2
    path: Path = args.path
    out: Path = args.out or path.with_name(path.stem + "-analysis")
    try:
        result = analyze(load(path, args.pixel_size_nm, args.fps), args.max_lag, args.min_frames)
        files = write_tables(result, out)
    except (AnalyzeError, OSError) as exc:
        log.error("%s", exc)
        return 2
    if not args.no_figures:
        from clients.analyze_figures import write_figures  # noqa: PLC0415 - matplotlib only when needed

        files += write_figures(result, out)
    _print_report(result)
    print(f"{len(files)} files in {out}/: {', '.join(files)}")
    return 0


def _print_report(result: Analysis) -> None:
    d = result.data
    unit = f"{d.length_unit}²/{d.time_unit}^α"
    print(f"{len(result.fits)} trajectories from {d.source}")
    print(
        f"  pixel size {d.pixel_size_nm or 'unknown'} nm/px, frame time "
        f"{f'{d.frame_time_s * 1e3:.3f} ms' if d.frame_time_s else 'unknown'}; D in {unit}"
    )
    for row in result.fits.itertuples():
        note = f"  ({row.note})" if row.note else ""
        print(
            f"  particle {row.particle:>5}: {row.frames:>7} frames  D {row.D:11.4g}  "
            f"α {row.alpha:6.3f}  lags {row.fit_first_lag}-{row.fit_last_lag}{note}"
        )
    fit = result.ensemble_fit
    print(f"  ensemble (trackpy emsd weighting): D {fit.diffusion:.4g} {unit}  α {fit.alpha:.3f}")
