"""SAM 2 as a streaming tracker: one frame at a time, bounded memory, objects added and removed any time.

Per frame: the image encoder runs once for all objects; objects whose memory banks have the same
structure are batched through memory attention, mask decoder and memory encoder with SAM 2's own
``track_step``; a prompt (new object, or a correction on a tracked one) is applied to the frame being
processed exactly as the official ``SAM2VideoPredictor.add_new_points_or_box`` applies it to a frame,
and its memory is encoded as the predictor's ``propagate_in_video_preflight`` encodes it. Memory banks
keep only what SAM 2's memory selection can still use (lptem.engine.sam2.bank). See docs/engines.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from lptem.engine.api import (
    Box,
    Frame,
    IdAllocator,
    ObjectInfo,
    ObjectResult,
    Prompt,
    StepResult,
    UnknownObjectError,
)
from lptem.engine.detect import Detector
from lptem.engine.detection import DetectorConfig
from lptem.engine.measure import check_symmetry, orientation_deg, symmetry_angle_deg
from lptem.engine.proposals import CandidateConfirmer
from lptem.engine.sam2.backends import BackendConfig, bind_backend
from lptem.engine.sam2.bank import Memory, MemoryBank, output_dict
from lptem.engine.sam2.models import build_model, resolve_device
from lptem.engine.sam2.postprocess import clean, fill_holes, label_map, measure, to_frame
from lptem.engine.sam2.preprocess import Preprocessor

log = logging.getLogger(__name__)

STREAM_FRAMES = 1 << 30
"""SAM 2's ``num_frames`` for an open-ended stream: it behaves as the official predictor on any video
at least ``max_obj_ptrs_in_encoder`` (16) frames long."""


@dataclass(frozen=True, slots=True)
class Sam2Config(BackendConfig):
    """The SAM 2 engine's ``-E`` options; the backend ones come from ``BackendConfig``."""

    model: str = "sam2.1_hiera_t"
    """A name from lptem.engine.sam2.models.MODELS (``samem`` for SAM-EM's fine-tune)."""
    checkpoint: str | None = None
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    random_weights: bool = False
    """Untrained, seeded weights: for plumbing tests and benchmarks only (warns loudly)."""
    seed: int = 0
    image_size: int | None = None
    """Model input side, px; default the model's own (1024). Smaller is faster and coarser."""
    normalization: Literal["robust", "none"] = "robust"
    autocast: bool = True
    """bfloat16 autocast on CUDA."""
    fill_hole_area: int = 8
    """Holes up to this many low-res px are filled (SAM 2's video predictor default)."""
    max_conditioning_frames: int = 4
    corrections_as_conditioning: bool = False
    """Keep correction prompts as conditioning memory (SAM 2's default keeps only the first prompt)."""
    auto_detect: bool = False
    particle_radius_px: float = 8.0
    """For automatic prompts: the classical detector's particle scale."""
    polarity: Literal["dark", "bright"] = "dark"
    confirm_frames: int = 3
    forget_after: int = 100
    """Auto-detected objects that stay invisible this many frames are dropped."""
    symmetry: int = 2
    """Rotational symmetry of the particles (1, 2, 4, 6): θ modulo 360°/symmetry, measured from the masks
    as the classical engine measures it (lptem.engine.measure)."""

    def __post_init__(self) -> None:
        check_symmetry(self.symmetry)


@dataclass(slots=True)
class _Object:
    id: int
    source: str
    bank: MemoryBank
    pending: Prompt | None = None
    last: ObjectResult | None = None
    frames_tracked: int = 0
    frames_missing: int = 0


class Sam2Tracker:
    """Implements :class:`lptem.engine.api.Tracker` with a SAM 2 model."""

    name = "sam2"

    def __init__(self, config: Sam2Config | None = None, model: Any = None) -> None:
        self.config = c = config or Sam2Config()
        self.device = resolve_device(c.device)
        if model is None:
            checkpoint = Path(c.checkpoint) if c.checkpoint else None
            model = build_model(c.model, checkpoint, self.device, random_weights=c.random_weights,
                                image_size=c.image_size, seed=c.seed)  # fmt: skip
        if c.backend != "torch":
            _check_slots(c, model.num_maskmem)
        checkpoint = Path(c.checkpoint) if c.checkpoint else None
        self.model = bind_backend(model, c.model, checkpoint, c.seed, c)
        self.preprocess = Preprocessor(model.image_size, self.device, c.normalization)
        # SAM 2 segments touching particles itself; the detector only proposes where to prompt.
        self.detector = Detector(
            DetectorConfig(particle_radius_px=c.particle_radius_px, polarity=c.polarity, split=False)
        )
        self._candidates = CandidateConfirmer(4 * c.particle_radius_px, c.confirm_frames)
        self._auto_detect = c.auto_detect
        self._objects: dict[int, _Object] = {}
        self._ids = IdAllocator()
        self._maskmem_pos: list[torch.Tensor] | None = None
        self.raw_logits: dict[int, torch.Tensor] = {}
        """This frame's low-res logits per object, before the output clean-up (for parity checks)."""
        self._t = 0
        self._shape: tuple[int, int] | None = None

    # ------------------------------------------------------------------ objects
    def _new_bank(self) -> MemoryBank:
        m = self.model
        return MemoryBank(m.num_maskmem, m.memory_temporal_stride_for_eval, m.max_obj_ptrs_in_encoder,
                          self.config.max_conditioning_frames)  # fmt: skip

    def add_object(self, prompt: Prompt, obj_id: int | None = None) -> int:
        if self._shape is not None:
            prompt.check_inside(self._shape)
        if obj_id is None:
            obj_id = self._ids.allocate(self._objects)
        else:
            self._ids.claim(obj_id)
        obj = self._objects.get(obj_id)
        if obj is None:
            self._objects[obj_id] = _Object(obj_id, "prompt", self._new_bank(), pending=prompt)
        else:
            obj.pending = prompt
        return obj_id

    def remove_object(self, obj_id: int) -> None:
        if self._objects.pop(obj_id, None) is None:
            raise UnknownObjectError(f"no object with id {obj_id}")

    def objects(self) -> tuple[ObjectInfo, ...]:
        return tuple(ObjectInfo(o.id, o.source, o.frames_tracked, o.frames_missing, o.last)
                     for o in sorted(self._objects.values(), key=lambda o: o.id))  # fmt: skip

    @property
    def auto_detect(self) -> bool:
        return self._auto_detect

    def set_auto_detect(self, enabled: bool) -> None:
        self._auto_detect = enabled
        self._candidates.clear()

    def reset(self) -> None:
        self._objects.clear()
        self._candidates.clear()
        self._ids.reset()
        self._t = 0
        self._shape = None

    def settings(self) -> dict[str, Any]:
        return {}  # nothing chosen at run time

    def bank_sizes(self) -> dict[int, tuple[int, int, int]]:
        """Per object: (conditioning frames, mask memories, object pointers) held."""
        return {o.id: o.bank.sizes() for o in self._objects.values()}

    # ------------------------------------------------------------------ frames
    def step(self, frame: Frame, *, want_labels: bool = False) -> StepResult:
        self._shape = (int(frame.shape[0]), int(frame.shape[1]))
        t = self._t
        with torch.inference_mode(), self._autocast():
            backbone = self.model.forward_image(self.preprocess(frame))
            outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            for group in self._groups():
                self._track(group, backbone, t, outputs)
            for obj in [o for o in self._objects.values() if o.pending is not None]:
                self._apply_prompt(obj, backbone, t, outputs)
            for obj in self._objects.values():
                obj.bank.prune(t + 1)
            self.raw_logits = {obj_id: logits for obj_id, (logits, _) in outputs.items()}
            frame_logits = self._publish(outputs)
            labels = label_map(frame_logits, sorted(outputs)) if want_labels else None
            added = self._propose(frame, frame_logits, sorted(outputs)) if self._auto_detect else []
        removed = self._forget_lost()
        self._t += 1
        objects = tuple(o.last for o in sorted(self._objects.values(), key=lambda o: o.id) if o.last)
        return StepResult(objects, labels, tuple(added), tuple(removed))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda" and self.config.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _groups(self) -> list[list[_Object]]:
        """Tracked objects grouped by memory structure (each group is one batched SAM 2 call)."""
        groups: dict[Any, list[_Object]] = defaultdict(list)
        for obj in sorted(self._objects.values(), key=lambda o: o.id):
            if obj.bank:
                groups[obj.bank.signature()].append(obj)
        return list(groups.values())

    def _features(self, backbone: dict[str, Any], batch: int) -> tuple[Any, Any, Any]:
        expanded = {
            "backbone_fpn": [f.expand(batch, -1, -1, -1) for f in backbone["backbone_fpn"]],
            "vision_pos_enc": [p.expand(batch, -1, -1, -1) for p in backbone["vision_pos_enc"]],
        }
        _, feats, pos, sizes = self.model._prepare_backbone_features(expanded)
        return feats, pos, sizes

    def _track(self, group: list[_Object], backbone: dict[str, Any], t: int,
               outputs: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:  # fmt: skip
        feats, pos, sizes = self._features(backbone, len(group))
        out = self.model.track_step(
            frame_idx=t, is_init_cond_frame=False, current_vision_feats=feats,
            current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None, mask_inputs=None,
            output_dict=output_dict([o.bank for o in group], self._maskmem_pos), num_frames=STREAM_FRAMES,
            track_in_reverse=False, run_mem_encoder=True,
        )  # fmt: skip
        self._remember_pos(out["maskmem_pos_enc"])
        low = fill_holes(out["pred_masks"], self.config.fill_hole_area)
        for i, obj in enumerate(group):
            memory = Memory(out["maskmem_features"][i : i + 1].to(torch.bfloat16), out["obj_ptr"][i : i + 1],
                            out["object_score_logits"][i : i + 1])  # fmt: skip
            obj.bank.add(t, memory, conditioning=False)
            outputs[obj.id] = (low[i : i + 1], out["object_score_logits"][i : i + 1])

    def _apply_prompt(self, obj: _Object, backbone: dict[str, Any], t: int,
                      outputs: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:  # fmt: skip
        """As ``add_new_points_or_box`` on this frame, then the memory encoding of its preflight."""
        assert obj.pending is not None
        assert self._shape is not None
        prompt, obj.pending = obj.pending, None
        is_init = not obj.bank
        previous = None if is_init else outputs[obj.id][0].clamp(-32.0, 32.0)
        feats, pos, sizes = self._features(backbone, 1)
        memory_in = output_dict([obj.bank], self._maskmem_pos) if obj.bank else _EMPTY
        out = self.model.track_step(
            frame_idx=t, is_init_cond_frame=is_init, current_vision_feats=feats,
            current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=self._points(prompt),
            mask_inputs=None, output_dict=memory_in, num_frames=STREAM_FRAMES, track_in_reverse=False,
            run_mem_encoder=False, prev_sam_mask_logits=previous,
        )  # fmt: skip
        low = fill_holes(out["pred_masks"], self.config.fill_hole_area)
        size = (self.model.image_size, self.model.image_size)
        high = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        features, pos_enc = self.model._encode_new_memory(
            current_vision_feats=feats, feat_sizes=sizes, pred_masks_high_res=high,
            object_score_logits=out["object_score_logits"], is_mask_from_pts=True,
        )  # fmt: skip
        self._remember_pos(pos_enc)
        memory = Memory(features.to(torch.bfloat16), out["obj_ptr"], out["object_score_logits"])
        obj.bank.add(t, memory, conditioning=is_init or self.config.corrections_as_conditioning)
        outputs[obj.id] = (low, out["object_score_logits"])

    def _points(self, prompt: Prompt) -> dict[str, torch.Tensor]:
        """Prompt -> SAM 2 point inputs: a box as two points labelled 2 and 3 first, then the clicks."""
        assert self._shape is not None
        coords: list[tuple[float, float]] = []
        labels: list[int] = []
        if prompt.box is not None:
            coords += [(prompt.box.x0, prompt.box.y0), (prompt.box.x1, prompt.box.y1)]
            labels += [2, 3]
        coords += [(p.x, p.y) for p in prompt.points]
        labels += [1 if p.positive else 0 for p in prompt.points]
        rows, cols = self._shape
        scale = torch.tensor([self.model.image_size / cols, self.model.image_size / rows])
        points = torch.tensor(coords, dtype=torch.float32) * scale
        return {
            "point_coords": points[None].to(self.device),
            "point_labels": torch.tensor([labels], dtype=torch.int32, device=self.device),
        }

    def _remember_pos(self, pos_enc: list[torch.Tensor] | None) -> None:
        """The memory positional encoding is the same for every frame and object: keep one copy."""
        if self._maskmem_pos is None and pos_enc is not None:
            self._maskmem_pos = [p[0:1].clone() for p in pos_enc]

    # ------------------------------------------------------------------ results
    def _publish(self, outputs: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Clean the masks, measure them at frame resolution and update the objects' results."""
        assert self._shape is not None
        ids = sorted(outputs)
        if not ids:
            return torch.zeros((0, *self._shape), device=self.device)
        low = clean(torch.cat([outputs[i][0] for i in ids]).float())
        frame_logits = to_frame(low, self._shape)
        numbers = measure(frame_logits > 0, self.config.symmetry)
        scores = torch.cat([outputs[i][1] for i in ids]).float().flatten().cpu().numpy()
        for obj_id, row, score in zip(ids, numbers, scores, strict=True):
            self._update(self._objects[obj_id], row, float(score))
        return frame_logits

    def _update(self, obj: _Object, row: np.ndarray, score: float) -> None:
        result = object_result(obj.id, row, score, obj.last, self.config.symmetry)
        if result is not None and result.visible:
            obj.frames_tracked += 1
            obj.frames_missing = 0
        else:
            obj.frames_missing += 1
        obj.last = result

    def _propose(self, frame: Frame, frame_logits: torch.Tensor, ids: list[int]) -> list[int]:
        """Confirmed detections that no tracked mask covers become box prompts for the next frame."""
        found = self.detector.detect(frame)
        occupied = (frame_logits > 0).any(dim=0) if ids else None
        free = []
        for det in found.detections:
            r, c = round(det.measurement.y), round(det.measurement.x)
            if occupied is None or not bool(occupied[r, c]):
                free.append(det)
        added = []
        margin = self.config.particle_radius_px / 2
        for j in self._candidates.confirm(free):
            x0, y0, x1, y1 = free[j].measurement.bbox
            box = Box(x0 - margin, y0 - margin, x1 - 1 + margin, y1 - 1 + margin)
            obj_id = self._ids.allocate(self._objects)
            self._objects[obj_id] = _Object(obj_id, "auto", self._new_bank(), pending=Prompt(box=box))
            added.append(obj_id)
        return added

    def _forget_lost(self) -> list[int]:
        lost = [o.id for o in self._objects.values()
                if o.source == "auto" and o.frames_missing > self.config.forget_after]  # fmt: skip
        for obj_id in lost:
            del self._objects[obj_id]
        return lost


def _check_slots(config: Sam2Config, num_maskmem: int) -> None:
    """The exported graphs hold ``memory_slots`` memories per object: refuse settings that need more."""
    conditioning = config.max_conditioning_frames if config.corrections_as_conditioning else 1
    needed = conditioning + num_maskmem - 1
    if needed > config.memory_slots:
        raise ValueError(
            f"{conditioning} conditioning + {num_maskmem - 1} recent memories need memory_slots >= {needed} "
            f"(graphs have {config.memory_slots}): export --memory-slots {needed}, -E memory_slots={needed}"
        )


def object_result(
    obj_id: int, row: np.ndarray, score: float, last: ObjectResult | None, symmetry: int = 2
) -> ObjectResult | None:
    """One object's result from its measurement ``row`` (lptem.engine.sam2.postprocess.measure) and SAM 2's
    object score logit. A score <= 0 (SAM 2: the object is not in the frame) or an empty mask gives
    ``visible = False`` at the last known position (None if it was never seen)."""
    area, x, y, mu20, mu02, mu11, x0, y0, x1, y1 = row[:10]
    if score > 0 and area > 0:
        if symmetry == 2:
            theta = orientation_deg(mu20, mu02, mu11)
        else:
            theta = symmetry_angle_deg(complex(row[10], row[11]), symmetry)
        bbox = (int(x0), int(y0), int(x1), int(y1))
        return ObjectResult(obj_id, float(x), float(y), theta, float(area), bbox, score, True)
    if last is None:
        return None
    return ObjectResult(obj_id, last.x, last.y, last.theta_deg, 0.0, last.bbox, score, False)


_EMPTY: dict[str, dict[int, Any]] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
