"""The ``lptem`` command. Subcommands load their modules only when used, so ``lptem status`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from lptem.clients.examples import epilog
from lptem.service.protocol.curve import KeyFileError
from lptem.service.versions import package_version

# name -> (module, add-arguments function, run function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str, str]] = {
    "serve": (
        "lptem.service.cli",
        "add_serve_arguments",
        "run_serve",
        "run the daemon: receive frames, track, publish results",
    ),
    "keys": (
        "lptem.service.keys_cli",
        "add_keys_arguments",
        "run_keys",
        "make and manage CURVE keys: the daemon's pair, clients authorised by role, revocation",
    ),
    "config": (
        "lptem.service.config_cli",
        "add_config_arguments",
        "run_config",
        "show the settings lptem serve would run with (file, LPTEM_* variables, flags), or check a file",
    ),
    "replay": (
        "lptem.clients.camera.replay",
        "add_replay_arguments",
        "run_replay",
        "stream a recorded movie (TIFF, .npy, image folder) to the daemon",
    ),
    "record": (
        "lptem.clients.ops.record",
        "add_record_arguments",
        "run_record",
        "subscribe to a daemon and write its results to a record folder",
    ),
    "prompt": (
        "lptem.clients.ops.commands",
        "add_prompt_arguments",
        "run_prompt",
        "add, correct, remove or list tracked objects",
    ),
    "status": (
        "lptem.clients.ops.commands",
        "add_status_arguments",
        "run_status",
        "show the daemon's counters, rates and objects",
    ),
    "msd": (
        "lptem.clients.ops.commands",
        "add_msd_arguments",
        "run_msd",
        "show or change the live MSD settings (window, lags, rate, fit range)",
    ),
    "control": (
        "lptem.clients.feedback.cli",
        "add_feedback_arguments",
        "run_feedback",
        "run a feedback controller: keep a particle centred, or guard the dose by its dynamics",
    ),
    "calibrate": (
        "lptem.clients.feedback.calibrate_cli",
        "add_calibrate_arguments",
        "run_calibrate",
        "measure how the stage or image shift moves the image (the map lptem control centre uses)",
    ),
    "dashboard": (
        "lptem.clients.dashboard.app",
        "add_dashboard_arguments",
        "run_dashboard",
        "live view of a daemon: frames with masks and trails, prompts by mouse, MSD, rates, latency",
    ),
    "health": (
        "lptem.clients.ops.health",
        "add_health_arguments",
        "run_health",
        "is the daemon ready (or live)? exit 0 or 1, for probes and scripts",
    ),
    "bench": (
        "lptem.clients.ops.bench_latency",
        "add_bench_arguments",
        "run_bench",
        "measure a running daemon: latency distributions per stage and frame losses",
    ),
    "sim": (
        "lptem.clients.camera.sim_cli",
        "add_sim_arguments",
        "run_sim",
        "simulated LPTEM camera: stream to the daemon, or write a movie with ground truth",
    ),
    "analyze": (
        "lptem.clients.analysis.cli",
        "add_analyze_arguments",
        "run_analyze",
        "trajectory statistics of a record or a trajectory table: MSD, D, α, VACF, displacements, figures",
    ),
    "export": (
        "lptem.engine.sam2.export_cli",
        "add_export_arguments",
        "run_export",
        "export SAM 2's four stages to ONNX with static shapes (for onnxruntime and TensorRT)",
    ),
    "demo": (
        "lptem.clients.demo.cli",
        "add_demo_arguments",
        "run_demo",
        "run the whole live loop on synthetic particles and report accuracy",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None, e.g. for --help)."""
    parser = argparse.ArgumentParser(
        prog="lptem",
        description="Live particle tracking for liquid-phase TEM. Run `lptem demo` to see it work, "
        "`lptem COMMAND --help` for each command.",
        epilog="examples:\n"
        "  lptem demo                      # the whole live loop on simulated particles, scored\n"
        "  lptem serve & lptem sim         # a daemon, and a simulated camera streaming to it\n"
        "  lptem status                    # what the daemon is doing",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lptem-live {package_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, add_name, run_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command is None or command == name:
            module = importlib.import_module(module_name)
            getattr(module, add_name)(p)
            p.set_defaults(run=getattr(module, run_name))
            _add_nested_examples(p, name)
    return parser


def _add_nested_examples(parser: argparse.ArgumentParser, command: str) -> None:
    """``lptem control centre --help`` and the like show the examples that use them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, nested in action.choices.items():
                nested.epilog = epilog(command, only=name)
                nested.formatter_class = argparse.RawDescriptionHelpFormatter


EXTRAS = {
    "PySide6": "gui", "shiboken6": "gui", "pyqtgraph": "gui",
    "torch": "sam2", "sam2": "sam2", "hydra": "sam2", "omegaconf": "sam2", "iopath": "sam2",
    "onnx": "export", "onnxruntime": "export", "tensorrt": "trt", "rsciio": "formats",
    "temscript": "temscript",
}  # fmt: skip
"""Top-level modules of optional dependencies -> the extra that installs them (pyproject.toml)."""


def missing_extra_message(command: str, exc: ModuleNotFoundError) -> str | None:
    """What to install when ``exc`` is an optional dependency that is missing; None for anything else."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    hint = " (on a CPU-only machine install torch first: docs/install.md)" if extra == "sam2" else ""
    return f"lptem {command}: {module} is not installed; pip install 'lptem-live[{extra}]'{hint}"


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    args = build_parser(command).parse_args(argv)
    args.command_argv = argv[argv.index(command) + 1 :] if command is not None else []
    _configure_logging(args.verbose, args.quiet)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyFileError as exc:  # --key / --server-key (or their variables) name a bad or missing file
        print(f"lptem {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra_message(args.command, exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
