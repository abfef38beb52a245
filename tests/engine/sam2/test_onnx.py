"""SAM 2's exported stages on onnxruntime (CPU) against torch, with seeded random weights.

Model: SAM 2.1 Hiera-T, seed 0, 256² input (the stages are the same code at any size; 256² keeps the
suite fast). Tolerances:
* each graph vs its torch module on random inputs: max |difference| <= 1e-4 x max |torch output| (float32
  re-association by onnxruntime's fusions; measured about 1e-6);
* the static memory attention (slots + validity mask + real RoPE) vs SAM 2's own ``MemoryAttention`` on the
  unpadded memory: <= 1e-4 relative (measured about 1e-6);
* the whole streaming loop, onnxruntime backend vs torch backend, 14 frames, 2 objects, one correction:
  mask IoU >= 0.99 and centroid difference <= 0.1 px on every frame (the issue's criteria).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")
pytest.importorskip("onnxruntime")

from lptem.engine.api import PointPrompt, Prompt  # noqa: E402
from lptem.engine.sam2.backends import check_manifest, graphs_folder  # noqa: E402
from lptem.engine.sam2.export import Manifest, stage_graphs  # noqa: E402
from lptem.engine.sam2.parity import parity_errors  # noqa: E402
from lptem.engine.sam2.staged import StaticShapes, _chunked, pad_memory, static_shapes  # noqa: E402
from lptem.engine.sam2.static import MemoryAttentionStage, rope_tables, rotate  # noqa: E402
from lptem.engine.sam2.tracker import Sam2Config, Sam2Tracker  # noqa: E402
from tests.engine.sam2.support import MODEL_SIZE, box_around, export_tiny, tiny_model, two_particle_clip  # noqa: E402

SIZE = MODEL_SIZE
LPTEM = str(Path(sys.executable).with_name("lptem"))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory) -> Path:
    return export_tiny(model, Path(tmp_path_factory.mktemp("onnx")))


@pytest.fixture(scope="module")
def channel_graphs(model, tmp_path_factory) -> Path:
    """The graphs the onnxruntime backend exports for itself on a CPU: memory mask in a channel."""
    return export_tiny(model, Path(tmp_path_factory.mktemp("onnx-channel")), memory_mask="channel")


@pytest.fixture(params=["bias", "channel"])
def any_graphs(request, graphs, channel_graphs) -> Path:
    folder: Path = graphs if request.param == "bias" else channel_graphs
    return folder


def test_each_exported_graph_matches_its_torch_module(model, any_graphs):
    errors = parity_errors(model, any_graphs)
    assert set(errors) == {"image_encoder", "memory_attention", "mask_decoder", "memory_encoder"}
    assert max(errors.values()) <= 1e-4, errors


def test_manifest_describes_the_graphs(graphs):
    manifest = Manifest.read(graphs)
    assert (manifest.model, manifest.weights, manifest.opset) == ("sam2.1_hiera_t", "random:0", 17)
    assert manifest.shapes == StaticShapes(SIZE, memory_slots=7, pointer_tokens=64, max_objects=16)
    assert {"torch", "sam2", "onnx"} <= set(manifest.versions)
    memory = manifest.graphs["memory_attention"]["inputs"]["memory"]
    assert memory == [7 * 16 * 16 + 64, "objects", 64]  # static memory length, dynamic object batch
    assert manifest.graphs["mask_decoder"]["inputs"]["sparse"] == ["objects", "prompt_tokens", 256]
    assert manifest.graphs["image_encoder"]["inputs"]["image"] == [1, 3, SIZE, SIZE]
    for graph in manifest.graphs.values():
        assert (graphs / graph["file"]).stat().st_size > 0
    assert Manifest.read(graphs).key() == manifest.key()


def test_layer_norms_export_as_single_nodes(graphs):
    """fp16 TensorRT keeps LayerNormalization nodes in fp32; a decomposed norm (ReduceMean, Pow, Sqrt) would
    run in fp16. SAM 2's channel norms (decoder upscaling, memory encoder) are rewritten for export."""
    import onnx  # noqa: PLC0415

    for stage in ("mask_decoder", "memory_encoder", "memory_attention"):
        ops = [node.op_type for node in onnx.load(str(graphs / f"{stage}.onnx")).graph.node]
        assert "LayerNormalization" in ops, stage
        assert "Pow" not in ops, stage


def test_pointer_slots_grow_with_the_conditioning_slots(model):
    assert static_shapes(model, memory_slots=7).pointer_tokens == 4 * 16  # 1 conditioning + 15 recent
    assert static_shapes(model, memory_slots=10).pointer_tokens == 4 * 19  # 4 conditioning + 15 recent
    with pytest.raises(ValueError, match="at least 7"):
        static_shapes(model, memory_slots=6)


def test_graphs_for_other_weights_or_shapes_are_refused(model, graphs):
    manifest = Manifest.read(graphs)
    check_manifest(manifest, "sam2.1_hiera_t", "random:0", StaticShapes(SIZE))
    with pytest.raises(ValueError, match="weights"):
        check_manifest(manifest, "sam2.1_hiera_t", "random:1", StaticShapes(SIZE))
    with pytest.raises(ValueError, match="512 px"):
        check_manifest(manifest, "sam2.1_hiera_t", "random:0", StaticShapes(512))
    with pytest.raises(ValueError, match="run lptem export"):
        graphs_folder(model, "sam2.1_hiera_t", "random:0", StaticShapes(SIZE), str(graphs / "nothing"))


def test_real_rope_equals_sam2s_complex_rope(model):
    from sam2.modeling.position_encoding import apply_rotary_enc  # noqa: PLC0415

    attention = model.memory_attention.layers[0].cross_attn_image
    side = SIZE // 16
    q = torch.randn(2, 1, side * side, 256)
    k = torch.randn(2, 1, 3 * side * side, 256)
    freqs = attention.compute_cis(end_x=side, end_y=side)
    q_ref, k_ref = apply_rotary_enc(q, k, freqs, repeat_freqs_k=True)
    cos, sin = rope_tables(attention, side)
    assert torch.allclose(rotate(q, cos, sin), q_ref, atol=1e-5)
    assert torch.allclose(rotate(k, cos.repeat(3, 1), sin.repeat(3, 1)), k_ref, atol=1e-5)


@pytest.mark.parametrize("mask", ["bias", "channel"])
@pytest.mark.parametrize(("frames", "pointers"), [(1, 1), (3, 5), (7, 16)])
def test_static_memory_attention_equals_sam2s_on_the_valid_memory(model, frames, pointers, mask):
    """Padding slots are masked out: the result is SAM 2's attention over the real memories alone."""
    side, batch = SIZE // 16, 2
    shapes = StaticShapes(SIZE)
    gen = torch.Generator().manual_seed(frames)
    curr, curr_pos = torch.randn(2, side * side, batch, 256, generator=gen)
    memory, memory_pos = torch.randn(2, frames * side * side + 4 * pointers, batch, 64, generator=gen)
    static = MemoryAttentionStage(
        model.memory_attention, side, shapes.memory_slots, shapes.pointer_tokens, mask
    )
    with torch.no_grad():
        expected = model.memory_attention(curr=curr, curr_pos=curr_pos, memory=memory, memory_pos=memory_pos,
                                          num_obj_ptr_tokens=4 * pointers)  # fmt: skip
        got = static(curr, curr_pos, *pad_memory(memory, memory_pos, 4 * pointers, shapes))
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-4


def test_an_unknown_memory_mask_is_refused(model):
    with pytest.raises(ValueError, match="bias or channel"):
        MemoryAttentionStage(model.memory_attention, SIZE // 16, 7, 64, "none")


def test_a_memory_larger_than_the_slots_is_refused(model):
    shapes = StaticShapes(SIZE, memory_slots=2)
    tokens = (SIZE // 16) ** 2
    memory = torch.zeros(3 * tokens + 8, 1, 64)
    with pytest.raises(ValueError, match="does not fit the exported 2 slots"):
        pad_memory(memory, memory, 8, shapes)


def test_settings_needing_more_memory_than_the_slots_are_refused_at_start(model, graphs):
    config = Sam2Config(device="cpu", backend="onnxruntime", onnx_dir=str(graphs),
                        corrections_as_conditioning=True, max_conditioning_frames=4)  # fmt: skip
    with pytest.raises(ValueError, match="need memory_slots >= 10"):
        Sam2Tracker(config, model=model)


def test_batches_beyond_max_objects_are_split(model):
    seen = []

    def run(*inputs):
        x, valid = inputs
        seen.append((x.shape[1], valid.shape[0]))
        return (x * valid.sum(dim=1)[:, None],)  # sequence-first output, like the memory attention's

    x, valid = torch.randn(5, 7, 3), torch.arange(28.0).reshape(7, 4)
    (out,) = _chunked(run, [x, valid], [1, 0], limit=3)
    assert seen == [(3, 3), (3, 3), (1, 1)]
    assert torch.equal(out, x * valid.sum(dim=1)[:, None])


@pytest.fixture(scope="module")
def clip():
    return two_particle_clip(14)


def _stream(model, clip, config):
    tracker = Sam2Tracker(config, model=model)
    results = []
    for i, frame in enumerate(clip):
        if i == 0:
            for label in (1, 2):
                tracker.add_object(Prompt(box=box_around(frame, label)), label)
        if i == 6:  # a click correction on a tracked object (the decoder with 2 + 1 prompt tokens)
            y, x = np.argwhere(frame.truth.labels == 1).mean(axis=0)
            tracker.add_object(Prompt(points=(PointPrompt(float(x), float(y), True),)), 1)
        results.append(tracker.step(frame.image, want_labels=True))
    return results


@pytest.fixture(scope="module")
def torch_stream(model, clip):
    return _stream(model, clip, Sam2Config(device="cpu"))


def test_streaming_on_onnxruntime_matches_torch(model, any_graphs, clip, torch_stream):
    reference = torch_stream
    onnx = _stream(model, clip, Sam2Config(device="cpu", backend="onnxruntime", onnx_dir=str(any_graphs)))
    for i, (a, b) in enumerate(zip(reference, onnx, strict=True)):
        assert [o.id for o in a.objects] == [o.id for o in b.objects] == [1, 2]
        for obj_a, obj_b in zip(a.objects, b.objects, strict=True):
            mask_a, mask_b = a.labels == obj_a.id, b.labels == obj_b.id
            union = (mask_a | mask_b).sum()
            iou = (mask_a & mask_b).sum() / union if union else 1.0
            assert iou >= 0.99, (i, obj_a.id, iou)
            assert obj_a.visible == obj_b.visible
            if obj_a.visible:
                assert abs(obj_a.x - obj_b.x) <= 0.1, (i, obj_a, obj_b)
                assert abs(obj_a.y - obj_b.y) <= 0.1, (i, obj_a, obj_b)
    visible = sum(o.visible and o.area_px > 0 for r in reference for o in r.objects)
    assert visible >= len(clip)  # the comparison is of real masks, not of empty ones


@pytest.mark.slow
def test_lptem_export_writes_graphs_and_verifies_them(tmp_path):
    out = tmp_path / "graphs"
    command = [
        LPTEM,
        "export",
        "--random-weights",
        "--image-size",
        "128",
        "--max-objects",
        "4",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "onnxruntime vs torch" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shapes"]["image_size"] == 128
    assert manifest["shapes"]["max_objects"] == 4
    assert sorted(p.name for p in out.glob("*.onnx")) == [
        "image_encoder.onnx", "mask_decoder.onnx", "memory_attention.onnx", "memory_encoder.onnx",
    ]  # fmt: skip
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 2
    assert "is not empty" in again.stderr


def test_graph_stage_examples_cover_every_input(model):
    for graph in stage_graphs(model, StaticShapes(SIZE)).values():
        assert len(graph.inputs) == len(graph.input_names)
