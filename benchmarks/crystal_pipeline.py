"""The crystal through the whole pipeline, as a user runs it, against the scene's truth.

    python benchmarks/crystal_pipeline.py                 # 1000 frames at 25 fps
    python benchmarks/crystal_pipeline.py --frames 2000 --json pipeline.json

`lptem sim --preset crystal` (7 x 7 cubes of 22 px, 5 px gaps, 1024², each held at its site: 1 px s.d.
per axis, 0.8 of the offset kept per frame; rocking 10° s.d., 0.9 kept) streams to `lptem serve
--auto-detect -E symmetry=4 --record` (no size given), then `lptem analyze --trapped --symmetry 4` fits each
cube's trap. Truth from the scene's parameters: the spring constant k = k_BT / (1 px)² and
D_r = σ_θ² (1 − 0.9²) / (2 Δt). The camera runs at 25 fps so that the daemon (about 30 fps with 49 cubes
on 2 cores) keeps up with the queue policy; the simulated physics is per frame, so Δt = 40 ms.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import dump_json, machine

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.engine.sim.scenes import Crystal

PIXEL_NM = 0.5
SCENE = ("--pixel-size-nm", f"{PIXEL_NM}", "--liquid-nm", "5", "--width-nm", "11", "--gap-nm", "2.5")
"""The crystal of benchmarks/accuracy.py --scene crystal: 22 px cubes, 5 px gaps, 5 nm of liquid."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--fps", type=float, default=25.0, help="camera rate, frames/s (default %(default)s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lptem = str(Path(sys.executable).with_name("lptem"))
    scene = Crystal()  # jiggle and rocking at the preset's defaults
    dt = 1.0 / args.fps
    k_true = 1.0 / (scene.jiggle_px * PIXEL_NM) ** 2
    keep = 1.0 - scene.rocking_relaxation
    d_r_true = math.radians(scene.rocking_deg) ** 2 * (1 - keep**2) / (2 * dt)
    with tempfile.TemporaryDirectory() as tmp:
        record, out = Path(tmp) / "rec", Path(tmp) / "analysis"
        serve = ("--engine", "classical", "--auto-detect", "-E", "symmetry=4", "--policy", "queue",
                 "--record", str(record))  # fmt: skip
        t0 = time.perf_counter()
        with DaemonProcess(*serve) as daemon:
            sim = [
                lptem,
                "sim",
                "--preset",
                "crystal",
                "--ingest",
                daemon.ingest,
                "--frames",
                str(args.frames),
                "--fps",
                f"{args.fps:g}",
                "--no-progress",
                *SCENE,
            ]
            subprocess.run(sim, check=True)
            with ControlClient(daemon.control) as control:
                while (status := control.status()).frames_processed < args.frames:
                    time.sleep(0.2)
        print(f"streamed and tracked {args.frames} frames in {time.perf_counter() - t0:.0f} s; "
              f"dropped {status.frames_dropped}; engine {status.extra.get('engine_settings')}")  # fmt: skip
        analyze = [
            lptem,
            "analyze",
            str(record),
            "--trapped",
            "--symmetry",
            "4",
            "--no-figures",
            "--out",
            str(out),
        ]
        subprocess.run(analyze, check=True)
        fits = pd.read_csv(out / "trap_fits.csv")
    k, d_r = float(fits["k_kT_per_nm2"].median()), float(fits["D_r_rad2_per_s"].median())
    print(f"\nmachine: {machine()}\n{len(fits)} cubes analysed")
    print(f"spring constant: {k:.3f} kT/nm² (truth {k_true:.3f}; {100 * (k / k_true - 1):+.1f} %)")
    print(f"rotational D_r:  {d_r:.4f} rad²/s (truth {d_r_true:.4f}; {100 * (d_r / d_r_true - 1):+.1f} %)")
    print(f"localisation noise (median): {fits['noise_sd_nm'].median():.3f} nm, "
          f"{fits['noise_theta_deg'].median():.2f}°")  # fmt: skip
    dump_json(args.json, {"machine": machine(), "frames": args.frames, "fps": args.fps, "cubes": len(fits),
                          "k": k, "k_true": k_true, "D_r": d_r, "D_r_true": d_r_true})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
