"""How the classical engine's position error in the crystal depends on the cube's own motion.

    python benchmarks/crystal_error.py                # 300 frames of the 7 x 7 crystal, default flags
    python benchmarks/crystal_error.py --frames 1000

The spring constant of a lattice site comes from the variance of a cube's excursion from its site
(docs/statistics.md). An error that grows with that excursion inflates the variance; independent noise
does not (the trap fit takes it out). Against the simulator's truth (frames from 20 on; a cube counts
where a detection lies within 8 px) this prints, per axis x: the error's RMS after each cube's constant
bias is removed, the constant bias's RMS over cubes, the error's autocorrelation at lags 1, 2, 5, 10
frames, and the slope of the error on the cube's true offset from its site (0: none; 0.2: the reported
excursion is 1.2 times the true one, the variance 1.44 times); the same for θ (modulo 90°) against the
cube's true rocking, which sets D_r.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import numpy.typing as npt
from _common import machine

from lptem.engine.registry import create_tracker
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Simulator

SETTLE = 20
"""Frames before the cubes are confirmed and the scale estimated."""
MATCH_PX = 8.0


Errors = npt.NDArray[np.float64]


def errors(frames: int) -> tuple[Errors, Errors, Errors, Errors]:
    """(frames, cubes) x errors (NaN where unmatched), the cubes' true x offsets from their sites, θ errors
    (degrees, modulo 90°) and the true θ's excursions from each cube's mean."""
    sim = Simulator(Crystal().config(pixel_size_nm=0.5, frame=(1024, 1024), seed=0), seed=0)
    tracker = create_tracker("classical", {"auto_detect": "true", "symmetry": "4"})
    truth_x, error_x, truth_theta, error_theta = [], [], [], []
    for i in range(frames):
        frame = sim.next()
        t = frame.truth
        truth = np.column_stack([t.x, t.y])
        err, err_theta = np.full(len(t.x), np.nan), np.full(len(t.x), np.nan)
        for o in tracker.step(frame.image).objects:
            distance = np.hypot(*(truth - (o.x, o.y)).T)
            k = int(np.argmin(distance))
            if o.visible and distance[k] < MATCH_PX:
                err[k] = o.x - t.x[k]
                err_theta[k] = (o.theta_deg - t.theta_deg[k] + 45.0) % 90.0 - 45.0
        truth_x.append(t.x)
        error_x.append(err)
        truth_theta.append(t.theta_deg)
        error_theta.append(err_theta)
        if (i + 1) % 100 == 0:
            print(f"  ... {i + 1}/{frames} frames", flush=True)
    x, theta = np.array(truth_x)[SETTLE:], np.array(truth_theta)[SETTLE:]
    return (
        np.array(error_x)[SETTLE:],
        x - x.mean(axis=0),
        np.array(error_theta)[SETTLE:],
        theta - theta.mean(axis=0),
    )


def autocorrelation(e: npt.NDArray[np.float64], lag: int) -> float:
    a, b = e[:-lag], e[lag:]
    ok = np.isfinite(a) & np.isfinite(b)
    return float((a[ok] * b[ok]).mean() / np.nanvar(e))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"crystal 7 x 7, 22 px cubes, 5 px gaps, 1024², {args.frames} frames, default flags")
    err, offset, err_theta, rocking = errors(args.frames)
    report("x", "px", err, offset, "true x offset from the site")
    report("θ", "°", err_theta, rocking, "true rocking about the cube's mean θ")
    return 0


def report(name: str, unit: str, err: Errors, excursion: Errors, excursion_name: str) -> None:
    bias = np.nanmean(err, axis=0)
    e = err - bias
    cubes = range(e.shape[1])
    lags = {lag: np.nanmean([autocorrelation(e[:, p], lag) for p in cubes]) for lag in (1, 2, 5, 10)}
    slopes = [slope(excursion[:, p], e[:, p]) for p in cubes]
    rms, bias_rms = np.sqrt(np.nanmean(e**2)), np.sqrt(np.mean(bias**2))
    print(f"{name} error RMS {rms:.2f} {unit}; constant bias RMS over cubes {bias_rms:.2f} {unit}")
    print("  autocorrelation " + ", ".join(f"lag {lag}: {value:.2f}" for lag, value in lags.items()))
    print(
        f"  slope of the {name} error on the {excursion_name}: {np.mean(slopes):.3f} (median over cubes "
        f"{np.median(slopes):.3f})"
    )


def slope(excursion: npt.NDArray[np.float64], error: npt.NDArray[np.float64]) -> float:
    ok = np.isfinite(error)
    return float(np.polyfit(excursion[ok], error[ok], 1)[0])


if __name__ == "__main__":
    sys.exit(main())
