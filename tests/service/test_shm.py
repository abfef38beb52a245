"""The shared-memory ring on its own: frames round-trip, a rewritten slot is torn, bad references are
refused with a reason, and rings of dead writers are unlinked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from lptem.service.protocol.shm import (
    SHM_DIR,
    BufferPool,
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


def test_frames_round_trip_and_the_ring_is_unlinked_on_close(reader: RingReader) -> None:
    writer = RingWriter(4, 48 * 64 * 2)
    try:
        refs = [writer.write(_frame(v)) for v in (1, 2, 3)]
        assert [r.seq for r in refs] == [2, 2, 2]
        assert [r.slot for r in refs] == [0, 1, 2]
        for value, ref in zip((1, 2, 3), refs, strict=True):
            got = reader.read(ref, U16, (48, 64))
            assert np.array_equal(got, _frame(value))
        got[...] = 0  # a copy: the ring is not changed through it
        assert np.array_equal(reader.read(refs[2], U16, (48, 64)), _frame(3))
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
            reader.read(first, U16, (48, 64))
        assert np.array_equal(reader.read(again, U16, (48, 64)), _frame(3))
    finally:
        writer.close()


def test_the_writer_waits_for_the_release_of_a_slot(reader: RingReader) -> None:
    writer = RingWriter(2, 48 * 64 * 2, reclaim_s=5.0)
    try:
        a, b = writer.write(_frame(1)), writer.write(_frame(2))
        reader.read(a, U16, (48, 64))
        reader.read(b, U16, (48, 64))
        writer.write(_frame(3))  # both released: no wait, nothing reclaimed
        assert writer.reclaimed == 0
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
        reader.read(ShmRef("lptem-1-00000000", 0, 2), U16, (4, 4))
    writer = RingWriter(2, 48 * 64 * 2)
    try:
        ref = writer.write(_frame(1))
        with pytest.raises(RingError, match="slot 5 outside"):
            reader.read(ShmRef(ref.ring, 5, 2), U16, (48, 64))
        with pytest.raises(RingError, match="cannot be in ring"):
            reader.read(ref, U16, (480, 640))
        assert np.array_equal(reader.read(ref, U16, (48, 64)), _frame(1))  # nothing else disturbed
    finally:
        writer.close()


def test_a_file_that_is_no_ring_is_refused(reader: RingReader) -> None:
    path = SHM_DIR / f"lptem-{os.getpid()}-deadbeef"
    path.write_bytes(b"not a ring" * 100)
    try:
        with pytest.raises(RingError, match="not an lptem ring"):
            reader.read(ShmRef(path.name, 0, 2), U16, (4, 4))
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
    reader.read(ShmRef(name, 0, 2), U16, (1, 8))  # attached
    assert reader.sweep() == []  # alive: kept
    writer.kill()
    writer.wait()
    writer.stdout.close()
    assert reader.sweep() == [name]
    assert not (SHM_DIR / name).exists()


def test_read_buffers_are_reused_only_once_nothing_refers_to_them() -> None:
    pool = BufferPool()
    first = pool.take(U16, (4, 4))
    second = pool.take(U16, (4, 4))
    assert not np.shares_memory(first, second)  # both in use
    first_memory = first.__array_interface__["data"][0]
    del first
    again = pool.take(U16, (4, 4))
    assert again.__array_interface__["data"][0] == first_memory  # free again: reused
    view = again[1:]
    del again
    other = pool.take(U16, (4, 4))
    assert not np.shares_memory(other, view)  # a view keeps its buffer taken
