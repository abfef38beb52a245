"""TensorRT backend: engines built from the exported ONNX graphs with the ``tensorrt`` Python API.

* fp16 with LayerNorm, softmax and the reductions kept in fp32 (fp16 LayerNorm loses accuracy in SAM 2);
* one optimization profile per engine over the object batch (1 .. ``max_objects``) and, for the decoder,
  the prompt-token count; memory length is static (lptem.engine.sam2.export);
* built engines are cached under a key of GPU + compute capability + TensorRT version + manifest digest,
  so a driver, TensorRT or model change rebuilds them and nothing else does.

Needs a CUDA GPU and ``pip install tensorrt``; see docs/gpu.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lptem.engine.sam2.export import STAGES, Manifest
from lptem.engine.sam2.staged import StageRunners

log = logging.getLogger(__name__)

FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
"""TensorRT layer types kept in fp32 inside an fp16 engine."""
WORKSPACE_BYTES = 4 << 30
PROMPT_TOKENS = (1, 2, 16)
"""Decoder prompt tokens (min, opt, max): tracking uses 2; a box plus up to 13 clicks fits."""


class TensorRTUnavailable(RuntimeError):
    """No CUDA device, or no ``tensorrt`` package."""


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or a clear error saying what is missing."""
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("the TensorRT backend needs a CUDA GPU; torch sees none here")
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional dependency (extra "trt")
    except ImportError as exc:
        raise TensorRTUnavailable(
            "the TensorRT backend needs the tensorrt package: pip install tensorrt"
        ) from exc
    return trt


BUILD_SETTINGS = f"fp16;fp32={','.join(FP32_LAYER_TYPES)};tokens={PROMPT_TOKENS};workspace={WORKSPACE_BYTES}"
"""How engines are built: part of the cache key, so changing it here rebuilds them."""


def engine_key(manifest: Manifest, gpu: str, capability: tuple[int, int], trt_version: str) -> str:
    """Folder name for one manifest's engines on one GPU model and TensorRT version, built as set here."""
    gpu_slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    settings = hashlib.sha256(BUILD_SETTINGS.encode()).hexdigest()[:8]
    return f"{gpu_slug}-sm{capability[0]}{capability[1]}-trt{trt_version}-{manifest.key()}-{settings}"


@dataclass(frozen=True, slots=True)
class Profile:
    """min / opt / max shape of each dynamic input."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def profile_for(inputs: dict[str, list[int | str]], max_objects: int) -> Profile:
    """An optimization profile from a manifest's input signature (names for dynamic dimensions)."""
    ranges = {"objects": (1, min(4, max_objects), max_objects), "prompt_tokens": PROMPT_TOKENS}
    shapes = {}
    for name, dims in inputs.items():
        if all(isinstance(d, int) for d in dims):
            continue
        shapes[name] = tuple(tuple(d if isinstance(d, int) else ranges[d][i] for d in dims) for i in range(3))
    return Profile(shapes)  # type: ignore[arg-type]


def keep_in_fp32(layer_type_name: str) -> bool:
    return layer_type_name in FP32_LAYER_TYPES


def build_engine(trt: Any, onnx_path: Path, profile: Profile, fp16: bool = True) -> bytes:
    """A serialized engine for one exported graph."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        _pin_fp32_layers(trt, network)
    if profile.shapes:
        trt_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.shapes.items():
            trt_profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(trt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    return bytes(serialized)


def _pin_fp32_layers(trt: Any, network: Any) -> int:
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not keep_in_fp32(layer.type.name):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    log.info("%d LayerNorm / softmax / reduction layers kept in fp32", pinned)
    return pinned


class TrtStage:
    """One engine, called with CUDA torch tensors on the current stream."""

    def __init__(self, trt: Any, plan: bytes) -> None:
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError("TensorRT could not load the engine (built by another version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = [self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
        self.inputs = [n for n, i in zip(names, is_input, strict=True) if i]
        self.outputs = [n for n, i in zip(names, is_input, strict=True) if not i]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # not the legacy default stream

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        keep = [x.to(self.dtypes[n]).contiguous() for n, x in zip(self.inputs, inputs, strict=True)]
        for name, x in zip(self.inputs, keep, strict=True):  # ``keep`` holds them until the call returns
            if not self.context.set_input_shape(name, tuple(x.shape)):
                raise ValueError(
                    f"{name} of shape {tuple(x.shape)} is outside the engine's profile (objects "
                    f"1..max_objects, prompt tokens {PROMPT_TOKENS[0]}..{PROMPT_TOKENS[2]})"
                )
            self.context.set_tensor_address(name, x.data_ptr())
        outs = []
        for name in self.outputs:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name],
                              device=inputs[0].device)  # fmt: skip
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        caller = torch.cuda.current_stream()
        self.stream.wait_stream(caller)  # inputs are ready
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        caller.wait_stream(self.stream)  # outputs are ready for whatever torch does next
        return tuple(o.float() for o in outs)


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.bool: torch.bool,
        trt.int64: torch.int64,
        trt.bfloat16: torch.bfloat16,
    }
    if dtype not in table:
        raise TypeError(f"engine tensor of TensorRT type {dtype}: not supported here")
    return table[dtype]


def trt_runners(folder: Path, device: torch.device, cache: Path) -> tuple[StageRunners, Manifest]:
    """The four stages as TensorRT engines: loaded from ``cache``, or built there first."""
    manifest = Manifest.read(folder)
    if manifest.shapes.memory_mask != "bias":
        raise ValueError(
            f"the graphs in {folder} carry the memory mask in a channel (for onnxruntime on a CPU): its "
            "-1.6e5 does not fit fp16; export them for TensorRT with --memory-mask bias"
        )
    trt = require_tensorrt()
    if device.type != "cuda":
        raise TensorRTUnavailable(f"the TensorRT backend runs on a CUDA device, not {device.type}")
    index = device.index or 0
    key = engine_key(manifest, torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index),
                     trt.__version__)  # fmt: skip
    engines = cache / key
    engines.mkdir(parents=True, exist_ok=True)
    stages = {}
    for stage in STAGES:
        plan_path = engines / f"{stage}.plan"
        if not plan_path.exists():
            started = time.perf_counter()
            graph = manifest.graphs[stage]
            plan = build_engine(
                trt, folder / graph["file"], profile_for(graph["inputs"], manifest.shapes.max_objects)
            )
            partial = plan_path.with_suffix(".partial")
            partial.write_bytes(plan)
            partial.replace(plan_path)  # an interrupted build leaves no truncated engine behind
            log.info("built %s in %.0f s -> %s", stage, time.perf_counter() - started, plan_path)
        stages[stage] = TrtStage(trt, plan_path.read_bytes())
    return StageRunners(**stages), manifest
