"""Liveness and readiness of the daemon, for ``/healthz``, ``/readyz``, ``lptem health`` and the watchdog.

Live: every stage's thread runs and the engine is not stuck on one frame while frames wait. Ready: live,
started (sockets bound, engine loaded) and, when a silence limit is set, a frame arrived within it.
Each check costs a few attribute reads: probes may come every second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lptem.service.stats import Stats

STUCK_AFTER_S = 30.0
"""The engine counts as stuck when frames wait and none finished for this long."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    """What is wrong, one line each (empty when ok)."""
    checks: dict[str, Any] = field(default_factory=dict)
    """What was looked at, for the probe's body."""


class Health:
    """Judges the daemon from its stages' threads and its counters (all read without waiting)."""

    def __init__(
        self,
        stages: Mapping[str, Callable[[], bool]],
        stats: Stats,
        queue_depth: Callable[[], int],
        *,
        max_silence_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stages = stages
        self._stats = stats
        self._queue_depth = queue_depth
        self.max_silence_s = max_silence_s
        self._clock = clock
        self._started_s: float | None = None

    def started(self) -> None:
        """The daemon is up: sockets bound, engine loaded, threads started."""
        self._started_s = self._clock()

    def live(self) -> HealthReport:
        now = self._clock()
        stages = {name: alive() for name, alive in self._stages.items()}
        problems = [f"the {name} thread has stopped" for name, ok in stages.items() if not ok]
        if self._started_s is None:
            problems = []  # not started yet: nothing has run to stop
        waiting = self._queue_depth()
        last_done = self._stats.last_processed_s or self._stats.last_received_s
        stuck_s = now - last_done if waiting and last_done is not None else 0.0
        if stuck_s > STUCK_AFTER_S:
            problems.append(f"the engine finished no frame in {stuck_s:.0f} s while {waiting} wait")
        checks = {"threads": stages, "queue_depth": waiting, "engine_idle_s": round(stuck_s, 1)}
        return HealthReport(not problems, problems, checks)

    def ready(self) -> HealthReport:
        live = self.live()
        problems = list(live.problems)
        checks = dict(live.checks)
        if self._started_s is None:
            problems.append("starting: sockets or engine not ready")
        age = self.frame_age_s()
        checks["last_frame_age_s"] = None if age is None else round(age, 2)
        if self.max_silence_s is not None and self._started_s is not None:
            silent = age if age is not None else self._clock() - self._started_s
            if silent > self.max_silence_s:
                problems.append(f"no frame for {silent:.1f} s (limit {self.max_silence_s:g} s)")
        return HealthReport(not problems, problems, checks)

    def frame_age_s(self) -> float | None:
        """Seconds since the last valid frame arrived, None before the first."""
        last = self._stats.last_received_s
        return None if last is None else self._clock() - last
