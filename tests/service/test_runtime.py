"""Garbage-collection pauses are timed per generation and exported; `lptem serve` freezes its start-up
objects out of collection (`--gc freeze`, the default) and leaves Python alone with `--gc default`."""

from __future__ import annotations

import gc
import urllib.request

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.sender import FrameSender
from lptem.service.metrics_http import GcPauseCollector
from lptem.service.runtime import PAUSE_BUCKETS_S, GcPauses
from tests.conftest import free_port, wait_until


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_every_collection_is_timed_by_generation_until_uninstalled() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # idempotent
    try:
        for _ in range(10):
            _Cycle()
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    gen0, _gen1, gen2 = pauses.snapshot()
    assert gen0.collections >= 1
    assert gen2.collections >= 1
    assert 0 < gen2.longest_s <= gen2.total_s
    assert sum(gen2.bucket_counts) == gen2.collections
    assert len(gen2.bucket_counts) == len(PAUSE_BUCKETS_S) + 1
    before = gen2.collections
    gc.collect(2)
    assert pauses.snapshot()[2].collections == before  # uninstalled: no longer counted


def test_pauses_are_exported_as_a_histogram_and_the_longest() -> None:
    registry = CollectorRegistry()
    registry.register(GcPauseCollector())
    text = generate_latest(registry).decode()
    assert 'lptem_gc_pause_seconds_count{generation="2"}' in text
    assert 'lptem_gc_pause_seconds_bucket{generation="0",le="+Inf"}' in text
    assert 'lptem_gc_longest_pause_seconds{generation="1"}' in text


def _serve_and_scrape(gc_mode: str) -> tuple[str, str]:
    port = free_port()
    with DaemonProcess("--engine", "passthrough", "--metrics-port", str(port), "--gc", gc_mode) as daemon:
        with FrameSender(daemon.ingest) as camera:
            for _ in range(20):
                camera.send(np.zeros((64, 64), np.uint16))
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        assert wait_until(lambda: "lptem_frames_received_total 20.0" in scraped(), timeout_s=20.0)
        text = scraped()
    return text, daemon.log_text()


def test_lptem_serve_freezes_its_start_up_objects_and_exports_its_pauses() -> None:
    metrics, log = _serve_and_scrape("freeze")
    assert "start-up objects frozen out of garbage collection" in log
    assert 'lptem_gc_pause_seconds_count{generation="0"}' in metrics
    metrics, log = _serve_and_scrape("default")
    assert "frozen" not in log
    assert 'lptem_gc_longest_pause_seconds{generation="2"}' in metrics
