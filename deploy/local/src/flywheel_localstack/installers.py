"""Idempotent installs into the cache: Maven classpaths and Debian packages."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from flywheel_localstack.config import REPO_ROOT


class InstallError(RuntimeError):
    """A server could not be installed; the message says what to do."""


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise InstallError(f"{what} failed ({' '.join(cmd)}):\n{tail}")


def maven_classpath(pom: Path, target: Path) -> Path:
    """Copy the runtime classpath that `pom` declares into `target`, once per pom content.

    Maven keeps its own download cache (~/.m2), so a fresh checkout only copies jars.
    """
    ensure_debian_packages({"java": "openjdk-17-jre-headless", "mvn": "maven"})
    stamp = target / ".pom-sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return target
    if target.exists():
        shutil.rmtree(target)
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ],
        f"fetching the classpath of {pom.parent.name} from Maven Central",
    )
    stamp.write_text(digest)
    return target


def ensure_debian_packages(binaries: dict[str, str], files: dict[str, str] | None = None) -> None:
    """apt-get install the packages whose binary (on PATH) or file (absolute path) is missing."""
    missing = {pkg for binary, pkg in binaries.items() if shutil.which(binary) is None}
    missing |= {pkg for path, pkg in (files or {}).items() if not Path(path).exists()}
    if not missing:
        return
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        raise InstallError(f"missing Debian packages {sorted(missing)} and no root to install them")
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*env_prefix, *apt, "update", "-q"], "apt-get update")
    _run([*env_prefix, *apt, "install", "-y", "-q", *sorted(missing)], "apt-get install")


def cached_venv(name: str, requirements: list[str], *, cache_dir: Path | None = None) -> Path:
    """The python of `.cache/venvs/<name>`, a venv holding exactly `requirements`, made once per
    requirement list (by the project's uv) and reused; concurrent callers wait for one build.

    For real third-party clients and producers that tests drive as they are (an SDK, an
    exporter), kept out of the project's own environment so their pins never meet ours.
    """
    venvs = (cache_dir or REPO_ROOT / ".cache") / "venvs"
    venv = venvs / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = "\n".join(requirements)
    venvs.mkdir(parents=True, exist_ok=True)
    uv = str(REPO_ROOT / "scripts" / "uv")
    with (venvs / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == wanted:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        _run([uv, "venv", "-q", str(venv)], f"creating the {name} venv")
        _run([uv, "pip", "install", "-q", "-p", str(python), *requirements], f"installing {name}")
        stamp.write_text(wanted)
    return python
