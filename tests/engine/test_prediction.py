"""Each object's expected position and gate from its own recent motion (lptem.engine.prediction)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lptem.engine.prediction import SPREADS_PER_GATE, StepHistory


def test_a_steady_flow_is_predicted_and_gated_tightly():
    history = StepHistory()
    for i in range(6):
        history.add(i, 10.0 + 60.0 * i, 5.0 - 2.0 * i)  # 60 px per frame right, 2 px up
    assert history.predict(6) == pytest.approx((370.0, -7.0))
    assert history.predict(8) == pytest.approx((490.0, -11.0))  # two frames later: two steps on
    assert history.spread() == pytest.approx(0.0)
    assert history.gate(floor_px=6.0, initial_px=40.0, frames_missing=0, growth_cap=3.0) == 6.0


def test_the_gate_is_three_spreads_of_the_displacements():
    rng = np.random.default_rng(1)
    history = StepHistory(length=10)
    x = y = 0.0
    steps = rng.normal(0.0, 20.0, size=(10, 2))
    for i, (dx, dy) in enumerate(steps, start=1):
        x, y = x + dx, y + dy
        history.add(i, x, y)
    centred = steps[1:] - steps[1:].mean(axis=0)  # the first sighting has no step before it
    expected = SPREADS_PER_GATE * math.sqrt(np.sum(centred**2) / (len(centred) - 1))
    assert history.gate(6.0, 40.0, 0, 3.0) == pytest.approx(expected)
    assert history.gate(6.0, 40.0, 3, 3.0) == pytest.approx(2 * expected)  # sqrt(1 + 3) while missing


def test_a_new_object_gets_at_least_the_initial_gate_and_gaps_count_as_a_random_walk():
    history = StepHistory()
    assert history.predict(3) is None
    assert history.gate(6.0, 40.0, 0, 3.0) == 40.0  # nothing known yet
    history.add(1, 0.0, 0.0)
    history.add(3, 10.0, 0.0)  # seen again two frames later
    assert history.mean_step() == (5.0, 0.0)  # a drift of 5 px per frame ...
    assert history.spread() == pytest.approx(10.0 / math.sqrt(2))  # ... or a walk of 7.1 px per frame
    assert history.gate(6.0, 40.0, 0, 3.0) == 40.0  # too few steps: at least the initial gate
    history.add(4, 110.0, 0.0)  # an early 100 px jump widens it at once
    assert history.gate(6.0, 40.0, 0, 3.0) == pytest.approx(
        3 * math.hypot(100 - 10 / math.sqrt(2), 0) / math.sqrt(2)
    )
    history.clear()
    assert history.predict(4) is None
