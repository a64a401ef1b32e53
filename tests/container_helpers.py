"""For the container tests: the Docker CLI, a locally made base image, the image build.

No registry of images is reachable from CI, so the base image is made here: a minimal
Debian of the machine's own release (debootstrap, from the machine's own mirror) with
its python3, imported with ``docker import`` and kept, with its tarball, for later runs.
The build then reaches PyPI as the machine does, through its proxy: the machine's CA
bundle goes in as a build secret and its pip index settings as build arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
#: Bump when the base image's contents change: a new tag makes a new image.
BASE_VERSION = "1"
#: What the base has beyond minbase: as the official slim Python images have it.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
IMAGE = "service-task-manager:container-test"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "service-task-manager"


def docker_cli() -> str:
    """A client that builds with BuildKit by itself: Debian's docker.io client (20.10
    has BuildKit inside), else whatever ``docker`` is on PATH (with buildx, presumably)."""
    chosen = os.environ.get("STM_TEST_DOCKER")
    if chosen:
        return chosen
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        pytest.skip("no docker client")
    return found


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the Docker CLI; a failure raises with its output."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    result = subprocess.run(
        [docker_cli(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} -> {result.returncode}:\n{result.stderr}")
    return result


def require_daemon() -> None:
    """Skip without a daemon, except in CI, where .ci/run starts one: there it fails."""
    try:
        answer = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = f"no Docker daemon: {error}"
    else:
        if answer.returncode == 0:
            return
        reason = f"no Docker daemon: {answer.stderr.strip()}"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI: .ci/start-dockerd should have started one)")
    pytest.skip(reason)


def _image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _release() -> str:
    fields = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    return fields.get("VERSION_CODENAME", "").strip('"') or "bookworm"


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or a one-line ``deb``)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def base_image() -> str:
    """The tag of a local Debian + python3 image, made once per machine (the tarball is
    kept under ``CACHE`` too, so a wiped Docker gets it back without debootstrap)."""
    release = _release()
    tag = f"stm-test-base:{release}-{BASE_VERSION}"
    if _image_exists(tag):
        return tag
    tarball = CACHE / f"base-{release}-{BASE_VERSION}.tar"
    if not tarball.exists():
        _debootstrap(release, tarball)
    with tarball.open("rb") as source:
        result = subprocess.run(
            [docker_cli(), "import", "--change", 'CMD ["python3"]', "-", tag],
            stdin=source,
            capture_output=True,
            timeout=600,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    return tag


def _debootstrap(release: str, tarball: Path) -> None:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip(
            "making the base image needs root and debootstrap (apt-get install debootstrap)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release,
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        # apt's downloads are of no use in the image.
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def _pip_config() -> dict[str, str]:
    """The machine's pip settings (its config files), as ``pip config list`` prints them."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        found[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    return found


def pip_build_options() -> list[str]:
    """The CA bundle (a secret) and index settings (build arguments) pip needs here."""
    config = _pip_config()
    options: list[str] = []
    ca = os.environ.get("PIP_CERT") or config.get("cert") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(ca).is_file():
        options += ["--secret", f"id=ca,src={ca}"]
    for name in ("index-url", "extra-index-url", "trusted-host"):
        variable = "PIP_" + name.upper().replace("-", "_")
        values = (os.environ.get(variable) or config.get(name) or "").split()
        if name.endswith("url"):
            # An index on this machine's disk (file://) is not in the build's reach.
            values = [url for url in values if url.startswith(("http://", "https://"))]
        if values:
            options += ["--build-arg", f"{variable}={' '.join(values)}"]
    return options


@dataclass(frozen=True)
class Built:
    tag: str
    base: str
    seconds: float


def build_image(base: str, extra_packages: str = "") -> Built:
    """``docker build`` of the repository, as a deployer behind this machine's proxy would."""
    started = time.monotonic()
    args = ["build", "--network=host", "--build-arg", f"BASE_IMAGE={base}", *pip_build_options()]
    if extra_packages:
        args += ["--build-arg", f"EXTRA_PACKAGES={extra_packages}"]
    docker(*args, "--tag", IMAGE, str(ROOT), timeout=1800)
    return Built(IMAGE, base, time.monotonic() - started)
