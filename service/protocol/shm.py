"""Shared-memory frames for a camera on the daemon's host: pixels in a ring of slots, headers over ZeroMQ.

The camera creates a ring, a file in ``/dev/shm`` (POSIX shared memory, mode 0600: the daemon must run as
the same user), writes each frame into a slot and sends a one-part v1 frame header whose ``shm`` key names
it: ``{"ring": NAME, "slot": k, "seq": n}`` (docs/protocol.md §2.3). The daemon reads the slot in place
and releases it once the engine is done with the frame (or drops it). Layout, integers little-endian
uint64::

    0                 ring header: magic "LPTEMRG1", version 1, slots, slot bytes, writer pid
    64 + 64 k         slot k: seq (even: complete; odd: being written), released (the seq read)
    data + k × bytes  slot k's pixels (data: the first 4096-byte boundary after the slot headers)

Each slot is a seqlock: the writer makes ``seq`` odd, writes, makes it even (the value the header
carries); the reader checks ``seq`` before the engine reads the slot and again when it releases it. A
slot rewritten before or while it was read (a camera that did not wait for the release, or one that
restarted) shows a different ``seq`` and the frame is rejected as ``torn``: not processed, or its result
discarded. The writer waits for a slot's release, and takes it back after
``reclaim_s`` (a daemon that died holding it). A ring does not outlive its camera (the camera unlinks it
on close; after ``kill -9`` the daemon unlinks it once it sees the writer's pid gone), and it is not tied
to one daemon: a restarted daemon attaches again at the next header.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lptem.service.protocol.codec import is_int

SHM_DIR = Path("/dev/shm")
MAGIC = int.from_bytes(b"LPTEMRG1", "little")
VERSION = 1
HEADER_BYTES = 64
SLOT_HEADER_BYTES = 64
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only; elsewhere pages are faulted in on first use
NAME_PATTERN = re.compile(r"lptem-[0-9]+-[0-9a-f]{8}")
"""Ring names: ``lptem-<writer pid>-<8 hex digits>`` (no path separators: only /dev/shm is ever opened)."""


class RingError(ValueError):
    """A ring that cannot be created, attached or used; the message says why."""


@dataclass(frozen=True, slots=True)
class ShmRef:
    """Where a frame's pixels are: ring, slot, and the slot's sequence number when they were complete."""

    ring: str
    slot: int
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {"ring": self.ring, "slot": self.slot, "seq": self.seq}


def parse_ref(value: Any) -> ShmRef:
    """The header's ``shm`` value; RingError when it is not ``{"ring": str, "slot": int, "seq": int}``."""
    if not isinstance(value, dict) or set(value) != {"ring", "slot", "seq"}:
        raise RingError(f"'shm' must be a map of ring, slot and seq, got {str(value)[:60]!r}")
    ring, slot, seq = value["ring"], value["slot"], value["seq"]
    if not (isinstance(ring, str) and NAME_PATTERN.fullmatch(ring)):
        raise RingError(f"'shm' ring name {str(ring)[:60]!r} is not lptem-<pid>-<8 hex digits>")
    if not (is_int(slot) and slot >= 0 and is_int(seq) and seq > 0 and seq % 2 == 0):
        raise RingError(f"'shm' slot must be >= 0 and seq even and > 0, got slot {slot!r}, seq {seq!r}")
    return ShmRef(ring, slot, seq)


class _Mapping:
    """A ring file mapped into this process, with numpy views on its header, slots and data."""

    def __init__(self, path: Path, fd: int, size: int, *, populate: bool = False) -> None:
        self.path = path
        # Never closed explicitly: every array made from the map refers to it, so it is unmapped when the
        # last of them is gone, never under a frame still in flight (mmap.close() would not wait for them).
        # populate (the writer's): the fresh pages are made here, once, not on a slot's first frame
        # (measured: 25-30 ms more for the first frame into each 32 MiB slot). The reader does not: at
        # its first header it would stall for the whole ring (measured: 150 ms, and dropped frames).
        flags = mmap.MAP_SHARED | (_POPULATE if populate else 0)
        self._map: mmap.mmap | None = mmap.mmap(fd, size, flags=flags)
        self.header: npt.NDArray[np.uint64] = np.ndarray((8,), "<u8", self._map, 0)
        if int(self.header[0]) not in (0, MAGIC):
            self.close()
            raise RingError(f"{path.name} is not an lptem ring")

    def layout(self, slots: int, slot_bytes: int) -> None:
        self.slots: npt.NDArray[np.uint64] = np.ndarray((slots, 8), "<u8", self._map, HEADER_BYTES)
        self.data_offset = _data_offset(slots)
        self.data: npt.NDArray[np.uint8] = np.ndarray(
            (slots, slot_bytes), np.uint8, self._map, self.data_offset
        )

    def close(self) -> None:
        """Let go of the map: unmapped now, or when the last frame in flight that views it is gone."""
        for view in ("header", "slots", "data"):
            if hasattr(self, view):
                delattr(self, view)
        self._map = None


def _data_offset(slots: int) -> int:
    end = HEADER_BYTES + SLOT_HEADER_BYTES * slots
    return (end + 4095) // 4096 * 4096


class RingWriter:
    """The camera's side: ``write`` a frame into the next slot, returning its ShmRef; ``close`` unlinks."""

    def __init__(self, slots: int, slot_bytes: int, *, reclaim_s: float = 1.0) -> None:
        if not (2 <= slots <= 256 and 1 <= slot_bytes <= 2**31):
            raise RingError(f"a ring has 2..256 slots of 1 B..2 GiB, got {slots} × {slot_bytes} B")
        self.name = f"lptem-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = SHM_DIR / self.name
        self.slot_bytes = slot_bytes
        self.reclaim_s = reclaim_s
        self.reclaimed = 0
        """Slots taken back without their release (a daemon that died holding them)."""
        size = _data_offset(slots) + slots * slot_bytes
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            self._ring = _Mapping(self.path, fd, size, populate=True)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        self._ring.layout(slots, slot_bytes)
        self._ring.header[1:5] = (VERSION, slots, slot_bytes, os.getpid())
        self._ring.header[0] = MAGIC  # last: a reader never sees a half-made header as valid
        self._next = 0

    def write(self, frame: npt.NDArray[Any]) -> ShmRef:
        """Copy ``frame`` (C-contiguous after conversion) into the next slot."""
        if frame.nbytes > self.slot_bytes:
            raise RingError(f"a {frame.nbytes} B frame does not fit the ring's {self.slot_bytes} B slots")
        slots = self._ring.slots
        k = self._next % len(slots)
        self._next += 1
        seq = int(slots[k, 0])
        self._wait_released(k, seq)
        slots[k, 0] = seq + 1  # odd: being written
        target = self._ring.data[k, : frame.nbytes].view(frame.dtype).reshape(frame.shape)
        np.copyto(target, frame, casting="no")
        slots[k, 0] = seq + 2
        return ShmRef(self.name, k, seq + 2)

    def _wait_released(self, k: int, seq: int) -> None:
        slots = self._ring.slots
        if seq == 0 or int(slots[k, 1]) >= seq:
            return
        deadline = time.monotonic() + self.reclaim_s
        while int(slots[k, 1]) < seq:
            if time.monotonic() > deadline:
                self.reclaimed += 1  # the reader died holding it: its header, if it comes, reads as torn
                return
            time.sleep(0.0002)

    def close(self, wait_s: float = 0.0) -> None:
        """Unlink the ring, after waiting up to ``wait_s`` for the reader to release every slot."""
        if getattr(self, "_ring", None) is None:
            return
        deadline = time.monotonic() + wait_s
        slots = self._ring.slots
        while time.monotonic() < deadline and bool((slots[:, 1] < slots[:, 0]).any()):
            time.sleep(0.001)
        self._ring.close()
        self._ring = None  # type: ignore[assignment]
        self.path.unlink(missing_ok=True)


class SlotLease:
    """A frame read in place: a read-only view of its slot's pixels, valid until ``release``.

    The writer does not rewrite the slot before the release (unless it gives up waiting after its
    ``reclaim_s``, or breaks the protocol); ``release`` says whether the slot still held the frame, so a
    result computed from pixels rewritten meanwhile is discarded, never published.
    """

    __slots__ = ("_intact", "_seq", "_slot", "pixels")

    def __init__(self, pixels: npt.NDArray[Any], slot: npt.NDArray[np.uint64], seq: int) -> None:
        self.pixels = pixels
        self._slot = slot  # the slot's header row: [seq, released, ...]
        self._seq = seq
        self._intact: bool | None = None

    def release(self) -> bool:
        """Hand the slot back to the writer (once; later calls repeat the answer); whether it was intact."""
        if self._intact is None:
            self._intact = int(self._slot[0]) == self._seq  # checked before the writer may take it back
            self._slot[1] = max(int(self._slot[1]), self._seq)
        return self._intact


class RingReader:
    """The daemon's side: frames read out of rings attached on first use; dead writers' rings unlinked."""

    def __init__(self, max_rings: int = 8) -> None:
        self._rings: dict[str, _Mapping] = {}
        self.max_rings = max_rings
        self.cleaned: list[str] = []
        """Rings unlinked because their writer had died."""

    def borrow(self, ref: ShmRef, dtype: np.dtype[Any], shape: tuple[int, int]) -> SlotLease:
        """The frame in place; RingError (unknown ring, slot out of range, too large) or TornFrame (the
        slot no longer holds ``ref.seq``; it is not released then: it is not this frame's slot any more)."""
        ring = self._attach(ref.ring)
        slots = ring.slots
        if ref.slot >= len(slots):
            raise RingError(f"slot {ref.slot} outside ring {ref.ring}'s 0..{len(slots) - 1}")
        nbytes = shape[0] * shape[1] * dtype.itemsize
        if nbytes > ring.data.shape[1]:
            raise RingError(f"a {nbytes} B frame cannot be in ring {ref.ring}'s {ring.data.shape[1]} B slots")
        seq = int(slots[ref.slot, 0])
        if seq != ref.seq:
            raise TornFrame(f"slot {ref.slot} of {ref.ring} holds seq {seq}, not {ref.seq}: rewritten")
        pixels = ring.data[ref.slot, :nbytes].view(dtype).reshape(shape)
        pixels.flags.writeable = False
        return SlotLease(pixels, slots[ref.slot], ref.seq)

    def _attach(self, name: str) -> _Mapping:
        ring = self._rings.get(name)
        if ring is not None:
            return ring
        if len(self._rings) >= self.max_rings:
            self.sweep()
            if len(self._rings) >= self.max_rings:
                raise RingError(f"already {self.max_rings} rings attached; refusing {name}")
        path = SHM_DIR / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError as exc:
            raise RingError(f"no ring {name} ({exc.strerror})") from exc
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise RingError(f"{name} is too small to be a ring")
            ring = _Mapping(path, fd, size)
        finally:
            os.close(fd)
        slots, slot_bytes = int(ring.header[2]), int(ring.header[3])
        if int(ring.header[0]) != MAGIC or int(ring.header[1]) != VERSION or not 2 <= slots <= 256:
            ring.close()
            raise RingError(f"{name} is not a version-{VERSION} lptem ring")
        if _data_offset(slots) + slots * slot_bytes > size:
            ring.close()
            raise RingError(f"{name} is smaller than its header says")
        ring.layout(slots, slot_bytes)
        self._rings[name] = ring
        return ring

    def sweep(self) -> list[str]:
        """Detach and unlink the rings whose writer has died, attached or not (this user's only: the
        writer's pid is in the name); returns their names."""
        dead = [name for name, ring in self._rings.items() if not _alive(int(ring.header[4]))]
        for name in dead:
            ring = self._rings.pop(name)
            ring.close()
            ring.path.unlink(missing_ok=True)
        for path in SHM_DIR.glob("lptem-*"):  # rings whose camera died before anyone attached them
            if NAME_PATTERN.fullmatch(path.name) and _orphan(path):
                path.unlink(missing_ok=True)
                dead.append(path.name)
        self.cleaned += dead
        return dead

    def close(self) -> None:
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()


class TornFrame(RingError):
    """The slot was rewritten before or while it was read."""


def _orphan(path: Path) -> bool:
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        return False
    return owner == os.getuid() and not _alive(int(path.name.split("-")[1]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
