"""DAVIS J and F on masks with hand-computable answers."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.engine.segmentation_metrics import boundary, boundary_f, davis_bound_px, jaccard


def square(shape, r0, c0, size):
    m = np.zeros(shape, dtype=bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def test_jaccard():
    a, b = square((50, 50), 10, 10, 10), square((50, 50), 10, 15, 10)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, b) == pytest.approx(50 / 150)
    assert jaccard(a, square((50, 50), 30, 30, 5)) == 0.0
    empty = np.zeros((50, 50), dtype=bool)
    assert jaccard(empty, empty) == 1.0


def test_boundary_is_the_inner_outline():
    b = boundary(square((20, 20), 5, 5, 4))
    assert b.sum() == 12  # a 4x4 square has 12 outline pixels
    assert not b[6:8, 6:8].any()
    assert boundary(np.ones((3, 3), dtype=bool)).sum() == 8  # the image border counts as outside


def test_boundary_f_tolerance():
    a = square((100, 100), 20, 20, 40)
    shifted = square((100, 100), 20, 23, 40)  # 3 px to the right
    assert boundary_f(a, a, 1) == 1.0
    assert boundary_f(a, shifted, 3) == 1.0  # every boundary pixel within 3 px
    assert boundary_f(a, shifted, 1) < 0.6  # the vertical edges are now 3 px off
    assert boundary_f(a, np.zeros_like(a), 3) == 0.0
    assert davis_bound_px((1024, 1024)) == 12
