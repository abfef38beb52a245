"""Rolling MSD update cost per particle per frame (target <= 20 µs), for 1, 10 and 100 particles.

    python benchmarks/msd.py
    python benchmarks/msd.py --particles 1 10 100 1000 --window 256 --lags 32 --json msd.json

Each row pushes Brownian positions frame by frame (every 10th position missing, as a gap) and times
every push. Rows, per particle count:

* ``rolling``: RollingMSD.push, the O(L) update the daemon runs on every frame;
* ``live``: the daemon's hook, LiveStatistics.add (message fields to dict, forget/restart checks, push);
* ``batch``: recomputing the same window directly (lptem.engine.msd.msd per particle), the O(W·L) cost the
  incremental update avoids; it runs on fewer frames;
* ``floor``: one numpy add of an (particles, lags) array in place: the smallest numpy call per frame.

Medians and p99 are per push; the figure "µs/particle" is the median of the per-run medians of
push time divided by the particle count, over ``--runs`` repeated runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import Summary, dump_json, machine

from lptem.engine.msd import RollingMSD, lag_set, msd
from lptem.service.protocol import TrackedObject, TrackMessage
from lptem.service.statistics import LiveStatistics, MsdSettings

Step = Callable[[int], None]


def walks(particles: int, frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = np.cumsum(rng.normal(0, 1.0, size=(frames, particles, 2)), axis=0)
    xy[rng.random((frames, particles)) < 0.1] = np.nan
    return xy


def rolling_step(xy: np.ndarray, window: int, lags: int) -> Step:
    rolling = RollingMSD(window, lags)
    seen = [
        {p: (float(x), float(y)) for p, (x, y) in enumerate(row) if np.isfinite(x)} for row in xy
    ]  # built outside the timing: this row times push alone

    def step(frame: int) -> None:
        rolling.push(frame, frame * 0.02, seen[frame])

    return step


def live_step(xy: np.ndarray, window: int, lags: int) -> Step:
    live = LiveStatistics(MsdSettings(window=window, max_lag=lags, rate_hz=0))
    messages = [_track(frame, xy[frame]) for frame in range(len(xy))]

    def step(frame: int) -> None:
        live.add(messages[frame])

    return step


def _track(frame: int, row: np.ndarray) -> TrackMessage:
    objects = tuple(
        TrackedObject(p + 1, float(x), float(y), 0.0, 50.0, 1.0, bool(np.isfinite(x)), (0, 0, 1, 1))
        for p, (x, y) in enumerate(row)
    )
    return TrackMessage(frame, 0, frame * 20_000_000, 0, 0, "bench", 0, objects)


def batch_step(xy: np.ndarray, window: int, lags: int) -> Step:
    def step(frame: int) -> None:
        recent = xy[max(0, frame + 1 - window) : frame + 1]
        for p in range(xy.shape[1]):
            msd(recent[:, p], lags)

    return step


def floor_step(xy: np.ndarray, window: int, lags: int) -> Step:  # noqa: ARG001 - same signature as the rest
    sums = np.zeros((xy.shape[1], len(lag_set(lags))))
    ones = np.ones_like(sums)

    def step(frame: int) -> None:  # noqa: ARG001
        np.add(sums, ones, out=sums)

    return step


def time_run(step: Step, frames: int, warmup: int) -> list[float]:
    for frame in range(warmup):
        step(frame)
    samples = []
    for frame in range(warmup, warmup + frames):
        t0 = time.perf_counter()
        step(frame)
        samples.append(time.perf_counter() - t0)
    return samples


ROWS: dict[str, Callable[[np.ndarray, int, int], Step]] = {
    "rolling": rolling_step,
    "live": live_step,
    "batch": batch_step,
    "floor": floor_step,
}


def measure(kind: str, particles: int, args: argparse.Namespace) -> tuple[Summary, float]:
    """All pushes of all runs, and the median over runs of (median push time / particles), µs."""
    frames = args.frames if kind != "batch" else max(50, args.frames // 20)
    warmup = args.window + 10  # the window is full: frames leave it on every push
    samples, per_particle = [], []
    for run in range(args.runs):
        xy = walks(particles, warmup + frames, seed=run)
        run_samples = time_run(ROWS[kind](xy, args.window, args.lags), frames, warmup)
        samples += run_samples
        per_particle.append(float(np.median(run_samples)) / particles * 1e6)
    return Summary.of(samples), float(np.median(per_particle))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--particles", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--window", type=int, default=256, help="frames (default %(default)s)")
    parser.add_argument("--lags", type=int, default=32, help="lags 1..L (default %(default)s)")
    parser.add_argument("--frames", type=int, default=4000, help="timed pushes per run (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="repeated runs (default %(default)s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"window {args.window} frames, lags 1..{args.lags}, 10 % gaps, {args.runs} runs\n")
    print(f"{'':<24} {'pushes':>7} {'p50/µs':>9} {'p99/µs':>9} {'max/µs':>9} {'µs/particle':>12}")
    results = {}
    for particles in args.particles:
        for kind in ROWS:
            summary, per_particle = measure(kind, particles, args)
            label = f"{kind}, {particles} particles"
            results[label] = {"summary": summary, "us_per_particle": per_particle}
            figures = (summary.p50_ms * 1e3, summary.p99_ms * 1e3, summary.max_ms * 1e3)
            print(f"{label:<24} {summary.n:>7} " + " ".join(f"{v:9.2f}" for v in figures), end="")
            print(f" {per_particle:12.2f}", flush=True)
        print()
    dump_json(
        args.json, {"machine": machine(), "args": {**vars(args), "json": str(args.json)}, "results": results}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
