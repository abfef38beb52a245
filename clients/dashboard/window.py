"""The dashboard window: wires the feed and the command runner to the state and the views."""

from __future__ import annotations

import logging
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from lptem.clients.dashboard.feed import CommandRunner, ResultFeed
from lptem.clients.dashboard.frame_view import FrameView
from lptem.clients.dashboard.panels import MsdPlot, ParticleTable, StripCharts, hint_label
from lptem.clients.dashboard.state import DashboardState
from lptem.service.protocol import StatusMessage
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger("lptem.dashboard")


class DashboardWindow(QtWidgets.QMainWindow):
    def __init__(
        self,
        publish: str,
        control: str,
        refresh_hz: float = 15.0,
        trail_frames: int = 100,
        command_timeout_s: float = 15.0,
        *,
        keys: ClientKeys | None = None,
        preview: str | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"lptem dashboard: {publish}")
        self.state = DashboardState(trail_frames=trail_frames)
        self.feed = ResultFeed(publish, parent=self, keys=keys, preview_endpoint=preview)
        self.commands = CommandRunner(control, command_timeout_s, parent=self, keys=keys)
        self.pending_points: list[tuple[float, float, int]] = []
        self.frame_view = FrameView()
        self.table = ParticleTable()
        self.msd_plot = MsdPlot()
        self.charts = StripCharts()
        self.connection_label = QtWidgets.QLabel("connecting…")
        self.command_label = QtWidgets.QLabel("")
        self._drawn_version = -1
        self._layout()
        self._connect()
        self._refresh_timer = QtCore.QTimer(self)
        self._refresh_timer.timeout.connect(self.refresh)
        self._refresh_timer.start(int(1000 / refresh_hz))

    def _layout(self) -> None:
        side = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        for widget in (self.table, self.msd_plot, self.charts):
            side.addWidget(widget)
        side.setSizes([200, 300, 320])
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.frame_view)
        split.addWidget(side)
        split.setSizes([700, 500])
        toolbar = QtWidgets.QHBoxLayout()
        toolbar.addWidget(hint_label(), stretch=1)
        buttons = (("Send points", self.send_points), ("Clear points", self.clear_points),
                   ("Levels", self.frame_view.refit_levels))  # fmt: skip
        for text, slot in buttons:
            button = QtWidgets.QPushButton(text)
            button.clicked.connect(slot)
            toolbar.addWidget(button)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.addLayout(toolbar)
        layout.addWidget(split, stretch=1)
        self.setCentralWidget(central)
        self.statusBar().addWidget(self.connection_label, stretch=1)
        self.statusBar().addPermanentWidget(self.command_label)
        self.resize(1400, 860)

    def _connect(self) -> None:
        self.feed.track.connect(self.state.on_track)
        self.feed.preview.connect(self.state.on_preview)
        self.feed.msd.connect(self.state.on_msd)
        self.feed.status.connect(self._on_status)
        self.feed.connection.connect(self._on_connection)
        self.feed.restarted.connect(self.state.reset)
        self.commands.done.connect(self._on_reply)
        self.commands.failed.connect(self._on_failure)
        view = self.frame_view.view
        view.box_drawn.connect(self.add_box)
        view.point_clicked.connect(self.add_point)
        view.remove_clicked.connect(self.remove_at)
        keys = QtCore.Qt.Key
        shortcuts = ((keys.Key_Return, self.send_points), (keys.Key_Enter, self.send_points),
                     (keys.Key_Escape, self.clear_points))  # fmt: skip
        for key, slot in shortcuts:
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.activated.connect(slot)

    # ------------------------------------------------------------------ drawing (timer)
    def refresh(self) -> None:
        if self.state.version == self._drawn_version:
            return
        self._drawn_version = self.state.version
        self.frame_view.show_state(self.state)
        self.table.show_rows(self.state.rows())
        self.msd_plot.show_state(self.state)
        self.charts.show_state(self.state)

    # ------------------------------------------------------------------ incoming
    def _on_status(self, status: StatusMessage) -> None:
        self.state.on_status(status)
        p50 = "-" if status.latency_p50_ms is None else f"{status.latency_p50_ms:.1f}"
        self.connection_label.setText(
            f"connected to {self.feed.endpoint}: lptem-live {status.version}, engine {status.engine}, "
            f"{status.fps_out:.1f} frames/s, processing p50 {p50} ms, {len(status.objects)} objects, "
            f"dropped {status.frames_dropped}"
        )

    def _on_connection(self, connected: bool, text: str) -> None:
        self.connection_label.setText(text if connected else f"disconnected: {text}")

    def _on_reply(self, description: str, reply: Any) -> None:
        self.command_label.setText(
            f"{description}: done" + (f" (id {reply})" if isinstance(reply, int) else "")
        )

    def _on_failure(self, description: str, error: str) -> None:
        self.command_label.setText(f"{description}: refused: {error}")
        log.warning("%s refused: %s", description, error)

    # ------------------------------------------------------------------ prompts (outgoing)
    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if x1 - x0 < 2 or y1 - y0 < 2:
            return  # a click that moved a little, not a box
        obj_id = self.table.selected_id()
        points = list(self.pending_points)
        what = f"correct object {obj_id}" if obj_id is not None else "add object"
        box = (x0, y0, x1, y1)
        self.commands.submit(what, lambda c: c.add_object(box=box, points=points or None, obj_id=obj_id))
        self.clear_points()

    def add_point(self, x: float, y: float, label: int) -> None:
        self.pending_points.append((x, y, label))
        self.frame_view.show_pending(self.pending_points)

    def send_points(self) -> None:
        if not any(p[2] == 1 for p in self.pending_points):
            self.command_label.setText("place at least one object point (click) before sending")
            return
        obj_id = self.table.selected_id()
        points = list(self.pending_points)
        what = f"correct object {obj_id}" if obj_id is not None else "add object by points"
        self.commands.submit(what, lambda c: c.add_object(points=points, obj_id=obj_id))
        self.clear_points()

    def clear_points(self) -> None:
        self.pending_points.clear()
        self.frame_view.show_pending([])

    def remove_at(self, x: float, y: float) -> None:
        obj_id = self.state.object_at(x, y)
        if obj_id is None:
            self.command_label.setText(f"no object at ({x:.0f}, {y:.0f}) px")
            return
        self.commands.submit(f"remove object {obj_id}", lambda c: c.remove_object(obj_id))

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._refresh_timer.stop()
        self.feed.close()
        self.commands.close()
        super().closeEvent(event)
