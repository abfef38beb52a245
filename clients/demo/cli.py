"""``lptem demo``: the whole live loop on this machine, scored against ground truth.

Starts the real daemon (``lptem serve``: classical engine, automatic detection, recording), streams the
LPTEM simulator over the wire at camera speed (the simulated camera of ``lptem sim``), shows a live
view from the ``track`` topic, then stops the daemon and scores its record: frames, latency, centroid
error per particle, identity switches, and D and α from each trajectory's MSD against the truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lptem.clients.camera.simcam import SimulatedCamera, motion_from_physical, truth_table
from lptem.clients.demo.view import LiveView
from lptem.clients.ops.daemon_process import DaemonProcess
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.engine.msd import fit_power_law, msd, positions_by_frame
from lptem.engine.scoring import Contact, ObjectScore, score_tracks
from lptem.engine.sim.optics import Stack
from lptem.engine.sim.simulator import Particles, SimConfig, SimFrame, Simulator
from lptem.service.exports import Record, read_record

log = logging.getLogger("lptem.demo")
CONTACT = 1.25
"""Particles closer than this many diameters count as touching (a switch there is an overlap switch)."""


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="movie length, s (default %(default)s)")
    parser.add_argument(
        "--fps", type=float, default=50.0, help="camera frame rate, frames/s (default %(default)s)"
    )
    parser.add_argument("--particles", type=int, default=4, help="number of particles (default %(default)s)")
    parser.add_argument(
        "--width-nm", type=float, default=20.0, help="gold sphere diameter, nm (default %(default)s)"
    )
    parser.add_argument(
        "--liquid-nm", type=float, default=50.0, help="liquid thickness, nm (default %(default)s)"
    )
    parser.add_argument(
        "--diffusion",
        type=float,
        default=56.0,
        metavar="D",
        help="diffusion coefficient, nm²/s (default %(default)s)",
    )
    parser.add_argument("--size", type=int, default=1024, help="frame side, px (default %(default)s)")
    parser.add_argument("--pixel-size-nm", type=float, default=0.25, help="nm/px (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--out", type=Path, help="output folder (default ./lptem-demo-<date>-<time>)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


def simulator_for(args: argparse.Namespace) -> Simulator:
    dose = 22.5 / (args.pixel_size_nm * 10) ** 2 * args.fps  # keeps N0 = 22.5 e-/px as calibrated
    config = SimConfig(
        shape=(args.size, args.size),
        pixel_size_nm=args.pixel_size_nm,
        fps=args.fps,
        stack=Stack(liquid_thickness_nm=args.liquid_nm, dose_rate=dose),
        particles=Particles(count=args.particles, width_nm=args.width_nm),
        motion=motion_from_physical("brownian", args.diffusion, 1.0, args.pixel_size_nm, args.fps),
    )
    return Simulator(config, seed=args.seed)


def engine_arguments(args: argparse.Namespace, record: Path) -> list[str]:
    radius = args.width_nm / args.pixel_size_nm / 2
    return [
        "--engine",
        "classical",
        "--auto-detect",
        "--record",
        str(record),
        "--pixel-size-nm",
        str(args.pixel_size_nm),
        "-E",
        f"particle_radius_px={radius:.1f}",
        "-E",
        f"smoothing_px={0.3 * radius:.1f}",
    ]


class _Truth:
    """Collects ground truth from the simulated camera (positions are NaN when out of view).

    A particle is *clean* in a frame when it is wholly in view and no other particle lies within
    ``contact_px``: its centroid error is then the tracker's alone.
    """

    def __init__(self, contact_px: float) -> None:
        self.contact_px = contact_px
        self.positions: list[npt.NDArray[np.float64]] = []
        self.clean: list[npt.NDArray[np.bool_]] = []
        self.tables: list[pd.DataFrame] = []
        self.last: SimFrame | None = None

    def __call__(self, frame: SimFrame) -> None:
        t = frame.truth
        xy = np.column_stack([t.x, t.y])
        self.positions.append(np.where(t.visible[:, None], xy, np.nan))
        distance = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(distance, np.inf)
        self.clean.append(
            (t.inside_fraction >= 0.999) & (distance.min(axis=1, initial=np.inf) > self.contact_px)
        )
        self.tables.append(truth_table(frame))
        self.last = frame


def run_demo(args: argparse.Namespace) -> int:
    demo = Demo(args, args.out or Path(time.strftime("lptem-demo-%Y%m%d-%H%M%S")))
    print(demo.describe())
    with DaemonProcess(
        *engine_arguments(args, demo.out / "record"), log_file=demo.out / "daemon.log"
    ) as daemon:
        print(f"daemon: results at {daemon.publish}, control at {daemon.control} (attach e.g. "
              f"lptem bench latency --publish {daemon.publish})", flush=True)  # fmt: skip
        with Subscriber(daemon.publish, topics=("track", "msd")) as subscriber:
            subscriber.on("track", demo.view.on_track)
            subscriber.on("msd", demo.view.on_msd)
            subscriber.wait_connected(10.0)
            subscriber.start()
            demo.stream(daemon.ingest)
            demo.wait_for_results()
        exit_code = daemon.stop()
    report = demo.report(read_record(demo.out / "record"), exit_code)
    print(format_report(report))
    return 0 if exit_code == 0 else 1


class Demo:
    """One demo run: the simulator, the ground truth it produced, the live view, the output folder."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args = args
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.n_frames = max(1, round(args.seconds * args.fps))
        self.simulator = simulator_for(args)
        self.truth = _Truth(contact_px=CONTACT * args.width_nm / args.pixel_size_nm)
        self.view = LiveView(args.pixel_size_nm)

    def describe(self) -> str:
        a = self.args
        return (
            f"lptem demo: {a.particles} gold particles of {a.width_nm:g} nm in {a.liquid_nm:g} nm of liquid,"
            f" {a.size}x{a.size} px at {a.pixel_size_nm:g} nm/px, {self.n_frames} frames at {a.fps:g} fps;"
            f" results in {self.out}/"
        )

    def stream(self, endpoint: str) -> None:
        """Run the simulated camera at its frame rate while the live view redraws."""
        stop = threading.Event()
        series = f"demo-{self.args.seed}"
        with FrameSender(endpoint, pixel_size_nm=self.args.pixel_size_nm, series=series) as sender:
            camera = SimulatedCamera(self.simulator, sender, self.args.fps)
            ticker = threading.Thread(target=self.view.run, args=(stop, self.n_frames), daemon=True)
            ticker.start()
            camera.run(self.n_frames, stop, on_frame=self._on_frame)
            stop.set()
            ticker.join()

    def _on_frame(self, frame: SimFrame) -> None:
        self.truth(frame)
        self.view.sent()

    def wait_for_results(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = -1
        while time.monotonic() < deadline:
            done = self.view.frames_received
            if done >= self.n_frames or done == last:  # everything arrived, or nothing more is coming
                return
            last = done
            time.sleep(0.5)

    def report(self, record: Record, exit_code: int) -> dict[str, Any]:
        """Score the record, write report.json, truth.csv and the figures; return the report."""
        report = self._score(record, exit_code)
        pd.concat(self.truth.tables, ignore_index=True).to_csv(self.out / "truth.csv", index=False)
        if not self.args.no_figures:
            from lptem.clients.demo.figures import write_figures  # noqa: PLC0415 - matplotlib only when needed

            positions = np.array(self.truth.positions)
            report["figures"] = write_figures(self.out, record, positions, self.truth.last, report)
        (self.out / "report.json").write_text(json.dumps(report, indent=1))
        return report

    def _score(self, record: Record, exit_code: int) -> dict[str, Any]:
        args = self.args
        seen = record.tracks[record.tracks["visible"]]
        scores = score_tracks(
            seen["frame"].to_numpy(),
            seen["particle"].to_numpy(),
            seen[["x", "y"]].to_numpy(),
            np.array(self.truth.positions),
            max_distance_px=args.width_nm / args.pixel_size_nm / 2,
            contact=Contact(self.truth.contact_px),
            clean=np.array(self.truth.clean),
        )
        derived = self.simulator.metadata()["derived"]
        objects = [self._object_entry(s, seen[seen["particle"] == s.id]) for s in scores]
        latencies = np.array(self.view.latencies_s) * 1e3
        dropped = int(record.frames["dropped_total"].max()) if len(record.frames) else 0
        sent = len(self.truth.positions)
        return {
            "frames_sent": sent,
            "frames_processed": len(record.frames),
            "frames_dropped": dropped,
            "frames_lost_other": sent - len(record.frames) - dropped,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies.size else None,
            "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else None,
            "pixel_size_nm": args.pixel_size_nm,
            "liquid_nm": args.liquid_nm,
            "particle_width_nm": args.width_nm,
            "particles_true": args.particles,
            "D_true_nm2_per_s": derived["diffusion_nm2_per_s_alpha"],
            "alpha_true": derived["alpha"],
            "objects_tracked": len(objects),
            "objects": objects,
            "identity_switches": sum(o["identity_switches"] for o in objects),
            "switches_separated": sum(o["switches_separated"] for o in objects),
            "daemon_exit_code": exit_code,
            "record": str(self.out / "record"),
            "simulator": self.simulator.metadata(),
        }

    def _object_entry(self, s: ObjectScore, rows: pd.DataFrame) -> dict[str, Any]:
        pixel = self.args.pixel_size_nm
        _, dense = positions_by_frame(rows["frame"], rows[["x", "y"]].to_numpy() * pixel)
        fit = fit_power_law(msd(dense, 20), 1.0 / self.args.fps)
        return {
            "id": s.id,
            "truth": s.truth,
            "frames": s.frames,
            "matched_frames": s.matched_frames,
            "rmse_px": s.rmse_px,
            "rmse_nm": s.rmse_px * pixel,
            "max_error_px": s.max_error_px,
            "clean_frames": s.clean_frames,
            "rmse_clean_px": s.rmse_clean_px,
            "identity_switches": s.identity_switches,
            "switches_separated": s.switches_separated,
            "D_nm2_per_s": fit.diffusion,
            "alpha": fit.alpha,
            "fit_lags": fit.lags_used,
            "fit_note": fit.reason,
        }


def format_report(r: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} ms"

    lines = [
        "",
        "== lptem demo report ==",
        f"frames     sent {r['frames_sent']}  processed {r['frames_processed']}"
        f"  dropped {r['frames_dropped']}  lost otherwise {r['frames_lost_other']}",
        f"latency    camera->subscriber p50 {ms(r['latency_ms_p50'])}  p99 {ms(r['latency_ms_p99'])}",
        f"objects    {r['objects_tracked']} tracked for {r['particles_true']} true particles;"
        f" identity switches {r['identity_switches']}"
        f" ({r['switches_separated']} while the particles were apart)",
        f"diffusion  true D {r['D_true_nm2_per_s']:.1f} nm²/s, alpha {r['alpha_true']:g}",
        "RMSE over all matched frames, and over clean ones (wholly in view, touching no other particle)",
        f"{'id':>4} {'truth':>6} {'frames':>7} {'RMSE/px':>8} {'RMSE/nm':>8} {'clean/px':>9} {'max/px':>7}"
        f" {'switches':>8} {'D/(nm²/s)':>10} {'alpha':>6}",
    ]
    for o in r["objects"]:
        lines.append(
            f"{o['id']:>4} {o['truth']:>6} {o['frames']:>7} {o['rmse_px']:8.3f} {o['rmse_nm']:8.3f} "
            f"{o['rmse_clean_px']:9.3f} {o['max_error_px']:7.2f} {o['identity_switches']:>8}"
            f" {o['D_nm2_per_s']:10.1f} {o['alpha']:6.2f}"
        )
    lines.append(f"record and exports: {r['record']}/")
    if r.get("figures"):
        lines.append("figures: " + ", ".join(r["figures"]))
    return "\n".join(lines)
