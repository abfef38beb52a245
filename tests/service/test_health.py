"""Liveness and readiness: the judgement (lptem.service.health) with a hand-set clock, then /healthz,
/readyz and the operators' metrics on a real daemon's HTTP port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import numpy as np
import pytest

from lptem.clients.wire.sender import FrameSender
from lptem.service.health import STUCK_AFTER_S, Health
from lptem.service.stats import Stats
from tests.conftest import free_port, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(stages: dict[str, bool], stats: Stats, depth: list[int], clock: Clock, **kw: float) -> Health:
    def alive(name: str) -> Callable[[], bool]:
        return lambda: stages[name]

    return Health({name: alive(name) for name in stages}, stats, lambda: depth[0], clock=clock, **kw)


def test_live_until_a_stage_thread_stops_or_the_engine_is_stuck_with_frames_waiting() -> None:
    clock, stats, stages, depth = Clock(), Stats(), {"ingest": True, "engine": True}, [0]
    judge = health(stages, stats, depth, clock)
    judge.started()
    assert judge.live().ok
    stages["engine"] = False
    assert judge.live().problems == ["the engine thread has stopped"]
    stages["engine"] = True
    stats.frame_processed(0, 0, 0.001)  # stamps the monotonic clock, not ours: set it by hand
    stats.last_processed_s = clock.now
    depth[0] = 2
    clock.now += STUCK_AFTER_S - 1
    assert judge.live().ok  # slow, not stuck
    clock.now += 2
    assert judge.live().problems == [
        f"the engine finished no frame in {STUCK_AFTER_S + 1:.0f} s while 2 wait"
    ]
    depth[0] = 0
    assert judge.live().ok  # idle with nothing waiting is fine


def test_ready_once_started_and_while_frames_arrive_within_the_limit() -> None:
    clock, stats, depth = Clock(), Stats(), [0]
    judge = health({"engine": True}, stats, depth, clock, max_silence_s=5.0)
    assert judge.ready().problems == ["starting: sockets or engine not ready"]
    judge.started()
    assert judge.ready().ok
    clock.now += 6
    assert judge.ready().problems == ["no frame for 6.0 s (limit 5 s)"]
    stats.last_received_s = clock.now - 1
    assert judge.ready().ok
    assert judge.ready().checks["last_frame_age_s"] == 1.0
    no_limit = health({"engine": True}, stats, depth, clock)
    no_limit.started()
    clock.now += 600
    assert no_limit.ready().ok


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_daemon_answers_probes_and_exports_build_and_process_metrics(make_daemon) -> None:
    port = free_port()
    daemon = make_daemon(metrics_port=port, ready_max_silence_s=0.5)
    base = f"http://127.0.0.1:{port}"
    assert get(base + "/healthz")[0] == 200
    assert wait_until(lambda: get(base + "/readyz")[0] == 503)
    body = get(base + "/readyz")[1]
    assert json.loads(body)["problems"][0].startswith("no frame for")
    assert "lptem_ready 0.0" in get(base + "/metrics")[1]
    with FrameSender(daemon.endpoints["ingest"]) as camera:
        camera.send(np.zeros((64, 64), np.uint16))
        assert wait_until(lambda: get(base + "/readyz")[0] == 200)
    metrics = get(base + "/metrics")[1]
    assert 'lptem_build_info{backend="cpu",engine="classical",model=""' in metrics
    for name in ("lptem_ready 1.0", "process_resident_memory_bytes", "process_cpu_seconds_total",
                 "python_gc_collections_total", "python_info", "lptem_frame_age_seconds"):  # fmt: skip
        assert name in metrics, name
    assert get(base + "/anything-else")[0] == 200  # the metrics, as before these endpoints


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_json_with_what_was_checked(make_daemon, path: str) -> None:
    port = free_port()
    make_daemon(metrics_port=port)
    status, body = get(f"http://127.0.0.1:{port}{path}")
    report = json.loads(body)
    assert status == 200
    assert report["ok"] is True
    assert report["checks"]["threads"] == {"ingest": True, "engine": True, "publisher": True, "control": True}
