"""Memory of `lptem replay` on a large MRC movie (written with mrcfile): peak RSS of the replay process for a
short and a long movie of the same frames, so that growth with movie length shows (it should be none).

    python benchmarks/em_replay.py                       # 4096² uint16, 12 and 120 frames (3.8 GB)
    python benchmarks/em_replay.py --frames 400 --size 2048

Each movie is replayed into `lptem serve --engine passthrough --policy queue` (lossless) with `--drain`;
the replay's RSS is sampled every 50 ms and its peak read from /proc (VmHWM). The short movie (a tenth of
the frames) is the floor: bounded memory means the same peak for both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
from _common import machine

from lptem.clients.ops.daemon_process import DaemonProcess

LPTEM = str(Path(sys.executable).with_name("lptem"))


def write_movie(path: Path, frames: int, size: int) -> float:
    """An MRC movie of ``frames`` uint16 ``size``² frames (0.25 nm/px), written frame by frame; its GB."""
    with mrcfile.new_mmap(path, shape=(frames, size, size), mrc_mode=6, overwrite=True) as mrc:
        ramp = np.arange(size, dtype=np.uint16)
        for i in range(frames):
            mrc.data[i] = ramp[None, :] + np.uint16(i)
        mrc.voxel_size = 2.5  # Å
    return path.stat().st_size / 1e9


def replay_rss(path: Path) -> tuple[float, float, int]:
    """Peak RSS (MiB) of replaying ``path``, its last sampled RSS (MiB), frames drained."""
    with DaemonProcess("--engine", "passthrough", "--policy", "queue", "--preview", "none") as daemon:
        process = subprocess.Popen(
            [
                LPTEM,
                "replay",
                str(path),
                "--ingest",
                daemon.ingest,
                "--control",
                daemon.control,
                "--drain",
                "600",
                "--no-progress",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        samples = []
        status = Path(f"/proc/{process.pid}/status")
        peak = 0.0
        while process.poll() is None:
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
            except (FileNotFoundError, ProcessLookupError, ValueError):
                break
            if "VmRSS" not in fields:  # exited, not yet reaped
                break
            samples.append(int(fields["VmRSS"].split()[0]) / 1024)
            peak = max(peak, int(fields["VmHWM"].split()[0]) / 1024)
            time.sleep(0.05)
        out = process.communicate()[0]
    drained = int(out.split("drained: ")[1].split()[0]) if "drained: " in out else -1
    return peak, samples[-1] if samples else float("nan"), drained


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=120, help="frames of the long movie (default 120)")
    parser.add_argument("--size", type=int, default=4096, help="frame side, px (default 4096)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    frame_mib = args.size * args.size * 2 / 2**20
    print(f"{args.size}² uint16 frames ({frame_mib:.0f} MiB each); replay -> serve, passthrough, queue")
    print(f"{'movie':>14} {'file GB':>8} {'drained':>8} {'peak RSS':>9} {'last RSS':>9}  (MiB)")
    with tempfile.TemporaryDirectory(prefix="lptem-em-bench-") as tmp:
        for frames in (max(2, args.frames // 10), args.frames):
            path = Path(tmp) / f"movie_{frames}.mrc"
            size_gb = write_movie(path, frames, args.size)
            peak, last, drained = replay_rss(path)
            print(f"{frames:>7} frames {size_gb:8.2f} {drained:8d} {peak:9.0f} {last:9.0f}", flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
