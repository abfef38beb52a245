"""Classical engine speed at 1024^2: 10 particles, and the 7 x 7 crystal of cubes; trackpy.locate alongside.

    python benchmarks/classical.py                # primitives, engine alone, and through the daemon
    python benchmarks/classical.py --frames 2000 --json classical.json

1. Primitives: OpenCV vs scipy.ndimage / scikit-image for the operations the engine needs (why OpenCV).
2. Engine alone: ClassicalTracker.step in one thread (OpenCV may use both cores inside a call), with
   trackpy.locate on the same frames as the peer (a detector only, no linking: a floor for "find the
   particles in a frame" in the field's standard tool).
3. Through the daemon: `lptem serve --auto-detect --policy queue` (no size given: the engine estimates
   it) fed as fast as it accepts frames by a camera process; throughput = processed frames / time between
   the first receipt and the last result. Targets on 2 cores: >= 80 fps with 10 particles (uint16 blobs,
   docs/architecture.md), >= 50 fps with the crystal (uint8, the simulator's `lptem sim --preset crystal`,
   with `-E symmetry=4`).
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
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Simulator
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


def engine_alone(frames: list[np.ndarray[Any, Any]], repeat: int, **options: Any) -> Summary:
    tracker = ClassicalTracker(ClassicalConfig(auto_detect=True, **options))
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        tracker.step(frames[i % len(frames)])
        samples.append(time.perf_counter() - t0)
    return Summary.of(samples[len(frames) :])  # skip the warm-up / confirmation frames


def trackpy_locate(frames: list[np.ndarray[Any, Any]], diameter: int, repeat: int) -> Summary:
    """trackpy.locate (numba engine when available: its fastest) on dark particles, per frame."""
    import trackpy as tp  # noqa: PLC0415 - a dev dependency, only for this peer

    tp.quiet()
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        tp.locate(frames[i % len(frames)], diameter, invert=True)
        samples.append(time.perf_counter() - t0)
    return Summary.of(samples[1:])


def crystal_frames(size: int, count: int) -> list[np.ndarray[Any, Any]]:
    """The 7 x 7 crystal of 22 px cubes, 5 px gaps (the `lptem sim --preset crystal` defaults)."""
    sim = Simulator(Crystal().config(frame=(size, size)), seed=0)
    return [sim.next().image for _ in range(count)]


def through_daemon(n_frames: int, movie_path: Path, *engine_args: str) -> dict[str, Any]:
    args = ("--engine", "classical", "--auto-detect", "--policy", "queue", *engine_args)
    with DaemonProcess(*args) as daemon:
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
        "engine_settings": status.extra.get("engine_settings", {}),
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
    print(f"{args.size}x{args.size}: {args.particles} particles (uint16); crystal of 7 x 7 cubes (uint8)\n")
    print(TABLE_HEADER)
    prims = primitives(frames[0], max(20, args.repeat // 5))
    for label, summary in prims.items():
        print(summary.row(label))
    crystal = crystal_frames(args.size, 16)
    alone = engine_alone(frames, args.repeat)
    print(alone.row("engine alone: ClassicalTracker.step"))
    peer = trackpy_locate(frames, 13, max(20, args.repeat // 5))
    print(peer.row("peer: trackpy.locate (d 13)"))
    alone_crystal = engine_alone(crystal, args.repeat, symmetry=4)
    print(alone_crystal.row("crystal: ClassicalTracker.step"))
    peer_crystal = trackpy_locate(crystal, 23, max(20, args.repeat // 5))
    print(peer_crystal.row("crystal: trackpy.locate (d 23)"))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, movie_frames, extra in (
            ("particles", frames, ()),
            ("crystal", crystal, ("-E", "symmetry=4")),
        ):
            movie_path = Path(tmp) / f"{name}.npy"
            np.save(movie_path, np.stack(movie_frames))
            runs[name] = through_daemon(args.frames, movie_path, *extra)
            print(runs[name]["receipt_to_result"].row(f"daemon, {name}: receipt -> result"))
    for label, one, packed in (
        ("engine alone", alone, alone_crystal),
        ("trackpy.locate alone", peer, peer_crystal),
    ):
        print(f"{label}: {1e3 / one.p50_ms:.0f} fps (10 particles), {1e3 / packed.p50_ms:.0f} fps (crystal)")
    for name, target in (("particles", 80), ("crystal", 50)):
        r = runs[name]
        print(
            f"through the daemon, {name}: {r['fps']:.1f} fps over {r['frames']} frames ({r['objects']} "
            f"objects tracked, {r['dropped']} dropped; {r['engine_settings']}; target >= {target} fps)"
        )
    speedup = prims["gaussian s=4: ndimage.gaussian"].p50_ms / prims["gaussian s=4: cv2.GaussianBlur"].p50_ms
    print(f"OpenCV's Gaussian is {speedup:.1f}x faster than scipy.ndimage's here")
    dump_json(args.json, {"machine": machine(), "primitives": prims, "engine_alone": alone,
                          "engine_alone_crystal": alone_crystal, "trackpy_locate": peer,
                          "trackpy_locate_crystal": peer_crystal, "daemon": runs})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
