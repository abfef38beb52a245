"""``lptem sim``: the command line of the simulated LPTEM camera (the camera itself: simcam.py).

Streams the simulator (lptem.engine.sim) over wire protocol v1 at a frame rate, exactly as a camera's
acquisition software would, or writes a movie to disk with its ground truth for ``lptem replay`` and
offline scoring:

    DIR/movie.tif        frames (TIFF stack, one page per frame)
    DIR/truth.parquet    per frame and particle: frame, t_s, particle, x, y, theta_deg, area_px, visible,
                         x_unwrapped, y_unwrapped (px; x = column, y = row)
    DIR/labels.tif       instance label maps (with --labels; particle k has label k + 1)
    DIR/sim.json         every parameter, the seed and derived quantities (N0, λ_bg, D in nm²/s^α, ...)
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

import zmq

from lptem.clients.camera.sim_microscope import (
    DEFAULT_SIM_MICROSCOPE,
    SimMicroscopeServer,
    StageGeometry,
)
from lptem.clients.camera.simcam import SimulatedCamera, motion_from_physical, write_movie
from lptem.clients.progress import Progress
from lptem.clients.wire.endpoints import (
    add_ingest_argument,
    add_key_arguments,
    add_shm_argument,
    add_wait_argument,
    keys_from,
    shm_slots_from,
)
from lptem.clients.wire.sender import FrameSender, NoReceiverError
from lptem.engine.sim.motion import Motion
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.scenes import Crystal
from lptem.engine.sim.simulator import Particles, SimConfig, Simulator
from lptem.service.protocol.curve import is_loopback
from lptem.service.protocol.endpoints import check_endpoint

log = logging.getLogger("lptem.sim")

PRESETS = {
    "samem-clip": "SAM-EM's example clip (docs/simulator.md): 5 nm of liquid, fractional Brownian motion "
    "with alpha 0.2 and 22 px/frame per axis",
    "crystal": "a 2-D crystal of cubes (edge --width-nm) on a --lattice with --gap-nm between faces, each "
    "trapped at its site and rocking (options below)",
}


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    d = SimConfig()  # defaults come from the calibrated configuration, not from copies of it
    out = parser.add_argument_group("output (stream to a daemon, or write a movie)")
    add_ingest_argument(out)
    add_shm_argument(out)
    add_wait_argument(out)
    add_key_arguments(parser)
    out.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write movie.tif, truth.parquet and sim.json here instead of streaming",
    )
    out.add_argument(
        "--microscope",
        type=lambda text: text if text == "none" else check_endpoint(text),
        metavar="ENDPOINT",
        help="when streaming: the simulated microscope's socket (REP) for stage moves and beam "
        f"changes, 'none' for no socket (default {DEFAULT_SIM_MICROSCOPE}, skipped with a warning if taken; "
        "docs/control.md)",
    )
    out.add_argument(
        "--microscope-keys",
        type=Path,
        metavar="DIR",
        help="CURVE on the microscope's socket with this key folder (lptem keys): only operator keys may "
        "move the stage or the beam (docs/security.md)",
    )
    out.add_argument(
        "--insecure",
        action="store_true",
        help="allow a microscope socket reachable from other machines without --microscope-keys",
    )
    out.add_argument(
        "--stage-rotation-deg",
        type=float,
        default=0.0,
        metavar="DEG",
        help="the simulated stage's x axis is at this angle in the image (for lptem calibrate; default 0)",
    )
    out.add_argument(
        "--stage-mirrored",
        action="store_true",
        help="the simulated stage's y axis is reversed against the image",
    )
    out.add_argument(
        "--stage-scale",
        type=float,
        default=1.0,
        metavar="K",
        help="image nm per simulated stage nm (default %(default)s)",
    )
    out.add_argument("--labels", action="store_true", help="with --out: also write labels.tif")
    out.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="number of frames (default: 500 with --out, else stream until Ctrl-C)",
    )
    out.add_argument("--fps", type=float, default=d.fps, help="frame rate, frames/s (default %(default)s)")
    out.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    out.add_argument("--no-progress", action="store_true", help="no progress line")
    out.add_argument(
        "--preset", choices=sorted(PRESETS), help="; ".join(f"{k}: {v}" for k, v in PRESETS.items())
    )

    img = parser.add_argument_group("imaging")
    img.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[d.shape[0]],
        metavar="N",
        help="frame side, px, or ROWS COLS (default %(default)s)",
    )
    img.add_argument(
        "--dtype",
        choices=("uint8", "uint16", "float32"),
        default=d.dtype,
        help="uint8 like SAM-EM's JPEGs (default), uint16 counts x100, float32 electrons",
    )
    img.add_argument(
        "--pixel-size-nm", type=float, default=d.pixel_size_nm, help="nm/px (default %(default)s)"
    )
    img.add_argument(
        "--liquid-nm",
        type=float,
        default=d.stack.liquid_thickness_nm,
        help="liquid thickness, nm (5-160 typical; default %(default)s)",
    )
    img.add_argument(
        "--dose-rate",
        type=float,
        default=d.stack.dose_rate,
        help="e-/Å²/s (default %(default)s: 22.5 e-/px per frame at the default pixel and rate)",
    )
    img.add_argument(
        "--exact-noise",
        action="store_true",
        help="exact Poisson noise and FFT MTF (about 15x slower than the default)",
    )

    par = parser.add_argument_group("particles and motion")
    par.add_argument("--particles", type=int, default=d.particles.count, help="number (default %(default)s)")
    par.add_argument(
        "--shape",
        choices=("sphere", "rod", "cube", "mixed"),
        default=d.particles.shape,
        help="particle shape (default %(default)s)",
    )
    par.add_argument(
        "--width-nm",
        type=float,
        default=d.particles.width_nm,
        help="sphere/rod diameter or cube edge, nm (default %(default)s, calibrated to SAM-EM)",
    )
    par.add_argument(
        "--dispersity",
        type=float,
        default=d.particles.dispersity,
        help="relative size s.d. (default %(default)s)",
    )
    par.add_argument(
        "--motion",
        choices=("brownian", "fbm", "ctrw"),
        default="brownian",
        help="Brownian, fractional Brownian or continuous-time random walk (default %(default)s)",
    )
    par.add_argument(
        "--diffusion",
        type=float,
        default=25.0,
        metavar="D",
        help="D in nm²/s^alpha, MSD = 4 D t^alpha (default %(default)s)",
    )
    par.add_argument(
        "--alpha", type=float, default=1.0, help="exponent: fbm 0 < alpha < 2, ctrw 0 < alpha < 1 (default 1)"
    )
    par.add_argument(
        "--rotation-deg",
        type=float,
        default=0.0,
        help="angle step s.d. per frame, degrees (default %(default)s)",
    )
    par.add_argument(
        "--drift-nm-s",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("VX", "VY"),
        help="constant drift of every particle, nm/s (x, y), e.g. a flowing liquid or a creeping stage "
        "(default: none)",
    )
    par.add_argument("--no-collisions", action="store_true", help="let particles overlap")
    _add_crystal_arguments(parser.add_argument_group("crystal (--preset crystal)"))


def _add_crystal_arguments(group: argparse._ArgumentGroup) -> None:
    d = Crystal()
    group.add_argument(
        "--lattice",
        type=int,
        nargs=2,
        default=(d.rows, d.cols),
        metavar=("ROWS", "COLS"),
        help="sites of the lattice (default %(default)s)",
    )
    group.add_argument(
        "--gap-nm", type=float, default=d.gap_nm, help="gap between faces, nm (default %(default)s)"
    )
    group.add_argument(
        "--vacancies",
        type=float,
        default=d.vacancies,
        metavar="SHARE",
        help="share of the sites left empty (default %(default)s)",
    )
    group.add_argument(
        "--jiggle-px",
        type=float,
        default=d.jiggle_px,
        help="s.d. of each cube's offset from its site, per axis, px (default %(default)s)",
    )
    group.add_argument(
        "--rocking-deg",
        type=float,
        default=d.rocking_deg,
        help="s.d. of each cube's angle about the lattice's, degrees (default %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    shape = (args.size[0], args.size[0]) if len(args.size) == 1 else (args.size[0], args.size[1])
    if args.preset == "crystal":
        rows, cols = args.lattice
        crystal = Crystal(
            rows=rows,
            cols=cols,
            edge_nm=args.width_nm,
            gap_nm=args.gap_nm,
            jiggle_px=args.jiggle_px,
            rocking_deg=args.rocking_deg,
            vacancies=args.vacancies,
        )
        config = crystal.config(args.pixel_size_nm, shape, args.liquid_nm, args.fps, args.seed)
        return replace(config, dtype=args.dtype, noise="exact" if args.exact_noise else "fast")
    drift = (
        args.drift_nm_s[0] / args.pixel_size_nm / args.fps,
        args.drift_nm_s[1] / args.pixel_size_nm / args.fps,
    )
    if args.preset == "samem-clip":
        liquid = 5.0
        motion = Motion("fbm", sigma_px=22.0, alpha=0.2, rotation_sigma_deg=args.rotation_deg, drift_px=drift)
    else:
        liquid = args.liquid_nm
        extra = {"rotation_sigma_deg": args.rotation_deg, "drift_px": drift}
        motion = motion_from_physical(
            args.motion, args.diffusion, args.alpha, args.pixel_size_nm, args.fps, **extra
        )
    return SimConfig(
        shape=shape,
        pixel_size_nm=args.pixel_size_nm,
        fps=args.fps,
        dtype=args.dtype,
        stack=Stack(liquid_thickness_nm=liquid, dose_rate=args.dose_rate),
        particles=Particles(
            count=args.particles, shape=args.shape, width_nm=args.width_nm, dispersity=args.dispersity
        ),
        motion=motion,
        collisions=not args.no_collisions,
        noise="exact" if args.exact_noise else "fast",
    )


def run_sim(args: argparse.Namespace) -> int:
    try:
        simulator = Simulator(config_from_args(args), seed=args.seed)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    derived = simulator.metadata()["derived"]
    log.info(
        "simulating %d particles, %s, liquid %g nm: λ_bg %.1f e-/px, D %.3g nm²/s^%g",
        len(simulator.shapes),
        "x".join(map(str, simulator.config.shape)),
        simulator.config.stack.liquid_thickness_nm,
        derived["background_electrons_per_px"],
        derived["diffusion_nm2_per_s_alpha"],
        simulator.config.motion.alpha,
    )
    if args.out is not None:
        n = args.frames or 500
        progress = Progress(n, enabled=False if args.no_progress else None)
        write_movie(simulator, args.out, n, labels=args.labels, progress=progress)
        progress.close()
        print(f"wrote {n} frames to {args.out}")
        return 0
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    progress = Progress(args.frames, "sent", enabled=False if args.no_progress else None)
    endpoint = args.microscope or DEFAULT_SIM_MICROSCOPE
    if (
        endpoint != "none"
        and not is_loopback(endpoint)
        and args.microscope_keys is None
        and not args.insecure
    ):
        log.error(
            "%s: the microscope's stage and beam would be open to other machines without authentication; "
            "give --microscope-keys DIR (docs/security.md), bind to 127.0.0.1, or pass --insecure",
            endpoint,
        )
        return 2
    try:
        stage = StageGeometry(args.stage_rotation_deg, args.stage_mirrored, args.stage_scale)
        shm_slots = shm_slots_from(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        control = (
            None
            if endpoint == "none"
            else SimMicroscopeServer(simulator, endpoint, keys=args.microscope_keys, stage=stage)
        )
    except zmq.ZMQError as exc:
        if args.microscope is not None:  # asked for explicitly: an error
            log.error("cannot bind the simulated microscope's socket %s: %s", args.microscope, exc)
            return 1
        log.warning("cannot bind %s (%s): streaming without a microscope socket", DEFAULT_SIM_MICROSCOPE, exc)
        control = None
    if control is not None:
        log.info("stage and beam control at %s", control.endpoint)
    try:
        keys = keys_from(args)
        with FrameSender(
            args.ingest,
            pixel_size_nm=args.pixel_size_nm,
            series=f"sim-{args.seed}",
            keys=keys,
            shm_slots=shm_slots,
        ) as sender:
            sender.require_receiver(args.wait)
            camera = SimulatedCamera(simulator, sender, args.fps, control)
            summary = camera.run(args.frames, stop, progress=progress)
    except NoReceiverError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if control is not None:
            control.close()
        progress.close()
    print(f"sent {summary.frames} frames in {summary.elapsed_s:.1f} s ({summary.late_frames} late)")
    return 0
