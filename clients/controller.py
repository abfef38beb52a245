"""Feedback-control framework: subscribe to results, decide an action, apply it through an actuator.

A ``Controller`` turns messages (``track``, ``msd``) into at most one ``Action`` each. The
``ControlLoop`` around it owns the safety rules, so that every controller gets them for free:

* **rate limit**: at most one action per ``min_interval_s``;
* **bounds**: a stage move is at most ``max_step_nm`` long and never takes the stage further than
  ``max_travel_nm`` from where the loop started; dose rates stay within [``min_dose_rate``,
  ``max_dose_rate``];
* **settling**: after a change, results from frames acquired before it are not acted on (the actuator
  tells which frame first shows the change; otherwise ``settle_s`` of waiting stands in for it);
* **dead-man stop**: when no result arrives for ``deadman_s`` the loop stops acting (and says so) until
  results come back;
* on the way out the controller may restore what it changed (``on_stop``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from clients.actuators import Applied, Beam, Stage
from clients.control import ControlError
from clients.subscriber import Received, Subscriber
from service.protocol import MsdMessage, TrackMessage

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


@dataclass(frozen=True, slots=True)
class Limits:
    min_interval_s: float = 0.2
    max_step_nm: float = 100.0
    max_travel_nm: float = 5000.0
    min_dose_rate: float = 0.1
    max_dose_rate: float = 1.0e4
    deadman_s: float = 2.0
    settle_s: float = 0.5
    """Wait after a change when the actuator cannot say which frame shows it; also the longest wait for
    that frame when it can."""


@dataclass
class LoopReport:
    results: int = 0
    actions: list[tuple[float, Action]] = field(default_factory=list)
    """(seconds since the loop started, the action as applied)."""
    rate_limited: int = 0
    clipped: int = 0
    failed: int = 0
    deadman_trips: int = 0
    stage_nm: tuple[float, float] = (0.0, 0.0)
    """Where the loop's moves took the stage, relative to its start."""


class ControlLoop:
    """Runs one controller against one actuator on the results published at ``endpoint``."""

    def __init__(self, controller: Controller, actuator: object, endpoint: str, limits: Limits | None = None):
        missing = [p.__name__ for p in controller.needs if not isinstance(actuator, p)]
        if missing:
            raise TypeError(f"{controller.name} needs an actuator with {', '.join(missing)}")
        self.controller = controller
        self.actuator = actuator
        self.endpoint = endpoint
        self.limits = limits or Limits()
        self.report = LoopReport()
        self.started = time.monotonic()
        self._last_action = -math.inf
        self._last_result = time.monotonic()
        self._settle: tuple[int | None, float] | None = None  # (first frame that shows it, give-up time)
        self._tripped = False
        self.ready = threading.Event()
        """Set once the loop is subscribed and has heard the daemon (or given up waiting)."""

    # ------------------------------------------------------------------ running
    def run(self, stop: threading.Event, duration_s: float | None = None) -> LoopReport:
        """Act until ``stop`` is set or ``duration_s`` passes; then apply ``on_stop`` and report."""
        end = math.inf if duration_s is None else time.monotonic() + duration_s
        self.controller.on_start(self.actuator)
        with Subscriber(self.endpoint, topics=self.controller.topics) as sub:
            if not sub.wait_connected(5.0):
                log.warning("no heartbeat from %s yet; waiting for results", self.endpoint)
            self.ready.set()
            self.started = self._last_result = time.monotonic()
            while not stop.is_set() and time.monotonic() < end:
                received = sub.recv(0.1)
                if received is None:
                    self._check_deadman()
                else:
                    self._on_result(received)
        final = self.controller.on_stop()
        if final is not None:
            self._apply(final, final_action=True)
        return self.report

    def _check_deadman(self) -> None:
        silent = time.monotonic() - self._last_result
        if not self._tripped and silent > self.limits.deadman_s:
            self._tripped = True
            self.report.deadman_trips += 1
            log.warning(
                "no results for %.1f s: dead-man stop, no further actions until results resume", silent
            )

    def _on_result(self, received: Received) -> None:
        self._last_result = time.monotonic()
        self.report.results += 1
        if self._tripped:
            self._tripped = False
            log.info("results again: acting")
        message = received.message
        if self._settling(message):
            return
        if isinstance(message, TrackMessage):
            action = self.controller.on_track(message)
        elif isinstance(message, MsdMessage):
            action = self.controller.on_msd(message)
        else:
            return
        if action is not None:
            self._apply(action)

    def _settling(self, message: object) -> bool:
        """Whether results still predate the last change."""
        if self._settle is None:
            return False
        first_frame, give_up = self._settle
        shows_it = (
            first_frame is not None and isinstance(message, TrackMessage) and message.frame >= first_frame
        )
        if shows_it or time.monotonic() >= give_up:
            self._settle = None
            return False
        return True

    # ------------------------------------------------------------------ acting
    def _apply(self, action: Action, final_action: bool = False) -> None:
        now = time.monotonic()
        if not final_action and now - self._last_action < self.limits.min_interval_s:
            self.report.rate_limited += 1
            return
        bounded = self._bounded(action)
        if isinstance(bounded, MoveStage) and math.hypot(bounded.dx_nm, bounded.dy_nm) < 1e-9:
            return  # at the travel limit: nothing left to move
        try:
            applied = self._send(bounded)
        except (ControlError, TimeoutError, OSError) as exc:
            self.report.failed += 1
            log.error("%s: %s failed: %s", self.controller.name, _describe(bounded), exc)
            return
        self._last_action = now
        if isinstance(bounded, MoveStage):
            x, y = self.report.stage_nm
            self.report.stage_nm = (x + bounded.dx_nm, y + bounded.dy_nm)
        self.report.actions.append((now - self.started, bounded))
        self._settle = (applied.effective_frame, now + self.limits.settle_s)
        log.info("%s: %s (%s)", self.controller.name, _describe(bounded), bounded.reason)

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
