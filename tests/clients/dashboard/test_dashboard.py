"""The dashboard, offscreen (pytest-qt): it shows a real daemon fed by `lptem sim`, a mouse drag
adds an object that then appears in `track`, a right-click removes it, commands never block the GUI, and
it reconnects by itself after a daemon restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from scipy import ndimage

from lptem.clients.dashboard.state import DashboardState, label_overlay, object_colour
from lptem.clients.dashboard.window import DashboardWindow
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.service.protocol import PreviewMessage, TrackedObject, TrackMessage
from tests.conftest import free_port

RADIUS_PX = 20.0  # 20 nm gold spheres at 0.5 nm/px
LPTEM = str(Path(sys.executable).with_name("lptem"))


@pytest.fixture
def live_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """`lptem serve` (classical engine, no automatic detection) fed by `lptem sim` at 30 fps: two nearly
    still 20 nm particles in 5 nm of liquid."""
    args = (
        "-E",
        f"particle_radius_px={RADIUS_PX}",
        "-E",
        f"smoothing_px={0.3 * RADIUS_PX}",
        "--msd-rate",
        "10",
    )
    with DaemonProcess(*args) as daemon, (tmp_path / "sim.log").open("w") as log:
        sim = subprocess.Popen(
            [LPTEM, "sim", "--ingest", daemon.ingest, "--microscope", "none", "--size", "256",
             "--pixel-size-nm", "0.5", "--particles", "2", "--width-nm", "20", "--dispersity", "0",
             "--liquid-nm", "5", "--diffusion", "0.01", "--fps", "30", "--seed", "3", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            yield daemon
        finally:
            sim.terminate()
            sim.wait(timeout=30)


def darkest_spot(preview: PreviewMessage) -> tuple[float, float]:
    """Frame position (px) of the darkest particle-sized spot of a preview: where a user would drag."""
    smooth = ndimage.uniform_filter(
        preview.image.astype(np.float64), size=max(3, round(RADIUS_PX / preview.scale))
    )
    row, col = np.unravel_index(np.argmin(smooth), smooth.shape)
    return (col + 0.5) * preview.scale - 0.5, (row + 0.5) * preview.scale - 0.5


@pytest.fixture
def open_window(qtbot) -> Iterator[Callable[..., DashboardWindow]]:
    """Dashboard windows that are closed (sockets and worker thread too) at the end of the test."""
    windows: list[DashboardWindow] = []

    def factory(
        publish: str, control: str, command_timeout_s: float = 15.0, preview: str | None = None
    ) -> DashboardWindow:
        window = DashboardWindow(publish, control, command_timeout_s=command_timeout_s, preview=preview)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield factory
    for window in windows:
        window.close()


def _mouse(widget: QtWidgets.QWidget, kind: QtCore.QEvent.Type, pos: QtCore.QPoint,
           button: QtCore.Qt.MouseButton, buttons: QtCore.Qt.MouseButton) -> None:  # fmt: skip
    """Post a mouse event with its button state (QTest's mouseMove carries none, so drags need this)."""
    point = QtCore.QPointF(pos)
    event = QtGui.QMouseEvent(
        kind, point, widget.mapToGlobal(point), button, buttons, QtCore.Qt.KeyboardModifier.NoModifier
    )
    QtWidgets.QApplication.sendEvent(widget, event)


def drag(window: DashboardWindow, start: tuple[float, float], end: tuple[float, float]) -> None:
    viewport = window.frame_view.viewport()
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    a, b = window.frame_view.frame_to_widget(*start), window.frame_view.frame_to_widget(*end)
    _mouse(viewport, QtCore.QEvent.Type.MouseButtonPress, a, left, left)
    for f in np.linspace(0.1, 1.0, 8):
        step = QtCore.QPoint(round(a.x() + f * (b.x() - a.x())), round(a.y() + f * (b.y() - a.y())))
        _mouse(viewport, QtCore.QEvent.Type.MouseMove, step, none, left)
    _mouse(viewport, QtCore.QEvent.Type.MouseButtonRelease, b, left, none)


def right_click(window: DashboardWindow, at: tuple[float, float]) -> None:
    viewport = window.frame_view.viewport()
    right, none = QtCore.Qt.MouseButton.RightButton, QtCore.Qt.MouseButton.NoButton
    pos = window.frame_view.frame_to_widget(*at)
    _mouse(viewport, QtCore.QEvent.Type.MouseButtonPress, pos, right, right)
    _mouse(viewport, QtCore.QEvent.Type.MouseButtonRelease, pos, right, none)


def tracked(window: DashboardWindow) -> dict[int, TrackedObject]:
    track = window.state.last_track
    return {} if track is None else {o.id: o for o in track.objects}


def test_live_view_mouse_prompts_and_screenshot(
    qtbot, open_window, live_daemon: DaemonProcess, tmp_path: Path
) -> None:
    window = open_window(live_daemon.publish, live_daemon.control, preview=live_daemon.preview)
    qtbot.waitUntil(lambda: window.frame_view._shown_preview is not None, timeout=20_000)  # a frame is drawn
    qtbot.waitUntil(lambda: window.connection_label.text().startswith("connected to"), timeout=5_000)
    assert tracked(window) == {}
    assert window.state.preview is not None
    x, y = darkest_spot(window.state.preview)
    drag(window, (x - 30, y - 30), (x + 30, y + 30))
    qtbot.waitUntil(lambda: 1 in tracked(window) and tracked(window)[1].visible, timeout=10_000)
    found = tracked(window)[1]
    assert (found.x, found.y) == pytest.approx((x, y), abs=6.0)  # the box found the particle
    qtbot.waitUntil(lambda: window.command_label.text() == "add object: done (id 1)", timeout=5_000)
    qtbot.waitUntil(lambda: window.table.rowCount() == 1 and bool(window.msd_plot._curves), timeout=10_000)
    cell = window.table.item(0, 0)
    assert cell is not None
    assert cell.text() == "1"
    qtbot.waitUntil(lambda: window.state.object_at(x, y) == 1, timeout=10_000)  # the mask is in the preview
    shot = tmp_path / "dashboard.png"
    assert window.grab().save(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    right_click(window, (x, y))
    qtbot.waitUntil(lambda: tracked(window) == {}, timeout=10_000)
    qtbot.waitUntil(lambda: window.command_label.text() == "remove object 1: done", timeout=5_000)
    right_click(window, (x + 60 if x < 128 else x - 60, y))  # no object there: nothing is sent
    assert window.command_label.text().startswith("no object at")


def test_lptem_dashboard_screenshot_command(live_daemon: DaemonProcess, tmp_path: Path) -> None:
    """`lptem dashboard --screenshot` runs headless, as in docs and reports."""
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [LPTEM, "dashboard", "--publish", live_daemon.publish, "--control", live_daemon.control,
         "--screenshot", str(shot), "--after", "3"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"screenshot saved to {shot}" in done.stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_commands_never_block_the_gui(qtbot, open_window) -> None:
    nobody = f"tcp://127.0.0.1:{free_port()}"
    window = open_window(nobody, nobody, command_timeout_s=1.0)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    window.add_box(10, 10, 40, 40)  # no daemon: the request waits for its timeout on the worker thread
    qtbot.waitUntil(lambda: len(ticks) >= 10, timeout=5_000)  # the event loop kept running meanwhile
    assert "refused" not in window.command_label.text()
    qtbot.waitUntil(lambda: "refused" in window.command_label.text(), timeout=10_000)
    assert "no reply" in window.command_label.text()
    assert "may still apply it" in window.command_label.text()
    timer.stop()


def test_reconnects_after_a_daemon_restart(qtbot, open_window, make_daemon) -> None:
    ports = {name: f"tcp://127.0.0.1:{free_port()}" for name in ("ingest", "publish", "control")}
    first = make_daemon(engine="passthrough", **ports)
    window = open_window(ports["publish"], ports["control"])
    qtbot.waitUntil(lambda: window.feed.connected and window.state.status is not None, timeout=10_000)
    assert window.state.status is not None
    started = window.state.status.started_ns
    first.stop()
    qtbot.waitUntil(lambda: not window.feed.connected, timeout=10_000)
    assert window.connection_label.text().startswith("disconnected")
    make_daemon(engine="passthrough", **ports)

    def restarted() -> bool:
        status = window.state.status
        return window.feed.connected and status is not None and status.started_ns != started

    qtbot.waitUntil(restarted, timeout=15_000)
    assert window.feed.reconnects >= 1


def test_state_is_bounded_and_maps_masks_to_ids() -> None:
    state = DashboardState(trail_frames=5)
    for frame in range(20):
        objects = (TrackedObject(3, float(frame), 1.0, 0.0, 9.0, 1.0, True, (0, 0, 1, 1)),)
        state.on_track(TrackMessage(frame, 0, frame, frame, frame, "x", 0, objects), frame + 1)
    assert len(state.trails[3]) == 5
    assert state.tracked[3] == 20
    state.on_track(TrackMessage(20, 0, 20, 20, 20, "x", 0, ()), 21)
    assert state.trails == {}  # a removed object is forgotten
    labels = np.zeros((4, 6), np.uint16)
    labels[1, 2] = 7
    state.on_preview(PreviewMessage(0, 0, 4, np.zeros((4, 6), np.float32), labels))
    assert state.object_at(9.0, 5.0) == 7  # frame (9, 5) lies in preview pixel (row 1, col 2)
    assert state.object_at(1.0, 1.0) is None
    overlay = label_overlay(labels)
    assert tuple(overlay[1, 2, :3]) == object_colour(7)
    assert overlay[0, 0, 3] == 0
    assert object_colour(7) != object_colour(8)
