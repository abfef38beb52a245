"""ONNX export of SAM 2's four stages with static shapes, and the manifest that describes them.

The object batch (and the decoder's prompt-token count) are the only dynamic dimensions; memory length is
fixed by ``StaticShapes`` (slots + validity mask), so a TensorRT engine never sees a changing memory size.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lptem.engine.sam2.staged import StaticShapes
from lptem.engine.sam2.static import (
    ImageEncoderStage,
    MaskDecoderStage,
    MemoryAttentionStage,
    MemoryEncoderStage,
    with_exportable_norms,
)

log = logging.getLogger(__name__)

OPSET = 17
"""LayerNormalization is a single op from opset 17 (TensorRT can then keep it in fp32 as one layer)."""
STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class StageGraph:
    """One stage's module and an example call, as ``torch.onnx.export`` wants them."""

    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]


@dataclass(frozen=True, slots=True)
class Manifest:
    model: str
    weights: str
    """``sha256:<hex>`` of the checkpoint file, or ``random:<seed>`` for seeded random weights."""
    shapes: StaticShapes
    opset: int
    versions: dict[str, str]
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage: file, inputs and outputs with their shapes (names for dynamic dimensions)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def read(folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST).read_text())
        return Manifest(data["model"], data["weights"], StaticShapes(**data["shapes"]), data["opset"],
                        data["versions"], data["graphs"])  # fmt: skip

    def key(self) -> str:
        """A digest of everything that determines the graphs (for caches of built engines)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def weights_id(checkpoint: Path | None, seed: int) -> str:
    if checkpoint is None:
        return f"random:{seed}"
    digest = hashlib.sha256()
    with checkpoint.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def stage_graphs(model: Any, shapes: StaticShapes) -> dict[str, StageGraph]:
    """The four stages of ``model`` with example inputs (two objects, two prompt tokens)."""
    s, side, b = shapes.image_size, shapes.feature_side, 2
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    memory = MemoryAttentionStage(model.memory_attention, side, shapes.memory_slots, shapes.pointer_tokens,
                                  shapes.memory_mask)  # fmt: skip
    tokens = memory.memory_tokens
    decoder = MaskDecoderStage(model.sam_mask_decoder, model.sam_prompt_encoder.get_dense_pe())
    objects = {0: "objects"}
    return {
        "image_encoder": StageGraph(
            ImageEncoderStage(model),
            (rand(1, 3, s, s),),
            ("image",),
            ("feat_s0", "feat_s1", "vision_features"),
            {},
        ),
        "memory_attention": StageGraph(
            memory,
            (
                rand(side * side, b, 256),
                rand(side * side, b, 256),
                rand(tokens, b, 64),
                rand(tokens, b, 64),
                torch.ones(b, tokens),
            ),
            ("curr", "curr_pos", "memory", "memory_pos", "valid"),
            ("conditioned",),
            {
                "curr": {1: "objects"},
                "curr_pos": {1: "objects"},
                "memory": {1: "objects"},
                "memory_pos": {1: "objects"},
                "valid": objects,
                "conditioned": {1: "objects"},
            },
        ),
        "mask_decoder": StageGraph(
            decoder,
            (
                rand(b, 256, side, side),
                rand(b, 2, 256),
                rand(b, 256, side, side),
                rand(b, 32, 4 * side, 4 * side),
                rand(b, 64, 2 * side, 2 * side),
            ),
            ("image_embeddings", "sparse", "dense", "feat_s0", "feat_s1"),
            ("masks", "iou", "mask_tokens", "object_score"),
            {
                "image_embeddings": objects,
                "sparse": {0: "objects", 1: "prompt_tokens"},
                "dense": objects,
                "feat_s0": objects,
                "feat_s1": objects,
                "masks": objects,
                "iou": objects,
                "mask_tokens": objects,
                "object_score": objects,
            },
        ),
        "memory_encoder": StageGraph(
            MemoryEncoderStage(model.memory_encoder),
            (rand(b, 256, side, side), torch.rand(b, 1, s, s, generator=gen)),
            ("pix_feat", "mask"),
            ("features",),
            {"pix_feat": objects, "mask": objects, "features": objects},
        ),
    }


def export_onnx(model: Any, folder: Path, shapes: StaticShapes, *, name: str, weights: str,
                opset: int = OPSET) -> Manifest:  # fmt: skip
    """Writes ``<stage>.onnx`` for each stage and ``manifest.json`` into ``folder``."""
    import onnx  # noqa: PLC0415 - optional dependency (extra "onnx")

    folder.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, dict[str, Any]] = {}
    model = exportable_copy(model)
    with torch.inference_mode(False), torch.no_grad():
        for stage, graph in stage_graphs(model, shapes).items():
            path = folder / f"{stage}.onnx"
            started = time.perf_counter()
            _export_one(graph, path, opset)
            onnx.checker.check_model(str(path))
            graphs[stage] = {"file": path.name, **_signature(onnx.load(str(path), load_external_data=False))}
            log.info("exported %s (%.1f MB) in %.1f s", path.name, path.stat().st_size / 1e6,
                     time.perf_counter() - started)  # fmt: skip
    manifest = Manifest(name, weights, shapes, opset, _versions(), graphs)
    (folder / MANIFEST).write_text(manifest.to_json() + "\n")
    return manifest


def exportable_copy(model: Any) -> Any:
    """A float32 CPU copy of ``model`` (the served model is left as it is) with SAM 2's channel LayerNorms
    written as ``LayerNormalization``."""
    copy_ = copy.deepcopy(model).float().cpu().eval()
    log.debug("%d LayerNorm2d modules rewritten for export", with_exportable_norms(copy_))
    return copy_


def _export_one(graph: StageGraph, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which failed here
        # (torch 2.13 + onnxscript 0.7) on a plain attention module; tracing warns about the shape
        # arithmetic it records as constants, which is what static shapes mean.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        torch.onnx.export(
            graph.module.eval(), graph.inputs, str(path), dynamo=False, opset_version=opset,
            input_names=list(graph.input_names), output_names=list(graph.output_names),
            dynamic_axes=graph.dynamic or None, do_constant_folding=True,
        )  # fmt: skip


def _signature(proto: Any) -> dict[str, dict[str, list[int | str]]]:
    def dims(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {"inputs": {v.name: dims(v) for v in proto.graph.input},
            "outputs": {v.name: dims(v) for v in proto.graph.output}}  # fmt: skip


def _versions() -> dict[str, str]:
    versions = {"torch": str(torch.__version__)}
    for package in ("sam2", "onnx", "lptem-live"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
