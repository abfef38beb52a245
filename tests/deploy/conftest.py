"""Tools for the deploy tests: each is found on PATH or next to the interpreter (pip-installed), or the
test skips saying which is missing; `make test-deploy` installs them all and sets
DEPLOY_TOOLS_REQUIRED=1, so that there a missing tool fails instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    """The path of command ``name``; skip (or, under make test-deploy, fail) when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        message = f"{name} is not installed (make test-deploy installs it)"
        if os.environ.get("DEPLOY_TOOLS_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(
    *command: str | Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
