"""Send a Gatan camera's frames from DigitalMicrograph to ``lptem serve`` (wire protocol v1).

Runs inside DigitalMicrograph's Python (GMS 3.4 or later), on its own: it needs numpy (GMS has it), pyzmq
and msgpack (``pip install pyzmq msgpack`` in GMS's Python environment), not lptem. Set-up, step by step,
in docs/instruments.md; in short: edit ``SETTINGS`` below, open this file in DigitalMicrograph, tick
"Execute on background thread", and press Execute.

The script starts the active camera's continuous acquisition (the camera manager's own loop, as in
Gatan's examples), takes each frame as it completes, and sends it with its pixel size (the image's x
calibration, converted to nm) and exposure (the acquisition tag, else the exposure asked for). Only the
``DigitalMicrograph`` calls in ``stream_camera`` touch DigitalMicrograph; everything else is plain Python,
tested against a stand-in module with the same calls (tests/clients/camera/test_dm_sender.py).

Written for Python 3.7 and later (no newer syntax), because GMS ships its own Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import zmq

PROTOCOL_VERSION = 1


@dataclass
class Settings:
    endpoint: str = "tcp://127.0.0.1:5555"
    """lptem serve's ingest address as seen from the DigitalMicrograph PC."""
    exposure_s: float = 0.025
    """Exposure per frame, s (the camera's frame time in continuous acquisition)."""
    binning: int = 1
    processing: int = 1
    """The processing argument of the camera calls (the value Gatan's example script passes; DM's Python
    help lists the values your camera takes: unprocessed, dark subtracted, gain normalised)."""
    frames: int = 0
    """Stop after this many frames (0: until duration_s)."""
    duration_s: float = 3600.0
    """Stop after this long, s."""
    series: str = "digitalmicrograph"
    frame_wait_s: float = 5.0
    """Longest wait for one frame; after 3 such waits in a row the script stops (the camera has gone)."""
    send_timeout_s: float = 10.0
    """Longest wait for lptem serve to take a frame (it applies backpressure); then the script stops."""
    key_file: str = ""
    """CURVE, for a daemon on another machine (lptem serve --keys): this camera's NAME.key_secret from
    ``lptem keys add DIR NAME --role camera``; with ``server_key_file``, the daemon's server.key."""
    server_key_file: str = ""


SETTINGS = Settings(endpoint="tcp://127.0.0.1:5555", exposure_s=0.025)

LENGTH_NM = {"nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "pm": 1e-3, "Å": 0.1, "A": 0.1}
"""Length units DigitalMicrograph calibrates images in -> nm."""
EXPOSURE_TAG = "Acquisition:Parameters:High Level:Exposure (s)"


def unit_text(unit: Any) -> str:
    """DigitalMicrograph may give a unit as bytes in its own code page (µm as b'\\xb5m')."""
    if isinstance(unit, bytes):
        return unit.decode("latin-1")
    return str(unit)


def pixel_size_nm(image: Any) -> float | None:
    """The image's x pixel size in nm, or None when it is not calibrated in a length."""
    _origin, scale, unit = image.GetDimensionCalibration(0, 0)
    factor = LENGTH_NM.get(unit_text(unit).strip())
    if factor is None or not scale or not np.isfinite(scale) or scale <= 0:
        return None
    return float(scale) * factor


def exposure_s(image: Any, asked_s: float) -> float:
    found, value = image.GetTagGroup().GetTagAsFloat(EXPOSURE_TAG)
    return float(value) if found and value > 0 else asked_s


def wire_pixels(array: np.ndarray) -> np.ndarray:
    """A copy in a dtype protocol v1 carries (uint8, uint16, float32), little-endian and C-ordered; the
    copy matters: DigitalMicrograph's array is the image's own memory, overwritten by the next frame."""
    if array.dtype.name in ("uint8", "uint16", "float32"):  # any byte order
        return np.array(array, dtype=array.dtype.newbyteorder("<"), order="C", copy=True)
    return np.array(array, dtype="<f4", order="C", copy=True)


class WireSender:
    """Wire protocol v1 over a ZeroMQ PUSH socket (docs/protocol.md §2)."""

    def __init__(
        self, endpoint: str, series: str, send_timeout_s: float, key_file: str = "", server_key_file: str = ""
    ) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        if key_file or server_key_file:
            _use_curve(self._socket, key_file, server_key_file)
        # Queue a few frames at most (a 4k frame is 32 MiB of DigitalMicrograph's memory), and none while
        # no daemon is connected: a send then waits, and after send_timeout_s the script stops.
        self._socket.setsockopt(zmq.SNDHWM, 4)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.LINGER, 2000)
        self._socket.setsockopt(zmq.SNDTIMEO, int(send_timeout_s * 1000))
        self._socket.connect(endpoint)
        self.series = series
        self.sent = 0

    def _pack(self, message: dict[str, Any]) -> bytes:
        data: bytes = msgpack.packb(message, use_bin_type=True)
        return data

    def start(self, **meta: Any) -> None:
        self._socket.send(self._pack({"v": PROTOCOL_VERSION, "type": "start", "series": self.series, **meta}))

    def send(self, pixels: np.ndarray, t_ns: int, pixel_nm: float | None, exposure: float | None) -> None:
        header: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "type": "frame",
            "frame": self.sent,
            "t_ns": t_ns,
            "shape": [int(pixels.shape[0]), int(pixels.shape[1])],
            "dtype": str(pixels.dtype.name),
            "series": self.series,
        }
        if pixel_nm is not None:
            header["pixel_size_nm"] = pixel_nm
        if exposure is not None:
            header["exposure_s"] = exposure
        self._socket.send_multipart([self._pack(header), pixels.data])
        self.sent += 1

    def end(self) -> None:
        self._socket.send(self._pack({"v": PROTOCOL_VERSION, "type": "end", "series": self.series}))

    def close(self) -> None:
        self._socket.close()
        self._context.term()


def _use_curve(socket: zmq.Socket[bytes], key_file: str, server_key_file: str) -> None:
    """Make ``socket`` a CURVE client with lptem's key files (ZeroMQ certificates)."""
    import zmq.auth  # noqa: PLC0415 - only with keys

    public, secret = zmq.auth.load_certificate(key_file)
    if secret is None:
        raise ValueError(f"{key_file} holds no secret key: give the .key_secret file, not the .key")
    server, _ = zmq.auth.load_certificate(server_key_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server


def stream_camera(dm: Any, settings: Settings, sender: WireSender, log: Callable[[str], None] = print) -> int:
    """Run the active camera continuously and send every frame until ``frames`` or ``duration_s``;
    returns how many were sent. ``dm`` is the DigitalMicrograph module."""
    camera = dm.GetActiveCamera()
    b, processing = settings.binning, settings.processing
    image = camera.CreateImageForAcquire(b, b, processing)
    camera.StartContinuousAcquisition(settings.exposure_s, b, b, processing)
    end = time.monotonic() + settings.duration_s
    missed = 0
    warned = False
    try:
        while time.monotonic() < end and not (settings.frames and sender.sent >= settings.frames):
            if not camera.GetFrameInContinuousMode(image, settings.frame_wait_s):
                missed += 1
                log(f"lptem: no frame from the camera within {settings.frame_wait_s} s ({missed} of 3)")
                if missed >= 3:
                    break
                continue
            missed = 0
            t_ns = time.time_ns()
            pixel_nm = pixel_size_nm(image)
            if pixel_nm is None and not warned:
                warned = True
                log("lptem: the camera image has no length calibration: frames go without a pixel size")
            pixels = wire_pixels(image.GetNumArray())
            sender.send(pixels, t_ns, pixel_nm, exposure_s(image, settings.exposure_s))
    finally:
        camera.StopContinuousAcquisition()
    return sender.sent


def main(dm: Any, settings: Settings = SETTINGS, log: Callable[[str], None] = print) -> int:
    """Stream to lptem serve; returns the number of frames sent."""
    sender = WireSender(
        settings.endpoint,
        settings.series,
        settings.send_timeout_s,
        settings.key_file,
        settings.server_key_file,
    )
    try:
        sender.start(source="DigitalMicrograph", exposure_s=settings.exposure_s, binning=settings.binning)
        log(f"lptem: streaming the active camera to {settings.endpoint}")
        stream_camera(dm, settings, sender, log)
        sender.end()
    except zmq.Again:
        log(f"lptem: {settings.endpoint} took nothing for {settings.send_timeout_s} s: stopped")
    finally:
        sender.close()
    log(f"lptem: sent {sender.sent} frames")
    return sender.sent


def _digitalmicrograph() -> Any:
    try:
        import DigitalMicrograph  # type: ignore[import-not-found]  # noqa: PLC0415 - exists only inside DM
    except ImportError:
        return None
    return DigitalMicrograph


_DM = _digitalmicrograph()
if _DM is not None:  # run as a script inside DigitalMicrograph
    main(_DM)
