"""Closed loops over real sockets: the centring controller holds a drifting particle, the control loop's
safety rules hold whatever the controller asks, and `lptem control` drives `lptem sim` end to end."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.feedback.actuators import Applied, DryRunMicroscope, SimMicroscope
from lptem.clients.feedback.controllers import CentreParticle, DoseGuard
from lptem.clients.feedback.loop import ControlLoop, Limits, MoveStage, SetDose
from lptem.clients.feedback.sim_loop import DriftScenario, daemon_arguments, run_centring
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Received
from lptem.service.protocol import MsdMessage, ParticleMsd, TrackedObject, TrackMessage
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e
LPTEM = str(Path(sys.executable).with_name("lptem"))


@pytest.mark.slow
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


def _send_frames_until(sender: FrameSender, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Stream frames at about 50 fps until ``done()`` holds (a camera that keeps going)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the condition did not come true while frames were streaming"
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
    report = loop.report
    with FrameSender(ep["ingest"], pixel_size_nm=1.0) as camera:
        _send_frames_until(camera, lambda: len(report.actions) >= 6)
        paused = time.monotonic() - loop.started
        # no results: the dead-man stop trips
        assert wait_until(lambda: any(t > paused for t in report.deadman_times), timeout_s=10.0)
        resumed = time.monotonic() - loop.started
        _send_frames_until(camera, lambda: any(t > resumed for t, _ in report.actions))
    stop.set()
    thread.join()
    times = [t for t, _ in report.actions]
    assert len(times) >= 6
    assert min(np.diff(times)) >= 0.3  # rate limit
    assert all(
        isinstance(a, MoveStage) and math.hypot(a.dx_nm, a.dy_nm) <= 25.0 + 1e-9 for _, a in report.actions
    )
    assert report.clipped == len(report.actions)  # 0.8 x 50.5 nm asked each time
    assert [t for t in report.deadman_times if paused < t < resumed]  # tripped while no results came
    assert not [t for t in times if paused + 0.1 < t < resumed]  # and nothing was done meanwhile
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
        _send_frames_until(camera, lambda: microscope.stage[0] >= 60.0 - 1e-9)
        at_bound = loop.report.results
        _send_frames_until(camera, lambda: loop.report.results >= at_bound + 10)  # each asks to move on
    stop.set()
    thread.join()
    assert microscope.stage == pytest.approx((60.0, 0.0))  # 25 + 25 + 10, then nothing left to move
    assert len(microscope.commands) == 3


@pytest.mark.slow
def test_lptem_control_and_lptem_sim_close_the_loop_over_the_cli(tmp_path: Path) -> None:
    """`lptem control dose` lowers the simulated beam while the particles diffuse (α > 0.1) and restores
    it when it stops; `lptem control centre --dry-run` reports its moves."""
    sim_control = f"tcp://127.0.0.1:{free_port()}"
    with (
        DaemonProcess(*daemon_arguments(), "--msd-window", "64", "--msd-rate", "10") as daemon,
        (tmp_path / "sim.log").open("w") as sim_log,
    ):
        sim = subprocess.Popen(
            [LPTEM, "sim", "--ingest", daemon.ingest, "--microscope", sim_control, "--size", "256",
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


def _track(frame: int, t_recv_ns: int, x: float = 150.0) -> TrackMessage:
    obj = TrackedObject(1, x, 49.5, 0.0, 50.0, 1.0, True, (0, 0, 1, 1))
    return TrackMessage(frame, 0, t_recv_ns, t_recv_ns, t_recv_ns, "test", 0, (obj,), 1.0, None, (100, 200))


def test_stale_results_are_not_acted_on() -> None:
    microscope = DryRunMicroscope()
    loop = ControlLoop(
        CentreParticle(1), microscope, "tcp://127.0.0.1:9", Limits(max_age_s=1.0, settle_s=0.0)
    )
    now = time.time_ns()
    loop.handle(Received("track", _track(0, now - 3_000_000_000), now))  # received by the daemon 3 s ago
    assert loop.report.stale == 1
    assert microscope.commands == []
    loop.handle(Received("track", _track(1, now), now))
    assert len(microscope.commands) == 1


def test_settling_waits_for_the_frame_that_shows_the_change() -> None:
    """A move applies from frame 5: results of frames 2-4 are not acted on, frame 5's is."""

    class FrameAwareStage(DryRunMicroscope):
        def move_by(self, dx_nm: float, dy_nm: float) -> Applied:
            super().move_by(dx_nm, dy_nm)
            return Applied(effective_frame=5)

    microscope = FrameAwareStage()
    loop = ControlLoop(CentreParticle(1), microscope, "tcp://127.0.0.1:9", Limits(min_interval_s=0.0))
    now = time.time_ns()
    for frame in range(1, 7):
        loop.handle(Received("track", _track(frame, now), now))
    acted = [int(action.reason.rsplit("frame ", 1)[1]) for _, action in loop.report.actions]
    assert acted == [1, 5, 6]  # after frame 1's move, frames 2-4 predate it


def test_dose_guard_asks_again_until_the_loop_confirms() -> None:
    guard = DoseGuard("alpha", below=0.5, lower_to=40.0, hold_s=1.0)
    guard.baseline = 100.0
    caged = _msd(0, alpha=0.2)
    first = guard.on_msd(caged)
    assert isinstance(first, SetDose)
    assert first.dose_rate == 40.0
    guard.on_applied(first, applied=False)  # rate-limited, or the microscope did not answer
    assert not _lowered(guard)
    again = guard.on_msd(_msd(1, alpha=0.2))
    assert isinstance(again, SetDose)
    guard.on_applied(again, applied=True)
    assert _lowered(guard)
    assert guard.on_msd(_msd(2, alpha=0.2)) is None  # lowered: nothing more to do
    assert guard.on_msd(_msd(3, alpha=0.9)) is None  # back, but not for hold_s yet
    restore = guard.on_msd(_msd(3 + 25, alpha=0.9))  # 25 frames x 0.05 s = 1.25 s later
    assert isinstance(restore, SetDose)
    assert restore.dose_rate == 100.0
    guard.on_applied(restore, applied=True)
    assert not _lowered(guard)
    assert guard.on_stop() is None


def _lowered(guard: DoseGuard) -> bool:
    """Read through a call, so that the type checker does not narrow the attribute between steps."""
    return guard.lowered


def _msd(frame: int, alpha: float) -> MsdMessage:
    particle = ParticleMsd(1, [1.0], [10], 1.0, 10.0, alpha, [1, 10], 0.99)
    return MsdMessage(frame, 0, frame * 50_000_000, 64, [1], [0.05], 0.05, False, 1.0, (particle,))


@pytest.mark.parametrize(
    "options",
    [
        {"max_step_nm": -25.0},
        {"min_interval_s": float("nan")},
        {"deadman_s": 0.0},
        {"min_dose_rate": 50.0, "max_dose_rate": 10.0},
    ],
)
def test_limits_must_make_sense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Limits(**options)


def test_bad_controller_settings_are_refused_by_the_cli() -> None:
    for args, message in (
        (["centre", "--gain", "-1"], "gain must be in (0, 1]"),
        (["centre", "--max-step-nm", "-25"], "safety limits must be finite and >= 0"),
        (["dose", "--alpha-below", "0.5", "--lower-to", "0"], "lower_to must be a dose rate > 0"),
    ):
        command = [LPTEM, "control", *args, "--dry-run", "--duration", "1"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
