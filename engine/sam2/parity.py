"""ONNX graphs against the torch modules they were exported from, stage by stage, on onnxruntime.

Separate from export.py so that exporting needs no onnxruntime and the two modules do not import each
other (onnxruntime's backend reads export's manifest).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from lptem.engine.sam2.export import Manifest, stage_graphs
from lptem.engine.sam2.ort_backend import OrtStage, providers_for


def parity_errors(model: Any, folder: Path, threads: int = 0) -> dict[str, float]:
    """Per stage: max |onnxruntime − torch| over its outputs on the example inputs, divided by the
    largest |torch output| (so 1e-6 means agreement to about six digits)."""
    manifest = Manifest.read(folder)
    providers = providers_for(torch.device("cpu"))
    errors = {}
    reference = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        for stage, graph in stage_graphs(reference, manifest.shapes).items():
            expected = graph.module(*graph.inputs)
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = OrtStage(folder / manifest.graphs[stage]["file"], providers, threads)(*graph.inputs)
            errors[stage] = max(float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
                                for a, b in zip(expected, got, strict=True))  # fmt: skip
    return errors
