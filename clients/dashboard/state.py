"""What the dashboard shows, kept up to date from the published messages: plain data, no Qt.

Message handlers only store (they run on the GUI thread as messages arrive); the window reads a
consistent picture from here on its own refresh timer. Memory is bounded: trails and strip charts are
ring buffers, objects that disappear from ``track`` are forgotten.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lptem.service.protocol import MsdMessage, ParticleMsd, PreviewMessage, StatusMessage, TrackMessage

PALETTE_SIZE = 64


def palette(n: int = PALETTE_SIZE) -> npt.NDArray[np.uint8]:
    """(n, 3) RGB colours, well separated in hue: object id k gets colour k % n."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0  # golden-ratio steps
    rgb = np.array([_hsv_to_rgb(h, 0.85, 1.0) for h in hues])
    return np.round(rgb * 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


PALETTE = palette()


def object_colour(obj_id: int) -> tuple[int, int, int]:
    r, g, b = PALETTE[obj_id % PALETTE_SIZE]
    return int(r), int(g), int(b)


def label_overlay(labels: npt.NDArray[np.uint16], alpha: int = 90) -> npt.NDArray[np.uint8]:
    """RGBA image (rows, cols, 4) of a label map: each object in its colour, background transparent."""
    rgba = np.zeros((*labels.shape, 4), np.uint8)
    rgba[..., :3] = PALETTE[labels % PALETTE_SIZE]
    rgba[..., 3] = np.where(labels > 0, alpha, 0)
    return rgba


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """One line of the particle table."""

    id: int
    x_px: float
    y_px: float
    x_nm: float | None
    y_nm: float | None
    theta_deg: float
    visible: bool
    frames_tracked: int
    D_nm2_per_s: float | None
    alpha: float


@dataclass
class DashboardState:
    trail_frames: int = 100
    history_s: float = 60.0
    frames_seen: int = 0
    last_track: TrackMessage | None = None
    preview: PreviewMessage | None = None
    status: StatusMessage | None = None
    msd: MsdMessage | None = None
    trails: dict[int, deque[tuple[float, float]]] = field(default_factory=dict)
    tracked: dict[int, int] = field(default_factory=dict)
    """Frames each object was visible in since the dashboard started."""
    rates: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=600))
    """(daemon time s, fps in, fps out) from status."""
    latencies: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=15000))
    """(camera time s, camera->client latency ms) per track (a minute at up to 250 frames/s)."""
    version: int = 0
    """Bumped on every change; the window redraws only when it moved."""

    def on_track(self, track: TrackMessage, t_client_ns: int) -> None:
        self.frames_seen += 1
        self.last_track = track
        present = {o.id for o in track.objects}
        for gone in set(self.trails) - present:
            del self.trails[gone]
            self.tracked.pop(gone, None)
        for o in track.objects:
            trail = self.trails.setdefault(o.id, deque(maxlen=self.trail_frames))
            if o.visible:
                trail.append((o.x, o.y))
                self.tracked[o.id] = self.tracked.get(o.id, 0) + 1
        self.latencies.append((track.t_ns / 1e9, (t_client_ns - track.t_ns) / 1e6))
        self.version += 1

    def on_preview(self, preview: PreviewMessage) -> None:
        self.preview = preview
        self.version += 1

    def on_msd(self, msd: MsdMessage) -> None:
        self.msd = msd
        self.version += 1

    def on_status(self, status: StatusMessage) -> None:
        self.status = status
        self.rates.append((status.t_ns / 1e9, status.fps_in, status.fps_out))
        self.version += 1

    def reset(self) -> None:
        """A new daemon (restart): forget what belonged to the old one."""
        self.last_track = self.preview = self.msd = None
        self.trails.clear()
        self.tracked.clear()
        self.version += 1

    # ------------------------------------------------------------------ views
    def particles(self) -> dict[int, ParticleMsd]:
        return {p.id: p for p in self.msd.particles} if self.msd else {}

    def rows(self) -> list[ObjectRow]:
        if self.last_track is None:
            return []
        fits = self.particles()
        rows = []
        for o in self.last_track.objects:
            fit = fits.get(o.id)
            rows.append(ObjectRow(
                o.id, o.x, o.y, o.x_nm, o.y_nm, o.theta_deg, o.visible, self.tracked.get(o.id, 0),
                fit.D_nm2_per_s if fit else None, fit.alpha if fit else math.nan,
            ))  # fmt: skip
        return rows

    def latency_series(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(s before the newest, latency ms) over the last ``history_s``."""
        if not self.latencies:
            return np.empty(0), np.empty(0)
        t, ms = np.array(self.latencies).T
        keep = t >= t[-1] - self.history_s
        return t[keep] - t[-1], ms[keep]

    def rate_series(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(s before the newest, fps in, fps out) over the last ``history_s``."""
        if not self.rates:
            return np.empty(0), np.empty(0), np.empty(0)
        t, fps_in, fps_out = np.array(self.rates).T
        keep = t >= t[-1] - self.history_s
        return t[keep] - t[-1], fps_in[keep], fps_out[keep]

    def object_at(self, x: float, y: float) -> int | None:
        """Id of the object whose mask covers frame position (x, y) px in the latest preview."""
        p = self.preview
        if p is None:
            return None
        r, c = int((y + 0.5) // p.scale), int((x + 0.5) // p.scale)
        if 0 <= r < p.labels.shape[0] and 0 <= c < p.labels.shape[1] and p.labels[r, c]:
            return int(p.labels[r, c])
        return None
