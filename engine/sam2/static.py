"""SAM 2's four per-frame stages as modules with static shapes, for ONNX export and TensorRT.

Each stage wraps (and shares the weights of) the loaded SAM 2 model:

* ``ImageEncoderStage``: Hiera trunk + FPN neck + the mask decoder's high-resolution projections, i.e.
  ``SAM2Base.forward_image`` minus the positional encodings (constants of the image size).
* ``MemoryAttentionStage``: the memory attention over a *fixed* number of memory slots and object-pointer
  tokens, with a validity mask (invalid keys get ``MASKED_LOGIT`` on their logits: added to them, or with
  ``mask="channel"`` carried by one extra query/key channel), and RoPE computed in real cos/sin form (SAM
  2's complex form does not export). Attention with a key masked out equals attention without that key,
  so the result equals SAM 2's on the valid memories alone. The values are projected *after* the attention:
  softmax rows sum to one, so P·(M·Wᵀ + b) = (P·M)·Wᵀ + b, and mixing SAM 2's 64-channel memories instead of
  their 256-channel projections makes the second attention product 4× cheaper (the same function up to
  float rounding).
* ``MaskDecoderStage``: the two-way transformer and heads (``MaskDecoder.predict_masks``) returning all four
  masks, IoU predictions and mask tokens; which of them to use (``multimask_output``) is decided outside the
  graph, so it is not frozen into it.
* ``MemoryEncoderStage``: mask downsampler + fuser (``MemoryEncoder`` without its positional encoding).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MASKED_LOGIT = -1.0e4
"""Added to the attention logits of invalid memory tokens: exp(-1e4) is 0 in fp32 and fp16."""


class ImageEncoderStage(nn.Module):
    """image (1, 3, S, S) -> feature levels (1, 32, S/4, S/4), (1, 64, S/8, S/8), (1, 256, S/16, S/16)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder
        self.conv_s0 = model.sam_mask_decoder.conv_s0
        self.conv_s1 = model.sam_mask_decoder.conv_s1

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.image_encoder(image)["backbone_fpn"]
        return self.conv_s0(fpn[0]), self.conv_s1(fpn[1]), fpn[2]


def rope_tables(attention: Any, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of SAM 2's axial RoPE for a ``side`` x ``side`` token grid, each (side², head_dim),
    laid out for interleaved pairs (x0, x1), (x2, x3), ... as ``apply_rotary_enc`` pairs them."""
    freqs = attention.compute_cis(end_x=side, end_y=side)
    return freqs.real.repeat_interleave(2, dim=-1), freqs.imag.repeat_interleave(2, dim=-1)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary encoding in real arithmetic: (a, b) -> (a cos - b sin, a sin + b cos) for each pair."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + swapped * sin


class MemoryAttentionStage(nn.Module):
    """SAM 2's memory attention on ``slots`` memory frames of ``side``² tokens plus ``pointer_tokens``
    object-pointer tokens (sequence-first tensors, as SAM 2 passes them):

    curr, curr_pos (side², B, 256); memory, memory_pos (slots·side² + pointer_tokens, B, 64);
    valid (B, slots·side² + pointer_tokens), 1 for a real token and 0 for padding -> (side², B, 256).
    """

    self_cos: torch.Tensor
    self_sin: torch.Tensor
    q_cos: torch.Tensor
    q_sin: torch.Tensor
    k_cos: torch.Tensor
    k_sin: torch.Tensor

    def __init__(self, attention: Any, side: int, slots: int, pointer_tokens: int,
                 mask: str = "bias") -> None:  # fmt: skip
        super().__init__()
        if mask not in ("bias", "channel"):
            raise ValueError(f"memory mask {mask!r}: bias or channel")
        self.mask_in_channel = mask == "channel"
        self.attention = attention
        self.tokens = side * side
        self.slots = slots
        self.pointer_tokens = pointer_tokens
        if not attention.batch_first:
            raise ValueError("the static memory attention follows SAM 2's batch-first layers")
        first = attention.layers[0]
        cos, sin = rope_tables(first.self_attn, side)
        self.register_buffer("self_cos", cos, persistent=False)
        self.register_buffer("self_sin", sin, persistent=False)
        cos, sin = rope_tables(first.cross_attn_image, side)  # equal to the above in SAM 2 configs
        self.register_buffer("q_cos", cos, persistent=False)
        self.register_buffer("q_sin", sin, persistent=False)
        self.register_buffer("k_cos", cos.repeat(slots, 1), persistent=False)
        self.register_buffer("k_sin", sin.repeat(slots, 1), persistent=False)

    @property
    def memory_tokens(self) -> int:
        return self.slots * self.tokens + self.pointer_tokens

    def forward(self, curr: torch.Tensor, curr_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # fmt: skip
        a = self.attention
        output = curr + 0.1 * curr_pos if a.pos_enc_at_input else curr
        output, curr_pos = output.transpose(0, 1), curr_pos.transpose(0, 1)
        memory, memory_pos = memory.transpose(0, 1), memory_pos.transpose(0, 1)
        bias = ((1.0 - valid) * MASKED_LOGIT)[:, None, :, None]  # (B, 1, tokens, 1)
        for layer in a.layers:
            output = self._layer(
                layer, output, query_pos=curr_pos, memory=memory, memory_pos=memory_pos, bias=bias
            )
        normed: torch.Tensor = a.norm(output)
        return normed.transpose(0, 1)

    def _layer(self, layer: Any, tgt: torch.Tensor, *, query_pos: torch.Tensor, memory: torch.Tensor,
               memory_pos: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """``MemoryAttentionLayer.forward`` with the static RoPE attention."""
        x = layer.norm1(tgt)
        q = x + query_pos if layer.pos_enc_at_attn else x
        tgt = tgt + self._self_attention(layer.self_attn, q, x)
        x = layer.norm2(tgt)
        q = x + query_pos if layer.pos_enc_at_cross_attn_queries else x
        k = memory + memory_pos if layer.pos_enc_at_cross_attn_keys else memory
        tgt = tgt + self._cross_attention(layer.cross_attn_image, q, k, memory, bias)
        x = layer.norm3(tgt)
        mlp: torch.Tensor = layer.linear2(layer.activation(layer.linear1(x)))
        return tgt + mlp

    def _self_attention(self, attn: Any, qk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = rotate(_heads(attn.q_proj(qk), attn.num_heads), self.self_cos, self.self_sin)
        k = rotate(_heads(attn.k_proj(qk), attn.num_heads), self.self_cos, self.self_sin)
        out = F.scaled_dot_product_attention(q, k, _heads(attn.v_proj(v), attn.num_heads))
        projected: torch.Tensor = attn.out_proj(_merge_heads(out))
        return projected

    def _cross_attention(self, attn: Any, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor,
                         bias: torch.Tensor) -> torch.Tensor:  # fmt: skip
        q = rotate(_heads(attn.q_proj(q_in), attn.num_heads), self.q_cos, self.q_sin)
        k = _heads(attn.k_proj(k_in), attn.num_heads)
        spatial = self.slots * self.tokens
        k = torch.cat((rotate(k[:, :, :spatial], self.k_cos, self.k_sin), k[:, :, spatial:]), dim=2)
        values = v_in[:, None].expand(-1, attn.num_heads, -1, -1)  # unprojected memories, every head
        if self.mask_in_channel:
            scale = q.shape[-1] ** -0.5
            q = torch.cat((q, torch.ones_like(q[..., :1])), dim=-1)
            k = torch.cat((k, (bias / scale).expand(-1, attn.num_heads, -1, -1)), dim=-1)
            mixed = F.scaled_dot_product_attention(q, k, values, scale=scale)
        else:
            mixed = F.scaled_dot_product_attention(q, k, values, attn_mask=bias.transpose(-1, -2))
        projected: torch.Tensor = attn.out_proj(_merge_heads(_project_per_head(attn.v_proj, mixed)))
        return projected


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    return x.reshape(*x.shape[:-1], heads, -1).transpose(1, 2)


def _project_per_head(proj: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``proj`` (in -> heads·d) applied to per-head mixtures x (B, heads, N, in) -> (B, heads, N, d): head h
    gets rows h·d ... (h+1)·d of the weight and bias, as ``_heads(proj(...))`` would give it."""
    heads = x.shape[1]
    weight = proj.weight.reshape(heads, -1, proj.in_features).transpose(1, 2)
    out = x @ weight
    return out + proj.bias.reshape(heads, 1, -1) if proj.bias is not None else out


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(-2)


class MaskDecoderStage(nn.Module):
    """image_embeddings (B, 256, h, w), sparse (B, T, 256), dense (B, 256, h, w), feat_s0 (B, 32, 4h, 4w),
    feat_s1 (B, 64, 2h, 2w) -> masks (B, 4, 4h, 4w), iou (B, 4), mask_tokens (B, 4, 256), object_score (B, 1).
    The image positional encoding is a constant of the image size."""

    def __init__(self, decoder: Any, image_pe: torch.Tensor) -> None:
        super().__init__()
        self.decoder = decoder
        self.register_buffer("image_pe", image_pe, persistent=False)

    def forward(self, image_embeddings: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor,
                feat_s0: torch.Tensor, feat_s1: torch.Tensor) -> tuple[torch.Tensor, ...]:  # fmt: skip
        masks, iou, tokens, score = self.decoder.predict_masks(
            image_embeddings=image_embeddings, image_pe=self.image_pe, sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense, repeat_image=False, high_res_features=[feat_s0, feat_s1],
        )  # fmt: skip
        return masks, iou, tokens, score


class MemoryEncoderStage(nn.Module):
    """pix_feat (B, 256, h, w), mask (B, 1, S, S) already through sigmoid/scale -> features (B, 64, h, w)."""

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pix_feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        x = e.pix_feat_proj(pix_feat) + e.mask_downsampler(mask)
        out: torch.Tensor = e.out_proj(e.fuser(x))
        return out


class ChannelLayerNorm(nn.Module):
    """SAM 2's ``LayerNorm2d`` (over channels of NCHW) written with ``F.layer_norm``, so that it exports as
    one ``LayerNormalization`` node (TensorRT keeps that in fp32) instead of mean/sub/pow/sqrt in fp16."""

    def __init__(self, norm: Any) -> None:
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = float(norm.eps)
        self.channels = int(norm.weight.shape[0])  # a Python int: traced shapes would not be constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.channels,), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def with_exportable_norms(module: nn.Module) -> int:
    """Replaces each ``LayerNorm2d`` in ``module`` (in place) by ``ChannelLayerNorm``; returns how many."""
    from sam2.modeling.sam2_utils import LayerNorm2d  # noqa: PLC0415 - sam2 loads with this engine only

    replaced = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, LayerNorm2d):
                setattr(parent, name, ChannelLayerNorm(child))
                replaced += 1
    return replaced
