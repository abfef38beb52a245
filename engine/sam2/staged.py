"""Run SAM 2's four heavy stages on another backend while SAM 2's own code does everything between them.

``staged_model`` returns a shallow copy of a loaded SAM 2 model (parameters shared, the original left
untouched) whose image encoder, memory attention, mask decoder and memory encoder call ``StageRunners``
(ONNX Runtime sessions, TensorRT engines) with the static shapes of lptem.engine.sam2.static. Memory
selection, prompt encoding, object pointers and mask selection stay SAM 2's code, so every backend
follows the same algorithm and only the arithmetic of the four stages differs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

MemoryMask = Literal["bias", "channel"]


class StageRunner(Protocol):
    """One exported stage: tensors in, tensors out (on the model's device), in the stage's input order."""

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


@dataclass(frozen=True, slots=True)
class StaticShapes:
    image_size: int
    """Model input side, px."""
    memory_slots: int = 7
    """Memory frames attended per object (SAM 2: 1 conditioning + num_maskmem - 1 recent = 7)."""
    pointer_tokens: int = 64
    """Object-pointer tokens: (conditioning frames + 15 recent) pointers x 4 tokens of 64 channels."""
    max_objects: int = 16
    """Largest object batch one stage call takes; bigger batches are split."""
    memory_mask: MemoryMask = "bias"
    """How the memory attention ignores padding: ``bias`` adds a large negative number to its logits
    (the form TensorRT fuses); ``channel`` carries that number in one extra query/key channel, inside the
    product, which saves a pass over the logits (faster with onnxruntime on a CPU)."""

    @property
    def feature_side(self) -> int:
        return self.image_size // 16


def static_shapes(model: Any, memory_slots: int = 7, max_objects: int = 16,
                  memory_mask: MemoryMask = "bias") -> StaticShapes:  # fmt: skip
    """Shapes for ``model``: the slots not taken by SAM 2's ``num_maskmem - 1`` recent memories hold
    conditioning frames, and each conditioning frame adds an object pointer to the 15 recent ones."""
    conditioning = memory_slots - (model.num_maskmem - 1)
    if conditioning < 1:
        raise ValueError(
            f"memory_slots must be at least {model.num_maskmem} (1 prompted + the recent memories)"
        )
    pointers = model.max_obj_ptrs_in_encoder - 1 + conditioning
    return StaticShapes(
        model.image_size, memory_slots, pointers * (model.hidden_dim // model.mem_dim), max_objects,
        memory_mask,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageRunners:
    image_encoder: StageRunner
    """(image) -> (feat_s0, feat_s1, vision_features)"""
    memory_attention: StageRunner
    """(curr, curr_pos, memory, memory_pos, valid) -> (conditioned,)"""
    mask_decoder: StageRunner
    """(image_embeddings, sparse, dense, feat_s0, feat_s1) -> (masks, iou, mask_tokens, object_score)"""
    memory_encoder: StageRunner
    """(pix_feat, mask) -> (features,)"""


def staged_model(model: Any, runners: StageRunners, shapes: StaticShapes,
                 attention_batch: int | None = None) -> Any:  # fmt: skip
    """A copy of ``model`` whose four stages run on ``runners``; ``attention_batch`` caps the objects per
    memory-attention call below ``shapes.max_objects`` (its logits take 0.5 GB per object at 1024²)."""
    if model.image_size != shapes.image_size:
        raise ValueError(
            f"graphs are for {shapes.image_size} px input, the model takes {model.image_size} px"
        )
    staged = copy.copy(model)
    staged._modules = dict(model._modules)  # its own module table: the original keeps its stages
    side = shapes.feature_side
    device = next(model.parameters()).device  # constants are made there once, not copied per frame
    staged.memory_attention = _MemoryAttention(
        runners.memory_attention, shapes, min(attention_batch or shapes.max_objects, shapes.max_objects)
    )
    staged.sam_mask_decoder = _MaskDecoder(runners.mask_decoder, model.sam_mask_decoder, shapes.max_objects)
    memory_pos = model.memory_encoder.position_encoding(
        torch.zeros(1, model.mem_dim, side, side, device=device)
    )
    staged.memory_encoder = _MemoryEncoder(runners.memory_encoder, memory_pos, shapes.max_objects)
    neck = model.image_encoder.neck
    image_pos = [neck.position_encoding(torch.zeros(1, neck.d_model, side * s, side * s, device=device))
                 for s in (4, 2, 1)]  # fmt: skip
    staged.forward_image = _ImageForward(runners.image_encoder, image_pos)
    return staged


class _ImageForward:
    """Replaces ``SAM2Base.forward_image``: the backbone dict SAM 2 expects."""

    def __init__(self, run: StageRunner, pos: list[torch.Tensor]) -> None:
        self.run = run
        self.pos = pos

    def __call__(self, image: torch.Tensor) -> dict[str, Any]:
        s0, s1, s2 = self.run(image)
        if self.pos[0].device != s2.device or self.pos[0].dtype != s2.dtype:
            self.pos = [p.to(device=s2.device, dtype=s2.dtype) for p in self.pos]  # once
        return {"vision_features": s2, "vision_pos_enc": list(self.pos), "backbone_fpn": [s0, s1, s2]}


def _chunked(
    run: StageRunner, inputs: list[torch.Tensor], dims: list[int], limit: int
) -> tuple[torch.Tensor, ...]:
    """Runs ``run`` on at most ``limit`` objects at a time: input i is batched along ``dims[i]``, every
    output along ``dims[0]`` (the stages' outputs are laid out as their first input)."""
    batch = inputs[0].shape[dims[0]]
    if batch <= limit:
        return run(*inputs)
    parts = [run(*[x.narrow(d, i, min(limit, batch - i)) for x, d in zip(inputs, dims, strict=True)])
             for i in range(0, batch, limit)]  # fmt: skip
    return tuple(torch.cat(outs, dim=dims[0]) for outs in zip(*parts, strict=True))


class _MemoryAttention(nn.Module):
    """SAM 2's ``MemoryAttention`` call, padded to the static memory slots with a validity mask."""

    def __init__(self, run: StageRunner, shapes: StaticShapes, batch: int) -> None:
        super().__init__()
        self.run = run
        self.shapes = shapes
        self.batch = batch

    def forward(self, curr: Any, memory: torch.Tensor, curr_pos: Any = None, memory_pos: Any = None,
                num_obj_ptr_tokens: int = 0) -> torch.Tensor:  # fmt: skip
        curr = curr[0] if isinstance(curr, list) else curr
        curr_pos = curr_pos[0] if isinstance(curr_pos, list) else curr_pos
        memory_p, pos_p, valid = pad_memory(
            memory.float(), memory_pos.float(), num_obj_ptr_tokens, self.shapes
        )
        inputs = [curr.float(), curr_pos.float(), memory_p, pos_p, valid]
        (out,) = _chunked(self.run, inputs, [1, 1, 1, 1, 0], self.batch)
        return out


def pad_memory(memory: torch.Tensor, pos: torch.Tensor, pointer_tokens: int,
               shapes: StaticShapes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """SAM 2's memory (spatial memories, then ``pointer_tokens`` pointer tokens; sequence-first) laid
    into the static slots: (padded memory, padded pos, validity (B, tokens))."""
    tokens = shapes.feature_side**2
    spatial = memory.shape[0] - pointer_tokens
    frames, rest = divmod(spatial, tokens)
    if rest or frames > shapes.memory_slots or pointer_tokens > shapes.pointer_tokens:
        raise ValueError(
            f"memory of {frames} frames and {pointer_tokens} pointer tokens does not fit the exported "
            f"{shapes.memory_slots} slots and {shapes.pointer_tokens} pointer tokens (export with more slots)"
        )
    total = shapes.memory_slots * tokens + shapes.pointer_tokens
    ptr_start = shapes.memory_slots * tokens
    batch = memory.shape[1]
    out = [memory.new_zeros(total, batch, memory.shape[2]) for _ in range(2)]
    for padded, source in zip(out, (memory, pos), strict=True):
        padded[:spatial] = source[:spatial]
        padded[ptr_start : ptr_start + pointer_tokens] = source[spatial:]
    valid = memory.new_zeros(batch, total)
    valid[:, :spatial] = 1.0
    valid[:, ptr_start : ptr_start + pointer_tokens] = 1.0
    return out[0], out[1], valid


class _MaskDecoder(nn.Module):
    """``MaskDecoder.forward``: the graph gives all four masks; the choice of output is made here,
    with the original decoder's settings (multimask, stability-based selection)."""

    def __init__(self, run: StageRunner, decoder: nn.Module, max_objects: int) -> None:
        super().__init__()
        self.run = run
        self.original = [decoder]  # a list: not registered as a child (its weights are not used here)
        self.max_objects = max_objects

    def forward(self, *, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool, repeat_image: bool,
                high_res_features: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:  # fmt: skip
        if repeat_image or high_res_features is None:
            raise ValueError("the exported decoder takes one image per object and high-resolution features")
        inputs = [image_embeddings, sparse_prompt_embeddings, dense_prompt_embeddings, *high_res_features]
        masks, iou, tokens, score = _chunked(self.run, [x.float() for x in inputs], [0] * 5, self.max_objects)
        decoder: Any = self.original[0]
        if multimask_output:
            masks, iou = masks[:, 1:], iou[:, 1:]
        elif decoder.dynamic_multimask_via_stability:
            masks, iou = decoder._dynamic_multimask_via_stability(masks, iou)
        else:
            masks, iou = masks[:, 0:1], iou[:, 0:1]
        use_all = multimask_output and decoder.use_multimask_token_for_obj_ptr
        return masks, iou, tokens[:, 1:] if use_all else tokens[:, 0:1], score


class _MemoryEncoder(nn.Module):
    """``MemoryEncoder.forward`` with the constant positional encoding."""

    pos: torch.Tensor

    def __init__(self, run: StageRunner, pos: torch.Tensor, max_objects: int) -> None:
        super().__init__()
        self.run = run
        self.register_buffer("pos", pos, persistent=False)
        self.max_objects = max_objects

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> dict[str, Any]:
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        (features,) = _chunked(self.run, [pix_feat.float(), masks.float()], [0, 0], self.max_objects)
        if self.pos.device != features.device or self.pos.dtype != features.dtype:
            self.pos = self.pos.to(features.device, features.dtype)  # once
        pos = self.pos.expand(features.shape[0], -1, -1, -1)
        return {"vision_features": features, "vision_pos_enc": [pos]}
