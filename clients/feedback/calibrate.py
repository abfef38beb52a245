"""Measure an actuator's map: move it by known steps, watch a tracked particle move, fit ``Δp = M u``.

The moves go out and back along +x, +y, −x and −y of the actuator, so that it ends where it started; each
point is the median of the particle's position over a few frames taken after the move shows. A first,
coarse pass moves a quarter of the step, which a tracker follows; its map then predicts where the particle
lands after each full step, where the object nearest the prediction is taken to be it (a tracker may give
a particle that jumped a new id). Whatever happens (an error, Ctrl-C, the particle lost), the actuator is
moved back by what it has moved.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lptem.clients.feedback.actuators import Applied, Stage
from lptem.clients.feedback.calibration import ActuatorMap, CalibrationError, Fit, fit_map
from lptem.clients.feedback.controllers import nearest_to_centre
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.protocol import TrackMessage

log = logging.getLogger("lptem.calibrate")


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    step_nm: float
    """Length of each move, actuator nm."""
    repeats: int = 2
    """Times the out-and-back pattern (8 moves) is repeated."""
    frames_per_point: int = 5
    """Frames whose median position makes one measurement."""
    settle_s: float = 0.5
    """Wait after a move when the actuator cannot say which frame shows it, s."""
    timeout_s: float = 10.0
    """Longest wait for the frames of one measurement, s."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_nm) and self.step_nm > 0):
            raise CalibrationError(f"the step must be > 0 nm, got {self.step_nm}")
        if self.repeats < 1 or self.frames_per_point < 1:
            raise CalibrationError("repeats and frames per point must be >= 1")
        if not (self.settle_s >= 0 and self.timeout_s > 0):
            raise CalibrationError("settle_s must be >= 0 and timeout_s > 0")

    def moves(self, step_nm: float | None = None) -> Iterator[tuple[float, float]]:
        """Out and back along each direction (the actuator is where it started after every pair), the
        pattern ``repeats`` times."""
        s = self.step_nm if step_nm is None else step_nm
        pattern = [(s, 0.0), (-s, 0.0), (0.0, s), (0.0, -s), (-s, 0.0), (s, 0.0), (0.0, -s), (0.0, s)]
        for _ in range(self.repeats):
            yield from pattern


@dataclass
class _Marker:
    """What a measurement waits for: a frame that shows the last move."""

    frame: int | None
    epoch: int | None
    not_before_ns: int
    """Daemon receipt time (Unix ns) before which results predate the move (when the frame is unknown)."""

    def shows(self, track: TrackMessage) -> bool:
        if self.frame is not None:
            return track.frame >= self.frame or track.epoch != self.epoch
        return track.t_recv_ns >= self.not_before_ns


class Calibrator:
    """Runs one calibration of ``actuator`` against the track results a subscriber receives."""

    def __init__(
        self,
        actuator: Stage,
        subscriber: Subscriber,
        plan: CalibrationPlan,
        particle: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.actuator = actuator
        self.subscriber = subscriber
        self.plan = plan
        self.particle = particle
        self.stop = stop or threading.Event()
        self.moved = (0.0, 0.0)
        """Net move so far, actuator nm (moved back at the end)."""
        self.pixel_size_nm: float | None = None
        """The frames' pixel size, nm, once a result has carried one."""
        self._epoch: int | None = None

    def run(self, actuator_name: str = "stage", **measured: float | int | str) -> Fit:
        moves: list[tuple[float, float]] = []
        shifts: list[tuple[float, float]] = []
        try:
            before = self._measure(_Marker(None, None, 0))
            coarse = list(self.plan.moves(self.plan.step_nm / 4))[:8]
            before = self._measure_moves(coarse, before, moves, shifts, None)
            guide = fit_map(moves, shifts, actuator_name).map
            log.info("coarse map: %s", guide.describe())
            self._measure_moves(list(self.plan.moves()), before, moves, shifts, guide)
        finally:
            self._return()
        if self.pixel_size_nm is not None:
            measured["pixel_size_nm"] = self.pixel_size_nm
        return fit_map(moves, shifts, actuator_name, **measured)

    def _measure_moves(
        self,
        pattern: list[tuple[float, float]],
        before: tuple[float, float],
        moves: list[tuple[float, float]],
        shifts: list[tuple[float, float]],
        guide: ActuatorMap | None,
    ) -> tuple[float, float]:
        """Make each move and append it and the particle's displacement; returns the last position."""
        for move in pattern:
            marker = self._move(*move)
            expected = None
            if guide is not None:
                dx, dy = guide.image_shift_px(*move)
                expected = (before[0] + dx, before[1] + dy, max(3.0, 0.3 * math.hypot(dx, dy)))
            after = self._measure(marker, expected)
            moves.append(move)
            shifts.append((after[0] - before[0], after[1] - before[1]))
            log.info("moved (%+.1f, %+.1f) nm: the particle moved (%+.2f, %+.2f) px", *move, *shifts[-1])
            before = after
        return before

    def _move(self, dx: float, dy: float) -> _Marker:
        sent_ns = time.time_ns()
        applied: Applied = self.actuator.move_by(dx, dy)
        self.moved = (self.moved[0] + dx, self.moved[1] + dy)
        not_before = sent_ns + int(self.plan.settle_s * 1e9)
        return _Marker(applied.effective_frame, self._epoch, not_before)

    def _return(self) -> None:
        dx, dy = self.moved
        if math.hypot(dx, dy) > 1e-9:
            log.info("moving the actuator back by (%+.1f, %+.1f) nm to where it started", -dx, -dy)
            self.actuator.move_by(-dx, -dy)
            self.moved = (0.0, 0.0)

    def _measure(
        self, marker: _Marker, expected: tuple[float, float, float] | None = None
    ) -> tuple[float, float]:
        """Median position (px) of the particle over the plan's frames that show the last move;
        ``expected`` (x, y, tolerance px): the particle is the object nearest there."""
        xs: list[float] = []
        ys: list[float] = []
        deadline = time.monotonic() + self.plan.timeout_s
        while len(xs) < self.plan.frames_per_point:
            if self.stop.is_set():
                raise CalibrationError("stopped before the calibration was complete")
            if time.monotonic() > deadline:
                raise CalibrationError(self._timeout_reason(len(xs), expected))
            received = self.subscriber.recv(0.1)
            if received is None or not isinstance(received.message, TrackMessage):
                continue
            track = received.message
            if not marker.shows(track):
                continue
            self._epoch = track.epoch
            self.pixel_size_nm = track.pixel_size_nm or self.pixel_size_nm
            position = self._position(track) if expected is None else self._nearest(track, expected)
            if position is None:
                continue  # not (yet) where it should be: a tracker may need frames to find it again
            xs.append(position[0])
            ys.append(position[1])
        return float(np.median(xs)), float(np.median(ys))

    def _position(self, track: TrackMessage) -> tuple[float, float] | None:
        if self.particle is None:
            nearest = nearest_to_centre(track)
            if nearest is None:
                return None
            self.particle = nearest.id
            log.info("calibrating on particle %d (the one nearest the centre)", nearest.id)
        found = next((o for o in track.objects if o.id == self.particle and o.visible), None)
        return None if found is None else (found.x, found.y)

    def _nearest(
        self, track: TrackMessage, expected: tuple[float, float, float]
    ) -> tuple[float, float] | None:
        """The visible object nearest the expected position, within its tolerance (and its id from now)."""
        x, y, tolerance = expected
        visible = [o for o in track.objects if o.visible]
        if not visible:
            return None
        nearest = min(visible, key=lambda o: math.hypot(o.x - x, o.y - y))
        if math.hypot(nearest.x - x, nearest.y - y) > tolerance:
            return None
        if nearest.id != self.particle:
            log.info("particle %s is object %d after the move", self.particle, nearest.id)
            self.particle = nearest.id
        return nearest.x, nearest.y

    def _timeout_reason(self, have: int, expected: tuple[float, float, float] | None) -> str:
        what = "a particle" if self.particle is None else f"particle {self.particle}"
        where = "" if expected is None else " near ({:.0f}, {:.0f}) px".format(*expected[:2])
        dx, dy = self.moved
        return (
            f"{have} of {self.plan.frames_per_point} results showed {what}{where} within "
            f"{self.plan.timeout_s:g} s, with the actuator moved ({dx:+.1f}, {dy:+.1f}) nm (is the daemon "
            "tracking it and the camera streaming? a smaller --step-nm or a particle nearer the centre?)"
        )
