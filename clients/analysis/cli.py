"""``lptem analyze``: the command line (statistics and tables in report.py, figures in figures.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lptem.clients.analysis.inputs import MAX_LAG_FRAMES, AnalyzeError, load, log
from lptem.clients.analysis.report import Analysis, analyze, write_tables


def add_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="record folder, SAM-EM trajectories.csv or a trackpy table")
    parser.add_argument("--out", type=Path, help="output folder (default: <path>-analysis next to the input)")
    parser.add_argument("--pixel-size-nm", type=float, help="nm/px (overrides what a record carries)")
    parser.add_argument("--fps", type=float, help="frames/s (overrides a record's frame timestamps)")
    parser.add_argument(
        "--max-lag", type=int, default=50, help="largest MSD lag, frames (default %(default)s)"
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=20,
        help="skip trajectories with fewer positions (default %(default)s)",
    )
    parser.add_argument(
        "--symmetry",
        type=int,
        choices=(1, 2, 4, 6),
        help="the particles' rotational symmetry, for rotational statistics: angles are modulo 360°/N "
        "(default: what a record's daemon ran with, else 2)",
    )
    parser.add_argument(
        "--trapped",
        action="store_true",
        help="the particles are held at sites (a crystal, tethers): fit each one's MSD with a trap "
        "(Ornstein-Uhlenbeck, localisation noise taken out) for its spring constant (kT/nm²), relaxation "
        "time, D and, with angles, D_r; writes trap_fits.csv",
    )
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")


def run_analyze(args: argparse.Namespace) -> int:
    if not 1 <= args.max_lag <= MAX_LAG_FRAMES or args.min_frames < 2:
        log.error("--max-lag must be 1..%d and --min-frames >= 2", MAX_LAG_FRAMES)
        return 2
    for name in ("pixel_size_nm", "fps"):
        value = getattr(args, name)
        if value is not None and not (np.isfinite(value) and value > 0):
            log.error("--%s must be a positive number", name.replace("_", "-"))
            return 2
    path: Path = args.path
    out: Path = args.out or path.with_name(path.stem + "-analysis")
    try:
        data = load(path, args.pixel_size_nm, args.fps)
        symmetry = args.symmetry or data.symmetry or 2
        result = analyze(data, args.max_lag, args.min_frames, symmetry=symmetry, trapped=args.trapped)
        files = write_tables(result, out)
        if not args.no_figures:
            from lptem.clients.analysis.figures import write_figures  # noqa: PLC0415 - matplotlib only when needed

            files += write_figures(result, out)
    except (AnalyzeError, OSError) as exc:
        log.error("%s", exc)
        return 2
    _print_report(result)
    print(f"{len(files)} files in {out}/: {', '.join(files)}")
    return 0


def _print_report(result: Analysis) -> None:
    d = result.data
    unit = d.diffusion_unit
    print(f"{len(result.fits)} trajectories from {d.source}")
    print(
        f"  pixel size {d.pixel_size_nm or 'unknown'} nm/px, frame time "
        f"{f'{d.frame_time_s * 1e3:.3f} ms' if d.frame_time_s else 'unknown'}; D in {unit}"
    )
    for row in result.fits.itertuples():
        note = f"  ({row.note})" if row.note else ""
        print(
            f"  particle {row.particle:>5}: {row.frames:>7} frames  D {row.D:11.4g}  "
            f"α {row.alpha:6.3f}  lags {row.fit_first_lag}-{row.fit_last_lag}{note}"
        )
    fit = result.ensemble_fit
    print(f"  ensemble (trackpy emsd weighting): D {fit.diffusion:.4g} {unit}  α {fit.alpha:.3f}")
    if result.rotation is not None:
        print(f"  rotation (angles modulo {360 // result.rotation.symmetry}°), D_r in rad²/{d.time_unit}^α:")
        for row in result.rotation.fits.itertuples():
            note = f"  ({row.note})" if row.note else ""
            print(f"  particle {row.particle:>5}: D_r {row.D_r:11.4g}  α {row.alpha:6.3f}{note}")
    if result.trap is not None and not result.trap.empty:
        _print_trap(result)


def _print_trap(result: Analysis) -> None:
    """Medians over the particles of the trap fits (the table has each one)."""
    d, trap = result.data, result.trap
    assert trap is not None
    length, time = d.length_unit, d.time_unit
    med = trap.median(numeric_only=True)
    line = (
        f"  held at sites ({len(trap)} particles, medians): k {med['k']:.4g} kT/{length}²  "
        f"sd {med['sd']:.3g} {length}  noise {med['noise_sd']:.3g} {length}  τ {med['tau']:.3g} {time}  "
        f"D {med['D']:.4g} {length}²/{time}"
    )
    if "D_r" in trap.columns:
        line += f"  D_r {med['D_r']:.4g} rad²/{time}  sd_θ {med['sd_theta_deg']:.3g}°"
    print(line)
