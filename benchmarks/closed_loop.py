"""Closed loop on the simulated microscope: how far a drifting particle gets from the centre of the field
with the centring controller on and off (same seeds), over the real sockets.

    python benchmarks/closed_loop.py
    python benchmarks/closed_loop.py --seconds 60 --seeds 7 8 9 --send-fps 100 --json loop.json

Each run starts `lptem serve` (classical engine, automatic detection), streams the scenario of
clients/feedback/sim_loop.py (one 20 nm particle at the centre of a 256² field, 0.5 nm/px, 20 frames/s of
simulated time, drift 0.5 px/frame plus Brownian steps of 0.3 px) and measures the particle's true
distance from the centre in every frame. The frames are sent faster than real time (``--send-fps``), which
makes the loop's reaction slower in frames than at camera speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import dump_json, machine

from lptem.clients.feedback.loop import Limits
from lptem.clients.feedback.sim_loop import DriftScenario, daemon_arguments, run_centring
from lptem.clients.ops.daemon_process import DaemonProcess


def one_run(scenario: DriftScenario, controlled: bool, limits: Limits) -> dict[str, float]:
    with DaemonProcess(*daemon_arguments()) as daemon:
        t0 = time.perf_counter()
        run = run_centring(scenario, daemon.ingest, daemon.publish, controlled=controlled, limits=limits)
        wall = time.perf_counter() - t0
    offsets = run.offsets_px
    return {
        "frames": float(len(offsets)),
        "median_px": float(np.median(offsets)),
        "p99_px": float(np.percentile(offsets, 99)),
        "max_px": run.max_offset_px,
        "final_px": float(offsets[-1]),
        "actions": float(len(run.loop.actions)) if run.loop else 0.0,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated time per run, s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--send-fps", type=float, default=100.0)
    parser.add_argument("--min-interval-s", type=float, default=Limits().min_interval_s)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    limits = Limits(min_interval_s=args.min_interval_s)
    print(f"machine: {machine()}")
    print(
        f"{args.seconds:g} s simulated at 20 fps, sent at {args.send_fps:g} fps; distances in px (0.5 nm/px)"
    )
    columns = ("frames", "median", "p99", "max", "final", "actions", "wall/s")
    print(f"\n{'run':<22} " + " ".join(f"{c:>7}" for c in columns))
    results = {}
    for seed in args.seeds:
        scenario = DriftScenario(seconds=args.seconds, send_fps=args.send_fps, seed=seed)
        for controlled in (True, False):
            label = f"seed {seed}, control {'on' if controlled else 'off'}"
            r = one_run(scenario, controlled, limits)
            results[label] = r
            keys = ("frames", "median_px", "p99_px", "max_px", "final_px", "actions", "wall_s")
            cells = [f"{r[k]:>7.0f}" if k in ("frames", "actions") else f"{r[k]:>7.1f}" for k in keys]
            print(f"{label:<22} " + " ".join(cells), flush=True)
    dump_json(
        args.json, {"machine": machine(), "args": {**vars(args), "json": str(args.json)}, "results": results}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
