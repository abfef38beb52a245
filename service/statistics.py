"""Live trajectory statistics in the daemon: a rolling MSD per object, fitted and published.

Fed by the engine thread with every result (O(L) per object per frame, lptem.engine.msd.RollingMSD), it
builds the ``msd`` message at most ``rate_hz`` times a second and keeps each object's D and α for the
``status`` heartbeat. Frames are the camera's numbers: frames the daemon dropped are gaps, and a new
epoch (the camera's numbering restarted) empties the window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lptem.engine.msd import RollingMSD, fit_power_law, lag_set
from lptem.service.protocol import MsdMessage, ParticleMsd, TrackMessage


class MsdSettingsError(ValueError):
    """Rolling-MSD settings out of range; the text says which and why."""


@dataclass(frozen=True, slots=True)
class MsdSettings:
    """Rolling-MSD settings: ``window`` frames, lags 1..``max_lag`` (or up to 16 log-spaced ones up to
    it), published ``rate_hz`` times a second (0 = never), fitted on the first ``fit_lags`` lags."""

    window: int = 256
    max_lag: int = 32
    log_lags: bool = False
    rate_hz: float = 5.0
    fit_lags: int = 10

    def __post_init__(self) -> None:
        if not 8 <= self.window <= 100_000:
            raise MsdSettingsError(f"msd window must be 8..100000 frames, got {self.window}")
        if not 1 <= self.max_lag < self.window:
            raise MsdSettingsError(f"msd max_lag must be 1..window-1, got {self.max_lag}")
        if not 0 <= self.rate_hz <= 50:
            raise MsdSettingsError(f"msd rate_hz must be 0..50, got {self.rate_hz}")
        if not self.fit_lags >= 3:
            raise MsdSettingsError(
                f"msd fit_lags must be at least 3 (a power law has 2 parameters), got {self.fit_lags}"
            )


class LiveStatistics:
    def __init__(self, settings: MsdSettings | None = None) -> None:
        self.settings = settings or MsdSettings()
        self._rolling = self._new_rolling()
        self._epoch: int | None = None
        self._next_due = 0.0
        self.summary: list[dict[str, object]] = []
        """Per object for ``status``: id, D_px2_per_frame, D_nm2_per_s, alpha."""

    def _new_rolling(self) -> RollingMSD:
        s = self.settings
        return RollingMSD(s.window, lag_set(s.max_lag, log_spaced=s.log_lags))

    def reconfigure(self, settings: MsdSettings) -> None:
        """New settings start from an empty window."""
        self.settings = settings
        self._rolling = self._new_rolling()
        self._epoch = None
        self.summary = []

    def add(self, track: TrackMessage) -> None:
        """Feed one processed frame."""
        if track.epoch != self._epoch:
            self._rolling.restart()
            self._epoch = track.epoch
        present = {o.id for o in track.objects}
        for gone in set(self._rolling.particles) - present:  # removed objects
            self._rolling.forget(gone)
        visible = {o.id: (o.x, o.y) for o in track.objects if o.visible}
        self._rolling.push(track.frame, track.t_ns / 1e9, visible)

    def due(self) -> bool:
        """Whether an ``msd`` message should be published now (and, if so, the next one is scheduled)."""
        if self.settings.rate_hz <= 0:
            return False
        now = time.monotonic()
        if now < self._next_due:
            return False
        self._next_due = now + 1.0 / self.settings.rate_hz
        return True

    def message(self, track: TrackMessage) -> MsdMessage:
        """The ``msd`` message after ``track`` (also refreshes ``summary``)."""
        frame_time, irregular = self._rolling.frame_time()
        pixel = track.pixel_size_nm
        particles = tuple(self._particle(p, frame_time, pixel) for p in self._rolling.particles)
        self.summary = [
            {"id": p.id, "D_px2_per_frame": p.D_px2_per_frame, "D_nm2_per_s": p.D_nm2_per_s, "alpha": p.alpha}
            for p in particles
        ]
        lags = self._rolling.lags
        return MsdMessage(
            frame=track.frame,
            epoch=track.epoch,
            t_ns=track.t_ns,
            window=self.settings.window,
            lags=[int(lag) for lag in lags],
            lag_s=[float(lag * frame_time) for lag in lags],
            frame_time_s=frame_time,
            irregular=irregular,
            pixel_size_nm=pixel,
            particles=particles,
        )

    def _particle(self, particle: int, frame_time: float, pixel_nm: float | None) -> ParticleMsd:
        curve = self._rolling.curve(particle)
        fit = fit_power_law(curve, 1.0, max_lags=self.settings.fit_lags)
        d_nm = None
        if pixel_nm is not None and fit.ok and math.isfinite(frame_time) and frame_time > 0:
            d_nm = fit.diffusion * pixel_nm**2 / frame_time**fit.alpha  # px²/frame^α -> nm²/s^α
        return ParticleMsd(
            id=particle,
            msd_px2=[float(v) for v in curve.msd],
            pairs=[int(n) for n in curve.pairs],
            D_px2_per_frame=fit.diffusion,
            D_nm2_per_s=d_nm,
            alpha=fit.alpha,
            fit_lags=list(fit.lags_used),
            r_squared=fit.r_squared,
            note=fit.reason,
            msd_nm2=None if pixel_nm is None else [float(v) * pixel_nm**2 for v in curve.msd],
        )
