"""Classical engine speed at 1024^2 uint16 with 10 particles.

    python benchmarks/classical.py                # primitives, engine alone, and through the daemon
    python benchmarks/classical.py --frames 2000 --json classical.json

1. Primitives: OpenCV vs scipy.ndimage / scikit-image for the operations the engine needs (why OpenCV).
2. Engine alone: ClassicalTracker.step in one thread (OpenCV may use both cores inside a call).
3. Through the daemon: `lptem serve --policy queue` fed as fast as it accepts frames by a camera process;
   throughput = processed frames / time between the first receipt and the last result (target >= 80 fps
   on 2 cores, docs/architecture.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.ndimage as ndi
from _common import TABLE_HEADER, Summary, dump_json, machine, start_camera

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.classical import ClassicalConfig, ClassicalTracker
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig


def timed(fn: Callable[[], object], repeat: int) -> Summary:
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Summary.of(samples)


def primitives(frame: np.ndarray[Any, Any], repeat: int) -> dict[str, Summary]:
    from skimage.measure import label  # noqa: PLC0415 - a dev dependency, only for this comparison

    image = frame.astype(np.float32)
    mask = (cv2.GaussianBlur(image, (25, 25), 4) < image.mean() - 100).view(np.uint8)
    return {
        "gaussian s=4: cv2.GaussianBlur": timed(lambda: cv2.GaussianBlur(image, (25, 25), 4), repeat),
        "gaussian s=4: ndimage.gaussian": timed(lambda: ndi.gaussian_filter(image, 4, truncate=3), repeat),
        "labels: cv2.connectedComponents": timed(
            lambda: cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U), repeat
        ),
        "labels: ndimage.label": timed(lambda: ndi.label(mask, np.ones((3, 3))), repeat),
        "labels: skimage.measure.label": timed(lambda: label(mask, connectivity=2), repeat),
    }


def engine_alone(frames: list[np.ndarray[Any, Any]], repeat: int) -> Summary:
    tracker = ClassicalTracker(ClassicalConfig(auto_detect=True))
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        tracker.step(frames[i % len(frames)])
        samples.append(time.perf_counter() - t0)
    return Summary.of(samples[len(frames) :])  # skip the warm-up / confirmation frames


def through_daemon(n_frames: int, movie_path: Path) -> dict[str, Any]:
    with DaemonProcess("--engine", "classical", "--auto-detect", "--policy", "queue") as daemon:
        with Subscriber(daemon.publish) as sub:
            assert sub.wait_connected(10)
            camera, go = start_camera(daemon.ingest, str(movie_path), None, n_frames)
            go.set()
            first_recv = last_done = None
            processing = []
            n = 0
            while n < n_frames and (r := sub.recv(5.0)) is not None:
                t = r.message
                first_recv = t.t_recv_ns if first_recv is None else first_recv
                last_done = t.t_done_ns
                processing.append((t.t_done_ns - t.t_recv_ns) / 1e9)
                n += 1
            camera.join()
        with ControlClient(daemon.control) as control:
            status = control.status()
    elapsed = (last_done - first_recv) / 1e9 if n > 1 and first_recv and last_done else float("nan")
    return {
        "frames": n,
        "fps": (n - 1) / elapsed,
        "elapsed_s": elapsed,
        "objects": len(status.objects),
        "dropped": status.frames_dropped,
        "receipt_to_result": Summary.of(processing),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1000, help="frames through the daemon")
    parser.add_argument("--repeat", type=int, default=200, help="repetitions for the in-process timings")
    parser.add_argument("--particles", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shape = (args.size, args.size)
    movie = BlobMovie(BlobMovieConfig(shape=shape, n_blobs=args.particles, motion="brownian"), 16)
    frames = [movie.frame(i) for i in range(16)]
    print(f"machine: {machine()}  (cv2 threads: {cv2.getNumThreads()})")
    print(f"{args.size}x{args.size} uint16, {args.particles} particles\n")
    print(TABLE_HEADER)
    prims = primitives(frames[0], max(20, args.repeat // 5))
    for label, summary in prims.items():
        print(summary.row(label))
    alone = engine_alone(frames, args.repeat)
    print(alone.row("engine alone: ClassicalTracker.step"))
    with tempfile.TemporaryDirectory() as tmp:
        movie_path = Path(tmp) / "movie.npy"
        np.save(movie_path, np.stack(frames))
        daemon = through_daemon(args.frames, movie_path)
    print(daemon["receipt_to_result"].row("daemon: receipt -> result"))
    print(f"\nengine alone: {1e3 / alone.p50_ms:.0f} fps at the median step time")
    print(
        f"through the daemon: {daemon['fps']:.1f} fps over {daemon['frames']} frames "
        f"({daemon['objects']} objects tracked, {daemon['dropped']} dropped; target >= 80 fps)"
    )
    speedup = prims["gaussian s=4: ndimage.gaussian"].p50_ms / prims["gaussian s=4: cv2.GaussianBlur"].p50_ms
    print(f"OpenCV's Gaussian is {speedup:.1f}x faster than scipy.ndimage's here")
    dump_json(args.json, {"machine": machine(), "primitives": prims, "engine_alone": alone, "daemon": daemon})
    return 0


if __name__ == "__main__":
    sys.exit(main())
