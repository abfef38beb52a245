"""The daemon: wires ingest -> mailbox -> engine -> publisher (-> record) and the control socket.

Four threads, each owning its socket: ingest (receive + validate), engine (the tracker), publisher
(encode + send + record), control (REP). Throughput is set by the slowest stage, not their sum.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zmq

from lptem.engine.registry import create_tracker
from lptem.service.auth import Gatekeeper
from lptem.service.control import ControlServer
from lptem.service.engine_loop import EngineLoop
from lptem.service.health import Health
from lptem.service.ingest import Ingest
from lptem.service.keys import KeyFolder
from lptem.service.mailbox import Mailbox, Policy
from lptem.service.metrics_http import operators_registry, start_metrics_server, tls_context
from lptem.service.protocol import (
    DEFAULT_CONTROL,
    DEFAULT_INGEST,
    DEFAULT_PREVIEW,
    DEFAULT_PUBLISH,
    SeriesMarker,
    StatusMessage,
)
from lptem.service.protocol.curve import KeyFileError, is_loopback
from lptem.service.publisher import Publisher
from lptem.service.record import RecordWriter
from lptem.service.statistics import MsdSettings
from lptem.service.stats import DaemonCollector, Stats
from lptem.service.versions import versions

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9105


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    ingest: str = DEFAULT_INGEST
    """PULL endpoint to bind, or (``ingest_connect``) a camera PUB endpoint to connect a SUB to."""
    ingest_connect: bool = False
    publish: str = DEFAULT_PUBLISH
    preview: str | None = DEFAULT_PREVIEW
    """PUB socket of the preview topic (None: no previews are published)."""
    control: str = DEFAULT_CONTROL
    metrics_port: int = 0
    """Prometheus HTTP port; 0 = off."""
    metrics_addr: str = "127.0.0.1"
    metrics_tls: MetricsTls | None = None
    """HTTPS (and client certificates) for the metrics server."""
    engine: str = "classical"
    engine_options: dict[str, str] = field(default_factory=dict)
    auto_detect: bool | None = None
    """Override the engine's auto-detect setting (None keeps its default)."""
    policy: Policy = Policy.LATEST
    queue_capacity: int | None = None
    """Frames waiting for the engine; default 2 for ``latest``, 64 for ``queue``."""
    record: Path | None = None
    pixel_size_nm: float | None = None
    """Used when frames and their series carry none."""
    preview_hz: float = 10.0
    preview_max_side: int = 256
    status_interval_s: float = 1.0
    msd: MsdSettings = field(default_factory=MsdSettings)
    keys: Path | None = None
    """Key folder (lptem.service.keys): CURVE on every socket, clients checked by role. None: no CURVE."""
    insecure: bool = False
    """Allow sockets or metrics reachable from the network without CURVE (logged, and said in status)."""
    ready_max_silence_s: float | None = None
    """``/readyz`` fails when no frame arrived for this long (None: frames are not required)."""


@dataclass(frozen=True, slots=True)
class MetricsTls:
    """The metrics server over HTTPS: its certificate and key (PEM), and the CA whose client
    certificates it requires (None: any client may scrape, encrypted)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def authenticates(self) -> bool:
        return self.client_ca is not None


class InsecureBindError(ValueError):
    """A socket would be reachable from the network without authentication; the message says what to do."""


def exposure(config: DaemonConfig) -> list[str]:
    """The endpoints (and metrics address) of ``config`` that other machines can reach."""
    endpoints = {"ingest": config.ingest, "publish": config.publish, "control": config.control}
    if config.preview is not None:
        endpoints["preview"] = config.preview
    out = [f"{name} {endpoint}" for name, endpoint in endpoints.items() if not is_loopback(endpoint)]
    remote = not is_loopback(f"tcp://{config.metrics_addr}:{config.metrics_port}")
    authenticated = config.metrics_tls is not None and config.metrics_tls.authenticates
    if config.metrics_port and remote and not authenticated:
        out.append(f"metrics {config.metrics_addr}:{config.metrics_port}")
    return out


def check_exposure(config: DaemonConfig) -> None:
    """Refuse what would be open to the network unauthenticated, unless ``insecure`` says so."""
    exposed = exposure(config)
    if config.keys is not None:
        if config.ingest_connect:
            raise InsecureBindError("CURVE for --ingest-connect is not supported: bind --ingest instead")
        exposed = [e for e in exposed if e.startswith("metrics")]  # the sockets are CURVE'd
    if exposed and not config.insecure:
        metrics = any(e.startswith("metrics") for e in exposed)
        raise InsecureBindError(
            f"{', '.join(exposed)}: reachable from other machines without authentication. Give --keys "
            "DIR (lptem keys init DIR; docs/security.md), bind to 127.0.0.1, or pass --insecure to accept "
            "the risk"
            + (
                " (metrics: or give --metrics-tls-cert, --metrics-tls-key and --metrics-client-ca)"
                if metrics
                else ""
            )
        )


class Daemon:
    """Build with a config, ``start()``, later ``stop()`` (idempotent). Endpoints are the bound ones."""

    def __init__(self, config: DaemonConfig) -> None:
        check_exposure(config)
        self.config = config
        self.started_ns = time.time_ns()
        self.tracker = create_tracker(config.engine, config.engine_options)
        if config.auto_detect is not None:
            self.tracker.set_auto_detect(config.auto_detect)
        capacity = config.queue_capacity or (2 if config.policy is Policy.LATEST else 64)
        self.stats = Stats()
        self.mailbox = Mailbox(config.policy, capacity)
        self.recorder: RecordWriter | None = None
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._closed = False
        self._metrics_server: Any = None
        self.gatekeeper: Gatekeeper | None = None
        try:
            if config.keys is not None:
                self.gatekeeper = Gatekeeper(self._context, KeyFolder(config.keys), self.stats)
            self.publisher = Publisher(
                self._context,
                config.publish,
                self.status,
                None,
                preview_endpoint=config.preview,
                status_interval_s=config.status_interval_s,
                gatekeeper=self.gatekeeper,
            )
            self.engine = EngineLoop(
                self.tracker,
                self.mailbox,
                self.stats,
                self.publisher.publish,
                self.publisher.record_event,
                preview_hz=config.preview_hz if config.preview is not None else 0.0,
                preview_max_side=config.preview_max_side,
                msd=config.msd,
            )
            self.control = ControlServer(
                self._context,
                config.control,
                self.mailbox,
                self.stats,
                self.status,
                gatekeeper=self.gatekeeper,
            )
            self.ingest = Ingest(
                self._context,
                config.ingest,
                connect=config.ingest_connect,
                mailbox=self.mailbox,
                stats=self.stats,
                default_pixel_size_nm=config.pixel_size_nm,
                on_marker=self._on_marker,
                gatekeeper=self.gatekeeper,
            )
            self.health = Health(
                {
                    "ingest": lambda: self.ingest.alive,
                    "engine": lambda: self.engine.alive,
                    "publisher": lambda: self.publisher.alive,
                    "control": lambda: self.control.alive,
                },
                self.stats,
                lambda: self.mailbox.depth,
                max_silence_s=config.ready_max_silence_s,
            )
            if config.metrics_port:
                self._metrics_server = self._serve_metrics()
            if config.record is not None:  # only once everything is bound: a failed start leaves no record
                self.recorder = RecordWriter(config.record, self._session_meta())
                self.publisher.record_to(self.recorder)
        except (zmq.ZMQError, KeyFileError, OSError):  # OSError: also a taken metrics port or a bad PEM file
            self._close_metrics()
            if self.gatekeeper is not None:
                self.gatekeeper.close()
            self._context.destroy(linger=0)
            raise

    @property
    def endpoints(self) -> dict[str, Any]:
        return {
            "ingest": self.ingest.endpoint,
            "publish": self.publisher.endpoint,
            "preview": self.publisher.preview_endpoint,
            "control": self.control.endpoint,
            "metrics_port": self.config.metrics_port or None,
        }

    def _serve_metrics(self) -> Any:
        tls = self.config.metrics_tls
        context = tls_context(tls.cert, tls.key, tls.client_ca) if tls is not None else None
        collector = DaemonCollector(
            self.stats,
            lambda: self.mailbox.depth,
            self._n_objects,
            self._record_health,
            ready=lambda: self.health.ready().ok,
            frame_age_s=self.health.frame_age_s,
        )
        registry = operators_registry(collector, self.build_info)
        return start_metrics_server(
            self.config.metrics_port, self.config.metrics_addr, registry, context, self.health
        )

    @property
    def build_info(self) -> dict[str, str]:
        """Version, engine, backend and model (labels of lptem_build_info)."""
        options = self.config.engine_options
        sam2 = self.config.engine == "sam2"
        return {
            "version": versions().get("lptem-live", "unknown"),
            "engine": self.config.engine,
            "backend": options.get("backend", "torch") if sam2 else "cpu",
            "model": options.get("model", "") if sam2 else "",
        }

    def _close_metrics(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    def start(self) -> None:
        self.publisher.start()
        self.engine.start()
        self.control.start()
        self.ingest.start()
        self.health.started()
        log.info("lptem daemon up: %s", self.endpoints)
        if self.config.insecure and exposure(self.config):
            log.warning("%s", self.security_warning)

    @property
    def security_warning(self) -> str | None:
        """What ``--insecure`` left open (said at start and in every status), None when nothing."""
        if not self.config.insecure:
            return None
        exposed = exposure(self.config)
        if self.gatekeeper is not None:
            exposed = [e for e in exposed if e.startswith("metrics")]
        return (
            f"insecure: {', '.join(exposed)} reachable from the network without authentication"
            if exposed
            else None
        )

    def reload_keys(self) -> list[str]:
        """Read the key folder again (SIGHUP); returns the names of keys no longer authorised."""
        return self.gatekeeper.reload() if self.gatekeeper is not None else []

    def stop(self) -> None:
        """Stop receiving, finish the frame in flight, publish and record what is done, close."""
        if self._closed:
            return
        self._closed = True
        self.ingest.request_stop()
        waiting, commands = self.mailbox.close()  # also releases an ingest blocked on a full queue
        self.ingest.join()
        for item in waiting:
            item.release()
        if waiting:
            self.stats.frames_dropped(len(waiting))
            log.info("%d queued frames discarded at shutdown", len(waiting))
        for pending in commands:
            pending.reply.set_result({"ok": False, "error": "the daemon is shutting down"})
        self.engine.stop()
        self.control.stop()
        self.publisher.stop()
        if self.recorder is not None:
            self.recorder.close()
            self._export(self.recorder)
        self._close_metrics()
        if self.gatekeeper is not None:
            self.gatekeeper.close()
        self._context.term()
        log.info("lptem daemon stopped: %d frames processed", self.stats.processed)

    def status(self) -> StatusMessage:
        s = self.stats
        fps_in, fps_out = s.rates()
        p50, p99 = s.latency_percentiles_ms()
        return StatusMessage(
            t_ns=time.time_ns(),
            started_ns=self.started_ns,
            engine=self.tracker.name,
            policy=self.config.policy.value,
            frames_received=s.received,
            frames_processed=s.processed,
            frames_dropped=s.dropped,
            frames_rejected=dict(s.rejected),
            frames_missed_upstream=s.missed_upstream,
            series_restarts=s.series_restarts,
            queue_depth=self.mailbox.depth,
            fps_in=fps_in,
            fps_out=fps_out,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            objects=list(self.engine.object_ids),
            auto_detect=self.engine.auto_detect,
            last_frame=s.last_frame,
            pixel_size_nm=self.engine.pixel_size_nm or self.config.pixel_size_nm,
            version=versions().get("lptem-live", "unknown"),
            extra={
                "engine_errors": s.engine_errors,
                "control_errors": s.control_errors,
                "msd": asdict(self.engine.statistics.settings),
                "engine_settings": self.engine.tracker_settings,
                "security": self._security(),
                **({"record": health} if (health := self._record_health()) is not None else {}),
            },
            diffusion=list(self.engine.statistics.summary),
        )

    def _record_health(self) -> dict[str, Any] | None:
        return asdict(self.recorder.health) if self.recorder is not None else None

    @staticmethod
    def _export(recorder: RecordWriter) -> None:
        """The record's exports; a disk that refuses them costs the exports, not a clean exit."""
        # pyarrow is imported only when a record is exported: a daemon that does not record runs without
        # it (the GPU check's machine has no pyarrow, and its wheel alone would exceed the 64 MiB it takes).
        from lptem.service.exports import export_record  # noqa: PLC0415

        try:
            export_record(recorder.directory)
        except OSError as exc:
            log.warning(
                "could not write the exports of %s: %s (the record itself is kept)", recorder.directory, exc
            )

    def _security(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "curve": self.gatekeeper is not None,
            "auth_failures": dict(self.stats.auth_failures),
        }
        if (warning := self.security_warning) is not None:
            out["warning"] = warning
        return out

    def _n_objects(self) -> int:
        return len(self.engine.object_ids)

    def _on_marker(self, marker: SeriesMarker, epoch: int) -> None:
        self.publisher.record_event(
            {"event": marker.kind, "series": marker.series, "epoch": epoch, "meta": marker.meta}
        )

    def _session_meta(self) -> dict[str, Any]:
        c = self.config
        return {
            "started_ns": self.started_ns,
            "engine": c.engine,
            "engine_options": c.engine_options,
            "policy": c.policy.value,
            "pixel_size_nm": c.pixel_size_nm,
            "argv": sys.argv,
            "versions": versions(),
        }
