"""Keep Python's garbage collector out of the frame path, and measure what it still costs.

CPython's cyclic collector stops every thread while it runs. A generation-2 collection walks every
container object the process has ever kept (the engine's modules, numpy, the model's tables): measured on
``lptem serve`` at 1024² and 100 fps, 50-61 ms each, long enough to drop frames from a 2-frame queue.
What is built at start-up lives as long as the daemon and never becomes garbage, so once the daemon is up,
``settle_heap`` collects once and **freezes** it (``gc.freeze``: moved to a permanent generation the
collector never walks again). Collections after that walk only what was made since, which is little: the
frame path keeps no per-frame containers alive. ``GcPauses`` times every collection (``gc.callbacks``) for
the metrics (``lptem_gc_pause_seconds``) and ``benchmarks/realtime.py``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PAUSE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Upper bounds of the pause histogram, s (the last bucket is +Inf)."""


@dataclass(frozen=True, slots=True)
class GenerationPauses:
    generation: int
    collections: int
    total_s: float
    longest_s: float
    bucket_counts: tuple[int, ...]
    """Collections per bucket of ``PAUSE_BUCKETS_S`` (not cumulative), +Inf last."""


class GcPauses:
    """Times every collection of this process, per generation. ``install`` once; idempotent."""

    def __init__(self) -> None:
        self._started: dict[int, int] = {}
        self._counts = [[0] * (len(PAUSE_BUCKETS_S) + 1) for _ in range(3)]
        self._total_ns = [0, 0, 0]
        self._longest_ns = [0, 0, 0]
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._on_collection)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._on_collection)
            self.installed = False

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Called by the collector, GIL held, in whichever thread triggered it: a few integer updates.
        generation = int(info.get("generation", 2))
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.perf_counter_ns()
            return
        began = self._started.pop(thread, None)
        if began is None:
            return
        pause = time.perf_counter_ns() - began
        self._counts[generation][_bucket(pause / 1e9)] += 1
        self._total_ns[generation] += pause
        self._longest_ns[generation] = max(self._longest_ns[generation], pause)

    def snapshot(self) -> list[GenerationPauses]:
        return [
            GenerationPauses(
                g,
                sum(self._counts[g]),
                self._total_ns[g] / 1e9,
                self._longest_ns[g] / 1e9,
                tuple(self._counts[g]),
            )
            for g in range(3)
        ]


def _bucket(seconds: float) -> int:
    for k, bound in enumerate(PAUSE_BUCKETS_S):
        if seconds <= bound:
            return k
    return len(PAUSE_BUCKETS_S)


GC_PAUSES = GcPauses()
"""This process's collections (a process has one collector)."""


def settle_heap() -> int:
    """Collect, then freeze everything alive: start-up objects leave the collector's walks for good.
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("runtime: %d start-up objects frozen out of garbage collection", frozen)
    return frozen
