"""Which microscope a control or calibration command drives, from ``--microscope``.

tcp://HOST:PORT, ipc://PATH     the simulated microscope's control socket (lptem sim)
temscript+http://HOST:PORT      a Thermo Fisher / FEI microscope through temscript's server
--dry-run                       nothing: the actions are logged
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Protocol, runtime_checkable

from lptem.clients.camera.sim_microscope import DEFAULT_SIM_MICROSCOPE
from lptem.clients.feedback.actuators import Applied, DryRunMicroscope, SimMicroscope
from lptem.clients.feedback.calibration import ACTUATORS
from lptem.clients.feedback.temscript_backend import DoseTable, TemscriptMicroscope
from lptem.service.protocol.curve import ClientKeys


@runtime_checkable
class Microscope(Protocol):
    """A stage and a beam that can be let go of."""

    def move_by(self, dx_nm: float, dy_nm: float) -> Applied: ...

    def dose_rate(self) -> float: ...

    def set_dose_rate(self, dose_rate: float) -> Applied: ...

    def blank(self, on: bool) -> Applied: ...

    def close(self) -> None: ...


def add_microscope_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--microscope",
        default=DEFAULT_SIM_MICROSCOPE,
        metavar="ADDRESS",
        help="the simulated microscope's control socket (tcp://...) or a Thermo Fisher microscope's "
        "temscript server (temscript+http://HOST:PORT; docs/instruments.md) (default %(default)s)",
    )
    group.add_argument(
        "--actuator",
        choices=ACTUATORS,
        default="stage",
        help="what moves the field of view: the stage, or (temscript) the image shift (default %(default)s)",
    )
    group.add_argument(
        "--dose-table",
        type=Path,
        metavar="FILE",
        help="temscript: dose rate per spot size, e-/Å²/s (TOML; needed to change the dose, not to blank)",
    )
    group.add_argument(
        "--microscope-timeout-s",
        type=float,
        default=5.0,
        metavar="S",
        help="longest wait for the microscope to answer one command, s (default %(default)s)",
    )
    group.add_argument("--dry-run", action="store_true", help="act on nothing; log the actions")


def is_temscript(address: str) -> bool:
    return address.startswith("temscript+")


def open_microscope(args: argparse.Namespace, keys: ClientKeys | None) -> Microscope:
    """The microscope the arguments name (ValueError for a bad combination, MicroscopeError if it does
    not answer)."""
    if args.dry_run:
        return DryRunMicroscope()
    if not (args.microscope_timeout_s > 0):
        raise ValueError(f"--microscope-timeout-s must be > 0, got {args.microscope_timeout_s}")
    if is_temscript(args.microscope):
        table = None if args.dose_table is None else DoseTable.load(args.dose_table)
        return TemscriptMicroscope(
            args.microscope, actuator=args.actuator, timeout_s=args.microscope_timeout_s, dose_table=table
        )
    if args.actuator != "stage":
        raise ValueError("the simulated microscope moves its stage only (--actuator stage)")
    if args.dose_table is not None:
        raise ValueError("--dose-table is for a temscript microscope; the simulated one sets dose rates")
    return SimMicroscope(args.microscope, timeout_s=args.microscope_timeout_s, keys=keys)
