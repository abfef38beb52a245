"""How the project installs: one namespace (lptem.*), every package listed, contracts that name every
module, and client commands that stay light."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from tests.conftest import REPOSITORY

FOLDERS = {"engine": "lptem.engine", "service": "lptem.service", "clients": "lptem.clients"}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text())


def packages_on_disk() -> set[str]:
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPOSITORY / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPOSITORY / folder).parts
            found.add(".".join((name, *relative)))
    return found


def test_every_package_folder_is_listed_for_the_wheel():
    setuptools = pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    assert set(setuptools["packages"]) == packages_on_disk()


def test_every_engine_module_outside_sam2_is_named_weight_free():
    contracts = pyproject()["tool"]["importlinter"]["contracts"]
    (weight_free,) = [c for c in contracts if c["name"].startswith("Weight-free engine modules")]
    named = set(weight_free["source_modules"])
    engine = REPOSITORY / "engine"
    modules = {f"lptem.engine.{p.stem}" for p in engine.glob("*.py") if p.stem != "__init__"}
    modules |= {f"lptem.engine.{p.parent.name}" for p in engine.glob("*/__init__.py")}
    assert named == modules - {"lptem.engine.sam2"}


def test_commands_that_only_talk_to_a_daemon_load_no_heavy_library():
    """lptem status / prompt / msd / record / bench latency: no pandas, OpenCV, pyarrow, prometheus."""
    heavy = ("pandas", "cv2", "pyarrow", "prometheus_client", "scipy", "matplotlib", "torch")
    code = (
        "import sys\n"
        "import lptem.clients.ops.commands, lptem.clients.ops.record, lptem.clients.ops.bench_latency\n"
        "import lptem.clients.cli\n"
        "lptem.clients.cli.build_parser('status')\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_wheel_installs_one_namespace(tmp_path):
    """A built wheel holds lptem/engine, lptem/service, lptem/clients and nothing at the top level."""
    source = tmp_path / "source"  # a copy: setuptools writes build/ into the folder it builds
    skipped = shutil.ignore_patterns(
        ".*", "__pycache__", "build", "tests", "benchmarks", "docs", "*.egg-info"
    )
    shutil.copytree(REPOSITORY, source, ignore=skipped)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("lptem_live-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"lptem"}
    for module in ("lptem/engine/api.py", "lptem/service/protocol/ingest.py", "lptem/clients/cli.py",
                   "lptem/clients/wire/sender.py", "lptem/engine/py.typed"):  # fmt: skip
        assert module in names
    assert not any(n.startswith("lptem/__init__") for n in names)  # lptem is a namespace package
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lptem = lptem.clients.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_nothing_imports_the_bare_folder_names():
    import lptem.engine.api  # noqa: PLC0415

    assert Path(lptem.engine.api.__file__).resolve() == (REPOSITORY / "engine" / "api.py").resolve()
    assert "engine" not in sys.modules  # nothing imported the bare folder name
