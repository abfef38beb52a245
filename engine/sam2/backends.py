"""Where SAM 2's four stages run: torch (eager or ``torch.compile``), ONNX Runtime, or TensorRT.

All three run the same streaming loop (lptem.engine.sam2.tracker); onnxruntime and TensorRT run the stages
exported by lptem.engine.sam2.export, found in ``onnx_dir`` or exported there on first use.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from lptem.engine.sam2.export import MANIFEST, Manifest, export_onnx, weights_id
from lptem.engine.sam2.staged import MemoryMask, StaticShapes, staged_model, static_shapes

log = logging.getLogger(__name__)

Backend = Literal["torch", "onnxruntime", "tensorrt"]
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Where the four stages run; ``Sam2Config`` inherits these as its ``-E`` options."""

    backend: Backend = "torch"
    """torch, onnxruntime or tensorrt (docs/gpu.md)."""
    compile: bool = False
    """torch backend: ``torch.compile`` the four stages (slow first frames while it compiles)."""
    onnx_dir: str | None = None
    """onnxruntime / tensorrt: graphs from ``lptem export`` (default: exported to a cache on first use)."""
    memory_slots: int = 7
    """onnxruntime / tensorrt: memory frames per object in the static graphs."""
    max_objects: int = 16
    """onnxruntime / tensorrt: largest object batch per stage call (TensorRT profile maximum)."""
    backend_threads: int = 0
    """onnxruntime: intra-op threads (0: one per core)."""
    engine_cache: str | None = None
    """tensorrt: folder of built engines (default ``<onnx_dir>/tensorrt``)."""


def cache_root() -> Path:
    return Path(os.environ.get("LPTEM_CACHE", Path.home() / ".cache" / "lptem"))


def bind_backend(model: Any, name: str, checkpoint: Path | None, seed: int, config: BackendConfig) -> Any:
    """``model`` with its stages on ``config.backend`` (the model itself for eager torch)."""
    if config.backend == "torch":
        return _compiled(model) if config.compile else model
    device = next(model.parameters()).device
    mask: MemoryMask = "channel" if config.backend == "onnxruntime" and device.type == "cpu" else "bias"
    shapes = static_shapes(model, config.memory_slots, config.max_objects, mask)
    weights = weights_id(checkpoint, seed)
    folder = graphs_folder(model, name, weights, shapes, config.onnx_dir)
    if config.backend == "onnxruntime":
        from lptem.engine.sam2.ort_backend import ort_runners  # noqa: PLC0415 - optional dependency

        runners, manifest = ort_runners(folder, device, config.backend_threads)
    elif config.backend == "tensorrt":
        from lptem.engine.sam2.trt_backend import trt_runners  # noqa: PLC0415 - optional dependency

        cache = Path(config.engine_cache) if config.engine_cache else folder / "tensorrt"
        runners, manifest = trt_runners(folder, device, cache)
    else:
        raise ValueError(f"unknown backend {config.backend!r}; one of {', '.join(BACKENDS)}")
    # On a CPU, one object per memory-attention call: batching saves nothing there (the work is per
    # object) and every object in a call holds its query x memory logits at once (0.5 GB each at 1024²).
    return staged_model(model, runners, manifest.shapes, attention_batch=1 if device.type == "cpu" else None)


def graphs_folder(model: Any, name: str, weights: str, shapes: StaticShapes, onnx_dir: str | None) -> Path:
    """A folder with graphs for exactly this model, weights and shapes: ``onnx_dir`` (checked; either
    memory mask works), or the cache (exported there when missing)."""
    if onnx_dir is not None:
        folder = Path(onnx_dir)
        if not (folder / MANIFEST).exists():
            raise ValueError(f"{folder} holds no exported graphs ({MANIFEST}); run lptem export first")
        check_manifest(Manifest.read(folder), name, weights, shapes)
        return folder
    folder = (
        cache_root()
        / "onnx"
        / (f"{name}-{shapes.image_size}px-{shapes.memory_slots}slots-{shapes.memory_mask}-{_short(weights)}")
    )
    if (folder / MANIFEST).exists():
        try:
            check_manifest(Manifest.read(folder), name, weights, shapes)
            return folder
        except ValueError as exc:
            log.warning("re-exporting the cached graphs: %s", exc)
    log.info("exporting %s to ONNX in %s (once; later starts reuse it)", name, folder)
    export_onnx(model, folder, shapes, name=name, weights=weights)
    return folder


def check_manifest(manifest: Manifest, name: str, weights: str, shapes: StaticShapes) -> None:
    problems = []
    if manifest.model != name:
        problems.append(f"model {manifest.model} (want {name})")
    if manifest.weights != weights:
        problems.append(f"weights {_short(manifest.weights)} (want {_short(weights)})")
    if (manifest.shapes.image_size, manifest.shapes.memory_slots) != (shapes.image_size, shapes.memory_slots):
        problems.append(f"{manifest.shapes.image_size} px / {manifest.shapes.memory_slots} slots (want "
                        f"{shapes.image_size} px / {shapes.memory_slots} slots)")  # fmt: skip
    if problems:
        raise ValueError("the exported graphs are for another setup: " + "; ".join(problems))


def _short(weights: str) -> str:
    kind, _, value = weights.partition(":")
    return f"{kind}-{value[:12]}"


def _compiled(model: Any) -> Any:
    """A copy of ``model`` whose four stages are ``torch.compile``d (weights shared)."""
    compiled = copy.copy(model)
    compiled._modules = dict(model._modules)
    for stage in ("image_encoder", "memory_attention", "sam_mask_decoder", "memory_encoder"):
        setattr(compiled, stage, torch.compile(getattr(model, stage), dynamic=True))
    return compiled
