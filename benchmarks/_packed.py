"""Streaming accuracy runs for benchmarks/accuracy.py's auto-detect scenes (crystal, sizes).

Every engine sees each simulated frame as it is made (a 1000-frame 1024² movie is never held in memory);
trackpy locates per frame and links at the end. Scores against the simulator's truth: recall (share of
(particle, frame) pairs in view with a matched detection), precision (share of reported positions matched
to a particle), median centroid error, median orientation error modulo 360°/symmetry, and identity: the
number of particles matched by more than one object id over the run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lptem.engine.registry import create_tracker
from lptem.engine.scoring import match_to_truth
from lptem.engine.sim.simulator import SimConfig, Simulator


@dataclass
class Run:
    """One engine's rows over a movie: (frame, id, x, y, theta_deg), and its own time per frame (s)."""

    label: str
    options: dict[str, str] | None  # None: trackpy
    diameter_px: int = 0
    minmass: float = 0.0
    rows: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    _tracker: Any = None
    _located: list[pd.DataFrame] = field(default_factory=list)

    def step(self, index: int, image: npt.NDArray[Any]) -> None:
        t0 = time.perf_counter()
        if self.options is None:
            import trackpy as tp  # noqa: PLC0415 - a dev dependency, only for this peer

            found = tp.locate(image, self.diameter_px, invert=True, minmass=self.minmass, engine="python")
            self._located.append(found.assign(frame=index))
        else:
            if self._tracker is None:
                self._tracker = create_tracker("classical", self.options)
            result = self._tracker.step(image)
            self.rows += [(index, o.id, o.x, o.y, o.theta_deg) for o in result.objects if o.visible]
        self.seconds.append(time.perf_counter() - t0)

    def finish(self, link_range_px: float) -> None:
        if self.options is not None:
            self.settings = self._tracker.settings()
            return
        import trackpy as tp  # noqa: PLC0415

        tp.quiet()
        located = pd.concat(self._located, ignore_index=True)
        if located.empty:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trackpy's pandas deprecation chatter
            linked = tp.link(located, search_range=link_range_px, memory=5)
        columns = linked[["frame", "particle", "x", "y"]].itertuples(index=False)
        self.rows = [(int(f), int(p), float(x), float(y), float("nan")) for f, p, x, y in columns]


def stream(config: SimConfig, n_frames: int, seed: int, runs: list[Run]) -> tuple[Any, Any]:
    """Run every engine on one simulated movie; return the truth positions (frames, particles, 2) and
    angles (frames, particles)."""
    sim = Simulator(config, seed=seed)
    xy, theta = [], []
    for i in range(n_frames):
        f = sim.next()
        t = f.truth
        xy.append(np.where(t.visible[:, None], np.column_stack([t.x, t.y]), np.nan))
        theta.append(t.theta_deg)
        for run in runs:
            run.step(i, f.image)
        if (i + 1) % 100 == 0:
            print(f"  ... {i + 1}/{n_frames} frames", flush=True)
    return np.array(xy), np.array(theta)


def score(
    run: Run, truth: Any, angles: Any, match_px: float, *, symmetry: int = 2, after: int = 0
) -> dict[str, Any]:
    """Scores of ``run`` (module docstring); ``after``: frames before it do not count (confirmation)."""
    rows = np.array(run.rows, dtype=np.float64).reshape(-1, 5)
    rows = rows[rows[:, 0] >= after]
    truth, angles = truth[after:], angles[after:]
    frames = rows[:, 0].astype(int) - after
    hits = match_to_truth(frames, rows[:, 2:4], truth, match_px)
    ok = hits >= 0
    errors = np.hypot(*(rows[ok, 2:4] - truth[frames[ok], hits[ok]]).T)
    period = 360.0 / symmetry
    turn = np.abs((rows[ok, 4] - angles[frames[ok], hits[ok]] + period / 2) % period - period / 2)
    owners: dict[int, set[int]] = {}
    for k, obj in zip(hits[ok], rows[ok, 1].astype(int), strict=True):
        owners.setdefault(int(k), set()).add(int(obj))
    in_view = int(np.isfinite(truth[..., 0]).sum())
    seconds = np.array(run.seconds[max(after, 1) :])
    return {
        "engine": run.label,
        "recall": int(ok.sum()) / in_view if in_view else float("nan"),
        "precision": float(ok.mean()) if ok.size else float("nan"),
        "err50_px": float(np.median(errors)) if errors.size else float("nan"),
        "theta50_deg": float(np.nanmedian(turn)) if np.isfinite(turn).any() else float("nan"),
        "objects": len(set(rows[:, 1].astype(int))),
        "multi_id": sum(len(v) > 1 for v in owners.values()),
        "fps": float(1.0 / np.median(seconds)) if seconds.size else float("nan"),
        "settings": run.settings,
    }


HEADER = (
    f"{'engine':<18} {'recall':>6} {'prec':>6} {'err50/px':>8} {'θ50/°':>6} {'objects':>7} {'>1 id':>5}"
    f" {'fps':>6}  settings"
)


def row_text(r: dict[str, Any]) -> str:
    return (
        f"{r['engine']:<18} {r['recall']:6.3f} {r['precision']:6.3f} {r['err50_px']:8.2f}"
        f" {r['theta50_deg']:6.2f} {r['objects']:>7} {r['multi_id']:>5} {r['fps']:6.1f}  {r['settings']}"
    )
