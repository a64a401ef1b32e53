"""Running ``python run.py`` as a real process, the way a user (or a crash) does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with no MANAGER_* settings: what a new user has."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return {**keep, **extra}


@dataclass
class ServiceProcess:
    cwd: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.cwd / "service.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_within: float = 30.0) -> float:
        """Start and wait for /readyz; returns the seconds it took.

        Polled: another process sends no event, and /readyz is how it says it is ready.
        """
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py")],
                cwd=self.cwd,
                env={**self.env, "MANAGER_HTTP_PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - began < ready_within:
            if self.process.poll() is not None:
                raise AssertionError(f"run.py exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready within {ready_within} s:\n{self.log.read_text()}")

    def token(self) -> str:
        for line in reversed(self.log.read_text().splitlines()):
            if "export TOKEN=" in line:
                return line.split("export TOKEN=", 1)[1].strip()
        raise AssertionError("no development token printed")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, within: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The PostgreSQL server processes whose command line names a path under ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmdline) and "postgres" in " ".join(cmdline):
            found.append(proc)
    return found


def stop_leftovers(data_dir: Path) -> None:
    """Stop an embedded PostgreSQL a killed service left running in ``data_dir``."""
    for proc in postgres_processes(data_dir):
        proc.terminate()
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()
