"""Per-frame time and memory of the daemon before and after hostile control requests (docs/protocol.md §5).

    python benchmarks/hostile.py                 # 1024² uint16 at 50 fps, 15 s before and 15 s after
    python benchmarks/hostile.py --seconds 30 --json hostile.json

`lptem serve --engine classical` tracks 4 prompted blobs while a paced camera streams; between the two
stages a third party sends what issue 14 measured as harmful on main 41322a8: a 10-million-point prompt
(60 MB, dropped unread by ZeroMQ's MAXMSGSIZE), a 60 MB request, a box of 1e12 px before the first frame
and 257 add_object commands. The daemon's processing time per frame (receipt -> result, from each
`track`) and its RSS are printed for both stages, next to each other: the requests must cost nothing
afterwards (before the fix: 3-4 s per frame and +340 MB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq
from _common import TABLE_HEADER, Summary, dump_json, machine, start_camera

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stage(daemon: DaemonProcess, movie: Path, fps: float, seconds: float) -> Summary:
    """Stream ``seconds`` of frames; the processing time of every result, s."""
    n_frames = round(fps * seconds)
    processing: list[float] = []
    with Subscriber(daemon.publish) as sub:
        assert sub.wait_connected(10)
        camera, go = start_camera(daemon.ingest, str(movie), fps, n_frames)
        go.set()
        while (received := sub.recv(3.0)) is not None and len(processing) < n_frames:
            processing.append(received.latency().processing_s)
        camera.join()
    return Summary.of(processing)


def hostile(control_endpoint: str) -> list[str]:
    """Send the requests; what the daemon answered to each (or that it dropped it unread)."""
    outcomes = []
    for label, payload in (
        ("10-million-point prompt", {"cmd": "add_object", "points": [[1.0, 2.0, 1]] * 10_000_000}),
        ("60 MB request", {"cmd": "add_object", "box": [0, 0, 1, 1], "pad": b"x" * 60_000_000}),
    ):
        with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(control_endpoint)
            t0 = time.perf_counter()
            sock.send(msgpack.packb(payload))
            answered = sock.poll(2000)
            outcomes.append(
                f"{label}: {'answered' if answered else 'dropped unread'} ({time.perf_counter() - t0:.2f} s)"
            )
    with ControlClient(control_endpoint, timeout_s=5.0) as control:
        for label, request in (
            ("box of 1e12 px", lambda: control.add_object(box=[0, 0, 1e12, 1e12])),
            ("257th object", lambda: [control.add_object(box=[10, 10, 20, 20]) for _ in range(300)]),
        ):
            try:
                request()
                outcomes.append(f"{label}: accepted")
            except ControlError as exc:
                outcomes.append(f"{label}: refused ({str(exc)[:70]})")
        control.reset()
    return outcomes


def prompt(control_endpoint: str, blobs: BlobMovie) -> None:
    """One box prompt per blob, from its position in frame 0."""
    with ControlClient(control_endpoint) as control:
        for blob in range(blobs.config.n_blobs):
            b = blobs.box(0, blob)
            control.add_object(box=[b.x0, b.y0, b.x1, b.y1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="each stage, s")
    parser.add_argument("--fps", type=float, default=50.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    blobs = BlobMovie(BlobMovieConfig(shape=(1024, 1024), n_blobs=4, radius_px=8.0), 50)
    with DaemonProcess("--engine", "classical", "-E", "particle_radius_px=8", "--policy", "queue") as daemon:
        movie = Path(daemon.ready_file).with_name("movie.npy")
        np.save(movie, np.stack([frame for _, frame in blobs.frames()]))
        prompt(daemon.control, blobs)
        before = stage(daemon, movie, args.fps, args.seconds)
        rss_before = rss_mib(daemon.pid)
        outcomes = hostile(daemon.control)
        prompt(daemon.control, blobs)
        after = stage(daemon, movie, args.fps, args.seconds)
        rss_after = rss_mib(daemon.pid)
    print("\n".join(outcomes))
    print(f"\nprocessing per frame (receipt -> result), 1024² uint16, {args.fps:g} fps\n{TABLE_HEADER}")
    print(before.row("before the hostile requests"))
    print(after.row("after them"))
    print(f"daemon RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after")
    dump_json(args.json, {"machine": machine(), "before": before, "after": after, "outcomes": outcomes,
                          "rss_mib": [rss_before, rss_after]})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
