"""Particles held at sites (``lptem analyze --trapped``): per particle, the Ornstein–Uhlenbeck fit of its
MSD about its site (lptem.engine.confinement), localisation noise taken out: the spring constant
k = k_B T / σ² (k_B T per length unit²), the relaxation time, the localisation noise and the diffusion
coefficient of the free steps; with angles also the rotational ones (σ_θ, D_r in rad²/time unit)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lptem.clients.analysis.inputs import Trajectories
from lptem.engine.analysis import rotational_msd
from lptem.engine.confinement import TrapFit, fit_trap
from lptem.engine.msd import msd


def trap_fits(data: Trajectories, max_lag: int, min_frames: int, symmetry: int) -> pd.DataFrame:
    """One row per particle with ``min_frames`` positions (module docstring); NaN where a fit fails."""
    dt = data.dt()
    angles = data.dense_angles(min_frames)
    rows = []
    for particle, xy in data.dense(min_frames).items():
        fit = fit_trap(msd(xy, max_lag), dt, dims=2)
        row = {"particle": particle, "frames": int(np.isfinite(xy[:, 0]).sum()), **_translation(fit)}
        if particle in angles:
            turn = fit_trap(rotational_msd(angles[particle], max_lag, symmetry), dt, dims=1)
            row |= _rotation(turn)
        rows.append(row)
    return pd.DataFrame(rows)


def _translation(fit: TrapFit) -> dict[str, object]:
    return {
        "k": 1.0 / fit.variance if fit.ok else math.nan,
        "sd": math.sqrt(fit.variance) if fit.ok else math.nan,
        "noise_sd": math.sqrt(fit.noise_variance) if fit.ok else math.nan,
        "tau": fit.time_constant,
        "D": fit.diffusion,
        "note": fit.reason or "",
    }


def _rotation(fit: TrapFit) -> dict[str, object]:
    return {
        "sd_theta_deg": math.degrees(math.sqrt(fit.variance)) if fit.ok else math.nan,
        "noise_theta_deg": math.degrees(math.sqrt(fit.noise_variance)) if fit.ok else math.nan,
        "tau_theta": fit.time_constant,
        "D_r": fit.diffusion,
        "note_theta": fit.reason or "",
    }


def trap_columns(data: Trajectories) -> dict[str, str]:
    """Internal column -> CSV column with its unit in the name."""
    length, time = data.length_unit, data.time_unit
    return {
        "k": f"k_kT_per_{length}2",
        "sd": f"sd_{length}",
        "noise_sd": f"noise_sd_{length}",
        "tau": f"tau_{time}",
        "D": f"D_{length}2_per_{time}",
        "tau_theta": f"tau_theta_{time}",
        "D_r": f"D_r_rad2_per_{time}",
    }
