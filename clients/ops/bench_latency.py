"""``lptem bench latency``: latency distributions and frame losses of a running daemon, from the timestamps
every ``track`` message carries (docs/protocol.md §4.1).

    lptem bench latency --publish tcp://127.0.0.1:5556 --duration 20
    lptem bench latency --frames 2000 --json > latency.json

Stages: camera→daemon (``t_recv_ns − t_ns``: the camera's and the daemon's clocks must agree, as on one
host), daemon processing (``t_done_ns − t_recv_ns``, one clock), daemon→client (arrival here −
``t_done_ns``; exact on one host), and their sum. Losses: the frames the daemon dropped (its
``dropped_total`` counter) and the frame numbers that never arrived at all (missed upstream, or
results this subscriber lost), as shares of the frames the camera numbered in the window.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from lptem.clients.wire.endpoints import add_key_arguments, add_publish_argument, keys_from
from lptem.clients.wire.subscriber import Latency, Received, Subscriber, track_latency
from lptem.service.protocol import TrackMessage
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger("lptem.bench")

STAGES = ("camera_to_daemon", "processing", "daemon_to_client", "total")


@dataclass(frozen=True, slots=True)
class Distribution:
    """Of one latency stage, ms."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Distribution:
        if not seconds:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ms = np.asarray(seconds) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(p50), float(p90), float(p99), float(ms.max()))


@dataclass
class LatencySample:
    """Collects ``track`` messages of one camera epoch at a time."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    received: int = 0
    numbered: int = 0
    """Frame numbers the camera used in the window (first to last, per epoch)."""
    dropped: int = 0
    _epoch: tuple[int, int, int] | None = None  # (epoch, first frame, dropped_total at first)
    _last: tuple[int, int] | None = None  # (last frame, dropped_total)

    def add(self, received: Received) -> None:
        track: TrackMessage = received.message
        latency = track_latency(track, received.t_client_ns)
        for stage, value in zip(STAGES, _stage_values(latency), strict=True):
            self.latencies[stage].append(value)
        self.received += 1
        if self._epoch is None or track.epoch != self._epoch[0]:
            self._close_epoch()
            self._epoch = (track.epoch, track.frame, track.dropped_total)
        self._last = (track.frame, track.dropped_total)

    def _close_epoch(self) -> None:
        if self._epoch is not None and self._last is not None:
            self.numbered += self._last[0] - self._epoch[1] + 1
            self.dropped += self._last[1] - self._epoch[2]

    def result(self) -> dict[str, object]:
        self._close_epoch()
        self._epoch = self._last = None
        missed = max(0, self.numbered - self.received - self.dropped)
        return {
            "frames_received": self.received,
            "frames_numbered": self.numbered,
            "dropped_by_daemon": self.dropped,
            "missed_otherwise": missed,
            "dropped_share": self._share(self.dropped),
            "missed_share": self._share(missed),
            "latency_ms": {s: asdict(Distribution.of(v)) for s, v in self.latencies.items()},
        }

    def _share(self, frames: int) -> float:
        return frames / self.numbered if self.numbered else math.nan


def _stage_values(latency: Latency) -> tuple[float, float, float, float]:
    return latency.camera_to_daemon_s, latency.processing_s, latency.daemon_to_client_s, latency.total_s


def collect(
    endpoint: str,
    frames: int | None,
    duration_s: float | None,
    idle_s: float = 5.0,
    keys: ClientKeys | None = None,
) -> LatencySample:
    """Collect until ``frames`` results or ``duration_s`` pass, or nothing comes for ``idle_s`` s."""
    sample = LatencySample()
    end = math.inf if duration_s is None else time.monotonic() + duration_s
    with Subscriber(endpoint, topics=("track",), keys=keys) as sub:
        patience = min(10.0, duration_s or 10.0)
        if not sub.wait_connected(patience):
            log.warning("no heartbeat from %s within %g s; listening anyway", endpoint, patience)
        log.info("listening to %s", endpoint)
        while time.monotonic() < end and (frames is None or sample.received < frames):
            received = sub.recv(min(idle_s, max(0.0, end - time.monotonic())))
            if received is None:
                if sample.received or time.monotonic() >= end:
                    break
                continue
            sample.add(received)
    return sample


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    latency = kinds.add_parser("latency", help="latency distributions and losses of a running daemon")
    add_publish_argument(latency)
    add_key_arguments(latency)
    latency.add_argument("--frames", type=int, metavar="N", help="stop after N results")
    latency.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after S seconds (default: 10 s unless --frames is given)",
    )
    latency.add_argument("--json", action="store_true", help="print the figures as JSON")


def run_bench(args: argparse.Namespace) -> int:
    duration = args.duration if args.duration is not None or args.frames is not None else 10.0
    sample = collect(args.publish, args.frames, duration, keys=keys_from(args))
    if not sample.received:
        log.error("no track message from %s (is the daemon running and receiving frames?)", args.publish)
        return 1
    result = sample.result()
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


def format_table(result: dict[str, object]) -> str:
    latency = result["latency_ms"]
    assert isinstance(latency, dict)
    lines = [f"{'stage / ms':<18} {'n':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}"]
    for stage in STAGES:
        d = latency[stage]
        lines.append(
            f"{stage.replace('_', ' '):<18} {d['n']:>7} "
            + " ".join(f"{d[k]:>8.2f}" for k in ("p50", "p90", "p99", "max"))
        )
    lines.append(
        f"frames: {result['frames_received']} received of {result['frames_numbered']} numbered; "
        f"dropped by the daemon {result['dropped_by_daemon']} ({_pct(result['dropped_share'])}), "
        f"missed otherwise {result['missed_otherwise']} ({_pct(result['missed_share'])})"
    )
    return "\n".join(lines)


def _pct(value: object) -> str:
    return f"{value:.2%}" if isinstance(value, float) and math.isfinite(value) else "-"
