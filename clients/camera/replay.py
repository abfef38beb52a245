"""``lptem replay``: stream a recorded movie to the daemon as a camera would."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from lptem.clients.camera.movies import Movie, MovieError, iter_frames, open_movie
from lptem.clients.progress import Progress
from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.endpoints import (
    add_control_argument,
    add_ingest_argument,
    add_key_arguments,
    add_shm_argument,
    add_wait_argument,
    keys_from,
    shm_slots_from,
)
from lptem.clients.wire.sender import FrameSender, NoReceiverError
from lptem.service.protocol.curve import ClientKeys

log = logging.getLogger("lptem.replay")


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    frames_sent: int
    elapsed_s: float
    late_frames: int
    """Paced replay only: frames sent after their scheduled time (the sender could not keep up)."""

    @property
    def fps(self) -> float:
        return self.frames_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def replay(
    movie: Movie,
    sender: FrameSender,
    *,
    fps: float | None = None,
    start: int = 0,
    stop: int | None = None,
    loops: int = 1,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Send frames ``start..stop`` ``loops`` times, at ``fps`` (paced to an absolute schedule) or as fast
    as the daemon accepts them. Frame numbers keep increasing across loops. When the movie knows its frame
    time, each frame's timestamp is the replay's start plus its place in the movie's own clock, so that
    rates and MSD times downstream are the acquisition's, however fast the replay runs."""
    sent = late = 0
    t0 = time.perf_counter()
    t0_ns = time.time_ns()
    step_ns = round(movie.frame_time_s * 1e9) if movie.frame_time_s else None
    sender.start(source=str(movie.path), n_frames=len(movie))
    for _ in range(loops):
        for _, image in iter_frames(movie, start, stop):
            if fps is not None:
                due = t0 + sent / fps
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -1.0 / fps:
                    late += 1
            sender.send(image, t_ns=None if step_ns is None else t0_ns + sent * step_ns)
            sent += 1
            if progress is not None:
                progress.update(sent)
    sender.end()
    return ReplaySummary(sent, time.perf_counter() - t0, late)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        type=Path,
        help="TIFF stack, .npy array (frames, rows, cols), a folder of numbered JPEG/PNG/TIFF images "
        "(natural order: 2 before 10), or an EM file: .dm3/.dm4, .mrc/.mrcs, TIA .emi/.ser, Velox .emd, a "
        "Gatan in-situ folder of .dm4 (these need lptem-live[formats]; pixel size and frame time come "
        "from the file)",
    )
    add_ingest_argument(parser)
    add_shm_argument(parser)
    add_control_argument(parser, "asked whether its policy is lossy")
    add_wait_argument(parser)
    add_key_arguments(parser)
    parser.add_argument(
        "--fps",
        type=float,
        metavar="F",
        help="pace frames at F frames/s like a camera; default: as fast as the daemon "
        "accepts (lossless when the daemon runs --policy queue)",
    )
    parser.add_argument(
        "--pixel-size-nm",
        type=float,
        metavar="NM",
        help="pixel size sent with every frame, nm/px (default: the file's calibration, if it has one)",
    )
    parser.add_argument("--start", type=int, default=0, help="first frame index (default 0)")
    parser.add_argument("--stop", type=int, help="stop before this frame index (default: the end)")
    parser.add_argument("--loop", type=int, default=1, metavar="N", help="replay N times (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.add_argument(
        "--drain",
        type=float,
        metavar="S",
        help="after sending, wait up to S seconds until the daemon has dealt with every frame it received "
        "(processed, dropped or failed; exit 1 if not): for batch jobs that stop the daemon next",
    )


def _pixel_size(movie: Movie, given_nm: float | None) -> float | None:
    """--pixel-size-nm where given (it overrides the file's), else the file's calibration, else unknown."""
    found = movie.pixel_size_nm
    if given_nm is not None:
        if found is not None and abs(found - given_nm) > 1e-3 * found:
            log.warning("--pixel-size-nm %g overrides the file's %g nm/px", given_nm, found)
        return given_nm
    if found is None:
        log.warning("%s carries no pixel size: positions stay in px (give --pixel-size-nm)", movie.path)
    else:
        log.info("pixel size from the file: %g nm/px", found)
    return found


def _warn_if_lossy(control: str, fps: float | None, keys: ClientKeys | None) -> None:
    if fps is not None:
        return
    try:
        with ControlClient(control, timeout_s=1.0, keys=keys) as client:
            policy = client.status().policy
    except (TimeoutError, OSError, ControlError) as exc:  # a camera key may not read status
        log.info("could not ask the daemon for its policy (%s); continuing", exc)
        return
    if policy != "queue":
        log.warning(
            "the daemon runs --policy %s: frames sent faster than it processes them are dropped; "
            "start it with --policy queue for a lossless replay, or pass --fps",
            policy,
        )


def run_replay(args: argparse.Namespace) -> int:
    if args.fps is not None and args.fps <= 0:
        log.error("--fps must be positive")
        return 2
    try:
        movie = open_movie(args.path)
    except MovieError as exc:
        log.error("%s", exc)
        return 2
    with movie:
        return _replay_movie(movie, args)


def _replay_movie(movie: Movie, args: argparse.Namespace) -> int:
    stop = len(movie) if args.stop is None else min(args.stop, len(movie))
    n = max(0, stop - args.start) * args.loop
    log.info(
        "replaying %s: %d frames to %s%s",
        args.path,
        n,
        args.ingest,
        f" at {args.fps:g} fps" if args.fps else " as fast as accepted",
    )
    try:
        shm_slots = shm_slots_from(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    keys = keys_from(args)
    _warn_if_lossy(args.control, args.fps, keys)
    pixel_size_nm = _pixel_size(movie, args.pixel_size_nm)
    progress = Progress(n, enabled=False if args.no_progress else None)
    with FrameSender(args.ingest, pixel_size_nm=pixel_size_nm, keys=keys, shm_slots=shm_slots) as sender:
        try:
            sender.require_receiver(args.wait)
        except NoReceiverError as exc:
            progress.close()
            log.error("%s", exc)
            return 1
        try:
            summary = replay(
                movie, sender, fps=args.fps, start=args.start, stop=stop, loops=args.loop, progress=progress
            )
        except MovieError as exc:
            progress.close()
            log.error("%s", exc)
            return 1
    progress.close()
    print(
        f"sent {summary.frames_sent} frames in {summary.elapsed_s:.2f} s ({summary.fps:.1f} fps)"
        + (f", {summary.late_frames} late" if args.fps else "")
    )
    if args.drain is not None:
        return _drain(args.control, keys, args.drain)
    return 0


def _drain(control: str, keys: ClientKeys | None, timeout_s: float) -> int:
    """Wait until the daemon's queue is empty and each frame it received is accounted for."""
    deadline = time.monotonic() + timeout_s
    try:
        with ControlClient(control, timeout_s=min(5.0, timeout_s), keys=keys) as client:
            while True:
                s = client.status()
                done = s.frames_processed + s.frames_dropped + int(s.extra.get("engine_errors", 0))
                if s.queue_depth == 0 and done >= s.frames_received:
                    print(f"drained: {s.frames_processed} processed, {s.frames_dropped} dropped")
                    return 0
                if time.monotonic() > deadline:
                    log.error("%d of %d frames still unprocessed after %g s", s.frames_received - done,
                              s.frames_received, timeout_s)  # fmt: skip
                    return 1
                time.sleep(0.2)
    except (TimeoutError, OSError, ControlError) as exc:
        log.error("--drain: cannot read the daemon's status at %s: %s", control, exc)
        return 1
