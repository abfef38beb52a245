"""Touching and packed particles kept apart (lptem.engine.split through the detector and the tracker)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lptem.engine.api import Box, Prompt
from lptem.engine.classical import ClassicalConfig, ClassicalTracker
from lptem.engine.detect import Detector
from lptem.engine.detection import DetectorConfig
from lptem.engine.split import split_component

BACKGROUND, DARK, NOISE = 160.0, 60.0, 6.0


def frame_with(
    discs: tuple[tuple[float, float], ...] = (),
    squares: tuple[tuple[float, float], ...] = (),
    *,
    radius: float = 10.0,
    edge: float = 20.0,
    rods: tuple[tuple[float, float, float, float], ...] = (),
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> np.ndarray:
    """Dark discs (centre), squares (centre, axis-aligned) and rods (centre, length, width) on a noisy
    background, blurred by 1 px as a detector would; float32."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dark = np.zeros(shape, dtype=bool)
    for x, y in discs:
        dark |= (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    for x, y in squares:
        dark |= (np.abs(xx - x) <= edge / 2) & (np.abs(yy - y) <= edge / 2)
    for x, y, length, width in rods:
        dark |= (np.abs(xx - x) <= length / 2) & (np.abs(yy - y) <= width / 2)
    image = np.where(dark, DARK, BACKGROUND).astype(np.float32)
    blurred = np.asarray(cv2.GaussianBlur(image, (0, 0), 1.0), dtype=np.float32)
    return blurred + np.random.default_rng(seed).normal(0, NOISE, shape).astype(np.float32)


def centres(found) -> np.ndarray:
    return np.array(sorted((d.measurement.x, d.measurement.y) for d in found.detections))


def test_two_touching_discs_are_two_detections_at_their_centres():
    truth = np.array([(100.0, 128.0), (121.0, 128.0)])  # 21 px apart: a 1 px gap between radii of 10
    image = frame_with(((100.0, 128.0), (121.0, 128.0)))
    got = centres(Detector(DetectorConfig(particle_radius_px=10.0)).detect(image))
    assert len(got) == 2
    assert np.hypot(*(got - truth).T).max() < 1.5
    whole = Detector(DetectorConfig(particle_radius_px=10.0, split=False)).detect(image)
    assert len(whole.detections) == 1  # without the split they merge (what the tracker saw before)


def test_a_packed_lattice_of_squares_is_one_detection_per_square():
    pitch, edge = 24.0, 20.0  # 4 px gaps
    truth = np.array([(80 + pitch * c, 80 + pitch * r) for r in range(4) for c in range(4)])
    image = frame_with(squares=tuple((float(x), float(y)) for x, y in truth), edge=edge)
    got = centres(Detector(DetectorConfig(particle_radius_px=edge / 2, symmetry=4)).detect(image))
    assert len(got) == len(truth)
    nearest = np.hypot(*(got[:, None, :] - truth[None]).transpose(2, 0, 1)).min(axis=1)
    assert nearest.max() < 1.5


def test_a_lone_disc_is_not_split():
    found = Detector(DetectorConfig(particle_radius_px=10.0)).detect(frame_with(((128.0, 128.0),), radius=16))
    assert len(found.detections) == 1


def test_a_rod_prompted_with_an_elongated_box_stays_one_piece():
    image = frame_with(rods=((128.0, 128.0, 120.0, 30.0),))
    tracker = ClassicalTracker(ClassicalConfig())
    tracker.add_object(Prompt(box=Box(64, 110, 192, 146)))
    result = tracker.step(image, want_labels=True)
    (rod,) = result.objects
    assert rod.visible
    assert abs(rod.x - 128) < 2
    assert abs(rod.y - 128) < 2
    assert rod.area_px > 0.8 * 120 * 30  # the whole rod, not one end of it


@pytest.mark.parametrize("gap_px", [1.0, 3.0])
def test_two_particles_keep_their_ids_through_contact(gap_px):
    """Two discs approach until their edges are ``gap_px`` apart, then part: each keeps its id."""
    radius = 10.0
    closest = 2 * radius + gap_px
    approach = np.linspace(40, closest, 15)
    offsets = np.concatenate([approach, np.full(5, closest), approach[::-1]])
    tracker = ClassicalTracker(ClassicalConfig(particle_radius_px=radius))
    left = tracker.add_object(Prompt(box=Box(128 - 20 - 12, 116, 128 - 20 + 12, 140)))
    right = tracker.add_object(Prompt(box=Box(128 + 20 - 12, 116, 128 + 20 + 12, 140)))
    for k, d in enumerate(offsets):
        truth = {left: 128 - d / 2, right: 128 + d / 2}
        result = tracker.step(frame_with(((truth[left], 128.0), (truth[right], 128.0)), seed=k))
        for o in result.objects:
            assert o.visible, f"frame {k}: object {o.id} lost at {d:.1f} px apart"
            error = abs(o.x - truth[o.id])
            assert error < 2.0, f"frame {k}: object {o.id} {error:.1f} px from its particle"


def test_packed_particles_are_split_only_at_a_known_radius():
    assert not DetectorConfig().splits  # the default radius is a guess: a large particle would be cut up
    assert DetectorConfig(particle_radius_px=8.0).splits
    assert not DetectorConfig(particle_radius_px=8.0, split=False).splits
    big = frame_with(squares=((128.0, 128.0),), edge=60.0)  # a flat square of 60 px, far above 8 px
    assert len(Detector(DetectorConfig()).detect(big).detections) == 1


def test_seeds_split_a_component_at_any_scale():
    """Where a tracker expects two objects, a merged component is shared between them even with the
    maxima search off."""
    image = frame_with(((100.0, 128.0), (121.0, 128.0)))
    detector = Detector(DetectorConfig(particle_radius_px=10.0, split=False))
    assert len(detector.detect(image).detections) == 1
    got = centres(detector.detect(image, seeds=[(101.0, 127.0), (120.0, 129.0)]))
    assert len(got) == 2
    assert np.hypot(*(got - np.array([(100.0, 128.0), (121.0, 128.0)])).T).max() < 1.5


def test_a_seed_off_its_particle_does_not_split_it_with_the_maximum_there():
    """One particle with its centre-surround maximum on one side and the tracker's predicted position
    a radius away on the other: the maximum is the seed's particle (no dip between them), not a newcomer;
    a second particle beyond a gap is one."""
    radius = 6.0
    inside = np.zeros((48, 64), dtype=bool)
    yy, xx = np.mgrid[:48, :64]
    inside[(xx - 20) ** 2 + (yy - 24) ** 2 <= (1.6 * radius) ** 2] = True
    band = np.exp(-((xx - 23.0) ** 2 + (yy - 24.0) ** 2) / (2 * radius**2)).astype(np.float32)
    seeds = np.array([[24, 16]])  # (row, col): 7 px from the maximum at column 23
    assert split_component(inside, band, band, radius, seeds=seeds) is None
    inside[(xx - 46) ** 2 + (yy - 24) ** 2 <= (1.6 * radius) ** 2] = True  # a neighbour beyond a dip
    band += np.exp(-((xx - 46.0) ** 2 + (yy - 24.0) ** 2) / (2 * radius**2)).astype(np.float32)
    parts = split_component(inside, band, band, radius, seeds=seeds)
    assert parts is not None
    assert len(parts) == 2


def test_two_seeds_on_one_particle_do_not_cut_it():
    """Two objects expected closer than a radius (one of them lost its particle and drifted onto a
    neighbour): they cannot both be particles, so the particle stays whole."""
    image = frame_with(((128.0, 128.0),), radius=20.0)
    detector = Detector(DetectorConfig(particle_radius_px=20.0))
    got = detector.detect(image, seeds=[(120.0, 124.0), (136.0, 132.0)])  # 18 px apart
    assert len(got.detections) == 1
    assert np.hypot(*(centres(got)[0] - (128.0, 128.0))) < 1.5
