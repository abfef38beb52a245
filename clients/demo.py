"""``lptem demo``: the whole live loop on this machine, with a report against ground truth.

Starts the real daemon (``lptem serve``, classical engine, automatic detection, recording), streams a
synthetic movie of Brownian particles over the wire at camera speed, subscribes to the results, shows a
live line, then stops the daemon and scores its record against the movie's ground truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clients.daemon_process import DaemonProcess
from clients.progress import Progress
from clients.sender import FrameSender
from clients.subscriber import Received, Subscriber
from engine.scoring import score_tracks
from engine.synthetic import BlobMovie, BlobMovieConfig
from service.record import read_record

log = logging.getLogger("lptem.demo")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="movie length, s (default %(default)s)")
    parser.add_argument("--fps", type=float, default=50.0, help="camera frame rate (default %(default)s)")
    parser.add_argument("--particles", type=int, default=4, help="number of particles (default %(default)s)")
    parser.add_argument("--size", type=int, default=1024, help="frame side, px (default %(default)s)")
    parser.add_argument("--pixel-size-nm", type=float, default=0.5, help="pixel size (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--out", type=Path, help="output folder (default ./lptem-demo-<date>-<time>)")


class _Collector:
    """Collects client-side latencies from the ``track`` topic while the demo runs."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.frames = 0
        self.objects = 0
        self._lock = threading.Lock()

    def __call__(self, received: Received) -> None:
        with self._lock:
            self.latencies_s.append(received.latency().total_s)
            self.frames += 1
            self.objects = sum(o.visible for o in received.message.objects)

    def snapshot(self) -> tuple[int, int, float | None]:
        with self._lock:
            p50 = float(np.median(self.latencies_s[-200:])) * 1e3 if self.latencies_s else None
            return self.frames, self.objects, p50


def run_demo(args: argparse.Namespace) -> int:
    out = args.out or Path(time.strftime("lptem-demo-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, round(args.seconds * args.fps))
    config = BlobMovieConfig(
        shape=(args.size, args.size), n_blobs=args.particles, motion="brownian", step_px=1.5, seed=args.seed
    )
    movie = BlobMovie(config, n_frames)
    print(
        f"lptem demo: {args.particles} particles, {args.size}x{args.size} uint16, {n_frames} frames "
        f"at {args.fps:g} fps, results in {out}/"
    )
    serve_args = [
        "--engine",
        "classical",
        "--auto-detect",
        "--record",
        str(out / "record"),
        "--pixel-size-nm",
        str(args.pixel_size_nm),
    ]
    collector = _Collector()
    with DaemonProcess(*serve_args, log_file=out / "daemon.log") as daemon:
        with Subscriber(daemon.publish) as subscriber:
            subscriber.on("track", collector)
            subscriber.start()
            time.sleep(0.3)  # let the subscription reach the daemon before the first frame
            _stream(movie, daemon.ingest, args.fps, args.pixel_size_nm, collector)
            _wait_for_results(collector, n_frames)
        exit_code = daemon.stop()
    report = _report(out, movie, collector, args, exit_code)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    _truth_table(movie).to_csv(out / "truth.csv", index=False)
    print(_format_report(report))
    return 0 if exit_code == 0 else 1


def _stream(movie: BlobMovie, endpoint: str, fps: float, pixel_size_nm: float, collector: _Collector) -> None:
    progress = Progress(movie.n_frames, "sent")
    t0 = time.perf_counter()
    with FrameSender(endpoint, pixel_size_nm=pixel_size_nm) as camera:
        for i, frame in movie.frames():
            wait = t0 + i / fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            camera.send(frame)
            done, objects, p50 = collector.snapshot()
            note = f"processed {done}  objects {objects}  latency p50 " + (f"{p50:.1f} ms" if p50 else "-")
            progress.update(i + 1, note)
    progress.close()


def _wait_for_results(collector: _Collector, n_frames: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        done = collector.snapshot()[0]
        if done >= n_frames or done == last:  # everything arrived, or nothing more is coming
            return
        last = done
        time.sleep(0.5)


def _report(
    out: Path, movie: BlobMovie, collector: _Collector, args: argparse.Namespace, exit_code: int
) -> dict[str, Any]:
    record = read_record(out / "record")
    seen = record.tracks[record.tracks["visible"]]
    scores = score_tracks(
        seen["frame"].to_numpy(),
        seen["particle"].to_numpy(),
        seen[["x", "y"]].to_numpy(),
        movie.positions,
        max_distance_px=3 * movie.config.radius_px,
    )
    latencies = np.array(collector.latencies_s) * 1e3
    dropped = int(record.frames["dropped_total"].max()) if len(record.frames) else 0
    return {
        "frames_sent": movie.n_frames,
        "frames_processed": len(record.frames),
        "frames_dropped": dropped,
        "frames_lost_other": movie.n_frames - len(record.frames) - dropped,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies.size else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else None,
        "pixel_size_nm": args.pixel_size_nm,
        "particles_true": movie.config.n_blobs,
        "objects_tracked": len(scores),
        "objects": [{**asdict(s), "rmse_nm": s.rmse_px * args.pixel_size_nm} for s in scores],
        "identity_switches": sum(s.identity_switches for s in scores),
        "daemon_exit_code": exit_code,
        "record": str(out / "record"),
    }


def _truth_table(movie: BlobMovie) -> pd.DataFrame:
    n, k, _ = movie.positions.shape
    return pd.DataFrame(
        {
            "frame": np.repeat(np.arange(n), k),
            "particle": np.tile(np.arange(k), n),
            "x": movie.positions[:, :, 0].ravel(),
            "y": movie.positions[:, :, 1].ravel(),
        }
    )


def _format_report(r: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} ms"

    lines = [
        "",
        "== lptem demo report ==",
        f"frames     sent {r['frames_sent']}  processed {r['frames_processed']}"
        f"  dropped {r['frames_dropped']}  lost otherwise {r['frames_lost_other']}",
        f"latency    camera->subscriber p50 {ms(r['latency_ms_p50'])}  p99 {ms(r['latency_ms_p99'])}",
        f"objects    {r['objects_tracked']} tracked for {r['particles_true']} true particles;"
        f" identity switches {r['identity_switches']}",
        f"{'id':>4} {'truth':>6} {'frames':>7} {'RMSE/px':>8} {'RMSE/nm':>8} {'max/px':>7} {'switches':>8}",
    ]
    for o in r["objects"]:
        lines.append(
            f"{o['id']:>4} {o['truth']:>6} {o['frames']:>7} {o['rmse_px']:8.3f} {o['rmse_nm']:8.3f} "
            f"{o['max_error_px']:7.2f} {o['identity_switches']:>8}"
        )
    lines.append(f"record and exports: {r['record']}/")
    return "\n".join(lines)
