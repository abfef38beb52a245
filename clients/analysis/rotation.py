"""Rotational statistics of ``lptem analyze``: per particle, the orientation unwrapped modulo its
symmetry, its mean squared angular displacement and the rotational diffusion coefficient D_r from a fit
of ``MSD_θ(τ) = 2 D_r τ^α`` (rotation about the beam axis; lptem.engine.analysis)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lptem.clients.analysis.inputs import Trajectories
from lptem.engine.analysis import rotational_msd
from lptem.engine.msd import fit_power_law


@dataclass(frozen=True)
class Rotation:
    symmetry: int
    """θ was reported modulo 360°/symmetry; unwrapping takes each turn the short way within that."""
    fits: pd.DataFrame
    """One row per particle: particle, frames, D_r (rad²/time^α), alpha, fit lags, r_squared, note."""
    per_particle: pd.DataFrame
    """particle, lag (frames), tau (time unit), msd_rad2, pairs."""


def rotation(data: Trajectories, symmetry: int, max_lag: int, min_frames: int) -> Rotation | None:
    """Rotational MSD and D_r of every particle with ``min_frames`` angles; None without angles."""
    angles = data.dense_angles(min_frames)
    if not angles:
        return None
    dt = data.dt()
    fits, curves = [], []
    for particle, theta in angles.items():
        curve = rotational_msd(theta, max_lag, symmetry)
        fit = fit_power_law(curve, dt, dims=1)
        curves.append(pd.DataFrame({"particle": particle, "lag": curve.lags, "tau": curve.lags * dt,
                                    "msd_rad2": curve.msd, "pairs": curve.pairs}))  # fmt: skip
        fits.append({
            "particle": particle,
            "frames": int(np.isfinite(theta).sum()),
            "D_r": fit.diffusion,
            "alpha": fit.alpha,
            "fit_first_lag": fit.lags_used[0],
            "fit_last_lag": fit.lags_used[1],
            "r_squared": fit.r_squared,
            "note": fit.reason or "",
        })  # fmt: skip
    return Rotation(symmetry, pd.DataFrame(fits), pd.concat(curves, ignore_index=True))


def rotation_columns(data: Trajectories) -> dict[str, str]:
    """Internal column -> CSV column with its unit in the name."""
    return {"tau": data.time_column, "D_r": f"D_r_rad2_per_{data.time_unit}_alpha"}
