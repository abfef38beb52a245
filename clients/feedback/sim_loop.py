"""A closed loop on the simulated microscope: a drifting particle, the daemon tracking it, and the
centring controller moving the stage, all over the sockets a real setup would use; and a calibration of
that stage (whose axes may be rotated, mirrored and scaled against the camera's).

Used by ``benchmarks/closed_loop.py`` and the closed-loop tests; the daemon is started by the caller
(``lptem serve --engine classical --auto-detect --policy queue``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from lptem.clients.camera.sim_microscope import SimMicroscopeServer, StageGeometry
from lptem.clients.camera.simcam import SimulatedCamera
from lptem.clients.feedback.actuators import SimMicroscope
from lptem.clients.feedback.calibrate import CalibrationPlan, Calibrator
from lptem.clients.feedback.calibration import ActuatorMap, Fit
from lptem.clients.feedback.controllers import CentreParticle
from lptem.clients.feedback.loop import ControlLoop, Limits, LoopReport
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.simulator import Particles, SimConfig, SimFrame, Simulator

SIZE_PX = 256
PIXEL_NM = 0.5
WIDTH_NM = 20.0  # a 40 px gold sphere in 5 nm of liquid: easy to see
RADIUS_PX = WIDTH_NM / PIXEL_NM / 2


@dataclass(frozen=True, slots=True)
class DriftScenario:
    seconds: float = 60.0
    """Simulated time, s."""
    fps: float = 20.0
    """Camera frame rate of the simulation (sets the physics' time step)."""
    send_fps: float = 100.0
    """Rate the frames are streamed at (faster than real time keeps runs short)."""
    drift_px: tuple[float, float] = (0.4, 0.3)
    """Per frame: 0.5 px/frame, 5 nm/s at 20 fps."""
    sigma_px: float = 0.3
    """Brownian step s.d. per axis per frame."""
    seed: int = 7

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    def simulator(self) -> Simulator:
        centre = (SIZE_PX - 1) / 2
        config = SimConfig(
            shape=(SIZE_PX, SIZE_PX),
            pixel_size_nm=PIXEL_NM,
            fps=self.fps,
            stack=Stack(liquid_thickness_nm=5.0),
            particles=Particles(count=1, width_nm=WIDTH_NM, dispersity=0.0, start_px=((centre, centre),)),
            motion=Motion("brownian", sigma_px=self.sigma_px, drift_px=self.drift_px),
        )
        return Simulator(config, seed=self.seed)


def daemon_arguments() -> list[str]:
    """``lptem serve`` options that find and track the scenario's particle by themselves."""
    return [
        "--engine", "classical", "--auto-detect", "--policy", "queue",
        "-E", f"particle_radius_px={RADIUS_PX}", "-E", f"smoothing_px={0.3 * RADIUS_PX}",
    ]  # fmt: skip


@dataclass(frozen=True)
class CentringRun:
    offsets_px: np.ndarray
    """Per frame: the particle's true distance from the frame centre, px."""
    loop: LoopReport | None
    """The control loop's report (None without control)."""

    @property
    def max_offset_px(self) -> float:
        return float(np.max(self.offsets_px))


def run_centring(
    scenario: DriftScenario,
    ingest: str,
    publish: str,
    *,
    controlled: bool,
    limits: Limits | None = None,
    stop_beyond_px: float | None = None,
    stage: StageGeometry | None = None,
    stage_map: ActuatorMap | None = None,
) -> CentringRun:
    """Stream the scenario to the daemon, with or without the centring loop; optionally stop early
    once the particle is ``stop_beyond_px`` from the centre. ``stage``: how the simulated stage sits
    against the camera; ``stage_map``: the map the controller moves by (None: axes taken as aligned)."""
    simulator = scenario.simulator()
    server = SimMicroscopeServer(simulator, "tcp://127.0.0.1:*", stage=stage)
    offsets: list[float] = []
    stop_camera, stop_loop = threading.Event(), threading.Event()
    centre = (SIZE_PX - 1) / 2

    def on_frame(frame: SimFrame) -> None:
        offsets.append(float(np.hypot(frame.truth.x[0] - centre, frame.truth.y[0] - centre)))
        if stop_beyond_px is not None and offsets[-1] > stop_beyond_px:
            stop_camera.set()

    microscope = SimMicroscope(server.endpoint, timeout_s=5.0)
    controller = CentreParticle(stage_map=stage_map)
    loop = ControlLoop(controller, microscope, publish, limits) if controlled else None
    reports: list[LoopReport] = []
    thread = None
    if loop is not None:
        thread = threading.Thread(target=lambda: reports.append(loop.run(stop_loop)), name="lptem-loop")
        thread.start()
        loop.ready.wait(10.0)  # subscribed before the first frame
    try:
        with FrameSender(ingest, pixel_size_nm=PIXEL_NM, series=f"loop-{scenario.seed}") as sender:
            camera = SimulatedCamera(simulator, sender, scenario.send_fps, control=server)
            camera.run(scenario.frames, stop_camera, on_frame=on_frame)
    finally:
        stop_loop.set()
        if thread is not None:
            _serve_until_joined(server, thread)
        microscope.close()
        server.close()
    return CentringRun(np.array(offsets), reports[0] if reports else None)


def run_calibration(
    scenario: DriftScenario, ingest: str, publish: str, stage: StageGeometry, plan: CalibrationPlan
) -> Fit:
    """Stream the scenario while ``lptem calibrate``'s procedure measures the simulated stage."""
    simulator = scenario.simulator()
    server = SimMicroscopeServer(simulator, "tcp://127.0.0.1:*", stage=stage)
    stop_camera = threading.Event()
    camera_error: list[BaseException] = []

    def stream() -> None:
        try:
            with FrameSender(ingest, pixel_size_nm=PIXEL_NM, series=f"calibrate-{scenario.seed}") as sender:
                SimulatedCamera(simulator, sender, scenario.send_fps, control=server).run(
                    scenario.frames, stop_camera
                )
        except Exception as exc:  # raised again in the caller's thread, below
            camera_error.append(exc)

    microscope = SimMicroscope(server.endpoint, timeout_s=5.0)
    camera = threading.Thread(target=stream, name="lptem-sim-camera")
    try:
        with Subscriber(publish, topics=("track",)) as sub:
            sub.wait_connected(5.0)
            camera.start()
            return Calibrator(microscope, sub, plan).run("stage", step_nm=plan.step_nm)
    finally:
        stop_camera.set()
        if camera.is_alive():
            camera.join()
        microscope.close()
        server.close()
        if camera_error:
            raise RuntimeError(f"the simulated camera failed: {camera_error[0]}") from camera_error[0]


def _serve_until_joined(server: SimMicroscopeServer, thread: threading.Thread) -> None:
    """Keep answering the loop's requests while it finishes (its last request must not hang)."""
    while thread.is_alive():
        server.serve(0.05)
        thread.join(0.0)
