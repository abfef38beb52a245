"""``lptem serve``: run the daemon until SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import zmq

from lptem.engine.registry import ENGINES, EngineOptionError, engine_options
from lptem.service.config_file import CONFIG_ENV, ENV_PREFIX, ConfigError, Resolved, resolve
from lptem.service.daemon import Daemon, DaemonConfig, InsecureBindError, MetricsTls
from lptem.service.logutil import use_json_logs
from lptem.service.mailbox import Policy
from lptem.service.protocol.curve import KeyFileError
from lptem.service.protocol.endpoints import (
    DEFAULT_CONTROL,
    DEFAULT_INGEST,
    DEFAULT_PREVIEW,
    DEFAULT_PUBLISH,
    check_endpoint,
)
from lptem.service.statistics import MsdSettings, MsdSettingsError
from lptem.service.systemd import Notifier

log = logging.getLogger("lptem.serve")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    setup = parser.add_argument_group("configuration (docs/deploy.md)")
    setup.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"read settings from this TOML file: every flag is a key (--metrics-port -> metrics_port, -E "
        f"options in an [engine_options] table); {ENV_PREFIX}<KEY> variables override the file, flags "
        f"override both (default ${CONFIG_ENV}; see lptem config show)",
    )
    setup.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line for log collectors (default %(default)s)",
    )
    net = parser.add_argument_group("sockets (ZeroMQ endpoints; defaults bind to 127.0.0.1 only)")
    ingest = net.add_mutually_exclusive_group()
    ingest.add_argument(
        "--ingest",
        default=DEFAULT_INGEST,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="PULL socket the camera PUSHes frames to (default %(default)s)",
    )
    ingest.add_argument(
        "--ingest-connect",
        type=check_endpoint,
        metavar="ENDPOINT",
        help="instead, connect a SUB socket to a camera that PUBlishes frames",
    )
    net.add_argument(
        "--publish",
        default=DEFAULT_PUBLISH,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="PUB socket for results: topics track, msd, status (default %(default)s)",
    )
    net.add_argument(
        "--preview",
        default=DEFAULT_PREVIEW,
        type=lambda text: text if text == "none" else check_endpoint(text),
        metavar="ENDPOINT",
        help="PUB socket for the preview topic (downsampled frames and masks for viewers; 'none' = off) "
        "(default %(default)s)",
    )
    net.add_argument(
        "--control",
        default=DEFAULT_CONTROL,
        type=check_endpoint,
        metavar="ENDPOINT",
        help="REP socket for commands (default %(default)s)",
    )
    net.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="N",
        help="serve Prometheus metrics over HTTP on this port; 0 = off (default)",
    )
    net.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address for the metrics server (default %(default)s)",
    )
    net.add_argument(
        "--metrics-tls-cert",
        type=Path,
        metavar="PEM",
        help="serve metrics over HTTPS with this certificate (with --metrics-tls-key)",
    )
    net.add_argument("--metrics-tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    net.add_argument(
        "--metrics-client-ca",
        type=Path,
        metavar="PEM",
        help="require scrapers' client certificates signed by this CA (then --metrics-addr may be remote)",
    )
    net.add_argument(
        "--ready-max-silence",
        type=float,
        metavar="S",
        help="/readyz (and lptem_ready) fail when no frame arrived for S seconds (default: frames not "
        "required)",
    )
    net.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="write the bound endpoints as JSON here once the daemon is up "
        "(use with port '*' endpoints, e.g. tcp://127.0.0.1:*)",
    )

    sec = parser.add_argument_group("security (docs/security.md)")
    sec.add_argument(
        "--keys",
        type=Path,
        metavar="DIR",
        help="CURVE on every socket with the daemon key pair and the client keys authorised by role in DIR "
        "(made by lptem keys); re-read on SIGHUP and when DIR changes",
    )
    sec.add_argument(
        "--insecure",
        action="store_true",
        help="allow sockets (or metrics) reachable from other machines without --keys; logged, and said in "
        "every status",
    )

    eng = parser.add_argument_group("engine")
    eng.add_argument(
        "--engine",
        default="classical",
        choices=sorted(ENGINES),
        help="tracker to run (default %(default)s); see --list-engines",
    )
    eng.add_argument(
        "-E",
        "--engine-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option, repeatable, e.g. -E particle_radius_px=6 -E polarity=bright",
    )
    eng.add_argument(
        "--auto-detect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the engine propose objects itself (first frame and newcomers)",
    )
    eng.add_argument(
        "--pixel-size-nm",
        type=float,
        metavar="NM",
        help="pixel size, nm/px, when frames carry none; enables positions in nm",
    )
    eng.add_argument("--list-engines", action="store_true", help="list engines and their options, then exit")

    sam = parser.add_argument_group("SAM 2 engine (--engine sam2; see docs/engines.md)")
    sam.add_argument(
        "--model",
        metavar="NAME",
        help="sam2_hiera_{t,s,b+,l}, sam2.1_hiera_{t,s,b+,l}, or samem (SAM-EM, Hiera-L)",
    )
    sam.add_argument("--checkpoint", type=Path, metavar="PATH", help="the model's weights (.pt)")
    sam.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        help="where the model runs (default auto: CUDA, else MPS, else CPU)",
    )
    sam.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "tensorrt"),
        help="where the model's stages run (default torch; onnxruntime and tensorrt use graphs from "
        "lptem export, -E onnx_dir=DIR, or export them to a cache on first use; docs/gpu.md)",
    )
    sam.add_argument(
        "--random-weights",
        action="store_true",
        help="untrained seeded weights, for plumbing tests and benchmarks only (warns loudly)",
    )

    flow = parser.add_argument_group("flow and record")
    flow.add_argument(
        "--policy",
        choices=[p.value for p in Policy],
        default=Policy.LATEST.value,
        help="latest: live, drop the oldest waiting frame when behind (default); "
        "queue: lossless, the camera blocks when the queue is full",
    )
    flow.add_argument(
        "--queue-capacity",
        type=int,
        metavar="N",
        help="frames that may wait for the engine (default 2 for latest, 64 for queue)",
    )
    flow.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="write every result to DIR (crash-safe), exports on clean shutdown; {start} in DIR becomes "
        "the start time (UTC, e.g. records/{start} -> records/20261205T093000Z): a new folder per start",
    )
    flow.add_argument(
        "--preview-hz",
        type=float,
        default=10.0,
        metavar="HZ",
        help="rate of the preview topic, at most 10 (default %(default)s; 0 = off)",
    )

    stats = parser.add_argument_group("live statistics (topic msd; docs/statistics.md)")
    stats.add_argument(
        "--msd-window",
        type=int,
        default=256,
        metavar="N",
        help="rolling window, frames (default %(default)s)",
    )
    stats.add_argument(
        "--msd-lags", type=int, default=32, metavar="L", help="lags 1..L, frames (default %(default)s)"
    )
    stats.add_argument(
        "--msd-log-lags", action="store_true", help="up to 16 log-spaced lags up to L instead (13 for L = 32)"
    )
    stats.add_argument(
        "--msd-rate",
        type=float,
        default=5.0,
        metavar="HZ",
        help="msd messages per second, 0 = off (default %(default)s)",
    )
    stats.add_argument(
        "--msd-fit-lags",
        type=int,
        default=10,
        metavar="K",
        help="fit MSD = 4 D t^alpha on the first K >= 3 lags (default %(default)s)",
    )


def parse_engine_options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EngineOptionError(f"engine options are KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def print_engines() -> None:
    for name, spec in sorted(ENGINES.items()):
        print(f"{name}: {spec.summary}")
        for key, (kind, default) in engine_options(name).items():
            print(f"    -E {key}=<{kind}>   (default {default})")


SAM2_FLAGS = {"model": "--model", "checkpoint": "--checkpoint", "device": "--device",
              "random_weights": "--random-weights", "backend": "--backend"}  # fmt: skip


def engine_options_from(args: argparse.Namespace) -> dict[str, str]:
    """-E options plus the SAM 2 flags (which only the sam2 engine accepts)."""
    options = parse_engine_options(args.engine_opt)
    for key, flag in SAM2_FLAGS.items():
        value = getattr(args, key)
        if value in (None, False):
            continue
        if args.engine != "sam2":
            raise EngineOptionError(f"{flag} applies to --engine sam2 only")
        options[key] = "true" if value is True else str(value)
    return options


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    if not 0 <= args.preview_hz <= 10:
        raise EngineOptionError("--preview-hz must be between 0 and 10")
    if args.ready_max_silence is not None and not args.ready_max_silence > 0:
        raise EngineOptionError("--ready-max-silence must be a positive number of seconds")
    return DaemonConfig(
        ingest=args.ingest_connect or args.ingest,
        ingest_connect=args.ingest_connect is not None,
        publish=args.publish,
        preview=None if args.preview == "none" else args.preview,
        control=args.control,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_addr,
        metrics_tls=metrics_tls_from(args),
        engine=args.engine,
        engine_options=engine_options_from(args),
        auto_detect=args.auto_detect,
        policy=Policy(args.policy),
        queue_capacity=args.queue_capacity,
        record=record_folder(args.record),
        pixel_size_nm=args.pixel_size_nm,
        preview_hz=args.preview_hz,
        keys=args.keys,
        insecure=args.insecure,
        ready_max_silence_s=args.ready_max_silence,
        msd=MsdSettings(
            window=args.msd_window,
            max_lag=args.msd_lags,
            log_lags=args.msd_log_lags,
            rate_hz=args.msd_rate,
            fit_lags=args.msd_fit_lags,
        ),
    )


def record_folder(template: Path | None, now: datetime | None = None) -> Path | None:
    """``template`` with ``{start}`` replaced by the start time (UTC, basic ISO 8601)."""
    if template is None:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    text = str(template)
    try:
        return Path(text.format(start=stamp)) if "{" in text else template
    except (KeyError, IndexError, ValueError) as exc:
        raise ServeOptionError(f"--record {text}: only {{start}} may be filled in ({exc})") from exc


class ServeOptionError(ValueError):
    """Options that do not go together; the message says which."""


def metrics_tls_from(args: argparse.Namespace) -> MetricsTls | None:
    cert, key, client_ca = args.metrics_tls_cert, args.metrics_tls_key, args.metrics_client_ca
    if cert is None and key is None and client_ca is None:
        return None
    if cert is None or key is None:
        raise EngineOptionError(
            "--metrics-tls-cert and --metrics-tls-key go together (and --metrics-client-ca needs them)"
        )
    for path in (cert, key, client_ca):
        if path is not None and not path.is_file():
            raise ServeOptionError(f"{path}: no such file")
    return MetricsTls(cert, key, client_ca)


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lptem serve")
    add_serve_arguments(parser)
    return parser


def resolve_serve(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> Resolved:
    """``lptem serve ARGV``'s settings: defaults < --config file < LPTEM_* variables < flags."""
    return resolve(serve_parser, argv, environ)


def with_sources(message: str, resolved: Resolved | None) -> str:
    """``message`` plus where the settings it names (``--flag``, key or engine option) came from, when a
    file or variable set them."""
    if resolved is None:
        return message
    notes = []
    for key, source in resolved.sources.items():
        name = key.rpartition(".")[2]  # engine_options.NAME: messages name the option
        if source.kind in ("file", "env") and re.search(
            rf"(?<![\w-])(--{name.replace('_', '-')}|{name})(?![\w-])", message
        ):
            notes.append(f"{key} from {source}")
    return message + (f" [{'; '.join(notes)}]" if notes else "")


def run_serve(args: argparse.Namespace) -> int:
    if args.list_engines:
        print_engines()
        return 0
    resolved = None
    if (argv := getattr(args, "command_argv", None)) is not None:  # lptem serve (not a built namespace)
        try:
            resolved = resolve_serve(argv, os.environ)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
        args = resolved.namespace
    if args.log_format == "json":
        use_json_logs()
    try:
        daemon = Daemon(config_from_args(args))
    except (EngineOptionError, MsdSettingsError, InsecureBindError, KeyFileError, ServeOptionError) as exc:
        log.error("%s", with_sources(str(exc), resolved))
        return 2
    except (zmq.ZMQError, OSError) as exc:
        log.error("cannot start the daemon: %s", exc)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=daemon.reload_keys, name="lptem-sighup", daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    try:
        daemon.start()
    except OSError as exc:  # e.g. the metrics port is taken
        log.error("cannot start the daemon: %s", exc)
        daemon.stop()
        return 1
    if args.ready_file is not None:
        _write_atomically(args.ready_file, json.dumps({"pid": os.getpid(), **daemon.endpoints}))
    systemd = Notifier()
    systemd.send(ready=1, status=f"tracking with {daemon.config.engine}; frames on {daemon.ingest.endpoint}")
    systemd.watch(lambda: daemon.health.live().ok, stop)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        systemd.send(stopping=1)
        daemon.stop()
    return 0


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
