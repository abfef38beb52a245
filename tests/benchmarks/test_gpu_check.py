"""The GPU check's dry run on the CPU (tiny model, 256², 2 frames): every step runs the code the GPU run
will, so that the one chance on a borrowed GPU machine is not spent on a typo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

pytest.importorskip("torch")
pytest.importorskip("sam2")
CHECK = REPOSITORY / "benchmarks" / "gpu" / "check.py"


@pytest.mark.slow
def test_the_dry_run_passes_every_step(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(CHECK), "--out", str(tmp_path), "--dry-run"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "check.json").read_text())
    assert [report[s]["ok"] for s in ("environment", "parity", "speed", "live")] == [True] * 4
    assert report["parity"]["float32"]["max_logit_difference"] <= 1e-4
    assert report["parity"]["float32"]["sign_agreement"] == 1.0
    (speed,) = report["speed"]["runs"]
    assert speed["returncode"] == 0
    assert speed["results"][0]["size"] == 256
    assert report["live"]["results"] > 0
    assert report["live"]["latency_p50_ms"] > 0
    assert (tmp_path / "check.log").stat().st_size > 0


def test_check_sh_says_what_to_do_without_the_wheels(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(CHECK.with_name("check.sh")), str(tmp_path / "out")],
        env={**os.environ, "GPU_WHEELS": str(tmp_path / "none")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "run 'make gpu-wheels'" in run.stderr
