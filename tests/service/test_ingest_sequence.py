"""Frame numbering: repeats and reversals rejected, restarts and new series start epochs, gaps counted."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.service.ingest import FrameSequence
from lptem.service.protocol import FrameRejected, IngestFrame, RejectReason, SeriesMarker

PIXELS = np.zeros((2, 2), dtype=np.uint8)


def frame(n, series=None):
    return IngestFrame(frame=n, t_ns=0, pixels=PIXELS, series=series)


def admit_all(seq, numbers):
    out: list[tuple[object, ...]] = []
    for n in numbers:
        try:
            a = seq.admit(frame(n))
            out.append((n, a.epoch, a.missed, a.new_epoch))
        except FrameRejected as exc:
            out.append((n, exc.reason))
    return out


def test_increasing_with_gaps_counts_missed_frames():
    seq = FrameSequence()
    assert admit_all(seq, [0, 1, 2, 5, 6]) == [
        (0, 0, 0, None),
        (1, 0, 0, None),
        (2, 0, 0, None),
        (5, 0, 2, None),
        (6, 0, 0, None),
    ]


def test_repeats_and_reversals_are_rejected_without_changing_state():
    seq = FrameSequence()
    result = admit_all(seq, [3, 3, 2, 4, 0, 0, 1])
    assert result[1] == (3, RejectReason.FRAME_ORDER)
    assert result[2] == (2, RejectReason.FRAME_ORDER)
    assert result[3] == (4, 0, 0, None)  # the rejects did not move "last"
    assert result[4] == (0, 1, 0, "restart")  # counter back to 0: a camera restart, new epoch
    assert result[5] == (0, RejectReason.FRAME_ORDER)  # 0 again right after 0 is a repeat
    assert result[6] == (1, 1, 0, None)


def test_new_series_starts_an_epoch_and_frames_without_series_inherit_it():
    seq = FrameSequence()
    seq.start(SeriesMarker("start", "A", {"pixel_size_nm": 0.5}))
    a = seq.admit(frame(10))  # names no series: belongs to "A", no new epoch
    assert (a.epoch, a.series, a.new_epoch) == (0, "A", None)
    b = seq.admit(frame(3, series="B"))
    assert (b.epoch, b.series, b.new_epoch) == (1, "B", "series")
    seq.start(SeriesMarker("start", "C", {}))
    c = seq.admit(frame(0))
    assert (c.epoch, c.series, c.missed) == (2, "C", 0)
    assert seq.meta == {}
    seq.end()
    assert seq.meta == {}


def test_start_before_any_frame_does_not_bump_the_epoch():
    seq = FrameSequence()
    seq.start(SeriesMarker("start", None, {}))
    assert seq.admit(frame(0)).epoch == 0


@pytest.mark.parametrize("n", [5, 1])
def test_decreasing_nonzero_is_rejected(n):
    seq = FrameSequence()
    seq.admit(frame(7))
    with pytest.raises(FrameRejected, match="decreasing"):
        seq.admit(frame(n))
