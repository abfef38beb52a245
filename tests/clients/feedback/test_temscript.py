"""The temscript backend against temscript's own HTTP server (``temscript-server --null``: its dummy
microscope) on loopback: moves, image shifts, blanking and spot sizes read back from the server change by
exactly what was commanded; refusals and a vanished server are errors that say so; and ``lptem control``
drives it through the daemon within its safety limits, stopping cleanly when the server is killed."""

from __future__ import annotations

import http.server
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lptem.clients.feedback.actuators import MicroscopeError
from lptem.clients.feedback.calibration import ActuatorMap
from lptem.clients.feedback.sim_loop import daemon_arguments
from lptem.clients.feedback.temscript_backend import DoseTable, TemscriptMicroscope, parse_address
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.sender import FrameSender
from tests.conftest import free_port, wait_until

temscript = pytest.importorskip("temscript", reason="the temscript extra is not installed")
LPTEM = str(Path(sys.executable).with_name("lptem"))
SERVER = str(Path(sys.executable).with_name("temscript-server"))


class TemscriptServer:
    """temscript's server with its dummy microscope, as a process (so that it can be killed)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"temscript+http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [SERVER, "--null", "--host", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._answers, timeout_s=20.0), "temscript-server did not start"
        self.client = temscript.RemoteMicroscope(("127.0.0.1", self.port), timeout=5.0)

    def _answers(self) -> bool:
        try:
            temscript.RemoteMicroscope(("127.0.0.1", self.port), timeout=1.0)
        except OSError:
            return False
        return True

    def stage_nm(self) -> tuple[float, float]:
        position = self.client.get_stage_position()
        return position["x"] * 1e9, position["y"] * 1e9

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        conn = getattr(self.client, "_conn", None)
        if conn is not None:
            conn.close()


@pytest.fixture
def server() -> Iterator[TemscriptServer]:
    s = TemscriptServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tem(server: TemscriptServer) -> Iterator[TemscriptMicroscope]:
    microscope = TemscriptMicroscope(server.url, timeout_s=5.0)
    try:
        yield microscope
    finally:
        microscope.close()


def test_stage_moves_by_exactly_the_commanded_amount(
    server: TemscriptServer, tem: TemscriptMicroscope
) -> None:
    server.client.set_stage_position(x=1.25e-6, y=-0.5e-6)
    tem.move_by(30.0, -12.5)
    tem.move_by(-7.25, 2.0)
    assert server.stage_nm() == pytest.approx((1250.0 + 22.75, -500.0 - 10.5), abs=1e-6)
    assert tem.position_nm() == pytest.approx(server.stage_nm(), abs=1e-9)


def test_image_shift_moves_by_exactly_the_commanded_amount(server: TemscriptServer) -> None:
    shift = TemscriptMicroscope(server.url, actuator="image-shift")
    try:
        shift.move_by(15.0, -4.0)
        shift.move_by(1.5, 1.0)
        x, y = server.client.get_image_shift()
        assert (x * 1e9, y * 1e9) == pytest.approx((16.5, -3.0), abs=1e-9)
        assert server.stage_nm() == (0.0, 0.0)  # the stage stays where it was
    finally:
        shift.close()


def test_blanking_and_dose_through_the_spot_size(server: TemscriptServer) -> None:
    table = DoseTable({1: 900.0, 3: 300.0, 5: 100.0, 7: 30.0})
    tem = TemscriptMicroscope(server.url, dose_table=table)
    try:
        tem.blank(True)
        assert server.client.get_beam_blanked() is True
        tem.blank(False)
        assert server.client.get_beam_blanked() is False
        assert tem.dose_rate() == 900.0  # the dummy microscope starts at spot size 1
        tem.set_dose_rate(120.0)  # the highest dose rate not above what was asked
        assert server.client.get_spot_size_index() == 5
        assert tem.dose_rate() == 100.0
        with pytest.raises(MicroscopeError, match="lowest is 30"):
            tem.set_dose_rate(10.0)
        assert server.client.get_spot_size_index() == 5  # refused: nothing changed
        server.client.set_spot_size_index(2)
        with pytest.raises(MicroscopeError, match="spot size 2 is not in the dose table"):
            tem.dose_rate()
    finally:
        tem.close()


def test_without_a_dose_table_only_blanking_is_offered(tem: TemscriptMicroscope) -> None:
    with pytest.raises(MicroscopeError, match="no dose-rate setting"):
        tem.dose_rate()
    with pytest.raises(MicroscopeError, match="no dose-rate setting"):
        tem.set_dose_rate(50.0)


def test_a_table_measured_at_another_intensity_is_refused(server: TemscriptServer) -> None:
    server.client.set_intensity(0.25)
    with pytest.raises(MicroscopeError, match=r"measured at intensity 0\.4.*at 0\.25"):
        TemscriptMicroscope(server.url, dose_table=DoseTable({1: 10.0}, intensity=0.4))


def test_a_move_beyond_the_stage_limits_is_refused(server: TemscriptServer, tem: TemscriptMicroscope) -> None:
    server.client.set_stage_position(x=0.999e-3)  # the dummy stage travels ±1 mm
    with pytest.raises(MicroscopeError, match="beyond its limits"):
        tem.move_by(2000.0, 0.0)
    assert server.stage_nm()[0] == pytest.approx(0.999e6)


def test_a_vanished_server_is_an_error_that_names_it(
    server: TemscriptServer, tem: TemscriptMicroscope
) -> None:
    server.kill()
    with pytest.raises(
        MicroscopeError, match=r"temscript get stage status at temscript\+http://127\.0\.0\.1"
    ):
        tem.move_by(1.0, 0.0)


class _Failing(http.server.BaseHTTPRequestHandler):
    """A microscope server whose microscope fails every call but the version."""

    def do_GET(self) -> None:
        if self.path == "/v1/version":
            body = b'"2.1.0"'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(500, "COM error: the stage is disabled")

    do_PUT = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_a_server_that_answers_errors_or_nothing_is_an_error_that_says_so() -> None:
    with http.server.HTTPServer(("127.0.0.1", 0), _Failing) as failing:
        thread = threading.Thread(target=failing.serve_forever)
        thread.start()
        tem = TemscriptMicroscope(f"temscript+http://127.0.0.1:{failing.server_address[1]}")
        try:
            with pytest.raises(MicroscopeError, match=r"get stage status .* status 500"):
                tem.move_by(1.0, 0.0)
            with pytest.raises(MicroscopeError, match=r"blank .* status 500"):
                tem.blank(True)
        finally:
            tem.close()
            failing.shutdown()
            thread.join()
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(MicroscopeError, match=r"connect .* failed: no answer"):
            TemscriptMicroscope(f"temscript+http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)


def test_an_unreachable_server_and_bad_addresses_are_refused() -> None:
    with pytest.raises(MicroscopeError, match="connect"):
        TemscriptMicroscope(f"temscript+http://127.0.0.1:{free_port()}", timeout_s=1.0)
    for bad in (
        "http://tem:8080",
        "temscript+http://tem",
        "temscript+http://tem:99999",
        "temscript+http://:80",
    ):
        with pytest.raises(ValueError, match="temscript"):
            parse_address(bad)
    with pytest.raises(ValueError, match="dose rates > 0"):
        DoseTable({1: -3.0})


def _stream(ingest: str, stop: threading.Event, seconds: float = 60.0) -> None:
    """A camera at about 50 fps (the pass-through daemon reports the prompted box on every frame)."""
    end = time.monotonic() + seconds
    with FrameSender(ingest, pixel_size_nm=1.0) as camera:
        while not stop.is_set() and time.monotonic() < end:
            camera.send(np.zeros((100, 200), np.uint16))
            time.sleep(0.02)


def _moves(stderr: str) -> list[tuple[float, float]]:
    found = re.findall(r"move stage by \(([-+][\d.]+), ([-+][\d.]+)\) nm", stderr)
    return [(float(x), float(y)) for x, y in found]


@pytest.mark.e2e
def test_lptem_control_centre_moves_the_temscript_stage_within_the_limits(
    server: TemscriptServer, make_daemon, tmp_path: Path
) -> None:
    """The prompted particle sits 50.5 px right of the centre whatever the stage does (the frames do not
    come from this microscope), so the controller asks to move on every result: the steps, the travel
    and the rate are the limits' doing, and the server's stage has moved exactly what the loop reports.
    The camera stops after 2 s of the 4: the dead-man stop trips."""
    daemon = make_daemon(engine="passthrough")
    ep = daemon.endpoints
    with ControlClient(ep["control"]) as control:
        control.add_object(box=[140, 40, 160, 59])
    rotated = ActuatorMap(((0.0, -1.0), (1.0, 0.0)))  # the stage's x axis is the image's -y
    rotated.save(tmp_path / "stage.toml")
    server.client.set_stage_position(x=2e-6, y=3e-6)
    stop = threading.Event()
    camera = threading.Thread(target=_stream, args=(ep["ingest"], stop, 2.0))
    camera.start()
    try:
        run = subprocess.run(
            [LPTEM, "-v", "control", "centre", "--microscope", server.url, "--calibration",
             str(tmp_path / "stage.toml"), "--publish", ep["publish"], "--duration", "4",
             "--max-step-nm", "20", "--max-travel-nm", "70", "--min-interval-s", "0.3", "--settle-s", "0",
             "--deadman-s", "0.5"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        stop.set()
        camera.join()
    assert run.returncode == 0, run.stderr
    moves = _moves(run.stderr)
    # the particle is at +50.5 px in x: through the map, the stage moves along its +y... by 0.8 × 50.5
    assert moves[0] == pytest.approx((0.0, 20.0), abs=0.01)  # clipped to the step limit
    assert all(np.hypot(*m) <= 20.0 + 1e-6 for m in moves)
    assert sum(m[1] for m in moves) == pytest.approx(70.0, abs=0.05)  # then the travel limit holds
    assert len(moves) == 4  # 20 + 20 + 20 + 10
    reported = re.search(r"stage moved \(([-+][\d.]+), ([-+][\d.]+)\) nm", run.stdout)
    assert reported is not None, run.stdout
    x, y = server.stage_nm()
    assert (x - 2000.0, y - 3000.0) == pytest.approx((float(reported[1]), float(reported[2])), abs=0.05)
    assert (x - 2000.0, y - 3000.0) == pytest.approx((0.0, 70.0), abs=1e-6)
    rate_limited = re.search(r"(\d+) rate-limited", run.stdout)
    assert rate_limited is not None
    assert int(rate_limited[1]) > 0  # 50 results/s, one action per 0.3 s
    assert "1 dead-man stops" in run.stdout


@pytest.mark.e2e
def test_lptem_control_stops_cleanly_when_the_temscript_server_is_killed(
    server: TemscriptServer, make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon(engine="passthrough")
    ep = daemon.endpoints
    with ControlClient(ep["control"]) as control:
        control.add_object(box=[140, 40, 160, 59])
    ActuatorMap.aligned(1.0).save(tmp_path / "stage.toml")
    stop = threading.Event()
    camera = threading.Thread(target=_stream, args=(ep["ingest"], stop))
    camera.start()
    try:
        centre = subprocess.Popen(
            [LPTEM, "-v", "control", "centre", "--microscope", server.url, "--calibration",
             str(tmp_path / "stage.toml"), "--publish", ep["publish"], "--duration", "60",
             "--max-step-nm", "5", "--max-travel-nm", "10000", "--min-interval-s", "0.2", "--settle-s", "0",
             "--microscope-timeout-s", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert wait_until(lambda: server.stage_nm()[0] >= 10.0, timeout_s=20.0)
        server.kill()
        out, err = centre.communicate(timeout=30)  # long before its 60 s are over
    finally:
        stop.set()
        camera.join()
    assert centre.returncode == 1, err
    assert "stopping the control loop: 3 actions in a row failed" in err
    assert "stopped: 3 actions in a row failed" in out
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.e2e
def test_lptem_control_dose_changes_the_spot_size_and_blanks_through_the_daemon(
    server: TemscriptServer, tmp_path: Path
) -> None:
    """Diffusing particles (α ≈ 1 > 0.1) trip the guard: the spot size goes to the one whose dose rate is
    at most the one asked for, and back when the loop stops; with --blank the beam is blanked, then not."""
    (tmp_path / "dose.toml").write_text("[dose_rate]\n1 = 900.0\n3 = 300.0\n5 = 100.0\n")
    with (
        DaemonProcess(*daemon_arguments(), "--msd-window", "64", "--msd-rate", "10") as daemon,
        (tmp_path / "sim.log").open("w") as sim_log,
    ):
        sim = subprocess.Popen(
            [LPTEM, "sim", "--ingest", daemon.ingest, "--microscope", "none", "--size", "256",
             "--pixel-size-nm", "0.5", "--particles", "2", "--width-nm", "20", "--liquid-nm", "5",
             "--diffusion", "200", "--fps", "50", "--frames", "2500", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=sim_log,
        )  # fmt: skip
        try:
            control = [LPTEM, "control", "dose", "--alpha-above", "0.1", "--publish", daemon.publish,
                       "--microscope", server.url, "--duration", "6"]  # fmt: skip
            lower = subprocess.Popen(
                [*control, "--lower-to", "120", "--dose-table", str(tmp_path / "dose.toml")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert wait_until(lambda: server.client.get_spot_size_index() == 5, timeout_s=10.0)
            out, err = lower.communicate(timeout=30)
            assert lower.returncode == 0, err
            assert server.client.get_spot_size_index() == 1  # restored on the way out
            assert "2 actions" in out
            blank = subprocess.Popen(
                [*control, "--blank"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            assert wait_until(lambda: server.client.get_beam_blanked() is True, timeout_s=10.0)
            out, err = blank.communicate(timeout=30)
            assert blank.returncode == 0, err
            assert server.client.get_beam_blanked() is False
        finally:
            sim.terminate()
            sim.wait(timeout=30)
