"""Closed loops over real sockets: the centring controller holds a drifting particle, the control loop's
safety rules hold whatever the controller asks, and `lptem control` drives `lptem sim` end to end."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clients.actuators import DryRunMicroscope, SimMicroscope
from clients.control import ControlClient
from clients.controller import ControlLoop, Limits, MoveStage
from clients.controllers import CentreParticle
from clients.daemon_process import DaemonProcess
from clients.loop_demo import DriftScenario, daemon_arguments, run_centring
from clients.sender import FrameSender
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


def test_centring_holds_a_drifting_particle_that_otherwise_drifts_out() -> None:
    scenario = DriftScenario(seconds=60.0)  # 1200 frames at 20 fps, drift 0.5 px/frame (5 nm/s)
    with DaemonProcess(*daemon_arguments()) as daemon:
        held = run_centring(scenario, daemon.ingest, daemon.publish, controlled=True)
    with DaemonProcess(*daemon_arguments()) as daemon:
        free = run_centring(scenario, daemon.ingest, daemon.publish, controlled=False, stop_beyond_px=30.0)
    print(
        f"max distance from the centre: {held.max_offset_px:.1f} px with control over "
        f"{len(held.offsets_px)} frames; without, beyond 30 px after {len(free.offsets_px)} frames"
    )
    assert len(held.offsets_px) == scenario.frames
    assert held.max_offset_px < 30.0
    assert free.max_offset_px > 30.0
    assert held.loop is not None
    assert held.loop.failed == 0
    assert held.loop.deadman_trips == 0
    travelled = math.hypot(*held.loop.stage_nm) / 0.5  # px: the stage followed the drift
    assert travelled == pytest.approx(0.5 * scenario.frames, rel=0.1)


def _send_frames(sender: FrameSender, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sender.send(np.zeros((100, 200), np.uint16))
        time.sleep(0.02)


def _run_loop(loop: ControlLoop, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    assert loop.ready.wait(10.0)
    return thread


def test_rate_limit_step_bound_and_deadman_stop(make_daemon) -> None:
    """A pass-through daemon reports an object 50 px right of the centre whatever the (dry-run) stage does,
    so the controller asks for a move on every frame."""
    daemon = make_daemon(engine="passthrough")
    ep = daemon.endpoints
    with ControlClient(ep["control"]) as control:
        control.add_object(box=[140, 40, 160, 59])  # centre (150, 49.5); the frame's centre is (99.5, 49.5)
    limits = Limits(min_interval_s=0.3, max_step_nm=25.0, max_travel_nm=1000.0, deadman_s=0.5, settle_s=0.0)
    loop = ControlLoop(CentreParticle(1), DryRunMicroscope(), ep["publish"], limits)
    stop = threading.Event()
    thread = _run_loop(loop, stop)
    with FrameSender(ep["ingest"], pixel_size_nm=1.0) as camera:
        _send_frames(camera, 1.5)
        paused = time.monotonic() - loop.started
        time.sleep(1.5)  # no results: the dead-man stop trips
        resumed = time.monotonic() - loop.started
        _send_frames(camera, 1.0)
    stop.set()
    thread.join()
    report = loop.report
    times = [t for t, _ in report.actions]
    assert len(times) >= 6
    assert min(np.diff(times)) >= 0.3  # rate limit
    assert all(
        isinstance(a, MoveStage) and math.hypot(a.dx_nm, a.dy_nm) <= 25.0 + 1e-9 for _, a in report.actions
    )
    assert report.clipped == len(report.actions)  # 0.8 x 50.5 nm asked each time
    assert report.deadman_trips == 1
    assert not [t for t in times if paused + 0.1 < t < resumed]  # nothing while no results came
    assert [t for t in times if t > resumed]  # acting again once they did
    assert report.rate_limited > 0


def test_stage_travel_is_bounded(make_daemon) -> None:
    daemon = make_daemon(engine="passthrough")
    ep = daemon.endpoints
    with ControlClient(ep["control"]) as control:
        control.add_object(box=[140, 40, 160, 59])
    limits = Limits(min_interval_s=0.05, max_step_nm=25.0, max_travel_nm=60.0, settle_s=0.0)
    microscope = DryRunMicroscope()
    loop = ControlLoop(CentreParticle(1), microscope, ep["publish"], limits)
    stop = threading.Event()
    thread = _run_loop(loop, stop)
    with FrameSender(ep["ingest"], pixel_size_nm=1.0) as camera:
        _send_frames(camera, 1.0)
    stop.set()
    thread.join()
    assert microscope.stage == pytest.approx((60.0, 0.0))  # 25 + 25 + 10, then nothing left to move
    assert len(microscope.commands) == 3


def test_lptem_control_and_lptem_sim_close_the_loop_over_the_cli(tmp_path: Path) -> None:
    """`lptem control dose` lowers the simulated beam while the particles diffuse (α > 0.1) and restores
    it when it stops; `lptem control centre --dry-run` reports its moves."""
    sim_control = f"tcp://127.0.0.1:{free_port()}"
    with (
        DaemonProcess(*daemon_arguments(), "--msd-window", "64", "--msd-rate", "10") as daemon,
        (tmp_path / "sim.log").open("w") as sim_log,
    ):
        sim = subprocess.Popen(
            [LPTEM, "sim", "--ingest", daemon.ingest, "--control", sim_control, "--size", "256",
             "--pixel-size-nm", "0.5", "--particles", "2", "--width-nm", "20", "--liquid-nm", "5",
             "--diffusion", "200", "--fps", "50", "--frames", "1500", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=sim_log,
        )  # fmt: skip
        try:
            with SimMicroscope(sim_control, timeout_s=5.0) as microscope:
                baseline = microscope.dose_rate()
                dose = subprocess.Popen(
                    [LPTEM, "control", "dose", "--alpha-above", "0.1", "--lower-to", "40", "--publish",
                     daemon.publish, "--microscope", sim_control, "--duration", "6"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                assert wait_until(lambda: microscope.dose_rate() == 40.0, timeout_s=8.0)
                out, err = dose.communicate(timeout=30)
                assert dose.returncode == 0, err
                assert microscope.dose_rate() == baseline  # restored on the way out
            assert "set dose rate 40 e-/Å²/s" in err
            assert "2 actions" in out  # lowered, then restored on the way out
            centre = subprocess.run(
                [LPTEM, "control", "centre", "--dry-run", "--publish", daemon.publish, "--duration", "2"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert centre.returncode == 0, centre.stderr
            assert "dry run: move stage by" in centre.stderr
        finally:
            sim.terminate()
            sim.wait(timeout=30)
