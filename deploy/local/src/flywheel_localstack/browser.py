"""A headless Chromium that renders an HTML file to a PNG: how the reports are looked at in
tests and CI, where no display exists.

Debian's `chromium-headless-shell` is installed on first use (apt-get, like the stack's servers).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from flywheel_localstack.installers import InstallError, ensure_debian_packages

HEADLESS_SHELL = "chromium-headless-shell"
"""Debian's package and its /usr/bin wrapper (of /usr/lib/chromium/chromium-headless-shell)."""

WINDOW = (1280, 2400)
"""Width and height of the screenshot; a three-candidate report fits."""


class BrowserError(RuntimeError):
    """The browser could not render the page; the message holds its last output."""


def headless_browser() -> Path:
    """The headless shell's executable, installed if missing."""
    ensure_debian_packages({HEADLESS_SHELL: HEADLESS_SHELL})
    found = shutil.which(HEADLESS_SHELL)
    if found is None:
        raise InstallError(f"{HEADLESS_SHELL} is installed but not on PATH")
    return Path(found)


def screenshot(
    html: Path, png: Path, *, window: tuple[int, int] = WINDOW, timeout_s: float = 60.0
) -> Path:
    """Render `html` (a local file) at `window` size into `png`; returns `png`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    width, height = window
    with tempfile.TemporaryDirectory(prefix="flywheel-chromium-") as profile:
        cmd = [
            str(headless_browser()),
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            # A throw-away profile: concurrent renders do not share one, none is left behind.
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ]
        if os.geteuid() == 0:
            # Chromium's sandbox refuses root (CI and these machines run as root); the page is
            # our own file, without scripts.
            cmd.insert(1, "--no-sandbox")
        output = _run(cmd, timeout_s)
    if not png.is_file() or png.stat().st_size == 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise BrowserError(f"{HEADLESS_SHELL} wrote no screenshot of {html}:\n{tail}")
    return png


def _run(cmd: list[str], timeout_s: float) -> str:
    """Run the browser in its own process group, so a hung render takes its helpers with it."""
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise BrowserError(f"{HEADLESS_SHELL} did not finish within {timeout_s:g}s") from None
    if process.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise BrowserError(f"{HEADLESS_SHELL} exited with {process.returncode}:\n{tail}")
    return output
