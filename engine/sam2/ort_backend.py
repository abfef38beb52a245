"""ONNX Runtime backend: the exported stages run as ``InferenceSession``s.

CPU by default; with ``device`` cuda, the CUDA (or TensorRT) execution provider when this onnxruntime
build has it, fed through IO binding so tensors stay on the GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lptem.engine.sam2.export import STAGES, Manifest
from lptem.engine.sam2.staged import StageRunners

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
DEFAULT_GPU_PROVIDER = "CUDAExecutionProvider"
"""ONNX Runtime's TensorRT provider would rebuild its engines for every new batch size unless configured
with profiles and a cache; the TensorRT backend (``--backend tensorrt``) does that properly."""


class OrtStage:
    """One stage as an onnxruntime session, called with torch tensors."""

    def __init__(self, path: Path, providers: list[str], threads: int = 0) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - optional dependency (extra "onnx")

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # Idle onnxruntime threads spin by default; here they would take the cores from the torch code
        # that runs between the stages (SAM 2's memory selection, our post-processing), which slowed
        # the mask decoder and measurement 3-30x on 2 cores (benchmarks/sam2_engine.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.on_gpu = self.session.get_providers()[0] in GPU_PROVIDERS

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.inputs):
            raise ValueError(
                f"expected {len(self.inputs)} inputs ({', '.join(self.inputs)}), got {len(inputs)}"
            )
        device = inputs[0].device
        if self.on_gpu and device.type == "cuda":
            return self._bound(inputs, device)
        feed = {name: _numpy(x) for name, x in zip(self.inputs, inputs, strict=True)}
        return tuple(torch.from_numpy(out).to(device) for out in self.session.run(self.outputs, feed))

    def _bound(self, inputs: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
        binding = self.session.io_binding()
        keep = [x.float().contiguous() for x in inputs]  # alive until the run ends
        for name, x in zip(self.inputs, keep, strict=True):
            binding.bind_input(name, "cuda", device.index or 0, np.float32, list(x.shape), x.data_ptr())
        for name in self.outputs:
            binding.bind_output(name, "cuda", device.index or 0)
        torch.cuda.current_stream(device).synchronize()  # inputs made on torch's stream are complete
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return tuple(torch.utils.dlpack.from_dlpack(out) for out in binding.get_outputs())


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def providers_for(device: torch.device, requested: list[str] | None = None) -> list[str]:
    """Execution providers: ``requested``, else CUDA (on cuda, when this build has it), then CPU."""
    import onnxruntime as ort  # noqa: PLC0415

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ValueError(f"onnxruntime here has {', '.join(available)}; not {', '.join(missing)}")
        return requested
    gpu = [DEFAULT_GPU_PROVIDER] if device.type == "cuda" and DEFAULT_GPU_PROVIDER in available else []
    if device.type == "cuda" and not gpu:
        log.warning("onnxruntime has no CUDA provider (install onnxruntime-gpu): running on CPU")
    return [*gpu, "CPUExecutionProvider"]


def ort_runners(folder: Path, device: torch.device, threads: int = 0,
                providers: list[str] | None = None) -> tuple[StageRunners, Manifest]:  # fmt: skip
    manifest = Manifest.read(folder)
    chosen = providers_for(device, providers)
    stages: dict[str, Any] = {
        s: OrtStage(folder / manifest.graphs[s]["file"], chosen, threads) for s in STAGES
    }
    log.info("onnxruntime %s on %s", folder, ", ".join(chosen))
    return StageRunners(**stages), manifest
