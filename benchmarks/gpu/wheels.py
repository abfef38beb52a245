"""Collect the wheels the GPU machine lacks, for `benchmarks/gpu/check.sh` there (`make gpu-wheels`).

    python benchmarks/gpu/wheels.py build/gpu-wheels

The GPU machine (Python 3.12, Linux x86-64) has torch with CUDA, numpy, pandas, msgpack,
prometheus-client, onnxruntime and OpenCV, and cannot download anything; what travels to it must fit in
64 MiB. It lacks the packages below: each is taken at the version this checkout's .venv runs (what the
tests passed with), as a CPython 3.12 manylinux wheel, plus sam2 (built here without its CUDA kernel: a
pure-Python wheel) and lptem-live itself. TensorRT's wheels (over 1 GiB with their CUDA libraries) do not
fit: the check runs the torch backend, eager and compiled.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 64 * 2**20
COMPILED = ("pyzmq", "scipy", "PyYAML", "pillow")
"""What the GPU machine lacks of lptem's and sam2's runtime dependencies and has compiled code: CPython
3.12 manylinux wheels from the index (PyYAML for omegaconf, pillow for sam2's video predictor; pyarrow,
which only exports records, stays behind). A rehearsal on Python 3.12 without torch (`pip check` in
check.sh's environment, and a run's imports) found PyYAML, packaging, pillow and typing-extensions (which
torch brings) missing from the first list."""
PURE = ("tifffile", "hydra-core", "omegaconf", "antlr4-python3-runtime", "iopath", "portalocker", "tqdm",
        "packaging", "typing-extensions")  # fmt: skip
"""The pure-Python rest: their wheels, or built here from their sources (antlr4 and iopath have none)."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pinned(names: tuple[str, ...]) -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in names]


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True, env=env)


def collect(folder: Path) -> int:
    """Fill ``folder`` afresh; returns its size in bytes (ValueError above the limit)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
        "--implementation", "cp", *platforms, "--dest", str(folder), *pinned(COMPILED))  # fmt: skip
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), *pinned(PURE))
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(folder), "sam2==1.1.0",
        env={**os.environ, "SAM2_BUILD_CUDA": "0"})  # fmt: skip
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(ROOT))
    size = sum(f.stat().st_size for f in folder.iterdir())
    if size > LIMIT_BYTES:
        raise ValueError(
            f"{folder} holds {size / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB that travel"
        )
    return size


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT / "build" / "gpu-wheels")
    args = parser.parse_args()
    size = collect(args.folder)
    for wheel in sorted(args.folder.iterdir()):
        print(f"{wheel.stat().st_size / 2**20:8.2f} MiB  {wheel.name}")
    print(f"{size / 2**20:8.2f} MiB in {args.folder} (limit 64 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
