"""The live frame: preview image at fixed levels, masks coloured by object id, centroids with fading
trails, a scale bar in nm, and the mouse prompts (drag a box, click points, right-click to remove)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lptem.clients.dashboard.state import DashboardState, label_overlay, object_colour

Qt = QtCore.Qt
TRAIL_SEGMENTS = 4
TRAIL_ALPHAS = (50, 100, 160, 230)  # oldest to newest


class PromptViewBox(pg.ViewBox):
    """Left-drag draws a box, left-click places a point (Shift: background), right-click asks to remove
    the object under the cursor; middle-drag pans, the wheel zooms. Coordinates are frame px."""

    box_drawn = QtCore.Signal(float, float, float, float)
    point_clicked = QtCore.Signal(float, float, int)
    remove_clicked = QtCore.Signal(float, float)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.rubber_band = QtWidgets.QGraphicsRectItem()
        self.rubber_band.setPen(pg.mkPen((255, 255, 0), width=1.5, style=Qt.PenStyle.DashLine))
        self.rubber_band.hide()
        self.addItem(self.rubber_band, ignoreBounds=True)

    def mouseDragEvent(
        self, ev: pg.GraphicsScene.mouseEvents.MouseDragEvent, axis: int | None = None
    ) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        start = self.mapSceneToView(ev.buttonDownScenePos())
        end = self.mapSceneToView(ev.scenePos())
        rect = QtCore.QRectF(start, end).normalized()
        self.rubber_band.setRect(rect)
        self.rubber_band.show()
        if ev.isFinish():
            self.rubber_band.hide()
            self.box_drawn.emit(rect.left(), rect.top(), rect.right(), rect.bottom())

    def mouseClickEvent(self, ev: pg.GraphicsScene.mouseEvents.MouseClickEvent) -> None:
        pos = self.mapSceneToView(ev.scenePos())
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.remove_clicked.emit(pos.x(), pos.y())
        elif ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            background = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.point_clicked.emit(pos.x(), pos.y(), 0 if background else 1)
        else:
            super().mouseClickEvent(ev)


class FrameView(pg.GraphicsView):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = PromptViewBox()
        self.setCentralItem(self.view)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.trails: dict[int, list[pg.PlotCurveItem]] = {}
        self.centres = pg.ScatterPlotItem(size=14, symbol="+", pxMode=True)
        self.pending = pg.ScatterPlotItem(size=12, pxMode=True)
        for item in (self.image, self.overlay, self.centres, self.pending):
            self.view.addItem(item)
        self.labels: dict[int, pg.TextItem] = {}
        self._pens: dict[int, QtGui.QPen] = {}
        self.levels: tuple[float, float] | None = None
        self.scale_bar: pg.ScaleBar | None = None
        self._scale_bar_nm: tuple[float, float] | None = None
        self._shown_preview: object = None
        self._frame_shape: tuple[int, int] | None = None

    def refit_levels(self) -> None:
        """Fix the display levels again from the next frame (they never follow each frame by themselves)."""
        self.levels = None

    def show_state(self, state: DashboardState) -> None:
        self._show_image(state)
        self._show_objects(state)
        self._show_scale_bar(state)

    def _show_image(self, state: DashboardState) -> None:
        p = state.preview
        if p is None or p is self._shown_preview:
            return
        self._shown_preview = p
        if self.levels is None:
            lo, hi = np.percentile(p.image, [0.5, 99.5])
            self.levels = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        rows, cols = p.image.shape
        rect = QtCore.QRectF(-0.5, -0.5, cols * p.scale, rows * p.scale)  # preview pixels in frame px
        self.image.setImage(p.image, autoLevels=False, levels=self.levels)
        self.image.setRect(rect)
        self.overlay.setImage(label_overlay(p.labels), autoLevels=False)
        self.overlay.setRect(rect)
        shape = (rows * p.scale, cols * p.scale)
        if shape != self._frame_shape:
            self._frame_shape = shape
            self.view.setRange(rect, padding=0.0)

    def _show_objects(self, state: DashboardState) -> None:
        track = state.last_track
        objects = [] if track is None else [o for o in track.objects if o.visible]
        self.centres.setData(
            [o.x for o in objects], [o.y for o in objects], pen=[self._pen(o.id) for o in objects]
        )
        self._show_trails(state)
        self._show_ids({o.id: (o.x, o.y) for o in objects})

    def _show_trails(self, state: DashboardState) -> None:
        """Each trail as TRAIL_SEGMENTS lines, the older ones fainter (a few pens, not one per point)."""
        for gone in set(self.trails) - set(state.trails):
            for curve in self.trails.pop(gone):
                self.view.removeItem(curve)
        for obj_id, trail in state.trails.items():
            curves = self.trails.get(obj_id)
            if curves is None:
                colour = object_colour(obj_id)
                curves = [pg.PlotCurveItem(pen=pg.mkPen(*colour, alpha, width=1.5)) for alpha in TRAIL_ALPHAS]
                for curve in curves:
                    self.view.addItem(curve)
                self.trails[obj_id] = curves
            xy = np.array(trail, dtype=np.float64).reshape(-1, 2)
            bounds = np.linspace(0, len(xy), TRAIL_SEGMENTS + 1).astype(int)
            for curve, start, stop in zip(curves, bounds[:-1], bounds[1:], strict=True):
                part = xy[max(0, start - 1) : stop]  # overlap one point: the segments join
                curve.setData(part[:, 0], part[:, 1])

    def _pen(self, obj_id: int) -> QtGui.QPen:
        pen = self._pens.get(obj_id)
        if pen is None:
            pen = self._pens[obj_id] = pg.mkPen(object_colour(obj_id), width=2)
        return pen

    def _show_ids(self, positions: dict[int, tuple[float, float]]) -> None:
        for gone in set(self.labels) - set(positions):
            self.view.removeItem(self.labels.pop(gone))
        for obj_id, (x, y) in positions.items():
            label = self.labels.get(obj_id)
            if label is None:
                label = pg.TextItem(str(obj_id), color=object_colour(obj_id), anchor=(0, 1))
                self.view.addItem(label)
                self.labels[obj_id] = label
            label.setPos(x + 6, y - 6)

    def _show_scale_bar(self, state: DashboardState) -> None:
        track = state.last_track
        if track is None or track.pixel_size_nm is None or track.shape is None:
            return
        length_nm = nice_length(0.2 * track.shape[1] * track.pixel_size_nm)
        key = (length_nm, track.pixel_size_nm)
        if key == self._scale_bar_nm:
            return
        if self.scale_bar is not None:
            self.scale_bar.setParentItem(None)
        self.scale_bar = pg.ScaleBar(length_nm / track.pixel_size_nm, width=6, brush="w", offset=(-20, -20))
        self.scale_bar.text.setText(f"{length_nm:g} nm")
        self.scale_bar.text.setColor("w")
        self.scale_bar.text.fill = pg.mkBrush(0, 0, 0, 150)
        self.scale_bar.setParentItem(self.view)
        self._scale_bar_nm = key

    def show_pending(self, points: list[tuple[float, float, int]]) -> None:
        """Points placed but not sent yet: green for the object, red for background."""
        self.pending.setData(
            [p[0] for p in points], [p[1] for p in points],
            symbol=["o" if p[2] else "x" for p in points],
            brush=[pg.mkBrush(0, 220, 0) if p[2] else pg.mkBrush(230, 0, 0) for p in points],
        )  # fmt: skip

    def frame_to_widget(self, x: float, y: float) -> QtCore.QPoint:
        """Widget coordinates of frame position (x, y) px (for tests and tooling)."""
        point: QtCore.QPoint = self.mapFromScene(self.view.mapViewToScene(QtCore.QPointF(x, y)))
        return point


def nice_length(target: float) -> float:
    """The 1-2-5 × 10^k value nearest below ``target`` (for scale bars)."""
    if target <= 0:
        return 1.0
    exponent = 10 ** np.floor(np.log10(target))
    for step in (5, 2, 1):
        if step * exponent <= target:
            return float(step * exponent)
    return float(exponent)
