"""Figures of ``lptem analyze`` (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from lptem.clients.analysis.inputs import Trajectories
from lptem.clients.analysis.report import Analysis
from lptem.engine.analysis import Displacements


def write_figures(result: Analysis, out: Path) -> list[str]:
    """PNG figures into ``out``; returns the file names."""
    names = [
        _msd(out, result),
        _ensemble(out, result),
        _vacf(out, result),
        _displacements(out, result),
        _trajectories(out, result.data),
    ]
    if result.data.has_angles():
        names.append(_angles(out, result.data))
    return names


def _units(data: Trajectories) -> tuple[str, str]:
    return data.length_unit, data.time_unit


def _msd(out: Path, result: Analysis) -> str:
    length, time = _units(result.data)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    table = result.per_particle
    for fit in result.fits.itertuples():
        rows = table[table["particle"] == fit.particle]
        line = ax.loglog(rows["tau"], rows["msd"], ".", ms=3, label=f"{fit.particle}")[0]
        if np.isfinite(fit.D):
            tau = rows["tau"].to_numpy()[fit.fit_first_lag - 1 : fit.fit_last_lag]
            ax.loglog(tau, 4 * fit.D * tau**fit.alpha, color=line.get_color(), lw=0.8)
    ax.set(
        xlabel=f"lag / {time}", ylabel=f"MSD / {length}²", title="Time-averaged MSD per particle, with fits"
    )
    if len(result.fits) <= 12:
        ax.legend(fontsize=6, title="particle", title_fontsize=7)
    return _save(fig, out / "msd.png")


def _ensemble(out: Path, result: Analysis) -> str:
    length, time = _units(result.data)
    e = result.ensemble
    tau = e.lags * result.data.dt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.loglog(tau, e.mean, "o", ms=3, label="mean over particles")
    ax.loglog(tau, e.weighted, "s", ms=3, mfc="none", label="weighted (trackpy emsd)")
    fit = result.ensemble_fit
    if fit.ok:
        ax.loglog(
            tau,
            4 * fit.diffusion * tau**fit.alpha,
            "k-",
            lw=0.8,
            label=f"4 D τ^α: D = {fit.diffusion:.3g} {length}²/{time}^α, α = {fit.alpha:.2f}",
        )
    ax.set(xlabel=f"lag / {time}", ylabel=f"MSD / {length}²", title="Ensemble MSD")
    ax.legend(fontsize=7)
    return _save(fig, out / "ensemble_msd.png")


def _vacf(out: Path, result: Analysis) -> str:
    vacf = result.vacf
    tau = np.arange(len(vacf)) * result.data.dt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(0, color="0.7", lw=0.8)
    ax.plot(tau, vacf, "o-", ms=3)
    ax.set(xlabel=f"lag / {result.data.time_unit}", ylabel="C(τ) / C(0)", title="Velocity autocorrelation")
    return _save(fig, out / "vacf.png")


def _displacements(out: Path, result: Analysis) -> str:
    moves = result.displacements
    fig, axes = plt.subplots(1, len(moves), figsize=(4 * len(moves), 3.6), squeeze=False)
    for ax, m in zip(axes[0], moves, strict=True):
        _displacement_histogram(ax, m, result.data.length_unit)
    return _save(fig, out / "displacements.png")


def _displacement_histogram(ax: Any, m: Displacements, length_unit: str) -> None:
    """Δx and Δy pooled, with the Gaussian of the same s.d. (log scale shows the tails)."""
    values = np.concatenate([m.dx, m.dy])
    kx, ky = m.excess_kurtosis()
    ax.set(xlabel=f"displacement / {length_unit}", title=f"lag {m.lag}: excess kurtosis {kx:.2f}, {ky:.2f}")
    if values.size == 0:
        ax.text(0.5, 0.5, "no displacement pairs", ha="center", transform=ax.transAxes)
        return
    sd = float(np.std(values))
    if sd == 0:
        ax.hist(values, bins=30, label="Δx and Δy")
    else:
        ax.hist(values, bins=np.linspace(-4 * sd, 4 * sd, 61), density=True, alpha=0.6, label="Δx and Δy")
        grid = np.linspace(-4 * sd, 4 * sd, 200)
        gaussian = np.exp(-(grid**2) / (2 * sd**2)) / (sd * np.sqrt(2 * np.pi))
        ax.plot(grid, gaussian, "k-", lw=1, label="Gaussian, same s.d.")
        ax.set_yscale("log")
    ax.legend(fontsize=6)


def _trajectories(out: Path, data: Trajectories) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 6))
    scale = data.scale()
    points = None
    for _, rows in data.table.groupby("particle"):
        points = ax.scatter(rows["x"] * scale, rows["y"] * scale, c=data.times(rows), s=2, cmap="viridis")
    if points is not None:
        fig.colorbar(points, ax=ax, label=f"time / {data.time_unit}")
    ax.set(xlabel=f"x / {data.length_unit}", ylabel=f"y / {data.length_unit}", title="Trajectories")
    ax.invert_yaxis()
    ax.set_aspect("equal")
    return _save(fig, out / "trajectories.png")


def _angles(out: Path, data: Trajectories) -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    for particle, rows in data.table.groupby("particle"):
        ax.plot(data.times(rows), rows["angle"], ".", ms=1.5, label=str(particle))
    ax.set(
        xlabel=f"time / {data.time_unit}",
        ylabel="θ / degrees",
        title="Orientation (long axis, from +x to +y)",
    )
    return _save(fig, out / "angles.png")


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
