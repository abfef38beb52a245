"""Same-host cameras: camera -> `track` latency with the pixels in shared memory vs over TCP, next to a
memcpy of the same frame, all measured in the same run (pass-through engine, `--policy latest`).

    python benchmarks/shm_overhead.py                      # 4096² at 25 fps and 1024² at 100 fps, 20 s each
    python benchmarks/shm_overhead.py --seconds 10 --rounds 1 --json shm.json

The camera is a separate process with the project's FrameSender, which copies each frame once: into the
message (TCP) or into a ring slot (shared memory). The engine reads a slot in place (no copy). The
floor is `np.copyto` of one frame into a preallocated array of the same size (median of 50). Goal
(docs/architecture.md): 4096² camera -> `track` p50 within 3× that memcpy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import TABLE_HEADER, Summary, dump_json, machine, start_camera

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.subscriber import Subscriber


def memcpy_s(shape: tuple[int, int], repeats: int = 50) -> list[float]:
    """Seconds per copy of one uint16 frame of ``shape`` into a preallocated array."""
    src = np.random.default_rng(0).integers(0, 4096, size=shape).astype(np.uint16)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch of the destination's pages
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return times


STAGES = ("camera->track", "camera->daemon", "daemon processing", "daemon->subscriber")


def camera_to_track(
    shape: tuple[int, int], fps: float, frames: int, shm_slots: int
) -> tuple[dict[str, Summary], dict[str, Any]]:
    """Latency per stage (the daemon's receipt time is stamped before it reads a ring slot)."""
    with DaemonProcess("--engine", "passthrough", "--policy", "latest", "--preview", "none") as daemon:
        with ControlClient(daemon.control) as control:
            for k in range(3):  # three objects per result, as in overhead.py
                control.add_object(box=[100 + 50 * k, 100, 120 + 50 * k, 120])
        stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        with Subscriber(daemon.publish, topics=("track",)) as sub:
            assert sub.wait_connected(10)
            camera, go = start_camera(daemon.ingest, shape, fps, frames, shm_slots=shm_slots)
            go.set()
            while len(stages["camera->track"]) < frames and (received := sub.recv(3.0)) is not None:
                lat = received.latency()
                for stage, value in zip(STAGES, (lat.total_s, lat.camera_to_daemon_s, lat.processing_s,
                                                 lat.daemon_to_client_s), strict=True):  # fmt: skip
                    stages[stage].append(value)
            camera.join()
        with ControlClient(daemon.control) as control:
            status = control.status()
    counts = {"received": status.frames_received, "dropped": status.frames_dropped,
              "rejected": sum(status.frames_rejected.values()),
              "results": len(stages["camera->track"])}  # fmt: skip
    return {stage: Summary.of(v) for stage, v in stages.items()}, counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per transport and size, s (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; transports alternate (default 2)")
    parser.add_argument("--slots", type=int, default=8, help="ring slots (default 8)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(TABLE_HEADER + "   dropped rejected")
    rows: list[dict[str, Any]] = []
    for side, fps in ((4096, 25.0), (1024, 100.0)):
        shape = (side, side)
        frames = round(args.seconds * fps)
        for k in range(args.rounds):
            floor = Summary.of(memcpy_s(shape))
            print(floor.row(f"{side}² memcpy (round {k})"))
            rows.append({"size": side, "fps": fps, "round": k, "what": "memcpy", "summary": floor})
            for transport, slots in (("tcp", 0), ("shm", args.slots)):
                summaries, counts = camera_to_track(shape, fps, frames, slots)
                for stage, summary in summaries.items():
                    extra = f" {counts['dropped']:>9} {counts['rejected']:>8}" if stage == STAGES[0] else ""
                    print(summary.row(f"{side}² {transport} {stage}") + extra, flush=True)
                rows.append({"size": side, "fps": fps, "round": k, "what": transport, "stages": summaries,
                             **counts})  # fmt: skip
    dump_json(args.json, {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
