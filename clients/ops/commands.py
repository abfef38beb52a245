"""``lptem prompt`` and ``lptem status``: one-shot control-socket commands for people and scripts."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.endpoints import add_control_argument, add_key_arguments, keys_from
from lptem.service.protocol import StatusMessage

log = logging.getLogger("lptem.control")


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's control socket (and its CURVE keys), the reply timeout and the output format."""
    add_control_argument(parser)
    add_key_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="seconds to wait for a reply (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw reply as JSON")


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--box",
        nargs=4,
        type=float,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="add (or, with --id of an existing object, correct) an object by a box, px",
    )
    action.add_argument(
        "--point",
        nargs=3,
        type=float,
        action="append",
        metavar=("X", "Y", "LABEL"),
        help="add an object by clicks, px; LABEL 1 = object, 0 = background; repeatable",
    )
    action.add_argument("--remove", type=int, metavar="ID", help="stop tracking object ID")
    action.add_argument("--list", action="store_true", help="list tracked objects")
    action.add_argument("--reset", action="store_true", help="forget all objects")
    action.add_argument("--auto-detect", choices=("on", "off"), help="switch automatic detection")
    parser.add_argument("--id", type=int, help="object id for --box / --point (default: next free id)")
    parser.add_argument(
        "--and-point",
        nargs=3,
        type=float,
        action="append",
        default=[],
        metavar=("X", "Y", "LABEL"),
        help="extra clicks to refine a --box prompt",
    )
    add_request_arguments(parser)


def _prompt(client: ControlClient, args: argparse.Namespace) -> dict[str, Any]:
    if args.box is not None or args.point is not None:
        points = [*(args.point or []), *args.and_point]
        for p in points:
            if p[2] not in (0, 1):
                raise ControlError(f"point label must be 1 or 0, got {p[2]:g}")
        obj_id = client.add_object(box=args.box, points=points or None, obj_id=args.id)
        return {"id": obj_id}
    if args.remove is not None:
        client.remove_object(args.remove)
        return {"removed": args.remove}
    if args.reset:
        client.reset()
        return {"reset": True}
    if args.auto_detect is not None:
        client.set_auto_detect(args.auto_detect == "on")
        return {"auto_detect": args.auto_detect}
    return {"objects": client.list_objects()}


def _ask(
    args: argparse.Namespace, request: Callable[[ControlClient], dict[str, Any]]
) -> dict[str, Any] | None:
    """Run ``request`` against the daemon; None (after logging why) if it was refused or unanswered."""
    try:
        with ControlClient(args.control, timeout_s=args.timeout, keys=keys_from(args)) as client:
            return request(client)
    except ControlError as exc:
        log.error("refused: %s", exc)
    except TimeoutError as exc:
        log.error("%s (is the daemon running?)", exc)
    return None


def run_prompt(args: argparse.Namespace) -> int:
    result = _ask(args, lambda client: _prompt(client, args))
    if result is None:
        return 1
    if args.json:
        print(json.dumps(result))
    elif "objects" in result:
        print(format_objects(result["objects"]))
    else:
        print(", ".join(f"{k} {v}" for k, v in result.items()))
    return 0


def format_objects(objects: list[dict[str, Any]]) -> str:
    if not objects:
        return "no objects tracked"
    lines = [f"{'id':>5} {'source':>7} {'x/px':>9} {'y/px':>9} {'visible':>8} {'tracked':>8} {'missing':>8}"]
    for o in objects:
        x, y = o.get("x"), o.get("y")
        pos = f"{x:9.2f} {y:9.2f}" if x is not None and y is not None else f"{'-':>9} {'-':>9}"
        lines.append(
            f"{o['id']:>5} {o['source']:>7} {pos} {o.get('visible', '-')!s:>8} "
            f"{o['frames_tracked']:>8} {o['frames_missing']:>8}"
        )
    return "\n".join(lines)


def format_status(s: StatusMessage) -> str:
    uptime = (s.t_ns - s.started_ns) / 1e9
    rejected = {k: v for k, v in s.frames_rejected.items() if v}
    p50 = "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.2f}"
    p99 = "-" if s.latency_p99_ms is None else f"{s.latency_p99_ms:.2f}"
    pixel = "unknown" if s.pixel_size_nm is None else f"{s.pixel_size_nm:g} nm"
    return "\n".join(
        [
            f"lptem daemon {s.version}  engine {s.engine}  policy {s.policy}  up {uptime:.0f} s",
            f"frames   received {s.frames_received}  processed {s.frames_processed}"
            f"  dropped {s.frames_dropped}  rejected {sum(rejected.values())} {rejected or ''}"
            f"  missed upstream {s.frames_missed_upstream}",
            f"rates    in {s.fps_in:.1f} fps  out {s.fps_out:.1f} fps  queue {s.queue_depth}"
            f"  latency p50 {p50} ms  p99 {p99} ms",
            f"objects  {s.objects or 'none'}  auto-detect {'on' if s.auto_detect else 'off'}"
            f"  last frame {s.last_frame}  pixel {pixel}",
            *_format_engine_settings(s),
            *_format_diffusion(s),
        ]
    )


def _format_engine_settings(s: StatusMessage) -> list[str]:
    """What the engine chose for itself (e.g. the particle radius it estimated), one line."""
    settings = s.extra.get("engine_settings") or {}
    if "particle_radius_px" not in settings:
        return [f"engine   {settings}"] if settings else []
    radius, source = settings["particle_radius_px"], settings["particle_radius_source"]
    line = f"engine   particle radius {radius:g} px ({source}"
    if "scale_blobs" in settings:
        line += f" from {settings['scale_blobs']} blobs"
    if "scale_lattice_pitch_px" in settings:
        line += f", half the pitch of a {settings['scale_lattice_pitch_px']:g} px lattice"
    return [line + ")"]


def _format_diffusion(s: StatusMessage) -> list[str]:
    """The msd settings and, per object, D and α of the rolling MSD fit (docs/statistics.md)."""
    settings = s.extra.get("msd")
    lines = []
    if settings:
        lags = f"{'log-spaced ' if settings['log_lags'] else ''}lags 1..{settings['max_lag']}"
        lines.append(
            f"msd      window {settings['window']} frames  {lags}  fit on {settings['fit_lags']} lags"
            f"  published at {settings['rate_hz']:g} Hz"
        )
    for d in s.diffusion:
        if not math.isfinite(d["alpha"]):
            lines.append(f"  id {d['id']:>5}  no fit yet (too few positions in the window)")
            continue
        nm = d.get("D_nm2_per_s")
        d_nm = f"{nm:.4g} nm²/s^α" if nm is not None else "- nm²/s^α (pixel size unknown)"
        lines.append(
            f"  id {d['id']:>5}  D {d['D_px2_per_frame']:.4g} px²/frame^α  {d_nm}  α {d['alpha']:.3f}"
        )
    return lines


MSD_OPTIONS = {"window": "window", "lags": "max_lag", "log_lags": "log_lags", "rate": "rate_hz",
               "fit_lags": "fit_lags"}  # fmt: skip
"""``lptem msd`` option -> ``set_msd`` key."""


def add_msd_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, metavar="FRAMES", help="rolling window, frames (8..100000)")
    parser.add_argument("--lags", type=int, metavar="L", help="lags 1..L, frames (L < window)")
    parser.add_argument(
        "--log-lags", choices=("on", "off"), help="up to 16 log-spaced lags up to L (13 for L = 32)"
    )
    parser.add_argument("--rate", type=float, metavar="HZ", help="msd messages per second, 0 = off (<= 50)")
    parser.add_argument("--fit-lags", type=int, metavar="N", help="fit MSD = 4 D t^alpha on the first N lags")
    add_request_arguments(parser)


def run_msd(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {
        key: getattr(args, option) for option, key in MSD_OPTIONS.items() if getattr(args, option) is not None
    }
    if "log_lags" in changes:
        changes["log_lags"] = changes["log_lags"] == "on"
    settings = _ask(
        args,
        lambda client: client.set_msd(**changes) if changes else dict(client.status().extra.get("msd", {})),
    )
    if settings is None:
        return 1
    if not settings:
        log.error("the daemon does not report live-statistics settings (an older lptem-live?)")
        return 1
    print(json.dumps(settings) if args.json else ", ".join(f"{k} {v}" for k, v in settings.items()))
    return 0


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    add_request_arguments(parser)
    parser.add_argument("--watch", type=float, metavar="S", help="repeat every S seconds until Ctrl-C")


def run_status(args: argparse.Namespace) -> int:
    with ControlClient(args.control, timeout_s=args.timeout, keys=keys_from(args)) as client:
        while True:
            try:
                status = client.status()
            except TimeoutError as exc:
                log.error("%s (is the daemon running?)", exc)
                return 1
            print(json.dumps(status.to_wire()) if args.json else format_status(status), flush=True)
            if args.watch is None:
                return 0
            try:
                time.sleep(args.watch)
            except KeyboardInterrupt:
                return 0
