"""The statistics and tables of ``lptem analyze`` (figures: figures.py; command line: cli.py).

Reads an lptem record folder, SAM-EM's ``trajectories.csv`` (frame, particle_id, x, y, angle) or a
trackpy table (frame, particle, x, y; CSV or Parquet). Writes into ``--out``:

    msd_per_particle.csv   particle, lag, lag_s, msd_nm2, pairs
    fits.csv               particle, frames, D_nm2_per_s_alpha, alpha, fitted lags, r² (MSD = 4 D τ^α)
    ensemble_msd.csv       lag, lag_s, mean_nm2 (over particles), weighted_nm2 (emsd), particles, pairs
    vacf.csv               lag, lag_s, vacf, pairs
    displacements.csv      lag, n, sd_x_nm, sd_y_nm, kurtosis_x, kurtosis_y (excess)
    rotation_fits.csv      particle, frames, D_r_rad2_per_s_alpha, alpha, fitted lags, r² (MSD_θ = 2 D_r τ^α),
                           when the input has angles (unwrapped modulo 360°/--symmetry)
    rotational_msd.csv     particle, lag, lag_s, msd_rad2, pairs
    trap_fits.csv          with --trapped: particle, frames, k_kT_per_nm2, sd_nm, noise_sd_nm, tau_s,
                           D_nm2_per_s and, with angles, sd_theta_deg, noise_theta_deg, tau_theta_s,
                           D_r_rad2_per_s (an Ornstein–Uhlenbeck fit about the site: trap.py)
    summary.json           units, column names, per-particle and ensemble fits (null where undefined)
    *.png                  the same as figures, plus trajectories coloured by time and angle traces

Lengths are nm when the pixel size is known (records carry it when the camera sent it), else px; times
are s when the frame time is known (records carry frame timestamps), else frames; the units are in the
column names (px2, lag_frames, D_px2_per_frame_alpha, ...). Lags are always in frames. Definitions in
docs/statistics.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lptem.clients.analysis.inputs import AnalyzeError, Trajectories
from lptem.clients.analysis.rotation import Rotation, rotation, rotation_columns
from lptem.clients.analysis.trap import trap_columns, trap_fits
from lptem.engine.analysis import (
    Displacements,
    EnsembleMsd,
    displacements,
    ensemble_msd,
    velocity_autocorrelation,
)
from lptem.engine.msd import PowerLawFit, fit_power_law, msd

# ---------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Analysis:
    data: Trajectories
    fits: pd.DataFrame
    """One row per particle: particle, frames, D, alpha, fit_first_lag, fit_last_lag, r_squared, note."""
    per_particle: pd.DataFrame
    """particle, lag (frames), tau (time unit), msd (length unit²), pairs."""
    ensemble: EnsembleMsd
    ensemble_fit: PowerLawFit
    vacf: np.ndarray
    vacf_pairs: np.ndarray
    displacements: list[Displacements]
    rotation: Rotation | None = None
    """Rotational MSD and D_r per particle (None when the input carries no angles)."""
    trap: pd.DataFrame | None = None
    """Per particle, the fit of a particle held at a site (``--trapped``; clients/analysis/trap.py)."""


def analyze(
    data: Trajectories,
    max_lag: int = 50,
    min_frames: int = 20,
    displacement_lags: tuple[int, ...] = (1, 4, 16),
    symmetry: int = 2,
    *,
    trapped: bool = False,
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
                    "tau": curve.lags * dt,
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
        rotation(data, symmetry, max_lag, min_frames),
        trap_fits(data, max_lag, min_frames, symmetry) if trapped else None,
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
                "tau": e.lags * dt,
                "mean": e.mean,
                "weighted": e.weighted,
                "particles": e.particles,
                "pairs": e.pairs,
            }
        ),
        "vacf.csv": pd.DataFrame(
            {"lag": lags, "tau": lags * dt, "vacf": result.vacf, "pairs": result.vacf_pairs}
        ),
        "displacements.csv": pd.DataFrame([_displacement_row(m) for m in result.displacements]),
    }
    units = _unit_columns(result.data)
    for name, table in tables.items():
        table.rename(columns=units).to_csv(out / name, index=False)
    names = list(tables)
    if result.rotation is not None:
        turning = rotation_columns(result.data)
        for name, table in (
            ("rotation_fits.csv", result.rotation.fits),
            ("rotational_msd.csv", result.rotation.per_particle),
        ):
            table.rename(columns=turning).to_csv(out / name, index=False)
            names.append(name)
    if result.trap is not None:
        result.trap.rename(columns=trap_columns(result.data)).to_csv(out / "trap_fits.csv", index=False)
        names.append("trap_fits.csv")
    summary = json.dumps(_without_nan(_summary(result)), indent=1, allow_nan=False, default=_json_number)
    (out / "summary.json").write_text(summary)
    return [*names, "summary.json"]


def _unit_columns(data: Trajectories) -> dict[str, str]:
    """Internal column -> CSV column with its unit in the name (lag and frame columns are frames)."""
    length, msd_unit = data.length_unit, data.msd_unit
    return {
        "tau": data.time_column,
        "msd": f"msd_{msd_unit}",
        "mean": f"mean_{msd_unit}",
        "weighted": f"weighted_{msd_unit}",
        "D": f"D_{msd_unit}_per_{data.time_unit}_alpha",
        "sd_x": f"sd_x_{length}",
        "sd_y": f"sd_y_{length}",
    }


def _without_nan(value: object) -> object:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


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
        "columns": _unit_columns(d),
        "ensemble": {
            "D": fit.diffusion,
            "alpha": fit.alpha,
            "lags": list(fit.lags_used),
            "r_squared": fit.r_squared,
            "note": fit.reason or "",
        },
        "fits": result.fits.to_dict(orient="records"),
        "rotation": None if result.rotation is None else {
            "symmetry": result.rotation.symmetry,
            "model": "MSD_theta = 2 D_r tau^alpha (rotation about the beam axis)",
            "D_r_unit": f"rad^2/{d.time_unit}^alpha",
            "fits": result.rotation.fits.to_dict(orient="records"),
        },
    }  # fmt: skip


def _json_number(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
