"""deploy/docker: hadolint passes every Dockerfile; the compose stack's paths, service names and ports fit
together; and the CPU image builds with podman from a base made by debootstrap (no registry is reachable
here), and the daemon inside it answers ping over CURVE."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from lptem.clients.wire.control import ControlClient
from lptem.service.keys import KeyFolder
from lptem.service.protocol.curve import ClientKeys
from tests.conftest import free_port
from tests.deploy.conftest import DEPLOY, REPO, run, tool

pytestmark = pytest.mark.deploy
DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*"))
COMPOSE = DEPLOY / "compose" / "compose.yaml"
BASE = "localhost/debian-python:bookworm"
IMAGE = "localhost/lptem-live:cpu-test"
UID = 10001


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes_the_dockerfile(dockerfile: Path) -> None:
    linted = run(tool("hadolint"), "--no-color", dockerfile)
    assert linted.returncode == 0, linted.stdout
    assert linted.stdout == ""


def test_the_compose_stack_fits_together() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    build = services["lptem"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if source == "./keys":  # made by the operator (lptem keys init), never committed
                    continue
                assert (COMPOSE.parent / source).exists(), source
    image_config = tomllib.loads((DEPLOY / "docker" / "lptem.toml").read_text())
    prometheus = yaml.safe_load((COMPOSE.parent / "prometheus" / "prometheus.yml").read_text())
    target = prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0]
    assert target == f"lptem:{image_config['metrics_port']}"
    provider = yaml.safe_load(
        (COMPOSE.parent / "grafana" / "provisioning" / "dashboards" / "lptem.yml").read_text()
    )
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[provider["providers"][0]["options"]["path"]] == "./grafana/dashboards"


def test_nothing_secret_goes_into_the_build_context() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"]  # everything excluded, then the sources let back in
    allowed = [line[1:] for line in ignore if line.startswith("!")]
    assert not any("key" in p or "record" in p or ".venv" in p for p in allowed)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    podman = tool("podman")
    if run(podman, "image", "exists", BASE).returncode != 0:
        tool("debootstrap")
        made = run(DEPLOY / "docker" / "local-base.sh", BASE, timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
    built = run(
        podman, "build", "--format", "docker", "--isolation", "chroot", "--network", "host",
        # this machine reaches PyPI through a proxy whose CA only the host trusts
        "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "--env", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        "--build-arg", f"PYTHON_IMAGE={BASE}", "-f", DEPLOY / "docker" / "Dockerfile.cpu", "-t", IMAGE, REPO,
        timeout=1200,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield IMAGE
    run(podman, "rmi", "-f", IMAGE)


def test_the_image_runs_as_its_own_user_with_a_healthcheck_and_no_keys_inside(image: str) -> None:
    inspected: Any = json.loads(run(tool("podman"), "image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{UID}"
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")  # where podman puts it varies
    assert healthcheck["Test"][:3] == ["CMD", "lptem", "health"]
    assert config["Entrypoint"] == ["lptem"]
    root = Path(run(tool("podman"), "image", "mount", image).stdout.strip())
    try:
        assert sorted(p.name for p in (root / "etc" / "lptem").iterdir()) == ["lptem.toml"]  # no keys
        assert not list((root / "var" / "lib" / "lptem" / "records").iterdir())
        assert (root / "opt" / "lptem" / "bin" / "lptem").is_file()
    finally:
        run(tool("podman"), "image", "unmount", image)


def test_the_daemon_in_the_image_answers_ping_over_curve(image: str, tmp_path: Path) -> None:
    keys = KeyFolder(tmp_path / "keys")
    keys.init()
    keys.add("ops", "operator")
    ports = {name: free_port() for name in ("INGEST", "PUBLISH", "CONTROL", "PREVIEW")}
    metrics = free_port()
    env = {f"LPTEM_{name}": f"tcp://127.0.0.1:{port}" for name, port in ports.items()}
    env["LPTEM_METRICS_PORT"] = str(metrics)
    with daemon_in(image, keys.path, env) as how:
        client_keys = ClientKeys.load(keys.path / "clients" / "ops.key_secret", keys.path / "server.key")
        with ControlClient(f"tcp://127.0.0.1:{ports['CONTROL']}", timeout_s=60, keys=client_keys) as client:
            assert client.ping() > 0
            status = client.status()
        assert status.extra["security"]["curve"] is True
        health = run(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "lptem", "health", "--url",
                     f"http://127.0.0.1:{metrics}")  # fmt: skip
        assert health.returncode == 0, health.stdout
        print(f"the image's daemon ran {how}")


@contextmanager
def daemon_in(image: str, key_folder: Path, env: dict[str, str]) -> Iterator[str]:
    """Run the image's command; yields how: `podman run` where this machine's container runtime allows
    it, else the image's root filesystem under chroot as the image's user (here crun refuses to set
    RLIMIT_NOFILE inside the sandbox, whatever the flags)."""
    podman = tool("podman")
    for path in [key_folder, *key_folder.rglob("*")]:
        shutil.chown(path, UID, UID)
    name = f"lptem-test-{os.getpid()}"
    flags = [f"--env={k}={v}" for k, v in env.items()]
    started = run(podman, "run", "-d", "--rm", "--name", name, "--network", "host",
                  "-v", f"{key_folder}:/etc/lptem/keys:ro", *flags, image)  # fmt: skip
    if started.returncode == 0:
        try:
            yield "with podman run"
        finally:
            run(podman, "stop", "-t", "30", name)
        return
    reason = started.stderr.strip().splitlines()[-1]
    with _chroot(image, name, key_folder, env):
        yield f"from its root filesystem under chroot (podman run: {reason})"


@contextmanager
def _chroot(image: str, name: str, key_folder: Path, env: dict[str, str]) -> Iterator[None]:
    podman = tool("podman")
    container = run(podman, "create", "--name", name, image).stdout.strip()
    root = Path(run(podman, "mount", container).stdout.strip())
    inside = root / "etc" / "lptem" / "keys"
    shutil.copytree(key_folder, inside, dirs_exist_ok=True)
    for path in [inside, *inside.rglob("*")]:  # copies belong to root: give them to the image's user
        shutil.chown(path, UID, UID)
    for sub in ("proc", "dev"):
        subprocess.run(["mount", "--bind", f"/{sub}", str(root / sub)], check=True)
    command = [
        "chroot",
        f"--userspec={UID}:{UID}",
        str(root),
        "lptem",
        "serve",
        "--config",
        "/etc/lptem/lptem.toml",
    ]
    log = root / "tmp" / "lptem-serve.log"
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            command,
            env={"PATH": "/opt/lptem/bin:/usr/sbin:/usr/bin:/bin", "HOME": "/var/lib/lptem", **env},
            cwd="/",
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
        assert daemon.poll() is None, log.read_text()  # still running when the test is done with it
    finally:
        daemon.terminate()
        assert daemon.wait(60) == 0, log.read_text()
        for sub in ("proc", "dev"):
            subprocess.run(["umount", str(root / sub)], check=False)
        run(podman, "umount", container)
        run(podman, "rm", container)
