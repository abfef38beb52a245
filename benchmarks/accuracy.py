"""Tracking accuracy on simulated LPTEM movies with exact ground truth.

    python benchmarks/accuracy.py                          # classical vs trackpy, the full grid
    python benchmarks/accuracy.py --engines classical --thickness 5 50 --particles 3 --json acc.json
    python benchmarks/accuracy.py --scene fast-rod                 # SAM-EM-like rod: default vs tuned flags
    python benchmarks/accuracy.py --scene crystal --frames 1000    # 7 x 7 cubes, auto-detect, 1024²
    python benchmarks/accuracy.py --scene crystal --gap-px 2       # the same, 2 px gaps
    python benchmarks/accuracy.py --scene sizes                    # radius 10 / 20 / 40 px, auto-detect

Grid: engines x liquid thickness (nm) x number of particles, default particles (calibrated 9.3 nm gold
spheres, 37 px, CNR 0.98 at 5 nm), Brownian motion with collisions. Protocol as SAM-EM's: one box prompt
per particle on frame 0, from the ground truth; the engine runs on every frame. trackpy (``locate`` +
``link``) is the classical peer; its ``minmass`` is tuned per condition on a separate movie to the best
detection F1 against truth (generous to trackpy). Scores:

* J, F, J&F: DAVIS region and boundary scores, averaged over (particle, frame) pairs in which the
  particle is in view; a particle without a tracked mask scores 0 there (trackpy has no masks: n/a);
* centroid error: median and p90 over matched detections, px and nm;
* identity switches (total, and those while the particles were apart);
* tracked: share of (particle, frame) pairs in view with a matched detection.

Scene ``fast-rod``: one rod of 100 x 41 px (10.25 nm at 0.25 nm/px) in 5 nm of liquid, moving as SAM-EM's
example clip does (fractional Brownian motion, α = 0.2, 22 px per frame per axis), one true box prompt on
frame 0: the classical engine with **no** ``-E`` flag, the same with hand-tuned flags, and trackpy.

Scene ``crystal`` (``lptem sim --preset crystal``: 7 x 7 cubes of 22 px, 5 px gaps or ``--gap-px``, each
jiggling ±1 px and rocking ±10° at its site, 5 nm of liquid, 1024²): no prompt; the classical engine with
``--auto-detect -E symmetry=4`` only (it estimates the particle size), the same with the radius given
(``-E particle_radius_px=11``), and trackpy (diameter 23, minmass tuned). Scene ``sizes``: 8 gold spheres of
10 nm at 0.5, 0.25 and 0.125 nm/px (radius 10, 20, 40 px) in 5 nm of liquid, no prompt: ``--auto-detect``
with no flag, with the radius given, and trackpy; recall counted from frame 3 on (after the engine's three
confirmation frames), so that it measures finding, not the confirmation delay. Both scored with
benchmarks/_packed.py (recall, precision, errors, identity).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from _common import dump_json, machine
from _packed import HEADER as PACKED_HEADER
from _packed import Run, score, stream
from _packed import row_text as packed_row

from lptem.engine.api import Box, Prompt
from lptem.engine.registry import ENGINES, create_tracker
from lptem.engine.scoring import Contact, match_to_truth, score_tracks
from lptem.engine.segmentation_metrics import boundary_f, davis_bound_px, jaccard
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Particles, SimConfig, SimFrame, Simulator


def grid_config(thickness: float, count: int, size: int) -> SimConfig:
    return SimConfig(
        shape=(size, size),
        stack=Stack(liquid_thickness_nm=thickness),
        particles=Particles(count=count),
        motion=Motion("brownian", sigma_px=2.0),
    )


def fast_rod_config(size: int) -> SimConfig:
    """SAM-EM's example clip as the simulator calibrates it (docs/simulator.md): a 100 x 41 px rod."""
    rod = Particles(count=1, shape="rod", width_nm=10.25, rod_aspect=100 / 41, dispersity=0.0)
    return SimConfig(shape=(size, size), stack=Stack(liquid_thickness_nm=5.0), particles=rod,
                     motion=Motion("fbm", sigma_px=22.0, alpha=0.2))  # fmt: skip


FAST_ROD_TUNED = {"particle_radius_px": "40", "smoothing_px": "12", "gate_px": "80", "object_scale": "false"}
"""The flags hand-tuned for the rod (a user who knows its size and its jumps, and sets it for every object
instead of letting each take its own from its prompt)."""


def simulate(config: SimConfig, n_frames: int, seed: int) -> list[SimFrame]:
    sim = Simulator(config, seed=seed)
    return [sim.next(want_labels=True) for _ in range(n_frames)]


def truth_positions(frames: list[SimFrame]) -> npt.NDArray[np.float64]:
    return np.array(
        [np.where(f.truth.visible[:, None], np.column_stack([f.truth.x, f.truth.y]), np.nan) for f in frames]
    )


def run_engine(name: str, frames: list[SimFrame], options: dict[str, str]) -> tuple[pd.DataFrame, list[Any]]:
    """Prompt each particle with its true box on frame 0; return visible rows and label maps."""
    tracker = create_tracker(name, options)
    labels0 = frames[0].truth.labels
    assert labels0 is not None
    for k in range(len(frames[0].truth.x)):
        ys, xs = np.nonzero(labels0 == k + 1)
        if xs.size:
            tracker.add_object(
                Prompt(box=Box(xs.min() - 4.0, ys.min() - 4.0, xs.max() + 4.0, ys.max() + 4.0)), k + 1
            )
    rows, label_maps = [], []
    for f in frames:
        result = tracker.step(f.image, want_labels=True)
        rows += [(f.index, o.id, o.x, o.y) for o in result.objects if o.visible]
        label_maps.append(result.labels)
    return pd.DataFrame(rows, columns=["frame", "id", "x", "y"]), label_maps


def run_trackpy(frames: list[SimFrame], radius_px: float, minmass: float) -> pd.DataFrame:
    import trackpy as tp  # noqa: PLC0415 - a dev dependency, only for this peer

    tp.quiet()
    diameter = int(2 * radius_px) | 1
    found = tp.batch(
        [f.image for f in frames],
        diameter,
        invert=True,
        minmass=minmass,
        separation=diameter,
        engine="python",
    )
    if found.empty:
        return pd.DataFrame(columns=["frame", "id", "x", "y"])
    linked = tp.link(found, search_range=radius_px, memory=5)
    return linked.rename(columns={"particle": "id"})[["frame", "id", "x", "y"]]


def tune_minmass(config: SimConfig, radius_px: float) -> float:
    """The minmass that gives trackpy its best detection F1 on a separate 20-frame movie."""
    import trackpy as tp  # noqa: PLC0415

    tp.quiet()
    frames = simulate(config, 20, seed=999)
    truth = truth_positions(frames)
    diameter = int(2 * radius_px) | 1
    found = tp.batch([f.image for f in frames], diameter, invert=True, separation=diameter, engine="python")
    best, best_f1 = 0.0, -1.0
    for minmass in np.quantile(found["mass"], np.linspace(0.5, 0.999, 40)):
        kept = found[found["mass"] >= minmass]
        hits = match_to_truth(kept["frame"].to_numpy(), kept[["x", "y"]].to_numpy(), truth, radius_px)
        tp_count = int((hits >= 0).sum())
        f1 = 2 * tp_count / (len(kept) + int(np.isfinite(truth[..., 0]).sum()))
        if f1 > best_f1:
            best, best_f1 = float(minmass), f1
    return best


def mask_scores(frames: list[SimFrame], label_maps: list[Any], owner: dict[int, int]) -> tuple[float, float]:
    """Mean DAVIS J and F over (particle, frame) pairs in view; ``owner``: particle -> object id."""
    js, fs = [], []
    bound = davis_bound_px(frames[0].image.shape)
    for f, labels in zip(frames, label_maps, strict=True):
        assert f.truth.labels is not None
        for k in np.flatnonzero(f.truth.visible):
            truth_mask = f.truth.labels == k + 1
            if not truth_mask.any():
                continue
            obj = owner.get(int(k))
            pred = (labels == obj) if (labels is not None and obj is not None) else np.zeros_like(truth_mask)
            js.append(jaccard(pred, truth_mask))
            fs.append(boundary_f(pred, truth_mask, bound))
    return float(np.mean(js)), float(np.mean(fs))


def evaluate(
    rows: pd.DataFrame,
    frames: list[SimFrame],
    radius_px: float,
    pixel_nm: float,
    label_maps: list[Any] | None,
) -> dict[str, Any]:
    truth = truth_positions(frames)
    f_, ids, xy = rows["frame"].to_numpy(int), rows["id"].to_numpy(int), rows[["x", "y"]].to_numpy(float)
    scores = score_tracks(f_, ids, xy, truth, radius_px, contact=Contact(2.5 * radius_px))
    hits = match_to_truth(f_, xy, truth, radius_px)
    matched = hits >= 0
    errors = np.hypot(*(xy[matched] - truth[f_[matched], hits[matched]]).T)
    in_view = int(np.isfinite(truth[..., 0]).sum())
    out: dict[str, Any] = {
        "err_median_px": float(np.median(errors)) if errors.size else float("nan"),
        "err_p90_px": float(np.percentile(errors, 90)) if errors.size else float("nan"),
        "switches": sum(s.identity_switches for s in scores),
        "switches_apart": sum(s.switches_separated for s in scores),
        "tracked": int(matched.sum()) / in_view if in_view else float("nan"),
        "J": float("nan"),
        "F": float("nan"),
    }
    out["err_median_nm"] = out["err_median_px"] * pixel_nm
    out["err_p90_nm"] = out["err_p90_px"] * pixel_nm
    if label_maps is not None:
        owner = {s.truth: s.id for s in sorted(scores, key=lambda s: s.matched_frames) if s.truth >= 0}
        out["J"], out["F"] = mask_scores(frames, label_maps, owner)
    out["J&F"] = (out["J"] + out["F"]) / 2
    return out


HEADER = (
    f"{'engine':<16} {'liquid/nm':>9} {'n':>3} {'J':>5} {'F':>5} {'J&F':>5} {'err50/px':>8} {'err90/px':>8}"
    f" {'err50/nm':>8} {'switch':>6} {'apart':>5} {'tracked':>7}"
)


def row_text(r: dict[str, Any]) -> str:
    return (
        f"{r['engine']:<16} {r['thickness_nm']:>9g} {r['particles']:>3} {r['J']:5.2f} {r['F']:5.2f}"
        f" {r['J&F']:5.2f} {r['err_median_px']:8.2f} {r['err_p90_px']:8.2f} {r['err_median_nm']:8.2f}"
        f" {r['switches']:>6} {r['switches_apart']:>5} {r['tracked']:7.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["classical", "trackpy"],
        help=f"engines by name ({', '.join(ENGINES)}) and/or trackpy",
    )
    parser.add_argument("--thickness", nargs="+", type=float, default=[5, 50, 100, 150], help="liquid, nm")
    parser.add_argument("--particles", nargs="+", type=int, default=[1, 3, 8])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=512, help="frame side, px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--scene",
        choices=("grid", "fast-rod", "crystal", "sizes"),
        default="grid",
        help="(default %(default)s)",
    )
    parser.add_argument("--gap-px", type=float, default=5.0, help="crystal: gap between cubes, px")
    args = parser.parse_args()
    if args.scene == "fast-rod":
        return fast_rod(args)
    if args.scene in ("crystal", "sizes"):
        return crystal(args) if args.scene == "crystal" else sizes(args)
    pixel_nm = SimConfig().pixel_size_nm
    radius_px = Particles().width_nm / pixel_nm / 2
    print(f"machine: {machine()}\n{args.frames} frames of {args.size}^2 per condition, default particles")
    width = Particles().width_nm
    print(f"({width:g} nm = {2 * radius_px:.0f} px), one true box prompt per particle on frame 0\n")
    print(HEADER)
    results = []
    for thickness, count in itertools.product(args.thickness, args.particles):
        config = grid_config(thickness, count, args.size)
        frames = simulate(config, args.frames, args.seed)
        for engine in args.engines:
            t0 = time.perf_counter()
            if engine == "trackpy":
                rows, labels = quiet_trackpy(frames, config, radius_px), None
            else:
                options = {"particle_radius_px": f"{radius_px}"} if engine == "classical" else {}
                rows, labels = run_engine(engine, frames, options)
            r = {
                "engine": engine,
                "thickness_nm": thickness,
                "particles": count,
                **evaluate(rows, frames, radius_px, pixel_nm, labels),
                "seconds": time.perf_counter() - t0,
            }
            results.append(r)
            print(row_text(r), flush=True)
    dump_json(
        args.json, {"machine": machine(), "args": {**vars(args), "json": str(args.json)}, "results": results}
    )
    return 0


def quiet_trackpy(frames: list[SimFrame], config: SimConfig, radius_px: float) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trackpy's pandas deprecation chatter
        return run_trackpy(frames, radius_px, tune_minmass(config, radius_px))


def fast_rod(args: argparse.Namespace) -> int:
    """The fast-rod scene: default flags, hand-tuned flags and trackpy on the same movie."""
    config = fast_rod_config(args.size)
    frames = simulate(config, args.frames, args.seed)
    radius_px = 41 / 2  # the rod's half-width: trackpy's feature size and the matching radius
    print(f"machine: {machine()}\nfast rod (100 x 41 px, fbm alpha 0.2, 22 px/frame/axis), 5 nm of liquid,")
    print(f"{args.frames} frames of {args.size}^2, one true box prompt on frame 0\n")
    print(HEADER + "  lost")
    results = []
    runs: tuple[tuple[str, str, dict[str, str]], ...] = (
        ("classical", "classical", {}),
        ("classical-tuned", "classical", FAST_ROD_TUNED),
        ("trackpy", "", {}),
    )
    for label, engine, options in runs:
        if not engine:
            rows, labels = quiet_trackpy(frames, config, radius_px), None
        else:
            rows, labels = run_engine(engine, frames, options)
        r = {"engine": label, "thickness_nm": 5.0, "particles": 1,
             **evaluate(rows, frames, radius_px, config.pixel_size_nm, labels)}  # fmt: skip
        r["lost_frames"] = args.frames - rows["frame"].nunique()  # frames without any result
        results.append(r)
        print(f"{row_text(r)}  {r['lost_frames']:>4}", flush=True)
    dump_json(args.json, {"machine": machine(), "scene": "fast-rod", "results": results})
    return 0


def crystal(args: argparse.Namespace) -> int:
    """The crystal scene: auto-detect at default flags (symmetry only), with the radius given, trackpy."""
    pixel_nm = 0.5
    scene = Crystal(gap_nm=args.gap_px * pixel_nm)
    config = scene.config(pixel_size_nm=pixel_nm, frame=(1024, 1024), seed=args.seed)
    default = {"auto_detect": "true", "symmetry": "4"}
    runs = [
        Run("classical", default),
        Run("classical-tuned", {**default, "particle_radius_px": "11"}),
        Run("trackpy", None, diameter_px=23, minmass=tune_minmass(config, 11.0)),
    ]
    print(f"machine: {machine()}")
    print(f"crystal 7 x 7, 22 px cubes, {args.gap_px:g} px gaps, 1024², {args.frames} frames")
    truth, angles = stream(config, args.frames, args.seed, runs)
    print(PACKED_HEADER)
    results = []
    for run in runs:
        run.finish(link_range_px=11.0)
        results.append(score(run, truth, angles, 11.0, symmetry=4))
        print(packed_row(results[-1]), flush=True)
    dump_json(
        args.json, {"machine": machine(), "scene": "crystal", "gap_px": args.gap_px, "results": results}
    )
    return 0


def sizes(args: argparse.Namespace) -> int:
    """Three particle sizes 4x apart, each its own movie: auto-detect with no flag, radius given, trackpy."""
    print(f"machine: {machine()}\n8 gold spheres of 10 nm, 5 nm of liquid, 1024², {args.frames} frames each")
    print(PACKED_HEADER)
    results = []
    for pixel_nm in (0.5, 0.25, 0.125):
        radius = 10.0 / pixel_nm / 2
        config = SimConfig(
            shape=(1024, 1024),
            pixel_size_nm=pixel_nm,
            stack=Stack(liquid_thickness_nm=5.0),
            particles=Particles(count=8, width_nm=10.0),
            motion=Motion("brownian", sigma_px=radius / 10),
        )
        runs = [
            Run(f"classical r{radius:g}", {"auto_detect": "true"}),
            Run(f"tuned r{radius:g}", {"auto_detect": "true", "particle_radius_px": f"{radius:g}"}),
            Run(
                f"trackpy r{radius:g}",
                None,
                diameter_px=int(2 * radius) | 1,
                minmass=tune_minmass(config, radius),
            ),
        ]
        truth, angles = stream(config, args.frames, args.seed, runs)
        for run in runs:
            run.finish(link_range_px=radius)
            scores = score(run, truth, angles, radius, after=3)
            scores["theta50_deg"] = float("nan")  # a sphere has no orientation
            results.append({"radius_px": radius, **scores})
            print(packed_row(results[-1]), flush=True)
    dump_json(args.json, {"machine": machine(), "scene": "sizes", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
