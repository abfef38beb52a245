"""Ground-truth scoring: matching, RMSE and identity switches on hand-made tracks."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.engine.scoring import Contact, score_tracks

# Two particles moving right; truth (frames, particles, 2).
TRUTH = np.array([[[10.0 + f, 10.0], [50.0 + f, 50.0]] for f in range(6)])


def rows(entries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames, ids, xy = zip(*[(f, i, (x, y)) for f, i, x, y in entries], strict=True)
    return np.array(frames), np.array(ids), np.array(xy, dtype=float)


def test_perfect_tracks_score_zero_error_and_no_switches():
    entries = [(f, k + 1, *TRUTH[f, k]) for f in range(6) for k in range(2)]
    scores = score_tracks(*rows(entries), TRUTH, max_distance_px=5)
    assert [(s.id, s.truth, s.frames, s.matched_frames, s.identity_switches) for s in scores] == [
        (1, 0, 6, 6, 0),
        (2, 1, 6, 6, 0),
    ]
    assert all(s.switches_separated == 0 for s in scores)
    assert all(s.rmse_px == 0.0 for s in scores)


def test_offsets_give_the_rmse_and_a_swap_counts_switches():
    entries = [(f, 1, TRUTH[f, 0, 0] + 0.3, TRUTH[f, 0, 1] - 0.4) for f in range(6)]  # 0.5 px off
    swapped = [(f, 2, *TRUTH[f, 1 if f < 3 else 0]) for f in range(6)]  # jumps to particle 0 at f=3
    entries = entries[:3] + swapped
    scores = {
        s.id: s for s in score_tracks(*rows(entries), TRUTH, max_distance_px=5, contact=Contact(20.0, 2))
    }
    assert scores[1].rmse_px == pytest.approx(0.5)
    assert scores[2].identity_switches == 1
    assert scores[2].switches_separated == 1  # the particles were 57 px apart: a tracker error
    assert scores[2].matched_frames == 3
    touching = score_tracks(*rows(entries), TRUTH, max_distance_px=5, contact=Contact(100.0, 2))
    assert touching[1].switches_separated == 0  # within contact: a switch in an overlap


def test_clean_frames_give_a_separate_rmse():
    entries = [(f, 1, TRUTH[f, 0, 0] + (3.0 if f == 5 else 0.0), TRUTH[f, 0, 1]) for f in range(6)]
    clean = np.ones((6, 2), dtype=bool)
    clean[5, 0] = False  # e.g. the particle is cut by the frame edge in the last frame
    (score,) = score_tracks(*rows(entries), TRUTH, max_distance_px=5, clean=clean)
    assert score.rmse_px == pytest.approx(np.sqrt(9 / 6))
    assert (score.clean_frames, score.rmse_clean_px) == (5, 0.0)


def test_detections_far_from_any_particle_are_unmatched():
    frames, ids, xy = rows([(0, 7, 500.0, 500.0)])
    (score,) = score_tracks(frames, ids, xy, TRUTH, max_distance_px=5)
    assert (score.truth, score.matched_frames) == (-1, 0)
    assert np.isnan(score.rmse_px)


def test_frames_outside_the_truth_are_refused():
    with pytest.raises(ValueError, match="frame numbers"):
        score_tracks(*rows([(9, 1, 0.0, 0.0)]), TRUTH, max_distance_px=5)
