"""``lptem serve``: settings from its flags (lptem.service.serve_options), config file and variables, then
the daemon until SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import zmq

from lptem.engine.registry import ENGINES, EngineOptionError, engine_options
from lptem.service.config_file import ConfigError, Resolved, resolve, with_sources
from lptem.service.daemon import Daemon, DaemonConfig, InsecureBindError, MetricsTls
from lptem.service.logutil import use_json_logs
from lptem.service.mailbox import Policy
from lptem.service.protocol.curve import KeyFileError
from lptem.service.record import RecordFolderError, record_folder
from lptem.service.runtime import GC_PAUSES, settle_heap
from lptem.service.serve_options import add_serve_arguments
from lptem.service.statistics import MsdSettings, MsdSettingsError
from lptem.service.systemd import Notifier

log = logging.getLogger("lptem.serve")


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


class ServeOptionError(ValueError):
    """Options that do not go together; the message says which."""


SETTINGS_ERRORS = (
    ConfigError,
    EngineOptionError,
    MsdSettingsError,
    InsecureBindError,
    KeyFileError,
    ServeOptionError,
    RecordFolderError,
)
"""What settings that cannot be used raise (each message says which and why), before anything binds."""


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
    except SETTINGS_ERRORS as exc:
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
    if args.gc == "freeze":
        settle_heap()
    GC_PAUSES.install()  # after start-up: its own collections are no pauses of the frame path
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
