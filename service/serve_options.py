"""The flags of ``lptem serve`` (and of ``lptem config show``, which takes the same ones): every one is also
a key of the config file (lptem.service.config_file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lptem.engine.registry import ENGINES
from lptem.service.config_file import CONFIG_ENV, ENV_PREFIX
from lptem.service.mailbox import Policy
from lptem.service.protocol.endpoints import (
    DEFAULT_CONTROL,
    DEFAULT_INGEST,
    DEFAULT_PREVIEW,
    DEFAULT_PUBLISH,
    check_endpoint,
)


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
        "--gc",
        choices=("freeze", "default"),
        default="freeze",
        help="freeze: once up, take the start-up objects out of garbage collection, so that collections "
        "stay short (default; docs/architecture.md); default: Python's own behaviour (for comparison)",
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
