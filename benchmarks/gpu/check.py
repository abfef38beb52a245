"""The GPU check: SAM 2 parity, speed and a live end-to-end run, in one command, within a time budget.

    bash benchmarks/gpu/check.sh OUT                 # on a GPU machine (after `make gpu-wheels` here)
    python benchmarks/gpu/check.py --out OUT --dry-run    # on a CPU: tiny model, 256², 2 frames

Steps, each recorded in OUT/check.json (figures, or the error and its traceback) and OUT/check.log:

1. **environment**: Python, torch, CUDA, the GPU, package versions.
2. **parity**: our streaming loop against the official sam2 predictor on the same seeded random model
   and simulated clip, in float32 and in bfloat16 autocast (both sides): the largest logit difference,
   the sign agreement and the worst mask IoU.
3. **speed**: ``benchmarks/sam2_engine.py`` at 1024² for Hiera tiny / small / base+ / large × 1 / 5 / 10
   objects, bfloat16, eager first, then ``torch.compile``, while the budget lasts (random weights: the
   speed does not depend on their values).
4. **live**: ``lptem serve --engine sam2 --device cuda`` fed by ``lptem sim`` at 50 fps for 30 s:
   latency camera → result (p50, p99) and frames dropped.

A step that fails is recorded and the next one runs; the exit status is 1 if any failed. Steps that the
budget (``--budget-s``, default 480) leaves no time for are recorded as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LPTEM = str(Path(sys.executable).with_name("lptem"))
MODELS = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l")
log = logging.getLogger("lptem.gpu-check")


@dataclass(frozen=True, slots=True)
class Plan:
    device: str
    image_size: int
    clip_frames: int
    bench_models: tuple[str, ...]
    bench_objects: tuple[int, ...]
    bench_frames: int
    bench_warmup: int
    compile_too: bool
    live_fps: float
    live_seconds: float
    live_size: int


GPU_PLAN = Plan("cuda", 1024, 18, MODELS, (1, 5, 10), 10, 8, True, 50.0, 30.0, 1024)
DRY_PLAN = Plan("cpu", 256, 2, ("sam2.1_hiera_t",), (1,), 2, 1, False, 5.0, 4.0, 256)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    @property
    def left_s(self) -> float:
        return self.end - time.monotonic()


def environment(plan: Plan) -> dict[str, Any]:
    import torch  # noqa: PLC0415 - the check reports a missing torch as a failed step

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "packages": {p: _version(p) for p in ("lptem-live", "sam2", "pyzmq", "hydra-core", "numpy", "scipy")},
    }
    if plan.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device: run with --dry-run on a CPU")
        memory = torch.cuda.get_device_properties(0).total_memory
        info |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                 "gpu_memory_gib": round(memory / 2**30, 1)}  # fmt: skip
    return info


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def parity(plan: Plan) -> dict[str, Any]:
    import torch  # noqa: PLC0415

    from lptem.engine.api import Prompt  # noqa: PLC0415
    from lptem.engine.sam2.models import build_model  # noqa: PLC0415
    from lptem.engine.sam2.predictor_parity import (  # noqa: PLC0415
        agreement,
        autocast_like,
        official_state,
        official_stream,
        stream_ours,
    )
    from lptem.engine.sam2.tracker import Sam2Config  # noqa: PLC0415

    device = torch.device(plan.device)
    frames, boxes = _clip(plan.clip_frames)
    model = build_model(
        "sam2.1_hiera_t", None, device, random_weights=True, image_size=min(plan.image_size, 512)
    )
    out: dict[str, Any] = {"model": "sam2.1_hiera_t, random weights seed 0", "frames": len(frames)}
    for precision, autocast in (("float32", False), ("bfloat16", True)):
        config = Sam2Config(device=plan.device, fill_hole_area=0, autocast=autocast)  # type: ignore[arg-type]
        prompts = {0: [(k, Prompt(box=b)) for k, b in boxes.items()]}
        ours, _ = stream_ours(model, frames, prompts, config)
        state = official_state(model, frames, config)
        theirs = official_stream(model, state, boxes, autocast_like(config, device))
        result = agreement(ours, theirs, sorted(boxes), tolerance=1e-4 if precision == "float32" else 1e-2)
        out[precision] = asdict(result)
        log.info("parity %s: %s", precision, result)
    return out


def _clip(frames: int) -> tuple[list[Any], dict[int, Any]]:
    """Two simulated particles (the parity tests' clip) and boxes around them on frame 0."""
    from lptem.engine.api import Box  # noqa: PLC0415
    from lptem.engine.sim.motion import Motion  # noqa: PLC0415
    from lptem.engine.sim.simulator import Particles, SimConfig, Simulator  # noqa: PLC0415

    config = SimConfig(
        shape=(192, 256), particles=Particles(count=2, width_nm=12.0), motion=Motion("brownian", sigma_px=2.0)
    )
    sim = Simulator(config, seed=3)
    clip = [sim.next(want_labels=True) for _ in range(frames)]
    labels = clip[0].truth.labels
    assert labels is not None
    boxes = {}
    for label in (1, 2):
        ys, xs = np.nonzero(labels == label)
        boxes[label] = Box(xs.min() - 3.0, ys.min() - 3.0, xs.max() + 3.0, ys.max() + 3.0)
    return [f.image for f in clip], boxes


def speed(plan: Plan, out: Path, budget: Budget) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    modes = ("eager", "compile") if plan.compile_too else ("eager",)
    for mode in modes:
        for model in plan.bench_models:
            if budget.left_s < 60 + plan.live_seconds:  # leave time for the live run
                runs.append({"model": model, "mode": mode, "skipped": "time budget"})
                continue
            json_path = out / f"speed-{model}-{mode}.json"
            command = [sys.executable, str(ROOT / "benchmarks" / "sam2_engine.py"), "--model", model,
                       "--sizes", str(plan.image_size), "--objects", *map(str, plan.bench_objects),
                       "--backends", "torch", "--device", plan.device, "--frames", str(plan.bench_frames),
                       "--warmup", str(plan.bench_warmup), "--json", str(json_path)]  # fmt: skip
            if mode == "compile":
                command.append("--compile")
            done = _run(command, out / "check.log", timeout_s=budget.left_s - plan.live_seconds - 45)
            entry: dict[str, Any] = {"model": model, "mode": mode, "returncode": done}
            if done == 0:
                entry["results"] = [
                    {k: r[k] for k in ("size", "objects", "frame_ms", "fps", "stages_ms", "peak_mb")}
                    for r in json.loads(json_path.read_text())["results"]
                ]
            runs.append(entry)
    failed = [r for r in runs if r.get("returncode", 0) != 0]
    if failed:
        raise RuntimeError(f"speed runs failed: {failed} (OUT/check.log has their output)")
    return {"precision": "bfloat16 autocast" if plan.device == "cuda" else "float32", "runs": runs}


def _run(command: list[str], log_file: Path, timeout_s: float) -> int:
    """Run ``command`` with its output appended to ``log_file``; its return code (124 on timeout)."""
    with log_file.open("a") as sink:
        sink.write(f"\n$ {' '.join(command)}\n")
        sink.flush()
        try:
            return subprocess.run(
                command, stdout=sink, stderr=sink, timeout=max(1.0, timeout_s), check=False
            ).returncode
        except subprocess.TimeoutExpired:
            sink.write(f"timed out after {timeout_s:.0f} s\n")
            return 124


def live(plan: Plan, out: Path) -> dict[str, Any]:
    from lptem.clients.ops.daemon_process import DaemonProcess  # noqa: PLC0415
    from lptem.clients.wire.control import ControlClient  # noqa: PLC0415
    from lptem.clients.wire.subscriber import Subscriber  # noqa: PLC0415
    from lptem.service.protocol import TrackMessage  # noqa: PLC0415

    frames = round(plan.live_fps * plan.live_seconds)
    serve = ["--engine", "sam2", "--device", plan.device, "--random-weights", "--model", "sam2.1_hiera_t",
             "--auto-detect", "--policy", "latest", "--preview", "none",
             "-E", f"image_size={plan.image_size}", "-E", "particle_radius_px=18"]  # fmt: skip
    latencies: list[float] = []
    sim_command = [LPTEM, "sim", "--microscope", "none", "--size", str(plan.live_size), "--particles", "4",
                   "--fps", str(plan.live_fps), "--frames", str(frames), "--no-progress"]  # fmt: skip
    with (
        DaemonProcess(*serve, log_file=out / "serve.log", startup_timeout_s=300) as daemon,
        Subscriber(daemon.publish, topics=("track",)) as sub,
        (out / "sim.log").open("w") as sim_log,
    ):
        assert sub.wait_connected(10)
        sim = subprocess.Popen(
            [*sim_command, "--ingest", daemon.ingest], stdout=subprocess.DEVNULL, stderr=sim_log
        )
        try:
            while (received := sub.recv(10.0)) is not None:
                if isinstance(received.message, TrackMessage):
                    latencies.append(received.latency().total_s)
                    if received.message.frame >= frames - 1:
                        break
        finally:
            sim.wait(timeout=plan.live_seconds + 60)
        with ControlClient(daemon.control) as control:
            status = control.status()
    if not latencies:
        raise RuntimeError("no results came back (OUT/serve.log, OUT/sim.log)")
    ms = np.asarray(latencies) * 1e3
    return {
        "frames_sent": frames,
        "fps": plan.live_fps,
        "frame_side_px": plan.live_size,
        "results": len(latencies),
        "received": status.frames_received,
        "dropped": status.frames_dropped,
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "latency_p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def _step(report: dict[str, Any], name: str, action: Callable[[], dict[str, Any]]) -> None:
    started = time.monotonic()
    try:
        report[name] = {"ok": True, **action()}
    except Exception as exc:  # recorded with its traceback; the next step still runs
        log.exception("step %s failed", name)
        report[name] = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    report[name]["seconds"] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for check.json and the logs")
    parser.add_argument("--dry-run", action="store_true", help="CPU: tiny model, 256², 2 frames")
    parser.add_argument("--budget-s", type=float, default=480.0, help="time for every step, s (default 480)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(args.out / "check.log"), logging.StreamHandler()],
    )  # fmt: skip
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    budget = Budget(args.budget_s)
    report: dict[str, Any] = {"plan": asdict(plan), "budget_s": args.budget_s}
    _step(report, "environment", lambda: environment(plan))
    _step(report, "parity", lambda: parity(plan))
    _step(report, "speed", lambda: speed(plan, args.out, budget))
    _step(report, "live", lambda: live(plan, args.out))
    (args.out / "check.json").write_text(json.dumps(report, indent=1))
    failed = [name for name, step in report.items() if isinstance(step, dict) and step.get("ok") is False]
    log.info("GPU check done: %s", f"failed: {', '.join(failed)}" if failed else "every step ran")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
