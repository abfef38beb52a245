"""Daemon counters: one thread-safe source of truth for the ``status`` topic and Prometheus metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lptem.service.protocol import RejectReason

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_RECENT = 2048  # latencies kept for the p50 / p99 in ``status``


class _RateWindow:
    """Events per second over the last second (bounded by the event rate)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        return float(len(self._times))

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - 1.0:
            self._times.popleft()


class Stats:
    """Frame counters, processing latency (receipt to result, seconds) and rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.missed_upstream = 0
        self.series_restarts = 0
        self.engine_errors = 0
        self.control_errors = 0
        self.rejected: Counter[str] = Counter({r.value: 0 for r in RejectReason})
        self.auth_failures: Counter[str] = Counter(dict.fromkeys(("ingest", "publish", "control"), 0))
        """Connections and messages refused by CURVE authentication, by socket."""
        self.last_frame: int | None = None
        self.last_received_s: float | None = None
        """When the last frame passed validation (time.monotonic(), s)."""
        self.last_processed_s: float | None = None
        """When the engine last finished a frame (time.monotonic(), s)."""
        self.last_frame_t_ns: int | None = None
        self._bucket_counts = np.zeros(len(LATENCY_BUCKETS_S) + 1, dtype=np.int64)
        self._latency_sum = 0.0
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._in = _RateWindow()
        self._out = _RateWindow()

    def frame_received(self) -> None:
        with self._lock:
            self.received += 1
            self.last_received_s = time.monotonic()
            self._in.add(self.last_received_s)

    def frames_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def frame_rejected(self, reason: RejectReason) -> None:
        with self._lock:
            self.rejected[reason.value] += 1

    def upstream_gap(self, missed: int) -> None:
        with self._lock:
            self.missed_upstream += missed

    def series_restarted(self) -> None:
        with self._lock:
            self.series_restarts += 1

    def engine_failed(self) -> None:
        with self._lock:
            self.engine_errors += 1

    def control_error(self) -> None:
        with self._lock:
            self.control_errors += 1

    def auth_failed(self, socket: str) -> None:
        with self._lock:
            self.auth_failures[socket] += 1

    def frame_processed(self, frame: int, t_ns: int, latency_s: float) -> None:
        with self._lock:
            self.processed += 1
            self.last_frame = frame
            self.last_frame_t_ns = t_ns
            self._bucket_counts[np.searchsorted(LATENCY_BUCKETS_S, latency_s)] += 1
            self._latency_sum += latency_s
            self._recent.append(latency_s)
            self.last_processed_s = time.monotonic()
            self._out.add(self.last_processed_s)

    def rates(self) -> tuple[float, float]:
        """(frames/s received, frames/s processed) over the last second."""
        now = time.monotonic()
        with self._lock:
            return self._in.rate(now), self._out.rate(now)

    def latency_percentiles_ms(self) -> tuple[float | None, float | None]:
        """p50 and p99 of the last 2048 processing latencies, ms."""
        with self._lock:
            recent = np.array(self._recent)
        if recent.size == 0:
            return None, None
        p50, p99 = np.percentile(recent, [50, 99]) * 1e3
        return float(p50), float(p99)

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative Prometheus buckets and the sum of latencies (s)."""
        with self._lock:
            cumulative = np.cumsum(self._bucket_counts)
            total = self._latency_sum
        edges = [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]
        return [(e, int(c)) for e, c in zip(edges, cumulative, strict=True)], total


class DaemonCollector(Collector):
    """Exposes :class:`Stats` to Prometheus (no per-particle labels)."""

    def __init__(
        self,
        stats: Stats,
        queue_depth: Callable[[], int],
        objects: Callable[[], int],
        record: Callable[[], dict[str, Any] | None] = lambda: None,
        *,
        ready: Callable[[], bool] = lambda: True,
        frame_age_s: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._stats = stats
        self._queue_depth = queue_depth
        self._objects = objects
        self._record = record
        self._ready = ready
        self._frame_age_s = frame_age_s

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield CounterMetricFamily("lptem_frames_received", "Frames that passed validation", s.received)
        yield CounterMetricFamily("lptem_frames_processed", "Frames the engine processed", s.processed)
        yield CounterMetricFamily(
            "lptem_frames_dropped", "Frames discarded by the backpressure policy", s.dropped
        )
        rejected = CounterMetricFamily(
            "lptem_frames_rejected", "Ingest messages rejected, by reason", labels=["reason"]
        )
        for reason, count in sorted(s.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield CounterMetricFamily(
            "lptem_frames_missed_upstream", "Gaps in the camera's frame numbers", s.missed_upstream
        )
        yield CounterMetricFamily(
            "lptem_engine_errors", "Frames the engine failed on (skipped, logged)", s.engine_errors
        )
        yield CounterMetricFamily(
            "lptem_control_errors", "Control requests answered with an error", s.control_errors
        )
        refused = CounterMetricFamily(
            "lptem_auth_failures",
            "Connections and messages refused by CURVE authentication, by socket",
            labels=["socket"],
        )
        for socket, count in sorted(s.auth_failures.items()):
            refused.add_metric([socket], count)
        yield refused
        buckets, total = s.histogram()
        yield HistogramMetricFamily(
            "lptem_processing_latency_seconds",
            "Time from receipt of a frame to its result",
            buckets=buckets,
            sum_value=total,
        )
        yield GaugeMetricFamily("lptem_queue_depth", "Frames waiting for the engine", self._queue_depth())
        yield from _record_metrics(self._record())
        yield GaugeMetricFamily("lptem_objects_tracked", "Objects the engine tracks", self._objects())
        yield GaugeMetricFamily("lptem_ready", "1 when /readyz answers 200, else 0", self._ready())
        age = self._frame_age_s()
        yield GaugeMetricFamily(
            "lptem_frame_age_seconds",
            "Seconds since the last valid frame arrived (daemon clock; NaN before the first)",
            age if age is not None else float("nan"),
        )
        last = s.last_frame_t_ns
        yield GaugeMetricFamily(
            "lptem_last_frame_timestamp_seconds",
            "Camera timestamp of the last processed frame (Unix time, s)",
            last / 1e9 if last is not None else float("nan"),
        )


def _record_metrics(health: dict[str, Any] | None) -> Iterator[Metric]:
    """The record's state (lptem.service.record.RecordHealth as a dict); nothing when not recording."""
    if health is None:
        return
    yield GaugeMetricFamily(
        "lptem_record_writing",
        "1 while the record is being written, 0 while writing fails",
        health["state"] == "ok",
    )
    yield CounterMetricFamily(
        "lptem_record_failures", "Spells in which writing the record failed", health["failures"]
    )
    yield CounterMetricFamily(
        "lptem_record_lost_entries",
        "Record entries dropped because the disk did not take them",
        health["lost_entries"],
    )
    yield GaugeMetricFamily(
        "lptem_record_pending_bytes",
        "Record entries held in memory, not yet written",
        health["pending_bytes"],
    )
