"""The backend switch as users meet it (``lptem serve --backend``), and the TensorRT backend.

TensorRT needs a CUDA GPU and the ``tensorrt`` package: the tests marked ``tensorrt`` skip cleanly, saying
which is missing, on machines without them (all development machines of this project). The parts of the
TensorRT backend that need neither (profiles, precision choice, cache keys, the error without CUDA) are
tested everywhere.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")
pytest.importorskip("onnxruntime")

from lptem.engine.api import Prompt  # noqa: E402
from lptem.engine.sam2.export import Manifest  # noqa: E402
from lptem.engine.sam2.models import build_model  # noqa: E402
from lptem.engine.sam2.tracker import Sam2Config, Sam2Tracker  # noqa: E402
from lptem.engine.sam2.trt_backend import (  # noqa: E402
    PROMPT_TOKENS,
    TensorRTUnavailable,
    engine_key,
    keep_in_fp32,
    profile_for,
    require_tensorrt,
    trt_runners,
)
from tests.conftest import REPOSITORY  # noqa: E402
from tests.engine.sam2.support import MODEL_SIZE, box_around, export_tiny, tiny_model, two_particle_clip  # noqa: E402

SIZE = MODEL_SIZE


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory) -> Path:
    return export_tiny(model, Path(tmp_path_factory.mktemp("onnx")), max_objects=8)


def test_profiles_cover_the_object_batch_and_prompt_tokens(graphs):
    manifest = Manifest.read(graphs)
    decoder = profile_for(manifest.graphs["mask_decoder"]["inputs"], manifest.shapes.max_objects)
    low, opt, high = decoder.shapes["sparse"]
    assert (low, opt, high) == ((1, PROMPT_TOKENS[0], 256), (4, 2, 256), (8, PROMPT_TOKENS[2], 256))
    assert decoder.shapes["feat_s0"] == ((1, 32, 64, 64), (4, 32, 64, 64), (8, 32, 64, 64))
    memory = profile_for(manifest.graphs["memory_attention"]["inputs"], manifest.shapes.max_objects)
    tokens = 7 * 16 * 16 + 64
    assert memory.shapes["memory"] == ((tokens, 1, 64), (tokens, 4, 64), (tokens, 8, 64))
    image = profile_for(manifest.graphs["image_encoder"]["inputs"], manifest.shapes.max_objects)
    assert image.shapes == {}  # fully static


def test_layernorm_and_softmax_stay_in_fp32():
    assert keep_in_fp32("NORMALIZATION")
    assert keep_in_fp32("SOFTMAX")
    assert not keep_in_fp32("CONVOLUTION")
    assert not keep_in_fp32("MATRIX_MULTIPLY")


def test_engine_cache_key_changes_with_gpu_tensorrt_and_graphs(graphs):
    manifest = Manifest.read(graphs)
    key = engine_key(manifest, "NVIDIA A100-SXM4-80GB", (8, 0), "10.3.0")
    assert key.startswith("nvidia-a100-sxm4-80gb-sm80-trt10.3.0-")
    assert key != engine_key(manifest, "NVIDIA A100-SXM4-80GB", (8, 0), "10.4.0")
    assert key != engine_key(manifest, "NVIDIA L4", (8, 9), "10.3.0")
    other = Manifest(manifest.model, "random:1", manifest.shapes, manifest.opset, manifest.versions,
                     manifest.graphs)  # fmt: skip
    assert key != engine_key(other, "NVIDIA A100-SXM4-80GB", (8, 0), "10.3.0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_the_tensorrt_backend_says_so(graphs, model):
    with pytest.raises(TensorRTUnavailable, match="needs a CUDA GPU"):
        require_tensorrt()
    with pytest.raises(TensorRTUnavailable, match="needs a CUDA GPU"):
        trt_runners(graphs, torch.device("cpu"), graphs / "engines")
    with pytest.raises(TensorRTUnavailable, match="needs a CUDA GPU"):
        Sam2Tracker(Sam2Config(device="cpu", backend="tensorrt", onnx_dir=str(graphs)), model=model)


def test_tensorrt_refuses_graphs_with_the_mask_in_a_channel(graphs, tmp_path):
    """That form is for fp32 onnxruntime; refused before TensorRT is even looked for."""
    manifest = json.loads((graphs / "manifest.json").read_text())
    manifest["shapes"]["memory_mask"] = "channel"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="--memory-mask bias"):
        trt_runners(tmp_path, torch.device("cpu"), tmp_path / "engines")


@pytest.fixture(scope="module")
def cuda_tensorrt():
    if not torch.cuda.is_available():
        pytest.skip("TensorRT tests need a CUDA GPU; torch.cuda.is_available() is False here")
    return pytest.importorskip(
        "tensorrt", reason="TensorRT tests need the tensorrt package (pip install tensorrt)"
    )


@pytest.mark.tensorrt
@pytest.mark.timeout(3600)  # export and four engine builds
def test_tensorrt_streaming_matches_torch(cuda_tensorrt, tmp_path, monkeypatch):
    """fp16 engines against the fp32 torch model on the GPU: IoU >= 0.98, centroids within 0.5 px."""
    monkeypatch.setenv("LPTEM_CACHE", str(tmp_path))  # the graphs are exported there
    cuda = torch.device("cuda")
    gpu_model = build_model("sam2.1_hiera_t", None, cuda, random_weights=True, image_size=SIZE, seed=0)
    clip = two_particle_clip(14)

    def stream(config):
        tracker = Sam2Tracker(config, model=gpu_model)
        out = []
        for i, frame in enumerate(clip):
            if i == 0:
                for label in (1, 2):
                    tracker.add_object(Prompt(box=box_around(frame, label)), label)
            out.append(tracker.step(frame.image, want_labels=True))
        return out

    reference = stream(Sam2Config(device="cuda", autocast=False))
    engines = stream(
        Sam2Config(device="cuda", autocast=False, backend="tensorrt", engine_cache=str(tmp_path / "engines"))
    )
    visible = sum(o.visible and o.area_px > 0 for r in reference for o in r.objects)
    assert visible >= len(clip)  # real masks are compared
    for a, b in zip(reference, engines, strict=True):
        for obj_a, obj_b in zip(a.objects, b.objects, strict=True):
            mask_a, mask_b = a.labels == obj_a.id, b.labels == obj_b.id
            union = (mask_a | mask_b).sum()
            assert (mask_a & mask_b).sum() / max(union, 1) >= 0.98
            assert abs(obj_a.x - obj_b.x) <= 0.5
            assert abs(obj_a.y - obj_b.y) <= 0.5
    assert len(list((tmp_path / "engines").rglob("*.plan"))) == 4


@pytest.mark.slow
@pytest.mark.e2e
def test_serve_with_the_onnxruntime_backend_tracks_every_frame(tmp_path):
    from lptem.clients.ops.daemon_process import DaemonProcess  # noqa: PLC0415
    from lptem.clients.wire.control import ControlClient  # noqa: PLC0415
    from lptem.clients.wire.sender import FrameSender  # noqa: PLC0415
    from lptem.clients.wire.subscriber import Subscriber  # noqa: PLC0415

    clip = two_particle_clip(14)
    args = ("--engine", "sam2", "--random-weights", "--device", "cpu", "--backend", "onnxruntime",
            "-E", "image_size=128", "--policy", "queue")  # fmt: skip
    env = {"LPTEM_CACHE": str(tmp_path)}  # graphs are exported there on first use
    with (
        DaemonProcess(*args, env=env, startup_timeout_s=180) as daemon,
        Subscriber(daemon.publish) as sub,
        ControlClient(daemon.control, timeout_s=60) as control,
    ):
        assert sub.wait_connected(30)
        for label in (1, 2):
            box = box_around(clip[0], label)
            control.add_object(box=[box.x0, box.y0, box.x1, box.y1])
        with FrameSender(daemon.ingest) as camera:
            for frame in clip[:6]:
                camera.send(frame.image)
        tracks = [r.message for r in (sub.recv(60) for _ in range(6)) if r is not None]
    assert [t.frame for t in tracks] == list(range(6))
    assert all([o.id for o in t.objects] == [1, 2] for t in tracks)
    manifests = list(tmp_path.glob("onnx/*/manifest.json"))
    assert len(manifests) == 1
    shapes = Manifest.read(manifests[0].parent).shapes
    assert (shapes.image_size, shapes.memory_mask) == (128, "channel")  # the CPU form of the mask


def test_the_benchmark_times_each_backend_on_its_own_stages(model, tmp_path, monkeypatch):
    """benchmarks/sam2_engine.py: the onnxruntime row runs onnxruntime's four stages (an earlier version
    left its timing wrappers on the shared torch model, so the staged copy timed torch's stages under the
    onnxruntime label), and the torch model is left without wrappers."""
    from lptem.engine.sam2.ort_backend import OrtStage  # noqa: PLC0415

    monkeypatch.setenv("LPTEM_CACHE", str(tmp_path))
    monkeypatch.syspath_prepend(str(REPOSITORY / "benchmarks"))
    import sam2_engine  # noqa: PLC0415 - a script, importable once its folder is on the path

    calls: Counter[str] = Counter()
    original = OrtStage.__call__

    def counted(self, *inputs):
        calls[self.inputs[0]] += 1  # the stage's first input names it
        return original(self, *inputs)

    monkeypatch.setattr(OrtStage, "__call__", counted)
    rows = sam2_engine.run(model, None, backends=["torch", "onnxruntime"], objects=1, frames=2, warmup=1,
                           device=torch.device("cpu"))  # fmt: skip
    assert [r["backend"] for r in rows] == ["torch", "onnxruntime"]
    assert all(len(r["frame_ms_all"]) == 2 for r in rows)
    assert calls["image"] == 3  # 1 warm-up + 2 timed frames
    assert calls["curr"] == 2  # memory attention: every frame after the prompted one
    assert calls["image_embeddings"] >= 3  # mask decoder
    assert calls["pix_feat"] >= 3  # memory encoder
    assert not set(sam2_engine.MODEL_CALLS.values()) & set(vars(model))
