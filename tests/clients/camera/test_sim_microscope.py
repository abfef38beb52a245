"""The simulated microscope's control socket: stage moves and beam changes act on the next frames;
bad requests are refused, counted, and change nothing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest

from lptem.clients.camera.sim_microscope import SimMicroscopeServer
from lptem.clients.feedback.actuators import SimMicroscope
from lptem.clients.wire.control import ControlError
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator
from lptem.service.keys import KeyFolder
from lptem.service.protocol.curve import ClientKeys

CENTRE = 63.5


def still_particle(dtype: str = "uint8") -> Simulator:
    config = SimConfig(
        shape=(128, 128),
        pixel_size_nm=0.5,
        dtype=dtype,  # type: ignore[arg-type]
        stack=Stack(liquid_thickness_nm=5.0),
        particles=Particles(count=1, width_nm=20.0, dispersity=0.0, start_px=((CENTRE, CENTRE),)),
        motion=Motion("brownian", sigma_px=0.0),
    )
    return Simulator(config, seed=1)


@contextlib.contextmanager
def serving(server: SimMicroscopeServer) -> Iterator[None]:
    """``server`` answering requests from a thread; closed at the end."""
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve(0.05)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def served() -> Iterator[tuple[Simulator, SimMicroscopeServer, SimMicroscope]]:
    simulator = still_particle("float32")
    server = SimMicroscopeServer(simulator, "tcp://127.0.0.1:*")
    with serving(server), SimMicroscope(server.endpoint, timeout_s=5.0) as microscope:
        yield simulator, server, microscope


def test_stage_moves_shift_the_field_of_view(
    served: tuple[Simulator, SimMicroscopeServer, SimMicroscope],
) -> None:
    simulator, server, microscope = served
    simulator.next()
    applied = microscope.move_by(10.0, -5.0)  # nm; 0.5 nm/px: the particle appears to move by (-20, +10) px
    assert applied.effective_frame == 1
    truth = simulator.next().truth
    assert (truth.x[0], truth.y[0]) == pytest.approx((CENTRE - 20.0, CENTRE + 10.0))
    assert microscope.stage_nm() == pytest.approx((10.0, -5.0))
    assert server.applied == 1


def test_dose_and_blanking_change_the_next_frames(
    served: tuple[Simulator, SimMicroscopeServer, SimMicroscope],
) -> None:
    simulator, _, microscope = served
    baseline = microscope.dose_rate()
    bright = simulator.next().image
    microscope.set_dose_rate(baseline / 4)
    assert microscope.dose_rate() == baseline / 4
    dim = simulator.next().image
    assert dim[:20].mean() == pytest.approx(bright[:20].mean() / 4, rel=0.05)  # electrons per pixel
    microscope.blank(True)
    dark = simulator.next().image
    assert abs(dark.mean()) < 0.05  # read noise only (1 e- s.d., zero mean)
    assert abs(dark[44:84, 44:84].mean() - dark[:20].mean()) < 0.2  # and no particle
    microscope.blank(False)
    assert simulator.next().image[:20].mean() == pytest.approx(dim[:20].mean(), rel=0.05)


BAD = [
    (b"\xc1", "not a msgpack map"),
    (msgpack.packb([1, 2]), "a request is a msgpack map"),
    (msgpack.packb({"cmd": "warp"}), "unknown command 'warp'"),
    (
        msgpack.packb({"cmd": "move_stage", "dx_nm": float("nan"), "dy_nm": 0}),
        "'dx_nm' must be a finite number",
    ),
    (msgpack.packb({"cmd": "move_stage", "dx_nm": True, "dy_nm": 0}), "'dx_nm' must be a finite number"),
    (msgpack.packb({"cmd": "set_dose", "dose_rate": -1}), "dose_rate must be > 0"),
    (msgpack.packb({"cmd": "blank", "on": 1}), "blank needs 'on': true or false"),
]


def test_bad_requests_are_refused_counted_and_change_nothing(
    served: tuple[Simulator, SimMicroscopeServer, SimMicroscope],
) -> None:
    simulator, server, microscope = served
    before = microscope.request("state")
    for raw, message in BAD:
        with pytest.raises(ControlError, match=message):
            microscope.send_raw(raw)
    assert server.refused == len(BAD)
    assert microscope.request("state") == before
    np.testing.assert_array_equal(simulator.fov_origin, [simulator.margin, simulator.margin])


def test_with_keys_only_an_operator_may_move_the_stage(tmp_path) -> None:
    folder = KeyFolder(tmp_path / "keys")
    folder.init()
    folder.add("olga", "operator")
    folder.add("alice", "viewer")
    simulator = still_particle("float32")
    server = SimMicroscopeServer(simulator, "tcp://127.0.0.1:*", keys=folder.path)

    def keys(name: str) -> ClientKeys:
        return ClientKeys.load(folder.path / "clients" / f"{name}.key_secret", folder.path / "server.key")

    with serving(server):
        with SimMicroscope(server.endpoint, timeout_s=5.0, keys=keys("olga")) as operator:
            assert operator.move_by(10.0, 0.0).effective_frame == 0
        for client in (keys("alice"), None):  # a viewer's key, or no CURVE: never let in
            with (
                SimMicroscope(server.endpoint, timeout_s=0.5, keys=client) as refused,
                pytest.raises(TimeoutError),
            ):
                refused.move_by(10.0, 0.0)
        assert server.applied == 1
