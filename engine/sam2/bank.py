"""A bounded per-object memory bank holding exactly what SAM 2's memory selection can use.

``SAM2Base._prepare_memory_conditioned_features`` reads, for frame t: every conditioning (prompted)
frame; the mask memories of ``num_maskmem - 1`` earlier frames picked with the temporal stride r
(t - 1, then every r-th frame before t - 1); and the object pointers of up to ``max_obj_ptrs - 1``
earlier frames. The bank keeps those and nothing else: mask memories (bf16, as the official predictor
stores them) only for frames the next step can select, object pointers only within the pointer window,
conditioning frames up to a cap. It hands SAM 2 the same ``output_dict`` structure the official
predictor builds, so the selection itself stays SAM 2's own code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

Output = dict[str, Any]


@dataclass(slots=True)
class Memory:
    """What one frame leaves behind for one object."""

    maskmem_features: torch.Tensor | None
    """(1, C_mem, h, w) bfloat16, or None once only the pointer can still be used."""
    obj_ptr: torch.Tensor
    """(1, C)"""
    object_score_logits: torch.Tensor
    """(1, 1)"""


def maskmem_frames(t: int, num_maskmem: int, stride: int) -> set[int]:
    """Frames whose mask memory SAM 2 selects at frame ``t`` (forward tracking, evaluation mode)."""
    frames = {t - 1}
    nearest = ((t - 2) // stride) * stride
    frames.update(nearest - k * stride for k in range(num_maskmem - 2))
    return frames


class MemoryBank:
    """One object's memory: conditioning frames (capped) and a sliding window of recent frames."""

    def __init__(self, num_maskmem: int, stride: int, max_obj_ptrs: int, max_conditioning: int) -> None:
        self.num_maskmem = num_maskmem
        self.stride = stride
        self.max_obj_ptrs = max_obj_ptrs
        self.max_conditioning = max_conditioning
        self.conditioning: dict[int, Memory] = {}
        self.recent: dict[int, Memory] = {}

    def __bool__(self) -> bool:
        return bool(self.conditioning)

    def add(self, t: int, memory: Memory, *, conditioning: bool) -> None:
        """Store frame ``t``'s memory (replacing any earlier one for ``t``)."""
        if conditioning:
            self.recent.pop(t, None)
            self.conditioning[t] = memory
            while len(self.conditioning) > self.max_conditioning:
                # keep the first prompt (the object's definition) and the most recent ones
                ordered = sorted(self.conditioning)
                del self.conditioning[ordered[1]]
        else:
            self.recent[t] = memory

    def prune(self, next_t: int) -> None:
        """Drop what frame ``next_t`` (and later frames) can no longer select."""
        keep_masks = maskmem_frames(next_t, self.num_maskmem, self.stride)
        oldest_ptr = next_t - (self.max_obj_ptrs - 1)
        for t in list(self.recent):
            if t < oldest_ptr and t not in keep_masks:
                del self.recent[t]
            elif t not in keep_masks:
                self.recent[t].maskmem_features = None

    def signature(self) -> tuple[tuple[int, ...], tuple[tuple[int, bool], ...]]:
        """Banks with equal signatures can be batched through SAM 2 together."""
        recent = tuple((t, m.maskmem_features is not None) for t, m in sorted(self.recent.items()))
        return tuple(sorted(self.conditioning)), recent

    def sizes(self) -> tuple[int, int, int]:
        """(conditioning frames, mask memories, object pointers) held."""
        masks = len(self.conditioning) + sum(m.maskmem_features is not None for m in self.recent.values())
        return len(self.conditioning), masks, len(self.conditioning) + len(self.recent)


def output_dict(banks: Sequence[MemoryBank], maskmem_pos_enc: list[torch.Tensor] | None) -> Output:
    """The official ``output_dict`` for a batch of banks with equal signatures (stacked on dim 0)."""
    first = banks[0]
    batch = len(banks)
    pos = None if maskmem_pos_enc is None else [p.expand(batch, -1, -1, -1) for p in maskmem_pos_enc]

    def stacked(key: int, table: str) -> Output:
        memories = [getattr(b, table)[key] for b in banks]
        features = None
        if memories[0].maskmem_features is not None:
            features = torch.cat([m.maskmem_features for m in memories if m.maskmem_features is not None])
        return {
            "maskmem_features": features,
            "maskmem_pos_enc": pos,
            "obj_ptr": torch.cat([m.obj_ptr for m in memories]),
            "object_score_logits": torch.cat([m.object_score_logits for m in memories]),
        }

    return {
        "cond_frame_outputs": {t: stacked(t, "conditioning") for t in sorted(first.conditioning)},
        "non_cond_frame_outputs": {t: stacked(t, "recent") for t in sorted(first.recent)},
    }
