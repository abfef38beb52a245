"""Hard real time: frames lost to the daemon's own runtime pauses, with `--policy latest`.

    python benchmarks/realtime.py                          # 3 runs × 14 000 frames per engine and GC mode
    python benchmarks/realtime.py --frames 3000 --runs 1 --engines passthrough
    python benchmarks/realtime.py --json realtime.json

A paced camera process sends 1024² uint16 frames at 100 fps to `lptem serve --policy latest` (a 2-frame
queue: any stall over ~20 ms drops frames). Per run: frames dropped by the daemon, the longest gap between
consecutive results at the subscriber, and the daemon's garbage collections (count and longest pause per
generation, from its `lptem_gc_pause_seconds` metrics). Each engine runs with `--gc freeze` (the default:
start-up objects frozen out of collection) and `--gc default` (Python's behaviour) in the same session.
The classical engine tracks 10 simulated particles (a 200-frame movie, cycled).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from _common import dump_json, machine, start_camera
from prometheus_client.parser import text_string_to_metric_families

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator
from lptem.service.protocol import TrackMessage


def particle_movie(folder: Path, size: int, frames: int = 200) -> str:
    """A .npy movie of 10 diffusing gold particles (9.3 nm, 37 px; uint16), for the classical engine."""
    config = SimConfig(shape=(size, size), particles=Particles(count=10))
    sim = Simulator(config, seed=1)
    movie = np.stack([sim.next().image for _ in range(frames)]).astype(np.uint16)
    path = folder / "particles.npy"
    np.save(path, movie)
    return str(path)


def gc_pauses(metrics_port: int) -> dict[str, Any]:
    """Collections and the longest pause per generation, from the daemon's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            generation = sample.labels.get("generation")
            if sample.name == "lptem_gc_pause_seconds_count":
                out[f"gen{generation}_collections"] = int(sample.value)
            elif sample.name == "lptem_gc_longest_pause_seconds":
                out[f"gen{generation}_longest_ms"] = round(sample.value * 1e3, 2)
    return out


def one_run(
    engine: str, gc_mode: str, source: str | tuple[int, int], fps: float, frames: int
) -> dict[str, Any]:
    metrics_port = _free_port()
    options = ["--auto-detect", "-E", "particle_radius_px=18"] if engine == "classical" else []
    with DaemonProcess(
        "--engine", engine, "--policy", "latest", "--gc", gc_mode, "--metrics-port", str(metrics_port),
        "--preview", "none", *options,
    ) as daemon:  # fmt: skip
        if engine == "passthrough":
            with ControlClient(daemon.control) as control:  # three objects per result, as in overhead.py
                for k in range(3):
                    control.add_object(box=[100 + 50 * k, 100, 120 + 50 * k, 120])
        arrivals: list[float] = []
        with Subscriber(daemon.publish, topics=("track",)) as sub:
            assert sub.wait_connected(10)
            camera, go = start_camera(daemon.ingest, source, fps, frames)
            go.set()
            while (received := sub.recv(3.0)) is not None:
                if isinstance(received.message, TrackMessage):
                    arrivals.append(time.monotonic())
                    if received.message.frame >= frames - 1:
                        break
            camera.join()
        with ControlClient(daemon.control) as control:
            status = control.status()
        pauses = gc_pauses(metrics_port)
    gaps = np.diff(arrivals) * 1e3 if len(arrivals) > 1 else np.array([float("nan")])
    return {
        "engine": engine,
        "gc": gc_mode,
        "frames": frames,
        "received": status.frames_received,
        "dropped": status.frames_dropped,
        "results": len(arrivals),
        "longest_gap_ms": round(float(gaps.max()), 1),
        "gap_p99_ms": round(float(np.percentile(gaps, 99)), 2),
        **pauses,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


COLUMNS = ("dropped", "longest_gap_ms", "gap_p99_ms", "gen0_collections", "gen1_collections",
           "gen2_collections", "gen0_longest_ms", "gen1_longest_ms", "gen2_longest_ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=14_000, help="frames per run (default %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per engine and GC mode (default %(default)s)"
    )
    parser.add_argument(
        "--fps", type=float, default=100.0, help="camera rate, frames/s (default %(default)s)"
    )
    parser.add_argument("--size", type=int, default=1024, help="frame side, px (default %(default)s)")
    parser.add_argument("--engines", default="passthrough,classical", help="comma-separated")
    parser.add_argument("--gc", default="freeze,default", help="GC modes to compare, comma-separated")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{args.size}² uint16 at {args.fps:g} fps, --policy latest, {args.frames} frames per run")
    print(f"{'engine':<12} {'gc':<8} {'run':>3} " + " ".join(f"{c:>16}" for c in COLUMNS))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lptem-realtime-") as tmp:
        for engine in args.engines.split(","):
            source: str | tuple[int, int] = (args.size, args.size)
            if engine == "classical":
                source = particle_movie(Path(tmp), args.size)
            for run in range(args.runs):
                for gc_mode in args.gc.split(","):  # interleaved, so that drifts of the machine hit both
                    row = one_run(engine, gc_mode, source, args.fps, args.frames)
                    rows.append(row)
                    figures = " ".join(f"{row.get(c, '-')!s:>16}" for c in COLUMNS)
                    print(f"{engine:<12} {gc_mode:<8} {run:>3} {figures}", flush=True)
    dump_json(args.json, {"machine": machine(), "args": vars(args) | {"json": str(args.json)}, "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
