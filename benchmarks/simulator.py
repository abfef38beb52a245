"""Simulator speed: frames per second at 1024^2 on one core (target >= 100 frames/s, fast renderer).

    python benchmarks/simulator.py
    python benchmarks/simulator.py --size 2048 --particles 4 16 --json sim.json

OpenCV is restricted to one thread (numpy's FFT is single-threaded), so the figure is per core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
from _common import TABLE_HEADER, Summary, dump_json, machine

from lptem.engine.sim.simulator import Particles, SimConfig, Simulator


def measure(noise: str, count: int, size: int, frames: int, with_labels: bool) -> Summary:
    sim = Simulator(SimConfig(shape=(size, size), noise=noise, particles=Particles(count=count)), seed=0)  # type: ignore[arg-type]
    for _ in range(3):
        sim.next(want_labels=with_labels)
    samples = []
    for _ in range(frames):
        t0 = time.perf_counter()
        sim.next(want_labels=with_labels)
        samples.append(time.perf_counter() - t0)
    return Summary.of(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--particles", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"machine: {machine()}; one core (cv2 threads = {cv2.getNumThreads()})")
    print(f"{args.size}^2 uint8 frames, default particles ({Particles().width_nm:g} nm)\n")
    print(TABLE_HEADER + f" {'fps':>7}")
    results = {}
    for noise in ("fast", "exact"):
        for count in args.particles:
            for labels in (False, True):
                frames = args.frames if noise == "fast" else max(10, args.frames // 10)
                summary = measure(noise, count, args.size, frames, labels)
                label = f"{noise}, {count} particles" + (", + labels" if labels else "")
                results[label] = summary
                print(summary.row(label) + f" {1e3 / summary.p50_ms:7.1f}", flush=True)
    dump_json(
        args.json, {"machine": machine(), "args": {**vars(args), "json": str(args.json)}, "results": results}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
