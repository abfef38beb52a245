"""SAM 2 streaming engine: time per stage, frames per second and peak memory on this machine's device.

    python benchmarks/sam2_engine.py         # Hiera-T, 512^2 and 1024^2, 1 / 5 objects, torch vs onnxruntime
    python benchmarks/sam2_engine.py --model sam2.1_hiera_b+ --sizes 1024 --objects 5 --json sam2.json
    python benchmarks/sam2_engine.py --backends torch tensorrt --device cuda      # on a GPU machine

Random (seeded) weights unless --checkpoint is given: stage times do not depend on the weights. The real
``Sam2Tracker.step`` runs; the stages are timed by wrapping the model's own calls (image encoder, memory
attention, mask decoder, memory encoder) and ours (preprocessing, post-processing and measurement), so the
same clock times every backend (onnxruntime and TensorRT graphs are exported to the cache on first use,
before timing; see docs/gpu.md). The backends of one configuration run side by side on the same frames,
timed in alternation, frame by frame. The last column compares each backend's frame time with torch eager's.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from _common import dump_json, machine

import lptem.engine.sam2.tracker as tracker_module
from lptem.engine.api import Box, Prompt
from lptem.engine.sam2.models import build_model, resolve_device
from lptem.engine.sam2.tracker import Sam2Config, Sam2Tracker

STAGES = ("preprocess", "image encoder", "memory attention", "mask decoder", "memory encoder", "measurement")


class StageClock:
    """Accumulates wall time per stage for the current frame (synchronising CUDA around each call)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.frame: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                self.frame[stage] += time.perf_counter() - t0

        return timed

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


MODEL_CALLS = {
    "image encoder": "forward_image",
    "memory attention": "_prepare_memory_conditioned_features",
    "mask decoder": "_forward_sam_heads",
    "memory encoder": "_encode_new_memory",
}


@contextmanager
def instrumented(tracker: Sam2Tracker, clock: StageClock) -> Iterator[None]:
    """Times the model's own stage calls and ours; the wrappers are removed afterwards. (They are instance
    attributes: left on the shared torch model, a staged copy made later would inherit them and call the
    torch stages; that made an earlier version of this benchmark time torch under the onnxruntime label.)"""
    model = tracker.model
    for stage, name in MODEL_CALLS.items():
        setattr(model, name, clock.wrap(stage, getattr(model, name)))
    tracker.preprocess = clock.wrap("preprocess", tracker.preprocess)  # type: ignore[assignment]
    tracker._publish = clock.wrap("measurement", tracker._publish)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name in MODEL_CALLS.values():
            delattr(model, name)


def run(model: Any, checkpoint: Path | None, *, backends: list[str], objects: int, frames: int,
        warmup: int, device: torch.device, compile: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """All ``backends`` on the same frames; the timed frames alternate between backends so that the
    machine's drift (a shared VM's varies by tens of percent over minutes) falls on all of them alike."""
    trackers = {}
    for backend in backends:  # each staged copy is made before any wrapper exists
        config = Sam2Config(device=cast(Any, device.type), backend=cast(Any, backend),
                            checkpoint=str(checkpoint) if checkpoint else None,
                            compile=compile and backend == "torch")  # fmt: skip
        trackers[backend] = Sam2Tracker(config, model=model)
    clocks = {backend: StageClock(device) for backend in backends}
    size = model.image_size
    frame = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
    step = size / (objects + 1)
    per_frame: dict[str, dict[str, list[float]]] = {b: defaultdict(list) for b in backends}
    totals: dict[str, list[float]] = {b: [] for b in backends}
    with ExitStack() as stack:
        for backend, tracker in trackers.items():
            stack.enter_context(instrumented(tracker, clocks[backend]))
            for k in range(objects):
                c = step * (k + 1)
                tracker.add_object(Prompt(box=Box(c - 20, c - 20, c + 20, c + 20)))
            for _ in range(warmup):  # prompts, first calls, and the memory bank filling to its steady size
                tracker.step(frame)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(frames):
            for backend, tracker in trackers.items():
                clocks[backend].frame.clear()
                t0 = time.perf_counter()
                tracker.step(frame)
                totals[backend].append(time.perf_counter() - t0)
                for stage in STAGES:
                    per_frame[backend][stage].append(clocks[backend].frame.get(stage, 0.0))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # fmt: skip
    return [
        {
            "backend": backend,
            "size": size,
            "objects": objects,
            "stages_ms": {s: 1e3 * float(np.median(v)) for s, v in per_frame[backend].items()},
            "frame_ms": 1e3 * float(np.median(totals[backend])),
            "frame_ms_all": [1e3 * t for t in totals[backend]],
            "fps": 1.0 / float(np.median(totals[backend])),
            "peak_mb": peak,
            "peak_kind": "CUDA allocated"
            if device.type == "cuda"
            else "process max RSS (all backends so far)",
        }
        for backend in backends
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 1024], help="model input sides, px")
    parser.add_argument("--objects", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"],
                        choices=["torch", "onnxruntime", "tensorrt"])  # fmt: skip
    parser.add_argument("--frames", type=int, default=5,
                        help="timed frames per configuration and backend (default 5)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=8,
                        help="untimed frames first (default 8: memory bank full)")  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true",
                        help="torch: torch.compile the stages (compiled in the warm-ups)")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.backends = sorted(set(args.backends), key=["torch", "onnxruntime", "tensorrt"].index)  # torch first
    logging.disable(logging.WARNING)  # the random-weights banner, once per configuration
    device = resolve_device(args.device)
    print(
        f"machine: {machine()}; device {device}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    print(f"model {args.model}, {weights}, median of {args.frames} frames per backend after {args.warmup} "
          "warm-ups, backends alternating frame by frame; ms per frame\n")  # fmt: skip
    header = (
        f"{'backend':>12} {'input':>6} {'obj':>4} "
        + " ".join(f"{s[:12]:>12}" for s in STAGES)
        + f" {'frame':>9} {'fps':>7} {'peak/MB':>8} {'vs torch':>8}"
    )
    print(header)
    results = []
    for size in args.sizes:
        model = build_model(args.model, args.checkpoint, device, random_weights=args.checkpoint is None,
                            image_size=size)  # fmt: skip
        for objects in args.objects:
            eager_ms = None
            for r in run(model, args.checkpoint, backends=args.backends, objects=objects, frames=args.frames,
                         warmup=args.warmup, device=device, compile=args.compile):  # fmt: skip
                results.append(r)
                backend = r["backend"]
                eager_ms = r["frame_ms"] if backend == "torch" else eager_ms
                speedup = f"{eager_ms / r['frame_ms']:7.2f}x" if eager_ms else f"{'-':>8}"
                cells = " ".join(f"{r['stages_ms'][s]:12.1f}" for s in STAGES)
                print(f"{backend:>12} {size:>6} {objects:>4} {cells} {r['frame_ms']:9.1f} {r['fps']:7.2f} "
                      f"{r['peak_mb']:8.0f} {speedup}", flush=True)  # fmt: skip
    print(f"\npeak memory: {results[-1]['peak_kind']}; "
          f"stream length {tracker_module.STREAM_FRAMES} frames assumed by the memory selection")  # fmt: skip
    dump_json(args.json, {"machine": machine(), "device": str(device), "compile": args.compile,
                          "model": args.model, "results": results})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
