"""Classical (weight-free) tracker: the detector of lptem.engine.detect plus gated Hungarian association.

Objects come from prompts (a box and/or clicks) or, with auto-detect on, from detections that no tracked
object claims. An object that finds no detection within its gate is reported ``visible = False`` at its
last position; prompted objects are kept until removed, auto-detected ones are forgotten after
``forget_after`` frames without a detection. The ``score`` is the component's peak signal-to-noise ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lptem.engine.api import (
    Frame,
    IdAllocator,
    ObjectInfo,
    ObjectResult,
    Prompt,
    PromptError,
    StepResult,
    UnknownObjectError,
)
from lptem.engine.assign import gated_assignment
from lptem.engine.detect import Detector
from lptem.engine.detection import DEFAULT_RADIUS_PX, Detection, DetectionSet, DetectorConfig
from lptem.engine.prediction import MIN_STEPS, StepHistory
from lptem.engine.proposals import CandidateConfirmer
from lptem.engine.scale import ParticleScale

MIN_BOX_PX = 2.0
"""A prompt box must be at least this wide and high: it gives the object's scale."""
ELONGATED = 1.5
"""A prompt box with one side this many times the other marks a rod (never split)."""


@dataclass(frozen=True, slots=True)
class ClassicalConfig(DetectorConfig):
    """Detector parameters plus association parameters. Lengths in px."""

    gate_px: float | None = None
    """A fixed search radius around each object's predicted position, px. Default: each object's own,
    from its recent motion (three spreads of its displacements, at least its own radius;
    lptem.engine.prediction), so a particle jumping 30 px per frame keeps its id and a still one does
    not reach its neighbours."""
    initial_gate_px: float = 40.0
    """Search radius of an object whose motion is not known yet (its first frames), px; at least twice
    its own radius."""
    track_sigma: float = 3.5
    """An object that finds no detection is searched for within its (base) gate down to this
    significance (noise s.d.), below the detection threshold ``min_peak_sigma``."""
    gate_growth_cap: float = 3.0
    """A lost object's gate grows like sqrt(1 + frames missing), diffusively, up to this multiple, so
    it can re-capture its particle after a short occlusion or a merge instead of losing its id."""
    forget_after: int = 100
    """Frames an auto-detected object may go undetected before it is dropped."""
    auto_detect: bool = False
    """Propose objects from detections that no tracked object claims (first frame and newcomers)."""
    confirm_frames: int = 3
    """Auto-detect: a candidate becomes an object after this many consecutive detections (noise
    peaks rarely repeat; particles do)."""
    estimate_scale: bool = True
    """With auto-detect and no ``particle_radius_px``, estimate the radius from the first frames
    (``lptem.engine.scale``: up to ESTIMATE_FRAMES = 5) and report it in status; False: keep
    DEFAULT_RADIUS_PX (8 px). Packed particles are split only at a known radius."""
    object_scale: bool = True
    """A prompted object whose box says it is much larger or smaller than ``particle_radius_px`` (radius
    0.4 x the box's shorter side, more than 1.5 times off) is detected at its own scale: its denoising,
    mask area limits, background scale and binning follow from that radius, so one frame can hold
    particles of very different sizes. False: every object at ``particle_radius_px``."""

    def __post_init__(self) -> None:
        DetectorConfig.__post_init__(self)
        if self.gate_px is not None and self.gate_px <= 0:
            raise ValueError("gate_px must be positive (or unset: each object's own)")
        if (
            self.initial_gate_px <= 0
            or self.forget_after < 0
            or self.confirm_frames < 1
            or self.gate_growth_cap < 1
        ):
            raise ValueError(
                "need initial_gate_px > 0, forget_after >= 0, confirm_frames >= 1, gate_growth_cap >= 1"
            )


_Scale = tuple[float, bool]
"""A detection pass: particle radius (px) and whether packed particles are split."""


@dataclass(slots=True)
class _Track:
    id: int
    source: str
    last: ObjectResult | None = None
    pending: Prompt | None = None
    """A prompt not yet matched to a detection (new object or correction)."""
    frames_tracked: int = 0
    frames_missing: int = 0
    motion: StepHistory = field(default_factory=StepHistory)
    radius_px: float | None = None
    """The object's own scale (from its prompt box), or None: the configured particle radius."""
    elongated: bool = False
    """Its prompt box is elongated (one side over ``ELONGATED`` times the other): a rod, whose maxima
    along its length are one particle, so its component is never split (lptem.engine.split)."""


class ClassicalTracker:
    """Implements :class:`lptem.engine.api.Tracker` with :class:`lptem.engine.detect.Detector` detections."""

    name = "classical"

    def __init__(self, config: ClassicalConfig | None = None) -> None:
        self.config = config or ClassicalConfig()
        self._particle_scale = ParticleScale.from_given(self.config.particle_radius_px, DEFAULT_RADIUS_PX)
        self._detectors: dict[_Scale, Detector] = {}
        self._auto_detect = self.config.auto_detect
        self._tracks: dict[int, _Track] = {}
        candidate_gate = self.config.gate_px or self.config.initial_gate_px
        self._candidates = CandidateConfirmer(candidate_gate, self.config.confirm_frames)
        self._ids = IdAllocator()
        self._shape: tuple[int, int] | None = None
        self._index = 0
        """Frames processed so far (the motion model's clock)."""

    # ------------------------------------------------------------------ objects
    def add_object(self, prompt: Prompt, obj_id: int | None = None) -> int:
        if self._shape is not None:
            prompt.check_inside(self._shape)
        box = prompt.box
        if box is not None and min(box.x1 - box.x0, box.y1 - box.y0) < MIN_BOX_PX:
            raise PromptError(
                f"box {box.x1 - box.x0:g} x {box.y1 - box.y0:g} px is smaller than {MIN_BOX_PX:g} px: draw "
                "it around the particle (its size sets the object's scale), or click on the particle instead"
            )
        if obj_id is None:
            obj_id = self._ids.allocate(self._tracks)
        else:
            self._ids.claim(obj_id)
        track = self._tracks.get(obj_id)
        if track is None:
            track = self._tracks[obj_id] = _Track(obj_id, "prompt", pending=prompt)
        else:
            track.pending = prompt
        if box is not None:
            track.radius_px = self._prompted_radius(prompt)
            long, short = sorted((box.x1 - box.x0, box.y1 - box.y0), reverse=True)
            track.elongated = long > ELONGATED * short
        return obj_id

    def _prompted_radius(self, prompt: Prompt) -> float | None:
        """The object's own radius from its prompt box, when it differs enough from the configured one."""
        b = prompt.box
        if b is None or not self.config.object_scale:
            return None
        radius = max(1.0, round(0.4 * min(b.x1 - b.x0, b.y1 - b.y0)))
        ratio = radius / self._particle_scale.radius_px
        return radius if not 1 / 1.5 <= ratio <= 1.5 else None

    @property
    def _default_scale(self) -> _Scale:
        split = self.config.split if self.config.split is not None else self._particle_scale.known
        return self._particle_scale.radius_px, split

    def _radius(self, track: _Track) -> float:
        return track.radius_px or self._particle_scale.radius_px

    def _scale(self, track: _Track) -> _Scale:
        if track.radius_px is None:
            radius, split = self._default_scale
        else:  # its own scale, known from its box
            radius, split = track.radius_px, self.config.split is not False
        return radius, split and not track.elongated

    def _detector_for(self, scale: _Scale) -> Detector:
        """A detector at ``scale``: at an object's own radius the scale-dependent settings derive from it,
        the rest as configured."""
        detector = self._detectors.get(scale)
        if detector is None:
            radius, split = scale
            config = replace(self.config, particle_radius_px=radius, split=split)
            if radius != self._particle_scale.radius_px:
                config = replace(config, smoothing_px=None, min_area_px=None, max_area_px=None,
                                 background_scale_px=None, bin_factor=None)  # fmt: skip
            detector = self._detectors[scale] = Detector(config)
        return detector

    def settings(self) -> dict[str, Any]:
        return self._particle_scale.describe()

    def remove_object(self, obj_id: int) -> None:
        if self._tracks.pop(obj_id, None) is None:
            raise UnknownObjectError(f"no object with id {obj_id}")

    def objects(self) -> tuple[ObjectInfo, ...]:
        return tuple(
            ObjectInfo(t.id, t.source, t.frames_tracked, t.frames_missing, t.last)
            for t in sorted(self._tracks.values(), key=lambda t: t.id)
        )

    @property
    def auto_detect(self) -> bool:
        return self._auto_detect

    def set_auto_detect(self, enabled: bool) -> None:
        self._auto_detect = enabled
        self._candidates.clear()

    def reset(self) -> None:
        self._particle_scale = ParticleScale.from_given(self.config.particle_radius_px, DEFAULT_RADIUS_PX)
        self._tracks.clear()
        self._candidates.clear()
        self._ids.reset()
        self._shape = None

    # ------------------------------------------------------------------ frames
    def step(self, frame: Frame, *, want_labels: bool = False) -> StepResult:
        self._index += 1
        self._shape = (int(frame.shape[0]), int(frame.shape[1]))
        if self._auto_detect and self.config.estimate_scale and self._particle_scale.open:
            self._particle_scale.estimate_from(frame, dark=self.config.polarity == "dark")
        default = self._default_scale
        groups: dict[_Scale, list[_Track]] = {default: []} if self._auto_detect else {}
        for track in self._tracks.values():
            groups.setdefault(self._scale(track), []).append(track)
        held: list[tuple[Detection, _Track]] = []  # what each object holds this frame
        claimed: set[int] = set()
        found: DetectionSet | None = None  # the default scale's detections (newcomers come from them)
        for scale, tracks in groups.items():  # one detection pass per scale that some object needs
            here = self._detector_for(scale).detect(frame, self._seeds(tracks))
            pairs = self._associate(tracks, here)
            if scale == default:
                found, claimed = here, {j for _, j in pairs}
            for i, j in pairs:
                self._update(tracks[i], here.detections[j])
                held.append((here.detections[j], tracks[i]))
            for i in sorted(set(range(len(tracks))) - {i for i, _ in pairs}):
                near = self._search_near(tracks[i], here, [d for d, _ in held])
                if near is None:
                    self._mark_missing(tracks[i])
                else:
                    self._update(tracks[i], near)
                    held.append((near, tracks[i]))
        removed = self._forget_lost()
        added = self._adopt_newcomers(found, claimed, held) if found is not None and self._auto_detect else []
        objects = tuple(t.last for t in sorted(self._tracks.values(), key=lambda t: t.id) if t.last)
        labels = _paint(frame.shape, [(d, t.id) for d, t in held]) if want_labels else None
        return StepResult(objects, labels, tuple(added), tuple(removed))

    def _seeds(self, tracks: list[_Track]) -> list[tuple[float, float]]:
        """Predicted positions (px) of the objects whose motion is known well enough to place them within
        half their radius: where a component holding several of them is split (lptem.engine.split)."""
        seeds = []
        for t in tracks:
            spread = t.motion.spread()
            if t.pending is not None or t.last is None or spread is None or len(t.motion) < MIN_STEPS:
                continue
            if spread * np.sqrt(1.0 + t.frames_missing) <= 0.5 * self._radius(t):
                seeds.append(self._expected(t)[0])
        return seeds

    def _adopt_newcomers(
        self, found: DetectionSet, claimed: set[int], held: list[tuple[Detection, _Track]]
    ) -> list[int]:
        """Confirmed candidates among unclaimed detections become new objects (auto-detect)."""
        free = [
            det
            for j, det in enumerate(found.detections)
            if j not in claimed and not self._near_visible_object(det)
        ]
        added = []
        for j in self._candidates.confirm(free):
            track = self._adopt(free[j])
            held.append((free[j], track))
            added.append(track.id)
        return added

    def _associate(self, tracks: list[_Track], found: DetectionSet) -> list[tuple[int, int]]:
        dets = found.detections
        det_xy = np.array([(d.measurement.x, d.measurement.y) for d in dets], dtype=np.float64)
        refs = np.empty((len(tracks), 2))
        gates = np.full(len(tracks), self.config.gate_px)
        allowed = np.ones((len(tracks), len(dets)), dtype=bool)
        for i, track in enumerate(tracks):
            if track.pending is not None:
                refs[i] = track.pending.anchor()
                gates[i], allowed[i] = self._prompt_gate(track.pending, dets, self._radius(track))
            else:
                refs[i], gates[i] = self._expected(track)
        return gated_assignment(refs, det_xy, gates, allowed)

    def _expected(self, track: _Track) -> tuple[tuple[float, float], float]:
        """Where a seen object should be in this frame (px) and how far from there it may be (px)."""
        assert track.last is not None  # a track without a pending prompt has been seen
        at = track.motion.predict(self._index) or (track.last.x, track.last.y)
        growth = min(np.sqrt(1.0 + track.frames_missing), self.config.gate_growth_cap)
        if self.config.gate_px is not None:
            return at, self.config.gate_px * growth
        area = track.last.area_px
        radius = float(np.sqrt(area / np.pi)) if area > 0 else self._radius(track)
        initial = max(self.config.initial_gate_px, 2 * radius)
        gate = track.motion.gate(radius, initial, track.frames_missing, self.config.gate_growth_cap)
        return at, gate

    def _prompt_gate(
        self, prompt: Prompt, dets: tuple[Detection, ...], margin: float
    ) -> tuple[float, npt.NDArray[np.bool_]]:
        """Gate (px) and admissible detections for a prompt: inside its box widened by ``margin`` px (the
        object's radius), holding its clicks."""
        allowed = np.ones(len(dets), dtype=bool)
        gate = self.config.gate_px or self.config.initial_gate_px
        if prompt.box is not None:
            b = prompt.box
            gate = float(np.hypot(b.x1 - b.x0, b.y1 - b.y0)) / 2 + margin
            for j, d in enumerate(dets):
                m = d.measurement
                allowed[j] = b.x0 - margin <= m.x <= b.x1 + margin and b.y0 - margin <= m.y <= b.y1 + margin
        for p in prompt.points:
            if not p.positive:
                allowed &= np.array([not d.contains(p.x, p.y) for d in dets], dtype=bool)
        return gate, allowed

    def _search_near(self, track: _Track, found: DetectionSet, taken: list[Detection]) -> Detection | None:
        """A weaker detection near a known object's last position (or inside its pending prompt),
        unless an object holds it already."""
        radius = self._radius(track)
        if track.pending is not None:
            x, y = track.pending.anchor()
            reach = self._prompt_gate(track.pending, (), radius)[0]
        elif track.last is not None:
            (x, y), reach = self._expected(track)
        else:
            return None
        near = self._detector_for(self._scale(track)).detect_near(found, x, y, reach, self.config.track_sigma)
        if near is None or (
            track.pending is not None and not self._prompt_gate(track.pending, (near,), radius)[1][0]
        ):
            return None
        m, limit = near.measurement, 2 * radius
        if any(np.hypot(d.measurement.x - m.x, d.measurement.y - m.y) < limit for d in taken):
            return None
        own = np.hypot(m.x - x, m.y - y)
        for other in self._tracks.values():  # a candidate nearer to another object belongs to it
            if (
                other is not track
                and other.last is not None
                and np.hypot(m.x - other.last.x, m.y - other.last.y) < own
            ):
                return None
        return near

    def _update(self, track: _Track, det: Detection) -> None:
        m = det.measurement
        if track.pending is not None:  # a prompt (new object or correction) places it anew
            track.motion.clear()
        track.motion.add(self._index, m.x, m.y)
        track.last = ObjectResult(
            id=track.id,
            x=m.x,
            y=m.y,
            theta_deg=m.theta_deg,
            area_px=m.area_px,
            bbox=m.bbox,
            score=det.peak_snr,
            visible=True,
        )
        track.pending = None
        track.frames_tracked += 1
        track.frames_missing = 0

    def _mark_missing(self, track: _Track) -> None:
        track.frames_missing += 1
        if track.last is not None:
            track.last = replace(track.last, visible=False, score=0.0)
        elif track.pending is not None:  # prompted but never found: report the prompt's position
            x, y = track.pending.anchor()
            track.last = ObjectResult(track.id, x, y, 0.0, 0.0, track.pending.bbox(), 0.0, False)

    def _forget_lost(self) -> list[int]:
        lost = [
            t.id
            for t in self._tracks.values()
            if t.source == "auto" and t.frames_missing > self.config.forget_after
        ]
        for obj_id in lost:
            del self._tracks[obj_id]
        return lost

    def _near_visible_object(self, det: Detection) -> bool:
        """A detection this close to a tracked object (within twice its radius, or inside the box of one
        with its own scale) is a fragment of it, not a newcomer."""
        m = det.measurement
        for t in self._tracks.values():
            if t.last is None or not t.last.visible:
                continue
            x0, y0, x1, y1 = t.last.bbox
            inside = t.radius_px is not None and x0 <= m.x < x1 and y0 <= m.y < y1  # a large object's piece
            if inside or np.hypot(t.last.x - m.x, t.last.y - m.y) < 2 * self._radius(t):
                return True
        return False

    def _adopt(self, det: Detection) -> _Track:
        track = _Track(self._ids.allocate(self._tracks), "auto")
        self._tracks[track.id] = track
        self._update(track, det)
        return track


def _paint(shape: tuple[int, ...], held: list[tuple[Detection, int]]) -> npt.NDArray[np.uint16]:
    """Instance label map: each held detection's mask painted with its object id."""
    labels = np.zeros(shape[:2], dtype=np.uint16)
    for det, obj_id in held:
        det.paint(labels, obj_id)
    return labels
