"""The SAM 2 streaming engine against the official sam2 predictor, with seeded random weights.

No weights exist here: both sides run the *same* untrained SAM 2.1 Hiera-T (seed 0, 256^2 input), so
any difference is a difference of the tracking loop, not of the model. Tolerance: mask logits within
1e-4 (our batched calls reorder float32 sums; measured differences are about 4e-7) and identical mask
signs wherever |logit| > 1e-4. The official predictor's hole filling needs sam2's CUDA kernel, which
is not built here (it skips it with a warning), so both sides run with hole filling off; ours is tested
on its own below.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from lptem.engine.api import Box, PointPrompt, Prompt  # noqa: E402
from lptem.engine.registry import EngineOptionError, create_tracker  # noqa: E402
from lptem.engine.sam2.models import CheckpointError, build_model, load_checkpoint  # noqa: E402
from lptem.engine.sam2.postprocess import clean, fill_holes, measure  # noqa: E402
from lptem.engine.sam2.predictor_parity import official_state as parity_state  # noqa: E402
from lptem.engine.sam2.predictor_parity import stream_ours  # noqa: E402
from lptem.engine.sam2.tracker import Sam2Config, Sam2Tracker  # noqa: E402
from tests.engine.sam2.support import CLIP_SHAPE, box_around, tiny_model, two_particle_clip  # noqa: E402

SHAPE = CLIP_SHAPE
FRAMES = 18  # > num_maskmem (7) and >= max_obj_ptrs_in_encoder (16): see STREAM_FRAMES
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def clip():
    return two_particle_clip(FRAMES)


def xyxy(box: Box) -> list[float]:
    return [box.x0, box.y0, box.x1, box.y1]


def ours(model, clip, prompts):
    """Stream ``clip`` through our tracker; ``prompts`` maps frame -> [(id, Prompt)]. Returns per frame
    {id: frame-resolution logits} before the output clean-up."""
    return stream_ours(model, [f.image for f in clip], prompts, Sam2Config(device="cpu", fill_hole_area=0))


def official_state(model, clip):
    """An official inference state over exactly the frames our tracker sees (our preprocessing)."""
    return parity_state(model, [f.image for f in clip], Sam2Config(device="cpu"))


def assert_same(a, b, where=""):
    diff = (a - b).abs().max().item()
    assert diff <= TOLERANCE, f"{where}: max |logit difference| {diff:.2e}"
    decided = (a.abs() > TOLERANCE) | (b.abs() > TOLERANCE)
    assert torch.equal((a > 0)[decided], (b > 0)[decided]), f"{where}: masks differ"


@pytest.fixture(scope="module")
def runs(model, clip):
    """Ours: objects 1, 2 box-prompted on frame 0, object 3 added at frame 5. Official: objects 1, 2."""
    boxes = {k: box_around(clip[0], k) for k in (1, 2)}
    late = box_around(clip[5], 2, margin=6.0)
    prompts = {0: [(k, Prompt(box=b)) for k, b in boxes.items()], 5: [(3, Prompt(box=late))]}
    streamed, tracker = ours(model, clip, prompts)
    state = official_state(model, clip)
    for k, b in boxes.items():
        model.add_new_points_or_box(state, frame_idx=0, obj_id=k, box=xyxy(b))
    official = [masks for _, _, masks in model.propagate_in_video(state)]
    return {"ours": streamed, "official": official, "state": state, "late_box": late, "tracker": tracker}


def test_a_parity_with_propagate_in_video(runs):
    for frame, (mine, theirs) in enumerate(zip(runs["ours"], runs["official"], strict=True)):
        for index, obj_id in enumerate((1, 2)):
            assert_same(mine[obj_id], theirs[index, 0], f"frame {frame}, object {obj_id}")


def test_b_an_object_added_at_frame_5_matches_the_predictor_prompted_at_frame_5(model, clip, runs):
    state = official_state(model, clip)
    model.add_new_points_or_box(state, frame_idx=5, obj_id=3, box=xyxy(runs["late_box"]))
    official = {f: masks for f, _, masks in model.propagate_in_video(state, start_frame_idx=5)}
    assert sorted(official) == list(range(5, FRAMES))
    for frame in range(5, FRAMES):
        assert_same(runs["ours"][frame][3], official[frame][0, 0])
    assert all(3 not in runs["ours"][frame] for frame in range(5))


def test_c_a_correction_matches_add_new_points_or_box_on_that_frame(model, clip, runs):
    click = clip[8].truth.x[0], clip[8].truth.y[0]
    prompts = {
        0: [(k, Prompt(box=box_around(clip[0], k))) for k in (1, 2)],
        8: [(1, Prompt(points=(PointPrompt(*click),)))],
    }
    corrected, _ = ours(model, clip[:9], prompts)
    state = copy.deepcopy(runs["state"])  # the click changes the state: leave the shared one as it was
    _, obj_ids, masks = model.add_new_points_or_box(
        state, frame_idx=8, obj_id=1, points=[list(click)], labels=[1]
    )
    assert list(obj_ids) == [1, 2]
    assert_same(corrected[8][1], masks[0, 0])
    assert not torch.equal(corrected[8][1] > 0, runs["ours"][8][1] > 0)  # the click changed the mask
    for frame in range(8):
        assert_same(corrected[frame][1], runs["ours"][frame][1])


def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


@pytest.mark.slow
def test_d_memory_stays_flat_over_300_frames(clip):
    logging.getLogger("lptem.engine.sam2.models").setLevel(logging.ERROR)
    model = build_model(
        "sam2.1_hiera_t", None, torch.device("cpu"), random_weights=True, image_size=128, seed=1
    )
    tracker = Sam2Tracker(Sam2Config(device="cpu"), model=model)
    for k in (1, 2):
        tracker.add_object(Prompt(box=box_around(clip[0], k)))
    sizes, rss = [], {}
    for i in range(300):
        tracker.step(clip[i % FRAMES].image, want_labels=i % 10 == 0)
        sizes.append(tracker.bank_sizes())
        if i in (50, 299):
            rss[i] = rss_mb()
    # 1 conditioning frame, num_maskmem = 7 mask memories, max_obj_ptrs_in_encoder = 16 pointers
    assert all(s == {1: (1, 7, 16), 2: (1, 7, 16)} for s in sizes[16:])
    assert rss[299] - rss[50] < 10.0, (
        rss
    )  # MB: flat (measured +0.3 MB); the official state would keep every frame


def test_objects_can_be_removed_and_ids_reused_at_any_frame(model, clip):
    tracker = Sam2Tracker(Sam2Config(device="cpu"), model=model)
    tracker.add_object(Prompt(box=box_around(clip[0], 1)), 7)
    tracker.step(clip[0].image)
    tracker.add_object(Prompt(box=box_around(clip[1], 2)))
    result = tracker.step(clip[1].image, want_labels=True)
    assert [o.id for o in result.objects] == [7, 8]
    assert result.labels is not None
    assert set(np.unique(result.labels)) <= {0, 7, 8}
    tracker.remove_object(7)
    assert [o.id for o in tracker.step(clip[2].image).objects] == [8]
    tracker.reset()
    assert tracker.objects() == ()


def test_measurements_use_the_classical_definitions():
    masks = torch.zeros((2, 40, 50), dtype=torch.bool)
    masks[0, 10:20, 5:35] = True
    numbers = measure(masks)
    area, x, y, mu20, mu02, mu11, x0, y0, x1, y1 = numbers[0]
    assert (area, x, y) == (300.0, 19.5, 14.5)
    assert (x0, y0, x1, y1) == (5, 10, 35, 20)
    assert mu20 > mu02
    assert mu11 == pytest.approx(0.0)
    assert numbers[1, 0] == 0  # an empty mask: no area ...
    assert np.isnan(numbers[1, 1:]).all()  # ... and no position


def test_fill_holes_and_clean_up():
    logits = torch.full((2, 1, 32, 32), -5.0)
    logits[0, 0, 4:20, 4:20] = 3.0
    logits[0, 0, 10:12, 10:12] = -3.0  # a 4 px hole
    logits[0, 0, 28:30, 28:30] = 2.0  # a stray island
    logits[1, 0, 15:25, 15:25] = 5.0  # overlaps object 0, and wins where it is stronger
    filled = fill_holes(logits, max_area=8)
    assert filled[0, 0, 10, 10] == pytest.approx(0.1)
    assert (fill_holes(logits, max_area=3)[0, 0, 10:12, 10:12] < 0).all()  # too big to fill
    cleaned = clean(filled)
    assert (cleaned[0, 0, 28:30, 28:30] <= -10.0).all()  # island dropped
    assert not ((cleaned[0] > 0) & (cleaned[1] > 0)).any()  # no pixel in two objects
    assert (cleaned[1, 0, 15:25, 15:25] > 0).all()


def test_wrong_checkpoints_are_named(tmp_path, model):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(model, tmp_path / "missing.pt", "sam2.1_hiera_t")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(model, tmp_path / "junk.pt", "sam2.1_hiera_t")
    state = model.state_dict()
    partial = dict(list(state.items())[5:])
    partial["extra.weight"] = torch.zeros(3)
    torch.save({"model": partial}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"5 missing keys: .*\n.*1 unexpected keys: extra.weight"):
        load_checkpoint(model, tmp_path / "partial.pt", "sam2.1_hiera_t")
    torch.save(state, tmp_path / "bare.pt")  # a bare state dict loads too
    load_checkpoint(model, tmp_path / "bare.pt", "sam2.1_hiera_t")


def test_engine_options_and_errors_through_the_registry():
    with pytest.raises(EngineOptionError, match="needs its checkpoint"):
        create_tracker("sam2", {"device": "cpu"})
    with pytest.raises(EngineOptionError, match="unknown model"):
        create_tracker("sam2", {"model": "sam3", "random_weights": "true"})
    if not torch.cuda.is_available():
        with pytest.raises(EngineOptionError, match="CUDA is not available"):
            create_tracker("sam2", {"device": "cuda", "random_weights": "true"})


@pytest.mark.e2e
def test_e_serve_with_sam2_publishes_a_track_for_every_object_and_frame(clip):
    from lptem.clients.ops.daemon_process import DaemonProcess  # noqa: PLC0415
    from lptem.clients.wire.control import ControlClient  # noqa: PLC0415
    from lptem.clients.wire.sender import FrameSender  # noqa: PLC0415
    from lptem.clients.wire.subscriber import Subscriber  # noqa: PLC0415

    args = ("--engine", "sam2", "--random-weights", "--device", "cpu", "--model", "sam2.1_hiera_t",
            "-E", "image_size=128", "--policy", "queue")  # fmt: skip
    with (
        DaemonProcess(*args) as daemon,
        Subscriber(daemon.publish) as sub,
        ControlClient(daemon.control, timeout_s=60) as control,
    ):
        assert sub.wait_connected(30)
        ids = [control.add_object(box=xyxy(box_around(clip[0], k))) for k in (1, 2)]
        with FrameSender(daemon.ingest) as camera:
            for frame in clip[:8]:
                camera.send(frame.image)
        tracks = [r.message for r in (sub.recv(60) for _ in range(8)) if r is not None]
        log = daemon.log_text()
    assert ids == [1, 2]
    assert [t.frame for t in tracks] == list(range(8))
    assert all(t.engine == "sam2" and [o.id for o in t.objects] == [1, 2] for t in tracks)
    assert "RANDOM, UNTRAINED" in log


def test_weight_free_paths_do_not_import_torch():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys, lptem.engine, lptem.engine.classical, lptem.engine.registry, "
        "lptem.engine.sim.simulator, lptem.engine.msd, lptem.service.daemon, lptem.clients.cli, "
        "lptem.clients.wire.subscriber, lptem.clients.demo.cli; "
        "print('torch' in sys.modules, 'sam2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_an_occluded_object_is_invisible_at_its_last_position():
    from lptem.engine.sam2.tracker import object_result  # noqa: PLC0415

    row = np.array([300.0, 19.5, 14.5, 70.0, 8.0, 0.0, 5, 10, 35, 20])
    seen = object_result(4, row, 2.5, None)
    assert seen is not None
    assert (seen.visible, seen.x, seen.y, seen.area_px, seen.bbox) == (
        True,
        19.5,
        14.5,
        300.0,
        (5, 10, 35, 20),
    )
    hidden = object_result(4, row, -1.0, seen)  # SAM 2's object score <= 0: not in the frame
    assert hidden is not None
    assert (hidden.visible, hidden.x, hidden.y, hidden.area_px, hidden.score) == (
        False,
        19.5,
        14.5,
        0.0,
        -1.0,
    )
    empty = np.array([0.0, *[np.nan] * 9])
    blank = object_result(4, empty, 3.0, seen)  # a positive score but an empty mask
    assert blank is not None
    assert blank.visible is False
    assert object_result(4, row, -1.0, None) is None  # never seen: nothing to report yet


def test_automatic_prompts_come_from_the_classical_detector(model):
    from lptem.engine.synthetic import BlobMovie, BlobMovieConfig  # noqa: PLC0415

    movie = BlobMovie(BlobMovieConfig(shape=SHAPE, n_blobs=2, radius_px=8.0), 6)
    tracker = Sam2Tracker(Sam2Config(device="cpu", auto_detect=True, particle_radius_px=8.0), model=model)
    added = [tracker.step(movie.frame(i)).added_ids for i in range(5)]
    assert added == [(), (), (1, 2), (), ()]  # confirmed on the third consecutive detection
    info = {o.id: o for o in tracker.objects()}
    assert [o.source for o in info.values()] == ["auto", "auto"]
    sizes = tracker.bank_sizes()
    assert sizes[1][0] == sizes[2][0] == 1  # prompted (a conditioning frame) on the next frame
    assert info[1].frames_tracked + info[1].frames_missing == 2  # frames 3 and 4


@pytest.mark.parametrize("symmetry", [1, 4, 6])
def test_n_fold_orientation_from_masks_equals_the_classical_measurement(symmetry):
    """SAM 2's device-side moments give the same θ as lptem.engine.measure on the same masks."""
    from lptem.engine.measure import measure_mask  # noqa: PLC0415
    from lptem.engine.sam2.tracker import object_result  # noqa: PLC0415

    yy, xx = np.mgrid[:60, :70]
    masks = torch.zeros((3, 60, 70), dtype=torch.bool)
    for k, angle in enumerate((12.0, -33.0, 71.0)):
        t = np.radians(angle)
        u = (xx - 34.3) * np.cos(t) + (yy - 29.8) * np.sin(t)
        v = -(xx - 34.3) * np.sin(t) + (yy - 29.8) * np.cos(t)
        shape = (np.abs(u) <= 11) & (np.abs(v) <= 11) | ((u - 11) ** 2 + v**2 <= 16)  # square with a knob
        masks[k] = torch.from_numpy(shape)
    rows = measure(masks, symmetry)
    assert rows.shape == (3, 12)
    for k in range(3):
        ours = object_result(1, rows[k], 1.0, None, symmetry)
        reference = measure_mask(masks[k].numpy(), symmetry=symmetry)
        assert ours is not None
        assert reference is not None
        assert ours.theta_deg == pytest.approx(reference.theta_deg, abs=0.01)  # float32 sums on the device
