"""``lptem record``: subscribe to a daemon and write its results to a record folder.

Writes the same crash-safe format as ``lptem serve --record`` (lptem.service.record), from the payload
bytes as received, so a recording made anywhere on the network reads back exactly like the daemon's own.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import zmq

from lptem.clients.progress import Progress
from lptem.clients.wire.endpoints import add_key_arguments, add_publish_argument, keys_from
from lptem.service.protocol.curve import ClientKeys
from lptem.service.record import RecordExistsError, RecordWriter
from lptem.service.versions import versions

log = logging.getLogger("lptem.record")
RECORDED_TOPICS = (b"track", b"status", b"msd")


def record(
    endpoint: str,
    directory: Path,
    stop: threading.Event,
    *,
    max_frames: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
    keys: ClientKeys | None = None,
) -> int:
    """Record until ``stop`` is set, ``max_frames`` track messages arrived or ``duration_s`` passed.
    Returns the number of track messages written."""
    session = {
        "started_ns": time.time_ns(),
        "source": endpoint,
        "recorded_by": "lptem record",
        "versions": versions(),
    }
    writer = RecordWriter(directory, session)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.SUB)
    if keys is not None:
        keys.apply(socket)
    socket.setsockopt(zmq.RCVHWM, 100000)
    socket.setsockopt(zmq.LINGER, 0)
    for topic in RECORDED_TOPICS:
        socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.connect(endpoint)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    tracks = 0
    connected = False
    try:
        while not stop.is_set() and (max_frames is None or tracks < max_frames):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not socket.poll(100):
                continue
            topic, payload = socket.recv_multipart()
            if not connected:
                connected = True
                log.info("connected: receiving from %s", endpoint)
            writer.write(topic.decode(), payload)
            if topic == b"track":
                tracks += 1
                if progress is not None:
                    progress.update(tracks)
    finally:
        socket.close()
        context.term()
        writer.close()
    return tracks


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="record folder (created; exports written on exit)")
    add_publish_argument(parser)
    add_key_arguments(parser)
    parser.add_argument("--frames", type=int, metavar="N", help="stop after N track messages")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress line")


def run_record(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    keys = keys_from(args)
    progress = Progress(args.frames, enabled=False if args.no_progress else None)
    log.info("recording %s into %s (Ctrl-C to stop)", args.publish, args.out)
    try:
        n = record(
            args.publish,
            args.out,
            stop,
            max_frames=args.frames,
            duration_s=args.duration,
            progress=progress,
            keys=keys,
        )
    except RecordExistsError as exc:
        log.error("%s", exc)
        return 1
    progress.close()
    from lptem.service.exports import export_record  # noqa: PLC0415 - pandas and pyarrow only to export

    export_record(args.out)
    print(f"recorded {n} frames into {args.out}")
    return 0
