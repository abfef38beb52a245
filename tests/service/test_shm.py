"""The shared-memory ring on its own: frames are read in place and round-trip, a slot rewritten before or
while it was read is torn, the writer waits for releases, bad references are refused with a reason, and
rings of dead writers are unlinked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lptem.service.protocol.shm import (
    SHM_DIR,
    RingError,
    RingReader,
    RingWriter,
    ShmRef,
    TornFrame,
    parse_ref,
)

U16 = np.dtype("<u2")


@pytest.fixture
def reader() -> Iterator[RingReader]:
    r = RingReader()
    yield r
    r.close()


def _frame(value: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.full(shape, value, U16)


def _read(reader: RingReader, ref: ShmRef, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A copy of the frame, its slot released."""
    lease = reader.borrow(ref, U16, shape)
    pixels = lease.pixels.copy()
    assert lease.release()
    return pixels


def test_frames_are_read_in_place_and_the_ring_is_unlinked_on_close(reader: RingReader) -> None:
    writer = RingWriter(4, 48 * 64 * 2)
    try:
        refs = [writer.write(_frame(v)) for v in (1, 2, 3)]
        assert [r.seq for r in refs] == [2, 2, 2]
        assert [r.slot for r in refs] == [0, 1, 2]
        leases = [reader.borrow(ref, U16, (48, 64)) for ref in refs]
        for value, lease in zip((1, 2, 3), leases, strict=True):
            assert np.array_equal(lease.pixels, _frame(value))
        with pytest.raises(ValueError, match="read-only"):
            leases[2].pixels[0, 0] = 0  # the engine cannot change the camera's slot
        assert [lease.release() for lease in leases] == [True, True, True]
        assert (SHM_DIR / writer.name).exists()
    finally:
        writer.close()
    assert not (SHM_DIR / writer.name).exists()


def test_a_slot_rewritten_before_it_was_read_is_torn(reader: RingReader) -> None:
    writer = RingWriter(2, 48 * 64 * 2, reclaim_s=0.0)
    try:
        first = writer.write(_frame(1))
        writer.write(_frame(2))
        again = writer.write(_frame(3))  # slot 0 again, never released: reclaimed and rewritten
        assert (again.slot, again.seq) == (0, 4)
        assert writer.reclaimed == 1
        with pytest.raises(TornFrame, match="holds seq 4, not 2: rewritten"):
            reader.borrow(first, U16, (48, 64))
        assert np.array_equal(_read(reader, again), _frame(3))
    finally:
        writer.close()


def test_a_slot_rewritten_while_it_was_held_reports_torn_at_release(reader: RingReader) -> None:
    writer = RingWriter(2, 48 * 64 * 2, reclaim_s=0.0)  # a writer that does not wait for releases
    try:
        held = reader.borrow(writer.write(_frame(1)), U16, (48, 64))
        writer.write(_frame(2))
        writer.write(_frame(3))  # into the held slot
        assert np.array_equal(held.pixels, _frame(3))  # what the engine would have read: not frame 1
        assert held.release() is False
        assert held.release() is False  # asked again: the same answer
    finally:
        writer.close()


def test_the_writer_waits_for_the_release_of_a_slot(reader: RingReader) -> None:
    writer = RingWriter(2, 48 * 64 * 2, reclaim_s=30.0)
    try:
        a = reader.borrow(writer.write(_frame(1)), U16, (48, 64))
        b = reader.borrow(writer.write(_frame(2)), U16, (48, 64))
        written = threading.Event()

        def write_third() -> None:
            writer.write(_frame(3))
            written.set()

        third = threading.Thread(target=write_third)
        third.start()
        assert not written.wait(0.3)  # slot 0 is held: the writer waits (for up to 30 s)
        assert np.array_equal(a.pixels, _frame(1))
        assert a.release()
        third.join(10)
        assert written.is_set()
        assert writer.reclaimed == 0
        assert b.release()
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"ring": "lptem-1-0000abcd", "slot": 0}, "map of ring, slot and seq"),
        ({"ring": "../etc/passwd", "slot": 0, "seq": 2}, "not lptem-<pid>"),
        ({"ring": "lptem-1-0000abcd", "slot": -1, "seq": 2}, "slot must be >= 0"),
        ({"ring": "lptem-1-0000abcd", "slot": 0, "seq": 3}, "seq even"),
        ("lptem-1-0000abcd", "map of ring"),
    ],
)
def test_bad_references_are_refused(value: object, reason: str) -> None:
    with pytest.raises(RingError, match=reason):
        parse_ref(value)


def test_unknown_rings_slots_out_of_range_and_oversized_frames_are_refused(reader: RingReader) -> None:
    with pytest.raises(RingError, match="no ring lptem-1-00000000"):
        reader.borrow(ShmRef("lptem-1-00000000", 0, 2), U16, (4, 4))
    writer = RingWriter(2, 48 * 64 * 2)
    try:
        ref = writer.write(_frame(1))
        with pytest.raises(RingError, match="slot 5 outside"):
            reader.borrow(ShmRef(ref.ring, 5, 2), U16, (48, 64))
        with pytest.raises(RingError, match="cannot be in ring"):
            reader.borrow(ref, U16, (480, 640))
        assert np.array_equal(_read(reader, ref), _frame(1))  # nothing else disturbed
    finally:
        writer.close()


def test_a_file_that_is_no_ring_is_refused(reader: RingReader) -> None:
    path = SHM_DIR / f"lptem-{os.getpid()}-deadbeef"
    path.write_bytes(b"not a ring" * 100)
    try:
        with pytest.raises(RingError, match="not an lptem ring"):
            reader.borrow(ShmRef(path.name, 0, 2), U16, (4, 4))
    finally:
        path.unlink()


def test_the_ring_of_a_killed_writer_is_unlinked_by_the_sweep(reader: RingReader) -> None:
    code = (
        "import sys, time, numpy as np\n"
        "from lptem.service.protocol.shm import RingWriter\n"
        "w = RingWriter(2, 64)\n"
        "w.write(np.zeros(8, np.uint16))\n"
        "print(w.name, flush=True)\n"
        "time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    name = writer.stdout.readline().strip()
    assert (SHM_DIR / name).exists()
    held = reader.borrow(ShmRef(name, 0, 2), U16, (1, 8))  # attached, its frame still in the engine
    assert reader.sweep() == []  # alive: kept
    writer.kill()
    writer.wait()
    writer.stdout.close()
    assert reader.sweep() == [name]
    assert not (SHM_DIR / name).exists()
    assert np.array_equal(held.pixels, np.zeros((1, 8), U16))  # still mapped for the frame in flight
    assert held.release()
    del held
    assert name not in Path("/proc/self/maps").read_text()  # unmapped with the last frame
