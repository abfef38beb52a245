"""Engine thread: the only thread that touches the tracker. Serves commands between frames."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lptem.engine.api import ObjectInfo, ObjectResult, PromptError, StepResult, Tracker, UnknownObjectError
from lptem.service.logutil import RateLimitedLog
from lptem.service.mailbox import Mailbox, PendingCommand, QueuedFrame
from lptem.service.protocol import (
    MAX_OBJECTS,
    TOPIC_MSD,
    TOPIC_PREVIEW,
    TOPIC_TRACK,
    AddObject,
    Command,
    CommandError,
    ListObjects,
    PreviewMessage,
    RejectReason,
    RemoveObject,
    Reset,
    SetAutoDetect,
    SetMsd,
    TrackedObject,
    TrackMessage,
)
from lptem.service.statistics import LiveStatistics, MsdSettings, MsdSettingsError
from lptem.service.stats import Stats

log = logging.getLogger(__name__)

Publish = Callable[[bytes, Any], None]
"""Hands a message to the publisher thread: (topic, message)."""
RecordEvent = Callable[[dict[str, Any]], None]


class EngineLoop:
    """Runs ``tracker.step`` on each frame from the mailbox and applies control commands in between."""

    def __init__(
        self,
        tracker: Tracker,
        mailbox: Mailbox,
        stats: Stats,
        publish: Publish,
        record_event: RecordEvent,
        *,
        preview_hz: float = 10.0,
        preview_max_side: int = 256,
        msd: MsdSettings | None = None,
    ) -> None:
        self.tracker = tracker
        self._mailbox = mailbox
        self._stats = stats
        self._publish = publish
        self._record_event = record_event
        self._preview_interval_s = 1.0 / preview_hz if preview_hz > 0 else math.inf
        self._preview_max_side = preview_max_side
        self.statistics = LiveStatistics(msd)
        self._next_preview = 0.0
        self._last_frame: int | None = None
        self._dropped_total = 0
        self._torn = RateLimitedLog(log)
        # Snapshots for other threads (status, metrics); replaced whole, never mutated.
        self.object_ids: tuple[int, ...] = tuple(o.id for o in tracker.objects())
        self.auto_detect = tracker.auto_detect
        self.tracker_settings: dict[str, Any] = tracker.settings()
        self.pixel_size_nm: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lptem-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread runs (after start(), until stopped)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Finish the frame in flight, then return."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._mailbox.get(timeout=0.1)
            if isinstance(item, PendingCommand):
                if item.reply.set_running_or_notify_cancel():  # False: the client gave up waiting
                    item.reply.set_result(self.apply(item.command))
            elif item is not None:
                self._process(item)

    # ------------------------------------------------------------------ frames
    def _process(self, item: QueuedFrame) -> None:
        now = time.monotonic()
        want_preview = now >= self._next_preview
        self._dropped_total += item.dropped_before
        try:
            result = self.tracker.step(item.frame.pixels, want_labels=want_preview)
            labels = result.labels if want_preview else None
            preview = self._preview(item, labels) if labels is not None else None
        except Exception:  # an engine bug must not take the daemon down; the frame is counted and logged
            item.release()
            self._stats.engine_failed()
            log.exception("engine failed on frame %d; frame skipped", item.frame.frame)
            return
        if not item.release():  # every read of the pixels is done by now
            self._stats.frame_rejected(RejectReason.TORN)
            self._torn.warning(
                f"frame {item.frame.frame}: its shared-memory slot was rewritten while the engine read it "
                "(a camera that did not wait for the release); result discarded"
            )
            return
        t_done_ns = time.time_ns()
        self._last_frame = item.frame.frame
        self.object_ids = tuple(o.id for o in result.objects)
        self.tracker_settings = self.tracker.settings()
        self.pixel_size_nm = item.pixel_size_nm
        self._stats.frame_processed(item.frame.frame, item.frame.t_ns, (t_done_ns - item.t_recv_ns) / 1e9)
        track = self._track_message(item, result, t_done_ns)
        self._publish(TOPIC_TRACK, track)
        self.statistics.add(track)
        if self.statistics.due():
            self._publish(TOPIC_MSD, self.statistics.message(track))
        for obj_id in result.added_ids:
            self._record_event({"event": "auto_add", "id": obj_id, "frame": item.frame.frame})
        for obj_id in result.removed_ids:
            self._record_event({"event": "auto_remove", "id": obj_id, "frame": item.frame.frame})
        if preview is not None:
            self._next_preview = now + self._preview_interval_s
            self._publish(TOPIC_PREVIEW, preview)

    def _track_message(self, item: QueuedFrame, result: StepResult, t_done_ns: int) -> TrackMessage:
        scale = item.pixel_size_nm
        return TrackMessage(
            frame=item.frame.frame,
            epoch=item.epoch,
            t_ns=item.frame.t_ns,
            t_recv_ns=item.t_recv_ns,
            t_done_ns=t_done_ns,
            engine=self.tracker.name,
            dropped_total=self._dropped_total,
            objects=tuple(_wire_object(o, scale) for o in result.objects),
            pixel_size_nm=scale,
            series=item.series,
            shape=(int(item.frame.pixels.shape[0]), int(item.frame.pixels.shape[1])),
        )

    def _preview(self, item: QueuedFrame, labels: npt.NDArray[np.uint16]) -> PreviewMessage:
        pixels = item.frame.pixels
        rows, cols = pixels.shape
        scale = max(1, math.ceil(max(rows, cols) / self._preview_max_side))
        out_rows, out_cols = max(1, rows // scale), max(1, cols // scale)
        crop = pixels[: out_rows * scale, : out_cols * scale].astype(np.float32)
        image = np.asarray(cv2.resize(crop, (out_cols, out_rows), interpolation=cv2.INTER_AREA), np.float32)
        small_labels = np.ascontiguousarray(labels[: out_rows * scale : scale, : out_cols * scale : scale])
        return PreviewMessage(item.frame.frame, item.frame.t_ns, scale, image, small_labels)

    # ------------------------------------------------------------------ commands
    def apply(self, command: Command) -> dict[str, Any]:
        """Execute a parsed command on the tracker; errors leave the tracker unchanged."""
        try:
            reply = self._dispatch(command)
        except (PromptError, UnknownObjectError, CommandError, MsdSettingsError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # an engine bug: answer the client, keep the daemon up, log the trace
            log.exception("engine failed on command %s", command.NAME)
            return {"ok": False, "error": f"internal error in the engine: {exc!r}"}
        if command.CHANGES_STATE:
            event = {"event": command.NAME, "frame": self._last_frame, **command.arguments(), **reply}
            self._record_event(event)
            self.object_ids = tuple(o.id for o in self.tracker.objects())
            self.auto_detect = self.tracker.auto_detect
            self.tracker_settings = self.tracker.settings()
        return {"ok": True, **reply}

    def _dispatch(self, command: Command) -> dict[str, Any]:
        tracker = self.tracker
        match command:
            case AddObject(prompt=prompt, obj_id=obj_id):
                known = {o.id for o in tracker.objects()}
                if obj_id not in known and len(known) >= MAX_OBJECTS:
                    raise CommandError(
                        f"already tracking {len(known)} objects, the most allowed ({MAX_OBJECTS})"
                    )
                new_id = tracker.add_object(prompt, obj_id)
                return {"id": new_id, "corrected": new_id in known}
            case RemoveObject(obj_id=obj_id):
                tracker.remove_object(obj_id)
                return {"id": obj_id}
            case ListObjects():
                return {"objects": [_object_info(o) for o in tracker.objects()]}
            case Reset():
                tracker.reset()
                return {}
            case SetAutoDetect(enabled=enabled):
                tracker.set_auto_detect(enabled)
                return {"auto_detect": enabled}
            case SetMsd(changes=changes):
                settings = MsdSettings(**{**asdict(self.statistics.settings), **changes})  # validates
                self.statistics.reconfigure(settings)
                return {"msd": asdict(settings)}
        raise CommandError(f"command {command.NAME!r} is not handled by the engine")


def _wire_object(o: ObjectResult, pixel_size_nm: float | None) -> TrackedObject:
    """Engine result -> wire object; numbers become Python scalars (msgpack cannot pack numpy's)."""
    x, y = float(o.x), float(o.y)
    bbox = (int(o.bbox[0]), int(o.bbox[1]), int(o.bbox[2]), int(o.bbox[3]))
    x_nm = x * pixel_size_nm if pixel_size_nm is not None else None
    y_nm = y * pixel_size_nm if pixel_size_nm is not None else None
    return TrackedObject(
        int(o.id),
        x,
        y,
        float(o.theta_deg),
        float(o.area_px),
        float(o.score),
        bool(o.visible),
        bbox,
        x_nm,
        y_nm,
    )


def _object_info(info: ObjectInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": info.id,
        "source": info.source,
        "frames_tracked": info.frames_tracked,
        "frames_missing": info.frames_missing,
    }
    if info.last is not None:
        out.update(x=info.last.x, y=info.last.y, visible=info.last.visible)
    return out
