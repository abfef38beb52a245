"""``lptem export``: SAM 2's four stages to ONNX with static shapes, plus a manifest (docs/gpu.md).

Argument parsing only at import: torch, sam2 and onnx load when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sam2.1_hiera_t", metavar="NAME",
                   help="sam2[.1]_hiera_{t,s,b+,l} or samem (default sam2.1_hiera_t)")  # fmt: skip
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, metavar="PATH", help="the model's weights (.pt)")
    weights.add_argument("--random-weights", action="store_true",
                         help="untrained seeded weights (plumbing and parity tests only)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of --random-weights (default 0)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="model input side, a multiple of 16 (default: the model's own, 1024)")  # fmt: skip
    p.add_argument("--memory-slots", type=int, default=7, metavar="N",
                   help="memory frames per object (default 7: 1 prompted + 6 recent, as SAM 2)")  # fmt: skip
    p.add_argument("--max-objects", type=int, default=16, metavar="N",
                   help="largest object batch (TensorRT profile maximum; default 16)")  # fmt: skip
    p.add_argument("--memory-mask", choices=("bias", "channel"), default="bias",
                   help="how padded memory slots are masked: bias (default; TensorRT fuses it) or channel "
                        "(one pass less, for onnxruntime on a CPU)")  # fmt: skip
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default ./onnx/<model>-<size>px; empty or absent)")  # fmt: skip
    p.add_argument("--no-verify", action="store_true",
                   help="skip running each graph with onnxruntime against the torch module")  # fmt: skip


def run_export(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415 - the engine stack loads only for this command

    from lptem.engine.sam2.export import export_onnx, weights_id  # noqa: PLC0415
    from lptem.engine.sam2.models import build_model  # noqa: PLC0415
    from lptem.engine.sam2.staged import static_shapes  # noqa: PLC0415

    problem = _check(args)
    if problem:
        print(f"lptem export: {problem}", file=sys.stderr)
        return 2
    try:
        model = build_model(args.model, args.checkpoint, torch.device("cpu"),
                            random_weights=args.random_weights, image_size=args.image_size,
                            seed=args.seed)  # fmt: skip
    except (ValueError, OSError) as exc:
        print(f"lptem export: {exc}", file=sys.stderr)
        return 2
    try:
        shapes = static_shapes(model, args.memory_slots, args.max_objects, args.memory_mask)
    except ValueError as exc:
        print(f"lptem export: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("onnx") / f"{args.model}-{model.image_size}px"
    if out.exists() and any(out.iterdir()):
        print(f"lptem export: {out} is not empty", file=sys.stderr)
        return 2
    started = time.perf_counter()
    weights = weights_id(args.checkpoint, args.seed)
    manifest = export_onnx(model, out, shapes, name=args.model, weights=weights)
    took = time.perf_counter() - started
    print(f"{args.model} ({weights[:19]}…) -> {out} in {took:.1f} s; opset {manifest.opset}")
    for stage, graph in manifest.graphs.items():
        size_mb = (out / graph["file"]).stat().st_size / 1e6
        inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in graph["inputs"].items())
        print(f"  {stage:<17} {size_mb:7.1f} MB   {inputs}")
    if not args.no_verify:
        from lptem.engine.sam2.parity import parity_errors  # noqa: PLC0415 - onnxruntime only to verify

        errors = parity_errors(model, out)
        print("onnxruntime vs torch, max |difference| / max |output|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))  # fmt: skip
        if max(errors.values()) > 1e-4:
            print("lptem export: a graph disagrees with torch beyond 1e-4", file=sys.stderr)
            return 1
    return 0


def _check(args: argparse.Namespace) -> str | None:
    if args.image_size is not None and (args.image_size < 64 or args.image_size % 16):
        return "--image-size must be a multiple of 16, at least 64"
    if args.memory_slots < 1 or args.max_objects < 1:
        return "--memory-slots and --max-objects must be at least 1"
    if args.checkpoint is not None and not args.checkpoint.is_file():
        return f"no checkpoint file at {args.checkpoint}"
    return None
