"""The shipped feedback controllers: keep a particle centred, and guard the dose by a particle's dynamics."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

from clients.actuators import Beam, Stage
from clients.controller import Action, Blank, MoveStage, SetDose
from service.protocol import MsdMessage, TrackedObject, TrackMessage

log = logging.getLogger("lptem.control")


@dataclass
class CentreParticle:
    """Move the stage so that one particle stays at the centre of the field of view.

    ``particle`` None locks onto the visible object nearest the centre in the first result. Each move
    corrects ``gain`` of the particle's offset; offsets under ``deadband_px`` are left alone.
    """

    particle: int | None = None
    gain: float = 0.8
    deadband_px: float = 3.0
    pixel_size_nm: float | None = None
    """Used when the frames carry no pixel size."""
    name: str = "centre"
    topics: tuple[str, ...] = ("track",)
    needs: tuple[type, ...] = (Stage,)
    _warned: set[str] = field(default_factory=set)

    def on_start(self, actuator: object) -> None:
        if self.particle is not None:
            log.info("centring particle %d", self.particle)

    def on_track(self, track: TrackMessage) -> Action | None:
        if track.shape is None:
            self._warn("shape", "track messages carry no frame shape: cannot find the centre")
            return None
        pixel = track.pixel_size_nm or self.pixel_size_nm
        if pixel is None:
            self._warn("pixel", "no pixel size in the frames; give one (--pixel-size-nm)")
            return None
        target = self._target(track)
        if target is None or not target.visible:
            return None
        rows, cols = track.shape
        ox, oy = target.x - (cols - 1) / 2, target.y - (rows - 1) / 2
        if math.hypot(ox, oy) < self.deadband_px:
            return None
        reason = f"particle {target.id} at ({ox:+.1f}, {oy:+.1f}) px from the centre, frame {track.frame}"
        return MoveStage(self.gain * ox * pixel, self.gain * oy * pixel, reason)

    def _target(self, track: TrackMessage) -> TrackedObject | None:
        if self.particle is None:
            visible = [o for o in track.objects if o.visible]
            if not visible or track.shape is None:
                return None
            rows, cols = track.shape
            nearest = min(visible, key=lambda o: math.hypot(o.x - (cols - 1) / 2, o.y - (rows - 1) / 2))
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
    (e-/Å²/s), or None to blank the beam. On stop, a lowered dose is restored.
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
    """The dose rate to restore, read from the beam at start."""
    lowered: bool = False
    _clear_since_ns: int | None = None

    def __post_init__(self) -> None:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one threshold: above or below")

    def on_start(self, actuator: object) -> None:
        if isinstance(actuator, Beam):
            self.baseline = actuator.dose_rate()
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
        if tripped is not None and not self.lowered:
            self.lowered, self._clear_since_ns = True, None
            return self._lower(tripped)
        if tripped is None and self.lowered:
            self._clear_since_ns = self._clear_since_ns or msd.t_ns
            if (msd.t_ns - self._clear_since_ns) / 1e9 >= self.hold_s:
                self.lowered = False
                return self._restore(f"{self.quantity} back for {self.hold_s:g} s")
        elif tripped is not None:
            self._clear_since_ns = None
        return None

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
        if self.lower_to is None:
            return Blank(True, why)
        return SetDose(self.lower_to, why)

    def _restore(self, why: str) -> Action | None:
        if self.lower_to is None:
            return Blank(False, why)
        return SetDose(self.baseline, why) if self.baseline is not None else None

    def on_stop(self) -> Action | None:
        if not self.lowered:
            return None
        self.lowered = False
        return self._restore("control loop stopped")
