"""The particle scale estimated from a frame (lptem.engine.scale) and its use by the classical tracker."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.engine.classical import ClassicalConfig, ClassicalTracker
from lptem.engine.scale import ESTIMATE_FRAMES, ParticleScale, estimate_radius
from lptem.engine.synthetic import BlobMovie, BlobMovieConfig


def blobs(radius_px: float, n_frames: int = 1, n_blobs: int = 6) -> BlobMovie:
    return BlobMovie(BlobMovieConfig(shape=(512, 512), n_blobs=n_blobs, radius_px=radius_px), n_frames)


@pytest.mark.parametrize("radius_px", [5.0, 10.0, 20.0])
def test_the_radius_of_discs_is_estimated_within_a_fifth(radius_px):
    found = estimate_radius(blobs(radius_px).frame(0), dark=True)
    assert found is not None
    assert found.radius_px == pytest.approx(radius_px, rel=0.2)
    assert found.blobs >= 3


def test_noise_alone_gives_no_estimate():
    noise = np.random.default_rng(0).normal(100.0, 10.0, (256, 256)).astype(np.float32)
    assert estimate_radius(noise, dark=True) is None


def test_the_tracker_estimates_with_auto_detect_and_no_radius_and_reports_it():
    m = blobs(16.0, n_frames=6)
    tracker = ClassicalTracker(ClassicalConfig(auto_detect=True))
    assert tracker.settings()["particle_radius_source"] == "default"
    for _, frame in m.frames():
        tracker.step(frame)
    settings = tracker.settings()
    assert settings["particle_radius_source"] == "estimated"
    assert settings["particle_radius_px"] == pytest.approx(16.0, rel=0.2)
    assert len([o for o in tracker.objects() if o.last and o.last.visible]) == 6
    tracker.reset()  # a new stream is estimated anew
    assert tracker.settings()["particle_radius_source"] == "default"


def test_a_given_radius_is_kept_and_estimation_can_be_switched_off():
    frame = blobs(16.0).frame(0)
    given = ClassicalTracker(ClassicalConfig(auto_detect=True, particle_radius_px=12.0))
    given.step(frame)
    assert given.settings() == {"particle_radius_px": 12.0, "particle_radius_source": "given"}
    off = ClassicalTracker(ClassicalConfig(auto_detect=True, estimate_scale=False))
    off.step(frame)
    assert off.settings()["particle_radius_source"] == "default"
    assert off.settings()["scale_attempts"] == 0


def test_an_empty_field_stops_trying_after_a_few_frames():
    scale = ParticleScale.from_given(None, 8.0)
    empty = np.full((128, 128), 100.0, dtype=np.float32)
    for _ in range(ESTIMATE_FRAMES):
        assert scale.open
        assert scale.estimate_from(empty, dark=True) is False
    assert not scale.open
    assert scale.describe() == {"particle_radius_px": 8.0, "particle_radius_source": "default",
                                "scale_attempts": ESTIMATE_FRAMES}  # fmt: skip
