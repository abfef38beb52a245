"""The shipped feedback controllers: keep a particle centred, and guard the dose by a particle's dynamics."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

from lptem.clients.feedback.actuators import Beam, Stage
from lptem.clients.feedback.calibration import ActuatorMap
from lptem.clients.feedback.loop import Action, Blank, MoveStage, SetDose
from lptem.service.protocol import MsdMessage, TrackedObject, TrackMessage

log = logging.getLogger("lptem.control")


def nearest_to_centre(track: TrackMessage) -> TrackedObject | None:
    """The visible object nearest the centre of the frame (None: none visible, or no frame shape)."""
    visible = [o for o in track.objects if o.visible]
    if not visible or track.shape is None:
        return None
    rows, cols = track.shape
    return min(visible, key=lambda o: math.hypot(o.x - (cols - 1) / 2, o.y - (rows - 1) / 2))


@dataclass
class CentreParticle:
    """Move the stage so that one particle stays at the centre of the field of view.

    ``particle`` None locks onto the visible object nearest the centre in the first result. Each move
    corrects ``gain`` of the particle's offset; offsets under ``deadband_px`` are left alone. ``stage_map``
    (``lptem calibrate``) turns the offset into a move in the actuator's own axes; without one the axes
    are assumed to be the camera's and the frames' pixel size the scale (said once, as a warning).
    """

    particle: int | None = None
    gain: float = 0.8
    deadband_px: float = 3.0
    pixel_size_nm: float | None = None
    """Used when the frames carry no pixel size (and there is no ``stage_map``)."""
    stage_map: ActuatorMap | None = None
    name: str = "centre"
    topics: tuple[str, ...] = ("track",)
    needs: tuple[type, ...] = (Stage,)
    _warned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 0 < self.gain <= 1:
            raise ValueError(f"gain must be in (0, 1] (1 corrects the whole offset), got {self.gain}")
        if not (math.isfinite(self.deadband_px) and self.deadband_px >= 0):
            raise ValueError(f"deadband_px must be >= 0, got {self.deadband_px}")
        if self.pixel_size_nm is not None and not (
            math.isfinite(self.pixel_size_nm) and self.pixel_size_nm > 0
        ):
            raise ValueError(f"pixel_size_nm must be > 0, got {self.pixel_size_nm}")

    def on_start(self, actuator: object) -> None:
        if self.particle is not None:
            log.info("centring particle %d", self.particle)
        if self.stage_map is not None:
            log.info("moves through the calibrated map: %s", self.stage_map.describe())

    def on_track(self, track: TrackMessage) -> Action | None:
        if track.shape is None:
            self._warn("shape", "track messages carry no frame shape: cannot find the centre")
            return None
        stage_map = self.stage_map or self._aligned(track)
        if stage_map is None:
            return None
        target = self._target(track)
        if target is None or not target.visible:
            return None
        rows, cols = track.shape
        ox, oy = target.x - (cols - 1) / 2, target.y - (rows - 1) / 2
        if math.hypot(ox, oy) < self.deadband_px:
            return None
        reason = f"particle {target.id} at ({ox:+.1f}, {oy:+.1f}) px from the centre, frame {track.frame}"
        return MoveStage(*stage_map.move_for(-self.gain * ox, -self.gain * oy), reason)

    def _aligned(self, track: TrackMessage) -> ActuatorMap | None:
        """The uncalibrated map: the actuator's axes taken to be the camera's."""
        pixel = track.pixel_size_nm or self.pixel_size_nm
        if pixel is None:
            self._warn("pixel", "no pixel size in the frames; give one (--pixel-size-nm)")
            return None
        self._warn(
            "aligned",
            "no calibration: assuming the stage's axes are the camera's (lptem calibrate measures them)",
        )
        return ActuatorMap.aligned(pixel)

    def _target(self, track: TrackMessage) -> TrackedObject | None:
        if self.particle is None:
            nearest = nearest_to_centre(track)
            if nearest is None:
                return None
            self.particle = nearest.id
            log.info("centring particle %d (the one nearest the centre)", nearest.id)
        found = next((o for o in track.objects if o.id == self.particle), None)
        if found is None:
            self._warn("gone", f"particle {self.particle} is not tracked: no moves")
        return found

    def on_msd(self, msd: MsdMessage) -> Action | None:
        return None

    def on_stop(self) -> Action | None:
        return None

    def on_applied(self, action: Action, applied: bool) -> None:
        """Nothing to remember: the next offset says what is left to correct."""

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", text)


@dataclass
class DoseGuard:
    """Lower the dose rate (or blank the beam) while a particle's α or D is past a threshold; restore it
    once the value has been back for ``hold_s`` (camera time).

    ``quantity`` "alpha" or "D" (nm²/s^α, from the ``msd`` topic); trips when the value is above
    ``above`` or below ``below``. ``particle`` None watches every particle. ``lower_to`` a dose rate
    (e-/Å²/s) below the starting one, or None to blank the beam. The guard only believes what the loop
    confirms (``on_applied``): an action that was rate-limited or failed is asked for again. On stop, a
    lowered dose is restored.
    """

    quantity: Literal["alpha", "D"] = "alpha"
    above: float | None = None
    below: float | None = None
    particle: int | None = None
    lower_to: float | None = None
    hold_s: float = 2.0
    name: str = "dose-guard"
    topics: tuple[str, ...] = ("msd",)
    needs: tuple[type, ...] = (Beam,)
    baseline: float | None = None
    """The dose rate to restore, read from the beam at start (when lowering it, not blanking)."""
    lowered: bool = False
    """Confirmed by the loop: the dose is lowered (or the beam blanked) now."""
    _clear_since_ns: int | None = None
    _asked: Action | None = None
    _asked_lower: bool = False

    def __post_init__(self) -> None:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one threshold: above or below")
        threshold = self.above if self.above is not None else self.below
        if threshold is None or not math.isfinite(threshold):
            raise ValueError(f"the threshold must be a finite number, got {threshold}")
        if self.lower_to is not None and not (math.isfinite(self.lower_to) and self.lower_to > 0):
            raise ValueError(f"lower_to must be a dose rate > 0, got {self.lower_to}")
        if not (math.isfinite(self.hold_s) and self.hold_s >= 0):
            raise ValueError(f"hold_s must be >= 0, got {self.hold_s}")

    def on_start(self, actuator: object) -> None:
        if self.lower_to is not None and isinstance(actuator, Beam):  # blanking needs no dose rate
            self.baseline = actuator.dose_rate()
        if self.lower_to is not None and self.baseline is not None and self.lower_to >= self.baseline:
            raise ValueError(
                f"lower_to ({self.lower_to:g}) must be below the dose rate now ({self.baseline:g})"
            )
        log.info("dose guard: %s %s %s; baseline %s e-/Å²/s", self.quantity, *self._rule(), self.baseline)

    def _rule(self) -> tuple[str, float]:
        if self.above is not None:
            return ">", self.above
        assert self.below is not None  # __post_init__
        return "<", self.below

    def on_track(self, track: TrackMessage) -> Action | None:
        return None

    def on_msd(self, msd: MsdMessage) -> Action | None:
        tripped = self._tripped(msd)
        if tripped is not None:
            self._clear_since_ns = None
            return None if self.lowered else self._lower(tripped)
        if not self.lowered:
            return None
        if self._clear_since_ns is None:
            self._clear_since_ns = msd.t_ns
        if (msd.t_ns - self._clear_since_ns) / 1e9 >= self.hold_s:
            return self._restore(f"{self.quantity} back for {self.hold_s:g} s")
        return None

    def on_applied(self, action: Action, applied: bool) -> None:
        if applied and action is self._asked:
            self.lowered = self._asked_lower

    def _tripped(self, msd: MsdMessage) -> str | None:
        """Why the guard trips on this message, or None."""
        op, threshold = self._rule()
        for p in msd.particles:
            if self.particle is not None and p.id != self.particle:
                continue
            value = p.alpha if self.quantity == "alpha" else p.D_nm2_per_s
            if value is None or not math.isfinite(value):
                continue
            if (value > threshold) if op == ">" else (value < threshold):
                return f"particle {p.id}: {self.quantity} {value:.3g} {op} {threshold:g}"
        return None

    def _lower(self, why: str) -> Action:
        return self._ask(
            Blank(True, why) if self.lower_to is None else SetDose(self.lower_to, why), lower=True
        )

    def _restore(self, why: str) -> Action | None:
        if self.lower_to is None:
            return self._ask(Blank(False, why), lower=False)
        return self._ask(SetDose(self.baseline, why), lower=False) if self.baseline is not None else None

    def _ask(self, action: Action, lower: bool) -> Action:
        self._asked, self._asked_lower = action, lower
        return action

    def on_stop(self) -> Action | None:
        return self._restore("control loop stopped") if self.lowered else None
