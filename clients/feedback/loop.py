"""Feedback-control framework: subscribe to results, decide an action, apply it through an actuator.

A ``Controller`` turns messages (``track``, ``msd``) into at most one ``Action`` each. The
``ControlLoop`` around it owns the safety rules, so that every controller gets them for free:

* **rate limit**: at most one action per ``min_interval_s``;
* **bounds**: a stage move is at most ``max_step_nm`` long and never takes the stage further than
  ``max_travel_nm`` from where the loop started; dose rates stay within [``min_dose_rate``,
  ``max_dose_rate``];
* **settling**: after a change, results from frames acquired before it are not acted on (the actuator
  tells which frame first shows the change, waited for up to ``settle_timeout_s``; otherwise
  ``settle_s`` of waiting stands in for it);
* **freshness and dead-man stop**: track results older than ``max_age_s`` are not acted on; when no fresh
  result arrives for ``deadman_s`` the loop says so and acts on nothing until fresh results come back;
* **failing actuator**: after ``max_failures`` actions in a row fail (an error, a timeout, a microscope
  that is gone), the loop stops and says why; nothing is retried for ever;
* on the way out, also after an error, the controller may restore what it changed (``on_stop``); it is told
  whether each of its actions was carried out (``on_applied``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from lptem.clients.feedback.actuators import Applied, Beam, MicroscopeError, Stage
from lptem.clients.wire.control import ControlError
from lptem.clients.wire.subscriber import Received, Subscriber
from lptem.service.protocol import MsdMessage, TrackMessage
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger("lptem.control")


@dataclass(frozen=True, slots=True)
class MoveStage:
    dx_nm: float
    dy_nm: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetDose:
    dose_rate: float
    """e-/Å²/s."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Blank:
    on: bool
    reason: str = ""


Action = MoveStage | SetDose | Blank


class Controller(Protocol):
    name: str
    topics: tuple[str, ...]
    """Result topics the controller reads (``track`` and/or ``msd``)."""
    needs: tuple[type, ...]
    """Actuator protocols it drives (``Stage``, ``Beam``)."""

    def on_start(self, actuator: object) -> None: ...

    def on_track(self, track: TrackMessage) -> Action | None: ...

    def on_msd(self, msd: MsdMessage) -> Action | None: ...

    def on_stop(self) -> Action | None: ...

    def on_applied(self, action: Action, applied: bool) -> None:
        """Whether the loop carried ``action`` out (False: rate-limited, out of bounds or failed)."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    min_interval_s: float = 0.2
    max_step_nm: float = 100.0
    max_travel_nm: float = 5000.0
    min_dose_rate: float = 0.1
    max_dose_rate: float = 1.0e4
    deadman_s: float = 2.0
    settle_s: float = 0.5
    """Wait after a change when the actuator cannot say which frame shows it."""
    settle_timeout_s: float = 5.0
    """Longest wait for the frame the actuator named (then act anyway, and say so)."""
    max_age_s: float = 1.0
    """Track results older than this (client clock minus the daemon's receipt; one host, or synchronised
    clocks) are stale: counted, not acted on, and they do not hold off the dead-man stop. 0: no check."""
    max_failures: float = 3
    """Stop the loop after this many actions in a row failed."""

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        bad = [name for name, value in values.items() if not math.isfinite(value) or value < 0]
        if bad:
            raise ValueError(f"safety limits must be finite and >= 0: {', '.join(bad)}")
        if self.max_step_nm == 0 or self.deadman_s == 0:
            raise ValueError("max_step_nm and deadman_s must be > 0")
        if self.max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        if not 0 < self.min_dose_rate <= self.max_dose_rate:
            raise ValueError("dose rates must be 0 < min_dose_rate <= max_dose_rate")


@dataclass
class LoopReport:
    results: int = 0
    actions: list[tuple[float, Action]] = field(default_factory=list)
    """(seconds since the loop started, the action as applied)."""
    rate_limited: int = 0
    clipped: int = 0
    failed: int = 0
    stale: int = 0
    deadman_trips: int = 0
    deadman_times: list[float] = field(default_factory=list)
    """Seconds since the loop started at which the dead-man stop tripped."""
    stage_nm: tuple[float, float] = (0.0, 0.0)
    """Where the loop's moves took the stage, relative to its start."""
    stopped: str | None = None
    """Why the loop stopped before it was asked to (the actuator kept failing), else None."""


@dataclass(frozen=True, slots=True)
class _Settling:
    first_frame: int | None
    """The first camera frame that shows the change (None: unknown)."""
    epoch: int | None
    give_up: float
    """monotonic() after which the loop acts anyway."""


class ControlLoop:
    """Runs one controller against one actuator on the results published at ``endpoint``."""

    def __init__(
        self,
        controller: Controller,
        actuator: object,
        endpoint: str,
        limits: Limits | None = None,
        keys: ClientKeys | None = None,
    ):
        missing = [p.__name__ for p in controller.needs if not isinstance(actuator, p)]
        if missing:
            raise TypeError(f"{controller.name} needs an actuator with {', '.join(missing)}")
        self.controller = controller
        self.actuator = actuator
        self.endpoint = endpoint
        self.keys = keys
        self.limits = limits or Limits()
        self.report = LoopReport()
        self.started = time.monotonic()
        self._last_action = -math.inf
        self._last_fresh = time.monotonic()
        self._epoch: int | None = None
        self._settle: _Settling | None = None
        self._tripped = False
        self._failures = 0
        self.ready = threading.Event()
        """Set once the loop is subscribed and has heard the daemon (or given up waiting)."""

    # ------------------------------------------------------------------ running
    def run(self, stop: threading.Event, duration_s: float | None = None) -> LoopReport:
        """Act until ``stop`` is set or ``duration_s`` passes; then apply ``on_stop`` (also after an
        error) and report."""
        end = math.inf if duration_s is None else time.monotonic() + duration_s
        self.controller.on_start(self.actuator)
        try:
            with Subscriber(self.endpoint, topics=self.controller.topics, keys=self.keys) as sub:
                if not sub.wait_connected(5.0):
                    log.warning("no heartbeat from %s yet; waiting for results", self.endpoint)
                self.ready.set()
                self.started = self._last_fresh = time.monotonic()
                while not stop.is_set() and time.monotonic() < end and self.report.stopped is None:
                    received = sub.recv(0.1)
                    if received is not None:
                        self.handle(received)
                    self._check_deadman()
        finally:
            self.ready.set()
            final = self.controller.on_stop()
            if final is not None:
                self._apply(final, final_action=True)
        return self.report

    def _check_deadman(self) -> None:
        silent = time.monotonic() - self._last_fresh
        if not self._tripped and silent > self.limits.deadman_s:
            self._tripped = True
            self.report.deadman_trips += 1
            self.report.deadman_times.append(time.monotonic() - self.started)
            log.warning("no fresh result for %.1f s: dead-man stop, no actions until results resume", silent)

    def handle(self, received: Received) -> None:
        """One result: check it is fresh and that the last change shows, then let the controller act."""
        message = received.message
        self.report.results += 1
        if isinstance(message, TrackMessage) and self._stale(message, received.t_client_ns):
            self.report.stale += 1
            return
        self._last_fresh = time.monotonic()
        if self._tripped:
            self._tripped = False
            log.info("fresh results again: acting")
        if self._settling(message):
            return
        if isinstance(message, TrackMessage):
            self._epoch = message.epoch
            action = self.controller.on_track(message)
        elif isinstance(message, MsdMessage):
            action = self.controller.on_msd(message)
        else:
            return
        if action is not None:
            self._apply(action)

    def _stale(self, track: TrackMessage, t_client_ns: int) -> bool:
        limit = self.limits.max_age_s
        return limit > 0 and (t_client_ns - track.t_recv_ns) / 1e9 > limit

    def _settling(self, message: object) -> bool:
        """Whether results still predate the last change."""
        settle = self._settle
        if settle is None:
            return False
        if _shows_change(message, settle):
            self._settle = None
            return False
        if time.monotonic() >= settle.give_up:
            if settle.first_frame is not None:
                log.warning(
                    "frame %d, which shows the last change, never came: acting anyway", settle.first_frame
                )
            self._settle = None
            return False
        return True

    # ------------------------------------------------------------------ acting
    def _apply(self, action: Action, final_action: bool = False) -> None:
        applied = self._apply_bounded(action, final_action)
        self.controller.on_applied(action, applied)

    def _apply_bounded(self, action: Action, final_action: bool) -> bool:
        """Send ``action`` within the limits; whether the actuator carried it out."""
        now = time.monotonic()
        if not final_action and now - self._last_action < self.limits.min_interval_s:
            self.report.rate_limited += 1
            return False
        bounded = self._bounded(action)
        if isinstance(bounded, MoveStage) and math.hypot(bounded.dx_nm, bounded.dy_nm) < 1e-9:
            return False  # at the travel limit: nothing left to move
        try:
            applied = self._send(bounded)
        except (ControlError, MicroscopeError, TimeoutError, OSError, ValueError) as exc:
            self._failed(bounded, exc, final_action)
            return False
        self._failures = 0
        self._last_action = now
        if isinstance(bounded, MoveStage):
            x, y = self.report.stage_nm
            self.report.stage_nm = (x + bounded.dx_nm, y + bounded.dy_nm)
        self.report.actions.append((now - self.started, bounded))
        known = applied.effective_frame is not None
        wait = self.limits.settle_timeout_s if known else self.limits.settle_s
        self._settle = _Settling(applied.effective_frame, self._epoch, now + wait)
        log.info("%s: %s (%s)", self.controller.name, _describe(bounded), bounded.reason)
        return True

    def _failed(self, action: Action, exc: Exception, final_action: bool) -> None:
        self.report.failed += 1
        self._failures += 1
        log.error("%s: %s failed: %s", self.controller.name, _describe(action), exc)
        if not final_action and self._failures >= self.limits.max_failures and self.report.stopped is None:
            self.report.stopped = f"{self._failures} actions in a row failed, the last: {exc}"
            log.error("stopping the control loop: %s", self.report.stopped)

    def _send(self, action: Action) -> Applied:
        if isinstance(action, MoveStage):
            assert isinstance(self.actuator, Stage)
            return self.actuator.move_by(action.dx_nm, action.dy_nm)
        assert isinstance(self.actuator, Beam)
        if isinstance(action, SetDose):
            return self.actuator.set_dose_rate(action.dose_rate)
        return self.actuator.blank(action.on)

    def _bounded(self, action: Action) -> Action:
        limits = self.limits
        if isinstance(action, SetDose):
            rate = min(max(action.dose_rate, limits.min_dose_rate), limits.max_dose_rate)
            if rate != action.dose_rate:
                self.report.clipped += 1
                return SetDose(rate, action.reason + " (clipped)")
            return action
        if isinstance(action, Blank):
            return action
        dx, dy = _clip_norm(action.dx_nm, action.dy_nm, limits.max_step_nm)
        x, y = self.report.stage_nm
        if math.hypot(x + dx, y + dy) > limits.max_travel_nm:
            tx, ty = _clip_norm(x + dx, y + dy, limits.max_travel_nm)
            dx, dy = tx - x, ty - y
        if (dx, dy) != (action.dx_nm, action.dy_nm):
            self.report.clipped += 1
            return MoveStage(dx, dy, action.reason + " (clipped)")
        return action


def _shows_change(message: object, settle: _Settling) -> bool:
    """A track of the frame that first shows the change or later (or of a new camera epoch)."""
    if not isinstance(message, TrackMessage) or settle.first_frame is None:
        return False
    return message.frame >= settle.first_frame or message.epoch != settle.epoch


def _clip_norm(x: float, y: float, limit: float) -> tuple[float, float]:
    length = math.hypot(x, y)
    if length <= limit:
        return x, y
    return x * limit / length, y * limit / length


def _describe(action: Action) -> str:
    if isinstance(action, MoveStage):
        return f"move stage by ({action.dx_nm:+.2f}, {action.dy_nm:+.2f}) nm"
    if isinstance(action, SetDose):
        return f"set dose rate {action.dose_rate:g} e-/Å²/s"
    return "blank the beam" if action.on else "unblank the beam"
