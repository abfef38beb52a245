"""``lptem calibrate``: measure how the stage (or image shift) moves the image, for the controllers.

lptem calibrate --out stage.toml                       the simulated stage, particle nearest the centre
lptem calibrate --microscope temscript+http://tem-pc:8080 --step-nm 200 --out stage.toml
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from lptem.clients.feedback.actuators import MicroscopeError
from lptem.clients.feedback.calibrate import CalibrationPlan, Calibrator
from lptem.clients.feedback.calibration import CalibrationError
from lptem.clients.feedback.microscopes import add_microscope_arguments, open_microscope
from lptem.clients.wire.control import ControlError
from lptem.clients.wire.endpoints import add_key_arguments, add_publish_argument, keys_from
from lptem.clients.wire.subscriber import Subscriber

log = logging.getLogger("lptem.calibrate")


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="write the map here (TOML; lptem control centre --calibration FILE)",
    )
    parser.add_argument(
        "--particle", type=int, metavar="ID", help="object id to watch (default: the one nearest the centre)"
    )
    plan = CalibrationPlan(step_nm=1.0)
    parser.add_argument(
        "--step-nm",
        type=float,
        required=True,
        metavar="NM",
        help="length of each move in the actuator's nm; aim for 10-30 %% of the field of view",
    )
    parser.add_argument(
        "--repeats", type=int, default=plan.repeats, help="times the 8 moves are made (default %(default)s)"
    )
    parser.add_argument(
        "--frames-per-point",
        type=int,
        default=plan.frames_per_point,
        help="median over this many frames per position (default %(default)s)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=plan.settle_s,
        help="wait after a move when the microscope cannot say which frame shows it, s (default %(default)s)",
    )
    parser.add_argument(
        "--max-step-nm",
        type=float,
        default=1000.0,
        help="refuse a --step-nm longer than this, nm (default %(default)s)",
    )
    wire = parser.add_argument_group("connections")
    add_publish_argument(wire)
    add_key_arguments(parser)
    add_microscope_arguments(wire)


def run_calibrate(args: argparse.Namespace) -> int:
    try:
        if args.step_nm > args.max_step_nm:
            raise CalibrationError(f"--step-nm {args.step_nm:g} is above --max-step-nm {args.max_step_nm:g}")
        plan = CalibrationPlan(args.step_nm, args.repeats, args.frames_per_point, args.settle_s)
        if args.dry_run:
            raise CalibrationError("a calibration needs real moves; --dry-run has nothing to measure")
    except CalibrationError as exc:
        log.error("%s", exc)
        return 2
    keys = keys_from(args)
    try:
        microscope = open_microscope(args, keys)
    except (ValueError, MicroscopeError) as exc:
        log.error("%s", exc)
        return 2 if isinstance(exc, ValueError) else 1
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with Subscriber(args.publish, topics=("track",), keys=keys) as sub:
            calibrator = Calibrator(microscope, sub, plan, args.particle, stop)
            fit = calibrator.run(args.actuator, microscope=args.microscope, step_nm=args.step_nm)
    except (CalibrationError, MicroscopeError, ControlError, TimeoutError) as exc:
        log.error("calibration failed: %s", exc)
        return 1
    finally:
        microscope.close()
    fit.map.save(args.out)
    print(fit.map.describe(calibrator.pixel_size_nm))
    print(
        f"residual {fit.residual_px:.3f} px RMS over {fit.map.measured['moves']} moves; written to {args.out}"
    )
    return 0
