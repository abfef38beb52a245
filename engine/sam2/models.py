"""SAM 2 models by name, built from the ``sam2`` package's own configs; checkpoints from a user path.

No weights are downloaded. ``random_weights`` builds a seeded, untrained model for plumbing tests and
benchmarks only, and says so loudly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    config: str
    """Config inside the installed ``sam2`` package."""
    checkpoint: str
    """The checkpoint file users usually have for it (for messages; any path works)."""


MODELS: dict[str, ModelSpec] = {
    "sam2_hiera_t": ModelSpec("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "sam2_hiera_s": ModelSpec("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "sam2_hiera_b+": ModelSpec("configs/sam2/sam2_hiera_b+.yaml", "sam2_hiera_base_plus.pt"),
    "sam2_hiera_l": ModelSpec("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "sam2.1_hiera_t": ModelSpec("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "sam2.1_hiera_s": ModelSpec("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "sam2.1_hiera_b+": ModelSpec("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "sam2.1_hiera_l": ModelSpec("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
    # SAM-EM: SAM 2.1 Hiera-L fully fine-tuned on synthetic LPTEM video (its own checkpoint file).
    "samem": ModelSpec("configs/sam2.1/sam2.1_hiera_l.yaml", "SAM-EM fine-tuned checkpoint"),
}

# Overrides the official video predictor applies (sam2.build_sam.build_sam2_video_predictor), so that our
# streaming loop and the official predictor run the same model. Hole filling is ours (see postprocess).
PREDICTOR_OVERRIDES = [
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=0",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the chosen model; the message says what does not fit."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but Apple's MPS is not available here")
    if name not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device must be auto, cuda, mps or cpu, got {name!r}")
    return torch.device(name)


def build_model(
    name: str,
    checkpoint: Path | None,
    device: torch.device,
    *,
    random_weights: bool = False,
    image_size: int | None = None,
    seed: int = 0,
) -> Any:
    """A SAM 2 model (``SAM2VideoPredictor``, a ``SAM2Base``) in eval mode on ``device``."""
    import sam2  # noqa: F401, PLC0415 - initialises hydra's search path on the package's configs
    from hydra import compose  # noqa: PLC0415 - sam2 and its config system load only with this engine
    from hydra.utils import instantiate  # noqa: PLC0415
    from omegaconf import OmegaConf  # noqa: PLC0415

    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    if checkpoint is None and not random_weights:
        raise ValueError(
            f"model {name} needs its checkpoint: --checkpoint PATH (e.g. {spec.checkpoint}); "
            "--random-weights builds an untrained model for plumbing tests only"
        )
    overrides = list(PREDICTOR_OVERRIDES)
    if image_size is not None:
        overrides.append(f"++model.image_size={image_size}")
    cfg = compose(config_name=spec.config, overrides=overrides)
    OmegaConf.resolve(cfg)
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, name)
    else:
        log.warning(
            "\n%s\n  SAM 2 engine with RANDOM, UNTRAINED weights (seed %d): its masks are meaningless.\n"
            "  Use this only for plumbing tests and benchmarks; pass --checkpoint for real tracking.\n%s",
            "!" * 78, seed, "!" * 78,
        )  # fmt: skip
    return model.to(device).eval()


def load_checkpoint(model: torch.nn.Module, path: Path, name: str) -> None:
    """Load Meta's checkpoints ({"model": state_dict}) or a bare state dict, refusing any mismatch."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} holds no state dict (expected {{'model': state_dict}} or a state dict)"
        )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(path, name, missing, unexpected, wrong_shape))
    model.load_state_dict(state)
    log.info("loaded %s weights from %s (%d tensors)", name, path, len(state))


def _mismatch_message(path: Path, name: str, missing: list[str], unexpected: list[str],
                      wrong_shape: list[str]) -> str:  # fmt: skip
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:8]) + (f", ... ({len(keys) - 8} more)" if len(keys) > 8 else "")

    lines = [f"checkpoint {path} does not fit model {name}:"]
    if missing:
        lines.append(f"  {len(missing)} missing keys: {some(missing)}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys: {some(unexpected)}")
    if wrong_shape:
        lines.append(f"  {len(wrong_shape)} keys with another shape: {some(wrong_shape)}")
    lines.append("  (is it the checkpoint of another model size, or of SAM 2.0 vs 2.1? see docs/engines.md)")
    return "\n".join(lines)
