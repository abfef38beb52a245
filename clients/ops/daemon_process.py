"""Start ``lptem serve`` as a subprocess, as a user would, on free loopback ports.

Used by ``lptem demo``, the end-to-end tests and the benchmarks: they all exercise the real daemon
through its real command line and sockets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any


class DaemonProcess:
    """``with DaemonProcess("--engine", "classical") as d: ...`` -> d.ingest / d.publish / d.control.

    Extra arguments go to ``lptem serve``; endpoints default to ``tcp://127.0.0.1:*`` (free ports).
    Leaving the block sends SIGTERM and waits for a clean exit.
    """

    def __init__(
        self,
        *args: str,
        log_file: Path | None = None,
        startup_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.log_file = log_file
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="lptem-daemon-")
        self._log: IO[bytes] | None = None
        self._final_log: str | None = None

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("lptem")  # the installed console script, as users run it
        launcher = [str(script)] if script.exists() else [sys.executable, "-P", "-m", "lptem.clients.cli"]
        cmd = [*launcher, "serve", "--ready-file", str(self.ready_file)]
        for flag in ("--ingest", "--publish", "--preview", "--control"):
            if flag not in self.args and not (flag == "--ingest" and "--ingest-connect" in self.args):
                cmd += [flag, "tcp://127.0.0.1:*"]
        return cmd + self.args

    @property
    def ready_file(self) -> Path:
        return Path(self._tmp.name) / "ready.json"

    def start(self) -> DaemonProcess:
        log_path = self.log_file or Path(self._tmp.name) / "daemon.log"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                code = self._finish()
                raise RuntimeError(f"lptem serve exited with {code}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"lptem serve not ready after {self.startup_timeout_s} s:\n{self.log_text()}"
                )
            time.sleep(0.05)
        self.endpoints = json.loads(self.ready_file.read_text())
        return self

    @property
    def ingest(self) -> str:
        return str(self.endpoints["ingest"])

    @property
    def publish(self) -> str:
        return str(self.endpoints["publish"])

    @property
    def control(self) -> str:
        return str(self.endpoints["control"])

    @property
    def preview(self) -> str:
        return str(self.endpoints["preview"])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        """What the daemon logged so far (kept after the process ends and its folder is removed)."""
        if self._final_log is not None:
            return self._final_log
        path = getattr(self, "log_path", None)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait; return the exit code (SIGKILL after ``timeout_s``)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self._finish()

    def kill(self) -> int:
        """SIGKILL (a crash), wait; return the exit code."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self._finish()

    def _finish(self) -> int:
        if self._log is not None:
            self._log.close()
            self._log = None
            self._final_log = self.log_text()
        self._tmp.cleanup()
        assert self.process is not None
        return int(self.process.returncode)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
