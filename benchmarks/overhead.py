"""Service overhead: camera -> `track` latency through the daemon with the pass-through engine, next to
the raw pyzmq floor (PUSH -> PULL -> PUB -> SUB through a minimal relay process) measured in the same run.

    python benchmarks/overhead.py                 # 1024^2 uint16 at 100 fps, 30 s per stage
    python benchmarks/overhead.py --seconds 10 --json overhead.json
    python benchmarks/overhead.py --curve         # also the daemon with CURVE on every socket

With ``--curve`` each round also runs the daemon with ``--keys`` (a fresh key folder: the camera with a
camera key, the subscriber and control with an operator key), so plain and encrypted are measured in the
same run; the daemon's CPU time per frame (user + system, from /proc) is shown for both.

Target (docs/architecture.md): p99 <= 2 ms and 0 drops for the daemon. Both stages run the same paced camera
process and the same subscriber (this process), one after the other.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq
from _common import TABLE_HEADER, Summary, dump_json, machine, start_camera

from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.control import ControlClient
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.keys import KeyFolder
from lptem.service.protocol.curve import ClientKeys


def bind_address(transport: str, name: str) -> str:
    """A fresh endpoint: a free loopback TCP port, or an IPC socket file in a temporary folder."""
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    return f"ipc://{tempfile.mkdtemp(prefix='lptem-bench-')}/{name}"


def relay(transport: str, endpoints: Any, stop: Any) -> None:
    """The floor: receive a frame (zero-copy), decode its header, publish a small result."""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(bind_address(transport, "ingest"))
    pub = context.socket(zmq.PUB)
    pub.bind(bind_address(transport, "publish"))
    endpoints.put((pull.getsockopt_string(zmq.LAST_ENDPOINT), pub.getsockopt_string(zmq.LAST_ENDPOINT)))
    while not stop.is_set():
        if not pull.poll(100):
            continue
        header, _pixels = pull.recv_multipart(copy=False)
        t_recv = time.time_ns()
        h = msgpack.unpackb(header.buffer)
        result = {"frame": h["frame"], "t_ns": h["t_ns"], "t_recv_ns": t_recv, "t_done_ns": time.time_ns()}
        pub.send_multipart([b"track", msgpack.packb(result)])
    pull.close(0)
    pub.close(0)
    context.term()


def receive_latencies(
    sub: zmq.Socket[bytes], n_frames: int, quiet_s: float = 3.0
) -> tuple[list[float], set[int]]:
    """Camera->subscriber latency (s) of every `track` message until ``n_frames`` or a quiet spell."""
    latencies: list[float] = []
    frames: set[int] = set()
    while len(frames) < n_frames and sub.poll(int(quiet_s * 1000)):
        _topic, payload = sub.recv_multipart()
        now = time.time_ns()
        msg = msgpack.unpackb(payload)
        latencies.append((now - msg["t_ns"]) / 1e9)
        frames.add(msg["frame"])
    return latencies, frames


def measure_floor(transport: str, shape: tuple[int, int], fps: float, n_frames: int) -> tuple[Summary, int]:
    ctx = mp.get_context("spawn")
    endpoints, stop = ctx.Queue(), ctx.Event()
    process = ctx.Process(target=relay, args=(transport, endpoints, stop))
    process.start()
    ingest, publish = endpoints.get(timeout=30)
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100000)
    sub.setsockopt(zmq.SUBSCRIBE, b"track")
    sub.connect(publish)
    time.sleep(0.5)  # slow joiner
    camera, go = start_camera(ingest, shape, fps, n_frames)
    go.set()
    latencies, frames = receive_latencies(sub, n_frames)
    camera.join()
    stop.set()
    process.join()
    sub.close(0)
    context.term()
    return Summary.of(latencies), n_frames - len(frames)


def cpu_s(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_keys(folder: Path) -> dict[str, ClientKeys | tuple[str, str]]:
    """A key folder with a camera and an operator key; their client keys (camera's as file names)."""
    keys = KeyFolder(folder)
    keys.init()
    keys.add("camera", "camera")
    keys.add("operator", "operator")
    server = str(folder / "server.key")
    operator = ClientKeys.load(folder / "clients" / "operator.key_secret", folder / "server.key")
    return {"camera": (str(folder / "clients" / "camera.key_secret"), server), "operator": operator}


def measure_daemon(
    transport: str, shape: tuple[int, int], fps: float, n_frames: int, curve: Path | None = None
) -> tuple[dict[str, Summary], dict[str, Any]]:
    sockets = []
    if transport != "tcp":
        for name in ("ingest", "publish", "preview", "control"):
            sockets += [f"--{name}", bind_address(transport, name)]
    keys = make_keys(curve) if curve is not None else {}
    operator = keys.get("operator")
    assert operator is None or isinstance(operator, ClientKeys)
    camera_keys = keys.get("camera")
    assert camera_keys is None or isinstance(camera_keys, tuple)
    secure = ("--keys", str(curve)) if curve is not None else ()
    with DaemonProcess("--engine", "passthrough", "--policy", "latest", *sockets, *secure) as daemon:
        with ControlClient(daemon.control, keys=operator) as control:
            for k in range(3):  # realistic result size: three objects per frame
                control.add_object(box=[100 + 50 * k, 100, 120 + 50 * k, 120])
        stages: dict[str, list[float]] = {
            "camera->track (total)": [],
            "camera->daemon": [],
            "daemon processing": [],
            "daemon->subscriber": [],
        }
        with Subscriber(daemon.publish, keys=operator) as sub:
            assert sub.wait_connected(10)
            camera, go = start_camera(daemon.ingest, shape, fps, n_frames, camera_keys)
            cpu_before = cpu_s(daemon.pid)
            go.set()
            seen = 0
            while seen < n_frames and (r := sub.recv(3.0)) is not None:
                lat = r.latency()
                stages["camera->track (total)"].append(lat.total_s)
                stages["camera->daemon"].append(lat.camera_to_daemon_s)
                stages["daemon processing"].append(lat.processing_s)
                stages["daemon->subscriber"].append(lat.daemon_to_client_s)
                seen += 1
            camera.join()
            cpu = cpu_s(daemon.pid) - cpu_before
        with ControlClient(daemon.control, keys=operator) as control:
            status = control.status()
    counts = {
        "daemon_cpu_ms_per_frame": 1e3 * cpu / max(1, status.frames_received),
        "received": status.frames_received,
        "processed": status.frames_processed,
        "dropped": status.frames_dropped,
        "results_missing_at_subscriber": n_frames - seen,
    }
    return {k: Summary.of(v) for k, v in stages.items()}, counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each stage per round, s")
    parser.add_argument("--rounds", type=int, default=3, help="floor and daemon alternate this many times")
    parser.add_argument("--fps", type=float, default=100.0)
    parser.add_argument("--size", type=int, default=1024, help="frame side, px")
    parser.add_argument(
        "--transport",
        choices=("tcp", "ipc"),
        default="tcp",
        help="tcp: loopback TCP (default); ipc: Unix-domain sockets (camera on the same host)",
    )
    parser.add_argument("--curve", action="store_true", help="also measure the daemon with CURVE (--keys)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    shape = (args.size, args.size)
    n_frames = round(args.seconds * args.fps)
    print(f"machine: {machine()}")
    print(f"{args.size}x{args.size} uint16 frames at {args.fps:g} fps over {args.transport}, ")
    print(f"{args.rounds} rounds of {args.seconds:g} s per stage ({n_frames} frames)")
    rounds: list[dict[str, Any]] = []
    for k in range(args.rounds):
        floor, floor_lost = measure_floor(args.transport, shape, args.fps, n_frames)
        stages, counts = measure_daemon(args.transport, shape, args.fps, n_frames)
        entry: dict[str, Any] = {"floor": floor, "floor_lost": floor_lost, "daemon": stages, "counts": counts}
        curve: dict[str, Summary] = {}
        if args.curve:
            with tempfile.TemporaryDirectory(prefix="lptem-keys-") as folder:
                curve, entry["curve_counts"] = measure_daemon(
                    args.transport, shape, args.fps, n_frames, Path(folder) / "keys"
                )
            entry["curve"] = curve
        rounds.append(entry)
        print(f"\nround {k + 1}\n{TABLE_HEADER}")
        print(floor.row("raw pyzmq floor (relay process)"))
        for label, summary in stages.items():
            print(summary.row(f"daemon: {label}"))
        for label, summary in curve.items():
            print(summary.row(f"CURVE: {label}"))
        print(f"floor: {floor_lost} of {n_frames} results missing; daemon: {counts}")
        if args.curve:
            print(f"daemon with CURVE: {entry['curve_counts']}")
    print("\nmedian over rounds (ms)      p50     p99")
    for label, pick in (
        ("raw pyzmq floor", lambda r: r["floor"]),
        ("daemon camera->track", lambda r: r["daemon"]["camera->track (total)"]),
        ("daemon processing", lambda r: r["daemon"]["daemon processing"]),
    ):
        p50 = statistics.median(pick(r).p50_ms for r in rounds)
        p99 = statistics.median(pick(r).p99_ms for r in rounds)
        print(f"{label:<26} {p50:7.3f} {p99:7.3f}")
    if args.curve:
        for label, stage in (
            ("CURVE camera->track", "camera->track (total)"),
            ("CURVE processing", "daemon processing"),
        ):
            p50 = statistics.median(r["curve"][stage].p50_ms for r in rounds)
            p99 = statistics.median(r["curve"][stage].p99_ms for r in rounds)
            print(f"{label:<26} {p50:7.3f} {p99:7.3f}")
        for name, key in (("plain", "counts"), ("CURVE", "curve_counts")):
            cpu = statistics.median(r[key]["daemon_cpu_ms_per_frame"] for r in rounds)
            print(f"daemon CPU per frame, {name}: {cpu:.3f} ms")
    drops = sum(r["counts"]["dropped"] for r in rounds)
    print(f"daemon drops over all rounds: {drops} (target: daemon p99 <= 2 ms, 0 drops)")
    dump_json(
        args.json, {"machine": machine(), "args": vars(args) | {"json": str(args.json)}, "rounds": rounds}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
