"""``lptem control``: run a shipped feedback controller against the daemon's results.

    lptem control centre [--particle ID]                    keep a particle centred by moving the stage
    lptem control dose --alpha-below 0.4 --lower-to 50      lower the dose while α < 0.4, restore after

The actuator is the simulated microscope's control socket (``lptem sim --microscope``), a Thermo Fisher
microscope through temscript (``--microscope temscript+http://HOST:PORT``), or, with ``--dry-run``, nothing
(the actions are logged). Moves go through the map ``lptem calibrate`` measured (``--calibration``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Literal

from lptem.clients.feedback.actuators import MicroscopeError
from lptem.clients.feedback.calibration import ActuatorMap
from lptem.clients.feedback.controllers import CentreParticle, DoseGuard
from lptem.clients.feedback.loop import Controller, ControlLoop, Limits, LoopReport
from lptem.clients.feedback.microscopes import add_microscope_arguments, is_temscript, open_microscope
from lptem.clients.wire.control import ControlError
from lptem.clients.wire.endpoints import add_key_arguments, add_publish_argument, keys_from

log = logging.getLogger("lptem.control")


def add_feedback_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="controller", required=True, metavar="CONTROLLER")
    centre = kinds.add_parser("centre", help="keep a particle at the centre of the field by moving the stage")
    centre.add_argument(
        "--particle", type=int, metavar="ID", help="object id (default: the one nearest the centre)"
    )
    centre.add_argument(
        "--gain", type=float, default=0.8, help="share of the offset corrected per move (default %(default)s)"
    )
    centre.add_argument(
        "--deadband-px",
        type=float,
        default=3.0,
        help="leave offsets below this alone, px (default %(default)s)",
    )
    centre.add_argument("--pixel-size-nm", type=float, help="nm/px when the frames carry no pixel size")
    centre.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="the actuator's map from lptem calibrate (required for a real microscope; without it the "
        "simulated stage's axes are taken to be the camera's)",
    )
    dose = kinds.add_parser(
        "dose", help="lower the dose rate or blank the beam while a particle's α or D is past a threshold"
    )
    rule = dose.add_mutually_exclusive_group(required=True)
    rule.add_argument("--alpha-below", type=float, metavar="A", help="trip while α < A (caged, pinned)")
    rule.add_argument("--alpha-above", type=float, metavar="A", help="trip while α > A (driven)")
    rule.add_argument("--d-below", type=float, metavar="D", help="D in nm²/s^α")
    rule.add_argument("--d-above", type=float, metavar="D", help="D in nm²/s^α")
    dose.add_argument(
        "--particle", type=int, metavar="ID", help="watch this object only (default: every object)"
    )
    action = dose.add_mutually_exclusive_group(required=True)
    action.add_argument("--lower-to", type=float, metavar="RATE", help="dose rate while tripped, e-/Å²/s")
    action.add_argument("--blank", action="store_true", help="blank the beam while tripped")
    dose.add_argument(
        "--hold-s",
        type=float,
        default=2.0,
        help="restore after the value has been back this long, s (default %(default)s)",
    )
    for sub in (centre, dose):
        _add_common(sub)


def _add_common(parser: argparse.ArgumentParser) -> None:
    wire = parser.add_argument_group("connections")
    add_publish_argument(wire)
    add_key_arguments(parser)
    add_microscope_arguments(wire)
    wire.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    safety = parser.add_argument_group("safety limits")
    defaults = Limits()
    for name, text in SAFETY_LIMITS.items():
        flag = "--" + name.replace("_", "-")
        safety.add_argument(
            flag, type=float, default=getattr(defaults, name), help=f"{text} (default %(default)s)"
        )


SAFETY_LIMITS = {
    "min_interval_s": "at most one action per this many s",
    "max_step_nm": "longest single stage move, nm",
    "max_travel_nm": "furthest the stage may go from its start, nm",
    "min_dose_rate": "lowest dose rate a controller may set, e-/Å²/s",
    "max_dose_rate": "highest dose rate a controller may set, e-/Å²/s",
    "deadman_s": "say so and act on nothing when no fresh result arrives for this long, s",
    "settle_s": "wait after a change when the actuator cannot say which frame shows it, s",
    "settle_timeout_s": "longest wait for the frame the actuator says shows a change, s",
    "max_age_s": "do not act on track results older than this (one host or synced clocks; 0 = no check), s",
    "max_failures": "stop after this many actions in a row failed",
}
"""Limits field -> help; the flags are the field names with dashes."""


def build_controller(args: argparse.Namespace) -> Controller:
    if args.controller == "centre":
        return CentreParticle(
            args.particle, args.gain, args.deadband_px, args.pixel_size_nm, stage_map=_stage_map(args)
        )
    quantity, above, below = _dose_rule(args)
    return DoseGuard(
        quantity, above, below, args.particle, None if args.blank else args.lower_to, args.hold_s
    )


def _stage_map(args: argparse.Namespace) -> ActuatorMap | None:
    if args.calibration is None:
        if is_temscript(args.microscope) and not args.dry_run:
            raise ValueError(
                "a real microscope's axes are not the camera's: measure them first (lptem calibrate "
                "--microscope ... --out FILE) and give --calibration FILE"
            )
        return None
    stage_map = ActuatorMap.load(args.calibration)
    if stage_map.actuator != args.actuator:
        raise ValueError(
            f"{args.calibration} calibrates the {stage_map.actuator}, but --actuator is {args.actuator}"
        )
    return stage_map


def _dose_rule(args: argparse.Namespace) -> tuple[Literal["alpha", "D"], float | None, float | None]:
    if args.alpha_below is not None or args.alpha_above is not None:
        return "alpha", args.alpha_above, args.alpha_below
    return "D", args.d_above, args.d_below


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(**{name: getattr(args, name) for name in SAFETY_LIMITS})


def run_feedback(args: argparse.Namespace) -> int:
    try:
        controller = build_controller(args)
        limits = limits_from(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    keys = keys_from(args)  # the same operator key for the daemon's results and the microscope
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
        loop = ControlLoop(controller, microscope, args.publish, limits, keys=keys)
        report = loop.run(stop, args.duration)
        print(format_report(report))
        if report.stopped is not None:
            return 1
    except (TimeoutError, MicroscopeError) as exc:
        log.error("%s (is the microscope at %s?)", exc, args.microscope)
        return 1
    except (ValueError, ControlError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        microscope.close()
    return 0


def format_report(r: LoopReport) -> str:
    x, y = r.stage_nm
    return (
        f"{r.results} results, {len(r.actions)} actions ({r.rate_limited} rate-limited, {r.clipped} clipped, "
        f"{r.failed} failed), {r.stale} stale results, {r.deadman_trips} dead-man stops; "
        f"stage moved ({x:+.1f}, {y:+.1f}) nm" + ("" if r.stopped is None else f"; stopped: {r.stopped}")
    )
