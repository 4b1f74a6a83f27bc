"""The real producers (NeMo Agent Toolkit's exporters, NeMo Relay) in a venv of their own.

`producers_python()` builds it on first use from `tools/producers/requirements.txt` and reuses
it; the driver scripts beside that file run under it, against a real ingest or a capture server.
`run_driver` runs one and returns what it printed.
`python -m flywheel_localstack.producers` prints the interpreter's path (building it if needed).
"""

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from flywheel_localstack.config import REPO_ROOT
from flywheel_localstack.installers import cached_venv

TOOLS = REPO_ROOT / "tools" / "producers"
REQUIREMENTS = TOOLS / "requirements.txt"


def requirements() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line]


def producers_python() -> Path:
    """The python of the producers' venv; its name changes with the pins, so a changed list
    builds a new one beside the old."""
    pins = requirements()
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    return cached_venv(f"producers-{digest}", pins)


def run_driver(script: str, *args: str, timeout_s: float = 300) -> dict[str, Any]:
    """Run `tools/producers/<script>` under the producers' venv; the JSON object it prints
    (last). A failing driver raises with the tail of its stderr."""
    done = subprocess.run(
        [str(producers_python()), str(TOOLS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} exited with {done.returncode}:\n{done.stderr[-4000:]}")
    printed = done.stdout.strip()
    try:  # one JSON line after whatever the driver printed before it
        answer: dict[str, Any] = json.loads(printed.splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        answer = json.loads(printed)  # or an indented JSON document alone
    return answer


if __name__ == "__main__":
    print(producers_python())
