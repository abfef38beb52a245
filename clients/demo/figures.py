"""PNG figures of a demo run: trajectories against truth, MSD curves with fits, and the last frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from lptem.engine.msd import msd, positions_by_frame
from lptem.engine.sim.simulator import SimFrame
from lptem.service.exports import Record


def write_figures(
    out: Path, record: Record, truth: npt.NDArray[np.float64], last: SimFrame | None, report: dict[str, Any]
) -> list[str]:
    """Write the figures into ``out``; return their file names."""
    pixel = report["pixel_size_nm"]
    seen = record.tracks[record.tracks["visible"]]
    names = [_trajectories(out, seen, truth, pixel), _msd(out, seen, report)]
    if last is not None:
        names.append(_frame(out, last, record, pixel))
    return names


def _trajectories(out: Path, seen: Any, truth: npt.NDArray[np.float64], pixel: float) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for k in range(truth.shape[1]):
        ax.plot(
            truth[:, k, 0] * pixel,
            truth[:, k, 1] * pixel,
            color="0.75",
            lw=3,
            label="truth" if k == 0 else None,
        )
    for pid, rows in seen.groupby("particle"):
        ax.plot(rows["x"] * pixel, rows["y"] * pixel, lw=0.8, label=f"tracked {pid}")
    ax.set(xlabel="x / nm", ylabel="y / nm", title="Trajectories: tracked over ground truth")
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, out / "trajectories.png")


def _msd(out: Path, seen: Any, report: dict[str, Any]) -> str:
    pixel, dt = report["pixel_size_nm"], 1.0 / report["simulator"]["config"]["fps"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    lags = np.arange(1, 51)
    for o in report["objects"]:
        rows = seen[seen["particle"] == o["id"]]
        if len(rows) < 100:  # fragments: too short for a meaningful MSD
            continue
        curve = msd(positions_by_frame(rows["frame"], rows[["x", "y"]].to_numpy() * pixel)[1], 50)
        ax.loglog(curve.lags * dt, curve.msd, ".", ms=4, label=f"particle {o['id']}")
        if np.isfinite(o["D_nm2_per_s"]):
            tau = lags[: o["fit_lags"][1]] * dt
            ax.loglog(tau, 4 * o["D_nm2_per_s"] * tau ** o["alpha"], lw=0.8)
    d_true = report["D_true_nm2_per_s"]
    ax.loglog(
        lags * dt,
        4 * d_true * (lags * dt) ** report["alpha_true"],
        "k--",
        lw=1,
        label=f"theory 4Dτ, D = {d_true:.0f} nm²/s",
    )
    ax.set(xlabel="lag τ / s", ylabel="MSD / nm²", title="Time-averaged MSD, fits on the first lags")
    ax.legend(fontsize=7)
    return _save(fig, out / "msd.png")


def _frame(out: Path, last: SimFrame, record: Record, pixel: float) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    ax.imshow(last.image, cmap="gray")
    rows = record.tracks[(record.tracks["frame"] == last.index) & record.tracks["visible"]]
    ax.scatter(rows["x"], rows["y"], s=60, facecolors="none", edgecolors="tab:orange", linewidths=1.2)
    for _, r in rows.iterrows():
        ax.annotate(
            str(int(r["particle"])),
            (r["x"], r["y"]),
            xytext=(8, 8),
            textcoords="offset points",
            color="tab:orange",
        )
    shown = last.truth.visible
    ax.scatter(last.truth.x[shown], last.truth.y[shown], s=8, c="tab:cyan", label="truth")
    bar_nm = 50.0
    h, w = last.image.shape
    ax.plot([w * 0.05, w * 0.05 + bar_nm / pixel], [h * 0.95] * 2, color="white", lw=3)
    ax.text(w * 0.05, h * 0.93, f"{bar_nm:g} nm", color="white")
    ax.set(title=f"Frame {last.index}: tracked (orange) and true centres (cyan)")
    ax.axis("off")
    return _save(fig, out / "frame.png")


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
