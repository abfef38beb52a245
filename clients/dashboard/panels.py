"""The dashboard's side panels: particle table, MSD on log-log axes with the fits, rate and latency charts."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lptem.clients.dashboard.state import DashboardState, ObjectRow, object_colour

COLUMNS = ("id", "x / nm", "y / nm", "θ / °", "D / nm²/s^α", "α", "visible", "frames")
MAX_CURVES = 12


class ParticleTable(QtWidgets.QTableWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)

    def selected_id(self) -> int | None:
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.item(rows[0].row(), 0)
        return int(item.text()) if item is not None else None

    def show_rows(self, rows: list[ObjectRow]) -> None:
        selected = self.selected_id()
        if selected is not None and selected not in {row.id for row in rows}:
            self.clearSelection()  # the selected object is gone: prompts must not fall on its neighbour
            selected = None
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(_cells(row)):
                item = self.item(r, c)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.setItem(r, c, item)
                item.setText(text)
                if c == 0:
                    item.setForeground(QtGui.QColor(*object_colour(row.id)))
            if row.id == selected:
                self.selectRow(r)


def _cells(row: ObjectRow) -> tuple[str, ...]:
    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None or not math.isfinite(value) else format(value, fmt)

    return (
        str(row.id), number(row.x_nm, ".1f"), number(row.y_nm, ".1f"), number(row.theta_deg, ".0f"),
        number(row.D_nm2_per_s, ".3g"), number(row.alpha, ".2f"), "yes" if row.visible else "no",
        str(row.frames_tracked),
    )  # fmt: skip


class MsdPlot(pg.PlotWidget):
    """Each object's rolling MSD (points) and its fit 4 D τ^α (line), log-log; the legend gives D and α."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setLogMode(x=True, y=True)
        for side, text in (("bottom", "lag τ / s"), ("left", "MSD / nm²")):
            self.setLabel(side, text)
            self.getAxis(side).enableAutoSIPrefix(False)
        self.legend = self.addLegend(offset=(5, 5), labelTextSize="7pt")
        self._curves: dict[int, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._shown: object = None

    def show_state(self, state: DashboardState) -> None:
        msd = state.msd
        if msd is None or msd is self._shown:
            return
        self._shown = msd
        nm2 = msd.pixel_size_nm is not None
        self.setLabel("left", "MSD / nm²" if nm2 else "MSD / px²")
        particles = {p.id: p for p in msd.particles[:MAX_CURVES]}
        if set(particles) != set(self._curves):
            self._rebuild(sorted(particles))
        lag_s = np.asarray(msd.lag_s)
        lags = np.asarray(msd.lags, dtype=np.float64)
        shown: list[np.ndarray] = []
        for obj_id, p in particles.items():
            points, line = self._curves[obj_id]
            values = np.asarray(p.msd_nm2 if nm2 and p.msd_nm2 is not None else p.msd_px2)
            ok = np.isfinite(values) & (values > 0) & np.isfinite(lag_s) & (lag_s > 0)
            points.setData(lag_s[ok], values[ok])
            shown.append(values[ok])
            # MSD = 4 D τ^α: τ in s with D in nm²/s^α, or τ in frames with D in px²/frame^α
            d, tau, unit = (
                (p.D_nm2_per_s, lag_s, "nm²/s^α") if nm2 else (p.D_px2_per_frame, lags, "px²/frame^α")
            )
            fitted = d is not None and math.isfinite(d) and math.isfinite(p.alpha) and bool(ok.any())
            if fitted and d is not None:
                line.setData(lag_s[ok], 4 * d * tau[ok] ** p.alpha)
                text = f"{obj_id}: D {d:.3g} {unit}, α {p.alpha:.2f}"
            else:
                line.setData([], [])
                text = f"{obj_id}: no fit yet"
            label = self.legend.getLabel(points)
            if label is not None:
                label.setText(text)
        self._set_ticks(
            lag_s[np.isfinite(lag_s) & (lag_s > 0)], np.concatenate(shown) if shown else np.empty(0)
        )

    def _set_ticks(self, x: np.ndarray, y: np.ndarray) -> None:
        """1-2-5 ticks: pyqtgraph's own log ticks label every minor tick and overlap."""
        for side, values in (("bottom", x), ("left", y)):
            if values.size:
                ticks = log_ticks(float(values.min()), float(values.max()))
                self.getAxis(side).setTicks([[(math.log10(v), f"{v:g}") for v in ticks]])

    def _rebuild(self, ids: list[int]) -> None:
        self.clear()
        self.legend.clear()
        self._curves = {}
        for obj_id in ids:
            colour = object_colour(obj_id)
            points = self.plot([], [], pen=None, symbol="o", symbolSize=4, symbolBrush=colour, symbolPen=None,
                               name=str(obj_id))  # fmt: skip
            line = self.plot([], [], pen=pg.mkPen(colour, width=1))
            self._curves[obj_id] = (points, line)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Values 1, 2, 5 × 10^k between ``lo`` and ``hi`` (both > 0), at least the two decades around them."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5]
    return inside or [10.0**first, 10.0**last]


class StripCharts(QtWidgets.QWidget):
    """Frames per second in and out (from status) and camera→dashboard latency (per frame)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rates = pg.PlotWidget()
        self.rates.setLabel("left", "frames / s")
        self.rates.addLegend(offset=(5, 5), labelTextSize="7pt")
        self.fps_in = self.rates.plot(pen=pg.mkPen((120, 180, 255)), name="in")
        self.fps_out = self.rates.plot(pen=pg.mkPen((255, 200, 80)), name="out")
        self.latency = pg.PlotWidget()
        self.latency.setLabel("left", "latency / ms")
        self.latency.setLabel("bottom", "time before now", units="s")
        self.latency_curve = self.latency.plot(pen=pg.mkPen((160, 255, 160)))
        for plot in (self.rates, self.latency):
            plot.setMinimumHeight(90)
            layout.addWidget(plot)

    def show_state(self, state: DashboardState) -> None:
        t, fps_in, fps_out = state.rate_series()
        self.fps_in.setData(t, fps_in)
        self.fps_out.setData(t, fps_out)
        t, ms = state.latency_series()
        self.latency_curve.setData(t, ms)


def hint_label() -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(
        "Drag a box: add an object (or correct the one selected in the table) · click: object point, "
        "Shift+click: background point, Enter: send them · right-click an object: remove it · "
        "middle-drag: pan · wheel: zoom"
    )
    label.setWordWrap(True)
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft)
    return label
